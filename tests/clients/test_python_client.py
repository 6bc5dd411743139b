"""The Python client against the client fixture: its example program (the other languages' suites
run theirs the same way) and its streams read to their end."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import client_fixture
import grpc

from chunkscope_client import Client

EXAMPLE = Path(__file__).resolve().parents[2] / "clients" / "python" / "examples" / "example.py"
TEXT = "On day 3 the cat slept near the window while the cake cooled."


def run_example(env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--address", env["CHUNKSCOPE_TEST_ADDRESS"],
         "--token", env["CHUNKSCOPE_TEST_TOKEN"], "--model", env["CHUNKSCOPE_TEST_MODEL"],
         "--hook-point", env["CHUNKSCOPE_TEST_HOOK_POINT"], "--text", TEXT, "--prompt", "The cat"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_example_lists_detects_and_generates(client_fixture_env: dict[str, str]) -> None:
    lines = run_example(client_fixture_env)
    dictionary = client_fixture_env["CHUNKSCOPE_TEST_DICTIONARY"]
    assert lines[:5] == [
        "models:",
        "  fixture-lm READY llama 2 blocks",
        f"dictionary {dictionary} at blocks.1.resid_post: cat, cake",
        f"detect: {TEXT}",
        "  cat: fired 1 times, first at token 10",
    ]
    assert lines[5] == "  cake: fired 1 times, first at token 31"
    assert lines[6] == "generate with cat inhibited (project_out), greedy, 24 tokens:"
    assert lines[7].startswith("  perturbed: The cat")
    assert lines[8].startswith("  control:   The cat")


class _ReadToEnd(grpc.UnaryStreamClientInterceptor):
    """Records, per server-streaming call, whether the caller read it to its end (the status)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, _Recorded]] = []

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        call = _Recorded(continuation(details, request))
        self.calls.append((details.method, call))
        return call


class _Recorded:
    def __init__(self, call: Any) -> None:
        self.call, self.read_to_end = call, False

    def __iter__(self) -> _Recorded:
        return self

    def __next__(self) -> Any:
        try:
            return next(self.call)
        except StopIteration:
            self.read_to_end = True  # grpc ends the iteration only on an OK status
            raise


def _handled(metrics_url: str, method: str) -> dict[str, float]:
    """grpc_server_handled_total of one method, by grpc_code."""
    with urllib.request.urlopen(metrics_url, timeout=10) as reply:
        text = reply.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("grpc_server_handled_total{") and f'grpc_method="{method}"' in line:
            code = re.search(r'grpc_code="(\w+)"', line)
            assert code is not None, line
            counts[code.group(1)] = float(line.rsplit(" ", 1)[1])
    return counts


def test_extract_dictionary_reads_the_stream_to_the_servers_ok(
    client_fixture_env: dict[str, str],
) -> None:
    """The wrapper returns only once the call has ended with OK, so the server records OK, not
    CANCELLED (it used to return on the result message and drop the call)."""
    env = client_fixture_env
    recorder = _ReadToEnd()
    channel = grpc.insecure_channel(env["CHUNKSCOPE_TEST_ADDRESS"])
    channel = grpc.intercept_channel(channel, recorder)
    request = client_fixture.extraction_request()
    request.hook_points[:] = ["blocks.0.resid_post"]  # not the fixture's: the examples pick that
    before = _handled(env["CHUNKSCOPE_TEST_METRICS_URL"], "ExtractDictionary")
    with Client(channel, timeout=120, token=env["CHUNKSCOPE_TEST_TOKEN"]) as cs:
        [stored] = cs.extract_dictionary(request)
        [(method, call)] = recorder.calls
        assert method == "/chunkscope.v1.DictionaryService/ExtractDictionary"
        assert call.read_to_end and call.call.code() == grpc.StatusCode.OK
        after = _handled(env["CHUNKSCOPE_TEST_METRICS_URL"], "ExtractDictionary")
        cs.delete_dictionary(stored.id)
    assert (stored.hook_point, stored.n_entries) == ("blocks.0.resid_post", 2)
    changed = {code: after[code] - before.get(code, 0.0) for code in after}
    assert {code: n for code, n in changed.items() if n} == {"OK": 1.0}
