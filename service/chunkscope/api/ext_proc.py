"""Envoy external processing: `envoy.service.ext_proc.v3.ExternalProcessor` over guard policies.

Envoy's ext_proc filter opens one bidirectional stream per HTTP exchange and sends what the
filter's processing mode asks for, in order: request headers, the request body, response headers,
response body chunks, trailers. Each message gets exactly one answer, in order. This processor:
- answers headers and trailers with CONTINUE (it notes the response's content type);
- checks the request body when it is complete (`end_of_stream`; Envoy's BUFFERED mode sends it in
  one message): an OpenAI-style chat JSON is checked as its `messages` (each content on its own,
  with its role, so a policy's roles apply), a JSON with a string `prompt` as that text, and any
  other body (other JSON, not JSON, not UTF-8: decoded with replacement characters) as one text;
- checks a streamed response as it grows: server-sent events (`data: {...}` chat completion
  chunks) are parsed as they arrive, each choice's delta contents accumulate, and every chunk that
  adds text is checked with all the text so far (one input per choice); any other response body
  (a non-streamed chat completion JSON, plain text) is checked once, at `end_of_stream`.
Every check is GuardServicer.check, the Check RPC's own path. A BLOCK verdict in block mode is an
`immediate_response` (HTTP 403, a JSON body with the reason and the policy version, header
`x-chunkscope-verdict: block`) and the stream ends; otherwise the message gets CONTINUE, and the
request body's answer adds `x-chunkscope-verdict` to the request headers (BUFFERED mode applies
it). In observe mode nothing is blocked: the verdict is counted
(chunkscope_ext_proc_verdicts_total) and logged. Anything that keeps a check from answering (an
unknown policy, a model not loaded, an input over the limits, the stream's deadline) ends the
stream with its gRPC status, never a verdict: Envoy then applies its `failure_mode_allow`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from envoy.type.v3 import http_status_pb2

from chunkscope import metrics
from chunkscope.api.guard import MAX_ROLE_CHARS, GuardServicer, check_name
from chunkscope.chat_content import content_text
from chunkscope.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from chunkscope_client.v1 import guard_pb2

log = logging.getLogger(__name__)

MODES = ("block", "observe")
POLICY_METADATA = "x-chunkscope-policy"  # per-route override: the filter's grpc_initial_metadata
MODE_METADATA = "x-chunkscope-ext-proc-mode"
VERDICT_HEADER = "x-chunkscope-verdict"
BLOCK_STATUS = http_status_pb2.Forbidden  # 403
MAX_BUFFERED_BYTES = 16 << 20  # a response body kept until end_of_stream, or an unfinished event
_VERDICT_NAMES = {
    guard_pb2.VERDICT_ALLOW: "allow",
    guard_pb2.VERDICT_BLOCK: "block",
    guard_pb2.VERDICT_INTERVENE: "intervene",
}
_INPUT_TYPES = {"request": guard_pb2.INPUT_TYPE_REQUEST, "response": guard_pb2.INPUT_TYPE_RESPONSE}


def request_inputs(body: bytes) -> tuple[list[str], list[tuple[str, str]]]:
    """(texts, messages) to check for a request body: exactly one of them is non-empty, or both
    are empty when there is nothing to check."""
    text = body.decode("utf-8", errors="replace")  # not UTF-8: checked as text all the same
    try:
        parsed = json.loads(text)
    except ValueError:  # not JSON (RecursionError is not a ValueError: caught below)
        parsed = None
    except RecursionError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("messages"), list):
        messages = []
        for m in parsed["messages"]:
            if not isinstance(m, dict):
                continue
            role = m.get("role")
            role = role[:MAX_ROLE_CHARS] if isinstance(role, str) and role else "unknown"
            messages.append((role, content_text(m.get("content"))))
        if messages:
            return [], messages
    if isinstance(parsed, dict) and isinstance(parsed.get("prompt"), str):
        return [parsed["prompt"]], []
    return ([text], []) if text.strip() else ([], [])


def _header(headers: base_pb2.HeaderMap, name: str) -> str:
    for h in headers.headers:
        if h.key.lower() == name:
            return h.raw_value.decode("utf-8", errors="replace") if h.raw_value else h.value
    return ""


def _set_header(name: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=name, raw_value=value.encode()),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


@dataclass
class _Response:
    """What one HTTP response's body has shown so far."""

    sse: bool = False
    pending: bytearray = field(default_factory=bytearray)  # SSE: an unfinished line; else all
    choices: dict[int, list[str]] = field(default_factory=dict)  # SSE: delta contents per choice
    grew: bool = False  # text was added since the last check

    def feed_sse(self, chunk: bytes, end: bool) -> None:
        """Parse the complete lines of `chunk` (all of it at the end) into choice texts."""
        self.pending.extend(chunk)
        *lines, rest = bytes(self.pending).split(b"\n")
        if end:
            lines.append(rest)
            rest = b""
        self.pending = bytearray(rest)
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").rstrip("\r")
            if not line.startswith("data:"):
                continue  # comments, event names, ids, blank lines between events
            data = line[5:].strip()
            if not data or data == "[DONE]":
                continue
            try:
                event = json.loads(data)
            except (ValueError, RecursionError):
                self._add(0, data)  # not JSON: the data is the text
                continue
            choices = event.get("choices") if isinstance(event, dict) else None
            for choice in choices if isinstance(choices, list) else ():
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta") or choice.get("message") or {}
                text = content_text(delta.get("content")) if isinstance(delta, dict) else ""
                if not text and isinstance(choice.get("text"), str):
                    text = choice["text"]  # the completions API's chunks
                index = choice.get("index", 0)
                self._add(index if isinstance(index, int) else 0, text)

    def _add(self, index: int, text: str) -> None:
        if text:
            self.choices.setdefault(index, []).append(text)
            self.grew = True

    def texts(self) -> list[str]:
        return ["".join(self.choices[i]) for i in sorted(self.choices)]


