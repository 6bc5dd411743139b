"""Running a client language's own test suite against the fixture (used by test_*_client.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def run_client_suite(language: str, env: dict[str, str], timeout: float = 1200) -> tuple[str, str]:
    """`bash clients/<language>/test.sh` against the fixture; (stdout, tail of all output).

    Fails the test, with the tail, when the suite exits non-zero.
    """
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        ["bash", str(root / "clients" / language / "test.sh")],
        env={**os.environ, **env}, cwd=root, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    tail = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, f"clients/{language}/test.sh exited {result.returncode}:\n{tail}"
    return result.stdout, tail
