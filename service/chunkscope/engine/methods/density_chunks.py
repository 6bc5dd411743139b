"""Density chunks (UCD, unsupervised): HDBSCAN clusters of a hook point's states.

Everything specific to it outside chunking/ucd.py: the request's parameters, the fit, the stored
layout, detection (the nearest prototype within its radius) and steering.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from chunkscope.chunking import ucd
from chunkscope.corpus import Inputs
from chunkscope.engine.capture import Captured
from chunkscope.engine.loading import LoadedModel
from chunkscope.engine.methods.base import (
    N_EXAMPLES,
    Detection,
    Fit,
    FitOutput,
    Graft,
    Layout,
    Method,
    ProgressFn,
    center_of,
    examples,
    known_fields,
    nearest_matches,
    or_default,
    unit,
)
from chunkscope.errors import InvalidArgument
from chunkscope_client.v1 import dictionaries_pb2 as pb


def fit_density_chunks(
    model: LoadedModel, params: ucd.DensityParams, hook_point: str, train: Captured,
    heldout: Captured | None, progress: ProgressFn,
) -> FitOutput:  # fmt: skip
    states = train.states(hook_point)
    progress(0, 1)
    result = ucd.fit_density(states, params)
    progress(1, 1)
    dist = result.distances  # each member's distance to its own prototype
    best = ucd.top_examples(result.labels, dist, N_EXAMPLES, higher_is_better=False)
    entries = []
    for k in range(result.prototypes.shape[0]):
        rows = best.get(k, np.zeros(0, np.int64))
        entries.append({
            "id": k, "label": f"chunk-{k}", "threshold": float(result.radii[k]),
            "count": int(result.counts[k]), "examples": examples(model, train, rows, dist[rows]),
        })  # fmt: skip
    stats = {
        "noise_fraction": result.noise_fraction,
        "fit_states": float(result.fit_states),
        "subsampled": float(result.subsampled),
    }
    if heldout is not None:
        held_index, _ = ucd.assign_density(
            heldout.states(hook_point), result.prototypes, result.radii
        )
        stats["heldout_noise_fraction"] = float(np.mean(held_index < 0))
    tensors: dict[str, np.ndarray] = {
        "prototypes": result.prototypes.astype(np.float32),
        "radii": result.radii.astype(np.float32),
        "counts": result.counts.astype(np.int64),
    }
    tensors["center"] = center_of(states, train)
    return FitOutput(entries, tensors, stats)


@dataclass(frozen=True)
class DensityDetector:
    prototypes: np.ndarray
    radii: np.ndarray


class DensityChunks(Method[ucd.DensityParams, DensityDetector]):
    name = "density_chunks"
    proto = pb.CHUNK_METHOD_DENSITY_CHUNKS
    layout = Layout(
        tensors={
            "prototypes": ("f", 2), "radii": ("f", 1), "counts": ("i", 1), "center": ("f", 1),
        },
        entry_rows=("prototypes", "radii", "counts"),
        width=("prototypes",),
    )  # fmt: skip

    def from_request(self, d: Any) -> ucd.DensityParams:
        return ucd.DensityParams(
            pca_dim={0: 32, -1: 0}.get(d.pca_dim, int(d.pca_dim)),
            min_cluster_size=d.min_cluster_size or 25,
            min_samples=d.min_samples or None,
            radius_quantile=or_default(d.radius_quantile, 0.95),
            max_fit_states=d.max_fit_states or 20000,
            seed=d.seed,
        )

    def parameters(self, params: ucd.DensityParams) -> dict[str, Any]:
        return asdict(params)

    def load_parameters(self, stored: dict[str, Any]) -> ucd.DensityParams:
        return ucd.DensityParams(**known_fields(ucd.DensityParams, stored))

    def validate(self, params: ucd.DensityParams, model: LoadedModel, corpus: Inputs) -> None:
        params.validate()

    def prepare(
        self, params: ucd.DensityParams, model: LoadedModel, corpus: Inputs,
        heldout_inputs: Inputs | None, train: Captured, heldout: Captured | None,
    ) -> Fit:  # fmt: skip
        try:  # at least min_cluster_size states
            params.validate(train.n_rows)
        except ValueError as exc:
            raise InvalidArgument.field(self.name, str(exc)) from None
        return lambda hp, progress: fit_density_chunks(model, params, hp, train, heldout, progress)

    def detector(self, manifest: dict[str, Any], tensors: dict[str, np.ndarray]) -> DensityDetector:
        return DensityDetector(tensors["prototypes"], tensors["radii"])

    def thresholds(self, state: DensityDetector, n_entries: int) -> np.ndarray:
        return state.radii.astype(np.float64)

    def detect(self, state: DensityDetector, states: np.ndarray) -> Detection:
        protos = state.prototypes
        # |a - b|^2 = |a|^2 + |b|^2 - 2ab, without a [T, K, d] temporary.
        sq = (
            np.einsum("td,td->t", states, states)[:, None]
            + np.einsum("kd,kd->k", protos, protos)[None, :]
            - 2.0 * states @ protos.T
        )
        scores = np.sqrt(np.maximum(sq, 0.0)).astype(np.float32)
        index, _ = ucd.assign_density(states, protos, state.radii)
        return Detection(nearest_matches(index, protos.shape[0]), scores, False)

    def graft(self, t: dict[str, np.ndarray], entry: int, center: np.ndarray) -> Graft:
        prototype = t["prototypes"][entry]
        return Graft(unit(prototype - center), values=prototype)

    def prototype(self, entry: dict[str, Any], t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"prototype": t["prototypes"][entry["id"]]}
