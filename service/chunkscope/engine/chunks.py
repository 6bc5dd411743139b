"""Using stored dictionaries on a model: cached detectors, binding checks, interventions resolved.

Everything here checks the request against the model before any forward runs: the dictionary
must belong to this model (name, content hash, dtype), entries must exist, positions must fall
inside the prompt, vectors must be finite and of the hook point's width.
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from chunkscope import observability
from chunkscope.engine.detection import Detector
from chunkscope.engine.device import dtype_name
from chunkscope.engine.loading import LoadedModel
from chunkscope.engine.methods.base import unit
from chunkscope.engine.steering import MODES, Action
from chunkscope.errors import ChunkscopeError, FailedPrecondition, FieldViolation, InvalidArgument
from chunkscope.store.dictionaries import DictionaryStore, require_binding


@dataclass(frozen=True)
class InterventionSpec:
    """An intervention as the request states it (before it is checked against the model)."""

    mode: str
    dictionary_id: str = ""
    entry_id: int = 0
    vector: np.ndarray | None = None
    hook_point: str = ""
    allow_other_hook_point: bool = False
    alpha: float = 0.0
    indices: tuple[int, ...] = ()
    all_prompt: bool = False
    generated: bool = False


class DetectorCache:
    """Detectors by dictionary id (a small LRU: loading validates and reads the files).

    With a shared store, another replica may delete a cached dictionary: `prefetch` asks the store
    which of the cached ones a request names still exist (one query) and forgets the others.
    """

    # At least the dictionaries one Detect may name (64), so a request's prefetch holds them all.
    def __init__(self, store: DictionaryStore, size: int = 64) -> None:
        self.store = store
        self.size = size
        self._cache: OrderedDict[str, Detector] = OrderedDict()
        self._forgets = 0  # counts forget() calls, so a prefetch can tell one happened meanwhile
        # Why the latest prefetch of an id failed: `get` reports it without asking the store
        # again on the event loop.
        self._misses: OrderedDict[str, ChunkscopeError] = OrderedDict()

    def get(self, dictionary_id: str, model_name: str, content_hash: str, model: LoadedModel,
            field: str) -> Detector:  # fmt: skip
        """The detector of a dictionary that must belong to this model (FAILED_PRECONDITION)."""
        detector = self._cache.get(dictionary_id)
        if detector is None:
            try:
                miss = self._misses.get(dictionary_id)
                if miss is not None:
                    raise miss
                manifest, tensors = self.store.load(dictionary_id)
            except InvalidArgument as exc:
                raise InvalidArgument.field(field, exc.violations[0].description) from None
            detector = Detector(manifest, tensors)
            self._cache[dictionary_id] = detector
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(dictionary_id)
        require_binding(
            detector.manifest, model=model_name, content_hash=content_hash,
            hook_point=detector.hook_point, dtype=dtype_name(model.dtype),
        )  # fmt: skip
        return detector

    async def prefetch(self, dictionary_ids: Iterable[str]) -> None:
        """Load the dictionaries a request names into the cache on a worker thread.

        Loading reads the tensors and hashes them (sha256), which must not block the event loop;
        callers await this before the synchronous `get`. Faults are left for `get` to report with
        the request's field name.
        """
        named = [d for d in dict.fromkeys(dictionary_ids) if d]
        cached = [d for d in named if d in self._cache]
        if self.store.shared and cached:
            try:
                with observability.span("chunkscope.store.existing", dictionaries=len(cached)):
                    present = await asyncio.to_thread(self.store.existing, cached)
            except ChunkscopeError:  # store unavailable: dictionaries never change, serve the copy
                present = set(cached)
            for gone in set(cached) - present:
                self.forget(gone)
        wanted = [d for d in named if d not in self._cache]
        for dictionary_id in wanted[: self.size]:
            forgets = self._forgets
            try:
                detector = await asyncio.to_thread(self._load, dictionary_id)
            except ChunkscopeError as exc:
                self._misses[dictionary_id] = exc
                while len(self._misses) > self.size:
                    self._misses.popitem(last=False)
                continue
            self._misses.pop(dictionary_id, None)
            if forgets != self._forgets:  # deleted meanwhile? do not cache what was read before
                continue
            self._cache[dictionary_id] = detector
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)

    def _load(self, dictionary_id: str) -> Detector:
        with observability.span("chunkscope.store.load", dictionary=dictionary_id):
            manifest, tensors = self.store.load(dictionary_id)
        return Detector(manifest, tensors)

    def forget(self, dictionary_id: str) -> None:
        self._forgets += 1
        self._cache.pop(dictionary_id, None)


def resolve_positions(spec: InterventionSpec, prompt_length: int, field: str) -> tuple[int, ...]:
    if spec.all_prompt:
        return tuple(range(prompt_length))
    positions = []
    for j, index in enumerate(spec.indices):
        position = index + prompt_length if index < 0 else index
        if not 0 <= position < prompt_length:
            raise InvalidArgument.field(
                f"{field}.positions.indices[{j}]",
                f"{index} is outside the prompt ({prompt_length} tokens: use "
                f"{-prompt_length}..{prompt_length - 1})",
            )
        positions.append(position)
    return tuple(sorted(set(positions)))


def resolve(
    spec: InterventionSpec, index: int, model: LoadedModel, model_name: str, content_hash: str,
    detectors: DetectorCache, prompt_length: int,
) -> Action:  # fmt: skip
    """Check one intervention against the model and turn it into an Action."""
    field = f"interventions[{index}]"
    if spec.mode not in MODES:
        raise InvalidArgument.field(f"{field}.mode", f"required: one of {', '.join(MODES)}")
    if not math.isfinite(spec.alpha):
        raise InvalidArgument.field(f"{field}.alpha", "must be a finite number")
    if not (spec.indices or spec.all_prompt or spec.generated):
        raise InvalidArgument.field(
            f"{field}.positions", "required: indices, all_prompt, generated and/or message_tail"
        )
    positions = resolve_positions(spec, prompt_length, field)
    if spec.vector is not None:
        return _resolve_vector(spec, field, model, positions)
    detector = detectors.get(
        spec.dictionary_id, model_name, content_hash, model, f"{field}.chunk.dictionary_id"
    )
    entries = len(detector.labels)
    if not entries:
        raise InvalidArgument.field(
            f"{field}.chunk.entry_id",
            f"{detector.id} has no entries: no concept was feasible at {detector.hook_point} "
            "(GetDictionary lists why in infeasible_cells); use another hook point's dictionary",
        )
    if not 0 <= spec.entry_id < entries:
        raise InvalidArgument.field(
            f"{field}.chunk.entry_id",
            f"{spec.entry_id} is not an entry of {detector.id} (0..{entries - 1})",
        )
    hook_point = spec.hook_point or detector.hook_point
    if hook_point != detector.hook_point:
        if not spec.allow_other_hook_point:
            raise FailedPrecondition(
                f"{field}: chunk {detector.id}/{spec.entry_id} was extracted at "
                f"{detector.hook_point}, not {hook_point}; set allow_other_hook_point to apply it "
                "elsewhere",
                reason="DICTIONARY_MISMATCH",
            )
        model.adapter.resolve(hook_point)  # raises for unknown names
    return _chunk_action(detector, spec, hook_point, positions)


def _resolve_vector(
    spec: InterventionSpec, field: str, model: LoadedModel, positions: tuple[int, ...]
) -> Action:
    assert spec.vector is not None
    violations = []
    if not spec.hook_point:
        violations.append(FieldViolation(f"{field}.hook_point", "required with an inline vector"))
    if spec.mode not in ("add", "project_out"):
        violations.append(FieldViolation(
            f"{field}.mode", "an inline vector supports ADD and PROJECT_OUT only"))  # fmt: skip
    if spec.vector.shape != (model.hidden_size,):
        width = f"{list(spec.vector.shape)}; this model's hook points are {model.hidden_size} wide"
        violations.append(FieldViolation(f"{field}.vector.shape", width))
    elif not np.all(np.isfinite(spec.vector)) or not np.any(spec.vector):
        violations.append(FieldViolation(f"{field}.vector", "must be finite and non-zero"))
    if violations:
        raise InvalidArgument(violations)
    model.adapter.resolve(spec.hook_point)
    return Action(
        spec.hook_point, spec.mode, unit(spec.vector.astype(np.float32)), alpha=spec.alpha,
        prompt_positions=positions, generated=spec.generated,
    )  # fmt: skip


def _chunk_action(
    detector: Detector, spec: InterventionSpec, hook_point: str, positions: tuple[int, ...]
) -> Action:
    """Activation grafts the entry's own values; directions are entry minus the states' center
    (each method's `graft`)."""
    t, k = detector.tensors, spec.entry_id
    center = t["center"]
    common: dict[str, Any] = {
        "center": center,
        "alpha": spec.alpha,
        "prompt_positions": positions,
        "generated": spec.generated,
    }
    g = detector.kind.graft(t, k, center)
    return Action(
        hook_point, spec.mode, g.direction, neurons=g.neurons, values=g.values,
        scale_to_norm=g.scale_to_norm, **common,
    )  # fmt: skip
