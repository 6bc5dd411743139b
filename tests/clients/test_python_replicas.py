"""The Python client against several replicas: round_robin spreads calls over both fixture
servers, a dead address in the target costs no call, and killing a replica under load loses none
(the idempotent RPCs are retried on UNAVAILABLE)."""

from __future__ import annotations

import signal
import struct
import threading
import urllib.request
from pathlib import Path

import client_fixture

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import analysis_pb2 as ap
from chunkscope_client.v1 import common_pb2
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import guard_pb2 as gp
from chunkscope_client.v1 import perturbation_pb2 as pp

TEXT = "On day 3 the cat slept near the window while the cake cooled."


def handled(metrics_url: str, method: str) -> float:
    """grpc_server_handled_total of one method, every status code together."""
    with urllib.request.urlopen(metrics_url, timeout=10) as reply:
        text = reply.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("grpc_server_handled_total{") and f'grpc_method="{method}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def detect_request(env: dict[str, str]) -> dp.DetectRequest:
    return dp.DetectRequest(
        config=dp.DetectionConfig(
            model=common_pb2.ModelRef(name=env["CHUNKSCOPE_TEST_MODEL"]),
            dictionary_ids=[env["CHUNKSCOPE_TEST_DICTIONARY"]],
            summary_only=True,
        ),
        inputs=[dp.DetectInput(text=TEXT)],
    )


def tensor(*shape: int) -> common_pb2.Tensor:
    n = 1
    for d in shape:
        n *= d
    values = [((i * 7919) % 23 - 11) / 7 for i in range(n)]  # fixed, varied, not random
    data = struct.pack(f"<{n}f", *values)
    return common_pb2.Tensor(dtype=common_pb2.DTYPE_FLOAT32, shape=list(shape), data=data)


def test_round_robin_spreads_calls_over_both_replicas(
    client_fixture_env: dict[str, str],
) -> None:
    env = client_fixture_env
    urls = env["CHUNKSCOPE_TEST_METRICS_URLS"].split(",")
    before = [handled(url, "Detect") for url in urls]
    with Client.connect(env["CHUNKSCOPE_TEST_ADDRESSES"], token=env["CHUNKSCOPE_TEST_TOKEN"]) as cs:
        replies = [cs.detect(detect_request(env)) for _ in range(12)]
    served = [handled(url, "Detect") - b for url, b in zip(urls, before, strict=True)]
    assert all(r.results[0].summaries[0].label == "cat" for r in replies)
    assert sum(served) == 12 and min(served) > 0, served


def test_a_list_of_strings_and_hostnames_work_too(client_fixture_env: dict[str, str]) -> None:
    env = client_fixture_env
    addresses = env["CHUNKSCOPE_TEST_ADDRESSES"].split(",")
    named = [a.replace("127.0.0.1", "localhost") for a in addresses]
    urls = env["CHUNKSCOPE_TEST_METRICS_URLS"].split(",")
    before = [handled(url, "GetModel") for url in urls]
    with Client.connect(named, token=env["CHUNKSCOPE_TEST_TOKEN"]) as cs:
        for _ in range(8):
            assert cs.get_model(env["CHUNKSCOPE_TEST_MODEL"]).name == env["CHUNKSCOPE_TEST_MODEL"]
    served = [handled(url, "GetModel") - b for url, b in zip(urls, before, strict=True)]
    assert sum(served) == 8 and min(served) > 0, served


