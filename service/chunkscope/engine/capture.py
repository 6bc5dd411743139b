"""Batched capture of hidden states at hook points, padding masked out.

Inputs are cut into segments (whole texts, or sentences), run through the model a batch at a time
with scoped capture hooks, and only the rows of real tokens are kept (right padding: padded
positions never reach a statistic). Memory is the batch's activations plus what the caller keeps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from chunkscope.chunking.labels import split_sentences
from chunkscope.corpus import Inputs
from chunkscope.engine.hooks import StopForward, capture
from chunkscope.engine.loading import LoadedModel


@dataclass(frozen=True)
class Segment:
    """One forward-pass input: a whole text, a sentence of it, or a symbol sequence."""

    input_index: int
    char_start: int = 0  # where the segment starts in its input text
    text: str = ""
    symbols: tuple[str, ...] = ()


def segments(inputs: Inputs, context: str) -> list[Segment]:
    """Cut inputs into forward passes: 'whole_text' or 'sentence' (texts only)."""
    if inputs.is_symbolic:
        return [Segment(i, symbols=seq) for i, seq in enumerate(inputs.sequences)]
    if context == "sentence":
        return [
            Segment(i, start, text[start:end])
            for i, text in enumerate(inputs.texts)
            for start, end in split_sentences(text)
        ]
    return [Segment(i, 0, text) for i, text in enumerate(inputs.texts)]


@dataclass
class Captured:
    """States of real tokens, segment after segment, for each hook point."""

    hook_points: tuple[str, ...]
    segments: list[Segment] = field(default_factory=list)
    row_starts: list[int] = field(default_factory=list)  # first row of each segment
    lengths: list[int] = field(default_factory=list)  # tokens kept per segment
    offsets: list[list[tuple[int, int]]] = field(default_factory=list)  # per token, in segment text
    token_ids: list[np.ndarray] = field(default_factory=list)
    _chunks: dict[str, list[np.ndarray]] = field(default_factory=dict)
    _rows: int = 0  # running total: summing lengths per added segment was quadratic

    @property
    def n_rows(self) -> int:
        return self._rows

    def add(self, batch: CapturedBatch) -> None:
        for seg, length, offs, ids in zip(
            batch.segments, batch.lengths, batch.offsets, batch.token_ids, strict=True
        ):
            self.row_starts.append(self._rows)
            self.segments.append(seg)
            self.lengths.append(length)
            self._rows += length
            self.offsets.append(offs)
            self.token_ids.append(ids)
        for name in self.hook_points:
            self._chunks.setdefault(name, []).append(batch.states[name])

    def states(self, hook_point: str) -> np.ndarray:
        """All rows of one hook point as one [n_rows, d] float32 array (concatenated once)."""
        chunks = self._chunks.get(hook_point, [])
        if len(chunks) != 1:
            merged = np.concatenate(chunks, axis=0) if chunks else np.zeros((0, 0), np.float32)
            self._chunks[hook_point] = [merged]
        return self._chunks[hook_point][0]

    def release(self, hook_point: str) -> None:
        """Drop one hook point's states once it has been fitted."""
        self._chunks.pop(hook_point, None)

    def all_token_ids(self) -> np.ndarray:
        return np.concatenate(self.token_ids) if self.token_ids else np.zeros(0, np.int64)

    def locate(self, row: int) -> tuple[int, int]:
        """(segment index, position within the segment) of a global row."""
        seg = int(np.searchsorted(np.asarray(self.row_starts), row, side="right")) - 1
        return seg, row - self.row_starts[seg]


@dataclass
class CapturedBatch:
    segments: Sequence[Segment]
    states: dict[str, np.ndarray]
    lengths: list[int]
    offsets: list[list[tuple[int, int]]]
    token_ids: list[np.ndarray]


@dataclass(frozen=True)
class Encoded:
    """One segment as the model reads it: token ids (CPU) and each token's span in its text."""

    segment: Segment
    ids: torch.Tensor  # int64 [T]
    offsets: list[tuple[int, int]]  # empty for symbol sequences


