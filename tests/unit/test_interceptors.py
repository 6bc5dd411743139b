"""The interceptor chain on a real grpc.aio server: errors become statuses, metrics see codes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from chunkscope import metrics
from chunkscope.api.interceptors import ErrorInterceptor, MetricsInterceptor
from chunkscope.errors import InvalidArgument, NotFound

SERVICE = "test.v1.Probe"


async def _unary(request: bytes, context: Any) -> bytes:
    if request == b"bug":
        raise ZeroDivisionError("a bug, not the caller's fault")
    if request == b"bad":
        raise InvalidArgument.field("payload", "must not be 'bad'")
    return request.upper()


async def _stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"one"
    yield b"two"
    if request == b"missing":
        raise NotFound("nothing here", reason="THING_NOT_FOUND", metadata={"thing": "x"})


def _handlers() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "Stream": grpc.unary_stream_rpc_method_handler(_stream),
    })  # fmt: skip


def _count(method: str, code: str) -> float:
    value = metrics.GRPC_HANDLED.labels(
        "unary" if method == "Unary" else "server_stream", SERVICE, method, code
    )._value.get()
    return float(value)


def test_errors_map_to_statuses_and_metrics_record_the_final_code() -> None:
    async def scenario() -> None:
        server = grpc.aio.server(interceptors=[MetricsInterceptor(), ErrorInterceptor()])
        server.add_generic_rpc_handlers((_handlers(),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        before = {
            (m, c): _count(m, c)
            for m, c in [("Unary", "OK"), ("Unary", "Internal"), ("Unary", "InvalidArgument"),
                         ("Stream", "OK"), ("Stream", "NotFound")]
        }  # fmt: skip
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            unary = channel.unary_unary(f"/{SERVICE}/Unary")
            stream = channel.unary_stream(f"/{SERVICE}/Stream")
            assert await unary(b"hello", timeout=5) == b"HELLO"

            call = unary(b"bad", timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert err.value.details() == "payload: must not be 'bad'"
            status = await rpc_status.aio.from_call(call)
            kinds = {d.type_url.rsplit(".", 1)[-1] for d in status.details}
            assert kinds == {"ErrorInfo", "BadRequest"}
            bad = error_details_pb2.BadRequest()
            next(d for d in status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
            assert bad.field_violations[0].field == "payload"

            with pytest.raises(grpc.aio.AioRpcError) as err:
                await unary(b"bug", timeout=5)
            assert err.value.code() is grpc.StatusCode.INTERNAL
            assert "incident" in err.value.details()
            assert "ZeroDivision" not in err.value.details()  # no internals leak to callers

            got, call = [], stream(b"missing", timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for item in call:
                    got.append(item)
            assert got == [b"one", b"two"]
            assert err.value.code() is grpc.StatusCode.NOT_FOUND
            info = error_details_pb2.ErrorInfo()
            (await rpc_status.aio.from_call(call)).details[0].Unpack(info)
            assert (info.reason, dict(info.metadata)) == ("THING_NOT_FOUND", {"thing": "x"})
            assert [x async for x in stream(b"fine", timeout=5)] == [b"one", b"two"]

            # The server survived the bug and still answers.
            assert await unary(b"again", timeout=5) == b"AGAIN"
        await server.stop(None)
        delta = {k: _count(*k) - v for k, v in before.items()}
        assert delta == {
            ("Unary", "OK"): 2, ("Unary", "Internal"): 1, ("Unary", "InvalidArgument"): 1,
            ("Stream", "OK"): 1, ("Stream", "NotFound"): 1,
        }  # fmt: skip

    asyncio.run(scenario())
