"""The four example programs, run against the same server, print the same lines.

Each language's suite checks its own example; this runs all four side by side and compares their
whole output, generated text included (greedy decoding on one server is deterministic).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLIENTS = Path(__file__).resolve().parents[2] / "clients"
TEXT = "On day 3 the cat slept near the window while the cake cooled."


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, f"{command}: {done.stderr[-3000:]}"
    return done.stdout


def test_every_language_prints_the_same_concepts_and_text(
    client_fixture_env: dict[str, str],
) -> None:
    env = {**os.environ, **client_fixture_env, "GOTOOLCHAIN": "local"}
    args = [
        "--address", env["CHUNKSCOPE_TEST_ADDRESS"], "--token", env["CHUNKSCOPE_TEST_TOKEN"],
        "--model", env["CHUNKSCOPE_TEST_MODEL"], "--hook-point", env["CHUNKSCOPE_TEST_HOOK_POINT"],
        "--text", TEXT, "--prompt", "The cat",
    ]  # fmt: skip
    typescript = CLIENTS / "typescript"
    build = ("source ./deps.sh && ensure_node_modules && ./node_modules/.bin/tsc -p tsconfig.json"
             " && ./node_modules/.bin/tsc -p tsconfig.test.json")  # fmt: skip
    _run(["bash", "-c", build], typescript, env)
    java = CLIENTS / "java"
    _run(["mvn", "-B", "-q", "compile", "dependency:build-classpath",
          "-Dmdep.outputFile=target/classpath.txt"], java, env)  # fmt: skip
    classpath = f"target/classes:{(java / 'target' / 'classpath.txt').read_text().strip()}"
    outputs = {
        "python": _run([sys.executable, "examples/example.py", *args], CLIENTS / "python", env),
        "go": _run(["go", "run", "./examples/chunkscope-example", *args], CLIENTS / "go", env),
        "typescript": _run(["node", "build/examples/example.js", *args], typescript, env),
        "java": _run(["java", "-cp", classpath, "dev.chunkscope.examples.Example", *args],
                     java, env),
    }  # fmt: skip
    reference = outputs["python"]
    assert f"dictionary {env['CHUNKSCOPE_TEST_DICTIONARY']} at" in reference
    assert "  cat: fired 1 times, first at token 10" in reference.splitlines()
    for language, output in outputs.items():
        assert output == reference, f"{language} differs:\n{output}\n---- python:\n{reference}"
