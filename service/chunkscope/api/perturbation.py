"""PerturbationService: Perturb (one forward, before/after) and Generate (streamed, with arms).

A request's interventions are its inline `interventions` followed by those of the stored presets
it names (`presets`, expanded by api/presets.py); both are checked and applied the same way, and
a fault in a preset's intervention names it as `presets[i].interventions[j]`.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from chunkscope import metrics
from chunkscope.api import tensors
from chunkscope.api.detection import Limits, segment_of
from chunkscope.api.presets import Applied, Presets, renamed
from chunkscope.engine import serving, tokens
from chunkscope.engine import steering as st
from chunkscope.engine.capture import decode_token
from chunkscope.engine.chat import ROLES, ChatText, format_chat, message_positions
from chunkscope.engine.chunks import DetectorCache, InterventionSpec, resolve
from chunkscope.engine.detection import Detector
from chunkscope.engine.loading import LoadedModel
from chunkscope.engine.registry import ModelRegistry
from chunkscope.errors import (
    ChunkscopeError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    ResourceExhausted,
)
from chunkscope_client.v1 import perturbation_pb2 as pb
from chunkscope_client.v1 import perturbation_pb2_grpc
from chunkscope_client.v1.detection_pb2 import ChunkMatch

MAX_INTERVENTIONS, MAX_TOP_K, MAX_MESSAGES = 32, 100, 256
# A single token of any vocabulary is far shorter; bounding them keeps encoding them cheap.
MAX_TARGETS, MAX_TARGET_CHARS = 256, 1024
_ARM_LABELS = ("perturbed", "control")  # metric label of each arm, by index
_MODES = {
    pb.INTERVENTION_MODE_ACTIVATE: "activate",
    pb.INTERVENTION_MODE_INHIBIT: "inhibit",
    pb.INTERVENTION_MODE_ADD: "add",
    pb.INTERVENTION_MODE_PROJECT_OUT: "project_out",
}


@dataclass(frozen=True)
class GenerateJob:
    """A validated Generate: the model, the prompt's ids, the arms, sampling and detectors."""

    name: str
    content_hash: str
    model: LoadedModel
    ids: Any  # torch.Tensor [T] of the prompt's token ids
    arms: list[serving.Arm]
    sampling: st.Sampling
    detectors: list[Detector]
    presets: tuple[Applied, ...] = ()  # the presets applied, with the versions used


def spec_of(iv: pb.Intervention, field: str) -> InterventionSpec:
    kind = iv.WhichOneof("target")
    if kind is None:
        raise InvalidArgument.field(field, "required: a chunk or a vector")
    vector = tensors.from_proto(iv.vector, f"{field}.vector") if kind == "vector" else None
    return InterventionSpec(
        mode=_MODES.get(iv.mode, ""),
        dictionary_id=iv.chunk.dictionary_id,
        entry_id=iv.chunk.entry_id,
        vector=None if vector is None else vector.astype(np.float32).reshape(vector.shape),
        hook_point=iv.hook_point,
        allow_other_hook_point=iv.allow_other_hook_point,
        alpha=iv.alpha,
        indices=tuple(iv.positions.indices),
        all_prompt=iv.positions.all_prompt,
        generated=iv.positions.generated,
    )


def _interventions(
    inline: Sequence[pb.Intervention], applied: Sequence[Applied]
) -> list[tuple[str, pb.Intervention]]:
    """(field, intervention): the inline ones, then each preset's; together at most 32."""
    if len(inline) > MAX_INTERVENTIONS:
        raise InvalidArgument.field("interventions", f"at most {MAX_INTERVENTIONS}")
    items = [(f"interventions[{i}]", iv) for i, iv in enumerate(inline)]
    for p, preset in enumerate(applied):
        items += [(f"presets[{p}].interventions[{j}]", iv)
                  for j, iv in enumerate(preset.interventions)]  # fmt: skip
    if len(items) > MAX_INTERVENTIONS:
        raise InvalidArgument.field(
            "presets",
            f"{len(inline)} inline interventions and {len(items) - len(inline)} from presets; "
            f"at most {MAX_INTERVENTIONS} together",
        )
    return items


