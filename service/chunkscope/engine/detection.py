"""Applying stored dictionaries to new hidden states: which entry matches at which token.

A `Detector` is built once per dictionary (and cached by the service): it holds the entries'
tensors and answers, for the states of one input at the dictionary's hook point, a boolean match
matrix and a score matrix [tokens, entries]. Each method's own rule, as extracted:
PA, mean squared deviation on the entry's neurons <= radius; cosine, the best atom and
cos >= reject threshold; density, the nearest prototype within its radius; DSC, the greedy parse
of the discretised state sequence (every step a chunk spans matches it).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from chunkscope import metrics
from chunkscope.chunking import dsc, pa, ucd
from chunkscope.engine.capture import CapturedBatch, Segment, capture_batch
from chunkscope.engine.loading import LoadedModel


@dataclass(frozen=True)
class Detection:
    matches: np.ndarray  # bool [T, E]
    scores: np.ndarray  # float32 [T, E]
    higher_is_better: bool

    def since(self, start: int) -> Detection:
        """The rows from position `start` on (negative: from the end)."""
        return Detection(self.matches[start:], self.scores[start:], self.higher_is_better)


class Detector:
    """One dictionary, ready to score states at its hook point."""

    def __init__(self, manifest: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        self.manifest = manifest
        self.id: str = manifest["id"]
        self.method: str = manifest["method"]
        self.hook_point: str = manifest["hook_point"]
        self.labels: list[str] = [e["label"] for e in manifest["entries"]]
        self.tensors = tensors
        self.higher_is_better = self.method == "cosine_dictionary"
        if self.method == "population_averaging":
            self.thresholds = tensors["radius"].astype(np.float64)
        elif self.method == "cosine_dictionary":
            reject = manifest["parameters"].get("reject_below")
            self.reject = float(reject) if reject is not None else None
            self.thresholds = np.full(len(self.labels), self.reject or 0.0)
        elif self.method == "density_chunks":
            self.thresholds = tensors["radii"].astype(np.float64)
        else:
            offsets = tensors["chunk_offsets"]
            flat = tensors["chunk_states"]
            self.chunks = [
                tuple(int(s) for s in flat[a:b]) for a, b in itertools.pairwise(offsets.tolist())
            ]
            self.thresholds = np.ones(len(self.labels))

    def detect(self, states: np.ndarray) -> Detection:
        """Match every entry against the [T, d] states of one input."""
        t, e = states.shape[0], len(self.labels)
        if self.method == "population_averaging":
            offsets = self.tensors["neuron_offsets"]
            scores = np.empty((t, e), dtype=np.float32)
            for k in range(e):
                lo, hi = offsets[k], offsets[k + 1]
                scores[:, k] = pa.distances(
                    states, self.tensors["neurons"][lo:hi], self.tensors["prototype"][lo:hi]
                )
            return Detection(scores <= self.thresholds[None, :], scores, False)
        if self.method == "cosine_dictionary":
            atoms = self.tensors["atoms"]
            unit = states / np.maximum(np.linalg.norm(states, axis=1, keepdims=True), 1e-12)
            scores = (unit @ atoms.T).astype(np.float32)
            index, _ = ucd.assign_cosine(states, atoms, self.reject)
            matches = np.zeros((t, e), dtype=bool)
            hit = index >= 0
            matches[np.nonzero(hit)[0], index[hit]] = True
            return Detection(matches, scores, True)
        if self.method == "density_chunks":
            protos, radii = self.tensors["prototypes"], self.tensors["radii"]
            # |a - b|^2 = |a|^2 + |b|^2 - 2ab, without a [T, K, d] temporary.
            sq = (
                np.einsum("td,td->t", states, states)[:, None]
                + np.einsum("kd,kd->k", protos, protos)[None, :]
                - 2.0 * states @ protos.T
            )
            scores = np.sqrt(np.maximum(sq, 0.0)).astype(np.float32)
            index, _ = ucd.assign_density(states, protos, radii)
            matches = np.zeros((t, e), dtype=bool)
            hit = index >= 0
            matches[np.nonzero(hit)[0], index[hit]] = True
            return Detection(matches, scores, False)
        return self._detect_sequence(states)

    def _detect_sequence(self, states: np.ndarray) -> Detection:
        ids = dsc.assign_states(states, self.tensors["centroids"], self.tensors["state_bins"])
        t, e = ids.shape[0], len(self.labels)
        matches = np.zeros((t, e), dtype=bool)
        # A state never seen during extraction breaks the sequence: parse each run between them.
        start = 0
        for end in [*np.nonzero(ids < 0)[0].tolist(), t]:
            position = start
            for unit in dsc.parse(ids[start:end], self.chunks) if end > start else []:
                length = len(self.chunks[unit]) if unit >= 0 else 1
                if unit >= 0:
                    matches[position : position + length, unit] = True
                position += length
            start = end + 1
        return Detection(matches, matches.astype(np.float32), True)


@dataclass
class InputDetection:
    """Detection on one input: its tokens and each detector's result."""

    token_ids: np.ndarray
    offsets: list[tuple[int, int]]
    results: list[Detection]


def match(detectors: list[Detector], captured: CapturedBatch) -> list[InputDetection]:
    """Every detector's matches on every input of a captured batch (host work)."""
    per_input: list[list[Detection]] = [[] for _ in captured.lengths]
    bounds = np.cumsum([0, *captured.lengths]).tolist()
    for d in detectors:
        started = time.perf_counter()
        states = captured.states[d.hook_point]
        for i, found in enumerate(per_input):
            found.append(d.detect(states[bounds[i] : bounds[i + 1]]))
        metrics.DETECTION_MATCH_SECONDS.labels(d.id).observe(time.perf_counter() - started)
    return [
        InputDetection(captured.token_ids[i], captured.offsets[i], results)
        for i, results in enumerate(per_input)
    ]


def hook_points_of(detectors: list[Detector]) -> list[str]:
    return sorted({d.hook_point for d in detectors})


def detect_batch(
    model: LoadedModel, detectors: list[Detector], batch: list[Segment], max_tokens: int
) -> list[InputDetection]:
    """Capture and match one batch in the calling thread (the server goes through the scheduler)."""
    return match(detectors, capture_batch(model, batch, hook_points_of(detectors), max_tokens))
