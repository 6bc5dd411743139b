"""Policy rules on detection results: what counts, spans as runs of tokens, the verdict."""

from __future__ import annotations

from typing import Any

import numpy as np

from chunkscope.engine.detection import Detection
from chunkscope.policies import Rule, reason, score, verdict


class _Detector:
    """What `score` reads of a detector: its entries' labels."""

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels


def _rule(label: str = "cat", action: str = "block", **kw: Any) -> Rule:
    fields: dict[str, Any] = {"min_tokens": 1, "score_threshold": None, "input_types": frozenset()}
    fields.update(kw)
    return Rule("dict-000000000000", label, action=action, **fields)


# "the cat sat on a mat": six tokens, offsets into the text
TEXT = "the cat sat on a mat"
OFFSETS = [(0, 3), (4, 7), (8, 11), (12, 14), (15, 16), (17, 20)]


def _detection(matches: list[list[bool]], scores: list[list[float]], higher: bool) -> Detection:
    return Detection(np.array(matches, dtype=bool), np.array(scores, dtype=np.float32), higher)


def test_spans_are_runs_of_counted_tokens_over_every_entry_with_the_label() -> None:
    # entries: cat, dog, cat (two entries share the label)
    m = [[0, 0, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 0], [1, 0, 0]]
    s = [[9, 9, 9], [0.5, 9, 9], [9, 9, 0.25], [9, 0.1, 9], [9, 9, 9], [0.75, 9, 9]]
    found = score(0, _rule(), _Detector(["cat", "dog", "cat"]), _detection(m, s, False),
                  OFFSETS, 3)  # fmt: skip
    assert (found.count, found.fired, found.input_index) == (3, True, 3)
    assert [(sp.char_start, sp.char_end, sp.token_start, sp.token_end) for sp in found.spans] == [
        (4, 11, 1, 3), (17, 20, 5, 6)]  # fmt: skip
    assert [TEXT[sp.char_start : sp.char_end] for sp in found.spans] == ["cat sat", "mat"]
    assert [sp.best_score for sp in found.spans] == [0.25, 0.75]  # over the matching entries only
    assert found.best_score == 0.25  # distances: the lowest; the dog entry's 0.1 is not cat


def test_score_threshold_follows_the_direction_of_the_scores() -> None:
    m = [[1], [1], [0], [0], [0], [0]]
    distances = _detection(m, [[0.2], [0.6], [0.1], [1], [1], [1]], higher=False)
    cosines = _detection(m, [[0.9], [0.5], [0.95], [0], [0], [0]], higher=True)
    tight = _rule(score_threshold=0.4)
    near = score(0, tight, _Detector(["cat"]), distances, OFFSETS, 0)
    assert near.count == 1 and near.spans[0].token_start == 0  # 0.2 <= 0.4; 0.6 is not
    assert near.best_score == np.float32(0.1)  # best over the input: not only the matches
    similar = score(0, _rule(score_threshold=0.8), _Detector(["cat"]), cosines, OFFSETS, 0)
    assert similar.count == 1 and similar.spans[0].token_start == 0  # 0.9 >= 0.8; 0.5 is not
    unmatched = score(0, _rule(score_threshold=0.99), _Detector(["cat"]), cosines, OFFSETS, 0)
    assert unmatched.count == 0 and not unmatched.fired and not unmatched.spans


def test_min_tokens_and_the_verdict_take_the_most_severe_action() -> None:
    m = _detection([[1], [1], [0], [0], [0], [0]], [[0.1]] * 6, higher=False)
    rules = [_rule(action="allow"), _rule(action="intervene"), _rule(action="block", min_tokens=3)]
    scores = [score(i, r, _Detector(["cat"]), m, OFFSETS, 0) for i, r in enumerate(rules)]
    assert [s.fired for s in scores] == [True, True, False]
    assert verdict(rules, scores) == ("intervene", [0, 1])
    rules[2] = _rule(action="block", min_tokens=2)
    scores[2] = score(2, rules[2], _Detector(["cat"]), m, OFFSETS, 0)
    assert verdict(rules, scores) == ("block", [0, 1, 2])
    assert verdict(rules, []) == ("allow", [])
    text = reason(rules, scores, "block", "texts", "p")
    assert text.startswith("block: rule 0 (allow on 'cat'") and "texts[0]: 2 token(s)" in text
    assert reason(rules, [], "allow", "texts", "p") == "no rule of policy p fired"


def test_special_tokens_without_characters_do_not_widen_a_span() -> None:
    offsets = [(0, 0), *OFFSETS[:5]]  # a BOS token at position 0 has no characters
    m = _detection([[1], [1], [0], [0], [0], [0]], [[0.1]] * 6, higher=False)
    [span] = score(0, _rule(), _Detector(["cat"]), m, offsets, 0).spans
    assert (span.char_start, span.char_end, span.token_start, span.token_end) == (0, 3, 0, 2)
