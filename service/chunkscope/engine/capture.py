"""Batched capture of hidden states at hook points, padding masked out.

Inputs are cut into segments (whole texts, or sentences), run through the model a batch at a time
with scoped capture hooks, and only the rows of real tokens are kept (right padding: padded
positions never reach a statistic). Memory is the batch's activations plus what the caller keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from chunkscope.chunking.labels import split_sentences
from chunkscope.corpus import Inputs
from chunkscope.engine.hooks import capture
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


@torch.inference_mode()
def capture_batch(
    model: LoadedModel, batch: Sequence[Segment], hook_points: Sequence[str], max_tokens: int
) -> CapturedBatch:
    """Run one batch with capture hooks; keep real-token rows only. Runs on the compute thread."""
    sites = {name: model.adapter.resolve(name) for name in hook_points}
    if model.is_recurrent:
        module = model.module
        encoded = [module.encode(list(seg.symbols))[:max_tokens] for seg in batch]  # type: ignore[operator]
        lengths = [int(e.shape[0]) for e in encoded]
        tokens = torch.zeros((len(batch), max(lengths)), dtype=torch.long)
        for i, e in enumerate(encoded):
            tokens[i, : lengths[i]] = e
        with capture(module, sites) as recorded:
            module(tokens.to(model.device))
        stacked = {name: torch.stack(recorded[name], dim=1) for name in hook_points}
        offsets: list[list[tuple[int, int]]] = [[] for _ in batch]
        ids = [e.numpy() for e in encoded]
    else:
        enc = model.tokenize(
            [seg.text for seg in batch],
            padding=True,
            truncation=True,
            max_length=max_tokens,
            return_offsets_mapping=True,
            return_tensors="pt",
            padding_side="right",
        )
        mask = enc["attention_mask"]
        lengths = [int(n) for n in mask.sum(dim=1)]
        with capture(model.module, sites) as recorded:
            model.module(
                input_ids=enc["input_ids"].to(model.device), attention_mask=mask.to(model.device)
            )
        stacked = {name: recorded[name][0] for name in hook_points}
        offsets = [
            [(int(s), int(e)) for s, e in enc["offset_mapping"][i, : lengths[i]].tolist()]
            for i in range(len(batch))
        ]
        ids = [enc["input_ids"][i, : lengths[i]].numpy() for i in range(len(batch))]
    states = {
        name: np.concatenate(
            [t[i, : lengths[i]].float().cpu().numpy() for i in range(len(batch))], axis=0
        )
        for name, t in stacked.items()
    }
    return CapturedBatch(batch, states, lengths, offsets, ids)


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
