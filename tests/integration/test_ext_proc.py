"""The Envoy external processor (envoy.service.ext_proc.v3.ExternalProcessor) against real servers.

No Envoy binary installs here (no Debian package; `envoy` on PyPI is an unrelated library), so a
client replays, over a real gRPC channel with Envoy's official protos, the messages Envoy's
ext_proc filter sends for a streamed chat completion with request headers and response headers
SEND, request_body_mode BUFFERED and response_body_mode STREAMED: request_headers, the request
body in one message with end_of_stream, response_headers, then the server-sent events in chunks,
the last with end_of_stream. Like Envoy it sends each message after the answer to the previous
one. The policy blocks a concept of a dictionary extracted here on the tiny test model.
"""

from __future__ import annotations

import json
import queue
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import guard_pb2 as gp
from support import ROOT, ServerProcess, start_server

TRAIN = [f"On day {i} the cat slept near the window while the cake cooled." for i in range(14)]
CAT = TRAIN[3]
CLEAN = "A quiet morning without animals."
HOOKS = ["blocks.0.resid_post", "blocks.1.resid_post"]
MODEL = "ep-lm"
POLICY = "ep-no-cats"  # its own name: the session server also serves other tests
# The answer, streamed: the concept's word arrives in the fourth piece. Pieces split at the spaces
# that start words, so every text before it is a prefix of CAT's tokens, which a causal model
# scores as it does inside CAT, where the cat rule fires only on "cat" (tests/api/test_guard_api).
PIECES = ["On day 3", " the", " cat slept near", " the window while", " the cake cooled."]


def _event(content: str, role: str = "") -> bytes:
    delta = {"role": role} if role else {"content": content}
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m",
             "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}  # fmt: skip
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _headers(*pairs: tuple[str, str], end: bool = False) -> ep.HttpHeaders:
    return ep.HttpHeaders(
        headers=base_pb2.HeaderMap(
            headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs]
        ),
        end_of_stream=end,
    )


def _exchange(
    body: bytes, response_chunks: list[bytes], content_type: str = "text/event-stream"
) -> list[ep.ProcessingRequest]:
    """Envoy's messages for one POST /v1/chat/completions answered with server-sent events (or
    another `content_type`)."""
    messages = [
        ep.ProcessingRequest(request_headers=_headers(
            (":method", "POST"), (":path", "/v1/chat/completions"), (":authority", "llm"),
            ("content-type", "application/json"))),
        ep.ProcessingRequest(request_body=ep.HttpBody(body=body, end_of_stream=True)),
        ep.ProcessingRequest(response_headers=_headers(
            (":status", "200"), ("content-type", content_type))),
    ]  # fmt: skip
    for i, chunk in enumerate(response_chunks):
        last = i == len(response_chunks) - 1
        messages.append(
            ep.ProcessingRequest(response_body=ep.HttpBody(body=chunk, end_of_stream=last))
        )
    return messages


def _chat(*messages: tuple[str, str]) -> bytes:
    turns = [{"role": r, "content": c} for r, c in messages]
    return json.dumps({"model": "m", "stream": True, "messages": turns}).encode()


def _streamed(pieces: list[str]) -> list[bytes]:
    """The answer's events in chunks: the role first, one piece per chunk except that the second
    piece's event (if any) is cut in two across chunks, as TCP may; [DONE] with end_of_stream."""
    chunks = [_event("", role="assistant")] + [_event(p) for p in pieces]
    if len(chunks) > 2:
        cut = len(chunks[2]) // 2
        chunks[2:3] = [chunks[2][:cut], chunks[2][cut:]]
    return [*chunks, b"data: [DONE]\n\n"]


def replay(
    server: ServerProcess, messages: list[ep.ProcessingRequest], key: str | None, **metadata: str
) -> list[ep.ProcessingResponse]:
    """Send `messages` one at a time, each after the answer to the one before (as Envoy waits for
    its answer to the body it buffered); the answers until the server ends the stream."""
    answered: queue.Queue[bool] = queue.Queue()

    def requests() -> Iterator[ep.ProcessingRequest]:
        for message in messages:
            yield message
            if not answered.get(timeout=120):
                return

    pairs = [(k.replace("_", "-"), v) for k, v in metadata.items()]
    if key is not None:
        pairs.append(("authorization", f"Bearer {key}"))
    answers = []
    with grpc.insecure_channel(server.address) as channel:
        call = ep_grpc.ExternalProcessorStub(channel).Process(
            requests(), metadata=pairs, timeout=120
        )
        try:
            for answer in call:
                answers.append(answer)
                answered.put(True)
        finally:
            answered.put(False)
    return answers