def encode(model: LoadedModel, batch: Sequence[Segment], max_tokens: int) -> list[Encoded]:
    """Tokenize segments (truncated to `max_tokens`). Host work: never on the device thread."""
    if model.is_recurrent:
        return [
            Encoded(seg, model.module.encode(list(seg.symbols))[:max_tokens], [])  # type: ignore[operator]
            for seg in batch
        ]
    enc = model.tokenize(
        [seg.text for seg in batch],
        truncation=True,
        max_length=max_tokens,
        return_offsets_mapping=True,
    )
    return [
        Encoded(seg, torch.tensor(ids, dtype=torch.long), [(int(s), int(e)) for s, e in offsets])
        for seg, ids, offsets in zip(batch, enc["input_ids"], enc["offset_mapping"], strict=True)
    ]


def pad(rows: Sequence[torch.Tensor], left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [B, T] padded with id 0 (on the right, or the `left`) and the attention mask."""
    width = max(1, max(int(r.shape[0]) for r in rows))
    tokens = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        span = slice(width - r.shape[0], None) if left else slice(0, r.shape[0])
        tokens[i, span] = r
        mask[i, span] = 1
    return tokens, mask


@torch.inference_mode()
def forward_states(
    model: LoadedModel, rows: Sequence[torch.Tensor], hook_points: Sequence[str], early_exit: bool
) -> dict[str, torch.Tensor]:
    """One right-padded forward; the states [B, T, d] (float32, CPU) at each hook point.

    Device work. With `early_exit` a language model stops once every hook point has fired, so
    blocks past the deepest one and the LM head never run (a recurrent network needs every step
    of its one loop, so it always runs whole).
    """
    sites = {name: model.adapter.resolve(name) for name in hook_points}
    tokens, mask = pad(rows)
    if model.is_recurrent:
        with capture(model.module, sites) as recorded:
            model.module(tokens.to(model.device))
        stacked = {name: torch.stack(recorded[name], dim=1) for name in hook_points}
    else:
        # StopForward: every hook point has fired, the rest of the forward is not needed.
        with (
            capture(model.module, sites, stop_when_done=early_exit) as recorded,
            contextlib.suppress(StopForward),
        ):
            model.module(
                input_ids=tokens.to(model.device),
                attention_mask=mask.to(model.device),
                use_cache=False,
            )
        stacked = {name: recorded[name][0] for name in hook_points}
    return {name: t.float().cpu() for name, t in stacked.items()}


def gather(encoded: Sequence[Encoded], states: Sequence[dict[str, torch.Tensor]]) -> CapturedBatch:
    """The real-token rows of each segment as float32 numpy (host work).

    `states[i]` holds segment i's states [T_i', d] at each hook point, T_i' >= its tokens.
    """
    lengths = [int(e.ids.shape[0]) for e in encoded]
    names = list(states[0]) if states else []
    merged = {
        name: np.concatenate(
            [s[name][:n].numpy() for s, n in zip(states, lengths, strict=True)], axis=0
        )
        for name in names
    }
    return CapturedBatch(
        [e.segment for e in encoded],
        merged,
        lengths,
        [e.offsets for e in encoded],
        [e.ids.numpy() for e in encoded],
    )


def capture_batch(
    model: LoadedModel,
    batch: Sequence[Segment],
    hook_points: Sequence[str],
    max_tokens: int,
    early_exit: bool = True,
) -> CapturedBatch:
    """Tokenize, run one forward, keep real-token rows: one batch in the calling thread.

    The server goes through the scheduler instead (engine/scheduler.py), which coalesces the
    rows of concurrent requests into shared forwards; this is the same work for one caller.
    """
    encoded = encode(model, batch, max_tokens)
    states = forward_states(model, [e.ids for e in encoded], hook_points, early_exit)
    return gather(encoded, [{n: t[i] for n, t in states.items()} for i in range(len(encoded))])


def token_count(model: LoadedModel, segment: Segment) -> int:
    """Tokens the model would see for a segment (untruncated)."""
    if model.is_recurrent:
        return len(segment.symbols)
    return len(model.tokenize(segment.text)["input_ids"])


def decode_token(model: LoadedModel, token_id: int) -> str:
    if model.is_recurrent:
        return model.symbols[token_id]
    return str(model.tokenizer.decode([token_id]))


def context_window(model: LoadedModel, ids: np.ndarray, position: int, width: int = 4) -> str:
    """Decoded tokens around `position`, the token itself in [brackets]."""
    lo, hi = max(0, position - width), min(len(ids), position + width + 1)
    parts = [decode_token(model, int(t)) for t in ids[lo:hi]]
    parts[position - lo] = f"[{parts[position - lo]}]"
    joiner = " " if model.is_recurrent else ""
    return joiner.join(parts)
