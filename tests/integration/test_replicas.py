"""Replicas on one PostgreSQL store serve one fleet: real servers, a real PostgreSQL, the client.

- a model registered or unregistered on one replica is loaded or dropped by the others, each
  reporting its own load state;
- a dictionary extracted or imported on one is usable on every other as soon as the call returns,
  and a delete is seen everywhere at once, even by a replica that had it cached;
- kill -9 of a replica during dictionary writes leaves no partial dictionary (an extraction over
  two hook points is stored whole or not at all), and its restart touches no other replica's
  upload in progress;
- clients given every replica's address carry on with no failed call when one is killed.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import models_pb2 as mp
from chunkscope_client.v1 import perturbation_pb2 as pp
from helpers.model_files import copy_model
from support import ServerProcess, start_server

TRAIN = [f"On day {i} the cat slept near the window while the cake cooled." for i in range(14)]
HOOKS = ["blocks.0.resid_post", "blocks.1.resid_post"]


def _until(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout:.0f}s: {what}")
        time.sleep(0.2)


def _state(c: Client, name: str) -> str:
    """READY, LOADING or FAILED on this replica; NOT_FOUND when it has no such model."""
    try:
        return mp.ModelState.Name(c.get_model(name).state).removeprefix("MODEL_STATE_")
    except ChunkscopeError as e:
        return e.code.name


def _extraction(model: str, hooks: list[str]) -> pb.ExtractDictionaryRequest:
    return pb.ExtractDictionaryRequest(
        model={"name": model}, hook_points=hooks,
        corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
        population_averaging=pb.PopulationAveragingParams(
            concepts=[{"concept": "cat"}, {"concept": "cake"}], n_samples=10, seed=0),
    )  # fmt: skip


def _detect(c: Client, model: str, dictionary: str) -> dp.DetectResponse:
    return c.detect(dp.DetectRequest(
        config=dp.DetectionConfig(model={"name": model}, dictionary_ids=[dictionary]),
        inputs=[dp.DetectInput(text=TRAIN[3])],
    ))  # fmt: skip


def _error(call: Callable[..., Any], *args: Any) -> ChunkscopeError:
    with pytest.raises(ChunkscopeError) as err:
        call(*args)
    return err.value


@pytest.fixture()
def store(postgres: Any, request: pytest.FixtureRequest) -> str:
    """A fresh database for each test."""
    return str(postgres.create_database(request.node.name.lower()[:60]))


def test_a_fleet_on_one_store_agrees(store: str, model_root: Path, tmp_path: Path) -> None:
    # C lacks the second model root: it shows that model FAILED (its own state) while A and B
    # serve it.
    extra = tmp_path / "extra-models"
    copy_model(model_root / "tiny-gpt2", extra / "tiny-gpt2")
    both = f"{model_root}:{extra}"
    a = start_server(tmp_path / "a", model_root, "--store", store, "--model-roots", both)
    b = start_server(tmp_path / "b", model_root, "--store", store, "--model-roots", both)
    c = start_server(tmp_path / "c", model_root, "--store", store)
    with (
        Client.connect(a.address, timeout=120) as ca,
        Client.connect(b.address, timeout=120) as cb,
        Client.connect(c.address, timeout=120) as cc,
    ):
        # Registered on A: loaded by B and C.
        ca.register_model("fleet-lm", "tiny-llama", wait=True)
        _until(lambda: _state(cb, "fleet-lm") == "READY", "fleet-lm READY on B")
        _until(lambda: _state(cc, "fleet-lm") == "READY", "fleet-lm READY on C")
        assert cb.get_model("fleet-lm").content_hash == ca.get_model("fleet-lm").content_hash

        ca.register_model("fleet-gpt2", str(extra / "tiny-gpt2"), wait=True)
        _until(lambda: _state(cb, "fleet-gpt2") == "READY", "fleet-gpt2 READY on B")
        _until(lambda: _state(cc, "fleet-gpt2") == "FAILED", "fleet-gpt2 FAILED on C")
        assert "outside the configured model roots" in cc.get_model("fleet-gpt2").state_reason

        # Extracted on B: usable on A and C as soon as the call has returned (no waiting).
        [d] = cb.extract_dictionary(_extraction("fleet-lm", [HOOKS[1]]))
        cat = next(
            s for s in _detect(ca, "fleet-lm", d.id).results[0].summaries if s.label == "cat"
        )
        assert cat.fired
        assert [x.id for x in cc.list_dictionaries("fleet-lm")] == [d.id]
        graft = pp.Intervention(chunk=pp.ChunkRef(dictionary_id=d.id, entry_id=0),
                                mode=pp.INTERVENTION_MODE_ACTIVATE,
                                positions=pp.Positions(generated=True))  # fmt: skip
        steps = list(cc.generate(pp.GenerateRequest(
            model={"name": "fleet-lm"}, prompt=dp.DetectInput(text="On day 9 the"),
            interventions=[graft], detect_dictionary_ids=[d.id],
            sampling=pp.SamplingParams(max_new_tokens=3))))  # fmt: skip
        assert steps[-1].done
        assert all(any(m.label == "cat" for m in s.matches) for s in steps[:-1])  # steered

        # Deleted on A: gone on B at once, though B has it cached from a Detect.
        _detect(cb, "fleet-lm", d.id)
        archive = ca.export_dictionary(d.id)
        ca.delete_dictionary(d.id)
        e = _error(_detect, cb, "fleet-lm", d.id)
        assert e.code is grpc.StatusCode.NOT_FOUND and e.reason == "DICTIONARY_NOT_FOUND"
        assert _error(cc.get_dictionary, d.id).code is grpc.StatusCode.NOT_FOUND

        # Imported on C: on A at once, byte for byte what was exported.
        assert cc.import_dictionary(archive).id == d.id
        assert ca.export_dictionary(d.id) == archive
        assert _detect(cb, "fleet-lm", d.id).results[0].n_tokens > 0

        # Unregistered on A: dropped by B and C; registered again on B: back on A and C.
        ca.unregister_model("fleet-lm")
        _until(lambda: _state(cb, "fleet-lm") == "NOT_FOUND", "fleet-lm dropped by B")
        _until(lambda: _state(cc, "fleet-lm") == "NOT_FOUND", "fleet-lm dropped by C")
        cb.register_model("fleet-lm", "tiny-llama", wait=True)
        _until(lambda: _state(ca, "fleet-lm") == "READY", "fleet-lm READY on A again")
        _until(lambda: _state(cc, "fleet-lm") == "READY", "fleet-lm READY on C again")
        assert _detect(cc, "fleet-lm", d.id).results[0].n_tokens > 0  # same files, same hash


def test_two_servers_never_share_a_data_dir(store: str, model_root: Path, tmp_path: Path) -> None:
    start_server(tmp_path / "a", model_root, "--store", store)
    with pytest.raises(RuntimeError) as err:
        start_server(tmp_path / "a", model_root, "--store", store)
    assert "is in use by another chunkscope server" in str(err.value)
    assert "its own --data-dir" in str(err.value)


def test_kill_9_during_dictionary_writes_leaves_no_partial_dictionary(
    store: str, model_root: Path, tmp_path: Path
) -> None:
    observer = start_server(tmp_path / "observer", model_root, "--store", store)
    rng = random.Random(7)
    with Client.connect(observer.address, timeout=120) as co:
        co.register_model("crash-lm", "tiny-llama", wait=True)
        [seed] = co.extract_dictionary(_extraction("crash-lm", [HOOKS[1]]))
        archive = co.export_dictionary(seed.id)
        # An upload in progress on the observer, half sent while the victim crashes and restarts.
        upload_done: list[Any] = []
        release = threading.Event()
        co.delete_dictionary(seed.id)

        def slow_pieces() -> Iterator[pb.ImportDictionaryRequest]:
            half = len(archive) // 2
            yield pb.ImportDictionaryRequest(data=archive[:half])
            release.wait(300)
            yield pb.ImportDictionaryRequest(data=archive[half:])

        def upload() -> None:
            try:
                upload_done.append(co.dictionaries.ImportDictionary(slow_pieces(), timeout=300))
            except grpc.RpcError as exc:
                upload_done.append(exc)

        uploader = threading.Thread(target=upload)
        uploader.start()
        spool = tmp_path / "observer" / "spool"
        _until(lambda: any(spool.glob(".tmp-upload-*")), "the observer spooling the upload")

        killed_mid_job = 0
        # Kill on a progress message of the job: as fitting starts (nothing written yet) or as
        # the write starts (plus a little jitter: before, during or after its transaction).
        phases = [pb.EXTRACTION_PHASE_FIT, pb.EXTRACTION_PHASE_STORE] * 2
        for round_, phase in enumerate(phases):
            victim = start_server(tmp_path / "victim", model_root, "--store", store)
            before = {x.id for x in co.list_dictionaries()}
            jitter = rng.uniform(0.0, 0.02) if phase == pb.EXTRACTION_PHASE_STORE else 0.0
            with Client.connect(victim.address, timeout=120) as cv:
                _until(lambda cv=cv: _state(cv, "crash-lm") == "READY", "crash-lm on the victim")
                finished, killed = False, False
                try:
                    for message in cv.extract_dictionary_stream(_extraction("crash-lm", HOOKS)):
                        if not killed and message.progress.phase == phase:
                            time.sleep(jitter)
                            victim.proc.kill()
                            killed = True
                        finished = finished or message.HasField("result")
                except ChunkscopeError as exc:
                    assert exc.code is grpc.StatusCode.UNAVAILABLE, exc
                assert killed, "the job never reached the phase to kill it at"
                victim.proc.wait(30)
            added = {x.id for x in co.list_dictionaries()} - before
            # All or nothing across the job: both hook points' dictionaries, or neither.
            assert len(added) in (0, 2), (round_, phase, jitter, added)
            if finished:
                assert len(added) == 2, (round_, phase, jitter)
            else:
                killed_mid_job += 1
            for dictionary_id in added:
                full = co.get_dictionary(dictionary_id, include_prototypes=True)
                assert full.hook_point in HOOKS and len(full.entries) == 2
                assert co.export_dictionary(dictionary_id)  # the stored bytes validate again
        assert killed_mid_job >= 1, "no kill landed during a job: the test checked nothing"

        # The victim restarted on its data dir 4 times: the observer's upload is intact.
        release.set()
        uploader.join(60)
        [reply] = upload_done
        assert not isinstance(reply, grpc.RpcError), reply
        assert reply.dictionary.id == seed.id
        assert co.export_dictionary(seed.id) == archive


def _served(server: ServerProcess) -> float:
    """Detect calls this replica answered OK (from its /metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("grpc_server_handled_total{")
            and 'grpc_method="Detect"' in line
            and 'grpc_code="OK"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_clients_carry_on_when_a_replica_is_killed(
    store: str, model_root: Path, tmp_path: Path
) -> None:
    a = start_server(tmp_path / "a", model_root, "--store", store)
    b = start_server(tmp_path / "b", model_root, "--store", store)
    with Client.connect(a.address, timeout=120) as ca:
        ca.register_model("lb-lm", "tiny-llama", wait=True)
        [d] = ca.extract_dictionary(_extraction("lb-lm", [HOOKS[1]]))
    with Client.connect(b.address, timeout=120) as cb:
        _until(lambda: _state(cb, "lb-lm") == "READY", "lb-lm READY on B")

    ok, failures, stop = [0], [], threading.Event()
    lock = threading.Lock()

    def load(client: Client) -> None:
        while not stop.is_set():
            try:
                assert _detect(client, "lb-lm", d.id).results[0].n_tokens > 0
                with lock:
                    ok[0] += 1
            except ChunkscopeError as exc:
                failures.append(exc)

    with Client.connect(f"{a.address},{b.address}", timeout=60) as fleet:
        threads = [threading.Thread(target=load, args=(fleet,)) for _ in range(4)]
        for t in threads:
            t.start()
        _until(lambda: ok[0] >= 40, "40 Detects through the fleet client")
        assert _served(a) > 0 and _served(b) > 0, "round_robin should use both replicas"
        b.proc.kill()
        b.proc.wait(30)
        killed_at = ok[0]
        _until(lambda: ok[0] >= killed_at + 40, "40 more Detects after B was killed")
        stop.set()
        for t in threads:
            t.join(60)
    assert failures == []
