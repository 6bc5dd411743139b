"""AnalysisService through the client against a real server: known answers sent as tensors,
captured states, layer groups, BIMT cost and swaps, progress, cancellation and errors."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from chunkscope.api.tensors import to_proto
from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import analysis_pb2 as pb
from chunkscope_client.v1 import dictionaries_pb2 as dpb
from support import ServerProcess

M = pb  # enum values live on the module


@pytest.fixture(scope="module")
def cs(server: ServerProcess) -> Iterator[Client]:
    with Client.connect(server.address, timeout=120) as c:
        c.register_model("an-rnn", "rnn-elman", wait=True)
        c.register_model("an-lm", "tiny-llama", wait=True)
        yield c
        for name in ("an-rnn", "an-lm"):
            c.unregister_model(name)


def _orthogonal(n: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def _tensors(
    a: np.ndarray, b: np.ndarray, *measures: int, **params: object
) -> pb.CompareRepresentationsRequest:
    return pb.CompareRepresentationsRequest(
        a=pb.StateSet(tensor=to_proto(a.astype(np.float32))),
        b=pb.StateSet(tensor=to_proto(b.astype(np.float32))),
        measures=list(measures),
        params=pb.MeasureParams(**params),  # type: ignore[arg-type]
    )


def _error(call, *args, **kwargs) -> ChunkscopeError:  # type: ignore[no-untyped-def]
    with pytest.raises(ChunkscopeError) as err:
        call(*args, **kwargs)
    return err.value


REP = np.random.default_rng(0).normal(size=(100, 6)) @ np.diag([3, 2, 1.5, 1, 0.6, 0.3])


def test_a_rotated_scaled_translated_copy_gives_cka_1_procrustes_0_gw_0(cs: Client) -> None:
    copy = 2.5 * REP @ _orthogonal(6, 1) - 3.0
    result = cs.compare_representations(
        _tensors(
            REP, copy, M.MEASURE_LINEAR_CKA, M.MEASURE_PROCRUSTES, M.MEASURE_GROMOV_WASSERSTEIN
        )
    )
    cka, procrustes, gw = result.results
    assert (cka.measure, procrustes.measure, gw.measure) == (
        M.MEASURE_LINEAR_CKA,
        M.MEASURE_PROCRUSTES,
        M.MEASURE_GROMOV_WASSERSTEIN,
    )
    assert cka.value == pytest.approx(1.0, abs=1e-5)
    assert procrustes.value == pytest.approx(0.0, abs=2e-3)  # float32 on the wire
    assert gw.value == pytest.approx(0.0, abs=1e-6)
    assert "gw_metric" in gw.diagnostics and gw.definition
    assert list(result.shape_a) == [100, 6] and result.elapsed_seconds > 0
    assert all(r.compute_seconds >= 0 for r in result.results)


def test_a_permuted_copy_gives_gw_0_and_noise_gives_cka_near_0(cs: Client) -> None:
    rng = np.random.default_rng(2)
    permuted = REP[rng.permutation(100)][:, rng.permutation(6)]
    gw_params = pb.GromovWassersteinParams(init=pb.GW_INIT_PRODUCT)
    [gw] = cs.compare_representations(
        _tensors(REP, permuted, M.MEASURE_GROMOV_WASSERSTEIN, gromov_wasserstein=gw_params)
    ).results
    assert gw.value == pytest.approx(0.0, abs=1e-6)
    noise = rng.normal(size=(3000, 8)), rng.normal(size=(3000, 8))
    [cka] = cs.compare_representations(_tensors(*noise, M.MEASURE_LINEAR_CKA)).results
    assert cka.value < 0.02


def test_gw_subsamples_with_its_seed_and_says_so(cs: Client) -> None:
    big = np.random.default_rng(3).normal(size=(400, 5))
    gw_params = pb.GromovWassersteinParams(max_samples=50, seed=7)
    [r] = cs.compare_representations(
        _tensors(big, big * 2, M.MEASURE_GROMOV_WASSERSTEIN, gromov_wasserstein=gw_params)
    ).results
    assert r.subsampled and r.samples_used == 50 and r.samples_total == 400 and r.seed == 7


def _linear_system(eigs, n=4, trials=10, steps=40, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros((n, n))
    for i, (r, th) in enumerate(eigs):
        m[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = r * np.array(
            [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
        )
    x = np.zeros((trials, steps, n))
    x[:, 0] = rng.normal(size=(trials, n))
    for t in range(1, steps):
        x[:, t] = x[:, t - 1] @ m.T + 0.01 * rng.normal(size=(trials, n))
    return x


def test_dsa_rotated_system_near_zero_different_eigenvalues_larger(cs: Client) -> None:
    x = _linear_system([(0.95, 0.3), (0.85, 0.9)])
    rotated = 2.0 * x @ _orthogonal(4, 5).T
    other = _linear_system([(0.6, 0.1), (0.99, 1.4)], seed=1)
    dsa = pb.DsaParams(rank=4, iters=200)
    measures = (M.MEASURE_DSA, M.MEASURE_DSA_EIGENVALUES)
    same = cs.compare_representations(_tensors(x, rotated, *measures, dsa=dsa)).results
    diff = cs.compare_representations(_tensors(x, other, *measures, dsa=dsa)).results
    assert same[0].value < 0.01 and same[1].value < 1e-3
    assert diff[0].value > 0.2 and diff[1].value > 0.1
    assert list(same[0].eigenvalues_real) and same[0].diagnostics["rank"] == 4


def test_progress_is_streamed_before_the_result(cs: Client) -> None:
    messages = list(
        cs.compare_representations_stream(
            _tensors(REP, REP + 1, M.MEASURE_LINEAR_CKA, M.MEASURE_GROMOV_WASSERSTEIN)
        )
    )
    kinds = [m.WhichOneof("event") for m in messages]
    assert kinds[-1] == "result" and "progress" in kinds[:-1]


def _rnn_states(model: str) -> pb.StateSet:
    """rnn.hidden of `model` over 4 sequences of 30 symbols."""
    seqs = dpb.Corpus(
        sequences=dpb.SequenceList(
            sequences=[dpb.SymbolSequence(symbols=list("ABCDEEABCD" * 3)) for _ in range(4)]
        )
    )
    return pb.StateSet(
        captured=pb.CapturedStates(model={"name": model}, hook_point="rnn.hidden", inputs=seqs)
    )


def test_captured_states_of_a_registered_rnn(cs: Client) -> None:
    captured = _rnn_states("an-rnn")
    request = pb.CompareRepresentationsRequest(
        a=captured,
        b=captured,
        measures=[M.MEASURE_LINEAR_CKA, M.MEASURE_DSA_EIGENVALUES],
        params=pb.MeasureParams(dsa=pb.DsaParams(rank=4)),
    )
    result = cs.compare_representations(request)
    assert list(result.shape_a) == [4, 30, 12]
    assert result.results[0].value == pytest.approx(1.0, abs=1e-9)
    # The eigenvalue distance is at most that of matching the two sets in sorted order; the two
    # captures of one input are the same forward, so that bound (and the distance) is 0.
    eig = result.results[1]
    values = np.array(eig.eigenvalues_real) + 1j * np.array(eig.eigenvalues_imag)
    ea, eb = np.sort_complex(values[:4]), np.sort_complex(values[4:])
    assert eig.value <= np.sqrt(np.mean(np.abs(ea - eb) ** 2)) * (1 + 1e-12)


def test_layer_similarity_recovers_planted_groups_and_draws_a_png(cs: Client) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(120, 6))
    g = np.sin(3 * x[:, :3]) * np.exp(x[:, 3:]) ** 2
    arrays = [x, x @ _orthogonal(6, 1), 3 * x, g, g @ _orthogonal(3, 2), g + 1]
    layers = pb.NamedStatesList(
        layers=[
            pb.NamedStates(name=f"l{i}", states=to_proto(a.astype(np.float32)))
            for i, a in enumerate(arrays)
        ]
    )
    for measure in (M.MEASURE_GROMOV_WASSERSTEIN, M.MEASURE_LINEAR_CKA):
        result = cs.layer_similarity(
            pb.LayerSimilarityRequest(layers=layers, measure=measure, heatmap_png=True)
        )
        assert [list(grp.layers) for grp in result.groups] == [[0, 1, 2], [3, 4, 5]]
        assert len(result.matrix) == 36 and result.grouping_description
        assert result.heatmap_png[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", result.heatmap_png[16:24])[0] > 0


def test_layer_similarity_of_a_registered_model(cs: Client) -> None:
    request = pb.LayerSimilarityRequest(
        model=pb.ModelLayers(
            model={"name": "an-lm"},
            inputs=dpb.Corpus(
                texts=dpb.TextList(
                    texts=["The cat sat on the mat.", "Chunks are recurring patterns."]
                )
            ),
        ),
        measure=M.MEASURE_LINEAR_CKA,
        grouping=pb.GroupingParams(method=pb.GROUPING_METHOD_CONTIGUOUS),
    )
    result = cs.layer_similarity(request)
    names = [h.name for h in cs.list_hook_points("an-lm")]
    assert list(result.layers) == names
    assert sorted(i for grp in result.groups for i in grp.layers) == list(range(len(names)))


def test_layer_similarity_can_be_cancelled(cs: Client) -> None:
    big = np.random.default_rng(5).normal(size=(600, 16)).astype(np.float32)
    layers = pb.NamedStatesList(
        layers=[pb.NamedStates(name=f"l{i}", states=to_proto(big + i)) for i in range(8)]
    )
    request = pb.LayerSimilarityRequest(
        layers=layers,
        measure=M.MEASURE_GROMOV_WASSERSTEIN,
        params=pb.MeasureParams(gromov_wasserstein=pb.GromovWassersteinParams(max_samples=600)),
    )
    # the committed client passes its token as call metadata; newer ones add it on the channel
    metadata = getattr(cs, "_metadata", None) or None
    call = cs.analysis.LayerSimilarity(request, timeout=120, metadata=metadata)
    first = next(call)
    assert first.WhichOneof("event") == "progress"
    call.cancel()
    with pytest.raises(grpc.RpcError) as err:
        list(call)
    assert err.value.code() == grpc.StatusCode.CANCELLED
    # the server goes on serving
    [cka] = cs.compare_representations(_tensors(REP, REP, M.MEASURE_LINEAR_CKA)).results
    assert cka.value == pytest.approx(1.0)


def _dense(*layers: tuple[np.ndarray, np.ndarray | None]) -> pb.NetworkSource:
    net = pb.DenseNetwork()
    for w, b in layers:
        layer = pb.DenseLayer(weight=to_proto(w))
        if b is not None:
            layer.bias.CopyFrom(to_proto(b))
        net.layers.append(layer)
    return pb.NetworkSource(network=net)


def test_connection_cost_by_hand(cs: Client) -> None:
    net = _dense((np.array([[1.0, 2], [3, 4]]), np.array([0.5, -0.5])), (np.eye(2), None))
    params = pb.ConnectionCostParams(weight_factor=1.0, layer_distance=0.2)
    reply = cs.connection_cost(pb.ConnectionCostRequest(network=net, params=params))
    assert reply.cost == pytest.approx(5.1) and reply.bias_cost == pytest.approx(0.2)
    assert list(reply.neuron_layers) == ["input:2", "hidden.0:2", "output:2"]
    layout = cs.optimize_neuron_layout(pb.OptimizeNeuronLayoutRequest(network=net, params=params))
    assert layout.cost_after == pytest.approx(5.1) and layout.swaps == 0


def test_swaps_make_blocks_keep_outputs_and_lower_the_cost(cs: Client) -> None:
    rng = np.random.default_rng(6)
    w1, w2 = np.zeros((10, 2)), np.zeros((2, 10))
    for i in range(10):
        w1[i, i % 2], w2[i % 2, i] = rng.uniform(0.5, 1), rng.uniform(0.5, 1)
    reply = cs.optimize_neuron_layout(
        pb.OptimizeNeuronLayoutRequest(network=_dense((w1, rng.normal(size=10)), (w2, None)))
    )
    assert reply.cost_after < reply.cost_before
    # Two layers of at most 11 terms below 4 in size: rounding alone bounds it near 2·11·eps·4.
    assert reply.max_output_difference < 1e-12
    order = list(reply.permutations[0].order)
    assert sorted(order) == list(range(10))
    assert {i % 2 for i in order[:5]} == {order[0] % 2}  # one module per half


def test_recurrent_model_cost_and_layout(cs: Client) -> None:
    source = pb.NetworkSource(model={"name": "an-rnn"})
    cost = cs.connection_cost(pb.ConnectionCostRequest(network=source))
    assert cost.cost > 0 and len(cost.terms) == 4
    layout = cs.optimize_neuron_layout(pb.OptimizeNeuronLayoutRequest(network=source))
    assert layout.cost_before == pytest.approx(cost.cost)
    assert layout.cost_after <= layout.cost_before
    assert layout.max_output_difference < 1e-9
    assert layout.permutations[0].layer == "rnn.hidden"


def test_bad_requests_name_the_field(cs: Client) -> None:
    err = _error(cs.compare_representations, _tensors(REP, REP))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.field_violations[0][0] == "measures"
    err = _error(cs.compare_representations, _tensors(REP, REP[:50], M.MEASURE_LINEAR_CKA))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.field_violations[0][0] == "b"
    flat = pb.CompareRepresentationsRequest(
        a=pb.StateSet(tensor=to_proto(np.ones(5, np.float32))),
        b=pb.StateSet(tensor=to_proto(REP)),
        measures=[M.MEASURE_LINEAR_CKA],
    )
    err = _error(cs.compare_representations, flat)
    assert err.field_violations[0][0] == "a.tensor.shape"
    bad_hook = pb.CompareRepresentationsRequest(
        a=pb.StateSet(
            captured=pb.CapturedStates(
                model={"name": "an-rnn"},
                hook_point="blocks.0.resid_post",
                inputs=dpb.Corpus(
                    sequences=dpb.SequenceList(sequences=[dpb.SymbolSequence(symbols=["A", "B"])])
                ),
            )
        ),
        b=pb.StateSet(tensor=to_proto(REP)),
        measures=[M.MEASURE_LINEAR_CKA],
    )
    err = _error(cs.compare_representations, bad_hook)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.field_violations[0][0] == "a.captured.hook_point"
    const = _error(
        cs.compare_representations, _tensors(np.ones((10, 3)), REP[:10], M.MEASURE_LINEAR_CKA)
    )
    assert const.code == grpc.StatusCode.INVALID_ARGUMENT and "constant" in const.message
    err = _error(
        cs.connection_cost,
        pb.ConnectionCostRequest(network=pb.NetworkSource(model={"name": "an-lm"})),
    )
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    err = _error(
        cs.connection_cost,
        pb.ConnectionCostRequest(network=_dense((np.ones((3, 2)), None), (np.ones((2, 4)), None))),
    )
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.field_violations[0][0].startswith("network.network.layers[1]")


def test_requests_beyond_the_limits_are_resource_exhausted(cs: Client) -> None:
    gw_params = pb.GromovWassersteinParams(max_samples=10**6)
    err = _error(
        cs.compare_representations,
        _tensors(REP, REP, M.MEASURE_GROMOV_WASSERSTEIN, gromov_wasserstein=gw_params),
    )
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_capture_limit_counts_the_float64_states_it_holds(tmp_path, model_root) -> None:
    """4 sequences x 30 steps x 12 units are held as float64: 11,520 bytes (float32 would be
    5,760), so a limit of 8,000 refuses the capture and one of 12,000 admits it."""
    from support import start_server

    captured = _rnn_states("rnn")
    request = pb.CompareRepresentationsRequest(
        a=captured, b=captured, measures=[M.MEASURE_LINEAR_CKA]
    )
    for limit, admitted in ((8000, False), (12000, True)):
        server = start_server(tmp_path / str(limit), model_root, "--max-capture-bytes", str(limit))
        with Client.connect(server.address, timeout=60) as c:
            c.register_model("rnn", "rnn-elman", wait=True)
            if admitted:
                assert c.compare_representations(request).results[0].value > 0.99
            else:
                err = _error(c.compare_representations, request)
                assert err.code is grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "--max-capture-bytes" in err.message
        server.terminate()
