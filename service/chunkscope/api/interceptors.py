"""Server interceptors: the one place for metrics and for turning errors into gRPC statuses.

The chain, outermost first: RequestId, Metrics, Error, Audit, Auth, StreamGate.
`RequestIdInterceptor` gives the call its request id (observability.REQUEST_ID), returned in the
trailing metadata. `MetricsInterceptor` records grpc_server_* metrics with the final status code.
`ErrorInterceptor` maps ChunkscopeError to its status (errors.STATUS_CODES) with rich details
(google.rpc.ErrorInfo always, BadRequest for field violations); any other exception is a bug and
becomes INTERNAL with a generic message, logged with its traceback. A bad request can never stop
the server: nothing here re-raises a non-gRPC exception. `AuditInterceptor` records who called an
audited method and how it ended; `AuthInterceptor` checks the API key and role, at the start and
again on every message of a stream; `StreamGate` bounds open streams and ends them with
UNAVAILABLE when the server drains.

The layers of one call share a `_Call` (who, whether the handler finished, the incident id of a
bug), so the outcome that metrics and the audit log record is the same. A stream whose handler
had produced its last message counts as OK even when the client then cancels instead of reading
the end of the stream (clients stop at the final message). Each layer closes the generator it
iterates (`aclosing`), so when grpc drops a stream the layers unwind innermost first.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from chunkscope import metrics, observability
from chunkscope.audit import AUDITED, AuditLog, summarize
from chunkscope.auth import KeyFile, permits, required_role
from chunkscope.errors import (
    DOMAIN,
    ChunkscopeError,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    status_code,
)

log = logging.getLogger(__name__)

Behavior = Callable[..., Any]


class _Wrapper:
    """Rebuilds an RpcMethodHandler so its behaviour runs inside `unary` / `stream` below."""

    async def unary(
        self, method: str, rpc_type: str, behavior: Behavior, request: Any, context: Any
    ) -> Any:
        return await behavior(request, context)

    async def stream(
        self, method: str, rpc_type: str, behavior: Behavior, request: Any, context: Any
    ) -> AsyncGenerator[Any, None]:
        async with aclosing(_as_async_iter(behavior(request, context))) as items:
            async for item in items:
                yield item

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method, "unary"),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, method, "client_stream"),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method, "server_stream"),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._stream(handler.stream_stream, method, "bidi_stream"),
            handler.request_deserializer,
            handler.response_serializer,
        )

    def _unary(self, behavior: Behavior, method: str, rpc_type: str) -> Behavior:
        async def run(request: Any, context: Any) -> Any:
            return await self.unary(method, rpc_type, behavior, request, context)

        return run

    def _stream(self, behavior: Behavior, method: str, rpc_type: str) -> Behavior:
        # grpc.aio decides how to drive a handler by its function type: this must be an async
        # generator function, not a function returning one.
        async def run(request: Any, context: Any) -> AsyncGenerator[Any, None]:
            async with aclosing(self.stream(method, rpc_type, behavior, request, context)) as items:
                async for item in items:
                    yield item

        return run


def _as_async_iter(result: Any) -> AsyncGenerator[Any, None]:
    """Handlers may be async generators, or coroutines that write via context.write."""
    if isinstance(result, AsyncGenerator):
        return result
    return _adapt(result)


async def _adapt(result: Any) -> AsyncGenerator[Any, None]:
    if inspect.isawaitable(result):
        await result
    else:
        for item in result:
            yield item


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id and role ("" for open services or with auth disabled)."""

    key_id: str
    role: str


@dataclass
class _Call:
    """What the interceptors of one call share; they all see the same servicer context."""

    context: Any
    principal: Principal | None = None
    finished: bool = False  # the handler produced its last message
    incident: str = ""  # the id of the bug this call hit: logged, audited, told to the caller
    request_id: str = ""
    detail: str = ""  # what the handler adds to the call's audit record (e.g. a new version)

    def incident_id(self) -> str:
        if not self.incident:
            self.incident = uuid.uuid4().hex[:12]
        return self.incident


_CALL: ContextVar[_Call | None] = ContextVar("chunkscope_call", default=None)


def _call(context: Any) -> _Call:
    """The shared state of the call `context` belongs to (each RPC runs in its own task)."""
    call = _CALL.get()
    if call is None or call.context is not context:
        call = _Call(context)
        _CALL.set(call)
    return call


