"""The TypeScript client's own suite (clients/typescript/test.sh: prettier, tsc, node --test)."""

from __future__ import annotations

import re
import shutil

import pytest
from suites import run_client_suite


def test_typescript_client(client_fixture_env: dict[str, str]) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node/npm are not installed: the TypeScript client cannot be tested")
    stdout, tail = run_client_suite("typescript", client_fixture_env, timeout=900)
    # The node test runner's summary: tests ran, none failed.
    passed = re.search(r"^ℹ pass (\d+)$", stdout, re.MULTILINE)
    assert passed and int(passed.group(1)) > 0, tail
    assert re.search(r"^ℹ fail 0$", stdout, re.MULTILINE), tail
