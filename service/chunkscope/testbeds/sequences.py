"""The paper's symbol-sequence generators for the recurrent test bed (docs/METHODS.md §5;
paper §6.1).

Every generator takes an explicit `seed`, draws only from `numpy.random.default_rng(seed)` and
returns a `str` of single-character symbols, so the same arguments always give the same sequence.
Pure Python + numpy: this module must not import torch, gRPC or anything from the service.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

FILLER = "E"
SEED_VOCABULARY = ("A", "B", "C", "D")
OVERLAPPING_CHUNKS = ("CDAB", "AB", "ABCD", "E")
OVERLAPPING_PROBABILITIES = (0.1, 0.1, 0.1, 0.7)
# Share of the hierarchy sequence's words that are the filler "E"; the other words share the rest.
HIERARCHY_FILLER_PROBABILITY = 0.8


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")


def _fillers(rng: np.random.Generator, n: int, max_fillers: int) -> list[str]:
    return [FILLER * int(k) for k in rng.integers(0, max_fillers + 1, size=n)]


def reflection(n_repeats: int = 1000, max_fillers: int = 19, seed: int = 1) -> str:
    """RNN_1: "E", then n_repeats times "ABCD" followed by U{0..max_fillers} fillers "E"."""
    _check_count("n_repeats", n_repeats)
    _check_count("max_fillers", max_fillers)
    rng = np.random.default_rng(seed)
    return FILLER + "".join("ABCD" + run for run in _fillers(rng, n_repeats, max_fillers))


def words(
    vocabulary: Sequence[str] = ("ABCD", "GHI", "JKLMN"),
    n_words: int = 1000,
    max_fillers: int = 9,
    seed: int = 1,
) -> str:
    """RNN_2: n_words words drawn uniformly, each followed by U{0..max_fillers} fillers "E"."""
    if isinstance(vocabulary, str) or not vocabulary:
        raise ValueError(f"vocabulary: expected a non-empty sequence of words, got {vocabulary!r}")
    if not all(isinstance(w, str) and w for w in vocabulary):
        raise ValueError(f"vocabulary: every word must be a non-empty string, got {vocabulary!r}")
    _check_count("n_words", n_words)
    _check_count("max_fillers", max_fillers)
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, len(vocabulary), size=n_words)
    runs = _fillers(rng, n_words, max_fillers)
    return "".join(vocabulary[int(i)] + run for i, run in zip(chosen, runs, strict=True))


# The planted-words test bed: four words of 3-4 symbols that share no symbol with each other or
# with the filler, so every word is exactly one chunk for a network that has learnt them.
PLANTED_WORDS = ("PQRS", "TUV", "WXYZ", "KLM")


def planted_words(
    vocabulary: Sequence[str] = PLANTED_WORDS,
    n_words: int = 600,
    min_fillers: int = 0,
    max_fillers: int = 9,
    filler: str = FILLER,
    seed: int = 1,
) -> str:
    """Planted words: n_words words drawn uniformly, each followed by U{min..max} fillers.

    The test bed on which every trained network's DSC must find every word as a chunk. With
    min_fillers = 0 and filler "E" it draws exactly what `words` draws for the same arguments.
    """
    if isinstance(vocabulary, str) or not vocabulary:
        raise ValueError(f"vocabulary: expected a non-empty sequence of words, got {vocabulary!r}")
    if not all(isinstance(w, str) and w for w in vocabulary):
        raise ValueError(f"vocabulary: every word must be a non-empty string, got {vocabulary!r}")
    if not isinstance(filler, str) or len(filler) != 1:
        raise ValueError(f"filler: expected one symbol (a 1-character string), got {filler!r}")
    if any(filler in w for w in vocabulary):
        raise ValueError(f"filler: {filler!r} occurs in a word of {vocabulary!r}; pick another")
    _check_count("n_words", n_words)
    _check_count("min_fillers", min_fillers)
    _check_count("max_fillers", max_fillers)
    if min_fillers > max_fillers:
        raise ValueError(
            f"min_fillers: got {min_fillers}, above max_fillers={max_fillers}; swap or lower it"
        )
    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, len(vocabulary), size=n_words)
    runs = rng.integers(min_fillers, max_fillers + 1, size=n_words)
    return "".join(vocabulary[int(i)] + filler * int(k) for i, k in zip(chosen, runs, strict=True))


def overlapping(n_draws: int = 10000, seed: int = 1) -> str:
    """RNN_3: n_draws chunks from {CDAB, AB, ABCD, E}, p = (.1, .1, .1, .7), each then "E"."""
    _check_count("n_draws", n_draws)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(OVERLAPPING_CHUNKS), size=n_draws, p=OVERLAPPING_PROBABILITIES)
    return "".join(OVERLAPPING_CHUNKS[int(i)] + FILLER for i in chosen)


def hierarchy(n_h: int, length: int, seed: int = 1) -> tuple[str, list[str]]:
    """RNN_4: a vocabulary grown by n_h concatenations, sampled to `length` symbols.

    Starting from A, B, C, D, each of the n_h steps appends the concatenation of two entries drawn
    (with replacement) from the vocabulary so far; entries may repeat, as in the authors' generator.
    The non-E words get Dirichlet(1) weights, sorted ascending (so later, composite entries tend to
    be likelier) and scaled by 0.2; "E" gets 0.8. `length` words are drawn and the text is cut to
    `length` symbols (each word has at least one symbol). Returns (sequence, vocabulary), where the
    vocabulary is the 4 + n_h grown words followed by "E".
    """
    _check_count("n_h", n_h)
    _check_count("length", length)
    rng = np.random.default_rng(seed)
    vocabulary = list(SEED_VOCABULARY)
    for _ in range(n_h):
        i, j = rng.integers(0, len(vocabulary), size=2)
        vocabulary.append(vocabulary[int(i)] + vocabulary[int(j)])
    weights = np.sort(rng.dirichlet(np.ones(len(vocabulary)))) * (1 - HIERARCHY_FILLER_PROBABILITY)
    vocabulary.append(FILLER)
    probabilities = np.append(weights, HIERARCHY_FILLER_PROBABILITY)
    probabilities /= probabilities.sum()  # guard against rounding drift in rng.choice's check
    chosen = rng.choice(len(vocabulary), size=length, p=probabilities)
    return "".join(vocabulary[int(i)] for i in chosen)[:length], vocabulary


def _hierarchy_sequence(n_h: int = 10, length: int = 100_000, seed: int = 1) -> str:
    return hierarchy(n_h, length, seed=seed)[0]


# Name → generator callable with all-default arguments, each returning the sequence as a str.
GENERATORS: dict[str, Callable[..., str]] = {
    "reflection": reflection,
    "words": words,
    "overlapping": overlapping,
    "hierarchy": _hierarchy_sequence,
    "planted": planted_words,
}


def alphabet(seq: str) -> tuple[str, ...]:
    """The sorted distinct symbols of a sequence (the model vocab for it)."""
    return tuple(sorted(set(seq)))