def caller(context: Any) -> Principal | None:
    """Who makes the call `context` belongs to (None: an open service, or auth disabled)."""
    return _call(context).principal


def audit_detail(context: Any, detail: str) -> None:
    """Add `detail` to the audit record of the call `context` belongs to (if it is audited)."""
    _call(context).detail = detail


class _WrappingInterceptor(grpc.aio.ServerInterceptor, _Wrapper):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return self.wrap(handler, handler_call_details.method)


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


def _final_code(call: _Call, exc: BaseException | None) -> grpc.StatusCode:
    context = call.context
    # GeneratorExit: grpc stopped iterating the stream, which it does only when the call ended.
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        if call.finished:  # the client ended the call after the last message: it completed
            return grpc.StatusCode.OK
        remaining = context.time_remaining()
        return (
            grpc.StatusCode.DEADLINE_EXCEEDED
            if remaining is not None and remaining <= 0
            else grpc.StatusCode.CANCELLED
        )
    code = context.code()
    if isinstance(code, int):  # aio contexts may report the raw integer
        code = next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    if code is None:
        return grpc.StatusCode.OK if exc is None else grpc.StatusCode.UNKNOWN
    return code


class RequestIdInterceptor(_WrappingInterceptor):
    """Every call gets a request id: the client's `x-request-id` metadata when it is a sane token
    (letters, digits, `._:-`, at most 128), a new one otherwise. It is in every log line and audit
    record of the call, on its trace span, and in the reply's trailing metadata (`x-request-id`,
    also on errors: ErrorInterceptor adds it to the status it sends)."""

    @staticmethod
    def _begin(context: Any) -> None:
        request_id = observability.request_id_from(context.invocation_metadata())
        observability.REQUEST_ID.set(request_id)
        _call(context).request_id = request_id
        context.set_trailing_metadata(((observability.REQUEST_ID_HEADER, request_id),))
        observability.tag_request(request_id)

    async def unary(
        self, method: str, rpc_type: str, behavior: Behavior, request: Any, context: Any
    ) -> Any:
        self._begin(context)
        return await behavior(request, context)

    async def stream(
        self, method: str, rpc_type: str, behavior: Behavior, request: Any, context: Any
    ) -> AsyncGenerator[Any, None]:
        self._begin(context)
        async with aclosing(_as_async_iter(behavior(request, context))) as items:
            async for item in items:
                yield item


class MetricsInterceptor(_WrappingInterceptor):
    """grpc_server_started/handled/handling_seconds, labelled like go-grpc-middleware."""

    def _observe(
        self, method: str, rpc_type: str, started: float, call: _Call, exc: BaseException | None
    ) -> None:
        service, name = _split(method)
        code = _final_code(call, exc)
        metrics.GRPC_HANDLED.labels(rpc_type, service, name, metrics.code_label(code)).inc()
        metrics.GRPC_HANDLING_SECONDS.labels(rpc_type, service, name).observe(
            time.perf_counter() - started
        )

    def _start(self, method: str, rpc_type: str) -> float:
        service, name = _split(method)
        metrics.GRPC_STARTED.labels(rpc_type, service, name).inc()
        return time.perf_counter()

    async def unary(
        self, method: str, rpc_type: str, behavior: Behavior, request: Any, context: Any
    ) -> Any:
        started = self._start(method, rpc_type)
        call = _call(context)
        if rpc_type == "client_stream":
            request = self._count_received(method, rpc_type, request)
        exc: BaseException | None = None
        try:
            return await behavior(request, context)
        except BaseException as error:
            exc = error
            raise
        finally:
            self._observe(method, rpc_type, started, call, exc)

    async def stream(
        self, method: str, rpc_type: str, behavior: Behavior, request: Any, context: Any
    ) -> AsyncGenerator[Any, None]:
        started = self._start(method, rpc_type)
        call = _call(context)
        service, name = _split(method)
        sent = metrics.GRPC_MSG_SENT.labels(rpc_type, service, name)
        if rpc_type == "bidi_stream":
            request = self._count_received(method, rpc_type, request)
        exc: BaseException | None = None
        try:
            async with aclosing(_as_async_iter(behavior(request, context))) as items:
                async for item in items:
                    sent.inc()
                    yield item
        except BaseException as error:
            exc = error
            raise
        finally:
            self._observe(method, rpc_type, started, call, exc)

    @staticmethod
    async def _count_received(method: str, rpc_type: str, requests: Any) -> AsyncIterator[Any]:
        service, name = _split(method)
        received = metrics.GRPC_MSG_RECEIVED.labels(rpc_type, service, name)
        async for item in requests:
            received.inc()
            yield item


