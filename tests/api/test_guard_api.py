"""GuardService through the Python client against real servers: policies over a dictionary
extracted here, Check verdicts with spans, versions, roles, errors, deadlines, and replicas."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import guard_pb2 as gp
from chunkscope_client.v1 import models_pb2 as mp
from chunkscope_client.v1 import perturbation_pb2 as pp
from support import ServerProcess, start_server

TRAIN = [f"On day {i} the cat slept near the window while the cake cooled." for i in range(14)]
CAT = TRAIN[3]
CLEAN = "A quiet morning without animals."
HOOKS = ["blocks.0.resid_post", "blocks.1.resid_post"]
MODEL = "gd-lm"


@pytest.fixture(scope="module")
def setup(server: ServerProcess) -> Iterator[tuple[Client, str, str]]:
    """A tiny LM with a PA dictionary (cat, cake) at each of two hook points."""
    with Client.connect(server.address, timeout=120) as c:
        c.register_model(MODEL, "tiny-llama", wait=True)
        c.register_model("gd-other", "tiny-gpt2", wait=True)
        first, second = c.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": MODEL}, hook_points=HOOKS,
            corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
            population_averaging=pb.PopulationAveragingParams(
                concepts=[{"concept": "cat"}, {"concept": "cake"}], n_samples=10, seed=0),
        ))  # fmt: skip
        yield c, first.id, second.id
        for name in (MODEL, "gd-other"):
            c.unregister_model(name)


def _inside(text: str, word: str, span: gp.TokenSpan) -> bool:
    """The span covers (part of) the one occurrence of `word` in `text`, nothing else."""
    start = text.index(word)
    return start <= span.char_start < span.char_end <= start + len(word)


def _state(c: Client) -> int:
    try:
        return int(c.get_model(MODEL).state)
    except ChunkscopeError:
        return -1


def _error(call: Any, *args: Any, **kwargs: Any) -> ChunkscopeError:
    with pytest.raises(ChunkscopeError) as err:
        call(*args, **kwargs)
    return err.value


def _rule(dictionary: str, label: str, action: int = gp.POLICY_ACTION_BLOCK, **kw: Any) -> Any:
    return gp.PolicyRule(dictionary_id=dictionary, label=label, action=action, **kw)


def _policy(name: str, *rules: gp.PolicyRule, **kw: Any) -> gp.Policy:
    return gp.Policy(name=name, model={"name": MODEL}, rules=list(rules), **kw)


def _cat_tokens(c: Client, dictionary: str, text: str) -> list[dp.TokenResult]:
    """The tokens where Detect says `cat` fires (what Check must agree with)."""
    request = dp.DetectRequest(
        config=dp.DetectionConfig(model={"name": MODEL}, dictionary_ids=[dictionary],
                                  labels=["cat"], positives_only=True),
        inputs=[dp.DetectInput(text=text)],
    )  # fmt: skip
    return list(c.detect(request).results[0].tokens)


def _metric(server: ServerProcess, series: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
        lines = r.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(series + " "))


def test_a_policy_blocks_the_concept_with_spans_and_allows_text_without_it(
    setup: tuple, server: ServerProcess
) -> None:
    c, first, second = setup
    stored = c.put_policy(_policy(
        "no-cats", _rule(first, "cat"), _rule(second, "cake", gp.POLICY_ACTION_ALLOW),
        description="cats are blocked, cakes recorded",
    ))  # fmt: skip
    assert stored.version == 1 and stored.author_key_id and stored.create_time.seconds > 0

    reply = c.check("no-cats", texts=[CAT])
    assert reply.verdict == gp.VERDICT_BLOCK and list(reply.fired_rules) == [0, 1]
    assert (reply.policy, reply.policy_version) == ("no-cats", 1)
    assert "rule 0" in reply.reason and "block" in reply.reason
    cat, cake = reply.scores
    assert (cat.rule_index, cat.label, cat.dictionary_id, cat.input_index) == (0, "cat", first, 0)
    assert cat.fired and cat.action == gp.POLICY_ACTION_BLOCK
    detected = _cat_tokens(c, first, CAT)  # the same detection path as Detect: the same tokens
    assert detected and cat.count == len(detected)
    assert cat.spans and all(_inside(CAT, "cat", s) for s in cat.spans)
    assert [p for s in cat.spans for p in range(s.token_start, s.token_end)] == [
        t.position for t in detected
    ]
    assert cake.fired and cake.action == gp.POLICY_ACTION_ALLOW  # record-only: reported
    assert cake.spans and all(_inside(CAT, "cake", s) for s in cake.spans)
    assert reply.n_tokens > 10 and reply.detect_ns > 0 and not reply.interventions

    clean = c.check("no-cats", texts=[CLEAN])
    assert clean.verdict == gp.VERDICT_ALLOW and not clean.fired_rules
    assert [s.fired for s in clean.scores] == [False, False] and not clean.scores[0].spans
    assert clean.reason == "no rule of policy no-cats fired"

    blocked = 'chunkscope_guard_verdicts_total{policy="no-cats",verdict="block"}'
    recorded = 'chunkscope_guard_rules_fired_total{action="allow",policy="no-cats"}'
    before = _metric(server, blocked), _metric(server, recorded)
    several = c.check("no-cats", texts=[CLEAN, CAT])  # one verdict for all; scores per input
    assert several.verdict == gp.VERDICT_BLOCK
    assert [(s.input_index, s.rule_index, s.fired) for s in several.scores] == [
        (0, 0, False), (0, 1, False), (1, 0, True), (1, 1, True)]  # fmt: skip
    assert (_metric(server, blocked), _metric(server, recorded)) == (before[0] + 1, before[1] + 1)


def test_versions_increment_and_each_stays_usable(setup: tuple) -> None:
    c, first, _ = setup
    v1 = c.put_policy(_policy("versions", _rule(first, "cat")), expected_version=0)
    v2 = c.put_policy(_policy("versions", _rule(first, "cat", min_tokens=1000)), expected_version=1)
    assert (v1.version, v2.version) == (1, 2)
    e = _error(c.put_policy, _policy("versions", _rule(first, "cat")), expected_version=1)
    assert e.code is grpc.StatusCode.FAILED_PRECONDITION and e.reason == "POLICY_VERSION_CONFLICT"
    assert e.metadata["latest_version"] == "2"
    e = _error(c.put_policy, _policy("versions", _rule(first, "cat")), expected_version=0)
    assert e.code is grpc.StatusCode.FAILED_PRECONDITION
    assert c.get_policy("versions").rules[0].min_tokens == 1000
    assert c.get_policy("versions", 1).rules[0].min_tokens == 0
    assert [p.version for p in c.list_policies(name="versions")] == [2, 1]
    latest = c.check("versions", texts=[CAT])  # 1000 tokens needed: not fired
    assert latest.verdict == gp.VERDICT_ALLOW and latest.policy_version == 2
    old = c.check("versions", texts=[CAT], policy_version=1)
    assert old.verdict == gp.VERDICT_BLOCK and old.policy_version == 1
    assert "versions" in [p.name for p in c.list_policies()]

    deleted = c.delete_policy("versions", expected_version=2)
    assert (deleted.name, deleted.version) == ("versions", 2)
    for call in (lambda: c.check("versions", texts=[CAT]), lambda: c.get_policy("versions", 1)):
        e = _error(call)
        assert e.code is grpc.StatusCode.NOT_FOUND and e.reason == "POLICY_NOT_FOUND"
    assert "versions" not in [p.name for p in c.list_policies()]
    assert c.put_policy(_policy("versions", _rule(first, "cat")), expected_version=0).version == 4


def test_score_threshold_tightens_what_counts(setup: tuple) -> None:
    c, first, _ = setup
    detected = _cat_tokens(c, first, CAT)
    best = min(m.score for t in detected for m in t.matches)  # PA: a distance, lower is closer
    c.put_policy(_policy("tight", _rule(first, "cat", score_threshold=best / 2)))
    reply = c.check("tight", texts=[CAT])
    assert reply.verdict == gp.VERDICT_ALLOW and reply.scores[0].count == 0
    assert reply.scores[0].best_score == pytest.approx(best, rel=1e-5)
    c.put_policy(_policy("tight", _rule(first, "cat", score_threshold=best)))
    assert c.check("tight", texts=[CAT]).scores[0].count >= 1


def test_intervene_hands_back_interventions_that_generate_accepts(setup: tuple) -> None:
    c, first, second = setup
    inhibit = pp.Intervention(chunk=pp.ChunkRef(dictionary_id=first, entry_id=0),
                              mode=pp.INTERVENTION_MODE_INHIBIT,
                              positions=pp.Positions(all_prompt=True, generated=True))  # fmt: skip
    c.put_policy(_policy(
        "steer", _rule(first, "cat", gp.POLICY_ACTION_INTERVENE, interventions=[inhibit]),
        _rule(second, "cake", gp.POLICY_ACTION_ALLOW),
    ))  # fmt: skip
    reply = c.check("steer", texts=[CAT])
    assert reply.verdict == gp.VERDICT_INTERVENE and list(reply.interventions) == [inhibit]
    assert c.check("steer", texts=[CLEAN]).verdict == gp.VERDICT_ALLOW
    steps = list(c.generate(pp.GenerateRequest(
        model={"name": MODEL}, prompt=dp.DetectInput(text=CAT),
        interventions=reply.interventions, sampling=pp.SamplingParams(max_new_tokens=2),
    )))  # fmt: skip
    assert steps[-1].done

    # A block anywhere wins over intervene; its interventions are not handed back.
    c.put_policy(_policy(
        "steer", _rule(first, "cat", gp.POLICY_ACTION_INTERVENE, interventions=[inhibit]),
        _rule(second, "cake"),
    ))  # fmt: skip
    blocked = c.check("steer", texts=[CAT])
    assert blocked.verdict == gp.VERDICT_BLOCK and not blocked.interventions


def test_messages_roles_and_input_types(setup: tuple) -> None:
    c, first, _ = setup
    c.put_policy(_policy("users", _rule(first, "cat"), roles=["user"]))
    skipped = c.check("users", messages=[("system", CAT), ("user", CLEAN)])
    assert skipped.verdict == gp.VERDICT_ALLOW
    assert [s.input_index for s in skipped.scores] == [1]  # the system message is not checked
    caught = c.check("users", messages=[("system", CLEAN), ("user", CAT)])
    assert caught.verdict == gp.VERDICT_BLOCK and caught.scores[-1].input_index == 1
    assert all(_inside(CAT, "cat", s) for s in caught.scores[-1].spans)
    assert "messages[1]" in caught.reason

    c.put_policy(_policy("answers", _rule(first, "cat", input_types=[gp.INPUT_TYPE_RESPONSE])))
    request = c.check("answers", texts=[CAT], input_type="request")
    assert request.verdict == gp.VERDICT_ALLOW and not request.scores
    assert "applies to requests" in request.reason
    assert c.check("answers", texts=[CAT], input_type="response").verdict == gp.VERDICT_BLOCK
    empty = c.check("answers", texts=["", "   "], input_type="response")
    assert empty.verdict == gp.VERDICT_ALLOW and "nothing to check" in empty.reason


def test_only_admins_change_policies_and_monitors_check(
    setup: tuple, server: ServerProcess, api_keys: dict[str, str]
) -> None:
    c, first, _ = setup
    c.put_policy(_policy("roles", _rule(first, "cat")))
    for role in ("monitor", "analyst"):
        with Client.connect(server.address, token=api_keys[role], timeout=60) as other:
            e = _error(other.put_policy, _policy("roles", _rule(first, "cake")))
            assert e.code is grpc.StatusCode.PERMISSION_DENIED and e.metadata["role"] == role
            e = _error(other.delete_policy, "roles")
            assert e.code is grpc.StatusCode.PERMISSION_DENIED
            assert other.check("roles", texts=[CAT]).verdict == gp.VERDICT_BLOCK
            assert other.get_policy("roles").rules[0].label == "cat"
    assert c.get_policy("roles").version == 1  # the refused calls changed nothing
    with Client.connect(server.address, token="", timeout=60) as anonymous:
        e = _error(anonymous.check, "roles", texts=[CAT])
        assert e.code is grpc.StatusCode.UNAUTHENTICATED

    lines = (server.data_dir / "audit.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    changes = [r for r in records if r["method"].startswith("chunkscope.v1.GuardService/")]
    put = [r for r in changes if r["request"].get("policy", {}).get("name") == "roles"]
    assert [(r["method"].rsplit("/")[-1], r["outcome"], r["role"]) for r in put] == [
        ("PutPolicy", "OK", "admin"), ("PutPolicy", "PERMISSION_DENIED", "monitor"),
        ("PutPolicy", "PERMISSION_DENIED", "analyst")]  # fmt: skip
    assert put[0]["detail"] == "policy roles version 1"
    assert not any(r["method"].endswith("/Check") for r in records)  # checks are not changes


def test_unknown_and_invalid_requests_are_refused_by_field(setup: tuple) -> None:
    c, first, _ = setup
    e = _error(c.check, "no-such-policy", texts=[CAT])
    assert e.code is grpc.StatusCode.NOT_FOUND and e.reason == "POLICY_NOT_FOUND"
    c.put_policy(_policy("known", _rule(first, "cat")))
    e = _error(c.check, "known", texts=[CAT], policy_version=7)
    assert e.code is grpc.StatusCode.NOT_FOUND and e.metadata["version"] == "7"
    e = _error(c.put_policy, _policy("p", _rule("dict-000000000000", "cat")))
    assert e.code is grpc.StatusCode.NOT_FOUND and e.reason == "DICTIONARY_NOT_FOUND"
    other = gp.Policy(name="p", model={"name": "gd-other"}, rules=[_rule(first, "cat")])
    e = _error(c.put_policy, other)
    assert e.code is grpc.StatusCode.FAILED_PRECONDITION and e.reason == "DICTIONARY_MISMATCH"

    def field_of(call: Any, *args: Any, **kwargs: Any) -> str:
        err = _error(call, *args, **kwargs)
        assert err.code is grpc.StatusCode.INVALID_ARGUMENT, err
        return err.field_violations[0][0]

    cases = {
        "policy.name": _policy("Bad Name", _rule(first, "cat")),
        "policy.rules": _policy("p"),
        "policy.model.name": gp.Policy(name="p", rules=[_rule(first, "cat")]),
        "policy.rules[0].label": _policy("p", _rule(first, "zebra")),
        "policy.rules[0].action": _policy("p", _rule(first, "cat", 0)),
        "policy.rules[0].dictionary_id": _policy("p", _rule("not-an-id", "cat")),
        "policy.rules[0].min_tokens": _policy("p", _rule(first, "cat", min_tokens=-1)),
        "policy.rules[0].score_threshold": _policy(
            "p", _rule(first, "cat", score_threshold=float("nan"))),
        "policy.rules[0].interventions": _policy(
            "p", _rule(first, "cat", gp.POLICY_ACTION_INTERVENE)),
        "policy.rules[0].interventions[0].positions": _policy("p", _rule(
            first, "cat", gp.POLICY_ACTION_INTERVENE, interventions=[pp.Intervention(
                chunk=pp.ChunkRef(dictionary_id=first), mode=pp.INTERVENTION_MODE_INHIBIT)])),
        "policy.rules[0].interventions[0].chunk.entry_id": _policy("p", _rule(
            first, "cat", gp.POLICY_ACTION_INTERVENE, interventions=[pp.Intervention(
                chunk=pp.ChunkRef(dictionary_id=first, entry_id=9),
                mode=pp.INTERVENTION_MODE_INHIBIT, positions=pp.Positions(generated=True))])),
    }  # fmt: skip
    for field, policy in cases.items():
        assert field_of(c.put_policy, policy) == field, field
    assert field_of(c.check, "known", texts=[CAT], policy_version=-1) == "policy_version"
    assert field_of(c.check, "known") == "texts"
    assert field_of(c.check, "known", texts=[CAT], messages=[("user", CAT)]) == "texts"
    assert field_of(c.check, "known", messages=[("", CAT)]) == "messages[0].role"
    assert field_of(c.check, "") == "policy"
    unspecified = gp.CheckRequest(policy="known", texts=[CAT])
    with pytest.raises(grpc.RpcError) as raw:  # the stub itself: the wrapper always sets it
        c.guard.Check(unspecified, timeout=60)
    assert ChunkscopeError.from_rpc_error(raw.value).field_violations[0][0] == "input_type"
    assert field_of(c.get_policy, "known", -1) == "version"
    e = _error(c.check, "known", texts=["x"] * 300)  # over --max-inputs-per-request (256)
    assert e.code is grpc.StatusCode.RESOURCE_EXHAUSTED and e.reason == "TOO_MANY_INPUTS"
    assert [p.name for p in c.list_policies(name="known")] == ["known"]
    # Output-only fields are ignored, even an out-of-range time (once INTERNAL: the audit record
    # could not print the request).
    odd = _policy("odd-time", _rule(first, "cat"))
    odd.create_time.nanos = 2**31 - 1
    assert c.put_policy(odd).create_time.nanos < 10**9
    assert c.health() == "SERVING"


def test_an_expired_deadline_is_an_error_not_a_verdict(
    setup: tuple, model_root: Path, tmp_path: Path
) -> None:
    """A server that waits 1 s for company before a lone forward: a Check with a 0.2 s deadline
    expires while queued, and the caller gets DEADLINE_EXCEEDED, never a verdict."""
    c, first, _ = setup
    archive = c.export_dictionary(first)
    slow = start_server(tmp_path / "data", model_root, "--max-batch-delay-ms", "1000")
    with Client.connect(slow.address, timeout=120) as s:
        s.register_model(MODEL, "tiny-llama", wait=True)
        s.import_dictionary(archive)
        s.put_policy(_policy("deadline", _rule(first, "cat")))
        e = _error(s.check, "deadline", texts=[CAT], timeout=0.2)
        assert e.code is grpc.StatusCode.DEADLINE_EXCEEDED
        assert s.check("deadline", texts=[CAT], timeout=60).verdict == gp.VERDICT_BLOCK
    slow.terminate()


def test_policies_put_on_one_replica_serve_checks_on_another(
    setup: tuple, postgres: Any, model_root: Path, tmp_path: Path
) -> None:
    c, first, _ = setup
    archive = c.export_dictionary(first)
    store = str(postgres.create_database("guard_replicas"))
    a = start_server(tmp_path / "a", model_root, "--store", store)
    b = start_server(tmp_path / "b", model_root, "--store", store)
    with Client.connect(a.address, timeout=120) as ca, Client.connect(b.address, timeout=120) as cb:
        ca.register_model(MODEL, "tiny-llama", wait=True)
        ca.import_dictionary(archive)
        ca.put_policy(_policy("shared", _rule(first, "cat")))
        assert cb.get_policy("shared").version == 1
        deadline = time.monotonic() + 120  # b loads the model a registered (NOTIFY)
        while _state(cb) != mp.MODEL_STATE_READY:
            assert time.monotonic() < deadline, "replica b never loaded the model"
            time.sleep(0.2)
        assert cb.check("shared", texts=[CAT]).verdict == gp.VERDICT_BLOCK
        cb.put_policy(_policy("shared", _rule(first, "cat", min_tokens=1000)), expected_version=1)
        assert ca.check("shared", texts=[CAT]).verdict == gp.VERDICT_ALLOW  # b's version 2
        e = _error(ca.put_policy, _policy("shared", _rule(first, "cat")), expected_version=1)
        assert e.code is grpc.StatusCode.FAILED_PRECONDITION
    a.terminate()
    b.terminate()