def _offsets(model: LoadedModel, text: str, ids: Any) -> list[tuple[int, int]]:
    """Each prompt token's character span in `text` (the tokenization `ids` came from)."""
    try:
        enc = model.tokenize(text, return_offsets_mapping=True)
    except NotImplementedError:  # a slow (Python) tokenizer has no offsets
        raise FailedPrecondition(
            "positions.message_tail: this model's tokenizer reports no character offsets, so a "
            "message's tokens cannot be found; give positions.indices instead",
            reason="NO_OFFSETS",
        ) from None
    if list(enc["input_ids"]) != [int(i) for i in ids]:
        raise FailedPrecondition(
            "positions.message_tail: the tokenizer's offsets disagree with the prompt's tokens; "
            "give positions.indices instead",
            reason="NO_OFFSETS",
        )
    return [(int(s), int(e)) for s, e in enc["offset_mapping"]]


def _check_targets(targets: Any) -> None:
    if len(targets) > MAX_TARGETS:
        raise InvalidArgument.field("target_tokens", f"at most {MAX_TARGETS}")
    violations = [
        FieldViolation(f"target_tokens[{i}]", f"{len(t)} characters; give a single token")
        for i, t in enumerate(targets)
        if len(t) > MAX_TARGET_CHARS
    ]
    if violations:
        raise InvalidArgument(violations)


def _target_ids(model: LoadedModel, targets: list[str]) -> list[int]:
    """Vocabulary ids of the target tokens (it tokenizes: run it off the event loop)."""
    ids, violations = [], []
    for i, token in enumerate(targets):
        if model.is_recurrent:
            if token not in model.symbols:
                message = f"{token!r} is not one of {list(model.symbols)}"
                violations.append(FieldViolation(f"target_tokens[{i}]", message))
                continue
            ids.append(model.symbols.index(token))
            continue
        encoded = model.encode(token, add_special_tokens=False)
        if len(encoded) != 1:
            pieces = model.tokenizer.convert_ids_to_tokens(encoded)
            violations.append(FieldViolation(
                f"target_tokens[{i}]",
                f"{token!r} is {len(encoded)} tokens {pieces}; give a single token, e.g. "
                "with its leading space",
            ))  # fmt: skip
            continue
        ids.append(int(encoded[0]))
    if violations:
        raise InvalidArgument(violations)
    return ids


