"""The guardrail shapes of the HTTP front over Check, called as a gateway calls them: LiteLLM's
Generic Guardrail API (the request LiteLLM's `generic_guardrail_api` guardrail posts), an
OpenAI-style moderation endpoint, and a chat completion that names a policy
(`chunkscope.policy`); verdicts agree with gRPC Check on the same texts."""

from __future__ import annotations

import json
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from chunkscope_client import Client
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import guard_pb2 as gp
from support import start_server

TRAIN = [f"On day {i} the cat slept near the window while the cake cooled." for i in range(14)]
CAT = TRAIN[3]
CLEAN = "A quiet morning without animals."
LITELLM = "/beta/litellm_basic_guardrail_api"
TEMPLATE = (  # the tiny model has no chat template; an instruction-tuned model ships one
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def guarded(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A server with the HTTP front, a PA dictionary (cat, cake) and the policy no-cats: cat
    blocks, cake is recorded."""
    work = tmp_path_factory.mktemp("guard-http")
    shutil.copytree(model_root / "tiny-llama", work / "models" / "tiny-chat")
    (work / "models" / "tiny-chat" / "chat_template.jinja").write_text(TEMPLATE)
    server = start_server(work / "data", work / "models", "--http-port", str(free_port()))
    with Client.connect(server.address, timeout=120) as c:
        c.register_model("gh-lm", "tiny-chat", wait=True)
        [pa] = c.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": "gh-lm"}, hook_points=["blocks.1.resid_post"],
            corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
            population_averaging=pb.PopulationAveragingParams(
                concepts=[{"concept": "cat"}, {"concept": "cake"}], n_samples=10, seed=0),
        ))  # fmt: skip
        c.put_policy(gp.Policy(name="no-cats", model={"name": "gh-lm"}, rules=[
            gp.PolicyRule(dictionary_id=pa.id, label="cat", action=gp.POLICY_ACTION_BLOCK),
            gp.PolicyRule(dictionary_id=pa.id, label="cake", action=gp.POLICY_ACTION_ALLOW),
        ]))  # fmt: skip
        yield {"grpc": c, "url": f"http://127.0.0.1:{server.http_port}"}
    server.terminate()


def post(guarded: dict[str, Any], path: str, body: Any, key: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        guarded["url"] + path, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def litellm_body(texts: list[str], **params: Any) -> dict[str, Any]:
    """What LiteLLM's generic_guardrail_api posts (GenericGuardrailAPIRequest's fields)."""
    return {
        "input_type": "request",
        "litellm_call_id": "call-1",
        "litellm_trace_id": "trace-1",
        "structured_messages": None,
        "images": None,
        "tools": None,
        "texts": texts,
        "request_data": {"user_api_key_alias": "team-a"},
        "additional_provider_specific_params": {"policy": "no-cats", **params},
    }


def test_litellm_blocks_the_concept_and_lets_other_texts_through(
    guarded: dict[str, Any], api_keys: dict[str, str]
) -> None:
    monitor = api_keys["monitor"]  # Check's role is enough
    status, blocked = post(guarded, LITELLM, litellm_body([CAT]), monitor)
    assert status == 200 and blocked["action"] == "BLOCKED", blocked
    assert "no-cats v1" in blocked["blocked_reason"]
    truth = guarded["grpc"].check("no-cats", texts=[CAT])
    assert blocked["chunkscope"]["verdict"] == gp.Verdict.Name(truth.verdict).removeprefix(
        "VERDICT_"
    )
    [cat] = [s for s in blocked["chunkscope"]["scores"] if s["label"] == "cat"]
    start = CAT.index("cat")
    assert cat["fired"] and all(start <= a < b <= start + 3 for a, b in cat["spans"])

    status, passed = post(guarded, LITELLM, litellm_body([CLEAN]), monitor)
    assert status == 200 and passed["action"] == "NONE" and "blocked_reason" not in passed
    assert passed["chunkscope"]["verdict"] == "ALLOW"

    messages = {**litellm_body([]), "input_type": "response", "structured_messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": [{"type": "text", "text": CAT}]},
    ]}  # fmt: skip
    status, answer = post(guarded, LITELLM, messages, monitor)
    assert status == 200 and answer["action"] == "BLOCKED"
    assert {s["input_index"] for s in answer["chunkscope"]["scores"] if s["fired"]} == {1}


def test_litellm_refusals_are_http_errors_that_name_the_field(
    guarded: dict[str, Any], api_keys: dict[str, str]
) -> None:
    key = api_keys["monitor"]
    no_policy = {**litellm_body([CAT]), "additional_provider_specific_params": {}}
    status, error = post(guarded, LITELLM, no_policy, key)
    assert status == 400 and error["error"]["param"] == "additional_provider_specific_params.policy"
    status, error = post(guarded, LITELLM, {**litellm_body([CAT]), "input_type": "both"}, key)
    assert status == 400 and error["error"]["param"] == "input_type"
    status, error = post(guarded, LITELLM, litellm_body([CAT], policy="no-dogs"), key)
    assert status == 400 and "no-dogs" in error["error"]["message"]  # never a verdict
    status, error = post(guarded, LITELLM, litellm_body([CAT]), "not-a-key")
    assert status == 401 and "action" not in error


def test_moderation_flags_per_input(guarded: dict[str, Any], api_keys: dict[str, str]) -> None:
    body = {"model": "no-cats", "input": [CAT, CLEAN]}
    status, reply = post(guarded, "/v1/moderations", body, api_keys["monitor"])
    assert status == 200 and reply["model"] == "no-cats@1" and reply["id"].startswith("modr-")
    first, second = reply["results"]
    assert first["flagged"] and first["categories"]["cat"] and first["category_scores"]["cat"] == 1
    assert not second["flagged"] and second["categories"] == {"cat": False, "cake": False}
    assert second["category_scores"] == {"cat": 0.0, "cake": 0.0}
    truth = guarded["grpc"].check("no-cats", texts=[CAT, CLEAN])
    fired = {(s.input_index, s.label) for s in truth.scores if s.fired}
    assert fired == {(i, k) for i, r in enumerate(reply["results"])
                     for k, v in r["categories"].items() if v}  # fmt: skip
    status, single = post(guarded, "/v1/moderations", {"model": "no-cats@1", "input": CLEAN},
                          api_keys["monitor"])  # fmt: skip
    assert status == 200 and [r["flagged"] for r in single["results"]] == [False]
    status, error = post(guarded, "/v1/moderations", {"model": "no-cats@one", "input": CAT},
                         api_keys["monitor"])  # fmt: skip
    assert status == 400 and error["error"]["param"] == "model"


def test_a_chat_completion_naming_a_policy_is_refused_before_generation(
    guarded: dict[str, Any], api_keys: dict[str, str]
) -> None:
    sdk = openai.OpenAI(base_url=guarded["url"] + "/v1", api_key=api_keys["analyst"],
                        max_retries=0, timeout=120)  # fmt: skip
    ask = {"model": "gh-lm", "max_tokens": 5, "temperature": 0}
    cat = [{"role": "user", "content": CAT}]
    refused = sdk.chat.completions.create(
        messages=cat, extra_body={"chunkscope": {"policy": "no-cats"}}, **ask
    )
    assert refused.choices[0].finish_reason == "content_filter"
    assert refused.choices[0].message.content == "" and refused.usage is None
    guard = refused.model_extra["chunkscope"]["guard"]
    assert (guard["verdict"], guard["policy"], guard["policy_version"]) == ("BLOCK", "no-cats", 1)
    assert guard["fired_rules"] == [0, 1] and "cat" in guard["reason"]  # cake: recorded

    chunks = list(sdk.chat.completions.create(
        messages=cat, stream=True, extra_body={"chunkscope": {"policy": "no-cats"}}, **ask
    ))  # fmt: skip
    assert [c.choices[0].finish_reason for c in chunks if c.choices] == ["content_filter"]
    assert chunks[-1].model_extra["chunkscope"]["guard"]["verdict"] == "BLOCK"

    clean = [{"role": "user", "content": CLEAN}]
    allowed = sdk.chat.completions.create(
        messages=clean, extra_body={"chunkscope": {"policy": "no-cats"}}, **ask
    )
    plain = sdk.chat.completions.create(messages=clean, **ask)
    assert allowed.choices[0].message.content == plain.choices[0].message.content
    assert allowed.choices[0].finish_reason == "length"
    assert allowed.model_extra["chunkscope"]["guard"]["verdict"] == "ALLOW"
    assert "guard" not in plain.model_extra["chunkscope"]

    with pytest.raises(openai.BadRequestError) as unknown:
        sdk.chat.completions.create(
            messages=clean, extra_body={"chunkscope": {"policy": "no-dogs"}}, **ask
        )
    assert "no-dogs" in str(unknown.value)
