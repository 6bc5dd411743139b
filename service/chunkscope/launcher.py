"""Start `chunkscope serve` as a child process and wait until it is ready (demo, tests, benches).

The server prints one JSON line `{"event": "ready", "grpc_port": ..., "metrics_port": ...}` on
stdout once it is SERVING; this reads it, so callers can use port 0 and never race for ports.

Servers require API keys by default. Unless auth is disabled in the flags, the launcher makes sure
the caller holds an admin key: $CHUNKSCOPE_TOKEN when set (the caller arranged the keys, as the
test suite does), else the key kept in <data-dir>/launcher.key (created once, mode 0600).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_SRC = Path(__file__).resolve().parent.parent  # service/ (or site-packages when installed)


@dataclass
class ServerProcess:
    """A running `chunkscope serve` child."""

    proc: subprocess.Popen[str]
    port: int
    metrics_port: int | None
    data_dir: Path
    log_path: Path
    token: str = ""
    http_port: int | None = None  # the HTTP front's, with --http-port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send `sig` (graceful by default) and return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def spawn_server(
    data_dir: Path,
    *flags: str,
    port: int = 0,
    metrics_port: int = 0,
    timeout: float = 300,
) -> ServerProcess:
    """Run `python -m chunkscope serve` on 127.0.0.1; its stderr goes to a log in `data_dir`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    token = _admin_token(data_dir, flags)
    log_path = data_dir / f"server-{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns()}.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    args = [
        sys.executable, "-m", "chunkscope", "serve", "--host", "127.0.0.1",
        "--port", str(port), "--metrics-port", str(metrics_port), "--data-dir", str(data_dir),
        *flags,
    ]  # fmt: skip
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log_file, text=True, env=env)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "ready":
            return ServerProcess(
                proc,
                event["grpc_port"],
                event["metrics_port"],
                data_dir,
                log_path,
                token,
                event.get("http_port"),
            )
    proc.kill()
    raise TimeoutError(f"server not ready within {timeout}s:\n{log_path.read_text()}")


def _flag(flags: tuple[str, ...], name: str) -> str | None:
    for i, flag in enumerate(flags):
        if flag == name and i + 1 < len(flags):
            return flags[i + 1]
        if flag.startswith(name + "="):
            return flag.split("=", 1)[1]
    return None


def _admin_token(data_dir: Path, flags: tuple[str, ...]) -> str:
    """An admin key the server will accept ("" when auth is disabled)."""
    from chunkscope.auth import KeyFile

    auth = _flag(flags, "--auth") or os.environ.get("CHUNKSCOPE_AUTH", "required")
    if auth == "disabled":
        return ""
    if os.environ.get("CHUNKSCOPE_TOKEN"):
        return os.environ["CHUNKSCOPE_TOKEN"]
    keys_file = _flag(flags, "--api-keys-file") or os.environ.get("CHUNKSCOPE_API_KEYS_FILE")
    keys = KeyFile(Path(keys_file) if keys_file else data_dir / "keys.json")
    kept = data_dir / "launcher.key"
    if kept.exists() and keys.verify(kept.read_text().strip()):
        return kept.read_text().strip()
    token, _ = keys.create("admin", "launcher")
    fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token
