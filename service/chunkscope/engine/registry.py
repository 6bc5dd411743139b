"""The model registry: registered models, their life cycle, and the executors that run them.

State lives on the asyncio event loop (every method here is called from it, except
hooks_installed, which reads a snapshot). Each load (inspect, hash, load) runs in a thread of its
own, so a load stuck in the OS holds up neither another model's load nor start-up nor exit; store
writes go through one writer thread in call order; forwards run on the device's scheduler
(engine/scheduler.py), whose one thread batches the work of concurrent requests, so the event
loop never blocks on model work and forwards on one device never overlap.

With a shared store (replicas on one PostgreSQL), registrations made or removed by other replicas
reach this one through `sync`, called on every change notification and every
--store-sync-seconds: the models here become those of the store, each loaded by this replica and
reported in its own state.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import gc
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from chunkscope import metrics
from chunkscope.config import Settings
from chunkscope.engine import loading, tokens
from chunkscope.engine.capture import CapturedBatch, Segment, encode, gather
from chunkscope.engine.device import DTYPES, dtype_name, resolve_device, resolve_dtype
from chunkscope.engine.hooks import hook_count
from chunkscope.engine.loading import LoadedModel, ModelSource
from chunkscope.engine.scheduler import CaptureWork, Scheduler
from chunkscope.errors import (
    AlreadyExists,
    ChunkscopeError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    check,
)
from chunkscope.store.registry import ModelRecord, ModelStore, RegistryStore, now

log = logging.getLogger(__name__)

T = TypeVar("T")

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
LOADING, READY, FAILED = "LOADING", "READY", "FAILED"
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 1000


@dataclass(frozen=True)
class HookPointInfo:
    name: str
    shape: tuple[int, ...]
    description: str
    block: int


@dataclass(frozen=True)
class ModelInfo:
    """What the API reports about a model (a snapshot)."""

    name: str
    source_path: str
    format: str
    state: str
    state_reason: str
    content_hash: str
    architecture: str
    num_blocks: int
    hidden_size: int
    vocab_size: int
    parameter_count: int
    device: str
    dtype: str
    registered_at: datetime
    load_seconds: float
    symbols: tuple[str, ...]


@dataclass
class _Entry:
    record: ModelRecord
    source: ModelSource
    dtype: torch.dtype
    state: str = LOADING
    reason: str = "loading weights"
    loaded: LoadedModel | None = None
    load_seconds: float = 0.0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class ModelRegistry:
    """Registered models by name; persisted through RegistryStore."""

    def __init__(self, settings: Settings, store: ModelStore | None = None) -> None:
        self.settings = settings
        self.roots = settings.roots
        if not settings.model_roots:  # the default root is ours to create
            self.roots[0].mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(settings.device)
        self.default_dtype = resolve_dtype(settings.dtype, self.device)
        self._own_store = store is None
        self.store: ModelStore = RegistryStore(settings.data_dir) if store is None else store
        self._entries: dict[str, _Entry] = {}
        # Counts this replica's own changes to _entries: a sync whose read of the store raced one
        # is not applied (it reads again), so it never undoes a registration in progress.
        self._changes = 0
        self._sync_wanted = asyncio.Event()
        self._sync_task: asyncio.Task[None] | None = None
        # Store writes (SQLite, fsync) off the event loop, one at a time in call order.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="chunkscope-store")
        # One scheduler per placement (the devices a model's weights are on: one device unless
        # --device-map splits models); its thread runs every forward there.
        self._schedulers: dict[tuple[str, ...], Scheduler] = {}
        # The loaded modules, replaced whole on the event loop: what the metrics thread reads.
        self._modules: tuple[nn.Module, ...] = ()
        self._published: set[str] = set()  # model names with chunkscope_model_state series

    # ----- life cycle -------------------------------------------------------------------------

    async def restore(self) -> None:
        """Reload every persisted registration.

        Returns when each is READY or FAILED, or after --restore-wait-seconds: a load still
        running then goes on in the background (the model is LOADING), so start-up reaches
        SERVING whatever one model's files do.
        """
        tasks = []
        for record in await self._write(self.store.all):
            task = await self._adopt(record)
            if task is not None:
                tasks.append(task)
        self._publish()
        if self.store.shared:
            self._sync_task = asyncio.get_running_loop().create_task(self._sync_loop())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.settings.restore_wait_seconds)
            if pending:
                log.warning(
                    "%d models still LOADING after %.0fs (--restore-wait-seconds); serving "
                    "while they load",
                    len(pending),
                    self.settings.restore_wait_seconds,
                )
        log.info("restored %d registered models", len(self._entries))

    async def close(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
        for entry in self._entries.values():
            if entry.task is not None:
                entry.task.cancel()
        for scheduler in self._schedulers.values():
            scheduler.close()
        await asyncio.get_running_loop().run_in_executor(None, self._writer.shutdown)
        if self._own_store:
            self.store.close()

    # ----- other replicas' changes ------------------------------------------------------------

    def request_sync(self) -> None:
        """Ask for a sync soon (on the loop; the store's Listener calls it threadsafe)."""
        self._sync_wanted.set()

    async def _sync_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sync_wanted.wait(), self.settings.store_sync_seconds)
            self._sync_wanted.clear()
            try:
                await self.sync()
            except ChunkscopeError as exc:
                log.warning("could not read the registrations from the store: %s", exc.message)
            except Exception:  # a bug: log it, keep the loop
                log.exception("syncing the registrations failed")

    async def sync(self) -> None:
        """Make the models here those of the store: load what another replica registered, drop
        what it unregistered, reload what it registered again under the same name."""
        changes = self._changes
        stored = {r.name: r for r in await self._write(self.store.all)}
        for name, entry in list(self._entries.items()):
            if changes != self._changes:
                self.request_sync()  # raced a change made here: read the store again
                return
            record = stored.get(name)
            if record is None or record.registered_at != entry.record.registered_at:
                log.info(
                    "model %s %s on another replica",
                    name,
                    "unregistered" if record is None else "registered again",
                )
                self._drop(entry)
                del self._entries[name]
                self._publish()
        for name, record in stored.items():
            if changes != self._changes:
                self.request_sync()
                return
            if name not in self._entries:
                log.info("model %s registered on another replica: loading it here", name)
                await self._adopt(record)
        self._publish()

    async def _adopt(self, record: ModelRecord) -> asyncio.Task[None] | None:
        """Start loading a stored registration (at start-up, or made by another replica); a
        registration that cannot be loaded here is kept as FAILED with the reason."""
        try:
            compute_dtype = self._record_dtype(record)
            # Still under a configured root (roots may differ between runs and replicas).
            await _in_thread(loading.resolve_under_roots, record.source_path, self.roots)
            source = await self._inspect(record.source_path, record.format)
        except ChunkscopeError as exc:
            if record.name in self._entries:
                return None  # registered here meanwhile
            entry = _Entry(
                record,
                ModelSource(Path(record.source_path), record.format, "", ()),
                self.default_dtype,
                FAILED,
                f"cannot restore: {exc.message}",
            )
            self._entries[record.name] = entry
            self._publish()
            log.warning("model %s FAILED: %s", record.name, entry.reason)
            return None
        if record.name in self._entries:
            return None
        entry = _Entry(record, source, compute_dtype)
        self._entries[record.name] = entry
        task = self._start_load(entry)
        self._publish()
        return task

    # ----- ModelService -----------------------------------------------------------------------

    async def register(
        self, name: str, source_path: str, fmt: str, dtype: str, wait: bool
    ) -> ModelInfo:
        violations = []
        if not name:
            violations.append(FieldViolation("name", "required"))
        elif not NAME_PATTERN.match(name):
            violations.append(
                FieldViolation(
                    "name",
                    f"{name[:80]!r} must be 1-64 characters of [a-z0-9._-], "
                    "starting with a letter or digit",
                )
            )
        if not source_path:
            violations.append(FieldViolation("source_path", "required: a path under a model root"))
        check(violations)
        # An empty dtype is the server's --dtype (the proto's promise), not `auto`.
        compute_dtype = resolve_dtype(dtype or self.settings.dtype, self.device)
        existing = self._entries.get(name)
        if existing is not None and existing.state != FAILED:
            raise AlreadyExists(
                f"a model named {name!r} is already registered (state {existing.state}); "
                "unregister it first or choose another name",
                metadata={"model": name},
            )
        if existing is None and len(self._entries) >= self.settings.max_models:
            raise ResourceExhausted(
                f"the server holds at most {self.settings.max_models} models "
                "(--max-models); unregister one first",
                reason="TOO_MANY_MODELS",
            )
        resolved = loading.resolve_under_roots(source_path, self.roots)
        source = await self._inspect(str(resolved), fmt)
        # Re-check after the await: another registration may have taken the name meanwhile.
        current = self._entries.get(name)
        if current is not None and current is not existing:
            raise AlreadyExists(f"a model named {name!r} was registered concurrently")
        if existing is not None:
            self._drop(existing)
        record = ModelRecord(
            name, str(resolved), source.format, dtype, "", now(), dtype_name(compute_dtype)
        )
        entry = _Entry(record, source, compute_dtype)
        self._entries[name] = entry
        self._changes += 1
        task = self._start_load(entry)
        self._publish()
        try:
            try:
                await self._write(self.store.put, record)
            except ChunkscopeError:  # the store is unavailable: nothing registered
                if self._entries.get(name) is entry:
                    self._drop(entry)
                    del self._entries[name]
                    self._changes += 1
                    self._publish()
                raise
            if wait:
                await asyncio.shield(task)
        except asyncio.CancelledError:
            # The caller gave up (deadline, cancel) before the outcome: roll the registration
            # back, so an abandoned call leaves no LOADING model behind.
            if self._entries.get(name) is entry:
                self._remove(entry)
                log.info("registration of %s rolled back: the call was cancelled", name)
            raise
        if wait and entry.state == FAILED and self._entries.get(name) is entry:
            # The caller asked for the outcome and gets it as the error: the failed
            # registration is rolled back, so a refused request leaves nothing behind.
            await self._remove(entry)
            raise FailedPrecondition(
                f"model {name!r} failed to load: {entry.reason}",
                reason="MODEL_LOAD_FAILED",
                metadata={"model": name},
            )
        return self._info(entry)

    def get(self, name: str) -> ModelInfo:
        return self._info(self._entry(name))

    def list_page(self, page_size: int, page_token: str) -> tuple[list[ModelInfo], str, int]:
        if page_size < 0:
            raise InvalidArgument.field("page.page_size", "must be >= 0 (0 = server default)")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _decode_token(page_token)
        names = sorted(self._entries)
        remaining = [n for n in names if n > after]
        page = remaining[:size]
        token = _encode_token(page[-1]) if len(remaining) > size else ""
        return [self._info(self._entries[n]) for n in page], token, len(names)

    async def unregister(self, name: str) -> ModelInfo:
        entry = self._entry(name)
        info = self._info(entry)
        await self._remove(entry)
        return info

    def hook_points(self, name: str, expected_hash: str = "") -> list[HookPointInfo]:
        model = self.ready(name, expected_hash)
        out = []
        for point in model.adapter.names():
            site = model.adapter.resolve(point)
            out.append(HookPointInfo(point, model.hook_shapes[point], site.description, site.block))
        return out

    # ----- for the engine's users ------------------------------------------------------------

    def ready(self, name: str, expected_hash: str = "") -> LoadedModel:
        """The loaded model; FAILED_PRECONDITION if it is not READY or not the expected weights."""
        entry = self._entry(name)
        if entry.state != READY or entry.loaded is None:
            raise FailedPrecondition(
                f"model {name!r} is {entry.state}, not READY"
                + (f": {entry.reason}" if entry.reason else "")
                + ("; retry when loading has finished" if entry.state == LOADING else ""),
                reason="MODEL_NOT_READY",
                metadata={"model": name, "state": entry.state},
            )
        if expected_hash and expected_hash != entry.record.content_hash:
            raise FailedPrecondition(
                f"model {name!r} has content hash {entry.record.content_hash}, "
                f"not the expected {expected_hash}",
                reason="MODEL_HASH_MISMATCH",
                metadata={"model": name},
            )
        return entry.loaded

    async def capture(
        self,
        name: str,
        batch: Sequence[Segment],
        hook_points: Sequence[str],
        max_tokens: int,
        expected_hash: str = "",
        early_exit: bool = True,
    ) -> CapturedBatch:
        """Hidden states of `batch` at `hook_points` (real tokens only).

        Tokenized on the tokenizer pool, run by the device's scheduler (its rows may share a
        forward with other requests' rows), converted to numpy on the pool again.
        """
        model = self.ready(name, expected_hash)
        encoded = await tokens.off_loop(encode, model, batch, max_tokens)
        loop = asyncio.get_running_loop()
        work = CaptureWork(
            model=model, loop=loop, future=loop.create_future(),
            rows=[e.ids for e in encoded], hook_points=tuple(hook_points), early_exit=early_exit,
        )  # fmt: skip
        await self.scheduler_for(model).submit(work)
        return await tokens.off_loop(gather, encoded, work.results)

    def scheduler_for(self, model: LoadedModel) -> Scheduler:
        """The scheduler of the placement `model` is on (created with its first work)."""
        placement = model.placement or (str(model.device),)
        scheduler = self._schedulers.get(placement)
        if scheduler is None:
            scheduler = self._schedulers[placement] = Scheduler(
                "+".join(placement),
                self.settings.max_queue_depth,
                self.settings.max_batch_tokens,
                self.settings.max_batch_delay_ms / 1000,
            )
        return scheduler

    def hooks_installed(self) -> int:
        """chunkscope hooks left on the loaded models (called from the metrics scrape's thread).

        Reads only the module snapshot, which the event loop replaces whole, never the entries
        it mutates.
        """
        total = 0
        for module in self._modules:
            for _ in range(3):
                try:
                    total += hook_count(module)
                    break
                except RuntimeError:  # a forward added or removed a hook mid-count: count again
                    continue
        return total

    # ----- internals ------------------------------------------------------------------------

    def _entry(self, name: str) -> _Entry:
        if not name:
            raise InvalidArgument.field("name", "required: the name a model was registered under")
        entry = self._entries.get(name)
        if entry is None:
            raise NotFound(
                f"no model named {name[:80]!r} is registered; ListModels shows the registered ones",
                reason="MODEL_NOT_FOUND",
                metadata={"model": name[:80]},
            )
        return entry

    async def _inspect(self, path: str, fmt: str) -> ModelSource:
        return await _in_thread(loading.inspect_source, Path(path), fmt)

    def _record_dtype(self, record: ModelRecord) -> torch.dtype:
        """The dtype a registration resolved to when it was made, whatever --dtype is now."""
        if record.compute_dtype in DTYPES:
            return DTYPES[record.compute_dtype]
        return resolve_dtype(record.dtype, self.device)  # schema-1 row: resolved as it was then

    def _write(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    def _start_load(self, entry: _Entry) -> asyncio.Task[None]:
        entry.task = asyncio.get_running_loop().create_task(self._load(entry))
        return entry.task

    async def _load(self, entry: _Entry) -> None:
        started = time.perf_counter()
        try:
            record, model = await _in_thread(self._load_blocking, entry)
        except ChunkscopeError as exc:
            self._fail(entry, exc.message)
            return
        except Exception as exc:  # a load can fail in many library-specific ways
            log.exception("loading model %s failed", entry.record.name)
            self._fail(entry, f"{type(exc).__name__}: {exc}")
            return
        if self._entries.get(entry.record.name) is not entry:
            return  # unregistered while loading: drop the weights
        if record != entry.record:
            # Pin the hashes found. Another replica may have pinned them first: then its files
            # must be these, or dictionaries bound to its hash would run on other weights here.
            try:
                stored = await self._write(self.store.pin, record)
            except ChunkscopeError as exc:
                log.warning("model %s: could not record its hashes: %s", record.name, exc.message)
                stored = None
            if self._entries.get(entry.record.name) is not entry:
                return
            if (
                stored is not None
                and stored.registered_at == record.registered_at
                and stored.files_hash not in ("", record.files_hash)
            ):
                self._fail(
                    entry,
                    f"the model files here ({record.files_hash}) are not those registered "
                    f"({stored.files_hash}); give every replica the same files",
                )
                return
        entry.record = record
        entry.loaded, entry.state, entry.reason = model, READY, ""
        entry.load_seconds = time.perf_counter() - started
        metrics.MODEL_LOAD_SECONDS.labels(entry.source.format).observe(entry.load_seconds)
        self._publish()
        log.info(
            "model %s READY in %.2fs (%s, %s, %s)",
            entry.record.name,
            entry.load_seconds,
            model.family,
            self.device,
            dtype_name(entry.dtype),
        )

    def _load_blocking(self, entry: _Entry) -> tuple[ModelRecord, LoadedModel]:
        """Check the files against the record, then load. Returns the record to keep."""
        record = entry.record
        digest = loading.content_hash(entry.source)
        if not record.content_hash:  # a new registration: pin what the files are now
            record = dataclasses.replace(record, content_hash=digest, files_hash=digest)
        elif record.files_hash:
            # Dictionaries are bound to what the model computes; never serve different files.
            if record.files_hash != digest:
                raise FailedPrecondition(
                    "model files (weights, config or tokenizer) changed since registration "
                    f"({record.files_hash} -> {digest}); unregister and register it again"
                )
        else:
            # Registered before schema 2: its content_hash covers the weights only. Check those
            # the old way, then pin every file from now on, keeping content_hash so the model's
            # dictionaries stay bound to it.
            weights = loading.weights_hash(entry.source)
            if weights != record.content_hash:
                raise FailedPrecondition(
                    f"weights changed since registration ({record.content_hash} -> {weights}); "
                    "unregister and register it again"
                )
            record = dataclasses.replace(record, files_hash=digest)
        if not record.compute_dtype:
            record = dataclasses.replace(record, compute_dtype=dtype_name(entry.dtype))
        offload = self.settings.data_dir / "offload" / record.name
        return record, loading.load(
            entry.source, self.device, entry.dtype, self.settings.device_map,
            str(offload) if self.settings.device_map else "",
        )  # fmt: skip

    def _fail(self, entry: _Entry, reason: str) -> None:
        entry.state, entry.reason, entry.loaded = FAILED, reason, None
        self._publish()
        log.warning("model %s FAILED: %s", entry.record.name, reason)

    def _remove(self, entry: _Entry) -> asyncio.Future[Any]:
        """Forget a registration: in memory now, in the store by the returned write."""
        self._drop(entry)
        del self._entries[entry.record.name]
        self._changes += 1
        self._publish()
        return self._write(self.store.delete, entry.record.name)

    def _drop(self, entry: _Entry) -> None:
        if entry.task is not None and not entry.task.done():
            entry.task.cancel()
        if entry.loaded is not None:
            entry.loaded = None
            # Cycles in the module graph keep its tensors until a full collection, which takes
            # long enough to stall the event loop: run it in a thread (a load in progress may
            # still hold the weights; they go when its thread ends).
            _in_thread(_release_memory, self.device)

    def _publish(self) -> None:
        """Refresh what other threads read: the state gauge and the loaded-module snapshot."""
        for state in (LOADING, READY, FAILED):
            count = sum(1 for e in self._entries.values() if e.state == state)
            metrics.MODELS.labels(state).set(count)
            for name, entry in self._entries.items():
                metrics.MODEL_STATE.labels(name, state).set(1 if entry.state == state else 0)
        for name in self._published - self._entries.keys():  # unregistered: its series go
            for state in (LOADING, READY, FAILED):
                with contextlib.suppress(KeyError):
                    metrics.MODEL_STATE.remove(name, state)
        self._published = set(self._entries)
        self._modules = tuple(e.loaded.module for e in self._entries.values() if e.loaded)

    def _info(self, entry: _Entry) -> ModelInfo:
        model = entry.loaded
        return ModelInfo(
            name=entry.record.name,
            source_path=entry.record.source_path,
            format=entry.source.format,
            state=entry.state,
            state_reason=entry.reason,
            content_hash=entry.record.content_hash,
            architecture=entry.source.family,
            num_blocks=model.adapter.num_blocks if model else 0,
            hidden_size=model.hidden_size if model else 0,
            vocab_size=model.vocab_size if model else 0,
            parameter_count=model.parameter_count if model else 0,
            device=str(self.device),
            dtype=dtype_name(entry.dtype),
            registered_at=entry.record.registered_at,
            load_seconds=entry.load_seconds,
            symbols=model.symbols if model else (),
        )


def _in_thread(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """`fn(*args)` in a daemon thread of its own, as a future of the running loop.

    Not a pool: a call stuck in the OS (a file system that never answers) keeps only its own
    thread, never the next load, and a daemon thread never holds up the process's exit.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # the awaiting task was cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        result, error = None, None
        try:
            result = fn(*args)
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, name="chunkscope-load", daemon=True).start()
    return future


def _release_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _encode_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def _decode_token(token: str) -> str:
    if not token:
        return ""
    try:
        name = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument.field(
            "page.page_token", "not a token this server issued; pass next_page_token unchanged"
        ) from None
    if not NAME_PATTERN.match(name):
        raise InvalidArgument.field(
            "page.page_token", "not a token this server issued; pass next_page_token unchanged"
        )
    return name
