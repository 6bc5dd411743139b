"""PA presets through the client against a real server: RECOMMENDED is the default, AUTHORS is
the paper's fit exactly, explicit fields override a preset, bad values are refused by field.

The server's stored chunks are compared with chunking/pa.py's `fit_concept` run in this process
on the same model's states (captured here one text per forward, as the server does with
batch_size 1), so a wrong resolution of any preset field shows up as other neurons or radii.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from chunkscope.chunking import pa
from chunkscope.config import Settings
from chunkscope.corpus import Inputs
from chunkscope.engine.capture import Captured, capture_batch, segments
from chunkscope.engine.methods.population_averaging import PASpec, concept_rows, concept_spans
from chunkscope.engine.registry import ModelRegistry
from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import dictionaries_pb2 as pb
from support import ServerProcess

TEXTS = [
    f"On day {i} the cat slept near the window while the cake cooled on the table."
    for i in range(14)
] + [f"Nothing here mentions animals or food, sentence number {i}." for i in range(6)]
CONCEPTS = ("cat", "cake")
HOOK = "blocks.1.resid_post"
SEED = 1


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[Client]:
    with Client.connect(server.address, timeout=120) as c:
        c.register_model("preset-lm", "tiny-llama", wait=True)
        yield c
        c.unregister_model("preset-lm")


@pytest.fixture(scope="module")
def local(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The hook point's training states and each concept's rows, computed in this process."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("local"), model_roots=(model_root,), device="cpu"
    )

    async def capture() -> Captured:
        models = ModelRegistry(settings)
        try:
            await models.register("lm", "tiny-llama", "", "", wait=True)
            model = models.ready("lm")
            captured = Captured((HOOK,))
            for seg in segments(Inputs(texts=tuple(TEXTS)), "whole_text"):
                captured.add(capture_batch(model, [seg], [HOOK], 2048))
            return captured
        finally:
            await models.close()

    captured = asyncio.run(capture())
    spec = PASpec(tuple((c, ()) for c in CONCEPTS), (), 0, pa.AUTHORS)
    rows = concept_rows(concept_spans(spec, Inputs(texts=tuple(TEXTS))), captured, 0)
    return {"states": captured.states(HOOK), "rows": rows}


def _extract(client: Client, **params: object) -> pb.Dictionary:
    [d] = client.extract_dictionary(pb.ExtractDictionaryRequest(
        model={"name": "preset-lm"}, hook_points=[HOOK], batch_size=1,
        corpus=pb.Corpus(texts=pb.TextList(texts=TEXTS)),
        population_averaging=pb.PopulationAveragingParams(
            concepts=[pb.ConceptWords(concept=c) for c in CONCEPTS], seed=SEED,
            **params,  # type: ignore[arg-type]
        ),
    ))  # fmt: skip
    return client.get_dictionary(d.id, include_prototypes=True)


def _assert_fits_like(d: pb.Dictionary, local: dict[str, object], params: pa.PAParams) -> None:
    """Every stored entry is what fit_concept gives with these parameters in this process."""
    states = local["states"]
    rows = local["rows"]
    assert isinstance(states, np.ndarray) and isinstance(rows, dict)
    assert [e.label for e in d.entries] == list(CONCEPTS)
    for entry in d.entries:
        chunk = pa.fit_concept(states, rows[entry.label], params)
        neurons = np.frombuffer(entry.neurons.data, dtype=np.int64)
        prototype = np.frombuffer(entry.prototype.data, dtype=np.float32)
        np.testing.assert_array_equal(neurons, chunk.neurons)
        np.testing.assert_array_equal(prototype, chunk.prototype)
        # The radius is stored as float32 and chosen to be exactly representable there.
        assert entry.threshold == pytest.approx(chunk.radius, rel=1e-7)
        assert entry.tau == pytest.approx(chunk.tau, rel=1e-7)
        assert (entry.train.tpr, entry.train.fpr) == pytest.approx(
            (chunk.train.tpr, chunk.train.fpr), abs=1e-12)  # fmt: skip
        assert entry.HasField("out_of_sample") == (chunk.out_of_sample is not None)


def test_the_default_is_the_recommended_preset_and_the_manifest_says_so(
    client: Client, local: dict[str, object]
) -> None:
    d = _extract(client)
    stored = json.loads(d.parameters_json)
    assert stored["preset"] == "recommended"
    assert (stored["radius_rule"], stored["radius_negatives"], stored["radius_scale"]) == (
        "negatives", 0, 0.9)  # fmt: skip
    assert stored["sample_all"] is True and stored["criterion"] == "tpr_at_fpr"
    assert stored["cv_folds"] == 5 and stored["n_samples"] == 5
    _assert_fits_like(d, local, dataclasses.replace(pa.RECOMMENDED, seed=SEED))
    # Every occurrence is a sample: no out-of-sample scores, so cross-validation alone is the
    # honest score, and it still recommends a hook point for each concept.
    for entry in d.entries:
        assert not entry.HasField("out_of_sample") and entry.HasField("cross_validated")
        assert entry.cv_folds == 5
    assert [r.concept for r in d.recommended] == list(CONCEPTS)
    for r in d.recommended:
        entry = d.entries[r.entry_id]
        assert r.hook_point == HOOK and r.honest_tpr == entry.cross_validated.tpr
    # Asking for the preset by name is the same request.
    named = _extract(client, preset=pb.PA_PRESET_RECOMMENDED)
    assert json.loads(named.parameters_json) == stored
    assert [e.threshold for e in named.entries] == [e.threshold for e in d.entries]


def test_the_authors_preset_is_the_paper_s_fit_exactly(
    client: Client, local: dict[str, object]
) -> None:
    d = _extract(client, preset=pb.PA_PRESET_AUTHORS)
    stored = json.loads(d.parameters_json)
    assert stored["preset"] == "authors"
    assert (stored["radius_rule"], stored["radius_scale"], stored["sample_all"]) == (
        "samples", 1.0, False)  # fmt: skip
    assert (stored["criterion"], stored["n_samples"]) == ("accuracy", 5)
    _assert_fits_like(d, local, dataclasses.replace(pa.AUTHORS, seed=SEED))
    for entry in d.entries:  # five samples drawn: the other nine are out of sample
        assert entry.out_of_sample.positives == entry.count - 5 == 9
    # Spelling out the authors' values on the default preset is the same fit.
    spelled = _extract(
        client, criterion=pb.PA_CRITERION_ACCURACY, radius_rule=pb.PA_RADIUS_RULE_SAMPLES,
        radius_scale=1.0, sample_all=False, radius_negatives=0,
    )  # fmt: skip
    assert json.loads(spelled.parameters_json) == {**stored, "preset": "recommended"}
    for a, b in zip(d.entries, spelled.entries, strict=True):
        assert (a.threshold, a.tau, a.neurons.data) == (b.threshold, b.tau, b.neurons.data)


def test_explicit_fields_override_the_preset(client: Client, local: dict[str, object]) -> None:
    d = _extract(
        client, preset=pb.PA_PRESET_AUTHORS, radius_rule=pb.PA_RADIUS_RULE_NEGATIVES,
        radius_scale=0.8, radius_negatives=1,
    )  # fmt: skip
    stored = json.loads(d.parameters_json)
    assert stored["preset"] == "authors" and stored["criterion"] == "accuracy"
    assert (stored["radius_rule"], stored["radius_negatives"], stored["radius_scale"]) == (
        "negatives", 1, 0.8)  # fmt: skip
    params = dataclasses.replace(
        pa.AUTHORS, seed=SEED, radius_rule="negatives", radius_negatives=1, radius_scale=0.8
    )
    _assert_fits_like(d, local, params)
    # An explicit n_samples on the default draws that many (sample_all falls back to false).
    n7 = _extract(client, n_samples=7)
    stored = json.loads(n7.parameters_json)
    assert (stored["n_samples"], stored["sample_all"], stored["radius_rule"]) == (
        7, False, "negatives")  # fmt: skip
    _assert_fits_like(n7, local, dataclasses.replace(pa.RECOMMENDED, seed=SEED, n_samples=7,
                                                     sample_all=False))  # fmt: skip


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"preset": 7}, "population_averaging.preset"),
        ({"radius_rule": 7}, "population_averaging.radius_rule"),
        ({"radius_negatives": -1}, "population_averaging.radius_negatives"),
        ({"radius_scale": -0.5}, "population_averaging.radius_scale"),
        ({"radius_scale": float("nan")}, "population_averaging.radius_scale"),
        ({"cv_folds": -1, "sample_all": True}, "population_averaging.cv_folds"),
    ],
)
def test_bad_preset_values_are_refused_by_field(
    client: Client, params: dict[str, object], field: str
) -> None:
    before = {d.id for d in client.list_dictionaries()}
    with pytest.raises(ChunkscopeError) as caught:
        _extract(client, **params)
    e = caught.value
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT, e
    [(named, description)] = e.field_violations
    assert named == field and description, e
    assert {d.id for d in client.list_dictionaries()} == before
