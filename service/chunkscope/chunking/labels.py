"""Concept labels: from words or character spans to token positions, and sentence splitting.

What this is for: PA needs the token positions V(s) where concept s occurs. Clients send either
explicit character spans or a list of words; this module finds the words' whole-word occurrences
as character spans, maps each span to the token that carries it (the LAST token overlapping the
span, so a word split into several sub-tokens is labelled on its final piece, as the authors do),
and applies the optional offset ``step`` (label the token ``step`` positions before the word;
negative = after). It also splits text into sentences for the ``context = sentence`` option.

Tokens are described only by their character offsets (what a fast HF tokenizer returns with
``return_offsets_mapping``); zero-length offsets such as (0, 0) mark special or padding tokens.
This module is pure: it must not import a tokenizer, torch, gRPC, the config, or do file IO.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

__all__ = ["Span", "label_positions", "span_positions", "split_sentences", "word_spans"]


@dataclass(frozen=True)
class Span:
    """One occurrence of ``concept``: characters [start, end) of text number ``text_index``."""

    text_index: int
    start: int
    end: int
    concept: str


def word_spans(texts: Sequence[str], concept: str, words: Sequence[str]) -> list[Span]:
    """Whole-word, case-insensitive occurrences of any of ``words`` in ``texts``.

    A word may contain spaces ("ice cream"); any run of whitespace in the text matches them, so a
    line break inside the phrase still counts. When words overlap ("ice" and "ice cream") the
    longest match at a position wins and no character is counted twice. Spans are returned in
    text order.
    """
    pattern = _words_pattern(words)
    spans: list[Span] = []
    for index, text in enumerate(texts):
        for match in pattern.finditer(text):
            spans.append(Span(index, match.start(), match.end(), concept))
    return spans


def span_positions(offsets: Sequence[tuple[int, int]], start: int, end: int) -> int | None:
    """Index of the last token overlapping characters [start, end), or None if none does.

    Zero-length tokens (special tokens, padding) are ignored. A token whose offsets include a
    leading space (" cheese" as (3, 10)) overlaps the word it carries, as it should.
    """
    _check_span(start, end)
    return _TokenIndex(offsets).last_overlapping(start, end)


def label_positions(
    offsets: Sequence[tuple[int, int]], spans: Sequence[Span], step: int = 0
) -> list[int]:
    """Sorted unique token positions of ``spans`` (all of one text), shifted by ``-step``.

    A span with no overlapping token (e.g. cut off by truncation) is dropped, and so is a shifted
    position that falls outside the sequence or on a special/padding token (zero-length offsets):
    those have no meaningful hidden state for the concept.
    """
    if len({span.text_index for span in spans}) > 1:
        raise ValueError("label_positions takes the spans of one text only")
    index = _TokenIndex(offsets)
    positions: set[int] = set()
    for span in spans:
        _check_span(span.start, span.end)
        token = index.last_overlapping(span.start, span.end)
        if token is None:
            continue
        shifted = token - step
        if 0 <= shifted < len(offsets) and not index.is_special(shifted):
            positions.add(shifted)
    return sorted(positions)


# Abbreviations whose final period does not end a sentence (compared lower-cased). "No." and
# similar words that are also ordinary sentence endings are deliberately absent.
_ABBREVIATIONS = frozenset(
    {
        "mr.", "mrs.", "ms.", "dr.", "prof.", "sr.", "jr.", "st.", "mt.", "vs.", "etc.",
        "e.g.", "i.e.", "cf.", "approx.", "fig.", "vol.", "ca.", "a.m.", "p.m.",
    }
)  # fmt: skip
# Sentence-final punctuation, then any closing quotes/brackets, then whitespace (not consumed).
_BOUNDARY = re.compile(r"[.?!]+[\"'\u201d\u2019)\]}]*(?=\s)")
# A capital initial ("J.") or dotted letters ("U.S.", "a.m.").
_INITIAL = re.compile(r"[A-Z]\.|(?:[A-Za-z]\.){2,}")
_OPENERS = "\"'\u201c\u2018([{"


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character [start, end) ranges of the sentences of ``text``, whitespace stripped.

    A boundary is . ? or ! (possibly repeated, possibly followed by closing quotes or brackets)
    followed by whitespace. A period does not end a sentence after a common abbreviation (Mr.,
    e.g., etc.), a capital initial (J. K. Rowling) or dotted letters (U.S.). Decimals (3.14)
    never split because no whitespace follows their period. Empty ranges are never returned; a
    text without a boundary is one sentence.
    """
    ranges: list[tuple[int, int]] = []
    begin = 0
    for match in _BOUNDARY.finditer(text):
        if _is_abbreviation(text, begin, match):
            continue
        _append_stripped(text, begin, match.end(), ranges)
        begin = match.end()
    _append_stripped(text, begin, len(text), ranges)
    return ranges


