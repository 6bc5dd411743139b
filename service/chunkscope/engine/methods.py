"""Fitting each chunking method to captured states, and the dictionary layout each one stores.

The science is in chunking/ (pure functions); this module turns captured rows into their inputs
(labels for PA, trajectories for DSC) and their outputs into manifest entries and tensors.
What each method holds in memory: PA, the training (and held-out) states of one hook point;
DSC, the (small) recurrent trajectories; the cosine dictionary, the states of one hook point
plus K x d atoms; density chunks, the states of one hook point (HDBSCAN sees at most
max_fit_states of them). Captured states of other hook points are released after their fit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from chunkscope.chunking import dsc, pa, ucd
from chunkscope.chunking.labels import Span, label_positions, word_spans
from chunkscope.corpus import Inputs
from chunkscope.engine.capture import Captured, context_window, decode_token
from chunkscope.engine.loading import LoadedModel
from chunkscope.errors import FailedPrecondition, FieldViolation, InvalidArgument

N_EXAMPLES = 5
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class PASpec:
    """PA's request: concepts by words and/or spans, the step offset, the fit parameters."""

    concepts: tuple[tuple[str, tuple[str, ...]], ...]
    spans: tuple[Span, ...]
    step: int
    params: pa.PAParams
    # All or nothing: one infeasible (hook point, concept) cell fails the request.
    require_all_cells: bool = False


@dataclass
class FitOutput:
    entries: list[dict[str, Any]]
    tensors: dict[str, np.ndarray]
    stats: dict[str, float]
    # PA: the concepts that yielded no entry at this hook point, with reason and sweep.
    infeasible: list[dict[str, Any]] = field(default_factory=list)


MethodSpec = PASpec | dsc.DSCParams | ucd.CosineParams | ucd.DensityParams


def parameters_of(spec: MethodSpec) -> dict[str, Any]:
    """The method's parameters as stored in the manifest (JSON-able)."""
    if isinstance(spec, PASpec):
        return {
            "concepts": [{"concept": c, "words": list(w)} for c, w in spec.concepts],
            "spans": [asdict(s) for s in spec.spans],
            "step": spec.step,
            "require_all_cells": spec.require_all_cells,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(spec.params).items()},
        }
    return asdict(spec)


# ----- labels (PA) ----------------------------------------------------------------------------


def concept_spans(spec: PASpec, inputs: Inputs) -> dict[str, list[Span]]:
    """Every labelled character span per concept: words matched in the texts plus explicit spans."""
    found: dict[str, list[Span]] = {concept: [] for concept, _ in spec.concepts}
    for concept, words in spec.concepts:
        found[concept] += word_spans(inputs.texts, concept, list(words) or [concept])
    for span in spec.spans:
        # A span that includes surrounding whitespace would reach into the next word's token
        # (tokenizers that keep the leading space in a token), so trim it to the word.
        text = inputs.texts[span.text_index]
        start, end = span.start, span.end
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            found.setdefault(span.concept, []).append(
                Span(span.text_index, start, end, span.concept)
            )
    return found


def check_spans(spec: PASpec, inputs: Inputs) -> None:
    """Explicit spans must lie inside their texts; every concept needs enough occurrences."""
    violations = []
    for i, span in enumerate(spec.spans):
        where = f"population_averaging.spans[{i}]"
        if not 0 <= span.text_index < len(inputs.texts):
            violations.append(
                FieldViolation(
                    f"{where}.text_index",
                    f"{span.text_index} is not a training text index (0..{len(inputs.texts) - 1})",
                )
            )
        elif not 0 <= span.start < span.end <= len(inputs.texts[span.text_index]):
            violations.append(FieldViolation(
                where, f"[{span.start}, {span.end}) is not a non-empty range inside text "
                f"{span.text_index} (length {len(inputs.texts[span.text_index])})"))  # fmt: skip
    if violations:
        raise InvalidArgument(violations)
    # The fit draws n_samples distinct occurrences, so it needs at least that many as well as
    # min_occurrences; the larger of the two binds, and the message names it.
    p = spec.params
    needed, name = max((p.min_occurrences, "min_occurrences"), (p.n_samples, "n_samples"))
    for concept, spans in concept_spans(spec, inputs).items():
        if len(spans) < needed:
            raise InvalidArgument.field(
                "population_averaging.concepts" if name == "min_occurrences"
                else "population_averaging.n_samples",
                f"concept {concept!r} occurs {len(spans)} times in the training texts; PA needs at "
                f"least {needed} ({name}): add texts that use it, or lower {name}",
                reason="TOO_FEW_OCCURRENCES",
            )  # fmt: skip


