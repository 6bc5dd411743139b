"""Discrete Sequence Chunking (DSC): chunks in the hidden trajectory of a small recurrent network.

What it is for (docs/METHODS.md §2): the hidden states h_t of a small RNN (d about 12) are
discretised neuron by neuron with 1-D k-means, each step becomes a discrete population state (the
tuple of the d bin ids), and recurring runs of states are found by BPE-style merging plus an
overlap merge. A dictionary entry is a sequence of states with its count; every state maps back
to a continuous d-vector (its per-neuron centroids), which is what gets grafted into the network.

This module holds pure functions over numpy arrays. It may import numpy and scikit-learn (and
threadpoolctl, which scikit-learn depends on); it must not import torch, gRPC, the api package or
the service config, and it touches no files.

Conventions (the public API documents each again):
- State ids number the distinct population states in order of *first appearance* over the input
  trajectories taken one after the other, so they do not depend on ties in the counts.
- A parse is a list of ints: a chunk index `i >= 0` into the chunk list, or an atom (a single
  state matched by no chunk) encoded as `-(state_id + 1)`: state 0 is -1, state 1 is -2, etc.

Quirk of the authors' code that is fixed here: their overlap merge (`chunkmerging`) scores the
shifted occurrence series s1, s2 of two overlapping chunks with |s1 ∧ s2| / |s1 ∨ s1|, that is, it
divides by |s1|. That ratio is 1 whenever c1 is always followed by c2, however often c2 occurs
without c1, so it merges chunks that do not belong together. We divide by |s1 ∨ s2|, the real
Jaccard index. The overlap merge is one pass over the vocabulary that BPE produced, as theirs.

Second quirk that is fixed here: their BPE round takes the `n_new_chunks` most frequent pairs
first and filters them afterwards (null state, below `min_frequency`, union already known). Pairs
that touch the null state (the filler's resting state) stay frequent as merging goes on, because
every chunk that ends a word is followed by it, while the pairs inside a word fragment over the
many state variants of a trained network. On a 12-unit linear RNN with four planted words and
hundreds of distinct states, after 4-8 rounds all ten slots held such pairs, no round added a
chunk, and two of the four words stayed split ("PQR" + "S"). Here the pairs are filtered first
and the `n_new_chunks` most frequent eligible ones are merged, so merging goes on while any pair
qualifies; tests/helpers/dsc_reference.py holds a plain implementation of both rules.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

__all__ = [
    "DSCChunk",
    "DSCParams",
    "DSCResult",
    "Discretisation",
    "Occurrence",
    "assign_states",
    "centroid_table",
    "chunk_labels",
    "decode_accuracy",
    "decode_train_steps",
    "discretise",
    "filler_symbol",
    "find_occurrences",
    "fit",
    "jaccard",
    "label_offsets",
    "occurrences",
    "parse",
]

MAX_BINS = 64
MAX_ITERATIONS = 10_000
# k-means restarts per neuron, as in the authors' `learn_neural_clusters`.
KMEANS_N_INIT = 10
# Key under which a trie node stores the index of the chunk that ends there; states are >= 0.
_END = -1


def _is_int(value: object) -> bool:
    # bool is an int subclass, but True is never a meaningful count here.
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass(frozen=True)
class DSCParams:
    """Knobs of DSC; defaults are the authors' (`learn_chunks`)."""

    n_bins: int = 5
    n_iter: int = 60
    n_new_chunks: int = 10
    min_frequency: int = 5
    overlap_jaccard: float = 0.8
    seed: int = 0
    # DSC matches states exactly, so it is only tractable for small d (state space n_bins**d).
    max_hidden_size: int = 64
    # The decoding check (`decode_train_steps`): the lookup table is fitted on the first
    # `decode_train_steps` steps when that is > 0 (the paper: 100 or 300), else on the first
    # `decode_train_fraction` of all steps; it is scored on the rest.
    decode_train_fraction: float = 0.3
    decode_train_steps: int = 0

    def validate(self, hidden_size: int | None = None) -> None:
        """Raise ValueError naming the first bad field; `hidden_size` is the width d to analyse."""
        if not _is_int(self.n_bins) or not 2 <= self.n_bins <= MAX_BINS:
            raise ValueError(
                f"n_bins: got {self.n_bins!r}, allowed values are integers 2..{MAX_BINS}"
            )
        if not _is_int(self.n_iter) or not 0 <= self.n_iter <= MAX_ITERATIONS:
            raise ValueError(
                f"n_iter: got {self.n_iter!r}, allowed values are integers 0..{MAX_ITERATIONS}"
            )
        if not _is_int(self.n_new_chunks) or self.n_new_chunks < 1:
            raise ValueError(
                f"n_new_chunks: got {self.n_new_chunks!r}, allowed values are integers >= 1"
            )
        if not _is_int(self.min_frequency) or self.min_frequency < 1:
            raise ValueError(
                f"min_frequency: got {self.min_frequency!r}, allowed values are integers >= 1"
            )
        overlap = self.overlap_jaccard
        if (
            isinstance(overlap, bool)
            or not isinstance(overlap, int | float | np.floating | np.integer)
            or not 0.0 < float(overlap) <= 1.0
        ):
            # 0 would add the union of every overlapping pair, even of chunks that never co-occur.
            raise ValueError(
                f"overlap_jaccard: got {overlap!r}, allowed values are numbers in (0, 1]"
            )
        if not _is_int(self.seed) or not 0 <= self.seed < 2**32:
            # sklearn's random_state accepts exactly this range.
            raise ValueError(f"seed: got {self.seed!r}, allowed values are integers 0..2^32-1")
        if not _is_int(self.max_hidden_size) or self.max_hidden_size < 1:
            raise ValueError(
                f"max_hidden_size: got {self.max_hidden_size!r}, allowed values are integers >= 1"
            )
        fraction = self.decode_train_fraction
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, int | float | np.floating | np.integer)
            or not 0.0 < float(fraction) < 1.0
        ):
            raise ValueError(
                f"decode_train_fraction: got {fraction!r}, allowed values are numbers in (0, 1)"
            )
        if not _is_int(self.decode_train_steps) or self.decode_train_steps < 0:
            raise ValueError(
                f"decode_train_steps: got {self.decode_train_steps!r}, allowed values are "
                "integers >= 0 (0 = use decode_train_fraction)"
            )
        if hidden_size is None:
            return
        if not _is_int(hidden_size) or hidden_size < 1:
            raise ValueError(f"hidden_size: got {hidden_size!r}, expected a positive integer")
        if hidden_size > self.max_hidden_size:
            digits = hidden_size * math.log10(self.n_bins)
            raise ValueError(
                f"hidden_size: got {hidden_size}, above max_hidden_size={self.max_hidden_size}. "
                f"DSC needs identical discrete population states to recur, and the state space "
                f"is n_bins^d = {self.n_bins}^{hidden_size} (about 10^{digits:.0f}) states, so "
                "at this width states almost never repeat and no chunks can be found. Use UCD "
                "(unsupervised chunk discovery) for wide hidden states."
            )


