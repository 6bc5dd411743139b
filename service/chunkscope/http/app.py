"""The HTTP front's routes: GET /v1/models, GET /v1/models/{id}, POST /v1/chat/completions, and
the guardrail shapes over Check, POST /beta/litellm_basic_guardrail_api and POST /v1/moderations
(http/guardrails.py).

Every request goes through the same gates as a gRPC call: the API key (`Authorization: Bearer`)
and the role of the RPC it stands for (auth.REQUIRED_ROLE: listing models needs monitor, a chat
completion is a Generate and needs analyst), --max-concurrent-rpcs requests at once and
--max-concurrent-streams open streams (shared with gRPC's), --max-message-bytes per body, the
audit log for chat completions (an audited Generate), and metrics. A chat completion is a
GenerateRequest validated and run by PerturbationServicer.prepare_generate / run_generate, the
code behind gRPC Generate: the scheduler, interventions, detection and rules are the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from chunkscope import metrics, observability
from chunkscope.api.guard import GuardServicer
from chunkscope.api.interceptors import (
    Principal,
    StreamGate,
    bearer_token,
    check_role,
    fresh_keys,
    principal_of,
)
from chunkscope.api.perturbation import GenerateJob, PerturbationServicer
from chunkscope.audit import AuditLog, summarize
from chunkscope.auth import KeyFile
from chunkscope.engine import serving, tokens
from chunkscope.engine.chat import chat_prompt
from chunkscope.engine.loading import LoadedModel
from chunkscope.engine.registry import ModelRegistry
from chunkscope.errors import (
    ChunkscopeError,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from chunkscope.http import guardrails
from chunkscope.http.openai import Annotation, ChatRequest, error_reply, parse_chat
from chunkscope_client.v1 import guard_pb2
from chunkscope_client.v1 import perturbation_pb2 as pb

log = logging.getLogger(__name__)

_V1 = "chunkscope.v1."
LIST_MODELS = _V1 + "ModelService/ListModels"
GET_MODEL = _V1 + "ModelService/GetModel"
GENERATE = _V1 + "PerturbationService/Generate"
CHECK = _V1 + "GuardService/Check"
CHAT_ROUTE = "/v1/chat/completions"
T = TypeVar("T")


@dataclass
class _Outcome:
    """How a chat completion ended (filled while it runs)."""

    finish: str = "stop"
    completion_tokens: int = 0


class TextStream:
    """A generation's text as deltas: whole characters only, stop sequences cut and held back.

    Each token re-decodes the tokens so far (byte-level BPE splits characters across tokens, so
    a token's own text is not always whole); text that may be the start of a stop sequence waits
    until the next token settles it.
    """

    def __init__(self, model: LoadedModel, stops: list[str]) -> None:
        self.model, self.stops = model, stops
        self.ids: list[int] = []
        self.text = ""
        self.sent = 0

    def add(self, token_id: int) -> tuple[str, bool]:
        """The new text to send, and whether a stop sequence ended the generation."""
        self.ids.append(token_id)
        self.text = str(self.model.tokenizer.decode(self.ids, skip_special_tokens=True))
        text = self.text
        longest = max((len(s) for s in self.stops), default=0)
        cut = min(
            (i for s in self.stops if (i := text.find(s, max(0, self.sent - longest))) >= 0),
            default=-1,
        )
        if cut >= 0:
            end = max(cut, self.sent)
            delta, self.sent = text[self.sent : end], end
            self.text = text[:end]
            return delta, True
        if text.endswith("\ufffd"):  # a character still incomplete
            return "", False
        hold = max(
            (k for s in self.stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0
        )
        end = len(text) - hold
        if end <= self.sent:
            return "", False
        delta, self.sent = text[self.sent : end], end
        return delta, False

    def flush(self) -> str:
        delta, self.sent = self.text[self.sent :], len(self.text)
        return delta


class Front:
    """The ASGI app and the state it shares with the gRPC server (keys, audit, stream gate)."""

    def __init__(
        self,
        registry: ModelRegistry,
        servicer: PerturbationServicer,
        keys: KeyFile | None,
        audit: AuditLog,
        streams: StreamGate,
        max_requests: int,
        max_body_bytes: int,
        guard: GuardServicer | None = None,
    ) -> None:
        self.registry = registry
        self.servicer = servicer
        self.guard = guard
        self.keys = keys
        self.audit = audit
        self.streams = streams
        self.max_requests = max_requests
        self.max_body_bytes = max_body_bytes
        self.in_flight = 0
        self._reading: list[asyncio.Future[None] | None] = [None]

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/models", self.list_models, methods=["GET"]),
                Route("/v1/models/{model:path}", self.get_model, methods=["GET"]),
                Route(CHAT_ROUTE, self.chat, methods=["POST"]),
                Route(guardrails.LITELLM_ROUTE, self.litellm_guardrail, methods=["POST"]),
                Route(guardrails.MODERATION_ROUTE, self.moderation, methods=["POST"]),
            ],
            exception_handlers={HTTPException: self._http_error},
        )

    @property
    def draining(self) -> bool:
        return self.streams.draining.is_set()

    # ----- gates -----------------------------------------------------------------------------

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        kind = "not_found_error" if status == 404 else "invalid_request_error"
        message = (
            f"no route {request.method} {request.url.path}; this server serves GET /v1/models, "
            f"POST {CHAT_ROUTE}, POST {guardrails.LITELLM_ROUTE} and POST "
            f"{guardrails.MODERATION_ROUTE}"
        )
        metrics.HTTP_REQUESTS.labels("other", request.method, str(status)).inc()
        body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        headers = {observability.REQUEST_ID_HEADER: self._request_id(request)}
        return JSONResponse(body, status_code=status, headers=headers)

    async def _admit(self, request: Request) -> tuple[Principal | None, str]:
        """The caller (key id and role) and its key, checked as gRPC's AuthInterceptor does;
        (None, "") with auth disabled."""
        if self.keys is None:
            return None, ""
        token = bearer_token(
            request.headers.getlist("authorization"), "Authorization headers",
            "the header 'Authorization: Bearer <key>' (the OpenAI SDK's api_key)",
        )  # fmt: skip
        return await self._check_key(token), token

    @staticmethod
    def _authorize(who: Principal | None, method: str) -> None:
        """The role check, after `_admit` (so a refusal is audited with who was refused)."""
        if who is not None:
            check_role(who, method, f"{method} (this route)")

    async def _check_key(self, token: str, *, again: bool = False) -> Principal:
        assert self.keys is not None
        await fresh_keys(self.keys, self._reading)
        return principal_of(self.keys, token, again=again)

    @contextlib.contextmanager
    def _slot(self) -> Any:
        if self.draining:
            raise Unavailable(
                "the server is shutting down; retry (another instance, or this one once restarted)",
                reason="SHUTTING_DOWN",
            )
        if self.in_flight >= self.max_requests:
            raise ResourceExhausted(
                f"{self.in_flight} HTTP requests are being served (--max-concurrent-rpcs "
                f"{self.max_requests}); retry with backoff",
                reason="TOO_MANY_REQUESTS",
                metadata={"limit": str(self.max_requests)},
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def _body(self, request: Request) -> Any:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise ResourceExhausted(
                f"the body has {declared} bytes; this server accepts at most "
                f"{self.max_body_bytes} (--max-message-bytes)",
                reason="REQUEST_TOO_LARGE",
            )
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise ResourceExhausted(
                        f"the body exceeds {self.max_body_bytes} bytes (--max-message-bytes)",
                        reason="REQUEST_TOO_LARGE",
                    )
                chunks.append(chunk)
        except ClientDisconnect:
            raise ClientGone() from None
        try:
            return json.loads(b"".join(chunks))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidArgument.field("body", f"not JSON: {exc}") from None

    def _error(
        self, exc: BaseException, route: str, method: str, started: float, field: str
    ) -> Response:
        if isinstance(exc, ClientGone):  # no one to answer; 499 as nginx counts it
            self._observe(route, method, 499, started)
            return Response(status_code=499)
        if isinstance(exc, ChunkscopeError):
            status, body = error_reply(exc, field)
            if isinstance(exc, ResourceExhausted):
                metrics.REJECTED.labels(exc.reason).inc()
        else:
            incident = uuid.uuid4().hex[:12]
            log.error("bug in %s %s (incident %s)", method, route, incident, exc_info=exc)
            status, body = 500, {"error": {
                "message": f"internal error (incident {incident}); the server log has the details",
                "type": "server_error", "param": None, "code": "internal",
            }}  # fmt: skip
        self._observe(route, method, status, started)
        headers = {observability.REQUEST_ID_HEADER: observability.REQUEST_ID.get()}
        if status in (429, 503):
            headers["retry-after"] = "1"
        return JSONResponse(body, status_code=status, headers=headers)

    @staticmethod
    def _observe(route: str, method: str, status: int, started: float) -> None:
        metrics.HTTP_REQUESTS.labels(route, method, str(status)).inc()
        metrics.HTTP_REQUEST_SECONDS.labels(route, method).observe(time.perf_counter() - started)

    def _audit(
        self, who: Principal | None, request: pb.GenerateRequest | None, outcome: str, rid: str
    ) -> asyncio.Future[None]:
        written = self.audit.submit(
            method="POST " + CHAT_ROUTE,
            outcome=outcome,
            key_id=who.key_id if who else "",
            role=who.role if who else "",
            request=summarize(request) if request is not None else {},
            request_id=rid,
        )
        return asyncio.wrap_future(written)

    @staticmethod
    def _request_id(request: Request) -> str:
        rid = observability.request_id_from(
            [(observability.REQUEST_ID_HEADER, request.headers.get("x-request-id", ""))]
        )
        observability.REQUEST_ID.set(rid)
        return rid

    # ----- /v1/models ------------------------------------------------------------------------

    @staticmethod
    def _model(info: Any) -> dict[str, Any]:
        return {
            "id": info.name,
            "object": "model",
            "created": int(info.registered_at.timestamp()),
            "owned_by": "chunkscope",
            "chunkscope": {
                "state": info.state,
                "architecture": info.architecture,
                "content_hash": info.content_hash,
            },
        }

    async def list_models(self, request: Request) -> Response:
        started = time.perf_counter()
        rid = self._request_id(request)
        try:
            with self._slot():
                self._authorize((await self._admit(request))[0], LIST_MODELS)
                found, token = [], ""
                while True:
                    page, token, _ = self.registry.list_page(1000, token)
                    found += page
                    if not token:
                        break
        except Exception as exc:
            return self._error(exc, "/v1/models", "GET", started, "")
        self._observe("/v1/models", "GET", 200, started)
        body = {"object": "list", "data": [self._model(i) for i in found]}
        return JSONResponse(body, headers={observability.REQUEST_ID_HEADER: rid})

    async def get_model(self, request: Request) -> Response:
        started = time.perf_counter()
        rid = self._request_id(request)
        try:
            with self._slot():
                self._authorize((await self._admit(request))[0], GET_MODEL)
                info = self.registry.get(request.path_params["model"])
        except Exception as exc:
            return self._error(exc, "/v1/models/{model}", "GET", started, "")
        self._observe("/v1/models/{model}", "GET", 200, started)
        return JSONResponse(self._model(info), headers={observability.REQUEST_ID_HEADER: rid})

    # ----- guardrails over Check -------------------------------------------------------------

    async def _check(self, request: Request, route: str, answer: Any) -> Response:
        """One guardrail call: the gates, the body, `answer(body) -> reply` (which runs Check),
        the reply as JSON. Check is read-only and not audited, as over gRPC."""
        started = time.perf_counter()
        rid = self._request_id(request)
        try:
            with self._slot():
                self._authorize((await self._admit(request))[0], CHECK)
                if self.guard is None:
                    raise Unavailable("this server runs no guard", reason="GUARD_UNAVAILABLE")
                reply = await answer(await self._body(request))
        except Exception as exc:
            return self._error(exc, route, "POST", started, "")
        self._observe(route, "POST", 200, started)
        return JSONResponse(reply, headers={observability.REQUEST_ID_HEADER: rid})

    async def litellm_guardrail(self, request: Request) -> Response:
        async def answer(body: Any) -> dict[str, Any]:
            assert self.guard is not None
            return guardrails.litellm_reply(await self.guard.check(guardrails.parse_litellm(body)))

        return await self._check(request, guardrails.LITELLM_ROUTE, answer)

    async def moderation(self, request: Request) -> Response:
        async def answer(body: Any) -> dict[str, Any]:
            guard = self.guard
            assert guard is not None
            check, n = guardrails.parse_moderation(body)
            reply, policy = await guard.check_policy(check)  # one read of the policy
            return guardrails.moderation_reply(reply, policy, n)

        return await self._check(request, guardrails.MODERATION_ROUTE, answer)

    # ----- /v1/chat/completions --------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        started = time.perf_counter()
        rid = self._request_id(request)
        who: Principal | None = None
        key = ""
        generate: pb.GenerateRequest | None = None
        field = "max_tokens"
        try:
            with self._slot():
                who, key = await self._admit(request)
                self._authorize(who, GENERATE)
                parsed = parse_chat(await self._body(request))
                field, generate = parsed.max_tokens_field, parsed.generate
                model = self.registry.ready(parsed.model)
                generate.prompt.text = await tokens.off_loop(
                    chat_prompt, model, parsed.messages, parsed.model
                )
                if parsed.policy and await self._guarded(parsed):
                    await self._audit(who, generate, "OK", rid)
                    self._observe(CHAT_ROUTE, "POST", 200, started)
                    return self._refused(parsed)
                job = await self.servicer.prepare_generate(generate)
                if not parsed.stream:
                    reply = await self._unless_gone(request, self._complete(job, parsed))
                    await self._audit(who, generate, "OK", rid)
                    self._observe(CHAT_ROUTE, "POST", 200, started)
                    return JSONResponse(reply, headers={observability.REQUEST_ID_HEADER: rid})
                self._room_for_a_stream()
        except Exception as exc:
            outcome = _outcome(exc)
            with contextlib.suppress(OSError):  # the writer thread logs a failed write
                await self._audit(who, generate, outcome, rid)
            return self._error(exc, CHAT_ROUTE, "POST", started, field)
        events = self._sse(job, parsed, who, key, generate, rid, started)
        return StreamingResponse(
            events,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", observability.REQUEST_ID_HEADER: rid},
        )

    async def _guarded(self, chat: ChatRequest) -> bool:
        """Check the prompt's messages against `chunkscope.policy` (Check's path); True when
        the verdict is BLOCK. INTERVENE adds the policy's interventions to this generation."""
        if self.guard is None:
            raise Unavailable("this server runs no guard", reason="GUARD_UNAVAILABLE")
        request = guard_pb2.CheckRequest(
            policy=chat.policy, input_type=guard_pb2.INPUT_TYPE_REQUEST
        )
        for m in chat.messages:
            request.messages.add(role=m["role"], content=m["content"])
        reply = await self.guard.check(request)
        chat.guard = {
            "verdict": guard_pb2.Verdict.Name(reply.verdict).removeprefix("VERDICT_"),
            "policy": reply.policy,
            "policy_version": reply.policy_version,
            "reason": reply.reason,
            "fired_rules": list(reply.fired_rules),
        }
        if reply.verdict == guard_pb2.VERDICT_INTERVENE:
            chat.generate.interventions.extend(reply.interventions)
        return reply.verdict == guard_pb2.VERDICT_BLOCK

    def _refused(self, chat: ChatRequest) -> Response:
        """A prompt the policy blocks: no generation, finish_reason content_filter, the verdict
        in the `chunkscope` object (a stream of the same, for a streaming request)."""
        head = {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "created": int(time.time()),
            "model": chat.model,
        }
        annotation = {**Annotation().summary(), "guard": chat.guard}
        if not chat.stream:
            body = {**head, "object": "chat.completion", "choices": [{
                "index": 0, "message": {"role": "assistant", "content": "", "refusal": None},
                "logprobs": None, "finish_reason": "content_filter",
            }], "chunkscope": annotation}  # fmt: skip
            return JSONResponse(body)
        head["object"] = "chat.completion.chunk"
        events = [
            {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                  "logprobs": None, "finish_reason": "content_filter"}]},
            {**head, "choices": [], "chunkscope": annotation},
        ]  # fmt: skip
        data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
        return Response(data + b"data: [DONE]\n\n", media_type="text/event-stream")

    @staticmethod
    async def _unless_gone(request: Request, work: Coroutine[Any, Any, T]) -> T:
        """`work`, cancelled when the client disconnects first (as a cancelled gRPC call is:
        its rows leave the decoding batch at the next step)."""
        task = asyncio.ensure_future(work)

        async def gone() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.ensure_future(gone())
        try:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if task.cancelled():
            raise ClientGone()
        return task.result()

    def _room_for_a_stream(self) -> None:
        """Refuse a stream beyond --max-concurrent-streams (gRPC's and HTTP's together); the
        stream takes its place when it starts (`_sse`), so one never started holds none."""
        gate = self.streams
        if gate.open >= gate.limit:
            raise ResourceExhausted(
                f"{gate.open} streams are open (--max-concurrent-streams {gate.limit}); "
                "retry with backoff",
                reason="TOO_MANY_STREAMS",
                metadata={"limit": str(gate.limit)},
            )

    async def _run(
        self, job: GenerateJob, chat: ChatRequest, annotation: Annotation, outcome: _Outcome
    ) -> AsyncGenerator[tuple[str, Any], None]:
        """("content", text) and ("annotation", step annotation) events of one completion."""
        text = TextStream(job.model, chat.stops)
        eos = job.model.tokenizer.eos_token_id
        async with aclosing(self.servicer.run_generate(job)) as events:
            async for event in events:
                if isinstance(event, serving.Token):
                    outcome.completion_tokens += 1
                    delta, stopped = text.add(event.token_id)
                    if delta:
                        yield "content", delta
                    if event.matches or event.rule_events:
                        step = annotation.step(event.step, event.matches, event.rule_events)
                        yield "annotation", step
                    if stopped:  # a stop sequence: leaving takes the row out of the batch
                        outcome.finish = "stop"
                        return
                    continue
                annotation.applied = dict(event.applied)
                rest = text.flush()
                if rest:
                    yield "content", rest
                ended_at_eos = bool(event.new_tokens) and event.new_tokens[-1] == eos
                if annotation.stopped_by_rule:
                    outcome.finish = "content_filter"
                elif not ended_at_eos and len(event.new_tokens) >= job.sampling.max_new_tokens:
                    outcome.finish = "length"
                else:
                    outcome.finish = "stop"

    @staticmethod
    def _head(job: GenerateJob, chat: ChatRequest, kind: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": kind,
            "created": int(time.time()),
            "model": chat.model,
            "system_fingerprint": "chunkscope-" + job.content_hash[:12],
        }

    @staticmethod
    def _usage(job: GenerateJob, outcome: _Outcome) -> dict[str, int]:
        prompt = int(job.ids.shape[0])
        return {
            "prompt_tokens": prompt,
            "completion_tokens": outcome.completion_tokens,
            "total_tokens": prompt + outcome.completion_tokens,
        }

    async def _complete(self, job: GenerateJob, chat: ChatRequest) -> dict[str, Any]:
        annotation, outcome = _annotation(job), _Outcome()
        content = []
        async with aclosing(self._run(job, chat, annotation, outcome)) as events:
            async for kind, value in events:
                if kind == "content":
                    content.append(value)
        reply = self._head(job, chat, "chat.completion")
        reply["choices"] = [{
            "index": 0,
            "message": {"role": "assistant", "content": "".join(content), "refusal": None},
            "logprobs": None,
            "finish_reason": outcome.finish,
        }]  # fmt: skip
        reply["usage"] = self._usage(job, outcome)
        reply["chunkscope"] = annotation.summary()
        if chat.guard is not None:
            reply["chunkscope"]["guard"] = chat.guard
        return reply

    async def _sse(
        self,
        job: GenerateJob,
        chat: ChatRequest,
        who: Principal | None,
        key: str,
        generate: pb.GenerateRequest,
        rid: str,
        started: float,
    ) -> AsyncIterator[bytes]:
        """Server-sent events: a role chunk, content chunks, annotation-only chunks (empty
        `choices`), the finish chunk, the whole annotation, usage if asked, `[DONE]`.

        An error after the first byte (a revoked key, a drain, the device) is sent as an
        `{"error": ...}` event and ends the stream, as OpenAI's API does.
        """
        head = self._head(job, chat, "chat.completion.chunk")
        annotation, outcome = _annotation(job), _Outcome()
        status = "OK"
        self.streams.open += 1  # an open stream, and a request in flight, until it ends
        self.in_flight += 1
        try:

            def chunk(**extra: Any) -> bytes:
                return b"data: " + json.dumps({**head, **extra}).encode() + b"\n\n"

            role = {"role": "assistant", "content": ""}
            yield chunk(choices=[{"index": 0, "delta": role, "logprobs": None,
                                  "finish_reason": None}])  # fmt: skip
            async with aclosing(self._run(job, chat, annotation, outcome)) as events:
                async for kind, value in events:
                    if self.draining:
                        raise Unavailable(
                            "the server is shutting down; this stream ends here",
                            reason="SHUTTING_DOWN",
                        )
                    if key:  # a key revoked meanwhile ends the stream, as on gRPC
                        self._authorize(await self._check_key(key, again=True), GENERATE)
                    if kind == "content":
                        delta = {"content": value}
                        yield chunk(choices=[{"index": 0, "delta": delta, "logprobs": None,
                                              "finish_reason": None}])  # fmt: skip
                    else:
                        yield chunk(choices=[], chunkscope=value)
            yield chunk(choices=[{"index": 0, "delta": {}, "logprobs": None,
                                  "finish_reason": outcome.finish}])  # fmt: skip
            summary = annotation.summary()
            if chat.guard is not None:
                summary["guard"] = chat.guard
            yield chunk(choices=[], chunkscope=summary)
            if chat.include_usage:
                yield chunk(choices=[], usage=self._usage(job, outcome))
            yield b"data: [DONE]\n\n"
        except ChunkscopeError as exc:
            status = _outcome(exc)
            _, body = error_reply(exc, chat.max_tokens_field)
            yield b"data: " + json.dumps(body).encode() + b"\n\n"
        except (asyncio.CancelledError, GeneratorExit):
            status = "CANCELLED"
            raise
        except Exception as exc:
            status = "INTERNAL"
            incident = uuid.uuid4().hex[:12]
            log.error("bug in a chat completion stream (incident %s)", incident, exc_info=exc)
            body = {"error": {"message": f"internal error (incident {incident})",
                              "type": "server_error", "param": None,
                              "code": "internal"}}  # fmt: skip
            yield b"data: " + json.dumps(body).encode() + b"\n\n"
        finally:
            self.streams.open -= 1
            self.in_flight -= 1
            self.audit.submit(
                method="POST " + CHAT_ROUTE, outcome=status,
                key_id=who.key_id if who else "", role=who.role if who else "",
                request=summarize(generate), request_id=rid,
            )  # fmt: skip
            self._observe(CHAT_ROUTE, "POST", 200, started)


def _annotation(job: GenerateJob) -> Annotation:
    """A completion's annotation, knowing the presets it applies (with the versions used)."""
    return Annotation(presets=[p.describe() for p in job.presets])


class ClientGone(Exception):
    """The client disconnected before its reply: the work was cancelled, nobody reads a reply."""


def _outcome(exc: BaseException) -> str:
    """The audit outcome of a refusal: the gRPC status name, as gRPC calls record."""
    from chunkscope.errors import status_code

    if isinstance(exc, ClientGone):
        return "CANCELLED"
    if isinstance(exc, ChunkscopeError):
        return status_code(exc).name
    return "INTERNAL"
