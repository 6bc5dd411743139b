"""The chunking methods' registry: one module per method, and nothing else to touch.

A toy method defined in this file alone (parameters, validation, fit, layout, detection, graft)
is registered and then extracted, stored, loaded, detected and steered with through the engine
and the store, as the four real methods are. Every real method's parameters round-trip through
the manifest, and every ChunkMethod value and request oneof field names a registered method.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from chunkscope.chunking import pa
from chunkscope.config import Settings
from chunkscope.corpus import Inputs
from chunkscope.engine import methods
from chunkscope.engine.capture import Captured, capture_batch, segments
from chunkscope.engine.chunks import DetectorCache, InterventionSpec, resolve
from chunkscope.engine.detection import detect_batch
from chunkscope.engine.extraction import ExtractionSpec, Extractor
from chunkscope.engine.loading import LoadedModel
from chunkscope.engine.methods import registry
from chunkscope.engine.methods.base import (
    Detection,
    Fit,
    FitOutput,
    Graft,
    Layout,
    Method,
    center_of,
    unit,
)
from chunkscope.engine.registry import ModelRegistry
from chunkscope.errors import FailedPrecondition, InvalidArgument
from chunkscope.store.dictionaries import LocalDictionaryStore, new_id
from chunkscope_client.v1 import dictionaries_pb2 as pb

TEXTS = tuple(f"On day {i} the cat slept near the window while the cake cooled." for i in range(3))
HOOK = "blocks.1.resid_post"

# ----- a toy method, complete in this file ----------------------------------------------------


@dataclass(frozen=True)
class ToyParams:
    min_cos: float = 0.5


@dataclass(frozen=True)
class ToyState:
    directions: np.ndarray
    min_cos: float


class MeanDirection(Method[ToyParams, ToyState]):
    """One entry: the direction of the mean state; a token matches when its cosine with it is at
    least min_cos."""

    name = "toy_mean_direction"
    proto = cast(pb.ChunkMethod.ValueType, 99)
    higher_is_better = True
    layout = Layout(
        tensors={"directions": ("f", 2), "center": ("f", 1)},
        entry_rows=("directions",),
        width=("directions",),
        optional={"counts": ("i", 1)},  # as if added later: dictionaries without it still load
    )

    def from_request(self, message: Any) -> ToyParams:
        return ToyParams(message.min_cos)

    def parameters(self, params: ToyParams) -> dict[str, Any]:
        return asdict(params)

    def load_parameters(self, stored: dict[str, Any]) -> ToyParams:
        return ToyParams(**stored)

    def validate(self, params: ToyParams, model: LoadedModel, corpus: Inputs) -> None:
        if not -1.0 <= params.min_cos <= 1.0:
            raise ValueError(f"min_cos {params.min_cos} is not a cosine: use -1..1")

    def prepare(
        self, params: ToyParams, model: LoadedModel, corpus: Inputs,
        heldout_inputs: Inputs | None, train: Captured, heldout: Captured | None,
    ) -> Fit:  # fmt: skip
        def fit(hook_point: str, progress: methods.ProgressFn) -> FitOutput:
            states = train.states(hook_point)
            center = center_of(states, train)
            entries = [{"id": 0, "label": "mean", "count": int(states.shape[0])}]
            tensors = {"directions": unit(center)[None, :], "center": center}
            return FitOutput(entries, tensors, {"rows": float(states.shape[0])})

        return fit

    def detector(self, manifest: dict[str, Any], tensors: dict[str, np.ndarray]) -> ToyState:
        return ToyState(tensors["directions"], float(manifest["parameters"]["min_cos"]))

    def thresholds(self, state: ToyState, n_entries: int) -> np.ndarray:
        return np.full(n_entries, state.min_cos)

    def detect(self, state: ToyState, states: np.ndarray) -> Detection:
        norms = np.maximum(np.linalg.norm(states, axis=1, keepdims=True), 1e-12)
        scores = ((states / norms) @ state.directions.T).astype(np.float32)
        return Detection(scores >= state.min_cos, scores, True)

    def graft(self, t: dict[str, np.ndarray], entry: int, center: np.ndarray) -> Graft:
        return Graft(t["directions"][entry], values=t["directions"][entry], scale_to_norm=True)

    def prototype(self, entry: dict[str, Any], t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"prototype": t["directions"][entry["id"]]}


@pytest.fixture
def toy() -> Iterator[MeanDirection]:
    method = MeanDirection()
    registry.register(method)
    try:
        yield method
    finally:
        registry.unregister(method.name)


def _spec(params: ToyParams) -> ExtractionSpec:
    return ExtractionSpec(
        model="lm", content_hash="", hook_points=(HOOK,), corpus=Inputs(texts=TEXTS),
        heldout=None, context="whole_text", batch_size=2, max_tokens=0, description="toy",
        method=MeanDirection.name, method_spec=params,
    )  # fmt: skip


def test_a_method_registered_from_one_module_extracts_stores_detects_and_steers(
    tmp_path: Path, model_root: Path, toy: MeanDirection
) -> None:
    settings = Settings(data_dir=tmp_path / "data", model_roots=(model_root,), device="cpu")

    async def scenario() -> tuple[Any, ...]:
        models = ModelRegistry(settings)
        await models.register("lm", "tiny-llama", "", "", wait=True)
        store = LocalDictionaryStore(settings.data_dir)
        try:
            extractor = Extractor(models, store, max_capture_bytes=1 << 30)
            with pytest.raises(InvalidArgument) as bad:
                [e async for e in extractor.run(_spec(ToyParams(min_cos=2.0)))]
            *_, last = [e async for e in extractor.run(_spec(ToyParams(min_cos=0.5)))]
            manifests = cast(list[dict[str, Any]], last)
            model = models.ready("lm")
            content_hash = models.get("lm").content_hash
            cache = DetectorCache(store)
            detector = cache.get(manifests[0]["id"], "lm", content_hash, model, "dictionary_id")
            segs = segments(Inputs(texts=("the cat slept", TEXTS[0])), "whole_text")
            found = detect_batch(model, [detector], segs, 64)
            captured = capture_batch(model, segs, [HOOK], 64)
            action = resolve(
                InterventionSpec(mode="activate", dictionary_id=detector.id, indices=(0,)),
                0, model, "lm", content_hash, cache, prompt_length=3,
            )  # fmt: skip
            return bad.value, manifests, detector, found, captured, action
        finally:
            store.close()
            await models.close()

    bad, manifests, detector, found, captured, action = asyncio.run(scenario())
    # The toy's own validation, reached through the extraction job, names its field.
    assert bad.violations[0].field == "toy_mean_direction"
    assert "min_cos 2.0 is not a cosine" in bad.violations[0].description
    [manifest] = manifests
    assert manifest["method"] == "toy_mean_direction"
    assert manifest["parameters"] == {"min_cos": 0.5}
    assert manifest["stats"]["rows"] == manifest["corpus"]["n_tokens"] > 0
    # Loaded back through the store's checks of the toy's layout: a unit mean direction.
    directions, center = detector.tensors["directions"], detector.tensors["center"]
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(directions[0], center / np.linalg.norm(center), atol=1e-6)
    assert detector.higher_is_better and not detector.sequential
    np.testing.assert_array_equal(detector.thresholds, [0.5])
    # Detection runs the toy's rule: the cosine of each token's state with the direction.
    states = captured.states[HOOK]
    bounds = np.cumsum([0, *captured.lengths])
    for i, result in enumerate(found):
        rows = states[bounds[i] : bounds[i + 1]]
        expected = rows @ directions[0] / np.linalg.norm(rows, axis=1)
        np.testing.assert_allclose(result.results[0].scores[:, 0], expected, atol=1e-5)
        np.testing.assert_array_equal(result.results[0].matches[:, 0], expected >= 0.5)
    # Steering grafts the toy's values, keeping the state's norm.
    np.testing.assert_array_equal(action.values, directions[0])
    assert action.scale_to_norm and action.neurons is None


def test_the_store_checks_a_registered_method_s_layout(tmp_path: Path, toy: MeanDirection) -> None:
    store = LocalDictionaryStore(tmp_path)
    manifest: dict[str, Any] = {
        "schema_version": 1, "id": new_id(),
        "model": {"name": "lm", "content_hash": "sha256:0", "architecture": "llama"},
        "hook_point": HOOK, "hidden_size": 4, "dtype": "float32",
        "method": "toy_mean_direction", "parameters": {"min_cos": 0.5},
        "corpus": {"fingerprint": "f", "n_inputs": 1, "n_tokens": 3, "context": "whole_text",
                   "max_tokens": 8},
        "created_at": "2026-01-01T00:00:00+00:00", "chunkscope_version": "0",
        "description": "", "stats": {}, "entries": [{"id": 0, "label": "mean"}],
        "tensors_sha256": "",
    }  # fmt: skip
    try:
        with pytest.raises(FailedPrecondition) as err:
            store.save(manifest, {"directions": np.ones((1, 3), np.float32),
                                  "center": np.ones(4, np.float32)})  # fmt: skip
        assert err.value.reason == "INVALID_DICTIONARY"
        assert err.value.message == "tensor directions has width 3, hidden_size is 4"
        good = {"directions": np.ones((1, 4), np.float32), "center": np.ones(4, np.float32)}
        with pytest.raises(FailedPrecondition) as err:
            store.save(manifest, {**good, "counts": np.ones(1, np.float32)})
        assert err.value.message == (
            "tensor counts: dtype float32, ndim 1; expected kind 'i', ndim 1"
        )
        with pytest.raises(FailedPrecondition) as err:
            store.save(manifest, {**good, "extra": np.ones(1, np.float32)})
        assert err.value.message == (
            "chunks.safetensors holds ['center', 'directions', 'extra'], a toy_mean_direction "
            "dictionary needs ['center', 'directions'] and may hold ['counts']"
        )
        store.save({**manifest, "id": new_id()}, {**good, "counts": np.ones(1, np.int64)})
        store.save(manifest, good)
        loaded, tensors = store.load(manifest["id"])
        assert loaded["method"] == "toy_mean_direction" and set(tensors) == {"directions", "center"}
    finally:
        store.close()
    registry.unregister("toy_mean_direction")
    # Unregistered, the method is unknown again, with the message that lists the registered ones.
    with pytest.raises(FailedPrecondition) as err:
        LocalDictionaryStore(tmp_path / "other").save(manifest, {})
    assert err.value.message == (
        "manifest.method 'toy_mean_direction' is not one of ('population_averaging', "
        "'discrete_sequence_chunking', 'cosine_dictionary', 'density_chunks')"
    )


# ----- the four methods -----------------------------------------------------------------------


def test_every_chunk_method_value_and_request_field_names_a_registered_method() -> None:
    values = [v for v in pb.ChunkMethod.values() if v != pb.CHUNK_METHOD_UNSPECIFIED]
    assert sorted(m.proto for m in registry.METHODS.values()) == sorted(values)
    for value in values:
        method = registry.by_proto(value)
        assert method is not None and pb.ChunkMethod.Name(value) == (
            "CHUNK_METHOD_" + method.name.upper()
        )
    assert registry.by_proto(pb.CHUNK_METHOD_UNSPECIFIED) is None
    oneof = pb.ExtractDictionaryRequest.DESCRIPTOR.oneofs_by_name["method"]
    assert [f.name for f in oneof.fields] == list(registry.METHODS)
    for name, method in registry.METHODS.items():
        assert method.name == name and "center" in method.layout.tensors
    # Cosine scores are similarities and DSC's the 0/1 matches (higher is better); PA's and
    # density's are distances. A Detector's flag is the one its Detections carry.
    assert [n for n, m in registry.METHODS.items() if m.higher_is_better] == [
        "discrete_sequence_chunking", "cosine_dictionary"
    ]  # fmt: skip
    assert [n for n, m in registry.METHODS.items() if m.sequential] == [
        "discrete_sequence_chunking"
    ]


def _requests() -> list[tuple[str, Any]]:
    return [
        ("population_averaging", pb.PopulationAveragingParams()),
        ("population_averaging", pb.PopulationAveragingParams(
            concepts=[pb.ConceptWords(concept="cat", words=["cat", "cats"])],
            spans=[pb.LabelSpan(text_index=1, start=2, end=5, concept="dog")], step=1,
            n_samples=7, min_occurrences=12, taus=[0.1, 0.2], criterion=pb.PA_CRITERION_TPR_AT_FPR,
            max_fpr=0.01, seed=3, cv_folds=-1, sparsity_margin=0.02, max_neurons=9,
            require_all_cells=True,
        )),
        ("population_averaging", pb.PopulationAveragingParams(preset=pb.PA_PRESET_AUTHORS)),
        ("population_averaging", pb.PopulationAveragingParams(
            preset=pb.PA_PRESET_AUTHORS, radius_rule=pb.PA_RADIUS_RULE_NEGATIVES,
            radius_negatives=2, radius_scale=0.8, sample_all=True)),
        ("discrete_sequence_chunking", pb.DiscreteSequenceChunkingParams()),
        ("discrete_sequence_chunking", pb.DiscreteSequenceChunkingParams(
            n_bins=3, n_iter=10, n_new_chunks=4, min_frequency=2, overlap_jaccard=0.5, seed=1)),
        ("cosine_dictionary", pb.CosineDictionaryParams()),
        ("cosine_dictionary", pb.CosineDictionaryParams(
            k=8, epochs=3, learning_rate=0.1, batch_size=4, seed=2, reject_below=0.3,
            init=pb.COSINE_INIT_GAUSSIAN, dead_atom_policy=pb.DEAD_ATOM_POLICY_KEEP)),
        ("density_chunks", pb.DensityChunksParams()),
        ("density_chunks", pb.DensityChunksParams(
            pca_dim=-1, min_cluster_size=5, min_samples=3, radius_quantile=0.9,
            max_fit_states=100, seed=4)),
    ]  # fmt: skip


@pytest.mark.parametrize(("name", "message"), _requests())
def test_every_method_s_parameters_round_trip_through_the_manifest(name: str, message: Any) -> None:
    method = registry.get(name)
    params = method.from_request(message)
    stored = json.loads(json.dumps(method.parameters(params), sort_keys=True))
    assert method.load_parameters(stored) == params
    assert method.parameters(method.load_parameters(stored)) == stored


def test_pa_parameters_stored_before_the_sparsity_options_still_load() -> None:
    method = registry.get("population_averaging")
    stored = method.parameters(method.from_request(pb.PopulationAveragingParams()))
    del stored["sparsity_margin"], stored["max_neurons"], stored["require_all_cells"]
    loaded = method.load_parameters(stored)
    assert loaded.params.sparsity_margin == 0.0 and loaded.params.max_neurons == 0
    assert loaded.require_all_cells is False


def test_pa_presets_resolve_and_explicit_fields_override_them() -> None:
    method = registry.get("population_averaging")
    resolve = lambda **kw: method.from_request(pb.PopulationAveragingParams(**kw))  # noqa: E731
    default = resolve()
    assert default.preset == "recommended" and default.params == pa.RECOMMENDED
    assert resolve(preset=pb.PA_PRESET_RECOMMENDED).params == pa.RECOMMENDED
    authors = resolve(preset=pb.PA_PRESET_AUTHORS)
    assert authors.preset == "authors" and authors.params == pa.AUTHORS
    # Each explicit field beats its preset, one at a time.
    assert resolve(criterion=pb.PA_CRITERION_ACCURACY).params == dataclasses.replace(
        pa.RECOMMENDED, criterion="accuracy")  # fmt: skip
    assert resolve(radius_rule=pb.PA_RADIUS_RULE_SAMPLES).params.radius_rule == "samples"
    assert resolve(radius_scale=1.0).params.radius_scale == 1.0
    assert resolve(radius_negatives=0, preset=pb.PA_PRESET_AUTHORS).params == pa.AUTHORS
    assert resolve(radius_negatives=3).params.radius_negatives == 3
    assert resolve(sample_all=False).params == dataclasses.replace(pa.RECOMMENDED, sample_all=False)
    assert resolve(preset=pb.PA_PRESET_AUTHORS, sample_all=True).params.sample_all is True
    # An explicit n_samples keeps meaning "draw that many", unless sample_all is set too.
    assert resolve(n_samples=20).params == dataclasses.replace(
        pa.RECOMMENDED, n_samples=20, sample_all=False)  # fmt: skip
    assert resolve(n_samples=20, sample_all=True).params.sample_all is True
    # Old explicit requests keep the meaning of the fields they set.
    old = resolve(n_samples=7, criterion=pb.PA_CRITERION_TPR_AT_FPR, max_fpr=0.01, cv_folds=3)
    p = old.params
    assert (p.n_samples, p.criterion, p.max_fpr, p.cv_folds) == (7, "tpr_at_fpr", 0.01, 3)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"preset": 9}, "population_averaging.preset"),
        ({"radius_rule": 9}, "population_averaging.radius_rule"),
        ({"radius_negatives": -1}, "population_averaging.radius_negatives"),
        ({"radius_scale": -0.5}, "population_averaging.radius_scale"),
        ({"radius_scale": float("nan")}, "population_averaging.radius_scale"),
        ({"radius_scale": float("inf")}, "population_averaging.radius_scale"),
        ({"radius_scale": 1e300}, "population_averaging.radius_scale"),
        # No cross-validation with every occurrence sampled: no honest score would be left.
        ({"cv_folds": -1, "sample_all": True}, "population_averaging.cv_folds"),
        ({"cv_folds": -1, "preset": 2, "sample_all": True}, "population_averaging.cv_folds"),
    ],
)
def test_pa_bad_preset_fields_are_refused_by_name(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        registry.get("population_averaging").from_request(pb.PopulationAveragingParams(**fields))
    [violation] = caught.value.violations
    assert violation.field == named


def test_pa_cv_off_is_accepted_where_out_of_sample_scores_remain() -> None:
    method = registry.get("population_averaging")
    for fields in ({}, {"preset": pb.PA_PRESET_AUTHORS}, {"sample_all": False}, {"n_samples": 9}):
        spec = method.from_request(pb.PopulationAveragingParams(cv_folds=-1, **fields))
        assert spec.params.cv_folds == 0 and not spec.params.sample_all
    # The default's other settings stay: only the draw falls back to n_samples.
    spec = method.from_request(pb.PopulationAveragingParams(cv_folds=-1))
    assert spec.params == dataclasses.replace(pa.RECOMMENDED, cv_folds=0, sample_all=False)


def test_pa_manifest_without_the_preset_keys_loads_as_the_authors_fitted_it() -> None:
    """Stored before presets (and the RECOMMENDED default) existed: no preset, radius_rule,
    radius_negatives, radius_scale or sample_all keys; the fit used the authors' radius."""
    method = registry.get("population_averaging")
    request = pb.PopulationAveragingParams(
        preset=pb.PA_PRESET_AUTHORS, n_samples=10, criterion=pb.PA_CRITERION_TPR_AT_FPR
    )
    stored = method.parameters(method.from_request(request))
    for key in ("preset", "radius_rule", "radius_negatives", "radius_scale", "sample_all"):
        del stored[key]
    loaded = method.load_parameters(json.loads(json.dumps(stored)))
    assert loaded.preset == "authors"
    assert loaded.params == dataclasses.replace(
        pa.AUTHORS, n_samples=10, criterion="tpr_at_fpr")  # fmt: skip
    assert loaded.params.radius_rule == "samples" and loaded.params.sample_all is False