@dataclass(frozen=True, eq=False)
class Discretisation:
    """Per-neuron 1-D k-means of a trajectory.

    centroids: float32 [d, n_bins], sorted ascending per neuron. A neuron with only m < n_bins
    distinct values gets its m values as centroids and the rest of the row repeats the largest, so
    the row stays sorted and the padding bins are never chosen (nearest-centroid ties go to the
    lowest bin).
    bins: int8 [T, d], the bin id (column of `centroids`) of each neuron at each step.
    """

    centroids: np.ndarray
    bins: np.ndarray


@dataclass(frozen=True)
class DSCChunk:
    """A multi-state chunk: a run of population states that recurs in the trajectory."""

    states: tuple[int, ...]  # ids into DSCResult.state_bins
    count: int  # occurrences in the final greedy parse
    source: str  # "atom" | "merge" | "overlap" (fit only returns multi-state chunks)


@dataclass(frozen=True, eq=False)
class DSCResult:
    """Everything `fit` found.

    state_bins: int8 [S, d], the distinct population states in order of first appearance over the
    trajectories read one after the other (state id = row). state_vectors: float32 [S, d], each
    state's per-neuron centroid, the continuous vector to graft. state_counts: int64 [S], steps in
    each state. null_state: the most frequent state (lowest id on ties). sequences: per trajectory,
    int64 [T_i] state id per step. chunks: multi-state chunks used at least once by the final parse,
    sorted by length desc, then count desc, then states. parses: per trajectory, the greedy parse
    as indices into `chunks`, with an atom (a state not covered by any chunk) as -(state_id + 1).
    """

    centroids: np.ndarray
    state_bins: np.ndarray
    state_vectors: np.ndarray
    state_counts: np.ndarray
    null_state: int
    sequences: list[np.ndarray]
    chunks: tuple[DSCChunk, ...]
    parses: list[list[int]]


# --- discretisation -------------------------------------------------------------------------


