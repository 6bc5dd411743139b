"""The audit log: one JSON line per state-changing call, perturbation or key change.

Append-only (O_APPEND) in the data dir; a record says who (key id and role), what (method and a
summary of the request: bulk bytes left out, long strings shortened), when (UTC, ISO 8601) and the
outcome (status code name), and the call's request id. `chunkscope audit` reads it back.

Durability: the server hands records to one writer thread (`submit`), which appends what has
queued up and fsyncs once for the batch, so the event loop never waits on the disk and concurrent
calls share an fsync. A call's record is on disk before its reply is sent (the server awaits the
future); records of calls the client cancelled are queued without waiting. `close` (also run at
interpreter exit) writes what is queued, so a graceful shutdown loses nothing; a kill -9 can lose
only records not yet written, whose calls never got a reply.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

log = logging.getLogger(__name__)

_V1 = "chunkscope.v1."
AUDITED = frozenset(
    _V1 + m
    for m in (
        "ModelService/RegisterModel",
        "ModelService/UnregisterModel",
        "DictionaryService/ExtractDictionary",
        "DictionaryService/ImportDictionary",
        "DictionaryService/DeleteDictionary",
        "PerturbationService/Perturb",
        "PerturbationService/Generate",
        "AnalysisService/OptimizeNeuronLayout",
        "GuardService/PutPolicy",
        "GuardService/DeletePolicy",
        "GuardService/PutPreset",
        "GuardService/DeletePreset",
    )
)
MAX_STRING, MAX_ITEMS = 200, 20


def summarize(request: Any) -> dict[str, Any]:
    """A request as JSON for the log: no bytes, strings cut at 200 characters, lists at 20."""
    if not isinstance(request, Message):
        return {}
    try:
        as_dict = json_format.MessageToDict(request)
    except (ValueError, TypeError, json_format.Error) as exc:  # e.g. a Timestamp out of range
        return {"unprintable": f"{type(exc).__name__}: {str(exc)[:MAX_STRING]}"}
    return _shorten(as_dict)


def _shorten(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + "…"
    if isinstance(value, list):
        head = [_shorten(v) for v in value[:MAX_ITEMS]]
        return head + ([f"… {len(value) - MAX_ITEMS} more"] if len(value) > MAX_ITEMS else [])
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items() if k not in ("data", "values")}
    return value


def _line(
    method: str,
    outcome: str,
    key_id: str,
    role: str,
    request: dict[str, Any] | None,
    detail: str,
    request_id: str = "",
) -> bytes:
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "key_id": key_id,
        "role": role,
        "method": method,
        "outcome": outcome,
        "request": request or {},
    }
    if request_id:
        entry["request_id"] = request_id
    if detail:
        entry["detail"] = detail
    return (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


class AuditLog:
    """Appends records to one file; safe to share between threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[bytes, Future[None]] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None

    def record(
        self,
        *,
        method: str,
        outcome: str,
        key_id: str = "",
        role: str = "",
        request: dict[str, Any] | None = None,
        detail: str = "",
    ) -> None:
        """Append one record now and fsync it (blocking: for the CLI, not the event loop)."""
        self._append([_line(method, outcome, key_id, role, request, detail)])

    def submit(
        self,
        *,
        method: str,
        outcome: str,
        key_id: str = "",
        role: str = "",
        request: dict[str, Any] | None = None,
        detail: str = "",
        request_id: str = "",
    ) -> Future[None]:
        """Queue one record for the writer thread; the future is done once it is on disk."""
        done: Future[None] = Future()
        line = _line(method, outcome, key_id, role, request, detail, request_id)
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_batches, name="chunkscope-audit", daemon=True
                )
                self._writer.start()
                atexit.register(self.close)
            self._queue.put((line, done))
        return done

    def close(self) -> None:
        """Write what is queued and stop the writer thread (it starts again on the next submit)."""
        with self._lock:
            writer, self._writer = self._writer, None
            if writer is None:
                return
            self._queue.put(None)
            atexit.unregister(self.close)
        writer.join()

    def _write_batches(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while batch[-1] is not None:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if batch[-1] is None:
                stop = True
                batch.pop()
            pending = [item for item in batch if item is not None]
            if not pending:
                continue
            error: OSError | None = None
            try:
                self._append([line for line, _ in pending])
            except OSError as exc:
                log.error("could not write the audit log %s: %s", self.path, exc)
                error = exc
            for _, done in pending:
                if done.set_running_or_notify_cancel():  # False: its waiter stopped waiting
                    if error is None:
                        done.set_result(None)
                    else:
                        done.set_exception(error)

    def _append(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(
        self,
        *,
        key_id: str = "",
        method: str = "",
        since: datetime | None = None,
        outcome: str = "",
    ) -> Iterator[dict[str, Any]]:
        """Records in order, filtered (method matches by substring; since: see `parse_time`)."""
        if not self.path.exists():
            return
        with self.path.open() as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line after a crash
                if key_id and entry.get("key_id") != key_id:
                    continue
                if method and method not in entry.get("method", ""):
                    continue
                if since is not None and _time_of(entry) < since:
                    continue
                if outcome and entry.get("outcome") != outcome:
                    continue
                yield entry


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or date-time (UTC when it names no offset); ValueError says what works."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date or time; use e.g. 2026-05-01, 2026-05-01T12:00, "
            "2026-05-01T12:00:00+02:00 or 2026-05-01T10:00:00Z (UTC when no offset is given)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _time_of(entry: dict[str, Any]) -> datetime:
    try:
        return parse_time(str(entry.get("time", "")))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)  # a record without a readable time: the oldest
