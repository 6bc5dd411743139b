"""DetectionService: Detect (batch) and StreamDetect (monitoring streams)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chunkscope import metrics
from chunkscope.engine import serving, streams, tokens
from chunkscope.engine.capture import Segment, decode_token, token_count
from chunkscope.engine.chunks import DetectorCache
from chunkscope.engine.detection import Detector, InputDetection
from chunkscope.engine.loading import LoadedModel
from chunkscope.engine.registry import ModelRegistry
from chunkscope.errors import FieldViolation, InvalidArgument, ResourceExhausted
from chunkscope_client.v1 import detection_pb2 as pb
from chunkscope_client.v1 import detection_pb2_grpc

# 64 dictionaries: every hook point of a multi-hook dictionary set (say each block's resid_post
# of a 30-block model, with its resid_pre too) in one request, so one forward per input.
MAX_INPUTS, MAX_DICTIONARIES = 256, 64
MAX_TOKENS = 1 << 16


@dataclass
class Plan:
    """A validated DetectionConfig: the model, its detectors and the output options."""

    model_name: str
    content_hash: str
    model: LoadedModel
    detectors: list[Detector]
    keep: list[np.ndarray]  # per detector, the entry ids reported
    positives_only: bool
    summary_only: bool
    max_tokens: int
    state_sequences: bool = False  # DSC: each input's state sequence per sequence dictionary


def plan(config: pb.DetectionConfig, registry: ModelRegistry, cache: DetectorCache,
         field: str = "config") -> Plan:  # fmt: skip
    if not config.model.name:
        raise InvalidArgument.field(f"{field}.model.name", "required: a registered model's name")
    ids = list(config.dictionary_ids)
    violations = []
    if not ids:
        violations.append(FieldViolation(f"{field}.dictionary_ids", "required: at least one"))
    if len(ids) > MAX_DICTIONARIES:
        violations.append(FieldViolation(f"{field}.dictionary_ids", f"at most {MAX_DICTIONARIES}"))
    if len(set(ids)) != len(ids):
        violations.append(FieldViolation(f"{field}.dictionary_ids", "lists a dictionary twice"))
    if not 0 <= config.max_tokens <= MAX_TOKENS:
        violations.append(FieldViolation(f"{field}.max_tokens", f"must be in 0..{MAX_TOKENS}"))
    if violations:
        raise InvalidArgument(violations)
    model = registry.ready(config.model.name, config.model.content_hash)
    content_hash = registry.get(config.model.name).content_hash
    detectors = [
        cache.get(d, config.model.name, content_hash, model, f"{field}.dictionary_ids[{i}]")
        for i, d in enumerate(ids)
    ]
    wanted = set(config.labels)
    keep = [
        np.asarray(
            [k for k, label in enumerate(d.labels) if not wanted or label in wanted],
            dtype=np.int64,  # integer even when empty: a PA dictionary may hold no entries
        )
        for d in detectors
    ]
    known = {label for d in detectors for label in d.labels}
    if wanted - known:
        raise InvalidArgument.field(
            f"{field}.labels", f"no entry is labelled {sorted(wanted - known)[:5]} in these "
            "dictionaries",
        )  # fmt: skip
    max_tokens = config.max_tokens or (1 << 22)  # default: whole inputs, within the server limit
    return Plan(config.model.name, content_hash, model, detectors, keep, config.positives_only,
                config.summary_only, max_tokens, config.include_state_sequences)  # fmt: skip


def segment_of(item: pb.DetectInput, model: LoadedModel, field: str, index: int, limits: Limits,
               fix: str, truncate_at: int = 0) -> Segment:  # fmt: skip
    """The input as a Segment, bounded before anything costly: texts by bytes, symbols by count.

    With `truncate_at` (config.max_tokens) a symbol sequence is cut there, as the forward would.
    """
    kind = item.WhichOneof("content")
    if model.is_recurrent:
        if kind != "symbols" or not item.symbols.symbols:
            raise InvalidArgument.field(field, "required: a non-empty symbol sequence")
        symbols: Sequence[str] = item.symbols.symbols
        if truncate_at:
            symbols = symbols[:truncate_at]
        elif len(symbols) > limits.max_tokens:
            raise too_many_tokens(field, len(symbols), limits.max_tokens, fix)
        unknown = sorted(set(symbols) - set(model.symbols))
        if unknown:
            raise InvalidArgument.field(
                field,
                f"unknown symbols {unknown[:5]}; the model's symbols are {list(model.symbols)}",
            )
        return Segment(index, symbols=tuple(symbols))
    if kind != "text":
        raise InvalidArgument.field(field, "required: a non-empty text")
    tokens.check_text_bytes(item.text, limits.max_bytes, field, fix)
    if not item.text.strip():
        raise InvalidArgument.field(field, "required: a non-empty text")
    return Segment(index, 0, item.text)


@dataclass(frozen=True)
class Limits:
    """What one input may hold: tokens (--max-input-tokens) and, checked first, text bytes."""

    max_tokens: int
    max_bytes: int

    @classmethod
    def of(cls, max_input_tokens: int) -> Limits:
        return cls(max_input_tokens, tokens.byte_limit(max_input_tokens))


def too_many_tokens(field: str, n: int, limit: int, fix: str) -> ResourceExhausted:
    return ResourceExhausted(
        f"{field} has {n} tokens; this server accepts at most {limit} per input "
        f"(--max-input-tokens): {fix}",
        reason="INPUT_TOO_LONG",
        metadata={"limit": str(limit)},
    )


def result_proto(p: Plan, found: InputDetection, base: int = 0) -> pb.DetectResult:
    """Per-token matches and per-entry summaries of one input's tokens.

    `base` is the position of the first of them in their input (a StreamDetect message reports
    the tokens of a longer input).
    """
    n = len(found.token_ids)
    tokens = []
    summaries = []
    for detector, keep, det in zip(p.detectors, p.keep, found.results, strict=True):
        matches = det.matches[:, keep]
        scores = det.scores[:, keep]
        fired_tokens = int(matches.sum())
        if fired_tokens:
            metrics.DETECTIONS.labels(detector.id).inc(fired_tokens)
        per_concept: dict[str, int] = {}  # every entry, whatever the request reports
        for label, count in zip(detector.labels, det.matches.sum(axis=0).tolist(), strict=True):
            per_concept[label] = per_concept.get(label, 0) + int(count)
        metrics.CONCEPTS.observe(p.model_name, detector.id, n, per_concept)
        for j, k in enumerate(keep.tolist()):
            hits = np.nonzero(matches[:, j])[0]
            column = scores[:, j]
            best = (
                float(column.max() if det.higher_is_better else column.min())
                if column.size
                else 0.0
            )
            summaries.append(pb.ChunkSummary(
                dictionary_id=detector.id, entry_id=k, label=detector.labels[k],
                fired=bool(hits.size), count=int(hits.size), best_score=best,
                first_position=int(hits[0]) + base if hits.size else -1,
            ))  # fmt: skip
    if not p.summary_only:
        for t in range(n):
            token_matches = [
                pb.ChunkMatch(
                    dictionary_id=detector.id,
                    entry_id=int(k),
                    label=detector.labels[k],
                    score=float(det.scores[t, k]),
                    threshold=float(detector.thresholds[k]),
                )
                for detector, keep, det in zip(p.detectors, p.keep, found.results, strict=True)
                for k in keep.tolist()
                if det.matches[t, k]
            ]
            if p.positives_only and not token_matches:
                continue
            s, e = found.offsets[t] if found.offsets else (0, 0)
            tokens.append(pb.TokenResult(
                position=base + t, token=decode_token(p.model, int(found.token_ids[t])),
                char_start=s, char_end=e, matches=token_matches,
            ))  # fmt: skip
    occurrences, sequences = _sequence_results(p, found, base)
    return pb.DetectResult(n_tokens=n, tokens=tokens, summaries=summaries,
                           occurrences=occurrences, state_sequences=sequences)  # fmt: skip


def _sequence_results(
    p: Plan, found: InputDetection, base: int
) -> tuple[list[pb.ChunkOccurrence], list[pb.StateSequence]]:
    """DSC: the chunk occurrences (of the entries reported) and, if asked, the state sequences."""
    occurrences: list[pb.ChunkOccurrence] = []
    sequences: list[pb.StateSequence] = []
    for detector, keep, det in zip(p.detectors, p.keep, found.results, strict=True):
        if det.spans is not None and not p.summary_only:
            wanted = set(keep.tolist())
            for s in det.spans:
                if s.entry in wanted:
                    occurrences.append(pb.ChunkOccurrence(
                        dictionary_id=detector.id, entry_id=s.entry,
                        label=detector.labels[s.entry], start=base + s.start, end=base + s.end,
                    ))  # fmt: skip
        if det.states is not None and p.state_sequences:
            sequences.append(pb.StateSequence(
                dictionary_id=detector.id, start=base, state_ids=det.states.tolist()
            ))  # fmt: skip
    return occurrences, sequences


# The fix each refusal names: truncating (config.max_tokens) helps with tokens, not with bytes.
_SPLIT_TEXT = "split it into several inputs"
_SPLIT = f"{_SPLIT_TEXT}, or set config.max_tokens to truncate"
_SPLIT_MESSAGE = "split it into several messages (continues=true keeps the context)"


class DetectionServicer(detection_pb2_grpc.DetectionServiceServicer):
    def __init__(
        self,
        registry: ModelRegistry,
        cache: DetectorCache,
        max_input_tokens: int,
        max_inputs: int = MAX_INPUTS,
    ) -> None:
        self.registry = registry
        self.cache = cache
        self.limits = Limits.of(max_input_tokens)
        self.max_inputs = max_inputs

    def _truncate_at(self, p: Plan) -> int:
        """config.max_tokens where it truncates within the server's limit; 0: inputs are whole."""
        return p.max_tokens if p.max_tokens <= self.limits.max_tokens else 0

    def _check_tokens(self, p: Plan, segments: list[Segment], fields: list[str], fix: str) -> None:
        """INPUT_TOO_LONG for a whole input over the limit (it tokenizes: run it off the loop)."""
        for seg, field in zip(segments, fields, strict=True):
            n = token_count(p.model, seg)
            if n > self.limits.max_tokens:
                raise too_many_tokens(field, n, self.limits.max_tokens, fix)

    async def _detect(
        self, p: Plan, segments: list[Segment], fields: list[str], fix: str
    ) -> tuple[list[InputDetection], int]:
        if not self._truncate_at(p) and not p.model.is_recurrent:  # counted in segment_of if so
            await tokens.off_loop(self._check_tokens, p, segments, fields, fix)
        return await serving.detect(
            self.registry, p.model_name, p.content_hash, p.detectors, segments, p.max_tokens
        )

    async def Detect(self, request: pb.DetectRequest, context: Any) -> pb.DetectResponse:
        if not request.HasField("config"):
            raise InvalidArgument.field("config", "required: model and dictionary_ids")
        await self.cache.prefetch(request.config.dictionary_ids)  # loads off the event loop
        p = plan(request.config, self.registry, self.cache)
        if not request.inputs:
            raise InvalidArgument.field("inputs", "required: at least one input")
        if len(request.inputs) > self.max_inputs:
            raise ResourceExhausted(
                f"inputs: {len(request.inputs)} inputs; this server takes at most "
                f"{self.max_inputs} per request (--max-inputs-per-request): split the batch",
                reason="TOO_MANY_INPUTS",
                metadata={"limit": str(self.max_inputs)},
            )
        fields = [f"inputs[{i}]" for i in range(len(request.inputs))]
        segments = [
            segment_of(item, p.model, fields[i], i, self.limits, _SPLIT_TEXT, self._truncate_at(p))
            for i, item in enumerate(request.inputs)
        ]
        found, elapsed = await self._detect(p, segments, fields, _SPLIT)
        return pb.DetectResponse(results=[result_proto(p, f) for f in found], forward_ns=elapsed)

    async def StreamDetect(
        self, request_iterator: AsyncIterator[pb.StreamDetectRequest], context: Any
    ) -> AsyncIterator[pb.StreamDetectResponse]:
        """Each input message is detected as it comes; `continues` extends the previous input.

        The input's state lives in the engine (engine/streams.py): a continued message runs
        only its new tokens against the cached context, and the context slides once the input
        passes its window (config.max_tokens, or --max-input-tokens). One message is bounded
        like one input: by bytes, and by tokens unless config.max_tokens cuts it.
        """
        p: Plan | None = None
        stream: streams.DetectStream | None = None
        sequence = 0
        async for message in request_iterator:
            kind = message.WhichOneof("message")
            if p is None:
                if kind != "config":
                    raise InvalidArgument.field("config", "the first message must carry the config")
                await self.cache.prefetch(message.config.dictionary_ids)
                p = plan(message.config, self.registry, self.cache)
                truncate_at = self._truncate_at(p)
                stream = streams.open_stream(
                    self.registry, p.model_name, p.content_hash, p.detectors,
                    window=truncate_at or self.limits.max_tokens, truncate=bool(truncate_at),
                )  # fmt: skip
                continue
            assert stream is not None
            field = f"message[{sequence + 1}].input"
            if kind != "input":
                raise InvalidArgument.field(field, "after the config, send inputs only")
            segment = segment_of(message.input, p.model, field, sequence, self.limits,
                                 _SPLIT_MESSAGE, self._truncate_at(p))  # fmt: skip
            try:
                reply = await stream.feed(segment, message.continues)
            except streams.TooManyTokens as exc:
                raise too_many_tokens(field, exc.n, self.limits.max_tokens,
                                      f"{_SPLIT_MESSAGE}, or set config.max_tokens to truncate"
                                      ) from None  # fmt: skip
            result = result_proto(p, reply.detection, base=reply.start)
            yield pb.StreamDetectResponse(sequence=sequence, result=result)
            sequence += 1
