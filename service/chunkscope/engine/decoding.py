"""Device-side generation: rows that decode together, each with its own cache and steering.

A `Row` is one arm of one Generate: its prompt, its interventions and recorded hook points (a
`Steering`), its sampling parameters and seed, its rules. A `Group` holds the rows decoding on
one model: each decode step is one forward of every row's newest token. Rows join after their
own prefill and leave when they finish or are cancelled, between steps (iteration-level, or
continuous, batching).

Each row keeps its own KV cache: the group holds them as one left-padded cache (row i's
entries right-aligned, the padding masked out and never attended to), with explicit position
ids, so a row computes what it would alone. A joining row's cache is padded to the group's
width (or the group's to the row's), a leaving row's entries are dropped and the columns no
row needs any more are trimmed. Recurrent networks carry a hidden state per row instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from chunkscope import metrics
from chunkscope.engine.capture import pad
from chunkscope.engine.hooks import hooks
from chunkscope.engine.loading import LoadedModel
from chunkscope.engine.steering import Rule, Sampling, Steering, row_hook, sample, sites_of


@dataclass
class Step:
    """One generated token of one row, with its states at the hook points detection reads."""

    step: int
    token_id: int
    states: dict[str, np.ndarray]  # hook point -> [1, d] float32, after the interventions
    rule_events: list[tuple[int, str]]


@dataclass(eq=False)
class Row:
    prompt: torch.Tensor  # [1, T] token ids (CPU)
    steering: Steering
    sampling: Sampling
    rules: list[Rule]
    detect_points: frozenset[str]
    emit: Callable[[Step], None]
    finish: Callable[[list[int], BaseException | None], None]
    cancel: threading.Event
    generator: torch.Generator = field(init=False)
    new_tokens: list[int] = field(default_factory=list)
    logits: torch.Tensor | None = None  # next-token logits [V]
    length: int = 0  # tokens in this row's cache
    streaks: list[int] = field(default_factory=list)
    fired: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.sampling.seed)
        self.streaks = [0] * len(self.rules)
        self.fired = [False] * len(self.rules)
        self.steering.record |= self.detect_points | {r.detector.hook_point for r in self.rules}


@dataclass
class Group:
    """The rows decoding on one model, and their caches."""

    model: LoadedModel
    rows: list[Row] = field(default_factory=list)
    cache: Any = None  # DynamicCache [B, H, width, D] per layer, or a recurrent state [B, d]
    width: int = 0  # cache columns (LMs)

    @torch.inference_mode()
    def join(self, rows: Sequence[Row]) -> None:
        """Prefill joining rows, then add them to the batch.

        Language-model rows are prefilled together in one left-padded forward (explicit
        positions, padding masked out), each row's prompt interventions applied to its own
        tokens; the resulting cache is already in the group's layout. Recurrent rows are
        prefilled one by one (a padded step would move a shorter row's state).
        """
        if self.model.is_recurrent:
            for row in rows:
                self._join_recurrent(row)
            return
        model = self.model
        lengths = [int(r.prompt.shape[1]) for r in rows]
        width = max(lengths)
        ids, mask = pad([r.prompt[0] for r in rows], left=True)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        steerings = [r.steering if r.steering.points else None for r in rows]
        hook = row_hook(steerings, lengths, left=True)
        with hooks(model.module, sites_of(model, steerings), hook):
            out = model.module(
                input_ids=ids.to(model.device),
                attention_mask=mask.to(model.device),
                position_ids=positions.to(model.device),
                use_cache=True,
                logits_to_keep=1,  # left padding: every row's last token is the last column
            )
        for i, row in enumerate(rows):
            row.steering.decoding = True
            row.logits = out.logits[i, -1]
            row.length = lengths[i]
        if not self.rows:
            self.rows, self.cache, self.width = list(rows), out.past_key_values, width
            return
        total = max(self.width, width)
        _left_pad(self.cache, total - self.width)
        _left_pad(out.past_key_values, total - width)
        for mine, theirs in zip(self.cache.layers, out.past_key_values.layers, strict=True):
            mine.keys = torch.cat([mine.keys, theirs.keys], dim=0)
            mine.values = torch.cat([mine.values, theirs.values], dim=0)
        self.width = total
        self.rows += rows

    def _join_recurrent(self, row: Row) -> None:
        steering = row.steering
        with hooks(self.model.module, sites_of(self.model, [steering]), steering):
            logits, hidden = self.model.module(row.prompt.to(self.model.device))
        steering.decoding = True
        row.logits = logits[0, -1]
        row.length = int(row.prompt.shape[1])
        state = hidden[:, -1]
        self.cache = state if not self.rows else torch.cat([self.cache, state], dim=0)
        self.rows.append(row)

    def leave(self, gone: Sequence[Row]) -> None:
        """Drop finished or cancelled rows and the cache columns no remaining row needs."""
        keep = [i for i, r in enumerate(self.rows) if r not in gone]
        self.rows = [self.rows[i] for i in keep]
        if not self.rows:
            self.cache, self.width = None, 0
            return
        index = torch.tensor(keep, device=self.model.device)
        if self.model.is_recurrent:
            self.cache = self.cache.index_select(0, index)
            return
        width = max(r.length for r in self.rows)
        cut = self.width - width
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, cut:]
            layer.values = layer.values.index_select(0, index)[:, :, cut:]
        self.width = width

    @torch.inference_mode()
    def step(self) -> None:
        """Sample each row's next token, feed them back in one forward, report, retire rows."""
        model = self.model
        gone = [r for r in self.rows if r.cancel.is_set()]
        for row in gone:
            row.finish(list(row.new_tokens), Cancelled())
        if gone:
            self.leave(gone)
        if not self.rows:
            return
        tokens = []
        for row in self.rows:
            assert row.logits is not None
            token = sample(row.logits, row.sampling, row.generator)
            row.new_tokens.append(token)
            row.steering.recorded.clear()
            tokens.append(token)
        metrics.DECODE_STEPS.inc(len(tokens))
        ids = torch.tensor(tokens, device=model.device)[:, None]
        steerings = [r.steering if r.steering.points else None for r in self.rows]
        with hooks(model.module, sites_of(model, steerings), row_hook(steerings, None)):
            if model.is_recurrent:
                logits, hidden = model.module(ids, h0=self.cache)
                self.cache = hidden[:, -1]
            else:
                positions = torch.tensor([[r.length] for r in self.rows], device=model.device)
                mask = torch.zeros((len(self.rows), self.width + 1), dtype=torch.long)
                for i, r in enumerate(self.rows):
                    mask[i, self.width - r.length :] = 1
                out = model.module(
                    input_ids=ids,
                    attention_mask=mask.to(model.device),
                    position_ids=positions,
                    past_key_values=self.cache,
                    use_cache=True,
                )
                logits, self.cache = out.logits, out.past_key_values
                self.width += 1
        done = []
        for i, row in enumerate(self.rows):
            row.logits = logits[i, -1]
            row.length += 1
            if self._report(row):
                done.append(row)
        for row in done:
            row.finish(list(row.new_tokens), None)
        if done:
            self.leave(done)

    def _report(self, row: Row) -> bool:
        """Emit the row's newest token with its states; apply its rules. True when it is done."""
        steering = row.steering
        states = {}
        for name in steering.record:
            latest = steering.recorded[name][-1]
            states[name] = latest.reshape(-1, latest.shape[-1])[-1:].float().cpu().numpy()
        events: list[tuple[int, str]] = []
        stop = False
        for i, rule in enumerate(row.rules):
            # Rules decide this row's next token, so they are evaluated here, before it.
            result = rule.detector.detect(states[rule.detector.hook_point])
            row.streaks[i] = row.streaks[i] + 1 if result.matches[0, rule.entry] else 0
            if row.fired[i] or row.streaks[i] < rule.consecutive:
                continue
            row.fired[i] = True
            if rule.inhibit is None:
                events.append((i, "stop"))
                stop = True
            else:
                steering.add(rule.inhibit)
                events.append((i, "inhibit"))
        token = row.new_tokens[-1]
        step = len(row.new_tokens) - 1
        row.emit(Step(step, token, states, events))
        eos = None if self.model.is_recurrent else self.model.tokenizer.eos_token_id
        return (
            stop
            or len(row.new_tokens) >= row.sampling.max_new_tokens
            or (row.sampling.stop_at_eos and token == eos)
        )


class Cancelled(Exception):
    """The request was cancelled while generating."""


def _left_pad(cache: DynamicCache, n: int) -> None:
    if n <= 0:
        return
    for layer in cache.layers:
        if not isinstance(layer, DynamicLayer) or type(layer) is not DynamicLayer:
            raise NotImplementedError(f"cannot batch a {type(layer).__name__} cache")
        keys, values = layer.keys, layer.values
        assert keys is not None and values is not None
        layer.keys = torch.cat([keys.new_zeros((*keys.shape[:2], n, keys.shape[3])), keys], dim=2)
        layer.values = torch.cat(
            [values.new_zeros((*values.shape[:2], n, values.shape[3])), values], dim=2
        )


def generate_alone(
    model: LoadedModel,
    prompt: torch.Tensor,
    steering: Steering,
    sampling: Sampling,
    rules: Sequence[Rule] = (),
    detect_points: frozenset[str] = frozenset(),
    emit: Callable[[Step], None] = lambda _step: None,
) -> list[int]:
    """One row decoded to the end in the calling thread (benchmarks, tests, scripts).

    The server's rows share decode steps through the scheduler; this is the same computation
    for a single row.
    """
    outcome: list[tuple[list[int], BaseException | None]] = []
    row = Row(
        prompt=prompt.reshape(1, -1), steering=steering, sampling=sampling, rules=list(rules),
        detect_points=detect_points, emit=emit,
        finish=lambda tokens, error: outcome.append((tokens, error)), cancel=threading.Event(),
    )  # fmt: skip
    group = Group(model)
    group.join([row])
    while group.rows:
        group.step()
    new_tokens, error = outcome[0]
    if error is not None:
        raise error
    return new_tokens