def rich_status(code: grpc.StatusCode, message: str, error: ChunkscopeError | None) -> grpc.Status:
    """A grpc.Status whose trailer carries google.rpc.Status with ErrorInfo (+ BadRequest)."""
    details = []
    info = error_details_pb2.ErrorInfo(
        reason=error.reason if error else "INTERNAL",
        domain=DOMAIN,
        metadata=error.metadata if error else {},
    )
    details.append(info)
    if isinstance(error, InvalidArgument):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
    packed = []
    for detail in details:
        any_ = any_pb2.Any()
        any_.Pack(detail)
        packed.append(any_)
    status = status_pb2.Status(code=code.value[0], message=message, details=packed)
    assert status.code != code_pb2.OK
    return rpc_status.to_status(status)


class ErrorInterceptor(_WrappingInterceptor):
    """ChunkscopeError -> its status with details; anything else -> INTERNAL (a bug, logged).

    A ChunkscopeError with no status of its own (the bare base class) is a bug too: every
    INTERNAL carries an incident id that finds its traceback in the server log.
    """

    async def _abort(self, context: Any, method: str, exc: Exception) -> None:
        if isinstance(exc, ChunkscopeError) and status_code(exc) != grpc.StatusCode.INTERNAL:
            code, message, error = status_code(exc), exc.message, exc
            if isinstance(exc, ResourceExhausted):  # every refusal by a limit, counted once here
                metrics.REJECTED.labels(exc.reason).inc()
        else:
            incident = _call(context).incident_id()  # the audit record may already name it
            log.error("bug in %s (incident %s)", method, incident, exc_info=exc)
            code, message, error = (
                grpc.StatusCode.INTERNAL,
                f"internal error (incident {incident}); the server log has the details",
                None,
            )
        status = rich_status(code, message, error)
        request_id = ((observability.REQUEST_ID_HEADER, _call(context).request_id),)
        await context.abort(status.code, status.details, (*status.trailing_metadata, *request_id))

    async def unary(
        self, method: str, rpc_type: str, behavior: Behavior, request: Any, context: Any
    ) -> Any:
        try:
            return await behavior(request, context)
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as exc:
            await self._abort(context, method, exc)

    async def stream(
        self, method: str, rpc_type: str, behavior: Behavior, request: Any, context: Any
    ) -> AsyncGenerator[Any, None]:
        try:
            async with aclosing(_as_async_iter(behavior(request, context))) as items:
                async for item in items:
                    yield item
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as exc:
            await self._abort(context, method, exc)


# ----- access: who may call, what is recorded, how many streams ----------------------------------


_BEARER = "bearer "


def bearer_token(values: list[str], entries: str, send: str) -> str:
    """The key in a call's `authorization` values (gRPC metadata or HTTP headers): exactly one
    'Bearer <key>', or UNAUTHENTICATED saying what to send. `entries` names the values in the
    count message, `send` what to send instead."""
    if len(values) > 1:
        raise Unauthenticated(
            f"the call carries {len(values)} {entries}; send exactly one, {send}",
            reason="API_KEY_AMBIGUOUS",
        )
    if not values or not values[0]:
        raise Unauthenticated(
            f"missing API key: send {send}; an admin creates keys with `chunkscope keys create "
            "--role monitor|analyst|admin`",
            reason="API_KEY_MISSING",
        )
    if values[0][: len(_BEARER)].lower() != _BEARER:
        raise Unauthenticated(f"the API key must be sent as {send}", reason="API_KEY_INVALID")
    return values[0][len(_BEARER) :].strip()


# The key file's reads, for gRPC and the HTTP front: one thread of their own, never the loop.
_KEY_READER = ThreadPoolExecutor(1, thread_name_prefix="chunkscope-keys")


async def fresh_keys(keys: KeyFile, reading: list[asyncio.Future[None] | None]) -> None:
    """Re-read the key file when it changed (KeyFile.stale: at most once a second), on the key
    reader thread, never on the loop; callers share one read under way (`reading` holds it)."""
    if not keys.stale():
        return
    task = reading[0]
    if task is None or task.done():
        loop = asyncio.get_running_loop()
        task = reading[0] = loop.run_in_executor(_KEY_READER, keys.refresh)
    await asyncio.shield(task)  # one caller's cancellation must not stop the read


