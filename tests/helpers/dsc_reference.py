"""A plain implementation of DSC's merge steps, written from the method's description only.

Used by tests to check `chunkscope.chunking.dsc.fit` round by round. Nothing here is fast or
clever: chunks are tuples of state ids, the parse tries the vocabulary longest first at every
step, occurrence series are full boolean arrays. Two pair-selection rules are implemented:

- "eligible" (what chunkscope does): of the adjacent pairs that occur at least `min_frequency`
  times, contain no null state and whose concatenation is not yet a chunk, merge the
  `n_new_chunks` most frequent;
- "top_then_filter" (the authors' code): take the `n_new_chunks` most frequent pairs of all, then
  drop those that fail the same tests, so ineligible pairs use up the round's slots.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

Chunk = tuple[int, ...]


def greedy_parse(sequence: Sequence[int], vocabulary: Sequence[Chunk]) -> list[Chunk]:
    """Left to right; at each step the longest vocabulary entry that matches, else the atom."""
    by_length = sorted(vocabulary, key=len, reverse=True)
    out: list[Chunk] = []
    i = 0
    while i < len(sequence):
        for chunk in by_length:
            if tuple(sequence[i : i + len(chunk)]) == chunk:
                out.append(chunk)
                i += len(chunk)
                break
        else:
            out.append((sequence[i],))
            i += 1
    return out


@dataclass
class MergeRound:
    """One BPE round: the pairs counted (most frequent first) and the chunks it added."""

    top_pairs: list[tuple[Chunk, Chunk, int]]
    added: list[Chunk] = field(default_factory=list)


def bpe(
    sequences: Sequence[Sequence[int]],
    null_state: int,
    *,
    n_iter: int = 60,
    n_new_chunks: int = 10,
    min_frequency: int = 5,
    rule: str = "eligible",
) -> tuple[list[Chunk], list[MergeRound]]:
    """The merge rounds; returns the vocabulary (in order of addition) and a log per round.

    Stops after a round that adds nothing: the parse, and so every later round, stays the same.
    """
    if rule not in ("eligible", "top_then_filter"):
        raise ValueError(f"rule: got {rule!r}")
    vocabulary: list[Chunk] = []
    rounds: list[MergeRound] = []
    parses = [greedy_parse(s, vocabulary) for s in sequences]
    for _ in range(n_iter):
        pairs: Counter[tuple[Chunk, Chunk]] = Counter()
        for units in parses:
            pairs.update(pairwise(units))
        ranked = pairs.most_common()
        log = MergeRound([(a, b, c) for (a, b), c in ranked[:n_new_chunks]])
        candidates = ranked[:n_new_chunks] if rule == "top_then_filter" else ranked
        for (left, right), count in candidates:
            merged = left + right
            if count < min_frequency or null_state in merged or merged in vocabulary:
                continue
            vocabulary.append(merged)
            log.added.append(merged)
            if len(log.added) == n_new_chunks:
                break
        rounds.append(log)
        if not log.added:
            break
        parses = [greedy_parse(s, vocabulary) for s in sequences]
    return vocabulary, rounds


def overlap_unions(
    sequences: Sequence[Sequence[int]], vocabulary: Sequence[Chunk], threshold: float = 0.8
) -> list[Chunk]:
    """One pass of the overlap merge with the Jaccard index |a ∧ b| / |a ∨ b|.

    For every ordered pair (c1, c2) of multi-state chunks and every overlap k where c1's last k
    states are c2's first k, c1[:len(c1) - k] + c2 is added when the start series of c1 and of c2
    shifted back by len(c1) - k have a Jaccard index >= threshold.
    """
    glued: list[int] = []
    for s in sequences:
        glued.extend(s)
        glued.append(-1)  # no match crosses a trajectory boundary
    multi = [c for c in vocabulary if len(c) >= 2]
    series = {
        c: np.array([tuple(glued[t : t + len(c)]) == c for t in range(len(glued))]) for c in multi
    }
    known = set(vocabulary)
    out: list[Chunk] = []
    for c1 in multi:
        for k in range(1, len(c1)):
            for c2 in multi:
                if len(c2) <= k or c1[len(c1) - k :] != c2[:k]:
                    continue
                offset = len(c1) - k
                a = series[c1]
                b = np.zeros_like(a)
                b[: a.size - offset] = series[c2][offset:]
                union = int(np.count_nonzero(a | b))
                merged = c1[:offset] + c2
                if union and np.count_nonzero(a & b) / union >= threshold and merged not in known:
                    known.add(merged)
                    out.append(merged)
    return out


def chunks_and_parses(
    sequences: Sequence[Sequence[int]], null_state: int, rule: str = "eligible", **kwargs: int
) -> tuple[set[Chunk], list[list[Chunk]]]:
    """The whole pipeline: BPE, overlap merge, final parse; returns (used chunks, parses)."""
    vocabulary, _ = bpe(sequences, null_state, rule=rule, **kwargs)
    vocabulary += overlap_unions(sequences, vocabulary)
    parses = [greedy_parse(s, vocabulary) for s in sequences]
    used = {u for units in parses for u in units if u in set(vocabulary)}
    return used, parses
