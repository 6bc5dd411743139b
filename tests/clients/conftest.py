"""One live server in the client fixture's state, shared by every client suite in this folder."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import client_fixture


@pytest.fixture(scope="session")
def client_fixture_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    with client_fixture.fixture(tmp_path_factory.mktemp("client-fixture")) as env:
        yield env
