"""The TypeScript client's own suite (clients/typescript/test.sh: prettier, tsc, node --test)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_typescript_client(client_fixture_env: dict[str, str]) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node/npm are not installed: the TypeScript client cannot be tested")
    result = subprocess.run(
        ["bash", str(ROOT / "clients" / "typescript" / "test.sh")],
        env={**os.environ, **client_fixture_env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    tail = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, f"clients/typescript/test.sh exited {result.returncode}:\n{tail}"
    # The node test runner's summary: tests ran, none failed.
    passed = re.search(r"^ℹ pass (\d+)$", result.stdout, re.MULTILINE)
    assert passed and int(passed.group(1)) > 0, tail
    assert re.search(r"^ℹ fail 0$", result.stdout, re.MULTILINE), tail
