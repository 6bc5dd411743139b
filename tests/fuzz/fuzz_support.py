"""Shared by the fuzzer's conftest and tests: counters, the fixture's data, key helpers."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from support import ServerProcess

SENT: Counter[str] = Counter()  # RPC name -> requests sent (streams count once)
CODES: Counter[str] = Counter()  # status code name -> replies
TRAIN = [f"On day {i} the cat slept near the window while the cake cooled." for i in range(14)]
LM_HOOK = "blocks.1.resid_post"


@dataclass
class FuzzEnv:
    server: ServerProcess
    channel: grpc.Channel
    metadata: tuple[tuple[str, str], ...]
    pa_id: str
    dsc_id: str
    archive: bytes
    lm_hooks: list[str]
    protected_models: tuple[str, ...] = ("fz-lm", "fz-rnn", "fz-chat")
    extra: dict[str, Any] = field(default_factory=dict)
    store: str = ""  # the PostgreSQL URL the server stores in; "" = the local store

    @property
    def work_dir(self) -> Path:
        """Where the server keeps dictionaries (local store) or spools uploads (PostgreSQL)."""
        return self.server.data_dir / ("spool" if self.store else "dictionaries")

    def __repr__(self) -> str:  # hypothesis prints strategies' arguments
        return f"FuzzEnv({self.server.address}, {'postgresql' if self.store else 'local'})"


def keys_cli_available() -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "chunkscope", "keys", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return done.returncode == 0


def create_key(data_dir: Path, role: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "chunkscope", "keys", "create", "--data-dir", str(data_dir)]  # noqa: RUF005
        + ["--role", role],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip().splitlines()[-1].strip()
