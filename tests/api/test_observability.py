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


def test_an_extraction_the_client_ends_at_its_result_is_ok_in_metrics_and_audit(
    server: ServerProcess, client: Client
) -> None:
    """Clients stop reading at the result message and cancel (issue 11.2): the call completed."""
    import grpc

    from chunkscope.metrics import code_label
    from chunkscope_client.v1 import dictionaries_pb2 as pb
    from chunkscope_client.v1 import dictionaries_pb2_grpc as pbg

    client.register_model("ended-early", "rnn-elman", wait=True)
    request = pb.ExtractDictionaryRequest(
        model={"name": "ended-early"}, hook_points=["rnn.hidden"],
        corpus=pb.Corpus(sequences=pb.SequenceList(
            sequences=[pb.SymbolSequence(symbols=list("EABCDEEABCDE" * 10))])),
        discrete_sequence_chunking=pb.DiscreteSequenceChunkingParams(seed=0),
    )  # fmt: skip
    calls = 12  # before the fix, about one in four was booked as Cancelled or Unknown
    labels = {"grpc_method": "ExtractDictionary", "grpc_type": "server_stream"}
    codes = [code_label(c) for c in grpc.StatusCode]
    before = _scrape(server)
    made = []
    metadata = (("authorization", f"Bearer {os.environ['CHUNKSCOPE_TOKEN']}"),)
    with grpc.insecure_channel(server.address) as channel:
        extract = pbg.DictionaryServiceStub(channel).ExtractDictionary
        for _ in range(calls):
            call = extract(request, metadata=metadata, timeout=120)
            result = next(m for m in call if m.WhichOneof("event") == "result")
            call.cancel()  # what a client that stops at the result does to the stream
            made += [d.id for d in result.result.dictionaries]
    try:
        for _ in range(100):  # the server books a call a moment after the client has left
            after = _scrape(server)
            done = sum(_sample(after, "grpc_server_handled_total", grpc_code=c, **labels)
                       - _sample(before, "grpc_server_handled_total", grpc_code=c, **labels)
                       for c in codes)  # fmt: skip
            if done >= calls:
                break
            time.sleep(0.1)
        delta = {
            c: _sample(after, "grpc_server_handled_total", grpc_code=c, **labels)
            - _sample(before, "grpc_server_handled_total", grpc_code=c, **labels)
            for c in codes
        }
        assert {c: n for c, n in delta.items() if n} == {"OK": calls}
        audited = [
            json.loads(line)
            for line in (server.data_dir / "audit.jsonl").read_text().splitlines()
            if '"ended-early"' in line and "ExtractDictionary" in line
        ]
        assert [r["outcome"] for r in audited] == ["OK"] * calls
        assert "never retrieved" not in server.log()
    finally:
        for dictionary_id in made:
            client.delete_dictionary(dictionary_id)
        client.unregister_model("ended-early")
