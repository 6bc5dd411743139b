"""One scheduler per device: typed work items, advanced in batches by the device's one thread.

Requests become work items, not closures:

- `CaptureWork`: forward-only rows (Detect, extraction and analysis capture, recurrent streams) that
  need hidden states at some hook points. Rows of concurrent items on the same model are
  coalesced into one right-padded forward, up to `--max-batch-tokens` padded tokens, after
  waiting at most `--max-batch-delay-ms` for company; the forward stops at the deepest hook
  point the batch needs.
- `LogitsWork`: rows that need next-token log-probabilities, each with its own interventions
  (Perturb: one row without, one with); coalesced the same way, run whole.
- `StreamWork`: one row of a StreamDetect input with its own past (a KV cache,
  engine/past.py): only the input's new tokens run, against the cached ones. Run alone, never
  coalesced (a batch would have to pad and merge caches), and without the batching delay; it
  stops at the deepest hook point it needs, so the cache only holds the layers up to there.
- `GenerateWork`: one row per arm of a Generate. Rows that arrive together are prefilled
  together (one left-padded forward), then join their model's decoding group
  (engine/decoding.py), which advances every row by one token per step; rows join and leave
  between steps.

The device thread alternates: one coalesced forward batch, the prefills of rows waiting to
join, one decode step of each decoding group. So a long Generate delays a Detect by at most one
decode step, and a burst of Detects delays a Generate by at most one batch.

Everything that does not need the device stays off its thread: tokenizing and converting
states to numpy happen in the caller's coroutine (on the tokenizer pool), matching and
summaries in the servicers' host work. Only the rules of a Generate are evaluated on the device
thread, on one token's states, because they decide that row's next token.

A cancelled item leaves at once: queued rows never run, a decoding row leaves at the next step.
`--max-queue-depth` counts the items queued or running on this device.

A new kind of work plugs in as a dataclass with the model, the rows it needs and a future, a
`_take_*` rule saying which queued items may share a forward, and a `_run_*` method that runs
one batch of them on the device thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from chunkscope import metrics, observability
from chunkscope.engine.capture import forward_states
from chunkscope.engine.decoding import Group, Row
from chunkscope.engine.loading import LoadedModel
from chunkscope.engine.past import Past, forward_cached
from chunkscope.engine.steering import Steering, last_logprobs
from chunkscope.errors import ResourceExhausted

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(eq=False, kw_only=True)
class Work:
    """What every item carries: its model, where its result goes, when it was queued."""

    model: LoadedModel
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.perf_counter)
    # For the call's trace: its context and the wall-clock time the item was queued.
    trace: Any = field(default_factory=observability.current_context)
    enqueued_ns: int = field(default_factory=time.time_ns)
    cancelled: bool = False
    started: bool = False
    kind: str = ""

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        """Hand the outcome to the awaiting coroutine (from any thread)."""

        def done() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        on_loop(self.loop, done)()


@dataclass(eq=False, kw_only=True)
class RowsWork(Work):
    """Forward-only rows; `results[i]` is filled when row i has run."""

    rows: Sequence[torch.Tensor]  # token ids [T_i] each, CPU
    next_row: int = 0  # rows before this one are taken
    finished: int = 0
    results: list[Any] = field(default_factory=list)
    device_ns: int = 0

    def __post_init__(self) -> None:
        self.results = [None] * len(self.rows)


@dataclass(eq=False, kw_only=True)
class CaptureWork(RowsWork):
    """States at `hook_points`; a row's result is {hook point: [T', d] float32 CPU tensor}."""

    hook_points: tuple[str, ...]
    early_exit: bool = True
    kind: str = "capture"


@dataclass(eq=False, kw_only=True)
class LogitsWork(RowsWork):
    """Next-token log-probabilities [V] after each row, with that row's steering (or None)."""

    steerings: Sequence[Steering | None]
    kind: str = "logits"


@dataclass(eq=False, kw_only=True)
class StreamWork(RowsWork):
    """One row run against `past`, cropped to its first `keep` positions (0: afresh).

    The result is {hook point: [T, d] float32 CPU tensor} for the row's tokens; `past` then
    holds them too. Never shares a forward: each stream has its own cache.
    """

    past: Past
    keep: int
    hook_points: tuple[str, ...]
    early_exit: bool = True
    kind: str = "stream"


@dataclass(eq=False, kw_only=True)
class GenerateWork(Work):
    """Rows (the arms of one Generate) that decode until each is done."""

    rows: list[Row]
    kind: str = "generate"