def concept_rows(
    spans: dict[str, list[Span]], captured: Captured, step: int
) -> dict[str, np.ndarray]:
    """Global rows of each concept's labelled tokens (span -> its segment -> token position)."""
    by_text: dict[int, list[int]] = {}
    for seg_index, seg in enumerate(captured.segments):
        by_text.setdefault(seg.input_index, []).append(seg_index)
    rows: dict[str, np.ndarray] = {}
    for concept, concept_spans_ in spans.items():
        found: list[int] = []
        for span in concept_spans_:
            for seg_index in by_text.get(span.text_index, []):
                seg = captured.segments[seg_index]
                lo, hi = seg.char_start, seg.char_start + len(seg.text)
                if not (lo <= span.start and span.end <= hi):
                    continue
                local = Span(span.text_index, span.start - lo, span.end - lo, concept)
                for pos in label_positions(captured.offsets[seg_index], [local], step):
                    found.append(captured.row_starts[seg_index] + pos)
        rows[concept] = np.unique(np.asarray(found, dtype=np.int64))
    return rows


# ----- examples -------------------------------------------------------------------------------


def _examples(
    model: LoadedModel, captured: Captured, rows: np.ndarray, scores: np.ndarray
) -> list[dict[str, Any]]:
    out = []
    for row, value in zip(rows.tolist(), scores.tolist(), strict=True):
        seg, pos = captured.locate(int(row))
        ids = captured.token_ids[seg]
        out.append({
            "input_index": captured.segments[seg].input_index,
            "position": pos,
            "token": decode_token(model, int(ids[pos])),
            "context": context_window(model, ids, pos),
            "score": float(value),
        })  # fmt: skip
    return out


def _scores(s: pa.Scores | None) -> dict[str, Any] | None:
    return None if s is None else asdict(s)


def _center(states: np.ndarray, captured: Captured) -> np.ndarray:
    """Mean state, leaving out each input's first token: language models park very large
    activations there (attention sinks), which would otherwise dominate every direction."""
    keep = np.ones(states.shape[0], dtype=bool)
    keep[np.asarray(captured.row_starts, dtype=np.int64)] = False
    rows = states[keep] if keep.any() else states
    return rows.mean(axis=0, dtype=np.float64).astype(np.float32)


# ----- the four methods -------------------------------------------------------------------------


def fit_population_averaging(
    model: LoadedModel,
    spec: PASpec,
    hook_point: str,
    train: Captured,
    train_rows: dict[str, np.ndarray],
    heldout: Captured | None,
    heldout_rows: dict[str, np.ndarray] | None,
    progress: ProgressFn,
) -> FitOutput:
    states = train.states(hook_point)
    held_states = heldout.states(hook_point) if heldout is not None else None
    entries: list[dict[str, Any]] = []
    chunks: list[pa.PAChunk] = []
    infeasible: list[dict[str, Any]] = []
    for i, (concept, positives) in enumerate(train_rows.items()):
        progress(i, len(train_rows))
        held_pos = heldout_rows.get(concept) if heldout_rows is not None else None
        try:
            chunk = pa.fit_concept(
                states, positives, spec.params,
                heldout_states=held_states if held_pos is not None and held_pos.size else None,
                heldout_positives=held_pos if held_pos is not None and held_pos.size else None,
            )  # fmt: skip
        except pa.TooFewOccurrences as exc:
            raise InvalidArgument.field(
                "population_averaging.concepts",
                f"concept {concept!r}: {exc} (after tokenization and truncation to max_tokens)",
                reason="TOO_FEW_OCCURRENCES",
            ) from None
        except pa.NoValidTolerance as exc:
            if spec.require_all_cells:
                raise FailedPrecondition(
                    f"concept {concept!r} at {hook_point}: {exc}", reason="NO_VALID_TOLERANCE"
                ) from None
            # Per-cell results: the other cells are stored, this one is reported with its sweep.
            infeasible.append({
                "hook_point": hook_point, "concept": concept, "reason": "NO_VALID_TOLERANCE",
                "message": str(exc), "count": int(positives.size),
                "sweep": [asdict(p) for p in exc.sweep],
            })  # fmt: skip
            continue
        chunks.append(chunk)
        dist = pa.distances(states, chunk.neurons, chunk.prototype)
        best = np.argsort(dist, kind="stable")[:N_EXAMPLES]
        entries.append({
            "id": len(entries), "label": concept, "tau": chunk.tau, "threshold": chunk.radius,
            "n_neurons": int(chunk.neurons.size), "count": int(positives.size),
            "train": _scores(chunk.train), "heldout": _scores(chunk.heldout), "auc": chunk.auc,
            "out_of_sample": _scores(chunk.out_of_sample),
            "cross_validated": _scores(chunk.cross_validated), "cv_folds": chunk.cv_folds,
            "sweep": [asdict(p) for p in chunk.sweep],
            "examples": _examples(model, train, best, dist[best]),
        })  # fmt: skip
    progress(len(train_rows), len(train_rows))
    sizes = [c.neurons.size for c in chunks]
    d = states.shape[1]
    tensors: dict[str, np.ndarray] = {
        "neurons": np.concatenate([np.zeros(0, np.int64), *(c.neurons for c in chunks)]),
        "neuron_offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        "prototype": np.concatenate(
            [np.zeros(0, np.float32), *(c.prototype for c in chunks)]
        ).astype(np.float32),
        "mean": np.stack([c.mean for c in chunks]).astype(np.float32)
        if chunks
        else np.zeros((0, d), np.float32),
        "radius": np.asarray([c.radius for c in chunks], dtype=np.float32),
        "tau": np.asarray([c.tau for c in chunks], dtype=np.float32),
    }
    stats = {"concepts": float(len(chunks)), "infeasible_concepts": float(len(infeasible))}
    held = [c.heldout for c in chunks if c.heldout is not None]
    if held:
        stats["mean_heldout_tpr"] = float(np.mean([h.tpr for h in held]))
        stats["mean_heldout_fpr"] = float(np.mean([h.fpr for h in held]))
    tensors["center"] = _center(states, train)
    return FitOutput(entries, tensors, stats, infeasible)


