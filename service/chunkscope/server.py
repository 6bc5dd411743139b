"""The gRPC server: wiring of servicers, interceptors, health, reflection, metrics and shutdown.

Start-up order: bind the port (refusing a port another process holds: so_reuseport is off), health
NOT_SERVING, restore the registry, then SERVING. On SIGTERM/SIGINT: health NOT_SERVING, open
streams end with UNAVAILABLE, no new RPCs are accepted, in-flight unary calls finish within the
grace period, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2, external_processor_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from chunkscope import __version__, metrics, observability
from chunkscope.api.analysis import AnalysisServicer
from chunkscope.api.detection import DetectionServicer
from chunkscope.api.dictionaries import DictionaryServicer
from chunkscope.api.ext_proc import ExtProcServicer
from chunkscope.api.guard import GuardServicer
from chunkscope.api.interceptors import (
    AuditInterceptor,
    AuthInterceptor,
    ErrorInterceptor,
    MetricsInterceptor,
    RequestIdInterceptor,
    StreamGate,
)
from chunkscope.api.models import ModelServicer
from chunkscope.api.perturbation import PerturbationServicer
from chunkscope.api.presets import Presets
from chunkscope.audit import AuditLog
from chunkscope.auth import KeyFile
from chunkscope.config import Settings
from chunkscope.engine.chunks import DetectorCache
from chunkscope.engine.extraction import Extractor
from chunkscope.engine.registry import ModelRegistry
from chunkscope.http.app import Front
from chunkscope.http.server import HttpServer, start_http
from chunkscope.store import Store, open_store
from chunkscope.store.dictionaries import DictionaryStore
from chunkscope_client.v1 import (
    analysis_pb2,
    analysis_pb2_grpc,
    detection_pb2,
    detection_pb2_grpc,
    dictionaries_pb2,
    dictionaries_pb2_grpc,
    guard_pb2,
    guard_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    perturbation_pb2,
    perturbation_pb2_grpc,
)

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    models_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name,
    dictionaries_pb2.DESCRIPTOR.services_by_name["DictionaryService"].full_name,
    detection_pb2.DESCRIPTOR.services_by_name["DetectionService"].full_name,
    perturbation_pb2.DESCRIPTOR.services_by_name["PerturbationService"].full_name,
    analysis_pb2.DESCRIPTOR.services_by_name["AnalysisService"].full_name,
    guard_pb2.DESCRIPTOR.services_by_name["GuardService"].full_name,
    external_processor_pb2.DESCRIPTOR.services_by_name["ExternalProcessor"].full_name,
)


@dataclass
class RunningServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    registry: ModelRegistry
    dictionaries: DictionaryStore
    streams: StreamGate
    port: int
    metrics_port: int | None
    store: Store
    tracing: Any = None  # the tracer provider when OTEL_* asks for traces
    http: HttpServer | None = None  # the OpenAI-compatible front (--http-port)

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)

    async def drain(self, grace: float) -> None:
        """NOT_SERVING, stop accepting, give in-flight RPCs `grace` seconds, release models."""
        await self.health.enter_graceful_shutdown()
        self.streams.draining.set()  # the HTTP front's streams end too; new requests get 503
        stops = [self.server.stop(grace)]
        if self.http is not None:
            stops.append(self.http.stop())
        await asyncio.gather(*stops)
        await self.registry.close()
        self.store.close()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)  # flushes the spans not yet sent


async def start(settings: Settings) -> RunningServer:
    """Bind and start the server; health stays NOT_SERVING until the registry is restored."""
    options = [
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]
    streams = StreamGate(settings.max_concurrent_streams)
    keys = _keys(settings)
    audit = AuditLog(settings.audit_path)
    tracing = observability.configure_tracing()  # before the server: it instruments grpc.aio
    server = grpc.aio.server(
        interceptors=[
            RequestIdInterceptor(),
            MetricsInterceptor(),
            ErrorInterceptor(),
            AuditInterceptor(audit),
            AuthInterceptor(keys, settings.open_service_names),
            streams,
        ],
        options=options,
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
    )
    store = await asyncio.to_thread(open_store, settings)  # connects and migrates: off the loop
    registry = ModelRegistry(settings, store.models)
    metrics.CONCEPTS.configure(settings.max_concept_series, settings.detection_rate_window_seconds)
    metrics.HOOKS_INSTALLED.set_function(registry.hooks_installed)
    dictionaries = store.dictionaries
    extractor = Extractor(registry, dictionaries, settings.max_capture_bytes)
    models_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(registry), server)
    detectors = DetectorCache(dictionaries)
    dictionaries_pb2_grpc.add_DictionaryServiceServicer_to_server(
        DictionaryServicer(extractor, dictionaries, detectors, settings), server
    )
    detection_pb2_grpc.add_DetectionServiceServicer_to_server(
        DetectionServicer(
            registry, detectors, settings.max_input_tokens, settings.max_inputs_per_request
        ),
        server,
    )
    assert store.presets is not None
    presets = Presets(store.presets)  # one parsed-version cache for Generate and GuardService
    perturbation = PerturbationServicer(
        registry, detectors, settings.max_input_tokens, settings.max_new_tokens, presets
    )
    perturbation_pb2_grpc.add_PerturbationServiceServicer_to_server(perturbation, server)
    analysis_pb2_grpc.add_AnalysisServiceServicer_to_server(
        AnalysisServicer(
            registry,
            max_capture_bytes=settings.max_capture_bytes,
            max_samples=settings.max_analysis_samples,
            max_steps=settings.max_analysis_steps,
            max_layers=settings.max_analysis_layers,
        ),
        server,
    )
    assert store.policies is not None
    guard = GuardServicer(registry, detectors, store.policies, dictionaries,
                          settings.max_input_tokens, settings.max_inputs_per_request,
                          presets)  # fmt: skip
    guard_pb2_grpc.add_GuardServiceServicer_to_server(guard, server)
    external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(
        ExtProcServicer(guard, settings.ext_proc_policy, settings.ext_proc_mode), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{settings.host}:{settings.port}"
    try:
        credentials = _tls(settings)
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {address}: {exc} (is another server using it?)") from None
    if port == 0:
        raise OSError(f"cannot listen on {address} (is another server using it?)")
    metrics_port = None
    if settings.metrics_port >= 0:
        http, _ = metrics.serve_metrics(settings.host, settings.metrics_port)
        metrics_port = http.server_port
    front_http = None
    if settings.http_port:
        front = Front(registry, perturbation, keys, audit, streams,
                      settings.max_concurrent_rpcs, settings.max_message_bytes, guard)  # fmt: skip
        front_http = await start_http(settings, front)
    running = RunningServer(
        server,
        health_servicer,
        registry,
        dictionaries,
        streams,
        port,
        metrics_port,
        store,
        tracing,
        front_http,
    )
    await running.set_serving(False)
    await server.start()
    await registry.restore()
    loop = asyncio.get_running_loop()

    def changed() -> None:  # on the store's listener thread
        with contextlib.suppress(RuntimeError):  # the loop closed: the server is stopping
            loop.call_soon_threadsafe(registry.request_sync)

    store.watch(changed)
    await running.set_serving(True)
    return running


def _keys(settings: Settings) -> KeyFile | None:
    """The API key file, or None when auth is disabled (said loudly: anyone may do anything)."""
    if settings.auth == "disabled":
        log.warning(
            "AUTH DISABLED (--auth disabled): every client may register models, delete "
            "dictionaries and steer generation. Use only on a trusted loopback."
        )
        return None
    keys = KeyFile(settings.keys_path)
    if not any(r.active for r in keys.records()):
        log.warning(
            "no active API keys in %s: every call but health will be refused. Create one with "
            "`chunkscope keys create --data-dir %s --role admin`",
            settings.keys_path,
            settings.data_dir,
        )
    return keys


def _tls(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS from --tls-cert/--tls-key; with --tls-client-ca, clients must present a certificate."""
    if not settings.tls_cert:
        return None
    with open(settings.tls_cert, "rb") as cert, open(settings.tls_key, "rb") as key:
        pair = (key.read(), cert.read())
    client_ca = None
    if settings.tls_client_ca:
        with open(settings.tls_client_ca, "rb") as ca:
            client_ca = ca.read()
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


async def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT, then drain gracefully. Returns the exit status."""
    running = await start(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # One JSON line on stdout announces readiness (tests and scripts read the ports from it).
    print(
        json.dumps(
            {
                "event": "ready",
                "version": __version__,
                "grpc_port": running.port,
                "metrics_port": running.metrics_port,
                "http_port": running.http.port if running.http else None,
                "device": str(running.registry.device),
                "tls": bool(settings.tls_cert),
                "auth": settings.auth,
            }
        ),
        flush=True,
    )
    log.info(
        "chunkscope %s serving on %s:%d (metrics %s, HTTP front %s, device %s, roots %s)",
        __version__,
        settings.host,
        running.port,
        running.metrics_port,
        running.http.port if running.http else "off",
        running.registry.device,
        ", ".join(map(str, settings.roots)),
    )
    await stop.wait()
    log.info("shutting down: draining in-flight RPCs for up to %.0fs", settings.grace_seconds)
    await running.drain(settings.grace_seconds)
    log.info("stopped")
    sys.stdout.flush()
    return 0
