"""The Python client's example program against the client fixture (the other languages' suites
run theirs the same way)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
