"""Persistence: registrations, dictionaries, guard policies and intervention presets, in one of
two backends.

- local (the default): SQLite and safetensors files in --data-dir, for one server;
- PostgreSQL (`--store postgresql://...`): one database shared by every replica of a fleet.

`open_store` picks one from the settings and locks the data dir, which stays per process in
both cases (API keys, audit log, upload spool, offloaded weights): two servers on one data dir
would delete each other's uploads on start-up, so the second is refused.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from chunkscope.config import Settings
from chunkscope.store.dictionaries import DictionaryStore, LocalDictionaryStore
from chunkscope.store.policies import PRESETS, LocalPolicyStore, PolicyStore
from chunkscope.store.registry import ModelStore, RegistryStore

log = logging.getLogger(__name__)

# How long a PostgreSQL store may take to answer before a call is UNAVAILABLE.
STORE_TIMEOUT_SECONDS = 10.0


@dataclass
class Store:
    models: ModelStore
    dictionaries: DictionaryStore
    description: str
    conninfo: str = field(default="", repr=False)  # may hold a password: never logged
    _lock: IO[bytes] | None = field(default=None, repr=False)
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    policies: PolicyStore | None = None  # guard policies (store/policies.py)

    @property
    def presets(self) -> PolicyStore | None:
        """Intervention presets: the policy store's view of its other kind (closed with it)."""
        return None if self.policies is None else self.policies.of(PRESETS)

    @property
    def shared(self) -> bool:
        return self.models.shared

    def watch(self, on_change: Callable[[], object]) -> None:
        """Call `on_change` (from another thread) when any replica changes a registration."""
        if not self.shared:
            return
        from chunkscope.store.postgres import Listener

        listener = Listener(self.conninfo, on_change)
        listener.start()
        self._closers.append(listener.close)

    def close(self) -> None:
        for close in self._closers:
            close()
        if self.policies is not None:
            self.policies.close()
        self.models.close()
        self.dictionaries.close()
        if self._lock is not None:
            self._lock.close()  # releases the flock


def lock_data_dir(data_dir: Path) -> IO[bytes]:
    """Hold an exclusive lock on <data-dir>/.lock for this process's life (released at exit, even
    after kill -9). OSError naming the fix when another server holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / ".lock").open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise OSError(
            f"data dir {data_dir} is in use by another chunkscope server; give each server "
            "(each replica) its own --data-dir"
        ) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n".encode())
    handle.flush()
    return handle


def open_store(settings: Settings) -> Store:
    """The store the settings name, with the data dir locked for this process."""
    lock = lock_data_dir(settings.data_dir)
    try:
        if settings.store:
            from chunkscope.store.postgres import describe, open_postgres, policy_store

            models, dictionaries = open_postgres(
                settings.store, settings.data_dir / "spool", STORE_TIMEOUT_SECONDS
            )
            store = Store(models, dictionaries, describe(settings.store), settings.store, lock)
            store.policies = policy_store(dictionaries)
        else:
            store = Store(
                RegistryStore(settings.data_dir),
                LocalDictionaryStore(settings.data_dir),
                f"local (SQLite and files in {settings.data_dir})",
                _lock=lock,
                policies=LocalPolicyStore(settings.data_dir),
            )
    except BaseException:
        lock.close()
        raise
    log.info("store: %s", store.description)
    return store
