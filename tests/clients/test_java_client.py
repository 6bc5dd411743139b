"""The Java client's own JUnit suite (clients/java/test.sh), run against the shared live fixture."""

from __future__ import annotations

from suites import run_client_suite


def test_java_client_suite(client_fixture_env: dict[str, str]) -> None:
    stdout, tail = run_client_suite("java", client_fixture_env)
    assert "Tests run:" in stdout and "BUILD SUCCESS" in stdout, tail
