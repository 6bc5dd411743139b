"""The server as a process: restart and crash recovery, shutdown, port ownership, health."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import models_pb2
from support import ROOT, start_server


def test_registry_survives_restart_and_kill_9(tmp_path: Path, model_root: Path) -> None:
    data = tmp_path / "data"
    first = start_server(data, model_root)
    with Client.connect(first.address) as c:
        llama = c.register_model("llama", "tiny-llama", wait=True)
        rnn = c.register_model("rnn", "rnn-elman", wait=True)
    assert first.terminate(signal.SIGTERM) == 0  # graceful: exit status 0

    second = start_server(data, model_root)  # restore loads both before SERVING
    with Client.connect(second.address) as c:
        assert c.health() == "SERVING"
        restored = {m.name: m for m in c.list_models()}
        assert {n: m.state for n, m in restored.items()} == {
            "llama": models_pb2.MODEL_STATE_READY,
            "rnn": models_pb2.MODEL_STATE_READY,
        }
        assert restored["llama"].content_hash == llama.content_hash
        assert restored["rnn"].content_hash == rnn.content_hash
        assert len(c.list_hook_points("llama")) == 10
        c.unregister_model("rnn")
        c.register_model("gru", "rnn-gru", wait=True)
    second.proc.kill()  # kill -9: no chance to clean up
    second.proc.wait()

    third = start_server(data, model_root)
    with Client.connect(third.address) as c:
        assert sorted(m.name for m in c.list_models()) == ["gru", "llama"]
        assert all(m.state == models_pb2.MODEL_STATE_READY for m in c.list_models())
    third.terminate()


def test_changed_weights_are_not_served_after_restart(tmp_path: Path, model_root: Path) -> None:
    root = tmp_path / "models"
    (root / "rnn").mkdir(parents=True)
    for f in (model_root / "rnn-elman").iterdir():
        (root / "rnn" / f.name).write_bytes(f.read_bytes())
    data = tmp_path / "data"
    server = start_server(data, root)
    with Client.connect(server.address) as c:
        c.register_model("rnn", "rnn", wait=True)
    server.terminate()
    (root / "rnn" / "model.safetensors").write_bytes(
        (model_root / "rnn-gru" / "model.safetensors").read_bytes()
    )
    server = start_server(data, root)
    with Client.connect(server.address) as c:
        model = c.get_model("rnn")
        assert model.state == models_pb2.MODEL_STATE_FAILED
        assert "changed since registration" in model.state_reason
        with pytest.raises(ChunkscopeError) as err:
            c.list_hook_points("rnn")
        assert err.value.code is grpc.StatusCode.FAILED_PRECONDITION
    server.terminate()


def test_a_second_server_cannot_take_the_same_port(tmp_path: Path, model_root: Path) -> None:
    first = start_server(tmp_path / "a", model_root)
    env_path = f"{ROOT / 'service'}:{ROOT / 'clients' / 'python' / 'src'}"
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "chunkscope",
            "serve",
            "--port",
            str(first.port),
            "--metrics-port",
            "-1",
            "--data-dir",
            str(tmp_path / "b"),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": env_path, "PATH": ""},
    )
    assert second.returncode == 2
    assert "cannot listen" in second.stderr
    with Client.connect(first.address) as c:
        assert c.health() == "SERVING"
    first.terminate()


def test_health_goes_not_serving_when_draining(tmp_path: Path, model_root: Path) -> None:
    server = start_server(tmp_path / "data", model_root)
    seen: list[str] = []
    with grpc.insecure_channel(server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        stream = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)
        first_seen = threading.Event()

        def watch() -> None:
            try:
                for reply in stream:
                    seen.append(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
                    first_seen.set()
            except grpc.RpcError:
                pass

        thread = threading.Thread(target=watch)
        thread.start()
        assert first_seen.wait(30)
        assert server.terminate(signal.SIGINT) == 0
        thread.join(30)
    assert seen[0] == "SERVING"
    assert "NOT_SERVING" in seen[1:]
    assert "shutting down" in server.log()


def _pa_request(n_texts: int, epochs: int = 0):  # type: ignore[no-untyped-def]
    from chunkscope_client.v1 import dictionaries_pb2 as pb

    texts = [f"Day {i}: the cat slept while the cake cooled." for i in range(n_texts)]
    corpus = pb.Corpus(texts=pb.TextList(texts=texts))
    if epochs:
        return pb.ExtractDictionaryRequest(
            model={"name": "llama"}, hook_points=["blocks.1.resid_post"], corpus=corpus,
            cosine_dictionary=pb.CosineDictionaryParams(k=8, epochs=epochs, batch_size=8),
        )  # fmt: skip
    return pb.ExtractDictionaryRequest(
        model={"name": "llama"}, hook_points=["blocks.0.resid_post"], corpus=corpus,
        population_averaging=pb.PopulationAveragingParams(concepts=[{"concept": "cat"}]),
    )  # fmt: skip


def test_dictionaries_survive_restart_and_a_kill_9_mid_extraction_leaves_nothing(
    tmp_path: Path, model_root: Path
) -> None:
    from chunkscope_client.v1 import dictionaries_pb2 as pb

    data = tmp_path / "data"
    server = start_server(data, model_root)
    with Client.connect(server.address, timeout=120) as c:
        c.register_model("llama", "tiny-llama", wait=True)
        [kept] = c.extract_dictionary(_pa_request(12))
        stream = c.dictionaries.ExtractDictionary(_pa_request(200, epochs=100000), timeout=120)
        for message in stream:
            if message.progress.phase == pb.EXTRACTION_PHASE_FIT:
                break  # the job is fitting: kill the server under it
        server.proc.kill()
        server.proc.wait()
        with pytest.raises(grpc.RpcError):
            next(stream)

    server = start_server(data, model_root)
    with Client.connect(server.address, timeout=60) as c:
        assert [d.id for d in c.list_dictionaries()] == [kept.id]
        again = c.get_dictionary(kept.id)
        assert [e.label for e in again.entries] == ["cat"]
        assert again.entries[0].threshold == kept.entries[0].threshold
    assert sorted(p.name for p in (data / "dictionaries").iterdir()) == [kept.id]
    server.terminate()


def test_capture_beyond_the_limit_is_resource_exhausted(tmp_path: Path, model_root: Path) -> None:
    server = start_server(tmp_path / "data", model_root, "--max-capture-bytes", "20000")
    with Client.connect(server.address, timeout=60) as c:
        c.register_model("llama", "tiny-llama", wait=True)
        with pytest.raises(ChunkscopeError) as err:
            c.extract_dictionary(_pa_request(40))
        assert err.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-capture-bytes" in err.value.message
        assert not list(c.list_dictionaries())
        assert c.health() == "SERVING"
    server.terminate()


def test_inputs_beyond_the_token_limit_are_resource_exhausted(
    tmp_path: Path, model_root: Path
) -> None:
    from chunkscope_client.v1 import detection_pb2 as dp
    from chunkscope_client.v1 import perturbation_pb2 as pp

    server = start_server(tmp_path / "data", model_root, "--max-input-tokens", "24")
    long_text = "the cat slept near the window " * 10
    with Client.connect(server.address, timeout=60) as c:
        c.register_model("llama", "tiny-llama", wait=True)
        [d] = c.extract_dictionary(_pa_request(12))
        config = dp.DetectionConfig(model={"name": "llama"}, dictionary_ids=[d.id])
        calls = [
            lambda: c.detect(dp.DetectRequest(config=config,
                                              inputs=[dp.DetectInput(text=long_text)])),
            lambda: c.perturb(pp.PerturbRequest(model={"name": "llama"},
                                                input=dp.DetectInput(text=long_text))),
            lambda: list(c.generate(pp.GenerateRequest(
                model={"name": "llama"}, prompt=dp.DetectInput(text="the cat"),
                sampling=pp.SamplingParams(max_new_tokens=100)))),
        ]  # fmt: skip
        for call in calls:
            with pytest.raises(ChunkscopeError) as err:
                call()
            assert err.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--max-input-tokens" in err.value.message
        # Truncation on request is allowed, and short inputs pass.
        config.max_tokens = 8
        ok = c.detect(dp.DetectRequest(config=config, inputs=[dp.DetectInput(text=long_text)]))
        assert ok.results[0].n_tokens == 8
        assert c.health() == "SERVING"
    server.terminate()


def test_grafting_a_chunks_first_state_makes_the_rnn_continue_the_chunk(
    tmp_path: Path, model_root: Path
) -> None:
    """The paper's state transport: after A's state, input B predicts C (as in ABCD)."""
    import json
    import subprocess
    import sys

    from chunkscope.testbeds.sequences import reflection
    from chunkscope_client.v1 import detection_pb2 as dp
    from chunkscope_client.v1 import dictionaries_pb2 as pb
    from chunkscope_client.v1 import perturbation_pb2 as pp

    root = tmp_path / "models"
    subprocess.run(
        [sys.executable, "-m", "chunkscope", "testbed", "train", "--generator", "reflection",
         "--iterations", "300", "--seed", "0", "--out", str(root / "rnn")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    server = start_server(tmp_path / "data", root)
    with Client.connect(server.address, timeout=120) as c:
        c.register_model("rnn", "rnn", wait=True)
        seq = list(reflection(n_repeats=400, seed=5))
        [d] = c.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": "rnn"}, hook_points=["rnn.hidden"],
            corpus=pb.Corpus(sequences=pb.SequenceList(sequences=[pb.SymbolSequence(symbols=seq)])),
            discrete_sequence_chunking=pb.DiscreteSequenceChunkingParams(),
        ))  # fmt: skip
        labels = [e.label for e in d.entries]
        starting_with_a = [e for e in d.entries if e.label.startswith("AB")]
        assert starting_with_a, labels
        chunk = starting_with_a[0]

        def predict(graft: bool) -> str:
            interventions = []
            if graft:  # h after the E before B becomes the chunk's first state (A's)
                interventions = [pp.Intervention(
                    chunk=pp.ChunkRef(dictionary_id=d.id, entry_id=chunk.id),
                    mode=pp.INTERVENTION_MODE_ACTIVATE,
                    positions=pp.Positions(indices=[-2]))]  # fmt: skip
            reply = c.perturb(pp.PerturbRequest(
                model={"name": "rnn"}, interventions=interventions, top_k=1,
                input=dp.DetectInput(symbols=pb.SymbolSequence(symbols=list("EEEEEB"))),
            ))  # fmt: skip
            return reply.top_after[0].token

        assert predict(graft=True) == "C", json.dumps(labels)
        assert predict(graft=False) != "C"
    server.terminate()
