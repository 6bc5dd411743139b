"""A real Prometheus scrapes the server's metrics endpoint and sees the gRPC series."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from chunkscope_client import Client
from support import ServerProcess

PROMETHEUS = shutil.which("prometheus")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _query(port: int, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as reply:
        body = json.load(reply)
    assert body["status"] == "success"
    return list(body["data"]["result"])


@pytest.mark.skipif(
    PROMETHEUS is None,
    reason="Debian's prometheus is not installed (make test installs it as root)",
)
def test_prometheus_scrapes_grpc_metrics(
    server: ServerProcess, client: Client, tmp_path: Path
) -> None:
    port = _free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: chunkscope\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{server.metrics_port}']\n"
    )
    for _ in range(4):
        list(client.list_models())
    prom = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"),
    )  # fmt: skip
    try:
        query = (
            'grpc_server_handled_total{job="chunkscope",grpc_method="ListModels",grpc_code="OK"}'
        )
        deadline, result = time.monotonic() + 60, []
        while time.monotonic() < deadline and not result:
            time.sleep(1)
            try:
                result = _query(port, query)
            except OSError:
                continue  # Prometheus still starting
        assert result, (tmp_path / "prometheus.log").read_text()[-2000:]
        assert float(result[0]["value"][1]) >= 4
        assert result[0]["metric"]["grpc_service"] == "chunkscope.v1.ModelService"
        up = _query(port, 'up{job="chunkscope"}')
        assert up and up[0]["value"][1] == "1"
        buckets = _query(port, 'grpc_server_handling_seconds_bucket{grpc_method="ListModels"}')
        assert len(buckets) >= 10
    finally:
        prom.terminate()
        prom.wait(30)