class Scheduler:
    """The queue and the thread of one device (one placement)."""

    def __init__(
        self, name: str, max_queue_depth: int, max_batch_tokens: int, max_batch_delay_s: float
    ) -> None:
        self.name = name
        self.max_queue_depth = max_queue_depth
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_delay_s = max_batch_delay_s
        self._cv = threading.Condition()
        self._forward: deque[RowsWork] = deque()
        self._joining: deque[GenerateWork] = deque()
        self._groups: dict[int, Group] = {}  # id(model) -> its decoding group
        self._items = 0  # items queued or running (admission control)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"chunkscope-{name}", daemon=True)
        self._thread.start()

    # ----- from the event loop ---------------------------------------------------------------

    def admit(self) -> None:
        """Count one more item; RESOURCE_EXHAUSTED at --max-queue-depth (call on the loop)."""
        if self._items >= self.max_queue_depth:
            raise ResourceExhausted(
                f"{self._items} requests are running or queued on {self.name} "
                f"(--max-queue-depth {self.max_queue_depth}); retry with backoff",
                reason="QUEUE_FULL",
                metadata={"device": self.name, "limit": str(self.max_queue_depth)},
            )
        self._items += 1
        metrics.QUEUE_DEPTH.labels(self.name).set(self._items)

    def release(self) -> None:
        self._items -= 1
        metrics.QUEUE_DEPTH.labels(self.name).set(self._items)

    async def submit(self, work: Work) -> Any:
        """Queue `work` and await its result; cancelling the caller withdraws it."""
        self.admit()
        try:
            with self._cv:
                if isinstance(work, GenerateWork):
                    self._joining.append(work)
                else:
                    assert isinstance(work, RowsWork)
                    if not work.rows:
                        return []
                    self._forward.append(work)
                self._cv.notify()
            try:
                return await work.future
            except asyncio.CancelledError:
                work.cancelled = True
                if isinstance(work, GenerateWork):
                    for row in work.rows:
                        row.cancel.set()
                with self._cv:
                    self._cv.notify()
                raise
        finally:
            self.release()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()

    # ----- the device thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cv:
                batch = self._next_batch()
                if batch is None:
                    return
                forward, joining = batch
            if forward:
                self._run_rows(forward)
            self._join(joining)
            for key, group in list(self._groups.items()):
                try:
                    group.step()
                except Exception as exc:  # the step failed: its rows fail, their cache goes
                    log.exception("a decode step failed on %s", self.name)
                    for row in group.rows:
                        row.finish(list(row.new_tokens), _device_error(exc))
                    group.rows = []
                if not group.rows:
                    del self._groups[key]
            rows = sum(len(g.rows) for g in self._groups.values())
            metrics.ROWS_IN_FLIGHT.labels(self.name).set(rows)

    def _next_batch(self) -> tuple[list[tuple[RowsWork, int]], list[GenerateWork]] | None:
        """Under the lock: wait for work, then take one forward batch and the joiners."""
        while True:
            if self._closed:
                return None
            self._drop_cancelled()
            decoding = bool(self._groups)
            alone = bool(self._forward) and isinstance(self._forward[0], StreamWork)
            if self._forward and not decoding and self.max_batch_delay_s > 0 and not alone:
                # Alone on the device: wait a little for company, unless the batch is full.
                head = self._forward[0]
                wait = head.enqueued + self.max_batch_delay_s - time.perf_counter()
                if wait > 0 and self._queued_tokens(head) < self.max_batch_tokens:
                    self._cv.wait(wait)
                    continue
            if self._forward or self._joining or decoding:
                forward = self._take_rows() if self._forward else []
                joining = list(self._joining)
                self._joining.clear()
                return forward, joining
            self._cv.wait()

    def _drop_cancelled(self) -> None:
        for work in [w for w in self._forward if w.cancelled]:
            self._forward.remove(work)
        for gen in [w for w in self._joining if w.cancelled]:
            self._joining.remove(gen)

    def _queued_tokens(self, head: RowsWork) -> int:
        rows = [
            int(r.shape[0])
            for w in self._forward
            if _compatible(w, head)
            for r in w.rows[w.next_row :]
        ]
        return len(rows) * max(rows, default=0)

    def _take_rows(self) -> list[tuple[RowsWork, int]]:
        """The oldest item's rows, then compatible items' rows, within the token budget.

        Padded tokens (rows x the longest row) count against --max-batch-tokens; the first
        row always goes, however long. An item whose rows are all taken leaves the queue.
        """
        head = self._forward[0]
        taken: list[tuple[RowsWork, int]] = []
        longest = 0
        for work in list(self._forward):
            if not _compatible(work, head):
                continue
            while work.next_row < len(work.rows):
                length = int(work.rows[work.next_row].shape[0])
                cost = (len(taken) + 1) * max(longest, length)
                if taken and cost > self.max_batch_tokens:
                    return taken
                taken.append((work, work.next_row))
                longest = max(longest, length)
                work.next_row += 1
            self._forward.remove(work)
        return taken

    def _run_rows(self, batch: list[tuple[RowsWork, int]]) -> None:
        head = batch[0][0]
        items = list(dict.fromkeys(w for w, _ in batch))  # each once, in queue order
        now, wall = time.perf_counter(), time.time_ns()
        for work in items:
            if not work.started:
                work.started = True
                metrics.QUEUE_WAIT_SECONDS.labels(work.kind).observe(now - work.enqueued)
                observability.record_span("chunkscope.queue", work.trace, work.enqueued_ns, wall,
                                          kind=work.kind, placement=self.name)  # fmt: skip
        rows = [w.rows[i] for w, i in batch]
        padded = len(rows) * max(int(r.shape[0]) for r in rows)
        metrics.BATCH_ROWS.labels(head.kind).observe(len(rows))
        metrics.BATCH_TOKENS.labels(head.kind).observe(padded)
        started = time.perf_counter_ns()
        try:
            results = self._forward_rows(head, batch, rows)
        except Exception as exc:
            error = _device_error(exc)
            for work in items:
                work.cancelled = True  # its rows still queued must not run
                work.settle(error=error)
            return
        elapsed = time.perf_counter_ns() - started
        for work in items:  # one span per request that rode this forward
            observability.record_span(
                "chunkscope.forward", work.trace, wall, wall + elapsed, kind=head.kind,
                placement=self.name, batch_rows=len(rows), batch_padded_tokens=padded,
                batch_requests=len(items), rows_of_this_request=sum(w is work for w, _ in batch),
            )  # fmt: skip
        for (work, i), result in zip(batch, results, strict=True):
            work.results[i] = result
            work.finished += 1
        for work in items:
            work.device_ns += elapsed
            if work.finished == len(work.rows):
                work.settle(work)

    @staticmethod
    def _forward_rows(
        head: RowsWork, batch: list[tuple[RowsWork, int]], rows: list[torch.Tensor]
    ) -> list[Any]:
        if isinstance(head, StreamWork):
            [(work, _)] = batch
            assert isinstance(work, StreamWork)
            return [forward_cached(work.model, work.past, work.keep, rows[0], work.hook_points,
                                   work.early_exit)]  # fmt: skip
        if isinstance(head, CaptureWork):
            captures = [w for w, _ in batch if isinstance(w, CaptureWork)]
            points = sorted({p for w in captures for p in w.hook_points})
            states = forward_states(head.model, rows, points, all(w.early_exit for w in captures))
            return [{p: states[p][j] for p in w.hook_points} for j, w in enumerate(captures)]
        assert isinstance(head, LogitsWork)
        steerings = [w.steerings[i] for w, i in batch if isinstance(w, LogitsWork)]
        return last_logprobs(head.model, rows, steerings)

    def _join(self, joining: list[GenerateWork]) -> None:
        """Prefill the rows of newly arrived Generates, per model, and add them to its group.

        Rows of one model are prefilled together, in forwards of at most --max-batch-tokens
        padded prompt tokens.
        """
        now, wall = time.perf_counter(), time.time_ns()
        by_model: dict[int, list[Row]] = {}
        owner = {id(row): work for work in joining for row in work.rows}
        for work in joining:
            if work.cancelled:
                continue
            work.started = True
            metrics.QUEUE_WAIT_SECONDS.labels(work.kind).observe(now - work.enqueued)
            observability.record_span("chunkscope.queue", work.trace, work.enqueued_ns, wall,
                                      kind=work.kind, placement=self.name)  # fmt: skip
            self._groups.setdefault(id(work.model), Group(work.model))
            by_model.setdefault(id(work.model), []).extend(work.rows)
        for key, rows in by_model.items():
            chunk: list[Row] = []
            for row in [*rows, None]:
                width = max([int(r.prompt.shape[1]) for r in chunk] or [0])
                if row is not None and (
                    not chunk
                    or (len(chunk) + 1) * max(width, int(row.prompt.shape[1]))
                    <= self.max_batch_tokens
                ):
                    chunk.append(row)
                    continue
                began = time.time_ns()
                try:
                    self._groups[key].join(chunk)
                except Exception as exc:
                    for failed in chunk:
                        failed.finish(list(failed.new_tokens), _device_error(exc))
                ended = time.time_ns()
                for work in dict.fromkeys(owner[id(r)] for r in chunk):
                    observability.record_span(
                        "chunkscope.prefill", work.trace, began, ended,
                        placement=self.name, batch_rows=len(chunk),
                    )  # fmt: skip
                chunk = [row] if row is not None else []


def _compatible(a: RowsWork, b: RowsWork) -> bool:
    """May a and b share one forward? Same model, same kind of output; a stream runs alone."""
    if isinstance(a, StreamWork) or isinstance(b, StreamWork):
        return a is b
    return a.model is b.model and type(a) is type(b)


def _device_error(exc: Exception) -> Exception:
    """Device out-of-memory is the request's size, not a bug: free the cache, refuse it."""
    if isinstance(exc, torch.OutOfMemoryError):
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return ResourceExhausted(
            f"the device ran out of memory ({str(exc).splitlines()[0][:200]}); "
            "send fewer or shorter inputs, or retry when the server is less busy",
            reason="DEVICE_OUT_OF_MEMORY",
        )
    return exc


def oom_guarded(fn: Callable[[], T]) -> Callable[[], T]:
    """`fn` with device out-of-memory turned into RESOURCE_EXHAUSTED (work off the scheduler)."""

    def call() -> T:
        try:
            return fn()
        except torch.OutOfMemoryError as exc:
            raise _device_error(exc) from None

    return call


def on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., None]) -> Callable[..., None]:
    """`fn` called on `loop` (for callbacks fired on the device thread)."""

    def call(*args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(fn, *args)

    return call
