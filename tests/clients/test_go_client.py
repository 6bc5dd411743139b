"""The Go client's own suite (clients/go/test.sh: gofmt, go vet, go test) against the fixture."""

from __future__ import annotations

import shutil

import pytest
from suites import run_client_suite


def test_go_client(client_fixture_env: dict[str, str]) -> None:
    if shutil.which("go") is None:
        pytest.fail("go is not installed: the Go client cannot be tested")
    stdout, tail = run_client_suite("go", client_fixture_env, timeout=900)
    # go test's closing line for the root package: the live suite ran (and passed).
    assert "ok  \tgithub.com/chunkscope/chunkscope/clients/go\t" in stdout, tail
