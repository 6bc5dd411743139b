"""The Java client's own JUnit suite (clients/java/test.sh), run against the shared live fixture."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_java_client_suite(client_fixture_env: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "clients/java/test.sh")],
        env={**os.environ, **client_fixture_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1200,
        check=False,
    )
    tail = "\n".join(result.stdout.splitlines()[-80:])
    assert result.returncode == 0, f"clients/java/test.sh exited {result.returncode}:\n{tail}"
    assert "Tests run:" in result.stdout and "BUILD SUCCESS" in result.stdout, tail
