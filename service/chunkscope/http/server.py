"""uvicorn inside the gRPC server's event loop: bound before `ready`, stopped with the drain.

The socket is bound here (so a port in use fails start-up, as gRPC's does) and handed to uvicorn;
uvicorn installs no signal handlers (the server owns SIGTERM/SIGINT and drains both fronts).
TLS uses the same --tls-cert/--tls-key (and --tls-client-ca for client certificates) as gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
from collections.abc import Iterator

import uvicorn

from chunkscope.config import Settings
from chunkscope.http.app import Front


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the chunkscope server handles the signals and stops us (HttpServer.stop)


class HttpServer:
    """The running front: its port, and stop() for a graceful shutdown."""

    def __init__(self, server: _Server, task: asyncio.Task[None], port: int) -> None:
        self.server, self.task, self.port = server, task, port

    async def stop(self) -> None:
        """Stop accepting, let requests finish (streams end at their next token), then exit."""
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only, not a live port
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} for --http-port: {exc.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def start_http(settings: Settings, front: Front) -> HttpServer:
    sock = _bind(settings.host, settings.http_port)
    tls: dict[str, object] = {}
    if settings.tls_cert:
        tls = {"ssl_certfile": settings.tls_cert, "ssl_keyfile": settings.tls_key}
        if settings.tls_client_ca:
            tls |= {"ssl_ca_certs": settings.tls_client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    config = uvicorn.Config(
        front.app(),
        http="h11",
        lifespan="off",
        log_config=None,  # the server's logging, not uvicorn's
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.grace_seconds),
        **tls,  # type: ignore[arg-type]
    )
    server = _Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise OSError("the HTTP front stopped during start-up")
        await asyncio.sleep(0.01)
    return HttpServer(server, task, sock.getsockname()[1])
