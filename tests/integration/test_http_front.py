"""The OpenAI-compatible HTTP front (--http-port) through the official `openai` SDK, on a real
server: chat completions streamed and not, steering, detection annotations, a stop rule ending in
content_filter, keys and roles, errors in OpenAI's shape, audit, metrics, TLS and shutdown."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from chunkscope_client import Client
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import perturbation_pb2 as pp
from helpers.certs import CertificateAuthority
from support import ServerProcess, start_server

TRAIN = [f"On day {i} the cat slept near the window while the cake cooled." for i in range(14)]
HOOK = "blocks.1.resid_post"
# The tiny test model has no template of its own; this one is written next to its weights, as an
# instruction-tuned model ships chat_template.jinja.
TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
MESSAGES = [{"role": "user", "content": "On day 9 the"}]
GREEDY = {"temperature": 0, "max_tokens": 6}
LIMIT = 64 * 1024  # --max-message-bytes: bodies above it are refused before they are read


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chat_root(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-chat (tiny-llama with a chat template) and tiny-plain (without one)."""
    root = tmp_path_factory.mktemp("chat-models")
    shutil.copytree(model_root / "tiny-llama", root / "tiny-chat")
    shutil.copytree(model_root / "tiny-llama", root / "tiny-plain")
    (root / "tiny-chat" / "chat_template.jinja").write_text(TEMPLATE)
    return root


