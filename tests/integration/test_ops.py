"""What operators see: request ids in replies, logs and the audit log; JSON logs; traces sent over
OTLP to a real gRPC receiver; per-concept, per-model and generation metrics on /metrics."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import models_pb2 as mp
from chunkscope_client.v1 import perturbation_pb2 as pp
from support import ServerProcess, start_server

TRAIN = [f"On day {i} the cat slept near the window while the cake cooled." for i in range(14)]
HOOK = "blocks.1.resid_post"


def _scrape(server: ServerProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as r:
        return r.read().decode()


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            out.append((labels, float(line.rsplit(" ", 1)[1])))
    return out


def _setup(c: Client, model: str) -> str:
    c.register_model(model, "tiny-llama", wait=True)
    [d] = c.extract_dictionary(pb.ExtractDictionaryRequest(
        model={"name": model}, hook_points=[HOOK],
        corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
        population_averaging=pb.PopulationAveragingParams(
            concepts=[{"concept": "cat"}, {"concept": "cake"}], n_samples=10, seed=0),
    ))  # fmt: skip
    return str(d.id)


def _detect_request(model: str, dictionary: str, *texts: str) -> dp.DetectRequest:
    return dp.DetectRequest(
        config=dp.DetectionConfig(model={"name": model}, dictionary_ids=[dictionary]),
        inputs=[dp.DetectInput(text=t) for t in texts],
    )


def _generate_request(model: str, dictionary: str) -> pp.GenerateRequest:
    graft = pp.Intervention(chunk=pp.ChunkRef(dictionary_id=dictionary, entry_id=0),
                            mode=pp.INTERVENTION_MODE_ADD, alpha=4.0,
                            positions=pp.Positions(generated=True))  # fmt: skip
    return pp.GenerateRequest(
        model={"name": model}, prompt=dp.DetectInput(text="On day 9 the"),
        interventions=[graft], detect_dictionary_ids=[dictionary], control=True,
        sampling=pp.SamplingParams(max_new_tokens=4),
    )  # fmt: skip


def _trailing_request_id(call: Any) -> str:
    return dict(call.trailing_metadata() or ()).get("x-request-id", "")


# ----- request ids and logs -----------------------------------------------------------------


def test_request_ids_reach_the_reply_the_log_and_the_audit_log(
    model_root: Path, tmp_path: Path
) -> None:
    server = start_server(tmp_path / "data", model_root, "--log-format", "json")
    with Client.connect(server.address, timeout=120) as c:
        # The client's id comes back in the trailing metadata, on success and on errors.
        tagged = (("x-request-id", "ops-list-1"),)
        _, call = c.models.ListModels.with_call(mp.ListModelsRequest(), metadata=tagged)
        assert _trailing_request_id(call) == "ops-list-1"
        with pytest.raises(grpc.RpcError) as err:
            c.models.GetModel(mp.GetModelRequest(name="missing"),
                              metadata=(("x-request-id", "ops-missing-1"),))  # fmt: skip
        assert err.value.code() is grpc.StatusCode.NOT_FOUND
        assert _trailing_request_id(err.value) == "ops-missing-1"
        # Without one, or with one that is not a sane token, the server makes its own.
        _, call = c.models.ListModels.with_call(mp.ListModelsRequest())
        assert re.fullmatch(r"[0-9a-f]{32}", _trailing_request_id(call))
        _, call = c.models.ListModels.with_call(
            mp.ListModelsRequest(), metadata=(("x-request-id", "{evil} id; " + "x" * 300),)
        )
        assert re.fullmatch(r"[0-9a-f]{32}", _trailing_request_id(call))
        # A registration's log lines (its load runs in a task of the call) and audit record.
        c.models.RegisterModel(
            mp.RegisterModelRequest(name="ops-lm", source_path="tiny-llama", wait=True),
            metadata=(("x-request-id", "ops-register-7"),),
        )
    server.terminate()
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= set(e) for e in lines)
    ready = [e for e in lines if "model ops-lm READY" in e["message"]]
    assert ready and ready[0]["request_id"] == "ops-register-7"
    audit = [json.loads(line)
             for line in (tmp_path / "data" / "audit.jsonl").read_text().splitlines()]  # fmt: skip
    [registered] = [a for a in audit if a["method"].endswith("RegisterModel")]
    assert registered["request_id"] == "ops-register-7" and registered["outcome"] == "OK"


# ----- traces -----------------------------------------------------------------------------------


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver: what a collector's OTLP receiver accepts, kept in memory."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        with self.lock:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.spans.extend(scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture()
def receiver() -> Iterator[tuple[_Receiver, int]]:
    sink = _Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield sink, port
    server.stop(0)


def _attrs(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = (
            getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None
        )
    return out


def _tree(sink: _Receiver, method: str, request_id: str, want: set[str]) -> list[Any]:
    """The children of the server span of `method` tagged `request_id`, once `want` are in."""
    deadline = time.monotonic() + 60
    while True:
        with sink.lock:
            spans = list(sink.spans)
        roots = [s for s in spans if s.name.endswith(method)
                 and _attrs(s).get("chunkscope.request_id") == request_id]  # fmt: skip
        if roots:
            root = roots[0]
            children = [
                s for s in spans if s.trace_id == root.trace_id and s.parent_span_id == root.span_id
            ]
            if want <= {s.name for s in children}:
                return children
        if time.monotonic() > deadline:
            names = sorted({s.name for s in spans})
            raise AssertionError(f"no complete trace of {method} ({request_id}); spans: {names}")
        time.sleep(0.2)


def test_one_detect_and_one_generate_as_traces(
    model_root: Path, tmp_path: Path, receiver: tuple[_Receiver, int], monkeypatch: Any
) -> None:
    sink, port = receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "chunkscope-under-test")
    server = start_server(tmp_path / "data", model_root)
    with Client.connect(server.address, timeout=120) as c:
        dictionary = _setup(c, "trace-lm")
        c.detection.Detect(_detect_request("trace-lm", dictionary, TRAIN[2], "A dog."),
                           metadata=(("x-request-id", "trace-detect"),), timeout=60)  # fmt: skip
        steps = list(c.perturbation.Generate(_generate_request("trace-lm", dictionary),
                                             metadata=(("x-request-id", "trace-generate"),),
                                             timeout=60))  # fmt: skip
        assert sum(s.done for s in steps) == 2
    detect = _tree(sink, "DetectionService/Detect", "trace-detect",
                   {"chunkscope.store.load", "chunkscope.queue", "chunkscope.forward",
                    "chunkscope.detect.match"})  # fmt: skip
    by_name = {s.name: s for s in detect}
    queue, forward = by_name["chunkscope.queue"], by_name["chunkscope.forward"]
    assert queue.end_time_unix_nano <= forward.start_time_unix_nano  # queued, then run
    assert _attrs(forward)["kind"] == "capture" and _attrs(forward)["batch_rows"] == 2
    assert forward.end_time_unix_nano <= by_name["chunkscope.detect.match"].start_time_unix_nano
    assert _attrs(by_name["chunkscope.store.load"])["dictionary"] == dictionary
    generate = _tree(sink, "PerturbationService/Generate", "trace-generate",
                     {"chunkscope.interventions", "chunkscope.queue", "chunkscope.prefill",
                      "chunkscope.decode"})  # fmt: skip
    decodes = [s for s in generate if s.name == "chunkscope.decode"]
    assert sorted(_attrs(s)["arm"] for s in decodes) == [0, 1]  # the arm and its control
    assert all(_attrs(s)["tokens"] == 4 for s in decodes)
    assert (
        _attrs(next(s for s in generate if s.name == "chunkscope.interventions"))["interventions"]
        == 1
    )
    server.terminate()


# ----- metrics ----------------------------------------------------------------------------------


def test_concept_model_and_generation_metrics(model_root: Path, tmp_path: Path) -> None:
    # Room for 2 concept series: the first dictionary's 2 fit, the second's spill into "other".
    server = start_server(tmp_path / "data", model_root, "--max-concept-series", "2")
    with Client.connect(server.address, timeout=120) as c:
        first = _setup(c, "metrics-lm")
        [second] = c.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": "metrics-lm"}, hook_points=["blocks.0.resid_post"],
            corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
            population_averaging=pb.PopulationAveragingParams(
                concepts=[{"concept": "window"}, {"concept": "day"}], n_samples=10, seed=0),
        ))  # fmt: skip
        reply = c.detect(_detect_request("metrics-lm", first, TRAIN[3], TRAIN[4], "No animals."))
        fired = {s.label: 0 for s in reply.results[0].summaries}
        for result in reply.results:
            for s in result.summaries:
                fired[s.label] += s.count
        scanned = sum(r.n_tokens for r in reply.results)
        c.detect(_detect_request("metrics-lm", second.id, TRAIN[5]))
        list(c.generate(_generate_request("metrics-lm", first)))
        with pytest.raises(ChunkscopeError):
            c.get_model("nope")
        text = _scrape(server)
    concept = {(s["dictionary"], s["concept"]): v
               for s, v in _samples(text, "chunkscope_concept_detections_total")}  # fmt: skip
    assert concept[(first, "cat")] == fired["cat"] > 0
    assert concept.get((first, "cake"), 0.0) == fired["cake"]
    assert (second.id, "window") not in concept and (second.id, "day") not in concept
    tokens = {s["dictionary"]: v for s, v in _samples(text, "chunkscope_detection_tokens_total")}
    assert tokens[first] == scanned and tokens["other"] > 0
    rate = {s["concept"]: v for s, v in _samples(text, "chunkscope_concept_detection_rate")
            if s["dictionary"] == first}  # fmt: skip
    assert rate["cat"] == pytest.approx(fired["cat"] / scanned)
    assert rate["cake"] == pytest.approx(fired["cake"] / scanned)
    state = {(s["model"], s["state"]): v for s, v in _samples(text, "chunkscope_model_state")}
    assert state[("metrics-lm", "READY")] == 1 and state[("metrics-lm", "LOADING")] == 0
    ttft = dict(_samples(text, "chunkscope_generate_time_to_first_token_seconds_count")[0][0])
    assert ttft["model"] == "metrics-lm"
    counts = {name: v for name in ("time_to_first_token_seconds", "inter_token_seconds",
                                   "tokens_per_second")
              for _, v in _samples(text, f"chunkscope_generate_{name}_count")}  # fmt: skip
    # One Generate of 4 tokens with its control arm: per arm one first token, 3 gaps, one end.
    assert counts == {"time_to_first_token_seconds": 2.0, "inter_token_seconds": 6.0,
                      "tokens_per_second": 2.0}  # fmt: skip
    with Client.connect(server.address, timeout=120) as c:
        c.unregister_model("metrics-lm")
        text = _scrape(server)
    assert not [
        s for s, _ in _samples(text, "chunkscope_model_state") if s["model"] == "metrics-lm"
    ]
    server.terminate()
