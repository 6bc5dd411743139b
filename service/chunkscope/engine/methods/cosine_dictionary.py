"""Cosine dictionary (UCD, unsupervised): K unit atoms trained on a hook point's states.

Everything specific to it outside chunking/ucd.py: the request's parameters, the fit, the stored
layout, detection (the best atom, when its cosine reaches reject_below) and steering (atoms are
unit vectors: activation keeps the state's norm).
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


def fit_cosine_dictionary(
    model: LoadedModel, params: ucd.CosineParams, hook_point: str, train: Captured,
    heldout: Captured | None, progress: ProgressFn,
) -> FitOutput:  # fmt: skip
    states = train.states(hook_point)
    result = ucd.fit_cosine(states, params, device=str(model.device), progress=progress)
    index, cos = ucd.assign_cosine(states, result.atoms, params.reject_below)
    best = ucd.top_examples(index, cos, N_EXAMPLES, higher_is_better=True)
    entries = []
    for k in range(result.atoms.shape[0]):
        rows = best.get(k, np.zeros(0, np.int64))
        entries.append({
            "id": k, "label": f"chunk-{k}", "threshold": params.reject_below or 0.0,
            "count": int(result.counts[k]), "examples": examples(model, train, rows, cos[rows]),
        })  # fmt: skip
    stats = {
        "dead_atoms": float(result.dead.size),
        "dead_atom_fraction": float(result.dead.size) / result.atoms.shape[0],
        "mean_max_cos": result.mean_max_cos,
        "rejected_fraction": float(np.mean(index < 0)),
    }
    if heldout is not None:
        held_index, held_cos = ucd.assign_cosine(
            heldout.states(hook_point), result.atoms, params.reject_below
        )
        stats["heldout_mean_max_cos"] = float(np.mean(held_cos))
        stats["heldout_rejected_fraction"] = float(np.mean(held_index < 0))
    tensors: dict[str, np.ndarray] = {
        "atoms": result.atoms.astype(np.float32),
        "counts": result.counts.astype(np.int64),
    }
    tensors["center"] = center_of(states, train)
    return FitOutput(entries, tensors, stats)


@dataclass(frozen=True)
class CosineDetector:
    atoms: np.ndarray
    reject: float | None


class CosineDictionary(Method[ucd.CosineParams, CosineDetector]):
    name = "cosine_dictionary"
    proto = pb.CHUNK_METHOD_COSINE_DICTIONARY
    higher_is_better = True
    layout = Layout(
        tensors={"atoms": ("f", 2), "counts": ("i", 1), "center": ("f", 1)},
        entry_rows=("atoms", "counts"),
        width=("atoms",),
    )

    def from_request(self, c: Any) -> ucd.CosineParams:
        init = {
            pb.COSINE_INIT_UNSPECIFIED: "kmeans++",
            pb.COSINE_INIT_KMEANS_PP: "kmeans++",
            pb.COSINE_INIT_RANDOM_STATES: "random_states",
            pb.COSINE_INIT_GAUSSIAN: "gaussian",
        }.get(c.init)
        if init is None:
            raise InvalidArgument.field(
                "cosine_dictionary.init",
                f"unknown CosineInit value {c.init}: use COSINE_INIT_KMEANS_PP (the default), "
                "COSINE_INIT_RANDOM_STATES or COSINE_INIT_GAUSSIAN (the authors')",
            )
        reseed = {
            pb.DEAD_ATOM_POLICY_UNSPECIFIED: True,
            pb.DEAD_ATOM_POLICY_RESEED: True,
            pb.DEAD_ATOM_POLICY_KEEP: False,
        }.get(c.dead_atom_policy)
        if reseed is None:
            raise InvalidArgument.field(
                "cosine_dictionary.dead_atom_policy",
                f"unknown DeadAtomPolicy value {c.dead_atom_policy}: use DEAD_ATOM_POLICY_RESEED "
                "(the default) or DEAD_ATOM_POLICY_KEEP (the authors')",
            )
        return ucd.CosineParams(
            k=c.k or 256, epochs=c.epochs or 20, lr=or_default(c.learning_rate, 1e-2),
            batch_size=c.batch_size or 64, seed=c.seed,
            reject_below=c.reject_below if c.reject_below > 0 else None,
            init=init, reseed_dead=reseed,
        )  # fmt: skip

    def parameters(self, params: ucd.CosineParams) -> dict[str, Any]:
        return asdict(params)

    def load_parameters(self, stored: dict[str, Any]) -> ucd.CosineParams:
        return ucd.CosineParams(**known_fields(ucd.CosineParams, stored))

    def validate(self, params: ucd.CosineParams, model: LoadedModel, corpus: Inputs) -> None:
        params.validate()

    def prepare(
        self, params: ucd.CosineParams, model: LoadedModel, corpus: Inputs,
        heldout_inputs: Inputs | None, train: Captured, heldout: Captured | None,
    ) -> Fit:  # fmt: skip
        try:  # at least K states
            params.validate(train.n_rows)
        except ValueError as exc:
            raise InvalidArgument.field(self.name, str(exc)) from None
        return lambda hp, progress: fit_cosine_dictionary(
            model, params, hp, train, heldout, progress
        )

    def detector(self, manifest: dict[str, Any], tensors: dict[str, np.ndarray]) -> CosineDetector:
        reject = manifest["parameters"].get("reject_below")
        return CosineDetector(tensors["atoms"], float(reject) if reject is not None else None)

    def thresholds(self, state: CosineDetector, n_entries: int) -> np.ndarray:
        return np.full(n_entries, state.reject or 0.0)

    def detect(self, state: CosineDetector, states: np.ndarray) -> Detection:
        unit_states = states / np.maximum(np.linalg.norm(states, axis=1, keepdims=True), 1e-12)
        scores = (unit_states @ state.atoms.T).astype(np.float32)
        index, _ = ucd.assign_cosine(states, state.atoms, state.reject)
        return Detection(nearest_matches(index, state.atoms.shape[0]), scores, True)

    def graft(self, t: dict[str, np.ndarray], entry: int, center: np.ndarray) -> Graft:
        atom = t["atoms"][entry]
        direction = unit(atom - unit(center))  # atoms are unit vectors: compare like with like
        return Graft(direction, values=atom, scale_to_norm=True)

    def prototype(self, entry: dict[str, Any], t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"prototype": t["atoms"][entry["id"]]}
