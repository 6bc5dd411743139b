"""OpenAI's chat-completion shapes: request body to a GenerateRequest, events to replies, errors.

The body's OpenAI fields map onto GenerateRequest's model, prompt and sampling; chunkscope's own
options ride in a `chunkscope` object (the OpenAI SDK's `extra_body`) whose fields are
GenerateRequest's own (`interventions`, `presets`, `detect_dictionary_ids`, `rules`), parsed by
protobuf's
JSON mapping into the proto and validated by the same code as gRPC Generate, so an error names the
field as `chunkscope.interventions[0].mode`. Every refusal is a ChunkscopeError; `error_reply`
turns it into OpenAI's `{"error": {message, type, param, code}}` with its HTTP status.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format

from chunkscope.chat_content import content_text
from chunkscope.engine.detection import Detector
from chunkscope.errors import (
    ChunkscopeError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from chunkscope_client.v1 import perturbation_pb2 as pb

EXTENSION = "chunkscope"
# GenerateRequest fields a chat body may set under "chunkscope" (JSON or proto spelling).
EXTENSION_FIELDS = {
    "interventions": "interventions",
    "presets": "presets",
    "detect_dictionary_ids": "detect_dictionary_ids",
    "detectDictionaryIds": "detect_dictionary_ids",
    "rules": "rules",
}
MAX_STOPS, MAX_STOP_CHARS = 4, 256
# OpenAI fields accepted and ignored: they change nothing a model computes here.
IGNORED = frozenset(
    {"user", "metadata", "store", "service_tier", "parallel_tool_calls", "prompt_cache_key",
     "safety_identifier", "stream_options"}
)  # fmt: skip
# OpenAI fields refused unless they have their neutral value (name -> neutral values).
UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "logprobs": (False,),
    "top_logprobs": (0,),
    "frequency_penalty": (0, 0.0),
    "presence_penalty": (0, 0.0),
    "logit_bias": ({},),
    "tools": ([],),
    "tool_choice": ("none",),
    "functions": ([],),
    "function_call": ("none",),
    "response_format": ({"type": "text"},),
    "modalities": (["text"],),
    "audio": (),
    "prediction": (),
    "reasoning_effort": (),
    "web_search_options": (),
    "verbosity": (),
}
KNOWN = frozenset(
    {"model", "messages", "stream", "max_tokens", "max_completion_tokens", "temperature",
     "top_p", "top_k", "seed", "stop", EXTENSION}
) | IGNORED | set(UNSUPPORTED)  # fmt: skip


@dataclass
class ChatRequest:
    """A chat-completion body, checked: what the front needs beyond the GenerateRequest."""

    model: str
    messages: list[dict[str, str]]
    stream: bool
    include_usage: bool
    stops: list[str]
    generate: pb.GenerateRequest  # model, sampling and chunkscope's fields; the prompt comes later
    max_tokens_field: str = "max_tokens"
    policy: str = ""  # chunkscope.policy: a guard policy the prompt is checked against first
    guard: dict[str, Any] | None = None  # that check's outcome, for the reply's annotation


def _bad(param: str, description: str) -> InvalidArgument:
    return InvalidArgument.field(param, description)


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(name, f"must be a number in {low}..{high}")
    if not low <= value <= high:
        raise _bad(name, f"{value} is outside {low}..{high}")
    return float(value)


def _integer(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(name, f"must be an integer in {low}..{high}")
    if not low <= value <= high:
        raise _bad(name, f"{value} is outside {low}..{high}")
    return int(value)


def _messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise _bad("messages", 'required: a non-empty list of {"role", "content"} objects')
    out = []
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _bad(where, 'must be an object {"role", "content"}')
        role = message.get("role")
        if role == "developer":  # OpenAI's newer name for the system role
            role = "system"
        if role not in ("system", "user", "assistant"):
            raise _bad(f"{where}.role", f"{role!r}: use system, developer, user or assistant")
        if message.get("tool_calls") or message.get("function_call"):
            raise _bad(f"{where}.tool_calls", "tool calls are not supported")
        content = content_text(message.get("content"), f"{where}.content", text_only=True)
        out.append({"role": role, "content": content})
    return out


def _stops(raw: Any) -> list[str]:
    if raw is None:
        return []
    stops = [raw] if isinstance(raw, str) else raw
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise _bad("stop", "must be a non-empty string or a list of them")
    if len(stops) > MAX_STOPS or any(len(s) > MAX_STOP_CHARS for s in stops):
        raise _bad("stop", f"at most {MAX_STOPS} sequences of {MAX_STOP_CHARS} characters")
    return list(stops)


def _modes(interventions: Any) -> Any:
    """Short mode names ("activate", "INHIBIT") as their enum names; the rest as given."""
    if not isinstance(interventions, list):
        return interventions
    out = []
    for item in interventions:
        if isinstance(item, dict) and isinstance(item.get("mode"), str):
            mode = item["mode"].upper()
            if not mode.startswith("INTERVENTION_MODE_"):
                mode = "INTERVENTION_MODE_" + mode
            item = {**item, "mode": mode}
        out.append(item)
    return out


_PARSE_AT = re.compile(r" at GenerateRequest\.((?:[\w\[\]]+\.?)*?)\.*$")
_PARSE_FIELD = re.compile(r"Failed to parse (\w+) field: ")


def _extension(raw: Any) -> tuple[pb.GenerateRequest, str]:
    """The `chunkscope` object: GenerateRequest's fields, and the guard policy's name."""
    request = pb.GenerateRequest()
    if raw is None:
        return request, ""
    if not isinstance(raw, dict):
        raise _bad(
            EXTENSION, "must be an object with interventions, presets, detect_dictionary_ids, rules"
        )
    raw = dict(raw)
    policy = raw.pop("policy", "")
    if not isinstance(policy, str):
        raise _bad(f"{EXTENSION}.policy", "must be the name of a guard policy")
    unknown = sorted(set(raw) - set(EXTENSION_FIELDS))
    if unknown:
        raise _bad(
            f"{EXTENSION}.{unknown[0]}",
            "unknown field; chunkscope accepts "
            + ", ".join(sorted({*EXTENSION_FIELDS.values(), "policy"})),
        )
    data = {EXTENSION_FIELDS[k]: v for k, v in raw.items()}
    if "interventions" in data:
        data["interventions"] = _modes(data["interventions"])
    try:
        json_format.ParseDict(data, request)
    except json_format.ParseError as exc:
        text = str(exc)
        found = _PARSE_AT.search(text)
        path = (found.group(1).rstrip(".") if found else "") or ".".join(_PARSE_FIELD.findall(text))
        where = f"{EXTENSION}.{path}" if path else EXTENSION
        detail = _PARSE_AT.sub("", re.sub(r"^(Failed to parse \w+ field: )+", "", text))
        detail = detail.rstrip(".") or "not valid"
        if ".mode" in where:
            detail += "; modes: ACTIVATE, INHIBIT, ADD, PROJECT_OUT"
        raise _bad(where, detail) from None
    return request, policy


def parse_chat(body: Any) -> ChatRequest:
    """Check a chat-completion body; every fault names its field."""
    if not isinstance(body, dict):
        raise _bad("body", "must be a JSON object")
    unknown = sorted(set(body) - KNOWN)
    if unknown:
        raise _bad(
            unknown[0],
            "not a chat-completion field this server knows; chunkscope's own options go in the "
            f"'{EXTENSION}' object (the OpenAI SDK's extra_body)",
        )
    for name, neutral in UNSUPPORTED.items():
        if name in body and body[name] is not None and body[name] not in neutral:
            raise _bad(name, "not supported by chunkscope; leave it out")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "required: a registered model's name (GET /v1/models lists them)")
    messages = _messages(body.get("messages"))
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _bad("stream", "must be true or false")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise _bad("stream_options", "must be an object")
    include_usage = bool(options.get("include_usage", False))
    field_name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    max_tokens = _integer(body, field_name, 1, 1 << 30)
    temperature = _number(body, "temperature", 0, 2)
    top_p = _number(body, "top_p", 0, 1)
    top_k = _integer(body, "top_k", 0, 1 << 30)
    seed = _integer(body, "seed", -(1 << 63), (1 << 63) - 1)
    generate, policy = _extension(body.get(EXTENSION))
    generate.model.name = model
    generate.sampling.CopyFrom(
        pb.SamplingParams(
            max_new_tokens=max_tokens or 0,
            temperature=1.0 if temperature is None else temperature,  # OpenAI's default
            top_p=top_p or 0.0,
            top_k=top_k or 0,
            # No seed: a fresh one, so repeated calls sample afresh as OpenAI's do.
            seed=secrets.randbits(62) if seed is None else seed,
            stop_at_eos=True,
        )
    )
    return ChatRequest(
        model,
        messages,
        stream,
        include_usage,
        _stops(body.get("stop")),
        generate,
        field_name,
        policy,
    )


# ----- the annotation object ---------------------------------------------------------------------


@dataclass
class Annotation:
    """What chunkscope adds to a reply: detections per concept, interventions, rules fired."""

    concepts: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    rules: list[dict[str, Any]] = field(default_factory=list)
    applied: dict[str, int] = field(default_factory=dict)
    presets: list[dict[str, Any]] = field(default_factory=list)  # name, version, interventions

    def step(
        self, step: int, matches: list[tuple[Detector, int, float]], events: list[tuple[int, str]]
    ) -> dict[str, Any]:
        """Record one generated token's detections and rule events; the stream's annotation."""
        detections = []
        for detector, entry, score in matches:
            label = str(detector.labels[entry])
            concept = self.concepts.setdefault(
                (detector.id, entry),
                {"dictionary_id": detector.id, "entry_id": entry, "label": label, "tokens": 0,
                 "steps": [], "max_score": score},
            )  # fmt: skip
            concept["tokens"] += 1
            concept["steps"].append(step)
            concept["max_score"] = max(concept["max_score"], score)
            detections.append(
                {"dictionary_id": detector.id, "entry_id": entry, "label": label, "score": score}
            )
        fired = [{"rule_index": i, "step": step, "action": a} for i, a in events]
        self.rules += fired
        return {"step": step, "detections": detections, "rules_fired": fired}

    def summary(self) -> dict[str, Any]:
        return {
            "detections": [self.concepts[k] for k in sorted(self.concepts)],
            "interventions_applied": dict(self.applied),
            "presets": list(self.presets),
            "rules_fired": list(self.rules),
        }

    @property
    def stopped_by_rule(self) -> bool:
        return any(r["action"] == "stop" for r in self.rules)


# ----- errors ------------------------------------------------------------------------------------

_CLIENT_LIMITS = frozenset({"INPUT_TOO_LONG", "TOO_MANY_NEW_TOKENS", "TOO_LARGE"})


def _param(field_path: str, max_tokens_field: str) -> str:
    """A GenerateRequest field path as the chat body spells it."""
    if field_path == "prompt" or field_path.startswith("prompt."):
        return "messages"
    if field_path.startswith("model."):
        return "model"
    if field_path == "sampling.max_new_tokens":
        return max_tokens_field
    if field_path.startswith("sampling."):
        return field_path.removeprefix("sampling.")
    if field_path.startswith(("interventions", "presets", "rules", "detect_dictionary_ids")):
        return f"{EXTENSION}.{field_path}"
    return field_path


def error_reply(exc: ChunkscopeError, max_tokens_field: str = "max_tokens") -> tuple[int, dict]:
    """(HTTP status, OpenAI error body) for a refusal."""
    param: str | None = None
    message = exc.message
    if isinstance(exc, InvalidArgument):
        violations = [
            FieldViolation(_param(v.field, max_tokens_field), v.description) for v in exc.violations
        ]
        param = violations[0].field
        message = "; ".join(f"{v.field}: {v.description}" for v in violations)
        status, kind = 400, "invalid_request_error"
    elif isinstance(exc, Unauthenticated):
        status, kind = 401, "authentication_error"
    elif isinstance(exc, PermissionDenied):
        status, kind = 403, "permission_error"
    elif isinstance(exc, NotFound):
        if exc.reason == "MODEL_NOT_FOUND":
            status, kind, param = 404, "not_found_error", "model"
        else:  # a dictionary or preset the body names: the request is wrong
            status, kind = 400, "invalid_request_error"
            if exc.metadata.get("field"):
                param = _param(exc.metadata["field"], max_tokens_field)
    elif isinstance(exc, ResourceExhausted) and exc.reason == "REQUEST_TOO_LARGE":
        status, kind = 413, "invalid_request_error"
    elif isinstance(exc, ResourceExhausted):
        if exc.reason in _CLIENT_LIMITS:
            status, kind = 400, "invalid_request_error"
            if exc.reason == "TOO_MANY_NEW_TOKENS":
                param = max_tokens_field
            elif exc.reason == "INPUT_TOO_LONG":
                param = "messages"
            message = message.replace("sampling.max_new_tokens", max_tokens_field)
        else:
            status, kind = 429, "rate_limit_error"
    elif isinstance(exc, Unavailable) or exc.reason == "MODEL_NOT_READY":
        status, kind = 503, "service_unavailable_error"
    elif isinstance(exc, FailedPrecondition):
        status, kind = 400, "invalid_request_error"
    else:
        status, kind = 500, "server_error"
    code = exc.reason.lower() if exc.reason else None
    return status, {"error": {"message": message, "type": kind, "param": param, "code": code}}
