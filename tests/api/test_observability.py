"""Metrics endpoint and server reflection, seen by real clients (HTTP scrape, `buf curl`)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from chunkscope_client import ChunkscopeError, Client
from support import ServerProcess

BUF = Path(sys.executable).parent / "buf"


def _scrape(server: ServerProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as r:
        return r.read().decode()


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_rpcs_are_counted_with_their_codes(server: ServerProcess, client: Client) -> None:
    labels = {"grpc_service": "chunkscope.v1.ModelService", "grpc_type": "unary"}
    before = _scrape(server)
    for _ in range(3):
        list(client.list_models())
    with pytest.raises(ChunkscopeError):
        client.get_model("missing-model")
    ok = "grpc_server_handled_total"
    # An aborted RPC's status reaches the client before the interceptor's bookkeeping finishes,
    # so wait (bounded) for the counter rather than reading it once.
    for _ in range(50):
        after = _scrape(server)
        labels_nf = {"grpc_method": "GetModel", "grpc_code": "NotFound", **labels}
        if _sample(after, ok, **labels_nf) > _sample(before, ok, **labels_nf):
            break
        time.sleep(0.1)
    assert (
        _sample(after, ok, grpc_method="ListModels", grpc_code="OK", **labels)
        - _sample(before, ok, grpc_method="ListModels", grpc_code="OK", **labels)
        == 3
    )
    assert (
        _sample(after, ok, grpc_method="GetModel", grpc_code="NotFound", **labels)
        - _sample(before, ok, grpc_method="GetModel", grpc_code="NotFound", **labels)
        == 1
    )
    started = "grpc_server_started_total"
    assert _sample(after, started, grpc_method="GetModel", **labels) >= 1
    inf = _sample(
        after, "grpc_server_handling_seconds_bucket", grpc_method="ListModels", le="+Inf", **labels
    )
    assert inf >= 3
    assert 'le="600.0"' in after
    assert "chunkscope_models{" in after
    # Bounded labels: no model names, request ids or messages leak into label values.
    assert "missing-model" not in after


def test_model_load_time_is_recorded(server: ServerProcess, client: Client) -> None:
    client.register_model("metrics-rnn", "rnn-elman", wait=True)
    text = _scrape(server)
    assert _sample(text, "chunkscope_model_load_seconds_count", format="recurrent") >= 1
    assert _sample(text, "chunkscope_models", state="READY") >= 1
    client.unregister_model("metrics-rnn")


def _buf_curl(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_buf_curl_lists_services_and_calls_them_through_reflection(server: ServerProcess) -> None:
    base = f"http://{server.address}"
    listed = _buf_curl(server, "--list-services", base)
    assert listed.returncode == 0, listed.stderr
    services = set(listed.stdout.split())
    assert {"chunkscope.v1.ModelService", "grpc.health.v1.Health"} <= services

    health = _buf_curl(server, f"{base}/grpc.health.v1.Health/Check", "-d", "{}")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout) == {"status": "SERVING"}

    list_models = f"{base}/chunkscope.v1.ModelService/ListModels"
    anonymous = _buf_curl(server, list_models, "-d", "{}")
    assert anonymous.returncode != 0 and '"code": "unauthenticated"' in anonymous.stderr
    key = ("-H", f"Authorization: Bearer {os.environ['CHUNKSCOPE_TOKEN']}")
    models = _buf_curl(server, *key, list_models, "-d", "{}")
    assert models.returncode == 0, models.stderr
    assert "page" in json.loads(models.stdout)

    missing = _buf_curl(
        server, *key, f"{base}/chunkscope.v1.ModelService/GetModel", "-d", '{"name": "nobody"}'
    )
    assert missing.returncode != 0
    assert "not_found" in missing.stderr.lower() or "not found" in missing.stderr.lower()


def test_health_probe_command_exit_codes(server: ServerProcess) -> None:
    probe = [sys.executable, "-m", "chunkscope.healthcheck", "--timeout", "5", "--address"]
    ok = subprocess.run([*probe, server.address], capture_output=True, text=True, timeout=60)
    assert (ok.returncode, ok.stdout.strip()) == (0, "SERVING")
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    down = subprocess.run([*probe, closed], capture_output=True, text=True, timeout=60)
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr
