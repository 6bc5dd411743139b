"""The audit log: one JSON line per state-changing call, perturbation or key change.

Append-only (O_APPEND, fsync per record) in the data dir; a record says who (key id and role),
what (method and a summary of the request: bulk bytes left out, long strings shortened), when
(UTC, ISO 8601) and the outcome (status code name). `chunkscope audit` reads it back.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

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
    )
)
MAX_STRING, MAX_ITEMS = 200, 20


def summarize(request: Any) -> dict[str, Any]:
    """A request as JSON for the log: no bytes, strings cut at 200 characters, lists at 20."""
    if not isinstance(request, Message):
        return {}
    return _shorten(json_format.MessageToDict(request))


def _shorten(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_STRING else value[:MAX_STRING] + "…"
    if isinstance(value, list):
        head = [_shorten(v) for v in value[:MAX_ITEMS]]
        return head + ([f"… {len(value) - MAX_ITEMS} more"] if len(value) > MAX_ITEMS else [])
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items() if k not in ("data", "values")}
    return value


class AuditLog:
    """Appends records to one file; safe to share between threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

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
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "key_id": key_id,
            "role": role,
            "method": method,
            "outcome": outcome,
            "request": request or {},
        }
        if detail:
            entry["detail"] = detail
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def read(
        self, *, key_id: str = "", method: str = "", since: str = "", outcome: str = ""
    ) -> Iterator[dict[str, Any]]:
        """Records in order, filtered (method matches by substring; since is an ISO time)."""
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
                if since and entry.get("time", "") < since:
                    continue
                if outcome and entry.get("outcome") != outcome:
                    continue
                yield entry
