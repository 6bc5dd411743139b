"""AnalysisService: proto <-> domain for representation comparison and BIMT connection cost.

The science lives in chunkscope.analysis (pure functions); capturing server-side states lives in
chunkscope.engine.trajectories and the recurrent-model side of BIMT in chunkscope.engine.rnn_layout.
Here: validation (INVALID_ARGUMENT naming the field, RESOURCE_EXHAUSTED beyond the configured
limits), mapping to and from the protos, and running the measures on a worker thread whose
progress is streamed and which stops at the next step when the call is cancelled or its deadline
passes.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import numpy as np

from chunkscope.analysis import bimt, compare, dsa, gw, layers
from chunkscope.analysis.states import States
from chunkscope.api import tensors
from chunkscope.corpus import Inputs, check_inputs
from chunkscope.engine.recurrent import RecurrentLM
from chunkscope.engine.registry import ModelRegistry
from chunkscope.engine.relay import relay
from chunkscope.engine.rnn_layout import RecurrentNetwork
from chunkscope.engine.trajectories import STATE_DTYPE, CaptureProgress, capture_states
from chunkscope.errors import FieldViolation, InvalidArgument, ResourceExhausted
from chunkscope_client.v1 import analysis_pb2 as pb
from chunkscope_client.v1 import analysis_pb2_grpc, common_pb2

T = TypeVar("T")

DEFAULT_MAX_SAMPLES = 2000  # GW samples one request may ask for
DEFAULT_MAX_STEPS = 200_000  # DSA time steps one request may ask for
DEFAULT_MAX_LAYERS = 64  # layers one LayerSimilarity call may compare
MAX_INPUTS, DEFAULT_MAX_TOKENS, MAX_TOKENS = 1024, 512, 1 << 16
MAX_NETWORK_PARAMS = 4_000_000

_MEASURES = {
    pb.MEASURE_LINEAR_CKA: "linear_cka",
    pb.MEASURE_PROCRUSTES: "procrustes",
    pb.MEASURE_GROMOV_WASSERSTEIN: "gromov_wasserstein",
    pb.MEASURE_DSA: "dsa",
    pb.MEASURE_DSA_EIGENVALUES: "dsa_eigenvalues",
}
_TO_MEASURE = {v: k for k, v in _MEASURES.items()}
_METRICS = {
    pb.DISTANCE_METRIC_UNSPECIFIED: "euclidean",
    pb.DISTANCE_METRIC_EUCLIDEAN: "euclidean",
    pb.DISTANCE_METRIC_SQEUCLIDEAN: "sqeuclidean",
    pb.DISTANCE_METRIC_COSINE: "cosine",
}
_NORMS = {
    pb.COST_NORMALIZATION_UNSPECIFIED: "mean",
    pb.COST_NORMALIZATION_MEAN: "mean",
    pb.COST_NORMALIZATION_MAX: "max",
    pb.COST_NORMALIZATION_NONE: "none",
}
_INITS = {
    pb.GW_INIT_UNSPECIFIED: "best_of_both",
    pb.GW_INIT_PRODUCT: "product",
    pb.GW_INIT_IDENTITY: "identity",
    pb.GW_INIT_BEST_OF_BOTH: "best_of_both",
}
_POOLING = {
    pb.POOLING_UNSPECIFIED: "all",
    pb.POOLING_ALL_TOKENS: "all",
    pb.POOLING_LAST_TOKEN: "last",
    pb.POOLING_MEAN: "mean",
}


class _Cancelled(Exception):
    """Raised inside a worker thread when its call was cancelled."""


def _enum(table: dict[Any, str], value: int, field: str) -> str:
    if value not in table:
        raise InvalidArgument.field(field, f"unknown enum value {value}")
    return table[value]


# ----- request -> domain ------------------------------------------------------------------------


def _params(p: pb.MeasureParams, field: str, max_samples: int, max_steps: int) -> compare.Params:
    g, d = p.gromov_wasserstein, p.dsa
    gwp = gw.GWParams(
        metric=_enum(_METRICS, g.metric, f"{field}.gromov_wasserstein.metric"),
        normalization=_enum(_NORMS, g.normalization, f"{field}.gromov_wasserstein.normalization"),
        max_samples=g.max_samples or 300, seed=g.seed, max_iter=g.max_iter or 1000,
        tol=g.tol or 1e-9, init=_enum(_INITS, g.init, f"{field}.gromov_wasserstein.init"),
    )  # fmt: skip
    dsp = dsa.DSAParams(
        n_delays=d.n_delays or 1, delay_interval=d.delay_interval or 1, rank=d.rank,
        ridge=d.ridge, iters=d.iters or 500, lr=d.learning_rate or 0.05,
        restarts=d.restarts or 4, seed=d.seed, max_samples=d.max_samples or 20_000,
    )  # fmt: skip
    for name, check in (("gromov_wasserstein", gwp.validate), ("dsa", dsp.validate)):
        try:
            check()
        except ValueError as exc:
            key = str(exc).split(" ", 1)[0]
            raise InvalidArgument.field(f"{field}.{name}.{key}", str(exc)) from None
    if gwp.max_samples > max_samples:
        raise ResourceExhausted(
            f"{field}.gromov_wasserstein.max_samples = {gwp.max_samples} exceeds this server's "
            f"limit of {max_samples} samples (--max-analysis-samples); ask for fewer",
            reason="ANALYSIS_TOO_LARGE",
        )
    if dsp.max_samples > max_steps:
        raise ResourceExhausted(
            f"{field}.dsa.max_samples = {dsp.max_samples} exceeds this server's limit of "
            f"{max_steps} time steps (--max-analysis-steps); ask for fewer",
            reason="ANALYSIS_TOO_LARGE",
        )
    return compare.Params(gwp, dsp)


def _array(t: common_pb2.Tensor, field: str, ndims: tuple[int, ...] = (2, 3)) -> np.ndarray:
    if t.dtype not in (common_pb2.DTYPE_FLOAT32, common_pb2.DTYPE_FLOAT64):
        raise InvalidArgument.field(f"{field}.dtype", "states must be DTYPE_FLOAT32 or FLOAT64")
    a = tensors.from_proto(t, field)
    if a.ndim not in ndims:
        want = " or ".join({2: "[samples, units]", 3: "[trials, time, units]", 1: "[n]"}[n]
                           for n in ndims)  # fmt: skip
        raise InvalidArgument.field(f"{field}.shape", f"got {list(a.shape)}; expected {want}")
    if 0 in a.shape:
        raise InvalidArgument.field(f"{field}.shape", f"got {list(a.shape)}; no dimension may be 0")
    if not np.all(np.isfinite(a)):
        raise InvalidArgument.field(f"{field}.data", "contains NaN or infinity")
    return a.astype(np.float64)


def _corpus(corpus: Any, field: str) -> Inputs:
    kind = corpus.WhichOneof("source")
    if kind == "texts":
        return Inputs(texts=tuple(corpus.texts.texts))
    if kind == "sequences":
        return Inputs(sequences=tuple(tuple(s.symbols) for s in corpus.sequences.sequences))
    if kind == "path":
        raise InvalidArgument.field(
            f"{field}.path", "corpus files are not read by AnalysisService; send texts or sequences"
        )
    raise InvalidArgument.field(field, "required: texts (language models) or sequences (RNNs)")


def _measure_error(exc: ValueError, field: str) -> InvalidArgument:
    return InvalidArgument.field(field, f"cannot compute: {exc}")


# ----- the servicer -----------------------------------------------------------------------------


class AnalysisServicer(analysis_pb2_grpc.AnalysisServiceServicer):
    def __init__(
        self,
        registry: ModelRegistry,
        *,
        max_capture_bytes: int = 4 * 1024**3,
        max_samples: int = DEFAULT_MAX_SAMPLES,
        max_steps: int = DEFAULT_MAX_STEPS,
        max_layers: int = DEFAULT_MAX_LAYERS,
    ) -> None:
        self.registry = registry
        self.max_capture_bytes = max_capture_bytes
        self.max_samples = max_samples
        self.max_steps = max_steps
        self.max_layers = max_layers
        self._lock = asyncio.Lock()  # analyses are CPU-heavy: one at a time

    # --- work on a thread, with progress and cancellation ---

    async def _work(
        self, fn: Callable[[Callable[[int, int], None]], T], detail: str, started: float
    ) -> AsyncIterator[pb.AnalysisProgress | tuple[T]]:
        loop = asyncio.get_running_loop()
        cancel = threading.Event()
        queue: asyncio.Queue[pb.AnalysisProgress] = asyncio.Queue()

        def progress(done: int, total: int) -> None:
            if cancel.is_set():
                raise _Cancelled
            event = pb.AnalysisProgress(
                phase=pb.ANALYSIS_PHASE_COMPUTE, detail=detail, items_done=done,
                items_total=total, elapsed_seconds=time.perf_counter() - started,
            )  # fmt: skip
            loop.call_soon_threadsafe(queue.put_nowait, event)

        future = loop.run_in_executor(None, fn, progress)
        try:
            async for event in relay(queue, future):
                yield event
            yield (await future,)
        finally:
            cancel.set()  # a cancelled call stops its thread at the next progress report

    # --- capture ---

    async def _capture(
        self, model_ref: Any, hook_points: list[str], corpus: Any, max_tokens: int, pooling: str,
        field: str, started: float,
    ) -> AsyncIterator[pb.AnalysisProgress | dict[str, States]]:  # fmt: skip
        if not model_ref.name:
            raise InvalidArgument.field(f"{field}.model.name", "required: a registered model")
        model = self.registry.ready(model_ref.name, model_ref.content_hash)
        for i, name in enumerate(hook_points):
            try:
                model.adapter.resolve(name)
            except InvalidArgument as exc:
                key = (
                    f"{field}.hook_point" if len(hook_points) == 1 else f"{field}.hook_points[{i}]"
                )
                raise InvalidArgument.field(key, exc.violations[0].description) from None
        inputs = _corpus(corpus, f"{field}.inputs")
        check_inputs(inputs, f"{field}.inputs", symbols=model.symbols)
        if len(inputs) > MAX_INPUTS:
            raise InvalidArgument.field(f"{field}.inputs", f"at most {MAX_INPUTS} inputs")
        if not 0 <= max_tokens <= MAX_TOKENS:
            raise InvalidArgument.field(f"{field}.max_tokens", f"must be in 0..{MAX_TOKENS}")
        limit = max_tokens or (MAX_TOKENS * 64 if model.is_recurrent else DEFAULT_MAX_TOKENS)

        def admit(rows: int) -> None:
            held = rows * model.hidden_size * np.dtype(STATE_DTYPE).itemsize * len(hook_points)
            if held > self.max_capture_bytes:
                raise ResourceExhausted(
                    f"the inputs need more than {self.max_capture_bytes} bytes of hidden states "
                    f"({len(hook_points)} hook points x {rows}+ tokens x {model.hidden_size}); "
                    "send fewer or shorter inputs, or raise --max-capture-bytes",
                    reason="CAPTURE_TOO_LARGE",
                )

        async for event in capture_states(self.registry, model_ref.name, model_ref.content_hash,
                                          inputs, hook_points, limit, pooling, admit):  # fmt: skip
            if isinstance(event, CaptureProgress):
                yield pb.AnalysisProgress(
                    phase=pb.ANALYSIS_PHASE_CAPTURE, detail=model_ref.name, items_done=event.done,
                    items_total=event.total, elapsed_seconds=time.perf_counter() - started,
                )  # fmt: skip
            else:
                yield event

    async def _state_set(
        self, s: pb.StateSet, field: str, started: float
    ) -> AsyncIterator[pb.AnalysisProgress | States]:
        kind = s.WhichOneof("source")
        if kind == "tensor":
            yield States.from_array(_array(s.tensor, f"{field}.tensor"))
            return
        if kind != "captured":
            raise InvalidArgument.field(field, "required: a tensor or captured states")
        c = s.captured
        if not c.hook_point:
            raise InvalidArgument.field(f"{field}.captured.hook_point", "required")
        pooling = _enum(_POOLING, c.pooling, f"{field}.captured.pooling")
        async for event in self._capture(c.model, [c.hook_point], c.inputs, c.max_tokens,
                                         pooling, f"{field}.captured", started):  # fmt: skip
            if isinstance(event, dict):
                yield event[c.hook_point]
            else:
                yield event

    # --- RPCs ---

    async def CompareRepresentations(
        self, request: pb.CompareRepresentationsRequest, context: Any
    ) -> AsyncIterator[pb.CompareRepresentationsResponse]:
        started = time.perf_counter()
        measures = [_enum(_MEASURES, m, f"measures[{i}]") for i, m in enumerate(request.measures)]
        violations = []
        if not measures:
            violations.append(FieldViolation(
                "measures", f"required: at least one of {[pb.Measure.Name(v) for v in _MEASURES]}"
            ))  # fmt: skip
        if len(set(measures)) != len(measures):
            violations.append(FieldViolation("measures", "lists a measure twice"))
        for name in ("a", "b"):
            if not request.HasField(name):
                violations.append(FieldViolation(name, "required: a tensor or captured states"))
        if violations:
            raise InvalidArgument(violations)
        params = _params(request.params, "params", self.max_samples, self.max_steps)
        sets: list[States] = []
        for name in ("a", "b"):
            async for event in self._state_set(getattr(request, name), name, started):
                if isinstance(event, States):
                    sets.append(event)
                else:
                    yield pb.CompareRepresentationsResponse(progress=event)
        a, b = sets
        for m in measures:
            if m in ("linear_cka", "procrustes") and a.n_samples != b.n_samples:
                raise InvalidArgument.field(
                    "b", f"{pb.Measure.Name(_TO_MEASURE[m])} compares paired samples: a has "
                    f"{a.n_samples} and b {b.n_samples}; send the same inputs for both",
                )  # fmt: skip
        results: list[pb.MeasureResult] = []
        async with self._lock:
            for i, m in enumerate(measures):

                def work(
                    progress: Callable[[int, int], None], m: str = m, i: int = i
                ) -> compare.Outcome:
                    try:
                        return compare.compare(m, a, b, params, progress)
                    except ValueError as exc:
                        raise _measure_error(exc, f"measures[{i}]") from None

                async for item in self._work(work, pb.Measure.Name(_TO_MEASURE[m]), started):
                    if isinstance(item, tuple):
                        results.append(_outcome_proto(item[0]))
                    else:
                        yield pb.CompareRepresentationsResponse(progress=item)
                yield pb.CompareRepresentationsResponse(progress=pb.AnalysisProgress(
                    phase=pb.ANALYSIS_PHASE_COMPUTE, detail="measures", items_done=i + 1,
                    items_total=len(measures), elapsed_seconds=time.perf_counter() - started,
                ))  # fmt: skip
        yield pb.CompareRepresentationsResponse(result=pb.CompareRepresentationsResult(
            results=results, shape_a=_shape(a), shape_b=_shape(b),
            elapsed_seconds=time.perf_counter() - started,
        ))  # fmt: skip

    async def LayerSimilarity(
        self, request: pb.LayerSimilarityRequest, context: Any
    ) -> AsyncIterator[pb.LayerSimilarityResponse]:
        started = time.perf_counter()
        measure = _enum(_MEASURES, request.measure or pb.MEASURE_GROMOV_WASSERSTEIN, "measure")
        params = _params(request.params, "params", self.max_samples, self.max_steps)
        g = request.grouping
        contiguous = _enum({0: "avg", 1: "avg", 2: "contiguous"}, g.method,
                           "grouping.method") == "contiguous"  # fmt: skip
        if g.n_groups < 0:
            raise InvalidArgument.field("grouping.n_groups", "must be >= 0 (0 = automatic)")
        if g.threshold < 0 or not math.isfinite(g.threshold):
            raise InvalidArgument.field("grouping.threshold", "must be >= 0 (0 = automatic)")
        names: list[str]
        sets: list[States] = []
        kind = request.WhichOneof("source")
        if kind == "layers":
            items = request.layers.layers
            names = [x.name for x in items]
            self._check_layer_count(len(names), "layers.layers")
            for i, named in enumerate(items):
                if not 1 <= len(named.name) <= 128:
                    raise InvalidArgument.field(f"layers.layers[{i}].name", "1-128 characters")
                sets.append(States.from_array(_array(named.states, f"layers.layers[{i}].states")))
            if len(set(names)) != len(names):
                raise InvalidArgument.field("layers.layers", "two layers have the same name")
        elif kind == "model":
            src = request.model
            if not src.model.name:
                raise InvalidArgument.field("model.model.name", "required: a registered model")
            model = self.registry.ready(src.model.name, src.model.content_hash)
            names = list(src.hook_points) or model.adapter.names()
            self._check_layer_count(len(names), "model.hook_points")
            if len(set(names)) != len(names):
                raise InvalidArgument.field("model.hook_points", "lists a hook point twice")
            pooling = _enum(_POOLING, src.pooling, "model.pooling")
            async for event in self._capture(src.model, names, src.inputs, src.max_tokens,
                                             pooling, "model", started):  # fmt: skip
                if isinstance(event, dict):
                    sets = [event[n] for n in names]
                else:
                    yield pb.LayerSimilarityResponse(progress=event)
        else:
            raise InvalidArgument.field("source", "required: model (hook points) or layers")
        counts = {s.n_samples for s in sets}
        if len(counts) != 1:
            raise InvalidArgument.field(
                "layers.layers", f"every layer needs the same samples (inputs); got counts "
                f"{sorted(counts)[:5]}",
            )  # fmt: skip
        if g.n_groups > len(names):
            raise InvalidArgument.field("grouping.n_groups", f"at most {len(names)} (the layers)")

        def work(progress: Callable[[int, int], None]) -> Any:
            try:
                lm = compare.layer_matrix(measure, sets, params, progress)
            except ValueError as exc:
                raise _measure_error(exc, "measure") from None
            dis = 1.0 - lm.matrix if measure == "linear_cka" else lm.matrix
            grouping = layers.group_layers(dis, contiguous=contiguous, n_groups=g.n_groups,
                                           threshold=g.threshold)  # fmt: skip
            png = (layers.heatmap_png(dis, cell=max(4, min(32, 512 // len(names))))
                   if request.heatmap_png else b"")  # fmt: skip
            return lm, dis, grouping, png

        async with self._lock:
            async for item in self._work(work, pb.Measure.Name(_TO_MEASURE[measure]), started):
                if not isinstance(item, tuple):
                    yield pb.LayerSimilarityResponse(progress=item)
                    continue
                lm, dis, grouping, png = item[0]
                yield pb.LayerSimilarityResponse(result=pb.LayerSimilarityResult(
                    layers=names, measure=_TO_MEASURE[measure],
                    matrix=lm.matrix.ravel().tolist(), dissimilarity=dis.ravel().tolist(),
                    groups=[pb.LayerGroup(layers=grp, mean_within=layers.mean_within(dis, grp))
                            for grp in grouping.groups],
                    grouping_description=grouping.description, definition=lm.definition,
                    samples_used=lm.samples_used, samples_total=lm.samples_total,
                    subsampled=lm.subsampled, seed=lm.seed,
                    elapsed_seconds=time.perf_counter() - started, heatmap_png=png,
                ))  # fmt: skip

    def _check_layer_count(self, n: int, field: str) -> None:
        if n < 2:
            raise InvalidArgument.field(field, "at least two layers to compare")
        if n > self.max_layers:
            raise ResourceExhausted(
                f"{n} layers exceed this server's limit of {self.max_layers} per call "
                "(--max-analysis-layers); choose hook points",
                reason="ANALYSIS_TOO_LARGE",
            )

    # --- BIMT ---

    async def _network(self, src: pb.NetworkSource) -> _Network:
        """The network to measure; decoding weights and building its graph run on a worker
        thread (a 4M-weight network takes about half a second)."""
        kind = src.WhichOneof("source")
        if kind == "network":
            return await asyncio.to_thread(_inline_network, src)
        if kind == "model":
            ref = src.model
            if not ref.name:
                raise InvalidArgument.field("network.model.name", "required: a registered model")
            model = self.registry.ready(ref.name, ref.content_hash)
            if not model.is_recurrent or not isinstance(model.module, RecurrentLM):
                raise InvalidArgument.field(
                    "network.model", f"model {ref.name!r} is a language model; ConnectionCost "
                    "takes registered recurrent models (elman, gru, lstm) or an inline network",
                )  # fmt: skip
            return await asyncio.to_thread(_recurrent_network, model.module)
        raise InvalidArgument.field("network", "required: model or network")

    @staticmethod
    def _cost_params(p: pb.ConnectionCostParams) -> bimt.CostParams:
        params = bimt.CostParams(
            p.weight_factor if p.HasField("weight_factor") else 1.0,
            p.layer_distance if p.HasField("layer_distance") else 0.1,
            not p.exclude_biases,
        )
        try:
            params.validate()
        except ValueError as exc:
            raise InvalidArgument.field("params." + str(exc).split(" ", 1)[0], str(exc)) from None
        return params

    async def ConnectionCost(
        self, request: pb.ConnectionCostRequest, context: Any
    ) -> pb.ConnectionCostResponse:
        params = self._cost_params(request.params)
        net = await self._network(request.network)
        cost = await asyncio.to_thread(bimt.connection_cost, net.graph, params)
        return pb.ConnectionCostResponse(
            cost=cost.total, bias_cost=cost.bias_cost,
            terms=[pb.ConnectionTerm(name=n, from_layer=a, to_layer=b, cost=c)
                   for n, a, b, c in cost.terms],
            neuron_layers=[f"{layer.name}:{layer.size}" for layer in net.graph.layers],
            definition=_cost_definition(params),
        )  # fmt: skip

    async def OptimizeNeuronLayout(
        self, request: pb.OptimizeNeuronLayoutRequest, context: Any
    ) -> pb.OptimizeNeuronLayoutResponse:
        started = time.perf_counter()
        params = self._cost_params(request.params)
        if request.max_rounds < 0:
            raise InvalidArgument.field("max_rounds", "must be >= 0 (0 = 10)")
        if request.top_k < 0:
            raise InvalidArgument.field("top_k", "must be >= 0 (0 = every neuron)")
        net = await self._network(request.network)
        for layer in net.graph.layers:
            if layer.permutable and layer.size > bimt.MAX_LAYOUT_WIDTH:
                raise ResourceExhausted(
                    f"layer {layer.name} has {layer.size} neurons; the swap search takes at most "
                    f"{bimt.MAX_LAYOUT_WIDTH}", reason="TOO_LARGE",
                )  # fmt: skip

        def work() -> pb.OptimizeNeuronLayoutResponse:
            r = bimt.optimize_layout(net.graph, params, max_rounds=request.max_rounds or 10,
                                     top_k=request.top_k)  # fmt: skip
            reply = pb.OptimizeNeuronLayoutResponse(
                cost_before=r.cost_before, cost_after=r.cost_after, swaps=r.swaps,
                rounds=r.rounds,
                permutations=[pb.LayerPermutation(layer=k, order=v.tolist())
                              for k, v in r.orders.items()],
            )  # fmt: skip
            reply.max_output_difference = net.check(r.orders, reply)
            return reply

        async with self._lock:
            reply = await asyncio.get_running_loop().run_in_executor(None, work)
        reply.elapsed_seconds = time.perf_counter() - started
        return reply


def _inline_network(src: pb.NetworkSource) -> _Network:
    weights, biases = [], []
    if not src.network.layers:
        raise InvalidArgument.field("network.network.layers", "required: at least one")
    for k, layer in enumerate(src.network.layers):
        field = f"network.network.layers[{k}]"
        if not layer.HasField("weight"):
            raise InvalidArgument.field(f"{field}.weight", "required: [out, in]")
        weights.append(_array(layer.weight, f"{field}.weight", (2,)))
        biases.append(_array(layer.bias, f"{field}.bias", (1,))
                      if layer.HasField("bias") else None)  # fmt: skip
    if sum(w.size for w in weights) > MAX_NETWORK_PARAMS:
        raise ResourceExhausted(
            f"the network has more than {MAX_NETWORK_PARAMS} weights", reason="TOO_LARGE"
        )
    try:
        bimt.check_dense(weights, biases)
    except ValueError as exc:
        raise InvalidArgument.field("network.network." + str(exc).split(" ", 1)[0],
                                    str(exc)) from None  # fmt: skip
    return _Network(bimt.dense_graph(weights, biases), weights, biases)


def _recurrent_network(module: RecurrentLM) -> _Network:
    net = RecurrentNetwork(module)
    return _Network(net.graph, recurrent=net)


class _Network:
    """A network for BIMT: its cost graph plus what is needed to apply and check a reordering."""

    def __init__(
        self, graph: bimt.Graph, weights: list[np.ndarray] | None = None,
        biases: list[np.ndarray | None] | None = None,
        recurrent: RecurrentNetwork | None = None,
    ) -> None:  # fmt: skip
        self.graph, self.weights, self.biases, self.recurrent = graph, weights, biases, recurrent

    def check(self, orders: dict[str, np.ndarray], reply: pb.OptimizeNeuronLayoutResponse) -> float:
        """Apply the reordering; fill reply.network for inline networks; max |Δoutput|."""
        if self.weights is not None and self.biases is not None:
            w, b = bimt.permute_dense(self.weights, self.biases, orders)
            for wk, bk in zip(w, b, strict=True):
                layer = pb.DenseLayer(weight=tensors.to_proto(wk))
                if bk is not None:
                    layer.bias.CopyFrom(tensors.to_proto(bk))
                reply.network.layers.append(layer)
            x = np.random.default_rng(0).normal(size=(64, self.weights[0].shape[1]))
            before = bimt.dense_forward(self.weights, self.biases, x)
            return float(np.abs(before - bimt.dense_forward(w, b, x)).max())
        assert self.recurrent is not None
        return self.recurrent.output_difference(orders)


def _cost_definition(p: bimt.CostParams) -> str:
    bias = "plus sum |b| * l0 for biases" if p.include_biases else "biases excluded"
    return (
        f"sum over weights |W_ij| * (A * |x_i - x_j| + gap * l0), A = {p.weight_factor:g}, "
        f"l0 = {p.layer_distance:g}, neurons of a layer of n at x = (slot + 0.5)/n, gap = layer "
        f"steps (recurrent weights: 1), {bias}"
    )


def _shape(s: States) -> list[int]:
    if len(s.trajectories) == 1:
        return list(s.trajectories[0].shape)
    lengths = {t.shape[0] for t in s.trajectories}
    time_steps = lengths.pop() if len(lengths) == 1 else -1
    return [len(s.trajectories), time_steps, s.width]


def _outcome_proto(o: compare.Outcome) -> pb.MeasureResult:
    return pb.MeasureResult(
        measure=_TO_MEASURE[o.measure], value=o.value, definition=o.definition, angle=o.angle,
        normalized_angle=o.normalized_angle, samples_used=o.samples_used,
        samples_total=o.samples_total, subsampled=o.subsampled, seed=o.seed,
        compute_seconds=o.seconds, diagnostics=o.diagnostics,
        eigenvalues_real=[float(e.real) for e in o.eigenvalues],
        eigenvalues_imag=[float(e.imag) for e in o.eigenvalues],
    )  # fmt: skip
