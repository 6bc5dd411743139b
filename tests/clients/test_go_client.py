"""The Go client's own suite (clients/go/test.sh: gofmt, go vet, go test) against the fixture."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_go_client(client_fixture_env: dict[str, str]) -> None:
    if shutil.which("go") is None:
        pytest.fail("go is not installed: the Go client cannot be tested")
    result = subprocess.run(
        ["bash", str(ROOT / "clients" / "go" / "test.sh")],
        env={**os.environ, **client_fixture_env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    tail = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, f"clients/go/test.sh exited {result.returncode}:\n{tail}"
    # go test's closing line for the root package: the live suite ran (and passed).
    assert "ok  \tgithub.com/chunkscope/chunkscope/clients/go\t" in result.stdout, tail
