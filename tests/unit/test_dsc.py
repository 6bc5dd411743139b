"""Discrete Sequence Chunking: discretisation, BPE and overlap merging, parsing, evaluation."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

from chunkscope.chunking import dsc
from chunkscope.chunking.dsc import (
    DSCChunk,
    DSCParams,
    DSCResult,
    Occurrence,
    assign_states,
    centroid_table,
    chunk_labels,
    decode_accuracy,
    decode_train_steps,
    discretise,
    filler_symbol,
    find_occurrences,
    fit,
    jaccard,
    occurrences,
    parse,
)
from chunkscope.engine.recurrent import RecurrentConfig, RecurrentLM
from chunkscope.testbeds.sequences import alphabet, reflection
from chunkscope.testbeds.train import build_model, train_rnn

WIDTH = 12

# --- helpers ---------------------------------------------------------------------------------


def symbol_hidden(stream: str, seed: int = 0, noise: float = 0.01) -> np.ndarray:
    """Hidden states [T, 12] where every symbol has its own random vector, plus small noise.

    With k <= 5 symbols every neuron holds the levels 0..k-1 in a random order, so k-means with
    n_bins = k finds one tight cluster per symbol on every neuron. (With more bins than clusters,
    k-means would split one symbol's noise cloud in two, and that symbol would get two states.)
    """
    rng = np.random.default_rng(seed)
    symbols = sorted(set(stream))
    if len(symbols) <= 5:
        levels = np.stack([rng.permutation(len(symbols)) for _ in range(WIDTH)], axis=1)
        vectors = {s: levels[i].astype(np.float64) for i, s in enumerate(symbols)}
    else:
        vectors = {s: rng.normal(size=WIDTH) for s in symbols}
    clean = np.stack([vectors[s] for s in stream])
    return (clean + noise * rng.normal(size=clean.shape)).astype(np.float32)


def filler_stream(words: list[str], seed: int = 0, low: int = 1, high: int = 6) -> str:
    """Each word followed by U{low..high} fillers "E" (the words are given in order)."""
    rng = np.random.default_rng(seed)
    runs = rng.integers(low, high + 1, len(words))
    return "".join(w + "E" * int(k) for w, k in zip(words, runs, strict=True))


def symbol_states(result: DSCResult, stream: str) -> dict[str, int]:
    """The state of each symbol; asserts that symbols and states correspond one to one."""
    states = np.concatenate(result.sequences)
    mapping: dict[str, int] = {}
    for symbol in sorted(set(stream)):
        found = set(states[np.array([c == symbol for c in stream])].tolist())
        assert len(found) == 1, (symbol, found)
        mapping[symbol] = found.pop()
    assert len(set(mapping.values())) == len(mapping)
    return mapping


def unparse(units: list[int], chunks: tuple[DSCChunk, ...]) -> list[int]:
    out: list[int] = []
    for u in units:
        out.extend(chunks[u].states if u >= 0 else (-u - 1,))
    return out


def check_consistency(result: DSCResult) -> None:
    """Invariants every fit result must satisfy."""
    chunk_states = [c.states for c in result.chunks]
    for seq, units in zip(result.sequences, result.parses, strict=True):
        assert unparse(units, result.chunks) == seq.tolist()
        # The public parse with the returned chunks gives the same parse.
        assert parse(seq, chunk_states) == units
    for index, chunk in enumerate(result.chunks):
        assert len(chunk.states) >= 2
        assert result.null_state not in chunk.states
        assert chunk.count == sum(units.count(index) for units in result.parses) >= 1
        assert chunk.source in ("merge", "overlap")
    keys = [(-len(c.states), -c.count) for c in result.chunks]
    assert keys == sorted(keys)
    assert len(set(chunk_states)) == len(chunk_states)
    assert int(result.state_counts.sum()) == sum(len(s) for s in result.sequences)
    assert result.null_state == int(np.argmax(result.state_counts))
    cols = np.arange(result.centroids.shape[0])
    expected = result.centroids[cols[None, :], result.state_bins.astype(np.int64)]
    np.testing.assert_array_equal(result.state_vectors, expected)
    assert result.state_vectors.dtype == np.float32
    # State ids are in order of first appearance.
    first_seen = list(dict.fromkeys(np.concatenate(result.sequences).tolist()))
    assert first_seen == list(range(len(result.state_bins)))


# --- synthetic, planted chunks ---------------------------------------------------------------


def test_planted_word_is_found_and_filler_is_null() -> None:
    stream = filler_stream(["ABCD"] * 200)
    result = fit([symbol_hidden(stream)], DSCParams())
    state = symbol_states(result, stream)
    assert result.null_state == state["E"]
    word = tuple(state[s] for s in "ABCD")
    # AB, BC, CD merge in round 1 and AB+CD in round 2; the overlap unions ABC and BCD are added
    # too but the final parse never uses them (ABCD is longer), so only the word remains.
    assert result.chunks == (DSCChunk(states=word, count=200, source="merge"),)
    assert result.state_counts[state["E"]] == stream.count("E")
    check_consistency(result)
    # Atoms are -(state + 1): the parse opens with the word's chunk, then the fillers as atoms.
    filler_atom = -(state["E"] + 1)
    first_run = len(stream) - len(stream.lstrip("ABCD").lstrip("E")) - 4
    assert result.parses[0][: 1 + first_run] == [0] + [filler_atom] * first_run


def test_several_words_and_noise() -> None:
    rng = np.random.default_rng(3)
    vocabulary = ["ABCD", "GHI", "JKLMN"]
    words = [vocabulary[int(i)] for i in rng.integers(0, 3, 300)]
    stream = filler_stream(words, seed=4, low=1, high=4)
    result = fit([symbol_hidden(stream, seed=5)], DSCParams(n_bins=5))
    state = symbol_states(result, stream)
    found = {c.states: c.count for c in result.chunks}
    for word in vocabulary:
        assert found[tuple(state[s] for s in word)] == words.count(word)
    assert result.null_state == state["E"]
    check_consistency(result)


def test_min_frequency_is_a_hard_threshold() -> None:
    stream = filler_stream(["ABCD"] * 200)
    hidden = [symbol_hidden(stream)]
    assert len(fit(hidden, DSCParams(min_frequency=200)).chunks) == 1
    assert fit(hidden, DSCParams(min_frequency=201)).chunks == ()


def test_no_iterations_gives_no_chunks() -> None:
    stream = filler_stream(["ABCD"] * 50)
    result = fit([symbol_hidden(stream)], DSCParams(n_iter=0))
    assert result.chunks == ()
    assert result.parses[0] == [-(s + 1) for s in result.sequences[0].tolist()]


def test_one_round_then_the_overlap_merge() -> None:
    stream = filler_stream(["ABCD"] * 50)
    result = fit([symbol_hidden(stream)], DSCParams(n_iter=1))
    state = symbol_states(result, stream)
    # Round 1 adds AB, BC, CD; the overlap merge then joins AB+BC and BC+CD (always together),
    # and the greedy parse takes ABC then the atom D.
    abc = tuple(state[s] for s in "ABC")
    assert result.chunks == (DSCChunk(states=abc, count=50, source="overlap"),)
    check_consistency(result)


def test_pairs_never_cross_trajectory_boundaries() -> None:
    # Every trajectory ends in P and the next starts with Q: P,Q would be a frequent pair if the
    # trajectories were glued together.
    rng = np.random.default_rng(0)
    vectors = {s: rng.normal(size=WIDTH) for s in "EPQ"}
    parts = ["Q" + "E" * 20 + "P" for _ in range(12)]
    trajectories = [np.stack([vectors[s] for s in p]).astype(np.float32) for p in parts]
    result = fit(trajectories, DSCParams(min_frequency=5))
    assert [len(s) for s in result.sequences] == [22] * 12
    assert result.chunks == ()
    # Glued into one trajectory, the same data does produce the P,Q chunk.
    glued = fit([np.concatenate(trajectories)], DSCParams(min_frequency=5))
    p_state, q_state = int(glued.sequences[0][21]), int(glued.sequences[0][0])
    assert [c.states for c in glued.chunks] == [(p_state, q_state)]
    check_consistency(result)


def test_fit_is_deterministic() -> None:
    stream = filler_stream(["ABCD", "GHI"] * 60)
    hidden = [symbol_hidden(stream, noise=0.2)]
    first = fit(hidden, DSCParams(seed=7))
    second = fit(hidden, DSCParams(seed=7))
    np.testing.assert_array_equal(first.centroids, second.centroids)
    np.testing.assert_array_equal(first.state_bins, second.state_bins)
    assert first.chunks == second.chunks
    assert first.parses == second.parses
    assert first.null_state == second.null_state


# --- overlap merge: the real Jaccard ---------------------------------------------------------


def test_jaccard_hand_examples() -> None:
    def b(bits: str) -> np.ndarray:
        return np.array([c == "1" for c in bits])

    assert jaccard(b("1100"), b("1010")) == pytest.approx(1 / 3)
    assert jaccard(b("1100"), b("1100")) == 1.0
    assert jaccard(b("1100"), b("0011")) == 0.0
    assert jaccard(b("0000"), b("0000")) == 0.0
    # a inside b: the authors' |a∧b|/|a| is 1, the Jaccard index is 2/5.
    a, full = b("11000"), b("11111")
    assert np.count_nonzero(a & full) / np.count_nonzero(a) == 1.0
    assert jaccard(a, full) == pytest.approx(0.4)
    assert jaccard(full, a) == pytest.approx(0.4)  # symmetric, unlike the authors' ratio
    with pytest.raises(ValueError, match="shapes"):
        jaccard(b("10"), b("100"))
    with pytest.raises(ValueError, match="boolean"):
        jaccard(np.array([1, 0]), np.array([1, 0]))


def test_shifted_jaccard_matches_indicator_series() -> None:
    rng = np.random.default_rng(1)
    length = 500
    for _ in range(20):
        s1 = np.flatnonzero(rng.random(length) < 0.1)
        s2 = np.flatnonzero(rng.random(length) < 0.1)
        offset = int(rng.integers(1, 4))
        a = np.zeros(length + offset, dtype=bool)
        shifted = np.zeros(length + offset, dtype=bool)
        a[s1 + offset] = True
        shifted[s2] = True  # c2 at t + offset lines up with c1 at t
        assert dsc._shifted_jaccard(s1, s2, offset) == pytest.approx(jaccard(a, shifted))


def _xyz_result(n_xyz: int, n_yz: int, threshold: float = 0.8) -> tuple[DSCResult, dict[str, int]]:
    words = ["XYZ"] * n_xyz + ["YZ"] * n_yz
    order = np.random.default_rng(2).permutation(len(words))
    stream = filler_stream([words[int(i)] for i in order], low=1, high=3)
    # One BPE round makes XY and YZ; only the overlap merge can then produce XYZ.
    params = DSCParams(n_bins=4, n_iter=1, overlap_jaccard=threshold)  # 4 symbols: X Y Z E
    result = fit([symbol_hidden(stream)], params)
    return result, symbol_states(result, stream)


def test_overlap_merge_fires_when_chunks_always_co_occur() -> None:
    result, state = _xyz_result(100, 0)
    xyz = tuple(state[s] for s in "XYZ")
    assert result.chunks == (DSCChunk(states=xyz, count=100, source="overlap"),)
    check_consistency(result)


@pytest.mark.parametrize("n_yz", [30, 100])
def test_overlap_merge_uses_the_real_jaccard(n_yz: int) -> None:
    # XY is always followed by Z, so the authors' |a∧b|/|a| is 1 >= 0.8 and they would add XYZ;
    # but YZ also occurs n_yz times alone: Jaccard = 100 / (100 + n_yz) < 0.8.
    result, state = _xyz_result(100, n_yz)
    seq = result.sequences[0]
    xy, yz = (state["X"], state["Y"]), (state["Y"], state["Z"])
    starts_xy = np.array([tuple(seq[i : i + 2]) == xy for i in range(len(seq))])
    starts_yz_back = np.array([tuple(seq[i + 1 : i + 3]) == yz for i in range(len(seq))])
    authors = np.count_nonzero(starts_xy & starts_yz_back) / np.count_nonzero(starts_xy)
    assert authors == 1.0
    assert jaccard(starts_xy, starts_yz_back) == pytest.approx(100 / (100 + n_yz))
    assert all(len(c.states) == 2 for c in result.chunks)
    assert {c.states for c in result.chunks} == {xy, yz}
    check_consistency(result)


def test_overlap_merge_fires_at_a_lower_threshold() -> None:
    # Jaccard 100/130 ≈ 0.77: below the default 0.8, above 0.75.
    result, state = _xyz_result(100, 30, threshold=0.75)
    xyz = tuple(state[s] for s in "XYZ")
    assert DSCChunk(states=xyz, count=100, source="overlap") in result.chunks


# --- parsing ---------------------------------------------------------------------------------


def test_parse_greedy_longest_first() -> None:
    sequence = np.array([0, 1, 2, 0, 1, 3, 0, 1, 2, 4])
    chunks = [(0, 1), (0, 1, 2), (1, 2, 4)]
    # 0: (0,1,2) beats (0,1); 3: (0,1); 5: atom 3; 6: (0,1,2); 9: atom 4. The later (1,2,4) is
    # never reached because the parse is greedy from the left.
    assert parse(sequence, chunks) == [1, 0, -4, 1, -5]
    assert parse(sequence, []) == [-1, -2, -3, -1, -2, -4, -1, -2, -3, -5]
    assert parse(np.array([], dtype=np.int64), chunks) == []
    # A chunk that runs past the end does not match; a duplicate keeps its first index.
    assert parse(np.array([0, 1]), [(0, 1, 2), (0, 1), (0, 1)]) == [1]
    assert parse(np.array([7]), [(7,)]) == [0]  # single-state entries are allowed


def test_parse_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unseen"):
        parse(np.array([0, -1, 2]), [(0, 1)])
    with pytest.raises(ValueError, match=r"chunks\[1\]"):
        parse(np.array([0, 1]), [(0, 1), ()])
    with pytest.raises(ValueError, match="1-D"):
        parse(np.zeros((2, 2), dtype=np.int64), [])


# --- discretisation and state assignment -----------------------------------------------------


def test_discretise_sorted_centroids_and_nearest_bins() -> None:
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(400, 3)).astype(np.float32)
    result = discretise(hidden, n_bins=4, seed=0)
    assert result.centroids.shape == (3, 4) and result.centroids.dtype == np.float32
    assert result.bins.shape == (400, 3) and result.bins.dtype == np.int8
    assert (np.diff(result.centroids, axis=1) > 0).all()
    distance = np.abs(hidden[:, :, None] - result.centroids[None, :, :])
    np.testing.assert_array_equal(result.bins, distance.argmin(axis=2))
    # Each centroid is (to k-means tolerance) the mean of its members.
    for j in range(3):
        for k in range(4):
            members = hidden[result.bins[:, j] == k, j]
            assert members.mean() == pytest.approx(result.centroids[j, k], abs=1e-3)


def test_discretise_neurons_with_few_distinct_values() -> None:
    rng = np.random.default_rng(0)
    hidden = np.stack(
        [
            np.full(50, 0.5),  # constant
            rng.choice([-1.0, 2.0], size=50),  # two values
            rng.normal(size=50),
        ],
        axis=1,
    )
    result = discretise(hidden, n_bins=5, seed=0)
    np.testing.assert_array_equal(result.centroids[0], [0.5] * 5)
    np.testing.assert_array_equal(result.centroids[1], [-1.0, 2.0, 2.0, 2.0, 2.0])
    assert set(result.bins[:, 0].tolist()) == {0}
    np.testing.assert_array_equal(result.bins[:, 1], (hidden[:, 1] > 0).astype(np.int8))
    assert len(set(result.bins[:, 2].tolist())) == 5
    # Fewer steps than bins works too.
    tiny = discretise(hidden[:3], n_bins=5, seed=0)
    assert tiny.bins.max() <= 2
    result_fit = fit([hidden[:3]], DSCParams())
    assert result_fit.chunks == () and len(result_fit.state_bins) == len(
        {tuple(r) for r in tiny.bins.tolist()}
    )


def test_assign_states_reproduces_fit_and_flags_unseen_tuples() -> None:
    stream = filler_stream(["ABCD"] * 40)
    rng = np.random.default_rng(9)
    vectors = {s: rng.normal(size=WIDTH) for s in "ABCDE"}
    hidden = np.stack([vectors[s] for s in stream]).astype(np.float32)
    result = fit([hidden], DSCParams())
    again = assign_states(hidden, result.centroids, result.state_bins)
    assert again.dtype == np.int64
    np.testing.assert_array_equal(again, result.sequences[0])
    state = symbol_states(result, stream)
    # A vector with A's values on half the neurons and B's on the rest is a bin tuple never seen.
    hybrid = np.concatenate([vectors["A"][:6], vectors["B"][6:]])
    new = np.stack([vectors["C"], hybrid, vectors["E"] + 0.001]).astype(np.float32)
    ids = assign_states(new, result.centroids, result.state_bins)
    assert ids.tolist() == [state["C"], -1, state["E"]]
    assert assign_states(new, result.centroids, result.state_bins[:0]).tolist() == [-1] * 3
    with pytest.raises(ValueError, match="centroids"):
        assign_states(new[:, :5], result.centroids, result.state_bins)


# --- decoding --------------------------------------------------------------------------------


def test_decode_accuracy_hand_example() -> None:
    ids = np.array([0, 0, 1, 1, 2, 0, 1, 2, 3, -1])
    symbols = list("AABBC") + list("ABDCA")
    # Table from the first 5: 0->A, 1->B, 2->C. Test: A ok, B ok, D wrong (C), 3 unseen, -1.
    assert decode_accuracy(ids, symbols, 5) == (pytest.approx(0.4), 5)
    # Majority vote per state in training (A twice, B once for state 0).
    assert decode_accuracy(np.array([0, 0, 0, 0]), "ABAA", 3) == (1.0, 1)
    with pytest.raises(ValueError, match="train_steps"):
        decode_accuracy(ids, symbols, 10)
    with pytest.raises(ValueError, match="symbols"):
        decode_accuracy(ids, symbols[:-1], 5)


def test_decode_train_steps_fraction_or_first_steps() -> None:
    # The default is the split used before the parameter existed: max(1, int(0.3 * T)).
    assert decode_train_steps(DSCParams(), 1000) == 300
    assert decode_train_steps(DSCParams(), 2) == 1
    assert decode_train_steps(DSCParams(), 7) == 2
    assert decode_train_steps(DSCParams(decode_train_fraction=0.5), 7) == 3
    # Explicit first steps (the paper's 100 / 300) win over the fraction.
    assert decode_train_steps(DSCParams(decode_train_steps=100), 5001) == 100
    assert decode_train_steps(DSCParams(decode_train_steps=4), 5) == 4
    with pytest.raises(ValueError, match=r"^decode_train_steps: got 5.*at most 4"):
        decode_train_steps(DSCParams(decode_train_steps=5), 5)
    with pytest.raises(ValueError, match=r"^n_steps"):
        decode_train_steps(DSCParams(), 1)
    # asdict-stored manifests: the new fields have defaults, an old dict still builds params.
    old = {k: v for k, v in dataclasses.asdict(DSCParams()).items() if not k.startswith("decode")}
    assert DSCParams(**old) == DSCParams()


# --- what a user reads: occurrences, centroids, labels ----------------------------------------


def test_occurrences_give_chunk_boundaries() -> None:
    chunks = [(0, 1), (0, 1, 2), (1, 2, 4)]
    sequence = np.array([0, 1, 2, 0, 1, 3, 0, 1, 2, 4])
    units = parse(sequence, chunks)  # [1, 0, -4, 1, -5]
    assert occurrences(units, chunks) == [
        Occurrence(1, 0, 3),
        Occurrence(0, 3, 5),
        Occurrence(1, 6, 9),
    ]
    assert occurrences([], chunks) == []
    # Unseen states (-1) break the sequence: no occurrence spans them, steps stay global.
    ids = np.array([0, 1, -1, 1, 2, 4, 0, 1, 2, -1, -1, 0])
    assert find_occurrences(ids, chunks) == [
        Occurrence(0, 0, 2),
        Occurrence(2, 3, 6),
        Occurrence(1, 6, 9),
    ]
    assert find_occurrences(np.array([-1, -1], dtype=np.int64), chunks) == []
    assert find_occurrences(np.array([], dtype=np.int64), chunks) == []
    with pytest.raises(ValueError, match="state_ids"):
        find_occurrences(np.array([0, -2]), chunks)


def test_occurrences_of_a_fit_tile_its_parse() -> None:
    stream = filler_stream(["ABCD", "GHI"] * 40, low=1, high=4)
    result = fit([symbol_hidden(stream)], DSCParams(n_bins=5))
    states = [c.states for c in result.chunks]
    found = occurrences(result.parses[0], states)
    assert [o.chunk for o in found] == [u for u in result.parses[0] if u >= 0]
    for o in found:
        assert tuple(result.sequences[0][o.start : o.end].tolist()) == states[o.chunk]
    assert find_occurrences(result.sequences[0], states) == found


def test_centroid_table_cuts_padding() -> None:
    centroids = np.array([[0.5, 0.5, 0.5], [-1.0, 2.0, 2.0], [-1.0, 0.0, 1.0]], np.float32)
    assert centroid_table(centroids) == [[0.5], [-1.0, 2.0], [-1.0, 0.0, 1.0]]
    result = fit([symbol_hidden(filler_stream(["ABCD"] * 30))], DSCParams())
    table = centroid_table(result.centroids)
    assert len(table) == WIDTH
    for j, row in enumerate(table):
        # Every bin a state uses is in the table, and the values are the centroids.
        assert int(result.state_bins[:, j].max()) < len(row)
        np.testing.assert_array_equal(np.asarray(row, np.float32), result.centroids[j, : len(row)])


def test_chunk_labels_strip_filler_runs_and_are_unique() -> None:
    # Hand-made states: E is the null state; "e" is the filler seen right after a word (another
    # state, as in a network that returns to rest over a few steps). So the chunks span the
    # word and the first filler, which the labels must drop.
    rng = np.random.default_rng(0)
    vectors = {s: rng.normal(size=WIDTH) for s in "ABCDGHIEe"}
    words = ["ABCD", "GHI"] * 30 + ["ABCD"] * 6
    stream = "".join(w + "e" + "E" * (2 + i % 3) for i, w in enumerate(words))
    hidden = np.stack([vectors[s] for s in stream]).astype(np.float32)
    symbols = [s.upper() for s in stream]  # the input symbol of "e" is the filler E
    result = fit([hidden], DSCParams())
    assert filler_symbol(result, [symbols]) == "E"
    raw = chunk_labels(result, [symbols], strip_filler=False)
    assert sorted(raw) == ["ABCDE", "GHIE"]
    labels = chunk_labels(result, [symbols])
    assert sorted(labels) == ["ABCD", "GHI"]
    with pytest.raises(ValueError, match="symbols"):
        chunk_labels(result, [symbols[:-1]])
    with pytest.raises(ValueError, match="symbols"):
        chunk_labels(result, [symbols, symbols])


def test_chunk_labels_suffix_duplicates_by_count() -> None:
    # Two state variants of one word: "ABC" spelled by states of A,B,C and of a,b,c (input
    # symbols both "ABC"); the variant seen more often keeps the bare label.
    rng = np.random.default_rng(1)
    vectors = {s: rng.normal(size=WIDTH) for s in "ABCabcE"}
    words = ["ABC"] * 30 + ["abc"] * 20
    order = rng.permutation(len(words))
    stream = "".join(words[int(i)] + "E" * 3 for i in order)
    hidden = np.stack([vectors[s] for s in stream]).astype(np.float32)
    result = fit([hidden], DSCParams())
    labels = chunk_labels(result, [list(stream.upper())])
    assert sorted(zip(labels, [c.count for c in result.chunks], strict=True)) == [
        ("ABC", 30),
        ("ABC#2", 20),
    ]
    # A chunk of fillers only keeps its spelling (stripping would leave nothing).
    assert dsc._strip(["E", "E"], "E") == (0, 2)


def test_label_offsets_point_at_the_first_state_the_label_names() -> None:
    # "x" is a state of its own whose input symbol is the filler E (a network leaving rest just
    # before a word): the chunk spans x A B C D but reads "ABCD", so its graft state is offset 1.
    rng = np.random.default_rng(2)
    vectors = {s: rng.normal(size=WIDTH) for s in "ABCDGHIEx"}
    words = ["xABCD", "GHI"] * 30
    stream = "".join(w + "E" * (2 + i % 3) for i, w in enumerate(words))
    hidden = np.stack([vectors[s] for s in stream]).astype(np.float32)
    symbols = ["E" if s == "x" else s for s in stream]
    result = fit([hidden], DSCParams())
    labels = chunk_labels(result, [symbols])
    offsets = dsc.label_offsets(result, [symbols])
    by_label = dict(zip(labels, offsets.tolist(), strict=True))
    assert sorted(by_label) == ["ABCD", "GHI"]
    assert by_label == {"ABCD": 1, "GHI": 0}
    abcd = result.chunks[labels.index("ABCD")]
    first = result.state_vectors[abcd.states[0]]  # the chunk starts at x's state
    assert max(vectors, key=lambda k: -np.linalg.norm(vectors[k] - first)) == "x"


# --- parameters ------------------------------------------------------------------------------


def test_validate_refuses_wide_hidden_states() -> None:
    params = DSCParams()
    params.validate(hidden_size=12)
    params.validate(hidden_size=64)
    with pytest.raises(ValueError, match=r"hidden_size.*5\^576.*UCD") as info:
        params.validate(hidden_size=576)
    assert "state space" in str(info.value)
    with pytest.raises(ValueError, match="hidden_size"):
        fit([np.zeros((10, 65), dtype=np.float32)], params)
    DSCParams(max_hidden_size=600).validate(hidden_size=576)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_bins", 1),
        ("n_bins", True),
        ("n_iter", -1),
        ("n_new_chunks", 0),
        ("min_frequency", 0),
        ("overlap_jaccard", 0.0),
        ("overlap_jaccard", 1.5),
        ("seed", -1),
        ("max_hidden_size", 0),
        ("decode_train_fraction", 0.0),
        ("decode_train_fraction", 1.0),
        ("decode_train_steps", -1),
        ("decode_train_steps", 1.5),
    ],
)
def test_validate_names_the_bad_field(field: str, value: object) -> None:
    changes: dict[str, Any] = {field: value}
    params = dataclasses.replace(DSCParams(), **changes)
    with pytest.raises(ValueError, match=f"^{field}:"):
        params.validate()


def test_fit_rejects_bad_trajectories() -> None:
    with pytest.raises(ValueError, match="list"):
        fit(np.zeros((5, 3)), DSCParams())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same width"):
        fit([np.zeros((5, 3)), np.zeros((5, 4))], DSCParams())
    with pytest.raises(ValueError, match="NaN"):
        fit([np.full((5, 3), np.nan)], DSCParams())
    with pytest.raises(ValueError, match="at least one"):
        fit([], DSCParams())


# --- the recurrent test bed ------------------------------------------------------------------


def _hidden(model: RecurrentLM, sequence: str) -> np.ndarray:
    with torch.no_grad():
        _, hidden = model(model.encode(sequence)[None])
    return hidden[0].numpy()


@pytest.fixture(scope="module")
def reflection_nets() -> tuple[str, np.ndarray, np.ndarray]:
    """(sequence, trained hidden [T, 12], untrained hidden [T, 12]) for the RNN_1 sequence."""
    sequence = reflection()
    config = RecurrentConfig("elman", alphabet(sequence), WIDTH)
    trained = build_model(config, seed=0)
    train_rnn(trained, sequence, iterations=200, window=200, seed=0)
    untrained = build_model(config, seed=0)
    return sequence, _hidden(trained, sequence), _hidden(untrained, sequence)


def test_trained_rnn_state_decodes_current_input(
    reflection_nets: tuple[str, np.ndarray, np.ndarray],
) -> None:
    sequence, hidden, _ = reflection_nets
    result = fit([hidden], DSCParams())
    accuracy, n_test = decode_accuracy(result.sequences[0], sequence, 300)
    # Measured 0.975 (paper: 0.92-0.97).
    assert accuracy > 0.85
    assert n_test == len(sequence) - 300
    check_consistency(result)
    assert result.chunks and len(result.chunks[0].states) >= 4
    # The null state is a filler state: after a long run of "E" the linear net settles.
    null_steps = result.sequences[0] == result.null_state
    assert {sequence[i] for i in np.flatnonzero(null_steps)} == {"E"}


def test_trained_rnn_has_far_more_states_than_untrained(
    reflection_nets: tuple[str, np.ndarray, np.ndarray],
) -> None:
    _, trained, untrained = reflection_nets
    n_trained = len(fit([trained], DSCParams()).state_bins)
    n_untrained = len(fit([untrained], DSCParams()).state_bins)
    # Measured 72 vs 32 (paper, RNN_3: 364.5 vs 41.0).
    assert n_trained > 1.5 * n_untrained
