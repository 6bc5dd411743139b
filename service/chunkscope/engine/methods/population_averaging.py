"""Population Averaging (PA): labelled concepts -> a few neurons and a ball around their values.

Everything PA-specific outside chunking/pa.py: the request's parameters (`from_request`, every
PopulationAveragingParams field checked here), labels (words and spans -> token rows), the fit of
one hook point, the per-cell results across hook points (`finish`), the stored layout, detection
(mean squared deviation on the entry's neurons <= radius) and steering (graft the entry's values).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from chunkscope.chunking import pa
from chunkscope.chunking.labels import Span, label_positions, word_spans
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
    invalid_dictionary,
    known_fields,
    or_default,
    scores_of,
    unit,
)
from chunkscope.errors import FailedPrecondition, FieldViolation, InvalidArgument
from chunkscope_client.v1 import dictionaries_pb2 as pb


@dataclass(frozen=True)
class PASpec:
    """PA's request: concepts by words and/or spans, the step offset, the fit parameters."""

    concepts: tuple[tuple[str, tuple[str, ...]], ...]
    spans: tuple[Span, ...]
    step: int
    params: pa.PAParams
    # All or nothing: one infeasible (hook point, concept) cell fails the request.
    require_all_cells: bool = False
    # The preset the parameters were resolved from (PRESETS); params holds the resolved values.
    preset: str = "recommended"


# The named presets a request starts from (PaPreset); fields the request sets override them.
# Dictionaries stored before presets existed were fitted with the authors' settings, so their
# missing keys load from AUTHORS (load_parameters), whatever the default is now.
PRESETS: dict[str, pa.PAParams] = {"recommended": pa.RECOMMENDED, "authors": pa.AUTHORS}
_PRESET_OF = {
    pb.PA_PRESET_UNSPECIFIED: "recommended",
    pb.PA_PRESET_RECOMMENDED: "recommended",
    pb.PA_PRESET_AUTHORS: "authors",
}
_RADIUS_RULE_OF = {pb.PA_RADIUS_RULE_SAMPLES: "samples", pb.PA_RADIUS_RULE_NEGATIVES: "negatives"}
_LEGACY_PRESET = "authors"
# A larger factor only makes a ball that holds everything (and its radius would overflow float32).
MAX_RADIUS_SCALE = 1000.0


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
            "train": scores_of(chunk.train), "heldout": scores_of(chunk.heldout), "auc": chunk.auc,
            "out_of_sample": scores_of(chunk.out_of_sample),
            "cross_validated": scores_of(chunk.cross_validated), "cv_folds": chunk.cv_folds,
            "sweep": [asdict(p) for p in chunk.sweep],
            "examples": examples(model, train, best, dist[best]),
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
    tensors["center"] = center_of(states, train)
    return FitOutput(entries, tensors, stats, infeasible)


@dataclass(frozen=True)
class PADetector:
    neurons: np.ndarray
    offsets: np.ndarray
    prototype: np.ndarray
    radius: np.ndarray  # float64 [E]


