"""DSC against a plain reference implementation, and the planted-words test bed.

The reference (tests/helpers/dsc_reference.py) implements the merge rounds from the method's
description with nothing optimised. `fit` must give exactly its chunks and parses. The test bed
trains several small networks on four planted words separated by filler runs; every network's DSC
must find every word as a chunk whose label is the word.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chunkscope.chunking.dsc import DSCParams, DSCResult, chunk_labels, fit
from chunkscope.engine.recurrent import RecurrentConfig
from chunkscope.testbeds.sequences import PLANTED_WORDS, alphabet, planted_words
from chunkscope.testbeds.train import build_model, train_rnn
from helpers import dsc_reference as ref

WIDTH = 12


def symbol_hidden(stream: str, seed: int = 0, noise: float = 0.0) -> np.ndarray:
    """One random 12-vector per symbol (plus optional noise): one state per symbol."""
    rng = np.random.default_rng(seed)
    vectors = {s: rng.normal(size=WIDTH) for s in sorted(set(stream))}
    clean = np.stack([vectors[s] for s in stream])
    return (clean + noise * rng.normal(size=clean.shape)).astype(np.float32)


def as_tuples(result: DSCResult) -> tuple[set[tuple[int, ...]], list[list[tuple[int, ...]]]]:
    chunks = {c.states for c in result.chunks}
    parses = [
        [result.chunks[u].states if u >= 0 else (-u - 1,) for u in units] for units in result.parses
    ]
    return chunks, parses


# --- the root cause: which pairs a round merges ----------------------------------------------


def test_a_round_merges_the_most_frequent_eligible_pairs() -> None:
    # With one new chunk per round the most frequent pair is always (E, E), which holds the null
    # state. Taking the top pair first and filtering it afterwards (the authors' rule) adds
    # nothing in round 1, and so nothing ever: the word is never found.
    stream = planted_words(("ABCD",), n_words=200, min_fillers=1, max_fillers=6, seed=0)
    hidden = symbol_hidden(stream)
    params = DSCParams(n_new_chunks=1)
    result = fit([hidden], params)
    sequences = [s.tolist() for s in result.sequences]
    stalled, rounds = ref.bpe(sequences, result.null_state, n_new_chunks=1, rule="top_then_filter")
    assert stalled == [] and len(rounds) == 1
    top_left, top_right, _ = rounds[0].top_pairs[0]
    assert top_left == top_right == (result.null_state,)
    # Merging the most frequent eligible pair finds the word, one pair per round.
    word = tuple(int(result.sequences[0][stream.index("ABCD") + k]) for k in range(4))
    assert [c.states for c in result.chunks] == [word]
    assert result.chunks[0].count == 200
    assert as_tuples(result) == ref.chunks_and_parses(sequences, result.null_state, n_new_chunks=1)


@pytest.mark.parametrize(
    ("n_new_chunks", "min_frequency", "noise", "seed"),
    [(10, 5, 0.0, 0), (1, 5, 0.0, 1), (3, 8, 0.05, 2), (10, 5, 0.1, 3)],
)
def test_fit_equals_the_reference_implementation(
    n_new_chunks: int, min_frequency: int, noise: float, seed: int
) -> None:
    # Noise makes k-means split symbols over several states, so words have state variants, as
    # in a trained network; two trajectories check that nothing crosses their boundary.
    stream = planted_words(("PQRS", "TUV", "WXYZ", "KLM"), n_words=150, seed=seed)
    hidden = symbol_hidden(stream, seed=seed, noise=noise)
    cut = len(stream) // 2
    params = DSCParams(n_new_chunks=n_new_chunks, min_frequency=min_frequency)
    result = fit([hidden[:cut], hidden[cut:]], params)
    sequences = [s.tolist() for s in result.sequences]
    expected = ref.chunks_and_parses(
        sequences, result.null_state, n_new_chunks=n_new_chunks, min_frequency=min_frequency
    )
    assert as_tuples(result) == expected
    assert result.chunks


# --- the planted-words test bed --------------------------------------------------------------

# Short training: 200 windows of 200 steps at lr 0.02 (about 5 s per network on one core). With
# the authors' pair selection, seeds 3 and 4 lose two of the four words (measured: 116 and 182
# distinct states, found 2 of 4 each).
SEEDS = (0, 1, 2, 3, 4)
ITERATIONS, WINDOW, LR = 200, 200, 0.02


@pytest.fixture(scope="module")
def planted_sequence() -> str:
    return planted_words()


@pytest.mark.parametrize("seed", SEEDS)
def test_every_trained_seed_recovers_every_planted_word(planted_sequence: str, seed: int) -> None:
    sequence = planted_sequence
    config = RecurrentConfig("elman", alphabet(sequence), WIDTH)
    model = build_model(config, seed=seed)
    train_rnn(model, sequence, iterations=ITERATIONS, window=WINDOW, lr=LR, seed=seed)
    with torch.no_grad():
        _, hidden = model(model.encode(sequence)[None])
    result = fit([hidden[0].numpy()], DSCParams())
    labels = chunk_labels(result, [list(sequence)])
    missing = [w for w in PLANTED_WORDS if w not in labels]
    assert not missing, (
        f"seed {seed}: {len(result.state_bins)} states, words {missing} not found; labels {labels}"
    )
    assert len(set(labels)) == len(labels)
    # Most of each word's occurrences are parsed as a chunk read as that word (its variants
    # over different states included); the rest sit in chunks that span two words, or split.
    # Measured 0.54-0.82 of the occurrences over seeds 0-4.
    for word in PLANTED_WORDS:
        assert result.chunks[labels.index(word)].count >= 10
        covered = sum(
            chunk.count
            for chunk, label in zip(result.chunks, labels, strict=True)
            if label.split("#")[0] == word
        )
        assert covered >= 0.4 * sequence.count(word), (word, covered)