@pytest.fixture(scope="module")
def front(chat_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A server with the HTTP front, the models registered and a PA dictionary (cat, cake)."""
    flags = ("--http-port", str(free_port()), "--max-message-bytes", str(LIMIT))
    server = start_server(tmp_path_factory.mktemp("front-data"), chat_root, *flags)
    assert server.http_port
    with Client.connect(server.address, timeout=120, token=server.token or None) as c:
        c.register_model("chat", "tiny-chat", wait=True)
        c.register_model("plain", "tiny-plain", wait=True)
        [pa] = c.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": "chat"}, hook_points=[HOOK],
            corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
            population_averaging=pb.PopulationAveragingParams(
                concepts=[{"concept": "cat"}, {"concept": "cake"}], n_samples=10, seed=0),
        ))  # fmt: skip
        yield {
            "server": server,
            "grpc": c,
            "pa": pa.id,
            "url": f"http://127.0.0.1:{server.http_port}",
        }
    assert server.terminate() == 0  # SIGTERM drains both fronts and exits cleanly


def sdk(front: dict[str, Any], key: str, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=front["url"] + "/v1", api_key=key, max_retries=0, timeout=60, **kw
    )


@pytest.fixture()
def analyst(front: dict[str, Any], api_keys: dict[str, str]) -> openai.OpenAI:
    return sdk(front, api_keys["analyst"])


def chat(client: openai.OpenAI, **kw: Any) -> Any:
    model, messages = kw.pop("model", "chat"), kw.pop("messages", MESSAGES)
    return client.chat.completions.create(model=model, messages=messages, **{**GREEDY, **kw})


def stream(client: openai.OpenAI, **kw: Any) -> list[Any]:
    return list(chat(client, stream=True, **kw))


def content_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def graft(pa: str, mode: str = "ADD", **kw: Any) -> dict[str, Any]:
    return {"chunk": {"dictionary_id": pa, "entry_id": 0}, "mode": mode,
            "positions": {"all_prompt": True, "generated": True}, **kw}  # fmt: skip


def grpc_text(front: dict[str, Any], prompt: str, **kw: Any) -> str:
    request = pp.GenerateRequest(
        model={"name": "chat"}, prompt=dp.DetectInput(text=prompt),
        sampling=pp.SamplingParams(max_new_tokens=6, stop_at_eos=True), **kw,
    )  # fmt: skip
    return next(m.text for m in front["grpc"].perturbation.Generate(request, timeout=60) if m.done)


def test_models_lists_what_is_registered(front: dict[str, Any], api_keys: dict[str, str]) -> None:
    monitor = sdk(front, api_keys["monitor"])  # listing is a monitor's right, as ListModels
    models = {m.id: m for m in monitor.models.list()}
    assert set(models) == {"chat", "plain"}
    assert models["chat"].owned_by == "chunkscope"
    assert models["chat"].chunkscope["state"] == "READY"  # type: ignore[attr-defined]
    assert monitor.models.retrieve("plain").id == "plain"
    with pytest.raises(openai.NotFoundError):
        monitor.models.retrieve("nosuch")


def test_chat_completion_is_grpc_generate_on_the_templated_prompt(
    front: dict[str, Any], analyst: openai.OpenAI, chat_root: Path
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(chat_root / "tiny-chat")
    prompt = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert prompt == "user: On day 9 the\nassistant:"
    reply = chat(analyst)
    assert reply.object == "chat.completion" and reply.model == "chat"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == grpc_text(front, prompt)
    assert reply.usage.prompt_tokens == len(tokenizer(prompt)["input_ids"])
    assert reply.usage.completion_tokens == 6
    assert reply.choices[0].finish_reason == "length"
    assert reply.chunkscope == {  # type: ignore[attr-defined]
        "detections": [],
        "interventions_applied": {},
        "presets": [],
        "rules_fired": [],
    }


def test_a_stream_carries_the_same_text_then_the_annotation_usage_and_done(
    analyst: openai.OpenAI,
) -> None:
    whole = chat(analyst).choices[0].message.content
    chunks = stream(analyst, stream_options={"include_usage": True})
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0].choices[0].delta.role == "assistant"
    assert content_of(chunks) == whole
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length" and set(finishes[:-1]) == {None}
    summary, usage = chunks[-2], chunks[-1]
    assert summary.choices == [] and summary.chunkscope["rules_fired"] == []  # type: ignore[attr-defined]
    assert usage.choices == [] and usage.usage.completion_tokens == 6


def test_an_intervention_steers_the_answer_deterministically(
    front: dict[str, Any], analyst: openai.OpenAI
) -> None:
    steering = {"chunkscope": {"interventions": [graft(front["pa"], alpha=30.0)]}}
    plain = chat(analyst).choices[0].message.content
    steered = chat(analyst, extra_body=steering)
    again = chat(analyst, extra_body=steering)
    assert steered.choices[0].message.content != plain
    assert steered.choices[0].message.content == again.choices[0].message.content
    applied = steered.chunkscope["interventions_applied"]  # type: ignore[attr-defined]
    assert set(applied) == {"add"} and applied["add"] > 0
    # Streamed, the same steering gives the same text; seeded sampling repeats too.
    assert content_of(stream(analyst, extra_body=steering)) == steered.choices[0].message.content
    sampled = {"temperature": 0.9, "seed": 11, "extra_body": steering}
    first, second = chat(analyst, **sampled), chat(analyst, **sampled)
    assert first.choices[0].message.content == second.choices[0].message.content


def test_a_preset_named_in_extra_body_steers_as_its_interventions_inline(
    front: dict[str, Any], analyst: openai.OpenAI
) -> None:
    from chunkscope_client.v1 import guard_pb2 as gp

    c, pa = front["grpc"], front["pa"]
    first, second = graft(pa, alpha=30.0), graft(pa, "INHIBIT")
    c.put_preset(gp.InterventionPreset(name="http-steer", interventions=[
        pp.Intervention(chunk=pp.ChunkRef(dictionary_id=pa, entry_id=0),
                        mode=pp.INTERVENTION_MODE_ADD, alpha=30.0,
                        positions=pp.Positions(all_prompt=True, generated=True))]))  # fmt: skip
    inline = chat(analyst, extra_body={"chunkscope": {"interventions": [first]}})
    named = chat(analyst, extra_body={"chunkscope": {"presets": ["http-steer"]}})
    plain = chat(analyst).choices[0].message.content
    assert named.choices[0].message.content == inline.choices[0].message.content != plain
    annotation = named.chunkscope  # type: ignore[attr-defined]
    assert annotation["presets"] == [{"name": "http-steer", "version": 1, "interventions": 1}]
    assert annotation["interventions_applied"] == inline.chunkscope["interventions_applied"]  # type: ignore[attr-defined]
    assert inline.chunkscope["presets"] == []  # type: ignore[attr-defined]

    # A new version changes what the name means; the pinned version keeps its meaning.
    c.put_preset(gp.InterventionPreset(name="http-steer", interventions=[
        pp.Intervention(chunk=pp.ChunkRef(dictionary_id=pa, entry_id=0),
                        mode=pp.INTERVENTION_MODE_INHIBIT,
                        positions=pp.Positions(all_prompt=True, generated=True))]),
        expected_version=1)  # fmt: skip
    latest = stream(analyst, extra_body={"chunkscope": {"presets": ["http-steer"]}})
    want = chat(analyst, extra_body={"chunkscope": {"interventions": [second]}})
    assert content_of(latest) == want.choices[0].message.content
    assert latest[-1].chunkscope["presets"] == [  # type: ignore[attr-defined]
        {"name": "http-steer", "version": 2, "interventions": 1}]  # fmt: skip
    pinned = chat(analyst, extra_body={"chunkscope": {"presets": ["http-steer@1"]}})
    assert pinned.choices[0].message.content == inline.choices[0].message.content
    assert pinned.chunkscope["presets"][0]["version"] == 1  # type: ignore[attr-defined]

    for presets, param in ((["nosuch"], "chunkscope.presets[0]"),
                           (["http-steer", "http-steer@9"], "chunkscope.presets[1]"),
                           (["http-steer@one"], "chunkscope.presets[0]")):  # fmt: skip
        with pytest.raises(openai.BadRequestError) as err:
            chat(analyst, extra_body={"chunkscope": {"presets": presets}})
        got = err.value.body  # type: ignore[attr-defined]
        assert got["param"] == param, got


def test_detections_are_annotated_per_concept_and_streamed_per_token(
    front: dict[str, Any], analyst: openai.OpenAI
) -> None:
    # The "cat" chunk grafted onto every generated token: it is detected on each of them.
    options = {"chunkscope": {"interventions": [graft(front["pa"], "ACTIVATE")],
                              "detect_dictionary_ids": [front["pa"]]}}  # fmt: skip
    reply = chat(analyst, extra_body=options)
    detections = reply.chunkscope["detections"]  # type: ignore[attr-defined]
    cat = next(d for d in detections if d["label"] == "cat")
    assert cat["dictionary_id"] == front["pa"] and cat["entry_id"] == 0
    assert cat["tokens"] == 6 and cat["steps"] == [0, 1, 2, 3, 4, 5]
    chunks = stream(analyst, extra_body=options)
    per_token = [c.chunkscope for c in chunks[:-1] if not c.choices]  # type: ignore[attr-defined]
    assert [a["step"] for a in per_token] == [0, 1, 2, 3, 4, 5]
    assert all(any(d["label"] == "cat" for d in a["detections"]) for a in per_token)
    assert chunks[-1].chunkscope["detections"] == detections  # type: ignore[attr-defined]


def test_a_stop_rule_ends_the_answer_with_content_filter(
    front: dict[str, Any], analyst: openai.OpenAI
) -> None:
    pa = front["pa"]
    options = {"chunkscope": {
        "interventions": [{"chunk": {"dictionary_id": pa, "entry_id": 0}, "mode": "ACTIVATE",
                           "positions": {"generated": True}}],
        "rules": [{"when": {"dictionary_id": pa, "entry_id": 0}, "consecutive_tokens": 2,
                   "stop": True}],
    }}  # fmt: skip
    reply = chat(analyst, max_tokens=10, extra_body=options)
    assert reply.choices[0].finish_reason == "content_filter"
    assert reply.usage.completion_tokens == 2  # stopped after two tokens, not ten
    fired = [{"rule_index": 0, "step": 1, "action": "stop"}]
    assert reply.chunkscope["rules_fired"] == fired  # type: ignore[attr-defined]
    chunks = stream(analyst, max_tokens=10, extra_body=options)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"
    assert chunks[-1].chunkscope["rules_fired"] == fired  # type: ignore[attr-defined]


def test_a_stop_sequence_cuts_the_answer(analyst: openai.OpenAI) -> None:
    whole = chat(analyst, max_tokens=12).choices[0].message.content
    middle = len(whole) // 2
    stop = whole[middle : middle + 2]
    assert stop.strip(), whole
    want = whole[: whole.find(stop)]
    reply = chat(analyst, max_tokens=12, stop=[stop])
    assert reply.choices[0].message.content == want
    assert reply.choices[0].finish_reason == "stop"
    assert content_of(stream(analyst, max_tokens=12, stop=stop)) == want


def test_keys_and_roles_are_gRPC_s(front: dict[str, Any], api_keys: dict[str, str]) -> None:
    for key in ("cks_000000000000_guess", "not-a-key"):
        with pytest.raises(openai.AuthenticationError) as err:
            chat(sdk(front, key))
        assert err.value.status_code == 401
        assert err.value.body["code"] == "api_key_invalid"  # type: ignore[index]
    with pytest.raises(urllib.error.HTTPError) as missing:  # the SDK always sends a key
        urllib.request.urlopen(front["url"] + "/v1/models", timeout=30)
    assert missing.value.code == 401
    assert json.loads(missing.value.read())["error"]["code"] == "api_key_missing"
    monitor = sdk(front, api_keys["monitor"])
    with pytest.raises(openai.PermissionDeniedError) as denied:
        chat(monitor)
    assert "needs 'analyst'" in denied.value.message
    assert api_keys["analyst"] not in front["server"].log()  # keys are never logged


def _raw(front: dict[str, Any], key: str, body: bytes, path: str = "/v1/chat/completions") -> Any:
    request = urllib.request.Request(
        front["url"] + path, data=body, method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                 "X-Request-Id": "probe-17"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.headers["x-request-id"] == "probe-17"  # as gRPC's trailing metadata
    return err.value.code, json.loads(err.value.read())["error"]


def test_bad_requests_get_openai_errors_that_name_the_field(
    front: dict[str, Any], analyst: openai.OpenAI, api_keys: dict[str, str]
) -> None:
    pa = front["pa"]
    cases: list[tuple[dict[str, Any], type[Exception], str | None, str]] = [
        ({"model": "nosuch"}, openai.NotFoundError, "model", "nosuch"),
        ({"model": "plain"}, openai.BadRequestError, "model", "no chat template"),
        ({"temperature": 5}, openai.BadRequestError, "temperature", "0..2"),
        ({"max_tokens": 5000}, openai.BadRequestError, "max_tokens", "--max-new-tokens"),
        ({"n": 2}, openai.BadRequestError, "n", "not supported"),
        ({"messages": [{"role": "tool", "content": "x"}]}, openai.BadRequestError,
         "messages[0].role", "'tool'"),
        ({"extra_body": {"chunkscope": {"interventions": [graft(pa, "GRAFT")]}}},
         openai.BadRequestError, "chunkscope.interventions[0].mode", "ACTIVATE, INHIBIT"),
        ({"extra_body": {"chunkscope": {"interventions": [{**graft(pa), "chunk": {
            "dictionary_id": pa, "entry_id": 99}}]}}},
         openai.BadRequestError, "chunkscope.interventions[0].chunk.entry_id", ""),
        ({"extra_body": {"chunkscope": {"detect_dictionary_ids": ["nosuch"]}}},
         openai.BadRequestError, "chunkscope.detect_dictionary_ids[0]", "nosuch"),
        ({"extra_body": {"chunkscope": {"detect_dictionary_ids": ["dict-000000000000"]}}},
         openai.BadRequestError, None, "dict-000000000000"),
        ({"extra_body": {"chunkscope": {"steer": []}}}, openai.BadRequestError,
         "chunkscope.steer", "interventions"),
        ({"extra_body": {"frobnicate": 1}}, openai.BadRequestError, "frobnicate", "extra_body"),
    ]  # fmt: skip
    for kw, error, param, words in cases:
        with pytest.raises(error) as err:
            chat(analyst, **kw)
        got = err.value.body  # type: ignore[attr-defined]
        assert got["param"] == param, (kw, got)
        assert words in got["message"], (kw, got)
        assert got["type"] and got["code"], got
    status, body = _raw(front, api_keys["analyst"], b"{not json")
    assert (status, body["param"]) == (400, "body")
    status, body = _raw(front, api_keys["analyst"], b" " * (LIMIT + 16 * 1024))
    assert status == 413 and "--max-message-bytes" in body["message"]
    status, body = _raw(front, api_keys["analyst"], b"{}", "/v1/completions")
    assert status == 404 and "/v1/chat/completions" in body["message"]
    models = [m.id for m in analyst.models.list()]  # none of that hurt the server
    assert models == ["chat", "plain"]


def test_chat_completions_are_audited_and_counted(
    front: dict[str, Any], analyst: openai.OpenAI, api_keys: dict[str, str]
) -> None:
    chat(analyst)
    with pytest.raises(openai.PermissionDeniedError):
        chat(sdk(front, api_keys["monitor"]))
    server: ServerProcess = front["server"]
    records = [
        json.loads(line) for line in (server.data_dir / "audit.jsonl").read_text().splitlines()
    ]
    mine = [r for r in records if r["method"] == "POST /v1/chat/completions"]
    assert {(r["role"], r["outcome"]) for r in mine} >= {
        ("analyst", "OK"),
        ("monitor", "PERMISSION_DENIED"),
    }
    ok = next(r for r in mine if r["outcome"] == "OK")
    assert ok["request"]["model"] == {"name": "chat"}
    assert ok["request"]["prompt"]["text"] == "user: On day 9 the\nassistant:"
    scrape = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics").read()
    text = scrape.decode()
    ok_line = (
        'chunkscope_http_requests_total{code="200",method="POST",route="/v1/chat/completions"}'
    )
    denied = 'chunkscope_http_requests_total{code="403",method="POST",route="/v1/chat/completions"}'
    assert ok_line in text and denied in text
    assert 'chunkscope_generated_tokens_total{arm="perturbed"}' in text


def test_the_front_speaks_tls_with_the_grpc_certificate(chat_root: Path, tmp_path: Path) -> None:
    ca = CertificateAuthority()
    cert, key = ca.issue("chunkscope", server=True).write(tmp_path, "server")
    server = start_server(tmp_path / "data", chat_root, "--http-port", str(free_port()),
                          "--tls-cert", str(cert), "--tls-key", str(key))  # fmt: skip
    url = f"https://127.0.0.1:{server.http_port}/v1/models"
    context = ssl.create_default_context(cadata=ca.pem.decode())
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(request, context=context, timeout=30) as reply:
        assert json.loads(reply.read()) == {"object": "list", "data": []}
    with pytest.raises(OSError):  # plaintext is refused (URLError, or the connection reset)
        urllib.request.urlopen(url.replace("https", "http"), timeout=30)
    assert server.terminate() == 0


def test_the_front_is_off_unless_asked(server: ServerProcess) -> None:
    assert server.http_port is None


def test_streams_are_limited_and_a_drain_ends_them_then_the_server_exits_cleanly(
    chat_root: Path, tmp_path: Path, api_keys: dict[str, str]
) -> None:
    flags = ("--http-port", str(free_port()), "--max-concurrent-streams", "1")
    server = start_server(tmp_path / "data", chat_root, *flags)
    with Client.connect(server.address, timeout=120, token=server.token) as c:
        c.register_model("chat", "tiny-chat", wait=True)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.http_port}/v1",
                           api_key=api_keys["analyst"], max_retries=0, timeout=60)  # fmt: skip
    long = client.chat.completions.create(
        model="chat",
        messages=MESSAGES,
        max_tokens=1000,
        temperature=0,
        stream=True,  # type: ignore[arg-type]
    )
    chunks = iter(long)
    assert next(chunks).choices[0].delta.role == "assistant"  # the stream is open
    with pytest.raises(openai.RateLimitError) as refused:  # --max-concurrent-streams 1
        stream(client)
    assert refused.value.body["code"] == "too_many_streams"  # type: ignore[index]
    assert refused.value.response.headers["retry-after"] == "1"
    server.proc.send_signal(signal.SIGTERM)
    with pytest.raises(openai.APIError) as ended:
        for _ in chunks:
            pass
    assert "shutting down" in ended.value.message
    assert server.proc.wait(60) == 0


def _scrape(server: ServerProcess, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics").read()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.decode().splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def _until(condition: Any) -> None:
    """Poll `condition` (a bound on waiting, not a timing assertion)."""
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def test_a_client_that_hangs_up_cancels_its_completion(
    front: dict[str, Any], api_keys: dict[str, str]
) -> None:
    server: ServerProcess = front["server"]
    body = json.dumps({"model": "chat", "messages": MESSAGES, "max_tokens": 1000, "temperature": 0})
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {api_keys['analyst']}\r\nContent-Type: application/json\r\n"
        f"X-Request-Id: hangs-up-1\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    tokens_before = _scrape(server, "chunkscope_generated_tokens_total")
    with socket.create_connection(("127.0.0.1", server.http_port)) as conn:
        conn.sendall((head + body).encode())
        _until(lambda: _scrape(server, "chunkscope_rows_in_flight") > 0)  # it is generating
    # The client is gone: the completion is cancelled, its row leaves the batch.
    _until(lambda: _scrape(server, "chunkscope_rows_in_flight") == 0)
    audit = server.data_dir / "audit.jsonl"

    def outcomes() -> list[str]:
        records = [json.loads(line) for line in audit.read_text().splitlines()]
        return [r["outcome"] for r in records if r.get("request_id") == "hangs-up-1"]

    _until(outcomes)  # the record is written by the audit log's thread
    assert outcomes() == ["CANCELLED"]
    assert _scrape(server, "chunkscope_generated_tokens_total") - tokens_before < 1000
    _until(lambda: _scrape(server, 'chunkscope_http_requests_total{code="499"') == 1)
