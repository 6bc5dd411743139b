"""The `chunkscope` command's errors: one line that says what is wrong, and a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _chunkscope(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it: no test-session key file or token in its environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CHUNKSCOPE_API_KEYS_FILE", "CHUNKSCOPE_TOKEN", "CUDA_VISIBLE_DEVICES")
    }
    return subprocess.run(
        [sys.executable, "-m", "chunkscope", *args],
        capture_output=True, text=True, check=False, env=env, timeout=300,
    )  # fmt: skip


def test_serve_on_a_device_that_is_not_there_says_so_without_a_traceback(tmp_path: Path) -> None:
    device = "cuda:99"  # no machine here has a hundred GPUs
    done = _chunkscope("serve", "--data-dir", str(tmp_path), "--port", "0",
                       "--metrics-port", "-1", "--device", device)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    [line] = [x for x in done.stderr.splitlines() if x.startswith("chunkscope serve: error:")]
    assert device in line or "CUDA" in line, done.stderr


def test_audit_since_that_is_not_a_time_is_refused_with_the_accepted_forms(tmp_path: Path) -> None:
    done = _chunkscope("audit", "--data-dir", str(tmp_path), "--since", "yesterday")
    assert done.returncode == 2
    assert "--since: 'yesterday' is not an ISO 8601 date or time" in done.stderr
    assert "2026-05-01T12:00:00+02:00" in done.stderr and done.stdout == ""


def test_audit_since_compares_times_not_strings(tmp_path: Path) -> None:
    lines = [f'{{"time":"2026-05-01T{h}:00:00.000+00:00","method":"m","outcome":"OK"}}\n'
             for h in ("10", "12")]  # fmt: skip
    (tmp_path / "audit.jsonl").write_text("".join(lines))
    # 13:00 at +02:00 is 11:00 UTC: only the 12:00 record is later (as strings, neither is).
    done = _chunkscope("audit", "--data-dir", str(tmp_path), "--since", "2026-05-01T13:00+02:00")
    assert done.returncode == 0, done.stderr
    times = [json.loads(line)["time"] for line in done.stdout.splitlines()]
    assert times == ["2026-05-01T12:00:00.000+00:00"]


def test_keys_and_audit_on_a_data_dir_that_does_not_exist_say_so(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    for args in (("keys", "list"), ("keys", "revoke", "0123456789ab"), ("audit",)):
        done = _chunkscope(*args, "--data-dir", str(missing))
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert f"the directory {missing} does not exist" in done.stderr, (args, done.stderr)
        assert done.stdout == ""
    assert not missing.exists()  # looking did not create it
    (missing).mkdir()
    done = _chunkscope("keys", "list", "--data-dir", str(missing))
    assert done.returncode == 1 and f"no key file at {missing / 'keys.json'}" in done.stderr


def test_keys_refuses_a_key_file_others_may_write(tmp_path: Path) -> None:
    created = _chunkscope("keys", "create", "--data-dir", str(tmp_path), "--role", "admin")
    assert created.returncode == 0, created.stderr
    os.chmod(tmp_path / "keys.json", 0o666)
    for args in (("list",), ("create", "--role", "monitor")):
        done = _chunkscope("keys", *args, "--data-dir", str(tmp_path))
        assert done.returncode == 1
        assert "writable by group or others" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("command", "usage"),
    [("demo-model", "usage: chunkscope demo-model"), ("testbed", "usage: chunkscope testbed")],
)
def test_usage_lines_name_the_chunkscope_commands(command: str, usage: str) -> None:
    done = _chunkscope(command, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith(usage), done.stdout
    assert "python -m" not in done.stdout
