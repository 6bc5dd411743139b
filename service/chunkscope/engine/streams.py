"""StreamDetect inputs kept between messages, so a continued message costs its new tokens.

A `DetectStream` is one StreamDetect's state: the current input's context (the token ids and
char offsets the model has read, at most `window` of them), its KV cache (engine/past.py, run by
the scheduler as `StreamWork`) and, for sequence detectors (DSC), the context's states at their
hook points.

Seams: a continued message may change the input's last word ("The weather is ni" + "ce today"
re-tokenizes "ni" as part of "nice"). So the text from the start of the last pre-token (the fast
tokenizer's pre-tokenizer says where; else the last token) is tokenized again with the new text,
without special tokens, and compared with the tokens already read: the cache is cropped back to
the first position that changed and the model runs from there. The reply reports the tokens
from that position on: normally the first new token; at a seam inside a word, that word's
tokens again, with their new text. Positions and char offsets count from the input's start.

Window: an input may grow past `window` tokens (config.max_tokens when it is set, else
--max-input-tokens). Then the context slides: the most recent tokens (half a window at most)
are run again from a fresh cache, not reported again, and the new tokens follow them. The cost
of a message stays its new tokens, plus at most half a window once every half window.

Recurrent networks have no KV cache: their window of symbols is re-run with each message (they
are tiny), and every detector (DSC's parse of the state sequence included) sees the whole
window; the rows from the first new position are reported.

A single message is still bounded as one input: over `window` tokens it is cut there when
`truncate` (config.max_tokens), else refused (`TooManyTokens`, which the servicer maps).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from chunkscope.engine import tokens
from chunkscope.engine.capture import Segment
from chunkscope.engine.detection import Detection, Detector, InputDetection, hook_points_of
from chunkscope.engine.loading import LoadedModel
from chunkscope.engine.past import Past
from chunkscope.engine.registry import ModelRegistry
from chunkscope.engine.scheduler import StreamWork

_TAIL_SPAN = 8  # tokens pre-tokenized to find the last word; doubled while the word is longer


class TooManyTokens(Exception):
    """One message has more tokens than an input may (and config.max_tokens does not cut it)."""

    def __init__(self, n: int) -> None:
        super().__init__(f"{n} tokens")
        self.n = n


@dataclass
class StreamReply:
    """The tokens reported for one message: from absolute position `start` on."""

    start: int
    detection: InputDetection


@dataclass
class _Step:
    """What one text message does to the context (planned on the tokenizer pool)."""

    keep: int  # context tokens still valid (kept in the cache unless `prefix` is re-run)
    drop: int  # context tokens dropped from the front (the window slid)
    prefix: list[int]  # context tokens run again from a fresh cache (not reported)
    ids: list[int]  # the message's tokens from the first changed position
    offsets: list[tuple[int, int]]  # their absolute char spans
    text: str  # the context's text, from `text_start`
    text_start: int
    chars: int  # chars of the input so far
    sealed: bool


@dataclass(eq=False)
class DetectStream:
    """The state of one StreamDetect call (one input at a time)."""

    registry: ModelRegistry
    name: str
    content_hash: str
    detectors: list[Detector]
    window: int
    truncate: bool
    started: bool = False  # an input has been seen: `continues` extends it
    model: LoadedModel | None = None
    origin: int = 0  # absolute position of context token 0
    ids: list[int] = field(default_factory=list)  # the context (at most `window` tokens)
    offsets: list[tuple[int, int]] = field(default_factory=list)  # absolute char spans
    symbols: list[str] = field(default_factory=list)  # the context of a recurrent network
    text: str = ""  # the input's text from char `text_start` on (LMs)
    text_start: int = 0
    chars: int = 0  # chars of the input so far
    sealed: bool = False  # the last message was cut: the next one does not continue its word
    past: Past = field(default_factory=Past)
    states: dict[str, np.ndarray] = field(default_factory=dict)  # context rows, sequence points

    @property
    def points(self) -> list[str]:
        return hook_points_of(self.detectors)

    @property
    def sequence_points(self) -> list[str]:
        return sorted({d.hook_point for d in self.detectors if d.sequential})

    async def feed(self, segment: Segment, continues: bool) -> StreamReply:
        """Detect one message: a new input, or (`continues`) more of the current one."""
        model = self.registry.ready(self.name, self.content_hash)
        continues = continues and self.started
        if model is not self.model:  # first message, or the model was loaded again
            self.model, self.past = model, Past()
        if model.is_recurrent:
            reply = await self._feed_symbols(model, segment, continues)
        else:
            reply = await self._feed_text(model, segment.text, continues)
        self.started = True
        return reply

    # ----- language models ---------------------------------------------------------------

    async def _feed_text(self, model: LoadedModel, text: str, continues: bool) -> StreamReply:
        if not continues:
            self.origin, self.ids, self.offsets, self.states = 0, [], [], {}
            self.text, self.text_start, self.chars, self.sealed = "", 0, 0, False
        step = await tokens.off_loop(self._plan, model, text, continues)
        if not step.ids:  # nothing the model would read changed (the tokenizer dropped it all)
            self.ids, self.offsets = self.ids[: step.keep], self.offsets[: step.keep]
            self.text, self.text_start, self.chars = step.text, step.text_start, step.chars
            return StreamReply(self.origin + len(self.ids), _empty(self.detectors))
        row = torch.tensor(step.prefix + step.ids, dtype=torch.long)
        loop = asyncio.get_running_loop()
        work = StreamWork(
            model=model, loop=loop, future=loop.create_future(), rows=[row], past=self.past,
            keep=0 if step.prefix else step.keep, hook_points=tuple(self.points),
        )  # fmt: skip
        await self.registry.scheduler_for(model).submit(work)
        states: dict[str, torch.Tensor] = work.results[0]
        before = step.keep - step.drop  # context tokens before the new ones
        self.origin += step.drop
        self.ids = self.ids[step.drop : step.keep] + step.ids
        self.offsets = self.offsets[step.drop : step.keep] + step.offsets
        self.text, self.text_start, self.chars, self.sealed = (
            step.text, step.text_start, step.chars, step.sealed
        )  # fmt: skip
        found = await tokens.off_loop(self._detect, states, before, bool(step.prefix), step)
        return StreamReply(self.origin + before, found)

    def _plan(self, model: LoadedModel, text: str, continues: bool) -> _Step:
        """Tokenize the message (with the last word before it) and decide what runs. Host work."""
        window = self.window
        if not continues:
            enc = model.tokenize(text, return_offsets_mapping=True)
            keep, base, tail = 0, 0, ""
            ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
        else:
            k = len(self.ids) if self.sealed else self._tail_index(model)
            base = self.offsets[k][0] if k < len(self.ids) else self.chars
            tail = self.text[base - self.text_start :] if k < len(self.ids) else ""
            enc = model.tokenize(tail + text, add_special_tokens=False, return_offsets_mapping=True)
            ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
            same = 0
            for old_id, old_span, new_id, (s, e) in zip(
                self.ids[k:], self.offsets[k:], ids, offsets, strict=False
            ):
                if old_id != new_id or old_span != (s + base, e + base):
                    break
                same += 1
            keep = k + same
            ids, offsets = ids[same:], offsets[same:]
        spans = [(int(s) + base, int(e) + base) for s, e in offsets]
        sealed = False
        if len(ids) > window:
            if not self.truncate:
                raise TooManyTokens(len(ids))
            ids, spans, sealed = ids[:window], spans[:window], True
        drop, prefix = 0, []
        if keep + len(ids) > window:  # slide: the most recent tokens, run again, then the new
            kept = min(keep, window // 2, window - len(ids))
            drop = keep - kept
            prefix = self.ids[drop:keep]
        elif keep and self.past.cache is None:  # nothing cached (a failed forward, a reload)
            prefix = self.ids[:keep]
        # The context's text: from its first token on (whatever it is, the input's text so far
        # ends with this message's text).
        if continues and not self.sealed:
            full, full_start = self.text + text, self.text_start
        else:
            full, full_start = text, self.chars if continues else 0
        context = self.offsets[drop:keep] + spans
        start = next((s for s, e in context if e > s), full_start + len(full))
        start = min(max(start, full_start), full_start + len(full))
        return _Step(
            keep=keep, drop=drop, prefix=prefix, ids=ids, offsets=spans,
            text=full[start - full_start :], text_start=start, chars=self.chars + len(text)
            if continues else len(text), sealed=sealed,
        )  # fmt: skip

    def _tail_index(self, model: LoadedModel) -> int:
        """The context index of the first token of the input's last word (pre-token)."""
        n = len(self.ids)
        # Tokens of the kept text only, not special tokens (empty spans).
        real = [i for i in range(n) if self.offsets[i][1] > self.offsets[i][0]
                and self.offsets[i][0] >= self.text_start]  # fmt: skip
        if not real:
            return n
        pre = getattr(getattr(model.tokenizer, "backend_tokenizer", None), "pre_tokenizer", None)
        span = _TAIL_SPAN
        while True:
            first = real[max(0, len(real) - span)]
            chunk_start = self.offsets[first][0]
            chunk = self.text[chunk_start - self.text_start :]
            try:
                pieces = pre.pre_tokenize_str(chunk) if pre is not None else []
            except Exception:  # a pre-tokenizer that cannot say: the last token
                pieces = []
            if not pieces:
                return real[-1]
            last = pieces[-1][1][0]
            if last > 0 or first == real[0]:
                break
            span *= 2  # the word began before the chunk: look further back
        word = chunk_start + last
        at = max((i for i in real if i >= first and self.offsets[i][0] <= word), default=first)
        # Several tokens of one character (byte-level pieces) share its span: take the first.
        return min(i for i in real if self.offsets[i][0] == self.offsets[at][0])

    def _detect(
        self, states: dict[str, torch.Tensor], before: int, rerun: bool, step: _Step
    ) -> InputDetection:
        """Match the new rows (host work); sequence detectors see the context's rows too."""
        n_new = len(step.ids)
        new = {name: t[-n_new:].numpy() for name, t in states.items()}
        for name in self.sequence_points:
            old = self.states.get(name)
            if rerun or old is None:
                rows = states[name].numpy()
            else:
                rows = np.concatenate([old[step.drop : step.keep], new[name]], axis=0)
            self.states[name] = rows
        results = []
        for d in self.detectors:
            if d.sequential:  # its matches depend on the states before
                result = d.detect(self.states[d.hook_point])
                results.append(result.since(before))
            else:
                results.append(d.detect(new[d.hook_point]))
        return InputDetection(np.asarray(step.ids, dtype=np.int64), list(step.offsets), results)

    # ----- recurrent networks --------------------------------------------------------------

    async def _feed_symbols(
        self, model: LoadedModel, segment: Segment, continues: bool
    ) -> StreamReply:
        if not continues:
            self.origin, self.symbols = 0, []
        new = list(segment.symbols)
        context = self.symbols
        if len(context) + len(new) > self.window:
            kept = min(len(context), self.window // 2, self.window - len(new))
            self.origin += len(context) - kept
            context = context[len(context) - kept :]
        whole = Segment(segment.input_index, symbols=tuple(context + new))
        captured = await self.registry.capture(
            self.name, [whole], self.points, self.window, self.content_hash
        )
        self.symbols = context + new
        before = len(context)

        def detect() -> InputDetection:
            results = [d.detect(captured.states[d.hook_point]).since(before)
                       for d in self.detectors]  # fmt: skip
            return InputDetection(captured.token_ids[0][before:], [], results)

        found = await tokens.off_loop(detect)
        return StreamReply(self.origin + before, found)


def _empty(detectors: Sequence[Detector]) -> InputDetection:
    results = [
        Detection(np.zeros((0, len(d.labels)), bool), np.zeros((0, len(d.labels)), np.float32),
                  d.higher_is_better)
        for d in detectors
    ]  # fmt: skip
    return InputDetection(np.zeros(0, np.int64), [], results)


def open_stream(
    registry: ModelRegistry,
    name: str,
    content_hash: str,
    detectors: list[Detector],
    window: int,
    truncate: bool,
) -> DetectStream:
    """A StreamDetect's state: `window` tokens of context; `truncate` cuts a longer message."""
    return DetectStream(registry, name, content_hash, detectors, window, truncate)