def fit_discrete_sequence_chunking(
    model: LoadedModel, params: dsc.DSCParams, hook_point: str, train: Captured,
    progress: ProgressFn,
) -> FitOutput:  # fmt: skip
    states = train.states(hook_point)
    trajectories = [
        states[start : start + n] for start, n in zip(train.row_starts, train.lengths, strict=True)
    ]
    progress(0, 1)
    result = dsc.fit(trajectories, params)
    progress(1, 1)
    symbols = [[model.symbols[int(t)] for t in ids] for ids in train.token_ids]
    entries: list[dict[str, Any]] = []
    # Label each chunk by the input symbols it most often stands for, and keep occurrences.
    spelled: list[Counter[str]] = [Counter() for _ in result.chunks]
    first_rows: list[list[int]] = [[] for _ in result.chunks]
    for seq_index, parse in enumerate(result.parses):
        t = 0
        for unit in parse:
            length = len(result.chunks[unit].states) if unit >= 0 else 1
            if unit >= 0:
                spelled[unit]["".join(symbols[seq_index][t : t + length])] += 1
                if len(first_rows[unit]) < N_EXAMPLES:
                    first_rows[unit].append(train.row_starts[seq_index] + t)
            t += length
    for i, chunk in enumerate(result.chunks):
        label = spelled[i].most_common(1)[0][0] if spelled[i] else f"chunk-{i}"
        rows = np.asarray(first_rows[i], dtype=np.int64)
        entries.append({
            "id": i, "label": label, "count": int(chunk.count), "states": list(chunk.states),
            "source": chunk.source,
            "examples": _examples(model, train, rows, np.zeros(rows.size)),
        })  # fmt: skip
    all_states = np.concatenate(result.sequences)
    all_symbols = [s for seq in symbols for s in seq]
    if all_states.size < 2:
        raise InvalidArgument.field(
            "corpus",
            f"discrete sequence chunking needs at least 2 time steps in all (after max_tokens); "
            f"got {all_states.size}: send longer sequences or raise max_tokens",
        )
    train_steps = max(1, int(0.3 * all_states.size))
    accuracy, n_test = dsc.decode_accuracy(all_states, all_symbols, train_steps)
    offsets = np.concatenate([[0], np.cumsum([len(c.states) for c in result.chunks])])
    tensors: dict[str, np.ndarray] = {
        "centroids": result.centroids.astype(np.float32),
        "state_bins": result.state_bins.astype(np.int64),
        "state_vectors": result.state_vectors.astype(np.float32),
        "state_counts": result.state_counts.astype(np.int64),
        "chunk_states": np.asarray([s for c in result.chunks for s in c.states], dtype=np.int64),
        "chunk_offsets": offsets.astype(np.int64),
    }
    stats = {
        "distinct_states": float(result.state_bins.shape[0]),
        "null_state": float(result.null_state),
        "decode_accuracy": accuracy,
        "decode_test_steps": float(n_test),
        "parse_length": float(sum(len(p) for p in result.parses)),
        "steps": float(all_states.size),
    }
    tensors["center"] = _center(states, train)
    return FitOutput(entries, tensors, stats)


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
            "count": int(result.counts[k]), "examples": _examples(model, train, rows, cos[rows]),
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
    tensors["center"] = _center(states, train)
    return FitOutput(entries, tensors, stats)


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
            "count": int(result.counts[k]), "examples": _examples(model, train, rows, dist[rows]),
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
    tensors["center"] = _center(states, train)
    return FitOutput(entries, tensors, stats)