def principal_of(keys: KeyFile, token: str, *, again: bool = False) -> Principal:
    """Who a key is; UNAUTHENTICATED for an unknown or revoked key (`again`: a stream's key
    checked once more, which ends the stream)."""
    record = keys.match(token)
    if record is None:
        if again:
            raise Unauthenticated(
                "the API key of this stream is no longer valid (revoked, or removed from "
                "the key file); the stream ends here; ask an admin for a key",
                reason="API_KEY_INVALID",
            )
        raise Unauthenticated(
            "invalid API key: unknown, revoked or malformed; ask an admin for a key "
            "(`chunkscope keys list` shows the active ones)",
            reason="API_KEY_INVALID",
        )
    return Principal(record.id, record.role)


def check_role(who: Principal, method: str, shown: str) -> None:
    """PERMISSION_DENIED unless `who`'s role may call `method` (shown to the caller as `shown`)."""
    if not permits(who.role, method):
        needed = required_role(method)
        raise PermissionDenied(
            f"role {who.role!r} may not call {shown}; it needs {needed!r}",
            reason="ROLE_NOT_PERMITTED",
            metadata={"role": who.role, "required_role": needed},
        )


class AuthInterceptor(_WrappingInterceptor):
    """API keys (`authorization: Bearer <key>`) and the role each RPC needs (auth.REQUIRED_ROLE).

    Runs inside ErrorInterceptor, so its refusals become UNAUTHENTICATED / PERMISSION_DENIED with
    ErrorInfo. `keys` None means auth is disabled. Keys are never logged. A stream's key is checked
    again on every message in either direction, so revoking a key ends its open streams too. The
    key file is read on a thread of its own, at most once a second (KeyFile.refresh), never on the
    event loop (`fresh_keys`, shared with the HTTP front); a call waits for a read that is under
    way, so what it is judged by is never stale by more than that second.
    """

    def __init__(self, keys: KeyFile | None, open_services: frozenset[str]) -> None:
        self.keys = keys
        self.open_services = open_services
        self._reading: list[asyncio.Future[None] | None] = [None]

    def _bearer(self, method: str, context: Any) -> str | None:
        """The key this call presents; None when the method needs none."""
        service, _ = _split(method)
        if self.keys is None or service in self.open_services:
            return None
        headers = [
            value if isinstance(value, str) else value.decode(errors="replace")
            for key, value in context.invocation_metadata() or ()
            if key == "authorization"
        ]
        return bearer_token(headers, "'authorization' metadata entries", "metadata "
                            "'authorization: Bearer <key>'")  # fmt: skip

    async def _admit(self, method: str, token: str, call: _Call, *, again: bool = False) -> None:
        assert self.keys is not None
        await fresh_keys(self.keys, self._reading)
        call.principal = principal_of(self.keys, token, again=again)
        check_role(call.principal, method, method.lstrip("/"))  # refusal audited with who

    async def _check(self, method: str, context: Any) -> str | None:
        """The call's key once admitted; None when the method needs none."""
        token = self._bearer(method, context)
        if token is not None:
            await self._admit(method, token, _call(context))
        return token

    async def _rechecked(
        self, method: str, token: str, call: _Call, requests: Any
    ) -> AsyncGenerator[Any, None]:
        async for item in requests:
            await self._admit(method, token, call, again=True)
            yield item

    async def unary(
        self, method: str, rpc_type: str, behavior: Behavior, request: Any, context: Any
    ) -> Any:
        token = await self._check(method, context)
        if token is not None and rpc_type == "client_stream":
            request = self._rechecked(method, token, _call(context), request)
        return await behavior(request, context)

    async def stream(
        self, method: str, rpc_type: str, behavior: Behavior, request: Any, context: Any
    ) -> AsyncGenerator[Any, None]:
        token = await self._check(method, context)
        call = _call(context)
        if token is not None and rpc_type == "bidi_stream":
            request = self._rechecked(method, token, call, request)
        async with aclosing(_as_async_iter(behavior(request, context))) as items:
            async for item in items:
                if token is not None:
                    await self._admit(method, token, call, again=True)
                yield item


def _outcome(call: _Call, exc: BaseException | None) -> str:
    if exc is None:
        return "OK"
    if isinstance(exc, ChunkscopeError):
        return status_code(exc).name
    if isinstance(exc, asyncio.CancelledError | GeneratorExit | grpc.aio.AbortError):
        return _final_code(call, exc).name
    return "INTERNAL"