def _error(server: ServerProcess, messages: list[ep.ProcessingRequest], key: str | None,
           **metadata: str) -> ChunkscopeError:  # fmt: skip
    with pytest.raises(grpc.RpcError) as raised:
        replay(server, messages, key, **metadata)
    return ChunkscopeError.from_rpc_error(raised.value)


def _kinds(answers: list[ep.ProcessingResponse]) -> list[str]:
    return [str(a.WhichOneof("response")) for a in answers]


def _set_headers(mutation: ep.HeaderMutation) -> dict[str, str]:
    return {h.header.key: h.header.raw_value.decode() for h in mutation.set_headers}


def _verdicts(server: ServerProcess, phase: str, mode: str, verdict: str) -> float:
    """chunkscope_ext_proc_verdicts_total of POLICY with these labels, read from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
        lines = r.read().decode().splitlines()
    wanted = {f'mode="{mode}"', f'phase="{phase}"', f'policy="{POLICY}"', f'verdict="{verdict}"'}
    total = 0.0
    for line in lines:
        name, _, rest = line.partition("{")
        if name == "chunkscope_ext_proc_verdicts_total":
            labels, _, value = rest.rpartition("} ")
            if set(labels.split(",")) == wanted:
                total += float(value)
    return total


def _ready(s: ServerProcess, archive: bytes, dictionary: str) -> None:
    """The tiny model, the dictionary and the policy (block cat) on `s`; with no archive, only
    the policy (the model and dictionary are there)."""
    with Client.connect(s.address, timeout=120) as c:
        if archive:
            c.register_model(MODEL, "tiny-llama", wait=True)
            c.import_dictionary(archive)
        c.put_policy(gp.Policy(name=POLICY, model={"name": MODEL}, rules=[
            gp.PolicyRule(dictionary_id=dictionary, label="cat", action=gp.POLICY_ACTION_BLOCK),
        ]))  # fmt: skip


@pytest.fixture(scope="module")
def servers(
    server: ServerProcess, model_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServerProcess]]:
    """The session server (no ext_proc flags) and two started with --ext-proc-policy POLICY:
    one in block mode (the default), one with --ext-proc-mode observe."""
    with Client.connect(server.address, timeout=120) as c:
        c.register_model(MODEL, "tiny-llama", wait=True)
        dictionary, deeper = c.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": MODEL}, hook_points=HOOKS,
            corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
            population_averaging=pb.PopulationAveragingParams(
                concepts=[{"concept": "cat"}, {"concept": "cake"}], n_samples=10, seed=0),
        ))  # fmt: skip
        archive = c.export_dictionary(dictionary.id)
    _ready(server, b"", dictionary.id)
    root = tmp_path_factory.mktemp("ext-proc")
    block = start_server(root / "block", model_root, "--ext-proc-policy", POLICY)
    observe = start_server(root / "observe", model_root, "--ext-proc-policy", POLICY,
                           "--ext-proc-mode", "observe")  # fmt: skip
    for s in (block, observe):
        _ready(s, archive, dictionary.id)
    with Client.connect(block.address, timeout=120) as c:  # what the rest relies on
        assert c.check(POLICY, texts=[CAT]).verdict == gp.VERDICT_BLOCK
        prefixes = ["".join(PIECES[:n]) for n in (1, 2)]
        assert c.check(POLICY, texts=[CLEAN, *prefixes]).verdict == gp.VERDICT_ALLOW
    yield {"session": server, "block": block, "observe": observe}
    for s in (block, observe):
        s.terminate()
    with Client.connect(server.address, timeout=120) as c:
        c.delete_policy(POLICY)
        for d in (dictionary, deeper):
            c.delete_dictionary(d.id)
        c.unregister_model(MODEL)


def test_a_prompt_with_the_concept_gets_an_immediate_403_naming_the_policy(
    servers: dict[str, ServerProcess], api_keys: dict[str, str]
) -> None:
    block = servers["block"]
    before = _verdicts(block, "request", "block", "block")
    sent = _exchange(_chat(("system", CLEAN), ("user", CAT)), _streamed(PIECES[:1]))
    answers = replay(block, sent, api_keys["monitor"])  # a monitor's key is enough
    # Headers continue; the body's answer ends the exchange, and the stream with it.
    assert _kinds(answers) == ["request_headers", "immediate_response"]
    assert answers[0].request_headers.response.status == ep.CommonResponse.CONTINUE
    immediate = answers[1].immediate_response
    assert immediate.status.code == 403
    assert _set_headers(immediate.headers) == {
        "x-chunkscope-verdict": "block", "content-type": "application/json"}  # fmt: skip
    error = json.loads(immediate.body)["error"]
    assert (error["policy"], error["policy_version"], error["phase"]) == (POLICY, 1, "request")
    assert error["fired_rules"] == [0] and "messages[1]" in error["message"]
    assert _verdicts(block, "request", "block", "block") == before + 1

    # Not JSON, not UTF-8: checked as text all the same.
    raw = _exchange(CAT.encode() + b" \xff\xfe", [])
    assert _kinds(replay(block, raw[:2], api_keys["monitor"]))[-1] == "immediate_response"


def test_a_clean_exchange_continues_and_a_streamed_answer_is_blocked_where_the_concept_arrives(
    servers: dict[str, ServerProcess], api_keys: dict[str, str]
) -> None:
    block = servers["block"]
    clean = _exchange(_chat(("system", CLEAN), ("user", "On day 3 the")), _streamed(PIECES[:2]))
    answers = replay(block, clean, api_keys["monitor"])
    assert _kinds(answers) == [m.WhichOneof("request") for m in clean]  # one answer each
    assert all(
        getattr(a, a.WhichOneof("response")).response.status == ep.CommonResponse.CONTINUE
        for a in answers[:3]
    )
    assert _set_headers(answers[1].request_body.response.header_mutation) == {
        "x-chunkscope-verdict": "allow"}  # fmt: skip

    before = _verdicts(block, "response", "block", "allow")
    sent = _exchange(_chat(("user", CLEAN)), _streamed(PIECES))
    answers = replay(block, sent, api_keys["monitor"])
    # Chunks: role, "On day 3", half of " the", the rest of it, " cat slept near" (index 4).
    kinds = _kinds(answers)
    assert kinds == ["request_headers", "request_body", "response_headers", *["response_body"] * 4,
                     "immediate_response"]  # fmt: skip
    error = json.loads(answers[-1].immediate_response.body)["error"]
    assert (error["policy"], error["phase"]) == (POLICY, "response")
    assert "texts[0]" in error["message"]
    # Checked as it grew: once after "On day 3" and once after " the" (the half event and the
    # role event add no text and are not checked).
    assert _verdicts(block, "response", "block", "allow") == before + 2

    # A whole (not streamed) chat completion, here in two chunks: checked at end_of_stream.
    completion = json.dumps({"object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": CAT}}]}).encode()  # fmt: skip
    half = len(completion) // 2
    sent = _exchange(_chat(("user", CLEAN)), [completion[:half], completion[half:]],
                     content_type="application/json")  # fmt: skip
    answers = replay(block, sent, api_keys["monitor"])
    assert _kinds(answers)[3:] == ["response_body", "immediate_response"]
    assert json.loads(answers[-1].immediate_response.body)["error"]["phase"] == "response"


def test_observe_mode_continues_on_the_same_inputs_and_records_the_verdicts(
    servers: dict[str, ServerProcess], api_keys: dict[str, str]
) -> None:
    observe = servers["observe"]
    counts = {(p, v): _verdicts(observe, p, "observe", v)
              for p in ("request", "response") for v in ("allow", "block")}  # fmt: skip
    sent = _exchange(_chat(("system", CLEAN), ("user", CAT)), _streamed(PIECES))
    answers = replay(observe, sent, api_keys["monitor"])
    assert _kinds(answers) == [m.WhichOneof("request") for m in sent]  # nothing blocked
    assert "immediate_response" not in _kinds(answers)
    assert _set_headers(answers[1].request_body.response.header_mutation) == {
        "x-chunkscope-verdict": "block"}  # fmt: skip
    after = {k: _verdicts(observe, k[0], "observe", k[1]) for k in counts}
    # The request would have been blocked; the answer passed 2 checks, then 3 would-be blocks.
    assert {k: after[k] - counts[k] for k in counts} == {
        ("request", "allow"): 0, ("request", "block"): 1,
        ("response", "allow"): 2, ("response", "block"): 3}  # fmt: skip
    log = observe.log()
    assert f"ext_proc request would be blocked (observe mode): policy {POLICY} version 1" in log
    assert "ext_proc response would be blocked (observe mode)" in log
    assert api_keys["monitor"] not in log


def test_a_route_names_the_policy_and_mode_in_its_grpc_metadata(
    servers: dict[str, ServerProcess], api_keys: dict[str, str]
) -> None:
    session = servers["session"]  # started without --ext-proc-policy: off
    sent = _exchange(_chat(("user", CAT)), _streamed(PIECES[:1]))
    e = _error(session, sent, api_keys["monitor"])
    assert e.code is grpc.StatusCode.FAILED_PRECONDITION and e.reason == "EXT_PROC_OFF"
    assert "--ext-proc-policy" in e.message
    answers = replay(session, sent, api_keys["monitor"], x_chunkscope_policy=POLICY)
    assert _kinds(answers)[-1] == "immediate_response"
    observed = replay(session, sent, api_keys["monitor"], x_chunkscope_policy=POLICY,
                      x_chunkscope_ext_proc_mode="observe")  # fmt: skip
    assert _kinds(observed) == [m.WhichOneof("request") for m in sent]
    e = _error(session, sent, api_keys["monitor"], x_chunkscope_policy=POLICY,
               x_chunkscope_ext_proc_mode="audit")  # fmt: skip
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT
    assert e.field_violations[0][0] == "x-chunkscope-ext-proc-mode"


def test_a_call_without_a_key_is_unauthenticated(
    servers: dict[str, ServerProcess], api_keys: dict[str, str]
) -> None:
    sent = _exchange(_chat(("user", CLEAN)), [])
    e = _error(servers["block"], sent[:2], None)
    assert e.code is grpc.StatusCode.UNAUTHENTICATED and e.reason == "API_KEY_MISSING"
    e = _error(servers["block"], sent[:2], "cks_000000000000_not-a-key")
    assert e.code is grpc.StatusCode.UNAUTHENTICATED


def test_a_policy_flag_naming_no_stored_policy_ends_the_stream_with_not_found(
    model_root: Path, tmp_path: Path, api_keys: dict[str, str]
) -> None:
    s = start_server(tmp_path / "data", model_root, "--ext-proc-policy", "no-such-policy")
    e = _error(s, _exchange(_chat(("user", CLEAN)), []), api_keys["monitor"])
    assert e.code is grpc.StatusCode.NOT_FOUND and e.reason == "POLICY_NOT_FOUND"
    assert "no-such-policy" in e.message
    # Like chunkscope's own services: in health (for Envoy's cluster health checks) and reflection.
    name = "envoy.service.ext_proc.v3.ExternalProcessor"
    with grpc.insecure_channel(s.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=30).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        asked = reflection_pb2.ServerReflectionRequest(file_containing_symbol=name)
        (reply,) = reflection.ServerReflectionInfo(iter([asked]), timeout=30)
        protos = reply.file_descriptor_response.file_descriptor_proto
        assert any(b"envoy/service/ext_proc/v3/external_processor.proto" in p for p in protos)
    assert s.terminate() == 0


def test_the_documented_envoy_filter_config_is_envoys_schema_and_what_the_tests_replay() -> None:
    """docs/GUARD.md's filter config parses into Envoy's ExternalProcessor proto (unknown or
    misspelt fields fail), with the processing mode these tests emulate."""
    import yaml
    from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2, processing_mode_pb2
    from google.protobuf import json_format

    doc = (ROOT / "docs" / "GUARD.md").read_text()
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    filters = yaml.safe_load(block)["http_filters"]
    (ext_proc,) = [f for f in filters if f["name"] == "envoy.filters.http.ext_proc"]
    config = dict(ext_proc["typed_config"])
    kind = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"
    assert config.pop("@type") == kind
    parsed = json_format.ParseDict(config, ext_proc_pb2.ExternalProcessor())
    mode = parsed.processing_mode
    modes = processing_mode_pb2.ProcessingMode
    assert (mode.request_header_mode, mode.response_header_mode) == (modes.SEND, modes.SEND)
    assert (mode.request_body_mode, mode.response_body_mode) == (modes.BUFFERED, modes.STREAMED)
    assert [(m.key, m.value.split(" ")[0]) for m in parsed.grpc_service.initial_metadata] == [
        ("authorization", "Bearer")]  # fmt: skip
    assert not parsed.failure_mode_allow


def test_a_stream_whose_deadline_passes_during_a_check_ends_with_deadline_exceeded(
    servers: dict[str, ServerProcess], model_root: Path, tmp_path: Path, api_keys: dict[str, str]
) -> None:
    """A server that waits 1 s for company before a lone forward: the stream's 0.5 s deadline
    passes while the request body's check is queued; the stream ends with DEADLINE_EXCEEDED (for
    Envoy: a failure, not a verdict)."""
    with Client.connect(servers["block"].address, timeout=120) as c:
        (dictionary,) = c.list_dictionaries(model=MODEL)  # the one the policy uses
        archive = c.export_dictionary(dictionary.id)
    slow = start_server(tmp_path / "data", model_root, "--max-batch-delay-ms", "1000",
                        "--ext-proc-policy", POLICY)  # fmt: skip
    _ready(slow, archive, dictionary.id)
    sent = _exchange(_chat(("user", CLEAN)), [])
    with pytest.raises(grpc.RpcError) as raised, grpc.insecure_channel(slow.address) as channel:
        stub = ep_grpc.ExternalProcessorStub(channel)
        metadata = [("authorization", f"Bearer {api_keys['monitor']}")]
        list(stub.Process(iter(sent[:2]), metadata=metadata, timeout=0.5))
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    answers = replay(slow, sent, api_keys["monitor"])  # with time enough, a verdict
    assert _kinds(answers) == [m.WhichOneof("request") for m in sent]
    assert slow.terminate() == 0
