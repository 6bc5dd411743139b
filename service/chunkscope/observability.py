"""Logs and traces: request ids in every log line, JSON or text logs, OpenTelemetry spans.

Request ids: every RPC gets one (the client's `x-request-id` metadata when it is a sane token,
else a new one), held in REQUEST_ID for the call's task (and the threads `asyncio.to_thread`
starts for it), written in every log record as `request_id`, in the audit log, on the call's
server span, and returned to the client in the trailing metadata.

Tracing is off unless the standard OpenTelemetry environment asks for it: OTEL_TRACES_EXPORTER
(`otlp` or `console`), or an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); OTEL_SDK_DISABLED=true wins. The exporter, endpoint,
headers, sampler and resource (OTEL_SERVICE_NAME, default "chunkscope") come from the same
variables, read by the SDK itself. The gRPC instrumentation makes the server span of each call;
the spans below it are chunkscope's own: `span()` for stages timed where they run, and
`record_span()` for stages the device thread times (queueing, forwards) after the fact.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

REQUEST_ID: ContextVar[str] = ContextVar("chunkscope_request_id", default="")
REQUEST_ID_HEADER = "x-request-id"
# What a client may choose as its request id; anything else is replaced (it reaches the logs).
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_tracer = trace.get_tracer("chunkscope")
_enabled = False


# ----- request ids and logs ------------------------------------------------------------------


def request_id_from(metadata: Any) -> str:
    """The client's x-request-id if it is a sane token, else a new id."""
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and _SANE_ID.match(value):
            return value
    return uuid.uuid4().hex


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", "")
        return f"{line} [request_id={request_id}]" if request_id else line


def configure_logging(level: str, fmt: str) -> None:
    """Logs to stderr as `text` or `json`, every record carrying the call's request id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


# ----- traces ----------------------------------------------------------------------------------


def tracing_requested(environ: Any = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure_tracing() -> Any:
    """Set up the SDK and the gRPC server instrumentation when the environment asks for traces.

    Must run before the gRPC server is created. Returns the tracer provider (to shut down, which
    flushes the spans) or None when tracing is off.
    """
    global _enabled, _tracer
    if not tracing_requested():
        return None
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorServer
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if exporter_name == "console":
        exporter: Any = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
        )
        if protocol.startswith("http"):
            raise ValueError(
                "OTEL_EXPORTER_OTLP_PROTOCOL: chunkscope exports traces over OTLP/gRPC; "
                "set it to grpc (or leave it unset)"
            )
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        raise ValueError(f"OTEL_TRACES_EXPORTER={exporter_name!r}: use otlp, console or none")
    resource = Resource.create(
        {SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "chunkscope")}
    )  # OTEL_RESOURCE_ATTRIBUTES are merged in by Resource.create
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    GrpcAioInstrumentorServer().instrument()
    _tracer = trace.get_tracer("chunkscope")
    _enabled = True
    return provider


def current_context() -> Any:
    """The caller's trace context, for work another thread does on its behalf (None when off)."""
    return otel_context.get_current() if _enabled else None


def tag_request(request_id: str) -> None:
    """Put the request id on the call's server span."""
    if _enabled:
        trace.get_current_span().set_attribute("chunkscope.request_id", request_id)


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """A child span of the current one for a stage of a call (nothing when tracing is off or
    there is no call's span to hang it under)."""
    if not _enabled or not trace.get_current_span().get_span_context().is_valid:
        yield
        return
    with _tracer.start_as_current_span(name, attributes=attributes):
        yield


def record_span(name: str, parent: Any, start_ns: int, end_ns: int, **attributes: Any) -> None:
    """A span timed elsewhere (the device thread), under the trace context `parent`."""
    if parent is None or not _enabled:
        return
    started = _tracer.start_span(name, context=parent, start_time=start_ns, attributes=attributes)
    started.end(end_time=end_ns)
