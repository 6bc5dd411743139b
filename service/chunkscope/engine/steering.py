"""Interventions during a forward pass or generation, and the generation loop itself.

An intervention is data: where (hook point, positions), what (the entry's neurons and values, or a
direction) and how (activate, inhibit, add, project_out). `Steering` turns a request's
interventions into one hook function that knows whether the model is reading the prompt or
generating, so prompt positions apply in the prefill pass and `generated` ones on every new token.
Hooks are registered for one request's forwards only (engine/hooks.py removes them in `finally`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from chunkscope import metrics
from chunkscope.engine.capture import decode_token
from chunkscope.engine.detection import Detector
from chunkscope.engine.hooks import hooks
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

    def hook_points(self) -> set[str]:
        return {a.hook_point for a in self.actions} | self.record

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
    """Token ids [1, T] of a prompt; RESOURCE_EXHAUSTED when it has more than `limit` tokens.

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
    return ids[None, :].to(model.device)


@torch.inference_mode()
def next_token_logprobs(
    model: LoadedModel, ids: torch.Tensor, steering: Steering | None
) -> torch.Tensor:
    """log p(next token | ids) [V], with the steering hooks when given."""

    def forward() -> torch.Tensor:
        if model.is_recurrent:
            logits, _ = model.module(ids)
            return logits[0, -1]
        return model.module(input_ids=ids).logits[0, -1]

    if steering is None:
        logits = forward()
    else:
        sites = {n: model.adapter.resolve(n) for n in steering.hook_points()}
        with hooks(model.module, sites, steering):
            logits = forward()
    return torch.log_softmax(logits.float(), dim=-1)


@dataclass(frozen=True)
class PerturbResult:
    targets_before: list[float]
    targets_after: list[float]
    top_before: list[tuple[int, float]]
    top_after: list[tuple[int, float]]
    kl_divergence: float
    applied: dict[str, int]
    forward_ns: int


def perturb(
    model: LoadedModel, ids: torch.Tensor, actions: list[Action], targets: list[int], top_k: int
) -> PerturbResult:
    """Next-token log-probabilities without and with the interventions (compute thread)."""
    started = time.perf_counter_ns()
    before = next_token_logprobs(model, ids, None)
    steering = Steering(list(actions), int(ids.shape[1]), model.is_recurrent)
    after = next_token_logprobs(model, ids, steering)
    elapsed = time.perf_counter_ns() - started
    kl = float(torch.sum(before.exp() * (before - after)))

    def top(values: torch.Tensor) -> list[tuple[int, float]]:
        best = torch.topk(values, min(top_k, values.numel()))
        return list(zip(best.indices.tolist(), best.values.tolist(), strict=True))

    return PerturbResult(
        [float(before[t]) for t in targets], [float(after[t]) for t in targets],
        top(before), top(after), kl if math.isfinite(kl) else float("inf"),
        steering.applied, elapsed,
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


@dataclass
class Step:
    step: int
    token_id: int
    token: str
    matches: list[tuple[Detector, int, float]]
    rule_events: list[tuple[int, str]]


class Cancelled(Exception):
    """The request was cancelled while generating."""


@torch.inference_mode()
def generate(
    model: LoadedModel,
    prompt: torch.Tensor,
    steering: Steering,
    sampling: Sampling,
    detectors: list[Detector],
    rules: list[Rule],
    emit: Callable[[Step], None],
    cancel: threading.Event,
) -> list[int]:
    """Generate up to max_new_tokens, calling `emit` per token; returns the new token ids.

    Detection and rules look at each new token's state at their hook points (after the
    interventions), computed when the token is fed back to the model.
    """
    generator = torch.Generator().manual_seed(sampling.seed)
    steering.record |= {d.hook_point for d in detectors} | {r.detector.hook_point for r in rules}
    sites = {n: model.adapter.resolve(n) for n in steering.hook_points()}
    eos = None if model.is_recurrent else model.tokenizer.eos_token_id
    streaks = [0] * len(rules)
    fired = [False] * len(rules)
    new_tokens: list[int] = []
    with hooks(model.module, sites, steering):
        logits, state = _prefill(model, prompt)
        steering.decoding = True
        for step in range(sampling.max_new_tokens):
            if cancel.is_set():
                raise Cancelled
            token = sample(logits, sampling, generator)
            metrics.DECODE_STEPS.inc()
            new_tokens.append(token)
            steering.recorded.clear()
            logits, state = _decode(model, token, state)
            matches = _detect_new(steering, detectors)
            events = []
            stop = False
            for i, rule in enumerate(rules):
                hits = _fires(steering, rule)
                streaks[i] = streaks[i] + 1 if hits else 0
                if fired[i] or streaks[i] < rule.consecutive:
                    continue
                fired[i] = True
                if rule.inhibit is None:
                    events.append((i, "stop"))
                    stop = True
                else:
                    steering.actions.append(rule.inhibit)
                    events.append((i, "inhibit"))
            emit(Step(step, token, decode_token(model, token), matches, events))
            if stop or (sampling.stop_at_eos and token == eos):
                break
    return new_tokens


def _prefill(model: LoadedModel, prompt: torch.Tensor) -> tuple[torch.Tensor, object]:
    if model.is_recurrent:
        logits, hidden = model.module(prompt)
        return logits[0, -1], hidden[:, -1]
    out = model.module(input_ids=prompt, use_cache=True)
    return out.logits[0, -1], out.past_key_values


def _decode(model: LoadedModel, token: int, state: object) -> tuple[torch.Tensor, object]:
    ids = torch.tensor([[token]], device=model.device)
    if model.is_recurrent:
        logits, hidden = model.module(ids, h0=state)
        return logits[0, -1], hidden[:, -1]
    out = model.module(input_ids=ids, past_key_values=state, use_cache=True)
    return out.logits[0, -1], out.past_key_values


def _latest(steering: Steering, hook_point: str) -> np.ndarray:
    state = steering.recorded[hook_point][-1]
    return state.reshape(-1, state.shape[-1])[-1:].float().cpu().numpy()


def _detect_new(steering: Steering, detectors: list[Detector]) -> list[tuple[Detector, int, float]]:
    found = []
    for detector in detectors:
        result = detector.detect(_latest(steering, detector.hook_point))
        for entry in np.nonzero(result.matches[0])[0].tolist():
            found.append((detector, entry, float(result.scores[0, entry])))
    return found


def _fires(steering: Steering, rule: Rule) -> bool:
    result = rule.detector.detect(_latest(steering, rule.detector.hook_point))
    return bool(result.matches[0, rule.entry])
