"""Server interceptors: the one place for metrics and for turning errors into gRPC statuses.

`MetricsInterceptor` (outermost) records grpc_server_* metrics with the final status code.
`ErrorInterceptor` maps ChunkscopeError to its status (errors.STATUS_CODES) with rich details
(google.rpc.ErrorInfo always, BadRequest for field violations); any other exception is a bug and
becomes INTERNAL with a generic message, logged with its traceback. A bad request can never stop
the server: nothing here re-raises a non-gRPC exception.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from chunkscope import metrics
from chunkscope.errors import DOMAIN, ChunkscopeError, InvalidArgument, status_code

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
    ) -> AsyncIterator[Any]:
        async for item in _as_async_iter(behavior(request, context)):
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
        async def run(request: Any, context: Any) -> AsyncIterator[Any]:
            async for item in self.stream(method, rpc_type, behavior, request, context):
                yield item

        return run


async def _as_async_iter(result: Any) -> AsyncIterator[Any]:
    """Handlers may be async generators, or coroutines that write via context.write."""
    if inspect.isasyncgen(result):
        async for item in result:
            yield item
    elif inspect.isawaitable(result):
        await result
    else:
        for item in result:
            yield item


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


def _final_code(context: Any, exc: BaseException | None) -> grpc.StatusCode:
    if isinstance(exc, asyncio.CancelledError):
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


class MetricsInterceptor(_WrappingInterceptor):
    """grpc_server_started/handled/handling_seconds, labelled like go-grpc-middleware."""

    def _observe(
        self, method: str, rpc_type: str, started: float, context: Any, exc: BaseException | None
    ) -> None:
        service, name = _split(method)
        code = _final_code(context, exc)
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
        if rpc_type == "client_stream":
            request = self._count_received(method, rpc_type, request)
        exc: BaseException | None = None
        try:
            return await behavior(request, context)
        except BaseException as error:
            exc = error
            raise
        finally:
            self._observe(method, rpc_type, started, context, exc)

    async def stream(
        self, method: str, rpc_type: str, behavior: Behavior, request: Any, context: Any
    ) -> AsyncIterator[Any]:
        started = self._start(method, rpc_type)
        service, name = _split(method)
        sent = metrics.GRPC_MSG_SENT.labels(rpc_type, service, name)
        if rpc_type == "bidi_stream":
            request = self._count_received(method, rpc_type, request)
        exc: BaseException | None = None
        try:
            async for item in _as_async_iter(behavior(request, context)):
                sent.inc()
                yield item
        except BaseException as error:
            exc = error
            raise
        finally:
            self._observe(method, rpc_type, started, context, exc)

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
    """ChunkscopeError -> its status with details; anything else -> INTERNAL (a bug, logged)."""

    async def _abort(self, context: Any, method: str, exc: Exception) -> None:
        if isinstance(exc, ChunkscopeError):
            code, message, error = status_code(exc), exc.message, exc
        else:
            incident = uuid.uuid4().hex[:12]
            log.error("bug in %s (incident %s)", method, incident, exc_info=exc)
            code, message, error = (
                grpc.StatusCode.INTERNAL,
                f"internal error (incident {incident}); the server log has the details",
                None,
            )
        status = rich_status(code, message, error)
        await context.abort(status.code, status.details, status.trailing_metadata)

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
    ) -> AsyncIterator[Any]:
        try:
            async for item in _as_async_iter(behavior(request, context)):
                yield item
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception as exc:
            await self._abort(context, method, exc)