class PopulationAveraging(Method[PASpec, PADetector]):
    name = "population_averaging"
    proto = pb.CHUNK_METHOD_POPULATION_AVERAGING
    layout = Layout(
        tensors={
            "neurons": ("i", 1), "neuron_offsets": ("i", 1), "prototype": ("f", 1),
            "mean": ("f", 2), "radius": ("f", 1), "tau": ("f", 1), "center": ("f", 1),
        },
        entry_rows=("mean", "radius", "tau"),
        width=("mean",),
        offsets=(("neuron_offsets", ("neurons", "prototype")),),
    )  # fmt: skip

    # ----- parameters -----------------------------------------------------------------------

    def from_request(self, p: Any) -> PASpec:
        violations = []
        concepts = []
        for i, c in enumerate(p.concepts):
            if not 1 <= len(c.concept) <= 64:
                violations.append(FieldViolation(
                    f"population_averaging.concepts[{i}].concept", "1-64 characters"))  # fmt: skip
            if any(not w.strip() for w in c.words):
                violations.append(FieldViolation(
                    f"population_averaging.concepts[{i}].words", "must not be empty"))  # fmt: skip
            concepts.append((c.concept, tuple(c.words)))
        names = [c for c, _ in concepts]
        if len(set(names)) != len(names):
            violations.append(
                FieldViolation("population_averaging.concepts", "a concept is listed twice")
            )
        if violations:
            raise InvalidArgument(violations)
        preset = _PRESET_OF.get(p.preset)
        if preset is None:
            raise InvalidArgument.field(
                "population_averaging.preset",
                f"unknown PaPreset value {p.preset}: use PA_PRESET_RECOMMENDED (the default) or "
                "PA_PRESET_AUTHORS (the paper's settings)",
            )
        base = PRESETS[preset]
        criterion = {
            pb.PA_CRITERION_UNSPECIFIED: base.criterion,
            pb.PA_CRITERION_ACCURACY: "accuracy",
            pb.PA_CRITERION_TPR_AT_FPR: "tpr_at_fpr",
        }.get(p.criterion)
        if criterion is None:
            raise InvalidArgument.field(
                "population_averaging.criterion", "unknown PaCriterion value"
            )
        radius_rule = (
            base.radius_rule
            if p.radius_rule == pb.PA_RADIUS_RULE_UNSPECIFIED
            else _RADIUS_RULE_OF.get(p.radius_rule)
        )
        if radius_rule is None:
            raise InvalidArgument.field(
                "population_averaging.radius_rule",
                f"unknown PaRadiusRule value {p.radius_rule}: use PA_RADIUS_RULE_SAMPLES, "
                "PA_RADIUS_RULE_NEGATIVES, or leave it unset for the preset's",
            )
        radius_negatives = (
            p.radius_negatives if p.HasField("radius_negatives") else base.radius_negatives
        )
        if radius_negatives < 0:
            raise InvalidArgument.field(
                "population_averaging.radius_negatives",
                f"{radius_negatives} is negative: use the number of training negatives the ball "
                "may hold (0: none), or leave it unset for the preset's",
            )
        if not (math.isfinite(p.radius_scale) and 0.0 <= p.radius_scale <= MAX_RADIUS_SCALE):
            raise InvalidArgument.field(
                "population_averaging.radius_scale",
                f"{p.radius_scale} is not a radius factor: use a number in (0, "
                f"{MAX_RADIUS_SCALE:g}] (e.g. 0.9 for a 10% margin), or 0 for the preset's",
            )
        # An explicit n_samples keeps its meaning (that many occurrences drawn), and cv_folds -1
        # needs some occurrences left out of the draw (the out-of-sample scores are then the
        # only honest ones): either turns the preset's sample_all off unless it is set too.
        if p.HasField("sample_all"):
            sample_all = p.sample_all
        else:
            sample_all = base.sample_all and not p.n_samples and p.cv_folds != -1
        if not (p.cv_folds in (-1, 0) or 2 <= p.cv_folds <= pa.MAX_CV_FOLDS):
            raise InvalidArgument.field(
                "population_averaging.cv_folds",
                f"{p.cv_folds} is not a fold count: use 0 for the default (5 folds), 2.."
                f"{pa.MAX_CV_FOLDS}, or -1 to turn cross-validation off",
            )
        if p.cv_folds == -1 and sample_all:
            raise InvalidArgument.field(
                "population_averaging.cv_folds",
                "-1 (no cross-validation) leaves nothing to recommend a hook point by with "
                "sample_all true: every occurrence is a sample, so none is out of sample. Use 0 "
                f"(5 folds) or 2..{pa.MAX_CV_FOLDS}, or leave sample_all unset (or false) to "
                "keep -1",
            )
        if not (math.isfinite(p.sparsity_margin) and 0.0 <= p.sparsity_margin <= 1.0):
            raise InvalidArgument.field(
                "population_averaging.sparsity_margin",
                f"{p.sparsity_margin} is not a score margin: use 0 (off: the best score) or a "
                "number in (0, 1], e.g. 0.02 to accept up to 0.02 less TPR (or accuracy) for "
                "fewer neurons",
            )
        if p.max_neurons < 0:
            raise InvalidArgument.field(
                "population_averaging.max_neurons",
                f"{p.max_neurons} is negative: use 0 for no bound or the largest neuron count an "
                "entry may have",
            )
        params = pa.PAParams(
            n_samples=p.n_samples or base.n_samples,
            min_occurrences=p.min_occurrences or base.min_occurrences,
            taus=tuple(p.taus) or base.taus,
            criterion=criterion,
            max_fpr=or_default(p.max_fpr, base.max_fpr),
            seed=p.seed,
            cv_folds={0: base.cv_folds, -1: 0}.get(p.cv_folds, p.cv_folds),
            sparsity_margin=p.sparsity_margin,
            max_neurons=p.max_neurons,
            radius_rule=radius_rule,
            radius_negatives=radius_negatives,
            radius_scale=p.radius_scale or base.radius_scale,
            sample_all=sample_all,
        )
        spans = tuple(Span(s.text_index, s.start, s.end, s.concept) for s in p.spans)
        return PASpec(tuple(concepts), spans, p.step, params, p.require_all_cells, preset)

    def parameters(self, spec: PASpec) -> dict[str, Any]:
        return {
            "concepts": [{"concept": c, "words": list(w)} for c, w in spec.concepts],
            "spans": [asdict(s) for s in spec.spans],
            "step": spec.step,
            "require_all_cells": spec.require_all_cells,
            "preset": spec.preset,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(spec.params).items()},
        }

    def load_parameters(self, stored: dict[str, Any]) -> PASpec:
        # Keys a manifest lacks were not there when it was stored, and then the fit ran with
        # the authors' settings: fill them from AUTHORS, never from today's default.
        params = known_fields(pa.PAParams, stored)
        if "taus" in params:
            params["taus"] = tuple(params["taus"])
        return PASpec(
            tuple((c["concept"], tuple(c["words"])) for c in stored.get("concepts", [])),
            tuple(Span(**s) for s in stored.get("spans", [])),
            stored.get("step", 0),
            dataclasses.replace(PRESETS[_LEGACY_PRESET], **params),
            stored.get("require_all_cells", False),
            stored.get("preset", _LEGACY_PRESET),
        )

    def validate(self, spec: PASpec, model: LoadedModel, corpus: Inputs) -> None:
        if model.is_recurrent:
            raise InvalidArgument.field(
                self.name, "PA labels concepts in texts; for recurrent models use "
                "discrete_sequence_chunking")  # fmt: skip
        if not spec.concepts and not spec.spans:
            raise InvalidArgument.field(f"{self.name}.concepts", "give concepts or spans")
        spec.params.validate()
        check_spans(spec, corpus)

    # ----- fit ------------------------------------------------------------------------------

    def prepare(
        self, spec: PASpec, model: LoadedModel, corpus: Inputs, heldout_inputs: Inputs | None,
        train: Captured, heldout: Captured | None,
    ) -> Fit:  # fmt: skip
        train_rows = concept_rows(concept_spans(spec, corpus), train, spec.step)
        held_rows = None
        if heldout is not None and heldout_inputs is not None:
            word_only = PASpec(spec.concepts, (), spec.step, spec.params, preset=spec.preset)
            held_rows = concept_rows(concept_spans(word_only, heldout_inputs), heldout, spec.step)
        return lambda hp, progress: fit_population_averaging(
            model, spec, hp, train, train_rows, heldout, held_rows, progress
        )

    def finish(
        self, spec: PASpec, manifests: list[dict[str, Any]], outputs: list[tuple[str, FitOutput]]
    ) -> None:
        per_cell_results(spec, manifests, outputs)

    # ----- stored dictionaries ------------------------------------------------------------

    def check_tensors(self, tensors: dict[str, np.ndarray], hidden_size: int) -> None:
        neurons = tensors["neurons"]
        if neurons.size and (neurons.min() < 0 or neurons.max() >= hidden_size):
            raise invalid_dictionary("tensor neurons holds indices outside 0..hidden_size-1")

    def detector(self, manifest: dict[str, Any], tensors: dict[str, np.ndarray]) -> PADetector:
        return PADetector(
            tensors["neurons"], tensors["neuron_offsets"], tensors["prototype"],
            tensors["radius"].astype(np.float64),
        )  # fmt: skip

    def thresholds(self, state: PADetector, n_entries: int) -> np.ndarray:
        return state.radius

    def detect(self, state: PADetector, states: np.ndarray) -> Detection:
        t, e = states.shape[0], state.radius.shape[0]
        scores = np.empty((t, e), dtype=np.float32)
        for k in range(e):
            lo, hi = state.offsets[k], state.offsets[k + 1]
            scores[:, k] = pa.distances(states, state.neurons[lo:hi], state.prototype[lo:hi])
        return Detection(scores <= state.radius[None, :], scores, False)

    def graft(self, t: dict[str, np.ndarray], entry: int, center: np.ndarray) -> Graft:
        lo, hi = t["neuron_offsets"][entry], t["neuron_offsets"][entry + 1]
        return Graft(
            unit(t["mean"][entry] - center), values=t["prototype"][lo:hi],
            neurons=t["neurons"][lo:hi],
        )  # fmt: skip

    def prototype(self, entry: dict[str, Any], t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        k = entry["id"]
        lo, hi = t["neuron_offsets"][k], t["neuron_offsets"][k + 1]
        return {"prototype": t["prototype"][lo:hi], "neurons": t["neurons"][lo:hi]}


def per_cell_results(
    spec: PASpec,
    manifests: list[dict[str, Any]],
    outputs: list[tuple[str, FitOutput]],
) -> None:
    """PA: refuse a job without a single feasible cell, else give every manifest its infeasible
    cells and all of them the hook point recommended per concept (pa.recommend: by the scores
    that no fitted occurrence counts in)."""
    if not any(output.entries for _, output in outputs):
        cells = [cell for _, output in outputs for cell in output.infeasible]
        shown = "; ".join(
            f"{c['concept']!r} at {c['hook_point']}: {c['message']}" for c in cells[:3]
        )
        more = f" (and {len(cells) - 3} more)" if len(cells) > 3 else ""
        raise FailedPrecondition(
            f"no (hook point, concept) cell has a valid tolerance: {shown}{more}; lower "
            "n_samples, raise max_fpr, or use the ACCURACY criterion",
            reason="NO_VALID_TOLERANCE",
        )
    recommended = []
    for concept in _concepts_in_order(spec):
        found = [
            (manifest, entry)
            for manifest in manifests
            for entry in manifest["entries"]
            if entry["label"] == concept
        ]
        honest = [_honest(entry) for _, entry in found]
        best = pa.recommend(honest, spec.params.max_fpr)
        if best is None:
            continue
        manifest, entry = found[best]
        item = {
            "concept": concept, "hook_point": manifest["hook_point"],
            "dictionary_id": manifest["id"], "entry_id": entry["id"],
            "honest_tpr": honest[best].tpr, "out_of_sample": entry["out_of_sample"],
            "cross_validated": entry["cross_validated"],
        }  # fmt: skip
        recommended.append({k: v for k, v in item.items() if v is not None})
    for manifest, (_, output) in zip(manifests, outputs, strict=True):
        manifest["infeasible_cells"] = output.infeasible
        manifest["recommended"] = recommended


def _honest(entry: dict[str, Any]) -> pa.HonestScores:
    def scores(key: str) -> pa.Scores | None:
        return pa.Scores(**entry[key]) if entry.get(key) else None

    return pa.HonestScores(scores("out_of_sample"), scores("cross_validated"))


def _concepts_in_order(spec: PASpec) -> list[str]:
    """The request's concepts: by words first, then those only named by spans."""
    names = [concept for concept, _ in spec.concepts] + [s.concept for s in spec.spans]
    return list(dict.fromkeys(names))
