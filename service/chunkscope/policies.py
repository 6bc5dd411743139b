"""Guard policies applied to detection results: rule scores, token spans and the verdict.

A rule watches one concept (the entries of one dictionary with one label). On one checked input
it counts the tokens where the concept matches, as Detect reports matches, and, when the rule has
a score threshold, where the score also passes it. The rule fires when that count reaches its
`min_tokens`. The verdict is the most severe action among the rules that fired: block, then
intervene, then allow (allow rules are record-only). The detections come from the same path as
Detect (engine/serving.detect); nothing here runs the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chunkscope.engine.detection import Detection, Detector

ACTIONS = ("allow", "intervene", "block")  # least to most severe
INPUT_TYPES = ("request", "response")


@dataclass(frozen=True)
class Rule:
    dictionary_id: str
    label: str
    min_tokens: int  # >= 1
    score_threshold: float | None
    action: str  # one of ACTIONS
    input_types: frozenset[str]  # empty: every input type

    def applies_to(self, input_type: str) -> bool:
        return not self.input_types or input_type in self.input_types


@dataclass(frozen=True)
class Span:
    """Consecutive counted tokens: character offsets into the input and token positions."""

    char_start: int
    char_end: int
    token_start: int
    token_end: int
    best_score: float


@dataclass(frozen=True)
class Score:
    rule_index: int
    input_index: int
    count: int
    best_score: float
    fired: bool
    spans: tuple[Span, ...]


def score(
    rule_index: int,
    rule: Rule,
    detector: Detector,
    detection: Detection,
    offsets: Sequence[tuple[int, int]],
    input_index: int,
) -> Score:
    """How `rule`'s concept scored on one input's tokens (host work: numpy only)."""
    entries = [k for k, label in enumerate(detector.labels) if label == rule.label]
    matches = detection.matches[:, entries].astype(bool)
    scores = detection.scores[:, entries].astype(np.float64)
    higher = detection.higher_is_better
    if rule.score_threshold is not None:
        passes = scores >= rule.score_threshold if higher else scores <= rule.score_threshold
        matches = matches & passes
    counted = matches.any(axis=1)
    best_of = np.max if higher else np.min
    best = float(best_of(scores)) if scores.size else 0.0
    spans = []
    hits = np.nonzero(counted)[0].tolist()
    runs: list[list[int]] = []
    for t in hits:
        if runs and runs[-1][-1] == t - 1:
            runs[-1].append(t)
        else:
            runs.append([t])
    for run in runs:
        chars = [offsets[t] for t in run if t < len(offsets) and offsets[t][1] > offsets[t][0]]
        start, end = (min(s for s, _ in chars), max(e for _, e in chars)) if chars else (0, 0)
        run_scores = scores[run][matches[run]]
        spans.append(Span(start, end, run[0], run[-1] + 1, float(best_of(run_scores))))
    count = len(hits)
    return Score(rule_index, input_index, count, best, count >= rule.min_tokens, tuple(spans))


def verdict(rules: Sequence[Rule], scores: Sequence[Score]) -> tuple[str, list[int]]:
    """The verdict's action ("allow", "intervene" or "block") and the rules that fired."""
    fired = sorted({s.rule_index for s in scores if s.fired})
    worst = max((ACTIONS.index(rules[i].action) for i in fired), default=0)
    return ACTIONS[worst], fired


def reason(
    rules: Sequence[Rule], scores: Sequence[Score], action: str, inputs: str, policy: str
) -> str:
    """The verdict in words: each rule that fired, where; or that none did."""
    fired = [s for s in scores if s.fired]
    if not fired:
        return f"no rule of policy {policy} fired"
    parts = []
    for s in fired[:8]:
        rule = rules[s.rule_index]
        where = ", ".join(f"{sp.char_start}-{sp.char_end}" for sp in s.spans[:4])
        parts.append(
            f"rule {s.rule_index} ({rule.action} on {rule.label!r} of {rule.dictionary_id}) "
            f"fired on {inputs}[{s.input_index}]: {s.count} token(s) at characters {where}"
        )
    more = f"; and {len(fired) - 8} more" if len(fired) > 8 else ""
    return f"{action}: " + "; ".join(parts) + more
