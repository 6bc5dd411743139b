"""The shared vectors, replayed through the Python stubs against the client fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

from vector_replay import call_vector, check, load

VECTORS = load(Path(__file__).resolve().parent.parent / "vectors")


def test_there_are_vectors_of_every_kind() -> None:
    kinds = {v["kind"] for v in VECTORS.values()}
    assert kinds == {"unary", "server_stream", "bidi_stream"}
    assert any("error" in v for v in VECTORS.values())


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_vector(name: str, client_fixture_env: dict[str, str]) -> None:
    vector = VECTORS[name]
    assert check(vector, call_vector(vector, client_fixture_env), client_fixture_env) is None


def test_a_changed_reply_is_caught(client_fixture_env: dict[str, str]) -> None:
    vector = VECTORS["detect"]
    outcome = call_vector(vector, client_fixture_env)
    summary = outcome["response"]["results"][0]["summaries"][0]
    summary["bestScore"] *= 1.001
    assert "bestScore" in (check(vector, outcome, client_fixture_env) or "")
    summary["bestScore"] /= 1.001
    outcome["response"]["results"][0]["tokens"].pop()
    assert "expected 37 items" in (check(vector, outcome, client_fixture_env) or "")