class PerturbationServicer(perturbation_pb2_grpc.PerturbationServiceServicer):
    def __init__(
        self,
        registry: ModelRegistry,
        cache: DetectorCache,
        max_input_tokens: int,
        max_new_tokens: int = 1024,
        presets: Presets | None = None,
    ) -> None:
        self.registry = registry
        self.presets = presets
        self.cache = cache
        self.max_input_tokens = max_input_tokens
        self.limits = Limits.of(max_input_tokens)
        self.max_new_tokens = max_new_tokens

    async def expand_presets(
        self, request: pb.PerturbRequest | pb.GenerateRequest
    ) -> list[Applied]:
        """The stored presets a request names (NOT_FOUND naming `presets[i]` when one is not)."""
        if not request.presets:
            return []
        if self.presets is None:
            raise FailedPrecondition(
                "presets: this server keeps no presets; give the interventions inline",
                reason="PRESETS_UNAVAILABLE",
            )
        return await self.presets.expand(list(request.presets))

    async def _prepare(
        self, request: pb.PerturbRequest | pb.GenerateRequest, field: str, applied: list[Applied]
    ) -> tuple[str, str, LoadedModel, Any, list[st.Action]]:
        """The model, the prompt's ids and the resolved interventions of a Perturb or Generate
        (inline ones, then those of the `applied` presets); `field` names the raw prompt
        ("input" or "prompt")."""
        model_ref = request.model
        if not model_ref.name:
            raise InvalidArgument.field("model.name", "required: a registered model's name")
        model = self.registry.ready(model_ref.name, model_ref.content_hash)
        content_hash = self.registry.get(model_ref.name).content_hash
        chat: ChatText | None = None
        symbols: tuple[str, ...] = ()
        raw: Any = request  # a PerturbRequest's input or a GenerateRequest's prompt, by `field`
        if request.messages:
            if raw.HasField(field):
                raise InvalidArgument.field(
                    "messages", f"give the prompt either as {field} or as messages, not both"
                )
            messages = self._messages(request.messages)
            add_generation_prompt = (
                request.add_generation_prompt if request.HasField("add_generation_prompt") else True
            )
            chat = await tokens.off_loop(format_chat, model, messages, model_ref.name,
                                         add_generation_prompt, field)  # fmt: skip
            text, where = chat.text, "messages"
        else:
            if request.HasField("add_generation_prompt"):
                raise InvalidArgument.field(
                    "add_generation_prompt", f"only with messages; {field} is used as it is"
                )
            segment = segment_of(getattr(request, field), model, field, 0, self.limits,
                                 "shorten it")  # fmt: skip
            text, symbols, where = segment.text, segment.symbols, field
        ids = await tokens.off_loop(st.encode_prompt, model, text, symbols,
                                    self.max_input_tokens, where)  # fmt: skip
        items = _interventions(request.interventions, applied)
        interventions = [iv for _, iv in items]
        specs = [spec_of(iv, name) for name, iv in items]
        offsets: list[tuple[int, int]] | None = None
        for i, iv in enumerate(interventions):
            if not iv.positions.HasField("message_tail"):
                continue
            where = f"{items[i][0]}.positions.message_tail"
            if chat is None:
                raise InvalidArgument.field(
                    where, f"needs the prompt as messages (a raw {field} has no messages)"
                )
            if offsets is None:
                offsets = await tokens.off_loop(_offsets, model, chat.text, ids)
            tail = iv.positions.message_tail
            found = message_positions(offsets, chat, tail.message_index, tail.count,
                                      tail.skip_last, where)  # fmt: skip
            specs[i] = replace(specs[i], indices=specs[i].indices + found)
        actions = []
        for i, spec in enumerate(specs):
            try:
                actions.append(resolve(spec, i, model, model_ref.name, content_hash, self.cache,
                                       int(ids.shape[0])))  # fmt: skip
            except ChunkscopeError as exc:
                if items[i][0] == f"interventions[{i}]":
                    raise
                raise renamed(exc, f"interventions[{i}]", items[i][0]) from None
        return model_ref.name, content_hash, model, ids, actions

    def _messages(self, messages: Any) -> list[dict[str, str]]:
        """Chat messages as the template takes them, bounded before anything is rendered."""
        if len(messages) > MAX_MESSAGES:
            raise InvalidArgument.field("messages", f"{len(messages)}; at most {MAX_MESSAGES}")
        violations = [
            FieldViolation(f"messages[{i}].role", f"{m.role[:64]!r}: use {', '.join(ROLES)}")
            for i, m in enumerate(messages)
            if m.role not in ROLES
        ]
        if violations:
            raise InvalidArgument(violations)
        fix = "shorten the messages"
        for i, m in enumerate(messages):
            tokens.check_text_bytes(m.content, self.limits.max_bytes, f"messages[{i}].content", fix)
        if sum(len(m.content) for m in messages) * 4 > self.limits.max_bytes:
            tokens.check_text_bytes("".join(m.content for m in messages), self.limits.max_bytes,
                                    "messages", fix)  # fmt: skip
        return [{"role": m.role, "content": m.content} for m in messages]

    async def Perturb(self, request: pb.PerturbRequest, context: Any) -> pb.PerturbResponse:
        if not (request.HasField("input") or request.messages):
            raise InvalidArgument.field(
                "input", "required: a text or symbol sequence (or chat messages in messages)"
            )
        applied = await self.expand_presets(request)
        await self.cache.prefetch(
            iv.chunk.dictionary_id for _, iv in _interventions(request.interventions, applied)
        )
        name, content_hash, model, ids, actions = await self._prepare(request, "input", applied)
        _check_targets(request.target_tokens)
        targets = await tokens.off_loop(_target_ids, model, list(request.target_tokens))
        if not 0 <= request.top_k <= MAX_TOP_K:
            raise InvalidArgument.field("top_k", f"must be in 0..{MAX_TOP_K} (0 = 10)")
        top_k = request.top_k or 10

        result = await serving.perturb(
            self.registry, name, content_hash, ids, actions, targets, top_k
        )
        for mode, count in result.applied.items():
            metrics.INTERVENTIONS.labels(mode).inc(count)

        def logprobs(pairs: list[tuple[int, float]]) -> list[pb.TokenLogprob]:
            return [
                pb.TokenLogprob(token=decode_token(model, i), token_id=i, logprob=lp)
                for i, lp in pairs
            ]

        return pb.PerturbResponse(
            targets_before=logprobs(list(zip(targets, result.targets_before, strict=True))),
            targets_after=logprobs(list(zip(targets, result.targets_after, strict=True))),
            top_before=logprobs(result.top_before),
            top_after=logprobs(result.top_after),
            kl_divergence=result.kl_divergence,
            applied=sum(result.applied.values()),
            forward_ns=result.forward_ns,
        )

    async def prepare_generate(self, request: pb.GenerateRequest) -> GenerateJob:
        """Validate a GenerateRequest and resolve it into a job (the same for every front)."""
        if not (request.HasField("prompt") or request.messages):
            raise InvalidArgument.field(
                "prompt", "required: a text or symbol sequence (or chat messages in messages)"
            )
        applied = await self.expand_presets(request)
        await self.cache.prefetch([  # dictionary loads (sha256 of the tensors) off the event loop
            *(iv.chunk.dictionary_id for _, iv in _interventions(request.interventions, applied)),
            *request.detect_dictionary_ids,
            *(d for r in request.rules for d in (r.when.dictionary_id, r.inhibit.dictionary_id)),
        ])  # fmt: skip
        name, content_hash, model, ids, actions = await self._prepare(request, "prompt", applied)
        sampling = self._sampling(request.sampling)
        if int(ids.shape[0]) + sampling.max_new_tokens > self.max_input_tokens:
            raise ResourceExhausted(
                f"prompt ({int(ids.shape[0])} tokens) plus sampling.max_new_tokens "
                f"({sampling.max_new_tokens}) exceeds this server's {self.max_input_tokens} "
                "(--max-input-tokens)",
                reason="INPUT_TOO_LONG",
            )
        detectors = [
            self.cache.get(d, name, content_hash, model, f"detect_dictionary_ids[{i}]")
            for i, d in enumerate(request.detect_dictionary_ids)
        ]
        rules = [self._rule(r, i, model, name, content_hash) for i, r in enumerate(request.rules)]
        arms = [serving.Arm(actions, rules)]
        if request.control:
            arms.append(serving.Arm([], []))
        return GenerateJob(name, content_hash, model, ids, arms, sampling, detectors,
                           tuple(applied))  # fmt: skip

    async def run_generate(
        self, job: GenerateJob
    ) -> AsyncGenerator[serving.Token | serving.Finished, None]:
        """The engine's events of a prepared job, in the scheduler's order, metrics recorded."""
        name = job.name
        began = time.perf_counter()
        last_token = [0.0] * len(job.arms)  # when each arm's latest token came
        generation = serving.generate(
            self.registry, name, job.content_hash, job.ids, job.arms, job.sampling, job.detectors
        )
        async with aclosing(generation) as events:
            async for event in events:
                now = time.perf_counter()
                if isinstance(event, serving.Token):
                    metrics.GENERATED_TOKENS.labels(_ARM_LABELS[event.arm]).inc()
                    if last_token[event.arm]:
                        metrics.GENERATE_INTER_TOKEN_SECONDS.labels(name).observe(
                            now - last_token[event.arm]
                        )
                    else:
                        metrics.GENERATE_TTFT_SECONDS.labels(name).observe(now - began)
                    last_token[event.arm] = now
                else:
                    for mode, count in event.applied.items():
                        metrics.INTERVENTIONS.labels(mode).inc(count)
                    if event.new_tokens and now > began:
                        metrics.GENERATE_TOKENS_PER_SECOND.labels(name).observe(
                            len(event.new_tokens) / (now - began)
                        )
                yield event

    async def Generate(
        self, request: pb.GenerateRequest, context: Any
    ) -> AsyncIterator[pb.GenerateResponse]:
        job = await self.prepare_generate(request)
        # The arms decode side by side; the stream keeps the perturbed arm's messages first and
        # the control arm's after it (held until the perturbed arm is done).
        held: list[pb.GenerateResponse] = []
        first_done = False
        async with aclosing(self.run_generate(job)) as events:
            async for event in events:
                arm = (pb.ARM_PERTURBED, pb.ARM_CONTROL)[event.arm]
                if isinstance(event, serving.Token):
                    message = pb.GenerateResponse(
                        arm=arm, step=event.step, token=event.token, token_id=event.token_id,
                        matches=[ChunkMatch(dictionary_id=d.id, entry_id=k, label=d.labels[k],
                                            score=score, threshold=float(d.thresholds[k]))
                                 for d, k, score in event.matches],
                        rule_events=[pb.RuleEvent(rule_index=i, step=event.step, action=a)
                                     for i, a in event.rule_events],
                    )  # fmt: skip
                else:
                    message = pb.GenerateResponse(
                        arm=arm, step=len(event.new_tokens), text=event.text, done=True
                    )
                if event.arm == 0 or first_done:
                    yield message
                else:
                    held.append(message)
                if event.arm == 0 and isinstance(event, serving.Finished):
                    first_done = True
                    for message in held:
                        yield message
                    held.clear()

    def _sampling(self, s: pb.SamplingParams) -> st.Sampling:
        violations = []
        if s.max_new_tokens < 0:
            violations.append(FieldViolation("sampling.max_new_tokens", "must be >= 0 (0 = 32)"))
        elif s.max_new_tokens > self.max_new_tokens:
            raise ResourceExhausted(
                f"sampling.max_new_tokens: {s.max_new_tokens} is more than this server's "
                f"{self.max_new_tokens} (--max-new-tokens)",
                reason="TOO_MANY_NEW_TOKENS",
                metadata={"limit": str(self.max_new_tokens)},
            )
        if not (math.isfinite(s.temperature) and 0 <= s.temperature <= 10):
            violations.append(
                FieldViolation("sampling.temperature", "must be in 0..10 (0 = greedy)")
            )
        if not (math.isfinite(s.top_p) and 0 <= s.top_p <= 1):
            violations.append(FieldViolation("sampling.top_p", "must be in 0..1"))
        if s.top_k < 0:
            violations.append(FieldViolation("sampling.top_k", "must be >= 0"))
        if violations:
            raise InvalidArgument(violations)
        return st.Sampling(s.max_new_tokens or 32, s.temperature, s.top_p, s.top_k, s.seed,
                           s.stop_at_eos)  # fmt: skip

    def _rule(self, r: pb.DetectionRule, i: int, model: LoadedModel, name: str,
              content_hash: str) -> st.Rule:  # fmt: skip
        field = f"rules[{i}]"
        detector = self.cache.get(r.when.dictionary_id, name, content_hash, model,
                                  f"{field}.when.dictionary_id")  # fmt: skip
        if not 0 <= r.when.entry_id < len(detector.labels):
            raise InvalidArgument.field(f"{field}.when.entry_id", "not an entry of that dictionary")
        if not 0 <= r.consecutive_tokens <= 1024:
            raise InvalidArgument.field(f"{field}.consecutive_tokens", "must be in 0..1024")
        action = r.WhichOneof("action")
        if action is None or (action == "stop" and not r.stop):
            raise InvalidArgument.field(f"{field}.action", "required: inhibit a chunk or stop")
        inhibit = None
        if action == "inhibit":
            spec = InterventionSpec("inhibit", r.inhibit.dictionary_id, r.inhibit.entry_id,
                                    generated=True)  # fmt: skip
            inhibit = resolve(spec, i, model, name, content_hash, self.cache, 1)
        return st.Rule(detector, r.when.entry_id, r.consecutive_tokens or 1, inhibit)