def response_texts(body: bytes) -> list[str]:
    """The texts of a whole (not server-sent events) response body: a chat completion's message
    contents, a completion's texts, or the body as one text."""
    text = body.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("choices"), list):
        found = []
        for choice in parsed["choices"]:
            if not isinstance(choice, dict):
                continue
            message = choice.get("message")
            content = content_text(message.get("content")) if isinstance(message, dict) else ""
            if not content and isinstance(choice.get("text"), str):
                content = choice["text"]
            found.append(content)
        return found if any(found) else []
    return [text] if text.strip() else []


class ExtProcServicer(ep_grpc.ExternalProcessorServicer):
    """One stream per HTTP exchange; the policy and mode come from the server's flags
    (--ext-proc-policy, --ext-proc-mode) unless the stream's initial metadata names others."""

    def __init__(self, guard: GuardServicer, policy: str, mode: str) -> None:
        self.guard = guard
        self.policy = policy
        self.mode = mode

    def _route(self, context: Any) -> tuple[str, str]:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        policy = metadata.get(POLICY_METADATA, "") or self.policy
        mode = metadata.get(MODE_METADATA, "") or self.mode
        if not policy:
            raise FailedPrecondition(
                "the external processor is off: no policy to check against; start the server "
                f"with --ext-proc-policy NAME, or have the route send '{POLICY_METADATA}: NAME' "
                "(the ext_proc filter's grpc_initial_metadata)",
                reason="EXT_PROC_OFF",
            )
        check_name(policy, POLICY_METADATA)
        if mode not in MODES:
            raise InvalidArgument.field(MODE_METADATA, f"{mode[:40]!r}: must be block or observe")
        return policy, mode

    async def Process(
        self, request_iterator: AsyncIterator[ep.ProcessingRequest], context: Any
    ) -> AsyncIterator[ep.ProcessingResponse]:
        policy, mode = self._route(context)
        request_body = bytearray()
        response = _Response()
        async for message in request_iterator:
            kind = message.WhichOneof("request")
            if kind == "request_headers":
                yield ep.ProcessingResponse(request_headers=ep.HeadersResponse())
            elif kind == "response_headers":
                content_type = _header(message.response_headers.headers, "content-type")
                response.sse = "text/event-stream" in content_type.lower()
                yield ep.ProcessingResponse(response_headers=ep.HeadersResponse())
            elif kind == "request_body":
                request_body.extend(message.request_body.body)
                _bounded(request_body, "request body")
                if not message.request_body.end_of_stream:  # STREAMED request bodies: at the end
                    yield ep.ProcessingResponse(request_body=ep.BodyResponse())
                    continue
                texts, messages = request_inputs(bytes(request_body))
                reply = await self._check(policy, mode, "request", texts, messages)
                if reply is not None and self._blocks(reply, mode):
                    yield _blocked(reply, "request")
                    return
                common = ep.CommonResponse()
                if reply is not None:
                    name = _VERDICT_NAMES[reply.verdict]
                    common.header_mutation.set_headers.append(_set_header(VERDICT_HEADER, name))
                yield ep.ProcessingResponse(request_body=ep.BodyResponse(response=common))
            elif kind == "response_body":
                body = message.response_body
                texts = self._response_texts(response, body.body, body.end_of_stream)
                reply = await self._check(policy, mode, "response", texts, [])
                if reply is not None and self._blocks(reply, mode):
                    yield _blocked(reply, "response")
                    return
                yield ep.ProcessingResponse(response_body=ep.BodyResponse())
            elif kind == "request_trailers":
                yield ep.ProcessingResponse(request_trailers=ep.TrailersResponse())
            elif kind == "response_trailers":
                yield ep.ProcessingResponse(response_trailers=ep.TrailersResponse())
            else:
                raise InvalidArgument.field(
                    "request", "a ProcessingRequest carries headers, a body or trailers"
                )

    @staticmethod
    def _response_texts(response: _Response, chunk: bytes, end: bool) -> list[str]:
        """The texts to check now (all of them so far), or [] when nothing new is to be checked."""
        if response.sse:
            response.feed_sse(chunk, end)
            _bounded(response.pending, "server-sent event line")
            if not response.grew:
                return []
            response.grew = False
            return response.texts()
        response.pending.extend(chunk)
        _bounded(response.pending, "response body")
        return response_texts(bytes(response.pending)) if end else []

    async def _check(
        self, policy: str, mode: str, phase: str, texts: list[str], messages: list[tuple[str, str]]
    ) -> guard_pb2.CheckResponse | None:
        """The verdict on the inputs, counted and logged; None when there is nothing to check."""
        if not texts and not messages:
            return None
        reply = await self.guard.check(guard_pb2.CheckRequest(
            policy=policy, input_type=_INPUT_TYPES[phase], texts=texts,
            messages=[guard_pb2.ChatMessage(role=r, content=c) for r, c in messages],
        ))  # fmt: skip
        verdict = _VERDICT_NAMES[reply.verdict]
        metrics.EXT_PROC_VERDICTS.labels(policy, phase, mode, verdict).inc()
        if reply.verdict == guard_pb2.VERDICT_BLOCK:
            log.info(
                "ext_proc %s %s: policy %s version %d: %s",
                phase,
                "blocked" if mode == "block" else "would be blocked (observe mode)",
                reply.policy,
                reply.policy_version,
                reply.reason,
            )
        return reply

    @staticmethod
    def _blocks(reply: guard_pb2.CheckResponse, mode: str) -> bool:
        return mode == "block" and reply.verdict == guard_pb2.VERDICT_BLOCK


