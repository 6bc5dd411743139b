"""Every Prometheus metric chunkscope exports, defined here and nowhere else.

gRPC metrics use the names and labels of go-grpc-middleware's prometheus provider so existing
dashboards work: grpc_type, grpc_service, grpc_method, grpc_code (Go code names such as
"OK", "InvalidArgument"). Label values are bounded: method names come from the registered services,
model names are operator-chosen and capped by max_models; never request ids, keys or free text.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

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

# The OpenAI-compatible HTTP front (--http-port): routes are its fixed paths (or "other"), codes
# the HTTP status. Its chat completions also count in the Generate metrics below (one path).
HTTP_REQUESTS = Counter(
    "chunkscope_http_requests_total",
    "HTTP front requests completed, by route, method and HTTP status code.",
    ("route", "method", "code"),
)
HTTP_REQUEST_SECONDS = Histogram(
    "chunkscope_http_request_seconds",
    "Time from an HTTP front request's start to its completion (a stream's last event).",
    ("route", "method"),
    buckets=HANDLING_BUCKETS,
)

MODEL_LOAD_SECONDS = Histogram(
    "chunkscope_model_load_seconds",
    "Time to load a model's weights and resolve its hook points.",
    ("format",),
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
MODELS = Gauge("chunkscope_models", "Registered models by state.", ("state",))
MODEL_STATE = Gauge(
    "chunkscope_model_state",
    "1 for each registered model's current state on this server (LOADING, READY, FAILED), 0 for "
    "its other states.",
    ("model", "state"),
)

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
# Guard checks (api/guard.py): one per Check answered with a verdict; rules that fired per action
# (ALLOW rules are record-only: this counter is their record).
GUARD_VERDICTS = Counter(
    "chunkscope_guard_verdicts_total", "Check verdicts, by policy.", ("policy", "verdict")
)
GUARD_RULES_FIRED = Counter(
    "chunkscope_guard_rules_fired_total",
    "Policy rules that fired in a Check.",
    ("policy", "action"),
)
# The Envoy external processor (api/ext_proc.py): one per verdict it got, by phase (request or
# response body) and mode; in observe mode verdict="block" counts what would have been blocked.
EXT_PROC_VERDICTS = Counter(
    "chunkscope_ext_proc_verdicts_total",
    "Verdicts of the Envoy external processor's checks, by policy, phase, mode and verdict.",
    ("policy", "phase", "mode", "verdict"),
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

# Generation as users feel it, per model: the wait for the first token of an arm, the gaps
# between its tokens, and its rate over the whole arm.
GENERATE_TTFT_SECONDS = Histogram(
    "chunkscope_generate_time_to_first_token_seconds",
    "Time from a Generate call's start to the first token of each arm.",
    ("model",),
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
GENERATE_INTER_TOKEN_SECONDS = Histogram(
    "chunkscope_generate_inter_token_seconds",
    "Time between consecutive tokens of one Generate arm.",
    ("model",),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
GENERATE_TOKENS_PER_SECOND = Histogram(
    "chunkscope_generate_tokens_per_second",
    "Tokens per second of each finished Generate arm, from the call's start to the arm's end.",
    ("model",),
    buckets=(0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0),
)

# Per-concept detection: label sets bounded by --max-concept-series (ConceptMetrics).
CONCEPT_DETECTIONS = Counter(
    "chunkscope_concept_detections_total",
    "Token positions where a concept (a dictionary entry's label) fired, in Detect and "
    'StreamDetect; beyond --max-concept-series label sets, under dictionary and concept "other".',
    ("model", "dictionary", "concept"),
)
DETECTION_TOKENS = Counter(
    "chunkscope_detection_tokens_total",
    "Token positions a dictionary scanned in Detect and StreamDetect (the denominator of "
    'detection rates); "other" for dictionaries whose concepts are beyond the bound.',
    ("model", "dictionary"),
)
CONCEPT_SERIES_OVERFLOW = Counter(
    "chunkscope_concept_series_overflow_total",
    'Detections counted under "other" because --max-concept-series label sets were taken.',
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


class ConceptMetrics:
    """Per-concept detection counters with a bound on label sets, and the detection-rate gauge.

    `chunkscope_concept_detection_rate{model, dictionary, concept}` is the fraction of the token
    positions a dictionary scanned in the last --detection-rate-window-seconds where the concept
    fired: a drift signal (alert when it moves away from its usual level). It is computed at
    scrape time from 10-second buckets. Thread-safe (observed from the event loop, read by the
    scrape thread).
    """

    BUCKET_SECONDS = 10.0

    def __init__(self, max_series: int = 1000, window_seconds: float = 300.0) -> None:
        self.max_series = max_series
        self.window = window_seconds
        self._lock = threading.Lock()
        self._series: set[tuple[str, str, str]] = set()
        self._fired: dict[tuple[str, str, str], deque[list[float]]] = {}
        self._scanned: dict[tuple[str, str], deque[list[float]]] = {}

    def configure(self, max_series: int, window_seconds: float) -> None:
        with self._lock:
            self.max_series, self.window = max_series, window_seconds

    def observe(self, model: str, dictionary: str, scanned: int, fired: dict[str, int]) -> None:
        """One dictionary over `scanned` token positions: how often each of its concepts fired
        (every concept, zeros included, so the rate of a silent concept is 0, not absent)."""
        now = time.monotonic()
        with self._lock:
            admitted: dict[tuple[str, str, str], int] = {}
            overflowed, beyond = 0, False
            for concept, count in fired.items():
                key = (model, dictionary, concept)
                if key in self._series or len(self._series) < self.max_series:
                    self._series.add(key)
                    admitted[key] = count
                else:
                    beyond, overflowed = True, overflowed + count
            for key, count in admitted.items():
                if count:
                    CONCEPT_DETECTIONS.labels(*key).inc(count)
                self._add(self._fired.setdefault(key, deque()), now, count)
            if admitted:
                DETECTION_TOKENS.labels(model, dictionary).inc(scanned)
                self._add(self._scanned.setdefault((model, dictionary), deque()), now, scanned)
            if beyond:
                other = (model, "other", "other")
                if overflowed:
                    CONCEPT_SERIES_OVERFLOW.inc(overflowed)
                    CONCEPT_DETECTIONS.labels(*other).inc(overflowed)
                DETECTION_TOKENS.labels(model, "other").inc(scanned)
                self._add(self._fired.setdefault(other, deque()), now, overflowed)
                self._add(self._scanned.setdefault((model, "other"), deque()), now, scanned)

    def _add(self, buckets: deque[list[float]], now: float, count: float) -> None:
        start = now - now % self.BUCKET_SECONDS
        if buckets and buckets[-1][0] == start:
            buckets[-1][1] += count
        else:
            buckets.append([start, count])

    def _total(self, buckets: deque[list[float]], since: float) -> float:
        while buckets and buckets[0][0] + self.BUCKET_SECONDS <= since:
            buckets.popleft()
        return sum(count for _, count in buckets)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "chunkscope_concept_detection_rate",
            "Fraction of the token positions a dictionary scanned in the last "
            "--detection-rate-window-seconds where the concept fired.",
            labels=("model", "dictionary", "concept"),
        )
        since = time.monotonic() - self.window
        with self._lock:
            for (model, dictionary, concept), fired in self._fired.items():
                scanned = self._total(self._scanned.get((model, dictionary), deque()), since)
                count = self._total(fired, since)
                if scanned > 0:
                    family.add_metric([model, dictionary, concept], count / scanned)
        yield family


CONCEPTS = ConceptMetrics()
REGISTRY.register(CONCEPTS)
