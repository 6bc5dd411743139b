"""Every Prometheus metric chunkscope exports, defined here and nowhere else.

gRPC metrics use the names and labels of go-grpc-middleware's prometheus provider so existing
dashboards work: grpc_type, grpc_service, grpc_method, grpc_code (Go code names such as
"OK", "InvalidArgument"). Label values are bounded: method names come from the registered services,
model names are operator-chosen and capped by max_models; never request ids, keys or free text.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import Counter, Gauge, Histogram, start_http_server

# Extraction jobs run for minutes, so buckets reach 10 min; the low end resolves ~ms unary calls.
HANDLING_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)  # fmt: skip

_GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")

GRPC_STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", _GRPC_LABELS)
GRPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, regardless of success or failure.",
    (*_GRPC_LABELS, "grpc_code"),
)
GRPC_HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from an RPC's start to its completion on the server.",
    _GRPC_LABELS,
    buckets=HANDLING_BUCKETS,
)
GRPC_MSG_RECEIVED = Counter(
    "grpc_server_msg_received_total", "Stream messages received on the server.", _GRPC_LABELS
)
GRPC_MSG_SENT = Counter(
    "grpc_server_msg_sent_total", "Stream messages sent by the server.", _GRPC_LABELS
)

MODEL_LOAD_SECONDS = Histogram(
    "chunkscope_model_load_seconds",
    "Time to load a model's weights and resolve its hook points.",
    ("format",),
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
MODELS = Gauge("chunkscope_models", "Registered models by state.", ("state",))

# Dictionary ids are bounded label values: dictionaries are few and operator-managed.
DETECTIONS = Counter(
    "chunkscope_detections_total", "Token positions where a chunk fired.", ("dictionary",)
)
# Observed around each dictionary's own matching (not the forward pass, which all dictionaries
# of a batch share, nor the whole request: grpc_server_handling_seconds has that).
DETECTION_MATCH_SECONDS = Histogram(
    "chunkscope_detection_match_seconds",
    "Time to match one dictionary's entries against one batch's hidden states, by dictionary.",
    ("dictionary",),
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
             1.0, 2.5, 5.0, 10.0),
)  # fmt: skip
INTERVENTIONS = Counter(
    "chunkscope_interventions_total", "Interventions applied, per token position.", ("mode",)
)
GENERATED_TOKENS = Counter(
    "chunkscope_generated_tokens_total", "Tokens generated, by arm.", ("arm",)
)
DECODE_STEPS = Counter(
    "chunkscope_decode_steps_total",
    "Decoding steps run on a device (counted where the work happens, so a cancelled "
    "generation shows when it stopped).",
)
QUEUE_DEPTH = Gauge(
    "chunkscope_device_queue_depth",
    "Work items running or queued on a scheduler, by placement (a device, or devices joined "
    "by + when --device-map splits models).",
    ("placement",),
)
_BATCH_KINDS = ("kind",)  # capture, logits (forward batches)
BATCH_ROWS = Histogram(
    "chunkscope_batch_rows",
    "Rows in one coalesced forward batch, by kind of work.",
    _BATCH_KINDS,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
BATCH_TOKENS = Histogram(
    "chunkscope_batch_tokens",
    "Padded tokens (rows x longest row) in one coalesced forward batch, by kind of work.",
    _BATCH_KINDS,
    buckets=(16, 64, 256, 1024, 2048, 4096, 8192, 16384, 65536),
)
QUEUE_WAIT_SECONDS = Histogram(
    "chunkscope_queue_wait_seconds",
    "Time a work item waited on its device before its first forward, by kind "
    "(capture, logits, stream, generate).",
    ("kind",),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ROWS_IN_FLIGHT = Gauge(
    "chunkscope_rows_in_flight",
    "Generate rows (arms) decoding on a scheduler right now, by placement.",
    ("placement",),
)
# Reasons are the constants the server's ResourceExhausted errors carry: a bounded set.
REJECTED = Counter(
    "chunkscope_rejected_total",
    "Requests refused with RESOURCE_EXHAUSTED (limits, admission control, device memory).",
    ("reason",),
)
HOOKS_INSTALLED = Gauge(
    "chunkscope_hooks_installed",
    "chunkscope hooks on the registered models right now (0 between requests; more means a leak).",
)


# The Go names of codes.Code (its String()), which go-grpc-middleware writes; CamelCasing Python's
# enum names would get one wrong (CANCELLED -> Cancelled, where Go spells it Canceled).
_GO_CODE_NAMES = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}


def code_label(code: grpc.StatusCode) -> str:
    """The code's name as go-grpc-middleware writes it (Go's codes.Code String())."""
    return _GO_CODE_NAMES[code]


def serve_metrics(host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Start the /metrics HTTP endpoint on its own port (0 picks one); returns (server, thread)."""
    server, thread = start_http_server(port, addr=host)
    return server, thread