def _check_hidden(hidden: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(hidden)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array [T, d], got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name}: expected a real-valued array, got dtype {array.dtype}")
    if array.shape[1] < 1:
        raise ValueError(f"{name}: expected at least one neuron, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    # Keep float32 input as float32: k-means runs about twice as fast and the hidden states of a
    # float32 network carry no more precision anyway.
    return array if array.dtype in (np.float32, np.float64) else array.astype(np.float64)


def _nearest_bins(hidden: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """int8 [T, d]: per neuron, the column of the nearest centroid (lowest column on ties)."""
    steps, width = hidden.shape
    bins = np.empty((steps, width), dtype=np.int8)
    table = centroids.astype(np.float64)
    for j in range(width):  # one neuron at a time keeps the [T, n_bins] distance table small
        distance = np.abs(hidden[:, j, None].astype(np.float64) - table[j][None, :])
        bins[:, j] = distance.argmin(axis=1)  # argmin returns the first minimum: padding is unused
    return bins


def discretise(hidden: np.ndarray, n_bins: int, seed: int) -> Discretisation:
    """Per-neuron 1-D k-means over all steps of `hidden` (float [T, d], T >= 1).

    Each neuron gets `KMeans(n_clusters=n_bins, random_state=seed, n_init=10)`; its centroids are
    sorted ascending and every step goes to the nearest centroid. A neuron with at most n_bins
    distinct values skips k-means: its distinct values are its centroids (fewer effective bins).
    """
    array = _check_hidden(hidden, "hidden")
    if not _is_int(n_bins) or not 2 <= n_bins <= MAX_BINS:
        raise ValueError(f"n_bins: got {n_bins!r}, allowed values are integers 2..{MAX_BINS}")
    if array.shape[0] < 1:
        raise ValueError("hidden: need at least one time step")
    width = array.shape[1]
    centroids = np.empty((width, n_bins), dtype=np.float32)
    for j in range(width):
        column = array[:, j]
        distinct = np.unique(column)
        if distinct.size <= n_bins:
            # k-means cannot find more clusters than distinct values (sklearn warns and returns
            # duplicate centres); the values themselves are the optimal centroids.
            values = distinct
        else:
            model = KMeans(n_clusters=n_bins, random_state=seed, n_init=KMEANS_N_INIT)
            # One OpenMP thread: 1-D k-means gains nothing from threads, and with torch loaded
            # two OpenMP runtimes compete for the cores; measured 10-70x slower on 2 CPUs.
            with threadpool_limits(limits=1, user_api="openmp"):
                model.fit(column.reshape(-1, 1))
            values = np.sort(model.cluster_centers_.ravel())
        row = np.full(n_bins, values[-1], dtype=np.float64)
        row[: values.size] = values
        centroids[j] = row
    return Discretisation(centroids=centroids, bins=_nearest_bins(array, centroids))


def assign_states(hidden: np.ndarray, centroids: np.ndarray, state_bins: np.ndarray) -> np.ndarray:
    """State id (int64 [T]) per step of new `hidden` [T, d]; -1 for a bin tuple not seen in fit.

    Each neuron goes to its nearest centroid (the same rule `fit` used, so re-assigning the fit
    trajectory reproduces its state sequence exactly).
    """
    array = _check_hidden(hidden, "hidden")
    table = np.asarray(centroids)
    known = np.asarray(state_bins)
    width = array.shape[1]
    if table.ndim != 2 or table.shape[0] != width or table.shape[1] < 1:
        raise ValueError(
            f"centroids: expected shape [{width}, n_bins] to match hidden, got {table.shape}"
        )
    if known.ndim != 2 or known.shape[1] != width:
        raise ValueError(f"state_bins: expected shape [S, {width}], got {known.shape}")
    if array.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    bins = _nearest_bins(array, table).astype(np.int16)
    if known.shape[0] == 0:
        return np.full(array.shape[0], -1, dtype=np.int64)
    # Group the known tuples and the new ones together; a group that holds a known row is that
    # state, any other group is unseen. Vectorised, so 100k steps take milliseconds.
    stacked = np.concatenate([known.astype(np.int16), bins], axis=0)
    _, inverse = np.unique(stacked, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    group_state = np.full(int(inverse.max()) + 1, -1, dtype=np.int64)
    # Reversed so that, should state_bins hold a duplicate row, the lowest id wins.
    n_known = known.shape[0]
    group_state[inverse[:n_known][::-1]] = np.arange(n_known, dtype=np.int64)[::-1]
    return group_state[inverse[n_known:]]


# --- parsing --------------------------------------------------------------------------------

# A trie node: state -> child node, plus _END -> index of the chunk ending here.
_Node = dict[int, Any]


def _trie_insert(root: _Node, states: tuple[int, ...], index: int) -> None:
    node = root
    for state in states:
        child = node.get(state)
        if child is None:
            child = {}
            node[state] = child
        node = child
    # First index wins, so a duplicate chunk never shadows an earlier one.
    node.setdefault(_END, index)


def _parse_with_trie(sequence: list[int], root: _Node) -> list[int]:
    """Greedy left-to-right parse taking the longest chunk that matches at each position.

    Walking a trie of the chunks from each position finds the longest match in O(match length),
    instead of trying every chunk (the authors' O(T·V·L)).
    """
    out: list[int] = []
    n = len(sequence)
    i = 0
    while i < n:
        node = root.get(sequence[i])
        best_index = -1
        best_end = i + 1
        j = i + 1
        while node is not None:
            index = node.get(_END)
            if index is not None:
                best_index = index
                best_end = j
            if j >= n:
                break
            node = node.get(sequence[j])
            j += 1
        if best_index < 0:
            out.append(-(sequence[i] + 1))
            i += 1
        else:
            out.append(best_index)
            i = best_end
    return out


def _as_state_sequence(sequence: np.ndarray, name: str) -> list[int]:
    array = np.asarray(sequence)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of state ids, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name}: expected integer state ids, got dtype {array.dtype}")
    if array.size and int(array.min()) < 0:
        # -(state + 1) of a negative id (assign_states' -1 = unseen) would collide with a chunk
        # index, so unseen steps must be cut out or split on before parsing.
        raise ValueError(
            f"{name}: state ids must be >= 0; split the sequence at unseen states (-1) first"
        )
    return [int(s) for s in array.tolist()]


def parse(sequence: np.ndarray, chunks: Sequence[tuple[int, ...]]) -> list[int]:
    """Greedy left-to-right parse of a state sequence, longest matching chunk first.

    Returns, per unit, the index of the chunk in `chunks`, or -(state + 1) for a state that no
    chunk covers at that point (an atom). Entries may have any length >= 1; if an entry is listed
    twice its lowest index is reported.
    """
    states = _as_state_sequence(sequence, "sequence")
    return _parse_with_trie(states, _chunk_trie(chunks))


def _chunk_trie(chunks: Sequence[Sequence[int]]) -> _Node:
    root: _Node = {}
    for index, chunk in enumerate(chunks):
        entry = tuple(chunk)
        if not entry:
            raise ValueError(f"chunks[{index}]: a chunk needs at least one state")
        if not all(_is_int(s) and s >= 0 for s in entry):
            raise ValueError(f"chunks[{index}]: states must be integers >= 0, got {entry!r}")
        _trie_insert(root, tuple(int(s) for s in entry), index)
    return root


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a chunk: steps [start, end) of a state sequence are chunk `chunk`."""

    chunk: int  # index into the chunk list that was parsed with
    start: int  # first step
    end: int  # one past the last step


def occurrences(units: Sequence[int], chunks: Sequence[Sequence[int]]) -> list[Occurrence]:
    """The chunk occurrences of a parse (as `parse` or `DSCResult.parses` give it), in order.

    Steps count from the start of the parsed sequence; atoms (negative units) advance one step and
    yield nothing.
    """
    out: list[Occurrence] = []
    position = 0
    for unit in units:
        if unit >= 0:
            length = len(chunks[unit])
            out.append(Occurrence(int(unit), position, position + length))
            position += length
        else:
            position += 1
    return out


def find_occurrences(state_ids: np.ndarray, chunks: Sequence[tuple[int, ...]]) -> list[Occurrence]:
    """Chunk occurrences in a state sequence that may hold unseen states (-1, `assign_states`).

    An unseen state matches nothing and breaks the sequence: each run between unseen states is
    parsed on its own (greedy, longest chunk first), so no occurrence spans an unseen state.
    Steps are indices into `state_ids`.
    """
    ids = np.asarray(state_ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"state_ids: expected a 1-D integer array, got {ids.dtype} {ids.shape}")
    if ids.size and int(ids.min()) < -1:
        raise ValueError("state_ids: ids must be >= 0, or -1 for a state unseen in the fit")
    root = _chunk_trie(chunks)  # once, not per run
    states = ids.tolist()
    out: list[Occurrence] = []
    start = 0
    for end in [*np.flatnonzero(ids < 0).tolist(), int(ids.size)]:
        if end > start:
            for found in occurrences(_parse_with_trie(states[start:end], root), chunks):
                out.append(Occurrence(found.chunk, found.start + start, found.end + start))
        start = end + 1
    return out


# --- overlap merge --------------------------------------------------------------------------


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|a ∧ b| / |a ∨ b| of two boolean arrays of one shape; 0.0 when both are all False."""
    left = np.asarray(a)
    right = np.asarray(b)
    if left.dtype != np.bool_ or right.dtype != np.bool_:
        raise ValueError(f"jaccard: expected boolean arrays, got {left.dtype} and {right.dtype}")
    if left.shape != right.shape:
        raise ValueError(f"jaccard: shapes differ, {left.shape} vs {right.shape}")
    union = int(np.count_nonzero(left | right))
    if union == 0:
        return 0.0
    return int(np.count_nonzero(left & right)) / union


def _shifted_jaccard(starts1: np.ndarray, starts2: np.ndarray, offset: int) -> float:
    """Jaccard of the indicator series of starts1 and of starts2 shifted back by `offset`.

    Equal to `jaccard(a, b)` with a[t] = c1 starts at t and b[t] = c2 starts at t + offset, but
    computed on sorted unique start indices: O(occurrences) instead of O(T) per pair.
    """
    inter = np.intersect1d(starts1, starts2 - offset, assume_unique=True).size
    union = starts1.size + starts2.size - inter
    return inter / union if union else 0.0


def _occurrences(
    padded: np.ndarray, positions: dict[int, np.ndarray], chunk: tuple[int, ...]
) -> np.ndarray:
    """Sorted start indices where `chunk` matches the (separator-padded) state sequence."""
    starts = positions.get(chunk[0], np.empty(0, dtype=np.int64))
    for k in range(1, len(chunk)):
        # `padded` ends with len(longest chunk) separators, so starts + k never runs off the end.
        starts = starts[padded[starts + k] == chunk[k]]
        if starts.size == 0:
            break
    return starts


def _overlap_merge(
    sequences: Sequence[np.ndarray], chunks: Sequence[tuple[int, ...]], threshold: float
) -> list[tuple[int, ...]]:
    """Union chunks c1[:offset] + c2 for overlapping multi-state chunks that co-occur.

    For every ordered pair (c1, c2) (c1 = c2 included) and every k with 1 <= k < min(len c1,
    len c2) where c1's last k states equal c2's first k, offset = len(c1) - k, and the union is
    added when the Jaccard index of c1's start series and c2's start series shifted back by
    `offset` is >= threshold. Starts are exact matches in the raw state sequences (not the parse).
    One pass: unions are not merged again. Returns the new unions in discovery order.
    """
    multi = [c for c in chunks if len(c) >= 2]
    if not multi:
        return []
    longest = max(len(c) for c in multi)
    # One array for all trajectories: separators (-1) between and after them, so no match can
    # cross a trajectory boundary and index arithmetic never leaves the array.
    parts: list[np.ndarray] = []
    for seq in sequences:
        parts.append(np.asarray(seq, dtype=np.int64))
        parts.append(np.full(longest, -1, dtype=np.int64))
    padded = np.concatenate(parts)
    order = np.argsort(padded, kind="stable")
    sorted_states = padded[order]
    values, first = np.unique(sorted_states, return_index=True)
    bounds = [*first.tolist(), sorted_states.size]
    positions = {
        int(v): np.sort(order[bounds[i] : bounds[i + 1]])
        for i, v in enumerate(values.tolist())
        if v >= 0
    }
    starts = {c: _occurrences(padded, positions, c) for c in multi}
    by_prefix: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    for c in multi:
        for k in range(1, len(c)):
            by_prefix.setdefault(c[:k], []).append(c)

    known = set(chunks)
    unions: list[tuple[int, ...]] = []
    for c1 in multi:
        s1 = starts[c1]
        for k in range(1, len(c1)):
            for c2 in by_prefix.get(c1[len(c1) - k :], ()):
                if len(c2) <= k:  # c2 inside c1's tail: the union would be c1 itself
                    continue
                s2 = starts[c2]
                low, high = sorted((s1.size, s2.size))
                # The Jaccard index is at most min/max of the set sizes: skip hopeless pairs.
                if high == 0 or low < threshold * high:
                    continue
                offset = len(c1) - k
                union = c1[:offset] + c2
                if union in known:
                    continue
                if _shifted_jaccard(s1, s2, offset) >= threshold:
                    known.add(union)
                    unions.append(union)
    return unions


# --- fit ------------------------------------------------------------------------------------


def _check_trajectories(trajectories: Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(trajectories, np.ndarray) and trajectories.ndim == 2:
        raise ValueError(
            "trajectories: got one 2-D array; pass a list of [T, d] arrays (e.g. [hidden])"
        )
    arrays = [_check_hidden(t, f"trajectories[{i}]") for i, t in enumerate(trajectories)]
    if not arrays:
        raise ValueError("trajectories: need at least one trajectory")
    widths = {a.shape[1] for a in arrays}
    if len(widths) != 1:
        raise ValueError(f"trajectories: all must have the same width d, got {sorted(widths)}")
    if sum(a.shape[0] for a in arrays) == 0:
        raise ValueError("trajectories: need at least one time step in total")
    return arrays


def _unit_states(unit: int, vocab: list[tuple[int, ...]]) -> tuple[int, ...]:
    return vocab[unit] if unit >= 0 else (-unit - 1,)


def fit(trajectories: Sequence[np.ndarray], params: DSCParams) -> DSCResult:
    """Run DSC on one or more hidden-state trajectories (float [T_i, d]) of the same network.

    1. Discretise all steps together (`discretise`); state ids by first appearance; the most
       frequent state is null and never enters a chunk.
    2. Up to `n_iter` BPE rounds: count adjacent unit pairs in the current greedy parse (never
       across trajectories); of the pairs seen at least `min_frequency` times, free of the null
       state and whose concatenation is not yet a chunk, add the `n_new_chunks` most frequent
       (ties: first seen), re-parse. Stops early when a round adds nothing.
    3. Overlap merge (one pass, real Jaccard >= `overlap_jaccard`; see `_overlap_merge`).
    4. Final greedy parse, longest chunk first; chunks the final parse never uses are dropped
       (removing them does not change the parse).
    """
    arrays = _check_trajectories(trajectories)
    params.validate(hidden_size=arrays[0].shape[1])

    lengths = [a.shape[0] for a in arrays]
    disc = discretise(np.concatenate(arrays, axis=0), params.n_bins, params.seed)
    unique_bins, first_index, inverse = np.unique(
        disc.bins, axis=0, return_index=True, return_inverse=True
    )
    by_appearance = np.argsort(first_index, kind="stable")
    rank = np.empty_like(by_appearance)
    rank[by_appearance] = np.arange(by_appearance.size)
    state_ids = rank[inverse.ravel()].astype(np.int64)
    state_bins = unique_bins[by_appearance]
    state_counts = np.bincount(state_ids, minlength=state_bins.shape[0]).astype(np.int64)
    null_state = int(np.argmax(state_counts))  # first maximum: the earliest-seen state on ties
    columns = np.arange(state_bins.shape[1])
    state_vectors = disc.centroids[columns[None, :], state_bins.astype(np.int64)].astype(np.float32)
    cuts = np.cumsum(lengths)[:-1]
    sequences = [np.ascontiguousarray(s) for s in np.split(state_ids, cuts)]
    state_lists = [s.tolist() for s in sequences]

    vocab: list[tuple[int, ...]] = []
    sources: dict[tuple[int, ...], str] = {}
    root: _Node = {}
    parses = [_parse_with_trie(s, root) for s in state_lists]
    for _ in range(params.n_iter):
        pairs: Counter[tuple[int, int]] = Counter()
        for units in parses:
            pairs.update(pairwise(units))
        added = 0
        # Filter first, then take the n_new_chunks most frequent *eligible* pairs. Taking the
        # top n first (the authors' code) lets pairs with the null state and pairs whose union
        # is already a chunk fill every slot; on networks with hundreds of states that happens
        # after a few rounds, the parse stops changing and words stay split (module docstring).
        for (left, right), count in pairs.most_common():
            if count < params.min_frequency or added == params.n_new_chunks:
                break  # most_common is sorted by count: the rest are rarer still
            merged = _unit_states(left, vocab) + _unit_states(right, vocab)
            if null_state in merged or merged in sources:
                continue
            sources[merged] = "merge"
            _trie_insert(root, merged, len(vocab))
            vocab.append(merged)
            added += 1
        if not added:
            break
        parses = [_parse_with_trie(s, root) for s in state_lists]

    for union in _overlap_merge(sequences, vocab, float(params.overlap_jaccard)):
        sources[union] = "overlap"
        _trie_insert(root, union, len(vocab))
        vocab.append(union)

    # Final parse with the full vocabulary, then keep and sort the chunks it actually uses.
    parses = [_parse_with_trie(s, root) for s in state_lists]
    usage: Counter[int] = Counter()
    for units in parses:
        usage.update(u for u in units if u >= 0)
    used = sorted(usage, key=lambda i: (-len(vocab[i]), -usage[i], vocab[i]))
    new_index = {old: new for new, old in enumerate(used)}
    chunks = tuple(
        DSCChunk(states=vocab[i], count=usage[i], source=sources[vocab[i]]) for i in used
    )
    final_parses = [[new_index[u] if u >= 0 else u for u in units] for units in parses]

    return DSCResult(
        centroids=disc.centroids,
        state_bins=state_bins,
        state_vectors=state_vectors,
        state_counts=state_counts,
        null_state=null_state,
        sequences=sequences,
        chunks=chunks,
        parses=final_parses,
    )


# --- evaluation -----------------------------------------------------------------------------


def decode_accuracy(
    state_ids: np.ndarray, symbols: Sequence[str], train_steps: int
) -> tuple[float, int]:
    """Accuracy of decoding the current input symbol from the state, and the number of test steps.

    A lookup table state -> most frequent symbol (earliest seen on ties) is fitted on the first
    `train_steps` steps and scored on the rest. A state absent from the training part, and an
    unassigned step (-1), counts as wrong.
    """
    ids = np.asarray(state_ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"state_ids: expected a 1-D integer array, got {ids.dtype} {ids.shape}")
    if len(symbols) != ids.size:
        raise ValueError(
            f"symbols: got {len(symbols)} symbols for {ids.size} state ids; they must align"
        )
    if not _is_int(train_steps) or not 1 <= train_steps < ids.size:
        raise ValueError(
            f"train_steps: got {train_steps!r}, allowed values are integers 1..{ids.size - 1} "
            "(at least one step each for fitting and testing)"
        )
    id_list = ids.tolist()
    seen: dict[int, Counter[str]] = {}
    for state, symbol in zip(id_list[:train_steps], symbols[:train_steps], strict=True):
        if state >= 0:
            seen.setdefault(state, Counter())[symbol] += 1
    table = {state: counts.most_common(1)[0][0] for state, counts in seen.items()}
    test_ids = id_list[train_steps:]
    test_symbols = symbols[train_steps:]
    correct = sum(
        1
        for state, symbol in zip(test_ids, test_symbols, strict=True)
        if table.get(state) == symbol
    )
    return correct / len(test_ids), len(test_ids)


def decode_train_steps(params: DSCParams, n_steps: int) -> int:
    """Steps the decoding lookup table is fitted on, out of `n_steps` (see DSCParams).

    `decode_train_steps` > 0 is taken as is (the paper's first-100/300-steps protocol) and must
    leave at least one step to score; otherwise max(1, int(decode_train_fraction * n_steps)),
    which with the default 0.3 is the split used before the parameter existed.
    """
    if not _is_int(n_steps) or n_steps < 2:
        raise ValueError(f"n_steps: got {n_steps!r}, need at least 2 steps to fit and to score")
    if params.decode_train_steps > 0:
        if params.decode_train_steps >= n_steps:
            raise ValueError(
                f"decode_train_steps: got {params.decode_train_steps}, but there are only "
                f"{n_steps} steps; use at most {n_steps - 1} so that some steps are scored"
            )
        return int(params.decode_train_steps)
    return max(1, int(float(params.decode_train_fraction) * n_steps))


# --- what a user reads ----------------------------------------------------------------------


def centroid_table(centroids: np.ndarray) -> list[list[float]]:
    """Per neuron, the centroids of its bins in bin order (bin id = position), padding cut off.

    `Discretisation.centroids` pads a neuron with fewer distinct values than bins by repeating its
    largest centroid; those bins are never chosen, so they are left out here. Bin ids in
    `DSCResult.state_bins` index these lists.
    """
    table = np.asarray(centroids, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] < 1:
        raise ValueError(f"centroids: expected shape [d, n_bins], got {table.shape}")
    out: list[list[float]] = []
    for row in table:
        used = row.size
        while used > 1 and row[used - 1] == row[used - 2]:
            used -= 1
        out.append([float(v) for v in row[:used]])
    return out


def _check_symbols(result: DSCResult, symbols: Sequence[Sequence[str]]) -> None:
    if len(symbols) != len(result.sequences):
        raise ValueError(
            f"symbols: got {len(symbols)} symbol sequences for {len(result.sequences)} "
            "trajectories; pass one per trajectory, in the order given to fit"
        )
    for i, (seq, syms) in enumerate(zip(result.sequences, symbols, strict=True)):
        if len(syms) != len(seq):
            raise ValueError(
                f"symbols[{i}]: got {len(syms)} symbols for {len(seq)} steps; they must align"
            )


def filler_symbol(result: DSCResult, symbols: Sequence[Sequence[str]]) -> str | None:
    """The input symbol the null state stands for: its most frequent symbol (first seen on ties).

    The null state is the most frequent population state and never enters a chunk, so its symbol
    is a unit of its own in every parse: in a sequence of words separated by filler runs it is the
    filler, the state the network rests in during a long run. None when the null state has no
    steps (no trajectory steps at all).
    """
    _check_symbols(result, symbols)
    counts: Counter[str] = Counter()
    for seq, syms in zip(result.sequences, symbols, strict=True):
        for step in np.flatnonzero(seq == result.null_state).tolist():
            counts[syms[step]] += 1
    return counts.most_common(1)[0][0] if counts else None


def _strip(spelled: Sequence[str], filler: str | None) -> tuple[int, int]:
    """The [begin, end) of `spelled` without its leading and trailing filler runs."""
    begin, end = 0, len(spelled)
    if filler is None:
        return begin, end
    while begin < end and spelled[begin] == filler:
        begin += 1
    while end > begin and spelled[end - 1] == filler:
        end -= 1
    # A chunk of fillers only (the transient states of a short run) keeps its whole spelling.
    return (begin, end) if end > begin else (0, len(spelled))


def _spellings(
    result: DSCResult, symbols: Sequence[Sequence[str]], strip_filler: bool
) -> list[Counter[tuple[str, int]]]:
    """Per chunk: how often each (spelling, leading fillers cut) occurs in the final parse."""
    _check_symbols(result, symbols)
    filler = filler_symbol(result, symbols) if strip_filler else None
    states = [c.states for c in result.chunks]
    spelled: list[Counter[tuple[str, int]]] = [Counter() for _ in result.chunks]
    for units, syms in zip(result.parses, symbols, strict=True):
        for found in occurrences(units, states):
            piece = list(syms[found.start : found.end])
            begin, end = _strip(piece, filler)
            spelled[found.chunk]["".join(piece[begin:end]), begin] += 1
    return spelled


def _spelling_counts(counter: Counter[tuple[str, int]]) -> Counter[str]:
    words: Counter[str] = Counter()
    for (word, _), n in counter.items():  # insertion order: first seen first on ties
        words[word] += n
    return words


def chunk_labels(
    result: DSCResult, symbols: Sequence[Sequence[str]], *, strip_filler: bool = True
) -> list[str]:
    """A unique, readable label per chunk of `result` (same order as `result.chunks`).

    symbols: per trajectory, the input symbol of every step (aligned with `result.sequences`).

    1. Each occurrence of a chunk in the final parse is spelled by the input symbols it spans.
       With `strip_filler`, the leading and trailing runs of the filler (`filler_symbol`: the
       symbol of the null state, which is a unit of its own in every parse) are cut off, so a
       word chunk that also covers the network's first steps back to rest reads "PQRS", not
       "PQRSOOOO". A spelling of fillers only is kept whole.
    2. The label is the most frequent spelling among the chunk's occurrences (first seen on
       ties); a chunk with no occurrence (not possible for `fit`'s chunks) is "chunk-<i>".
    3. Labels are made unique: of the chunks sharing a label, the one with the most occurrences
       (lowest index on ties) keeps it, the others get "#2", "#3", ... in that order.
    """
    spelled = [_spelling_counts(c) for c in _spellings(result, symbols, strip_filler)]
    base = [
        counter.most_common(1)[0][0] if counter else f"chunk-{i}"
        for i, counter in enumerate(spelled)
    ]
    order = sorted(range(len(base)), key=lambda i: (-result.chunks[i].count, i))
    taken = set(base)
    labels = list(base)
    seen: Counter[str] = Counter()
    for i in order:
        seen[base[i]] += 1
        if seen[base[i]] == 1:
            continue
        k = seen[base[i]]
        while f"{base[i]}#{k}" in taken:  # only if a symbol itself contains "#"
            k += 1
        labels[i] = f"{base[i]}#{k}"
        taken.add(labels[i])
    return labels


def label_offsets(result: DSCResult, symbols: Sequence[Sequence[str]]) -> np.ndarray:
    """int64 [E]: per chunk, the index into its states where its label's spelling begins.

    `chunk_labels` cuts the filler's runs off a chunk's spelling, so a chunk whose states read
    "E E A B C D" is labelled "ABCD", and the state its label names first is at offset 2 (A's),
    not the filler's. The offset is the number of leading fillers cut off the label's spelling,
    the most frequent among its occurrences (0 when none was cut or the chunk never occurs).
    """
    out = np.zeros(len(result.chunks), dtype=np.int64)
    for i, counter in enumerate(_spellings(result, symbols, strip_filler=True)):
        words = _spelling_counts(counter)
        if words:
            word = words.most_common(1)[0][0]
            out[i] = max((lead for w, lead in counter if w == word), key=lambda k: counter[word, k])
    return out
