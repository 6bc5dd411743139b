"""Extraction jobs: validate, capture in batches, fit each hook point, store atomically.

A job is an async generator of progress events ending with the stored manifests. Every check that
can fail on user input runs before the model does any work. Capture batches go through the
device's scheduler (sharing forwards with other requests), fits run on a fit thread; between
batches (and from the fit's progress callback) the job notices cancellation, and nothing is stored
unless every hook point has been fitted. Fits that compute on the device (the cosine dictionary)
train there from their fit thread, beside the scheduler (never holding it), with device
out-of-memory turned into RESOURCE_EXHAUSTED. A job is pinned to the weights it started on: every
forward names their content hash, so a model re-registered under the same name mid-job fails the
job instead of mixing weights.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chunkscope import __version__
from chunkscope.corpus import Inputs, check_inputs
from chunkscope.engine import methods
from chunkscope.engine.capture import Captured, segments
from chunkscope.engine.device import dtype_name
from chunkscope.engine.loading import LoadedModel
from chunkscope.engine.registry import ModelRegistry
from chunkscope.engine.relay import relay
from chunkscope.engine.scheduler import oom_guarded
from chunkscope.errors import (
    FieldViolation,
    InvalidArgument,
    ResourceExhausted,
)
from chunkscope.store.dictionaries import DictionaryStore, new_id

DEFAULT_MAX_TOKENS, MAX_TOKENS, MAX_RECURRENT_STEPS = 512, 1 << 16, 1 << 22


@dataclass(frozen=True)
class ExtractionSpec:
    """A validated-shape extraction request (values are checked by the job)."""

    model: str
    content_hash: str
    hook_points: tuple[str, ...]
    corpus: Inputs
    heldout: Inputs | None
    context: str  # "whole_text" | "sentence"
    batch_size: int
    max_tokens: int
    description: str
    method: str  # a name in methods.METHODS
    method_spec: Any  # that method's typed parameters (Method.from_request)

    @property
    def kind(self) -> methods.Method[Any, Any]:
        return methods.get(self.method)


@dataclass(frozen=True)
class Progress:
    phase: str  # "capture" | "fit" | "store"
    hook_point: str
    done: int
    total: int
    tokens: int
    elapsed: float
    eta: float


class _Cancelled(Exception):
    """Raised inside a fit thread when the job was cancelled."""


class Extractor:
    def __init__(self, registry: ModelRegistry, store: DictionaryStore, max_capture_bytes: int):
        self.registry = registry
        self.store = store
        self.max_capture_bytes = max_capture_bytes
        self._fit_lock = asyncio.Lock()  # fits are CPU-heavy: one at a time
        # Running fits: a cancelled job's fit winds down on its own, and must not be collected.
        self._fits: set[asyncio.Future[Any]] = set()

    def _validate(self, spec: ExtractionSpec, model: LoadedModel) -> None:
        violations = []
        if not spec.hook_points:
            violations.append(FieldViolation("hook_points", "required: at least one hook point"))
        for i, name in enumerate(spec.hook_points):
            try:
                model.adapter.resolve(name)
            except InvalidArgument as exc:
                violations.append(
                    FieldViolation(f"hook_points[{i}]", exc.violations[0].description)
                )
        if len(set(spec.hook_points)) != len(spec.hook_points):
            violations.append(FieldViolation("hook_points", "lists a hook point twice"))
        if not 1 <= spec.batch_size <= 1024:
            violations.append(FieldViolation("batch_size", "must be in 1..1024 (0 = 8)"))
        limit = MAX_RECURRENT_STEPS if model.is_recurrent else MAX_TOKENS
        if not 1 <= spec.max_tokens <= limit:
            violations.append(FieldViolation(
                "max_tokens", f"must be in 1..{limit} (0 = {DEFAULT_MAX_TOKENS} tokens for "
                "language models, whole sequences for recurrent ones)"))  # fmt: skip
        if len(spec.description) > 200:
            violations.append(FieldViolation("description", "at most 200 characters"))
        if violations:
            raise InvalidArgument(violations)
        check_inputs(spec.corpus, "corpus", symbols=model.symbols)
        if spec.heldout is not None:
            check_inputs(spec.heldout, "heldout", symbols=model.symbols)
        if spec.context == "sentence" and model.is_recurrent:
            raise InvalidArgument.field(
                "context", "SENTENCE applies to texts, not symbol sequences"
            )
        self._validate_method(spec, model)

    def _validate_method(self, spec: ExtractionSpec, model: LoadedModel) -> None:
        try:
            spec.kind.validate(spec.method_spec, model, spec.corpus)
        except ValueError as exc:
            raise InvalidArgument.field(spec.method, str(exc)) from None

    async def run(self, spec: ExtractionSpec) -> AsyncIterator[Progress | list[dict[str, Any]]]:
        """Progress events, then the list of stored manifests (one per hook point)."""
        started = time.perf_counter()
        model = self.registry.ready(spec.model, spec.content_hash)
        spec = dataclasses.replace(spec, content_hash=self.registry.get(spec.model).content_hash)
        if spec.max_tokens == 0:  # one forward per text for LMs; whole sequences for RNNs
            spec = dataclasses.replace(
                spec, max_tokens=MAX_RECURRENT_STEPS if model.is_recurrent else DEFAULT_MAX_TOKENS
            )
        # Validation walks the whole corpus (PA matches its words): a worker thread's job.
        await asyncio.to_thread(self._validate, spec, model)
        cancel = threading.Event()
        try:
            train = Captured(spec.hook_points)
            async for event in self._capture(spec, model, spec.corpus, train, started, 0):
                yield event
            heldout = None
            if spec.heldout is not None:
                heldout = Captured(spec.hook_points)
                async for event in self._capture(
                    spec, model, spec.heldout, heldout, started, train.n_rows
                ):
                    yield event
            fit = await asyncio.to_thread(self._fit_function, spec, model, train, heldout)
            outputs: list[tuple[str, methods.FitOutput]] = []
            async with self._fit_lock:
                for hook_point in spec.hook_points:
                    async for item in self._run_fit(spec, fit, hook_point, cancel, started,
                                                    train.n_rows):  # fmt: skip
                        if isinstance(item, methods.FitOutput):
                            outputs.append((hook_point, item))
                        else:
                            yield item
                    train.release(hook_point)
                    if heldout is not None:
                        heldout.release(hook_point)
            yield Progress("store", "", 0, len(outputs), train.n_rows,
                           time.perf_counter() - started, 0.0)  # fmt: skip
            fingerprint = await asyncio.to_thread(
                spec.corpus.fingerprint, spec.context, str(spec.max_tokens)
            )
            manifests = [
                self._manifest(spec, model, hook_point, train, output, fingerprint)
                for hook_point, output in outputs
            ]
            spec.kind.finish(spec.method_spec, manifests, outputs)
            tensors = [output.tensors for _, output in outputs]
            await asyncio.get_running_loop().run_in_executor(
                None, self._store_all, manifests, tensors
            )
            yield manifests
        finally:
            cancel.set()  # stops a fit thread that is still running (cancelled or failed job)

    def _store_all(self, manifests: list[dict[str, Any]], tensors: list[dict[str, Any]]) -> None:
        """Store every dictionary of a job, or none."""
        self.store.save_all(list(zip(manifests, tensors, strict=True)))

    async def _capture(
        self,
        spec: ExtractionSpec,
        model: LoadedModel,
        inputs: Inputs,
        captured: Captured,
        started: float,
        rows_before: int,
    ) -> AsyncIterator[Progress]:
        """Run `inputs` batch by batch into `captured`; `rows_before` rows are already held."""
        segs = await asyncio.to_thread(segments, inputs, spec.context)
        batches = [segs[i : i + spec.batch_size] for i in range(0, len(segs), spec.batch_size)]
        width = model.hidden_size
        for done, batch in enumerate(batches, 1):
            captured.add(
                await self.registry.capture(
                    spec.model, batch, spec.hook_points, spec.max_tokens, spec.content_hash
                )
            )
            held = (rows_before + captured.n_rows) * width * 4 * len(spec.hook_points)
            if held > self.max_capture_bytes:
                raise ResourceExhausted(
                    f"the corpus needs more than {self.max_capture_bytes} bytes of hidden states "
                    f"({len(spec.hook_points)} hook points x {rows_before + captured.n_rows}+ "
                    f"tokens x {width}); "
                    "extract fewer hook points per request, shorten the corpus, or raise "
                    "--max-capture-bytes",
                    reason="CAPTURE_TOO_LARGE",
                )
            elapsed = time.perf_counter() - started
            eta = elapsed / done * (len(batches) - done)
            yield Progress("capture", "", done, len(batches), rows_before + captured.n_rows,
                           elapsed, eta)  # fmt: skip

    def _fit_function(
        self, spec: ExtractionSpec, model: LoadedModel, train: Captured, heldout: Captured | None
    ) -> methods.Fit:
        return spec.kind.prepare(spec.method_spec, model, spec.corpus, spec.heldout, train, heldout)

    async def _run_fit(
        self,
        spec: ExtractionSpec,
        fit: methods.Fit,
        hook_point: str,
        cancel: threading.Event,
        started: float,
        tokens: int,
    ) -> AsyncIterator[Progress | methods.FitOutput]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Progress] = asyncio.Queue()
        fit_started = time.perf_counter()

        def progress(done: int, total: int) -> None:
            if cancel.is_set():
                raise _Cancelled
            elapsed = time.perf_counter() - fit_started
            eta = elapsed / done * (total - done) if done else 0.0
            event = Progress("fit", hook_point, done, total, tokens,
                             time.perf_counter() - started, eta)  # fmt: skip
            loop.call_soon_threadsafe(queue.put_nowait, event)

        def work() -> methods.FitOutput:
            t0 = time.perf_counter()
            output = fit(hook_point, progress)
            output.stats["fit_seconds"] = time.perf_counter() - t0
            return output

        # A fit never holds the device's scheduler: it runs in a thread of its own (the cosine
        # dictionary trains on the model's device from there), so requests keep flowing.
        future: asyncio.Future[methods.FitOutput] = loop.run_in_executor(None, oom_guarded(work))
        # A cancelled job leaves the fit to finish (or raise _Cancelled) unobserved.
        self._fits.add(future)
        future.add_done_callback(self._fits.discard)
        try:
            async for event in relay(queue, future):
                yield event
            yield await future
        finally:
            if not future.done():
                cancel.set()

    def _manifest(
        self, spec: ExtractionSpec, model: LoadedModel, hook_point: str, train: Captured,
        output: methods.FitOutput, fingerprint: str,
    ) -> dict[str, Any]:  # fmt: skip
        return {
            "schema_version": 1,
            "id": new_id(),
            "model": {
                "name": spec.model,
                "content_hash": spec.content_hash,
                "architecture": model.family,
            },
            "hook_point": hook_point,
            "hidden_size": model.hidden_size,
            "dtype": dtype_name(model.dtype),
            "method": spec.method,
            "parameters": spec.kind.parameters(spec.method_spec),
            "corpus": {
                "fingerprint": fingerprint,
                "n_inputs": len(spec.corpus),
                "n_tokens": train.n_rows,
                "context": spec.context,
                "max_tokens": spec.max_tokens,
            },
            "created_at": datetime.now(UTC).isoformat(),
            "chunkscope_version": __version__,
            "description": spec.description,
            "stats": {k: float(v) for k, v in output.stats.items()},
            "entries": output.entries,
            "tensors_sha256": "",
        }