class AuditInterceptor(_WrappingInterceptor):
    """Records every call of an audited method (audit.AUDITED), allowed or refused.

    The record is written by the audit log's writer thread; the call waits (off the loop) until
    it is on disk before its reply goes out, except when the caller has already gone.
    """

    def __init__(self, log_: AuditLog) -> None:
        self.log = log_

    async def _record(
        self, method: str, request: Any, call: _Call, exc: BaseException | None
    ) -> None:
        who = call.principal
        outcome = _outcome(call, exc)
        written = self.log.submit(
            method=method.lstrip("/"),
            outcome=outcome,
            key_id=who.key_id if who else "",
            role=who.role if who else "",
            request=summarize(request),
            request_id=call.request_id,
            # Every INTERNAL names the incident the server log has the traceback under.
            detail=f"incident {call.incident_id()}" if outcome == "INTERNAL" else call.detail,
        )
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            return  # nobody waits for a reply; the writer thread logs a failure itself
        with contextlib.suppress(OSError):  # logged by the writer thread
            await asyncio.shield(asyncio.wrap_future(written))

    async def unary(
        self, method: str, rpc_type: str, behavior: Behavior, request: Any, context: Any
    ) -> Any:
        if method.lstrip("/") not in AUDITED:
            return await behavior(request, context)
        call = _call(context)
        exc: BaseException | None = None
        try:
            return await behavior(request, context)
        except BaseException as error:
            exc = error
            raise
        finally:
            await self._record(method, request, call, exc)

    async def stream(
        self, method: str, rpc_type: str, behavior: Behavior, request: Any, context: Any
    ) -> AsyncGenerator[Any, None]:
        call = _call(context)
        audited = method.lstrip("/") in AUDITED
        exc: BaseException | None = None
        try:
            async with aclosing(_as_async_iter(behavior(request, context))) as items:
                async for item in items:
                    yield item
        except BaseException as error:
            exc = error
            raise
        finally:
            if audited:
                await self._record(method, request, call, exc)


class StreamGate(_WrappingInterceptor):
    """At most `limit` open streaming RPCs; on drain, open streams end with UNAVAILABLE.

    Unary calls are left to finish within the grace period; a stream can run for minutes, so it
    is ended at once with a retryable code (its work is cancelled, nothing half-stored).

    The handler runs one message ahead, in a task: while grpc sends a message the next one is
    being produced, so when a client cancels right after the last message, the handler is known
    to have finished (`_Call.finished`) and the call is recorded as OK.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.draining = asyncio.Event()

    async def stream(
        self, method: str, rpc_type: str, behavior: Behavior, request: Any, context: Any
    ) -> AsyncGenerator[Any, None]:
        if self.draining.is_set():
            raise _shutting_down()
        if self.open >= self.limit:
            raise ResourceExhausted(
                f"{self.open} streams are open (--max-concurrent-streams {self.limit}); "
                "retry with backoff",
                reason="TOO_MANY_STREAMS",
                metadata={"limit": str(self.limit)},
            )
        call = _call(context)
        self.open += 1
        items = _as_async_iter(behavior(request, context))
        drained = asyncio.ensure_future(self.draining.wait())
        step: asyncio.Future[Any] = asyncio.ensure_future(anext(items))
        try:
            while True:
                await asyncio.wait({step, drained}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    raise _shutting_down()
                try:
                    item = step.result()
                except StopAsyncIteration:
                    call.finished = True
                    return
                step = asyncio.ensure_future(anext(items))
                yield item
        finally:
            self.open -= 1
            drained.cancel()
            if not step.done():  # drained, or this RPC ended while the next message was made
                step.cancel()
                with contextlib.suppress(BaseException):
                    await step
            elif not step.cancelled():
                error = step.exception()  # retrieved, so asyncio does not report it as lost
                if isinstance(error, StopAsyncIteration):
                    call.finished = True
                elif error is not None and not isinstance(
                    error, ChunkscopeError | grpc.aio.AbortError
                ):
                    log.error("bug in %s after its caller left", method, exc_info=error)
            with contextlib.suppress(BaseException):
                await items.aclose()


def _shutting_down() -> Unavailable:
    return Unavailable(
        "the server is shutting down; retry (another instance, or this one once restarted)",
        reason="SHUTTING_DOWN",
    )