# --- internals ---------------------------------------------------------------------------------


class _TokenIndex:
    """Finds the last token overlapping a character range in O(log n) per query.

    Offsets from fast tokenizers are monotone (starts and ends never decrease, special tokens
    aside), so the last token starting before ``end`` is the only candidate. Offsets that are not
    monotone fall back to a linear scan, which is always correct.
    """

    def __init__(self, offsets: Sequence[tuple[int, int]]) -> None:
        self._tokens: list[tuple[int, int, int]] = []  # (index, start, end) of real tokens
        self._special: set[int] = set()
        for i, (start, end) in enumerate(offsets):
            if end > start:
                self._tokens.append((i, start, end))
            else:
                self._special.add(i)
        self._starts = [start for _, start, _ in self._tokens]
        ends = [end for _, _, end in self._tokens]
        self._monotone = all(a <= b for a, b in pairwise(self._starts)) and all(
            a <= b for a, b in pairwise(ends)
        )

    def is_special(self, position: int) -> bool:
        return position in self._special

    def last_overlapping(self, start: int, end: int) -> int | None:
        if not self._monotone:
            hits = [i for i, s, e in self._tokens if s < end and e > start]
            return hits[-1] if hits else None
        # Real tokens with start < end form a prefix; its last one has the largest end.
        k = bisect_left(self._starts, end) - 1
        if k < 0:
            return None
        index, _, token_end = self._tokens[k]
        return index if token_end > start else None


def _check_span(start: int, end: int) -> None:
    if start < 0 or end <= start:
        raise ValueError(f"a span needs 0 <= start < end, got [{start}, {end})")


def _words_pattern(words: Sequence[str]) -> re.Pattern[str]:
    parts: dict[str, str] = {}
    for word in words:
        pieces = word.split()
        if not pieces:
            raise ValueError("words must not be empty or whitespace only")
        # Keyed case-insensitively so "Cat" and "cat" are one alternative.
        parts.setdefault(" ".join(pieces).casefold(), r"\s+".join(map(re.escape, pieces)))
    if not parts:
        raise ValueError("at least one word is needed")
    # Longest first: at one position the alternation takes the first alternative that matches.
    alternatives = sorted(parts.items(), key=lambda item: len(item[0]), reverse=True)
    body = "|".join(regex for _, regex in alternatives)
    # Look-arounds rather than \b: they also give whole-word matches for words that begin or end
    # with punctuation ("C++", "U.S."), where \b would demand a word character next door.
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE)


def _is_abbreviation(text: str, begin: int, match: re.Match[str]) -> bool:
    punctuation = match.group().rstrip("\"'\u201d\u2019)]}")
    if punctuation != ".":
        return False  # ? ! and runs like "..." or "?!" always end a sentence
    # The word carrying the period: back to the previous whitespace (or the sentence start).
    word_start = match.start()
    while word_start > begin and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start : match.start() + 1].lstrip(_OPENERS)
    return word.lower() in _ABBREVIATIONS or _INITIAL.fullmatch(word) is not None


def _append_stripped(text: str, start: int, end: int, ranges: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        ranges.append((start, end))
