"""Concept labels (chunking/labels.py): word matching, span-to-token mapping, sentence splitting."""

from __future__ import annotations

import pytest

from chunkscope.chunking.labels import (
    Span,
    label_positions,
    span_positions,
    split_sentences,
    word_spans,
)


def _texts_of(texts: list[str], spans: list[Span]) -> list[str]:
    return [texts[s.text_index][s.start : s.end] for s in spans]


# --- word_spans --------------------------------------------------------------------------------


def test_word_spans_whole_word_case_insensitive() -> None:
    texts = ["The Cat sat; a cat's toy. Concatenate cats, CAT!", "no felines here", "cat"]
    spans = word_spans(texts, "feline", ["cat"])
    assert [(s.text_index, s.start, s.end) for s in spans] == [
        (0, 4, 7),
        (0, 15, 18),
        (0, 44, 47),
        (2, 0, 3),
    ]
    assert _texts_of(texts, spans) == ["Cat", "cat", "CAT", "cat"]
    assert all(s.concept == "feline" for s in spans)
    assert word_spans(["cat"], "x", ["cat"]) == [Span(0, 0, 3, "x")]


def test_word_spans_multiword_and_overlaps() -> None:
    texts = ["I like ice cream and ice, and ICE\nCREAM too."]
    spans = word_spans(texts, "dessert", ["ice", "ice cream", "Ice Cream"])
    # The longer phrase wins where both match; nothing is counted twice.
    assert _texts_of(texts, spans) == ["ice cream", "ice", "ICE\nCREAM"]
    assert [s.start for s in spans] == [7, 21, 30]


def test_word_spans_escapes_and_punctuated_words() -> None:
    texts = ["C++ beats C, a.b is not aXb; C++11 differs"]
    assert _texts_of(texts, word_spans(texts, "lang", ["C++"])) == ["C++"]
    assert _texts_of(texts, word_spans(texts, "dot", ["a.b"])) == ["a.b"]
    with pytest.raises(ValueError, match="empty"):
        word_spans(texts, "x", ["  "])
    with pytest.raises(ValueError, match="at least one"):
        word_spans(texts, "x", [])


# --- span_positions ----------------------------------------------------------------------------

# "I like cheesecake a lot" tokenized as [BOS] "I" " like" " che" "ese" "cake" " a" " lot" [EOS],
# offsets in the style of byte-level BPE that keeps the leading space inside the token.
TEXT = "I like cheesecake a lot"
OFFSETS = [(0, 0), (0, 1), (1, 6), (6, 10), (10, 13), (13, 17), (17, 19), (19, 23), (0, 0)]


def test_multi_subtoken_word_is_labelled_on_its_last_piece() -> None:
    start = TEXT.index("cheesecake")
    assert span_positions(OFFSETS, start, start + len("cheesecake")) == 5


def test_leading_space_tokens_overlap_their_word() -> None:
    start = TEXT.index("like")
    assert (start, OFFSETS[2]) == (2, (1, 6))
    assert span_positions(OFFSETS, start, start + 4) == 2
    assert span_positions(OFFSETS, TEXT.index("lot"), len(TEXT)) == 7
    # The first word starts at 0 like the special tokens' (0, 0), which must not be picked.
    assert span_positions(OFFSETS, 0, 1) == 1


def test_span_positions_none_when_nothing_overlaps() -> None:
    truncated = OFFSETS[:4]  # "cake", " a", " lot" were cut off
    assert span_positions(truncated, TEXT.index("lot"), len(TEXT)) is None
    assert span_positions([(0, 0), (0, 0)], 0, 3) is None
    with pytest.raises(ValueError, match="start < end"):
        span_positions(OFFSETS, 4, 4)


def test_non_monotone_offsets_fall_back_to_a_scan() -> None:
    odd = [(5, 8), (0, 4), (0, 0), (9, 12)]
    assert span_positions(odd, 1, 3) == 1
    assert span_positions(odd, 0, 9) == 1
    assert span_positions(odd, 6, 11) == 3


# --- label_positions ---------------------------------------------------------------------------


def _spans(*words: str) -> list[Span]:
    return word_spans([TEXT], "c", list(words))


def test_label_positions_sorted_unique() -> None:
    spans = _spans("lot", "cheesecake", "I")
    assert label_positions(OFFSETS, spans) == [1, 5, 7]
    assert label_positions(OFFSETS, spans + spans) == [1, 5, 7]
    assert label_positions(OFFSETS, []) == []


def test_label_positions_step_shift_and_drops() -> None:
    spans = _spans("I", "cheesecake", "lot")
    # step=1 labels the token before: "I" would land on BOS (special) and is dropped.
    assert label_positions(OFFSETS, spans, step=1) == [4, 6]
    assert label_positions(OFFSETS, spans, step=2) == [3, 5]
    # step=-1 labels the token after: " lot" is followed by EOS (special), dropped.
    assert label_positions(OFFSETS, spans, step=-1) == [2, 6]
    # Shifts past either end are dropped.
    assert label_positions(OFFSETS[1:8], _spans("I", "lot"), step=1) == [5]
    assert label_positions(OFFSETS[1:8], _spans("I", "lot"), step=-1) == [1]
    assert label_positions(OFFSETS, spans, step=50) == []


def test_label_positions_skips_truncated_spans_and_checks_text() -> None:
    assert label_positions(OFFSETS[:4], _spans("I", "lot")) == [1]
    mixed = [Span(0, 0, 1, "c"), Span(1, 0, 1, "c")]
    with pytest.raises(ValueError, match="one text"):
        label_positions(OFFSETS, mixed)


# --- split_sentences ---------------------------------------------------------------------------


def _sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


def test_split_sentences_basic() -> None:
    text = "  Hello there. How are you?  Fine!\nGood.  "
    assert _sentences(text) == ["Hello there.", "How are you?", "Fine!", "Good."]
    assert split_sentences(text)[0] == (2, 14)


def test_split_sentences_abbreviations_and_decimals() -> None:
    text = (
        "Mr. Smith met Dr. Jones at St. Paul's, e.g. on Sunday. Pi is 3.14 today. "
        "J. K. Rowling lives in the U.S. now. Apples, pears etc. were sold. Red vs. blue."
    )
    assert _sentences(text) == [
        "Mr. Smith met Dr. Jones at St. Paul's, e.g. on Sunday.",
        "Pi is 3.14 today.",
        "J. K. Rowling lives in the U.S. now.",
        "Apples, pears etc. were sold.",
        "Red vs. blue.",
    ]


def test_split_sentences_quotes_brackets_and_runs() -> None:
    text = '"Stop!" she said. (It was late.) Really?! Yes... maybe. (i.e. no) End'
    assert _sentences(text) == [
        '"Stop!"',
        "she said.",
        "(It was late.)",
        "Really?!",
        "Yes...",
        "maybe.",
        "(i.e. no) End",
    ]
    assert _sentences("\u201cHi.\u201d Bye.") == ["\u201cHi.\u201d", "Bye."]


def test_split_sentences_edge_cases() -> None:
    assert split_sentences("") == []
    assert split_sentences("   \n ") == []
    assert split_sentences("no boundary here") == [(0, 16)]
    assert split_sentences("  padded  ") == [(2, 8)]
    assert _sentences("Ends with a period.") == ["Ends with a period."]
    assert _sentences("a.b.c then x") == ["a.b.c then x"]