def test_every_idempotent_call_succeeds_past_a_dead_address(
    client_fixture_env: dict[str, str],
) -> None:
    env = client_fixture_env
    model, dictionary = env["CHUNKSCOPE_TEST_MODEL"], env["CHUNKSCOPE_TEST_DICTIONARY"]
    target = f"{env['CHUNKSCOPE_TEST_DEAD_ADDRESS']},{env['CHUNKSCOPE_TEST_ADDRESS']}"
    network = ap.NetworkSource(
        network=ap.DenseNetwork(
            layers=[
                ap.DenseLayer(weight=tensor(8, 3), bias=tensor(8)),
                ap.DenseLayer(weight=tensor(2, 8)),
            ]
        )
    )
    states = ap.StateSet(tensor=tensor(20, 4))
    chunk = pp.ChunkRef(dictionary_id=dictionary, entry_id=0)
    policy = gp.Policy(
        name="replicas-test",
        model=common_pb2.ModelRef(name=model),
        rules=[gp.PolicyRule(dictionary_id=dictionary, label="cat", action=gp.POLICY_ACTION_BLOCK)],
    )
    with Client.connect(env["CHUNKSCOPE_TEST_ADDRESS"], token=env["CHUNKSCOPE_TEST_TOKEN"]) as one:
        version = one.put_policy(policy).version  # PutPolicy is not retried: one live address
    with Client.connect(target, token=env["CHUNKSCOPE_TEST_TOKEN"]) as cs:
        for _ in range(3):  # each call more than once, so round_robin would reach both addresses
            assert cs.get_policy("replicas-test").version == version
            assert "replicas-test" in [p.name for p in cs.list_policies()]
            assert cs.check("replicas-test", texts=[TEXT]).policy_version == version
            assert cs.health() == "SERVING"
            assert cs.get_model(model).name == model
            assert model in [m.name for m in cs.list_models()]
            assert env["CHUNKSCOPE_TEST_HOOK_POINT"] in [p.name for p in cs.list_hook_points(model)]
            assert cs.get_dictionary(dictionary).id == dictionary
            assert dictionary in [d.id for d in cs.list_dictionaries(model=model)]
            assert len(cs.export_dictionary(dictionary)) > 0
            assert cs.detect(detect_request(env)).results[0].summaries[0].label == "cat"
            perturbed = cs.perturb(
                pp.PerturbRequest(
                    model=common_pb2.ModelRef(name=model),
                    input=dp.DetectInput(text="The window and the"),
                    interventions=[
                        pp.Intervention(
                            chunk=chunk,
                            mode=pp.INTERVENTION_MODE_ACTIVATE,
                            positions=pp.Positions(indices=[-1]),
                        )
                    ],
                    top_k=3,
                )
            )
            assert len(perturbed.top_before) == 3
            generated = cs.generate(
                pp.GenerateRequest(
                    model=common_pb2.ModelRef(name=model),
                    prompt=dp.DetectInput(text="The cat"),
                    sampling=pp.SamplingParams(max_new_tokens=4),
                )
            )
            assert any(message.done for message in generated)
            compared = cs.compare_representations(
                ap.CompareRepresentationsRequest(
                    a=states, b=states, measures=[ap.MEASURE_LINEAR_CKA]
                )
            )
            assert abs(compared.results[0].value - 1) < 1e-5
            layers = cs.layer_similarity(
                ap.LayerSimilarityRequest(
                    model=ap.ModelLayers(
                        model=common_pb2.ModelRef(name=model),
                        hook_points=["blocks.0.resid_post", env["CHUNKSCOPE_TEST_HOOK_POINT"]],
                        inputs=client_fixture.extraction_request().corpus,
                        pooling=ap.POOLING_ALL_TOKENS,
                    ),
                    measure=ap.MEASURE_LINEAR_CKA,
                )
            )
            assert len(layers.layers) == 2
            cost = cs.connection_cost(ap.ConnectionCostRequest(network=network))
            assert cost.cost > 0
            layout = cs.optimize_neuron_layout(ap.OptimizeNeuronLayoutRequest(network=network))
            assert layout.cost_after <= layout.cost_before


def test_killing_a_replica_under_load_loses_no_call(client_fixture_env: dict[str, str]) -> None:
    """Replica C (this test's own) is killed with SIGKILL while a loop calls Detect on A and C.
    Calls in flight on C fail with UNAVAILABLE and are retried on A; later ones go to A only."""
    env = client_fixture_env
    workdir = Path(env["CHUNKSCOPE_TEST_WORKDIR"])
    with client_fixture.replica(workdir, "data-c", env) as third:
        target = [env["CHUNKSCOPE_TEST_ADDRESS"], third.address]
        third_url = f"http://127.0.0.1:{third.metrics_port}/metrics"
        first_url = env["CHUNKSCOPE_TEST_METRICS_URL"]
        killed, stop = threading.Event(), threading.Event()
        after_kill: list[int] = [0]
        failures: list[ChunkscopeError] = []
        calls: list[int] = [0]

        def loop() -> None:
            with Client.connect(target, token=env["CHUNKSCOPE_TEST_TOKEN"]) as cs:
                while not stop.is_set():
                    try:
                        cs.detect(detect_request(env))
                    except ChunkscopeError as error:
                        failures.append(error)
                    calls[0] += 1
                    if killed.is_set():
                        after_kill[0] += 1
                        if after_kill[0] >= 20:
                            return

        worker = threading.Thread(target=loop)
        first_before = handled(first_url, "Detect")
        worker.start()
        try:
            while handled(third_url, "Detect") < 5 and worker.is_alive():
                threading.Event().wait(0.05)
            third.proc.send_signal(signal.SIGKILL)
            third.proc.wait(timeout=30)
            killed.set()
            worker.join(timeout=300)
        finally:
            stop.set()
            worker.join(timeout=60)
        assert not worker.is_alive()
        assert failures == [], [str(f) for f in failures]
        assert after_kill[0] == 20
        assert handled(first_url, "Detect") - first_before > 0
