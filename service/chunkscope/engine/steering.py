"""Interventions during a forward pass or generation: actions, per-row hooks, sampling.

An intervention is data: where (hook point, positions), what (the entry's neurons and values, or a
direction) and how (activate, inhibit, add, project_out). `Steering` turns a request's
interventions into one hook function that knows whether the model is reading the prompt or
generating, so prompt positions apply in the prefill pass and `generated` ones on every new token.
Hooks are registered for the forwards that need them only (engine/hooks.py removes them in
`finally`); in a batch, `row_hook` gives each row's steering its own row alone. The generation
loop is engine/decoding.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from chunkscope.engine.adapters import HookSite
from chunkscope.engine.capture import pad
from chunkscope.engine.detection import Detector
from chunkscope.engine.hooks import HookFn, hooks
from chunkscope.engine.loading import LoadedModel
from chunkscope.errors import ResourceExhausted

MODES = ("activate", "inhibit", "add", "project_out")


@dataclass(frozen=True)
class Action:
    """A resolved intervention (positions already checked against the prompt)."""

    hook_point: str
    mode: str
    direction: np.ndarray  # unit vector [d] (add, project_out, inhibit of vector chunks)
    neurons: np.ndarray | None = None  # PA: the entry's neurons C (activate/inhibit act on them)
    values: np.ndarray | None = None  # activate: values for `neurons`, or a full [d] vector
    scale_to_norm: bool = False  # cosine atoms are unit vectors: activate keeps h's norm
    center: np.ndarray | None = None  # project_out removes the component of h - center
    alpha: float = 0.0
    prompt_positions: tuple[int, ...] = ()
    generated: bool = False


def apply(action: Action, h: torch.Tensor) -> torch.Tensor:
    """The intervened copy of h ([n, d] rows at the chosen positions)."""
    out = h.clone()
    direction = torch.as_tensor(action.direction, dtype=h.dtype, device=h.device)
    if action.mode == "activate":
        assert action.values is not None
        values = torch.as_tensor(action.values, dtype=h.dtype, device=h.device)
        if action.neurons is not None:
            out[:, torch.as_tensor(action.neurons, device=h.device)] = values
        elif action.scale_to_norm:
            out[:] = h.norm(dim=-1, keepdim=True) * values
        else:
            out[:] = values
    elif action.mode == "inhibit" and action.neurons is not None:
        out[:, torch.as_tensor(action.neurons, device=h.device)] = 0
    elif action.mode == "add":
        out += action.alpha * direction
    else:  # project_out, and inhibit of a vector chunk
        # Measured from the states' center: from the origin, the large component every token
        # shares would be "removed" too, pushing h along the direction instead of neutralising it.
        offset = out
        if action.center is not None:
            offset = out - torch.as_tensor(action.center, dtype=h.dtype, device=h.device)
        out -= (offset @ direction)[:, None] * direction
    return out


@dataclass
class Steering:
    """The hook function of one request: applies its actions, records states if asked."""

    actions: list[Action]
    prompt_length: int
    recurrent: bool
    record: set[str] = field(default_factory=set)  # hook points whose states to keep
    decoding: bool = False
    applied: dict[str, int] = field(default_factory=dict)  # positions intervened on, by mode
    recorded: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    _rnn_step: int = 0

    @property
    def points(self) -> set[str]:
        """Hook points this steering acts on or records."""
        return {a.hook_point for a in self.actions} | self.record

    def add(self, action: Action) -> None:
        """Apply `action` from now on (a rule's inhibition, mid-generation)."""
        self.actions.append(action)

    def __call__(self, name: str, tensor: torch.Tensor) -> torch.Tensor | None:
        out = tensor
        if self.recurrent:
            # rnn.hidden fires once per step with [B, d]; count steps to know the position.
            position = self._rnn_step
            self._rnn_step += 1
            in_prompt = position < self.prompt_length and not self.decoding
            for action in self.actions:
                if action.hook_point != name:
                    continue
                hit = position in action.prompt_positions if in_prompt else action.generated
                if hit:
                    out = apply(action, out)
                    self.applied[action.mode] = self.applied.get(action.mode, 0) + 1
        else:
            for action in self.actions:
                if action.hook_point != name:
                    continue
                if self.decoding:
                    positions = list(range(out.shape[1])) if action.generated else []
                else:
                    positions = list(action.prompt_positions)
                if positions:
                    out = out.clone() if out is tensor else out
                    rows = out[:, positions, :].reshape(-1, out.shape[-1])
                    out[:, positions, :] = apply(action, rows).reshape(
                        out.shape[0], len(positions), -1
                    )
                    count = len(positions) * out.shape[0]
                    self.applied[action.mode] = self.applied.get(action.mode, 0) + count
        if name in self.record:
            self.recorded.setdefault(name, []).append(out.detach())
        return None if out is tensor else out


# ----- forward passes ---------------------------------------------------------------------------


def encode_prompt(
    model: LoadedModel, text: str, symbols: tuple[str, ...], limit: int, field: str
) -> torch.Tensor:
    """Token ids [T] (CPU) of a prompt; RESOURCE_EXHAUSTED when it has more than `limit` tokens.

    It tokenizes the whole prompt: callers bound its bytes first and run it off the event loop.
    """
    if model.is_recurrent:
        ids = model.module.encode(list(symbols))  # type: ignore[operator]
    else:
        ids = model.tokenize(text, return_tensors="pt")["input_ids"][0]
    if ids.shape[0] > limit:
        raise ResourceExhausted(
            f"{field} has {ids.shape[0]} tokens; this server accepts at most {limit} per input "
            "(--max-input-tokens): shorten it",
            reason="INPUT_TOO_LONG",
        )
    return ids


def row_hook(
    steerings: Sequence[Steering | None],
    lengths: Sequence[int] | None,
    recurrent: bool = False,
    left: bool = False,
) -> HookFn:
    """One hook function for a batch: each row's steering sees only its own row.

    `lengths`: row i's real tokens are its first lengths[i] (right padding), or its last with
    `left` padding; None when every row is one token (a decode step). A recurrent hook point
    fires once per step with [B, d]: there the steps a row does not have (its padding) are
    skipped, so its steering counts and acts on its own steps only.
    """
    steps: dict[str, int] = {}

    def fn(name: str, tensor: torch.Tensor) -> torch.Tensor | None:
        step = steps.get(name, 0)
        steps[name] = step + 1
        out = tensor
        for i, steering in enumerate(steerings):
            if steering is None or name not in steering.points:
                continue
            if recurrent and lengths is not None and step >= lengths[i]:
                continue
            if recurrent or lengths is None:
                span = slice(None)
            elif left:
                span = slice(out.shape[1] - lengths[i], None)
            else:
                span = slice(0, lengths[i])
            new = steering(name, out[i : i + 1, span])
            if new is not None:
                if out is tensor:
                    out = tensor.clone()
                out[i : i + 1, span] = new
        return None if out is tensor else out

    return fn


def sites_of(model: LoadedModel, steerings: Sequence[Steering | None]) -> dict[str, HookSite]:
    names = set().union(*(s.points for s in steerings if s is not None))
    return {n: model.adapter.resolve(n) for n in sorted(names)}


@torch.inference_mode()
def last_logprobs(
    model: LoadedModel, rows: list[torch.Tensor], steerings: list[Steering | None]
) -> list[torch.Tensor]:
    """log p(next token | row) [V] for each row of one right-padded forward (device work).

    Each row's steering (or None) applies to that row only.
    """
    tokens, mask = pad(rows)
    lengths = [int(r.shape[0]) for r in rows]
    active = [s if s is not None and s.points else None for s in steerings]
    hook = row_hook(active, lengths, model.is_recurrent)
    with hooks(model.module, sites_of(model, active), hook):
        if model.is_recurrent:
            logits, _ = model.module(tokens.to(model.device))
        else:
            logits = model.module(
                input_ids=tokens.to(model.device), attention_mask=mask.to(model.device),
                use_cache=False,
            ).logits  # fmt: skip
    last = logits[torch.arange(len(rows)), torch.tensor(lengths) - 1]
    return list(torch.log_softmax(last.float(), dim=-1).cpu())


@dataclass(frozen=True)
class PerturbResult:
    targets_before: list[float]
    targets_after: list[float]
    top_before: list[tuple[int, float]]
    top_after: list[tuple[int, float]]
    kl_divergence: float
    applied: dict[str, int]
    forward_ns: int


def compare(
    before: torch.Tensor, after: torch.Tensor, steering: Steering, targets: list[int],
    top_k: int, forward_ns: int,
) -> PerturbResult:  # fmt: skip
    """What the interventions changed in the next-token distribution (host work)."""
    kl = float(torch.sum(before.exp() * (before - after)))

    def top(values: torch.Tensor) -> list[tuple[int, float]]:
        best = torch.topk(values, min(top_k, values.numel()))
        return list(zip(best.indices.tolist(), best.values.tolist(), strict=True))

    return PerturbResult(
        [float(before[t]) for t in targets], [float(after[t]) for t in targets],
        top(before), top(after), kl if math.isfinite(kl) else float("inf"),
        steering.applied, forward_ns,
    )  # fmt: skip


# ----- generation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int
    temperature: float
    top_p: float
    top_k: int
    seed: int
    stop_at_eos: bool


def sample(logits: torch.Tensor, s: Sampling, generator: torch.Generator) -> int:
    """One token from [V] logits: greedy at temperature 0, else top-k / top-p sampling."""
    if s.temperature <= 0:
        return int(torch.argmax(logits))
    scores = logits.double() / s.temperature
    if not math.isfinite(float(scores.max())):
        # A temperature so small the division overflows: its limit, greedy decoding.
        return int(torch.argmax(logits))
    if s.top_k > 0:
        kth = torch.topk(scores, min(s.top_k, scores.numel())).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if 0 < s.top_p < 1:
        ordered, order = torch.sort(scores, descending=True)
        cumulative = torch.softmax(ordered, dim=-1).cumsum(dim=-1)
        drop = cumulative - torch.softmax(ordered, dim=-1) >= s.top_p  # keep the first over top_p
        scores[order[drop]] = float("-inf")
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))


@dataclass(frozen=True)
class Rule:
    """When `watch` (dictionary, entry) fires on `consecutive` generated tokens, act."""

    detector: Detector
    entry: int
    consecutive: int
    inhibit: Action | None  # None means stop
