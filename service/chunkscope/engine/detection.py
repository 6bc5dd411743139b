"""Applying stored dictionaries to new hidden states: which entry matches at which token.

A `Detector` is built once per dictionary (and cached by the service): it holds the entries'
tensors and answers, for the states of one input at the dictionary's hook point, a boolean match
matrix and a score matrix [tokens, entries]. Each method's own rule is in its module of
engine/methods/ (`Method.detect`), found by the manifest's method in the registry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from chunkscope import metrics
from chunkscope.engine.capture import CapturedBatch, Segment, capture_batch
from chunkscope.engine.loading import LoadedModel
from chunkscope.engine.methods import registry
from chunkscope.engine.methods.base import Detection

__all__ = ["Detection", "Detector", "InputDetection", "detect_batch", "hook_points_of", "match"]


class Detector:
    """One dictionary, ready to score states at its hook point (its method's rule)."""

    def __init__(self, manifest: dict[str, Any], tensors: dict[str, np.ndarray]) -> None:
        self.manifest = manifest
        self.id: str = manifest["id"]
        self.method: str = manifest["method"]
        self.kind = registry.get(self.method)
        self.hook_point: str = manifest["hook_point"]
        self.labels: list[str] = [e["label"] for e in manifest["entries"]]
        self.tensors = tensors
        self.higher_is_better = self.kind.higher_is_better
        # Its matches depend on the states before: streams and Generate pass the whole context.
        self.sequential = self.kind.sequential
        self._state = self.kind.detector(manifest, tensors)
        self.thresholds: np.ndarray = self.kind.thresholds(self._state, len(self.labels))

    def detect(self, states: np.ndarray) -> Detection:
        """Match every entry against the [T, d] states of one input."""
        return self.kind.detect(self._state, states)


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
