"""The interceptor chain on a real grpc.aio server: errors become statuses, metrics see codes."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from chunkscope import metrics
from chunkscope.api.interceptors import (
    AuditInterceptor,
    AuthInterceptor,
    ErrorInterceptor,
    MetricsInterceptor,
    StreamGate,
)
from chunkscope.audit import AuditLog
from chunkscope.auth import KeyFile
from chunkscope.errors import ChunkscopeError, InvalidArgument, NotFound

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


# ----- the whole chain, as server.py builds it ---------------------------------------------------

EXTRACT = "chunkscope.v1.DictionaryService/ExtractDictionary"  # audited, analyst, server stream
STREAM_DETECT = "chunkscope.v1.DetectionService/StreamDetect"  # monitor, bidi stream


async def _extract(request: bytes, context: Any) -> AsyncIterator[bytes]:
    if request == b"bug":
        raise ZeroDivisionError("a bug")
    if request == b"statusless":
        raise ChunkscopeError("a domain error with no status of its own is a bug too")
    for message in (b"progress 1", b"progress 2", b"result"):
        await asyncio.sleep(0.001)  # work between messages, as an extraction does
        yield message


async def _echo(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for message in requests:
        yield message


class _Recorded(KeyFile):
    """A key file that notes on which thread it is read."""

    threads: list[str]

    def refresh(self, *, force: bool = False) -> None:
        self.threads.append(threading.current_thread().name)
        super().refresh(force=force)


async def _chain(tmp: Path, keys: KeyFile | None = None) -> tuple[grpc.aio.Server, int, AuditLog]:
    audit = AuditLog(tmp / "audit.jsonl")
    server = grpc.aio.server(interceptors=[
        MetricsInterceptor(), ErrorInterceptor(), AuditInterceptor(audit),
        AuthInterceptor(keys, frozenset()), StreamGate(8),
    ])  # fmt: skip
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("chunkscope.v1.DictionaryService", {
            "ExtractDictionary": grpc.unary_stream_rpc_method_handler(_extract)}),
        grpc.method_handlers_generic_handler("chunkscope.v1.DetectionService", {
            "StreamDetect": grpc.stream_stream_rpc_method_handler(_echo)}),
    ))  # fmt: skip
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port, audit


def _handled() -> dict[str, float]:
    """grpc_server_handled_total of the fake ExtractDictionary, by code label."""
    service, method = EXTRACT.rsplit("/", 1)
    return {
        code.name: float(
            metrics.GRPC_HANDLED.labels(
                "server_stream", service, method, metrics.code_label(code)
            )._value.get()
        )
        for code in grpc.StatusCode
    }


def test_a_stream_the_client_ends_after_its_last_message_is_recorded_ok(tmp_path: Path) -> None:
    """Clients stop reading at the final message and cancel: that call completed (issue 11.2)."""
    calls = 20

    async def scenario() -> list[dict[str, Any]]:
        lost: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: lost.append(ctx))
        server, port, audit = await _chain(tmp_path)
        before = _handled()

        def client() -> None:  # a raw stub, like a client that stops at the result message
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                extract = channel.unary_stream(f"/{EXTRACT}")
                for _ in range(calls):
                    call = extract(b"go", timeout=30)
                    assert next(m for m in call if m == b"result") == b"result"
                    call.cancel()

        await asyncio.get_running_loop().run_in_executor(None, client)
        for _ in range(100):  # the server sees the cancellations a moment after the client
            if sum(_handled().values()) - sum(before.values()) == calls:
                break
            await asyncio.sleep(0.05)
        await server.stop(None)
        gc.collect()  # reports tasks whose exception nobody retrieved
        await asyncio.sleep(0)
        after = _handled()
        delta = {c: after[c] - before[c] for c in after if after[c] != before[c]}
        assert delta == {"OK": calls}
        audit.close()
        return lost

    lost = asyncio.run(scenario())
    assert lost == []
    outcomes = [json.loads(line)["outcome"] for line in (tmp_path / "audit.jsonl").open()]
    assert outcomes == ["OK"] * calls


def test_every_internal_in_the_audit_log_names_its_incident(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        server, port, audit = await _chain(tmp_path)
        details = []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for request in (b"bug", b"statusless"):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    async for _ in channel.unary_stream(f"/{EXTRACT}")(request, timeout=10):
                        pass
                assert err.value.code() is grpc.StatusCode.INTERNAL
                details.append(str(err.value.details()))
        await server.stop(None)
        audit.close()
        return details

    details = asyncio.run(scenario())
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").open()]
    assert len(records) == len(details) == 2
    for record, detail in zip(records, details, strict=True):
        incident = detail.split("(incident ", 1)[1].split(")", 1)[0]
        assert len(incident) == 12, detail
        assert (record["outcome"], record["detail"]) == ("INTERNAL", f"incident {incident}")


def test_a_revoked_key_ends_its_open_stream_and_the_key_file_is_read_off_the_loop(
    tmp_path: Path,
) -> None:
    """Issue 12.6: an open StreamDetect stops answering once its key is revoked."""
    keys = _Recorded(tmp_path / "keys.json")
    keys.threads = []
    key, record = KeyFile(keys.path).create("monitor")

    async def scenario() -> tuple[int, grpc.aio.AioRpcError]:
        server, port, _ = await _chain(tmp_path, keys)
        answered = 0
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.stream_stream(f"/{STREAM_DETECT}")(
                metadata=(("authorization", f"Bearer {key}"),), timeout=60
            )
            await call.write(b"before")
            assert await call.read() == b"before"
            KeyFile(keys.path).revoke(record.id)  # `chunkscope keys revoke`, another process
            try:
                for i in range(200):  # the server rereads the key file within a second
                    await call.write(b"after %d" % i)
                    if await call.read() == grpc.aio.EOF:
                        break
                    answered += 1
                    await asyncio.sleep(0.05)
                await call.done_writing()
                await call.read()
            except grpc.aio.AioRpcError as exc:
                error = exc
            else:
                pytest.fail(f"the revoked key's stream answered {answered} more inputs")
        await server.stop(None)
        return answered, error

    answered, error = asyncio.run(scenario())
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "no longer valid" in str(error.details())
    assert answered < 100  # refused within about a second of 50 ms steps, not after the stream
    assert keys.threads and set(keys.threads) == {"chunkscope-keys_0"}  # never the loop's thread


def test_a_call_with_several_authorization_headers_is_refused(tmp_path: Path) -> None:
    """Issue 12.7: the last header used to win, so [admin, monitor] acted as monitor."""
    keys = KeyFile(tmp_path / "keys.json")
    admin, _ = keys.create("admin")
    monitor, _ = keys.create("monitor")

    async def scenario() -> list[tuple[grpc.StatusCode, str]]:
        server, port, _ = await _chain(tmp_path, keys)
        seen = []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for pair in ((admin, monitor), ("cks_000000000000_bad", admin), (admin, admin)):
                metadata = tuple(("authorization", f"Bearer {k}") for k in pair)
                call = channel.unary_stream(f"/{EXTRACT}")(b"go", metadata=metadata, timeout=10)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    async for _ in call:
                        pass
                seen.append((err.value.code(), str(err.value.details())))
            one = (("authorization", f"Bearer {admin}"),)
            got = [m async for m in channel.unary_stream(f"/{EXTRACT}")(b"go", metadata=one)]
            assert got == [b"progress 1", b"progress 2", b"result"]
        await server.stop(None)
        return seen

    for code, details in asyncio.run(scenario()):
        assert code is grpc.StatusCode.UNAUTHENTICATED
        assert "2 'authorization' metadata entries; send exactly one" in details


def test_audit_records_are_written_off_the_loop_and_flushed_on_exit(tmp_path: Path) -> None:
    """Issue 11.12: no fsync on the event loop; what is queued is on disk after a normal exit."""
    written_by: list[str] = []

    class Watched(AuditLog):
        def _append(self, lines: list[bytes]) -> None:
            written_by.append(threading.current_thread().name)
            super()._append(lines)

    async def scenario() -> None:
        audit = Watched(tmp_path / "audit.jsonl")
        futures = [audit.submit(method="m", outcome="OK", request={"i": i}) for i in range(50)]
        await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        audit.close()

    asyncio.run(scenario())
    assert written_by and set(written_by) == {"chunkscope-audit"}
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").open()]
    assert [r["request"]["i"] for r in lines] == list(range(50))
    # A process that exits without closing the log still writes what it had queued.
    child = (
        "import sys; from pathlib import Path; from chunkscope.audit import AuditLog\n"
        "log = AuditLog(Path(sys.argv[1]))\n"
        "for i in range(200): log.submit(method='m', outcome='OK', request={'i': i})\n"
    )
    path = tmp_path / "child.jsonl"
    subprocess.run([sys.executable, "-c", child, str(path)], check=True, timeout=120)
    assert [json.loads(line)["request"]["i"] for line in path.open()] == list(range(200))
