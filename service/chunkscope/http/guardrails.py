"""Guardrail shapes over Check: LiteLLM's Generic Guardrail API and OpenAI's moderation endpoint.

Pure translation, both ways: a JSON body becomes a `CheckRequest` (every field checked here, so a
refusal names the body's own field), and a `CheckResponse` becomes the reply the gateway expects.
The verdict itself is Check's (api/guard.py); an error is an HTTP error, never a verdict, so a
gateway that fails closed on errors (LiteLLM's default) refuses when chunkscope cannot answer.

- LiteLLM (`POST /beta/litellm_basic_guardrail_api`, the path LiteLLM appends to `api_base`):
  `texts` or `structured_messages`, `input_type` "request" or "response", and the policy in
  `additional_provider_specific_params.policy` (optionally `policy_version`). BLOCK answers
  `action: "BLOCKED"` with `blocked_reason`; ALLOW answers `"NONE"`; INTERVENE also answers
  `"NONE"`, since the gateway cannot steer a model it does not run (the interventions are in the
  reply's `chunkscope` object for a caller that can). chunkscope never rewrites texts, so it never
  answers `"GUARDRAIL_INTERVENED"`.
- Moderation (`POST /v1/moderations`): `input` (a string or a list of strings) and `model`, the
  policy's name (`name@version` for a fixed version). One result per input: `flagged` when a BLOCK
  or INTERVENE rule fired on it; `categories[label]` whether that concept's rule fired;
  `category_scores[label]` the share of the rule's `min_tokens` that matched, at most 1.
"""

from __future__ import annotations

import uuid
from typing import Any

from chunkscope.chat_content import content_text
from chunkscope.errors import FieldViolation, InvalidArgument
from chunkscope_client.v1 import guard_pb2 as pb

LITELLM_ROUTE = "/beta/litellm_basic_guardrail_api"
MODERATION_ROUTE = "/v1/moderations"
_PARAMS = "additional_provider_specific_params"
_INPUT_TYPES = {"request": pb.INPUT_TYPE_REQUEST, "response": pb.INPUT_TYPE_RESPONSE}
_STEERED = (pb.POLICY_ACTION_BLOCK, pb.POLICY_ACTION_INTERVENE)


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument.field(field, "must be a list of strings")
    return value


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidArgument.field("body", "must be a JSON object")
    return body


def parse_litellm(body: Any) -> pb.CheckRequest:
    """LiteLLM's GenericGuardrailAPIRequest as a CheckRequest."""
    body = _object(body)
    violations: list[FieldViolation] = []
    input_type = _INPUT_TYPES.get(str(body.get("input_type")))
    if input_type is None:
        violations.append(FieldViolation("input_type", 'must be "request" or "response"'))
    params = body.get(_PARAMS) or {}
    if not isinstance(params, dict):
        raise InvalidArgument.field(_PARAMS, "must be an object")
    policy = params.get("policy")
    if not isinstance(policy, str) or not policy:
        violations.append(FieldViolation(
            f"{_PARAMS}.policy",
            "required: the name of a chunkscope policy (LiteLLM config: litellm_params."
            "additional_provider_specific_params.policy)",
        ))  # fmt: skip
    version = params.get("policy_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        violations.append(FieldViolation(f"{_PARAMS}.policy_version", "must be an integer >= 0"))
    if violations:
        raise InvalidArgument(violations)
    assert isinstance(policy, str) and input_type is not None
    request = pb.CheckRequest(policy=policy, policy_version=version, input_type=input_type)
    messages = body.get("structured_messages")
    if messages:
        if not isinstance(messages, list):
            raise InvalidArgument.field("structured_messages", "must be a list of messages")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise InvalidArgument.field(
                    f"structured_messages[{i}]", "must be an object with a role"
                )
            content = content_text(m.get("content"), f"structured_messages[{i}].content")
            request.messages.add(role=m["role"], content=content)
    else:
        texts = _strings(body.get("texts") or [], "texts")
        if not texts:
            raise InvalidArgument.field("texts", "required: the texts to check")
        request.texts.extend(texts)
    return request


def _annotation(reply: pb.CheckResponse) -> dict[str, Any]:
    return {
        "verdict": pb.Verdict.Name(reply.verdict).removeprefix("VERDICT_"),
        "policy": reply.policy,
        "policy_version": reply.policy_version,
        "reason": reply.reason,
        "fired_rules": list(reply.fired_rules),
        "scores": [
            {
                "label": s.label,
                "input_index": s.input_index,
                "count": s.count,
                "fired": s.fired,
                "spans": [[sp.char_start, sp.char_end] for sp in s.spans],
            }
            for s in reply.scores
        ],
    }


def litellm_reply(reply: pb.CheckResponse) -> dict[str, Any]:
    """A CheckResponse in LiteLLM's GenericGuardrailAPIResponse shape (plus `chunkscope`)."""
    annotation = _annotation(reply)
    if reply.verdict == pb.VERDICT_BLOCK:
        reason = f"{reply.reason} (chunkscope policy {reply.policy} v{reply.policy_version})"
        return {"action": "BLOCKED", "blocked_reason": reason, "chunkscope": annotation}
    if reply.verdict == pb.VERDICT_INTERVENE:
        annotation["interventions"] = len(reply.interventions)
    return {"action": "NONE", "chunkscope": annotation}


def parse_moderation(body: Any) -> tuple[pb.CheckRequest, int]:
    """An OpenAI moderation request as a CheckRequest (of prompts), and its number of inputs."""
    body = _object(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidArgument.field(
            "model", "required: the chunkscope policy to apply ('name' or 'name@version')"
        )
    name, _, version = model.partition("@")
    if version and not version.isdigit():
        raise InvalidArgument.field("model", f"{version!r} after '@' is not a policy version")
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else _strings(raw, "input")
    if not texts:
        raise InvalidArgument.field("input", "required: a string or a list of strings")
    request = pb.CheckRequest(
        policy=name, policy_version=int(version or 0), input_type=pb.INPUT_TYPE_REQUEST
    )
    request.texts.extend(texts)
    return request, len(texts)


def moderation_reply(reply: pb.CheckResponse, policy: pb.Policy, n: int) -> dict[str, Any]:
    """One OpenAI moderation result per input."""
    results = []
    for i in range(n):
        categories: dict[str, bool] = {}
        scores: dict[str, float] = {}
        flagged = False
        for s in reply.scores:
            if s.input_index != i:
                continue
            need = max(1, policy.rules[s.rule_index].min_tokens)
            categories[s.label] = categories.get(s.label, False) or s.fired
            scores[s.label] = max(scores.get(s.label, 0.0), min(1.0, s.count / need))
            flagged = flagged or (s.fired and s.action in _STEERED)
        results.append({"flagged": flagged, "categories": categories, "category_scores": scores})
    return {
        "id": f"modr-{uuid.uuid4().hex[:24]}",
        "model": f"{reply.policy}@{reply.policy_version}",
        "results": results,
        "chunkscope": _annotation(reply),
    }