def _bounded(buffer: bytearray, what: str) -> None:
    if len(buffer) > MAX_BUFFERED_BYTES:
        raise ResourceExhausted(
            f"the {what} held for checking is over {MAX_BUFFERED_BYTES} bytes; the external "
            "processor checks bodies up to that size",
            reason="BODY_TOO_LARGE",
            metadata={"limit": str(MAX_BUFFERED_BYTES)},
        )


def _blocked(reply: guard_pb2.CheckResponse, phase: str) -> ep.ProcessingResponse:
    """The immediate 403 that ends the HTTP exchange: JSON in OpenAI's error shape."""
    body = {
        "error": {
            "type": "chunkscope_policy_violation",
            "code": "blocked",
            "message": reply.reason,
            "policy": reply.policy,
            "policy_version": reply.policy_version,
            "phase": phase,
            "fired_rules": list(reply.fired_rules),
        }
    }
    headers = ep.HeaderMutation(set_headers=[
        _set_header(VERDICT_HEADER, "block"),
        _set_header("content-type", "application/json"),
    ])  # fmt: skip
    return ep.ProcessingResponse(
        immediate_response=ep.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=BLOCK_STATUS),
            headers=headers,
            body=json.dumps(body).encode(),
            # Envoy's response code details (access logs): one token, no spaces.
            details=f"chunkscope_blocked:{reply.policy}:v{reply.policy_version}",
        )
    )
