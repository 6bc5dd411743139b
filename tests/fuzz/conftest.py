"""A live server for the fuzzer, with models and dictionaries to aim at, and the request counter.

The fuzzer gets its own server (not the session one), so the snapshots of its data directory see
only what the fuzzer does. The number of requests sent is printed at the end of the run (and
written as JSON to $CHUNKSCOPE_FUZZ_REPORT when that is set).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from fuzz_support import CODES, LM_HOOK, SENT, TRAIN, FuzzEnv

from support import start_server


@pytest.fixture(scope="session", params=["local", "postgresql"])
def fuzz_env(
    model_root: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[FuzzEnv]:
    """Every fuzz test runs against each store: the local one and PostgreSQL."""
    from chunkscope_client import Client
    from chunkscope_client.v1 import dictionaries_pb2 as pb

    store = ""
    if request.param == "postgresql":
        store = request.getfixturevalue("postgres").create_database("fuzz")
    flags = ("--store", store) if store else ()
    server = start_server(tmp_path_factory.mktemp("fuzz-data"), model_root, *flags)
    token = os.environ.get("CHUNKSCOPE_TOKEN", "")
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with Client.connect(server.address, timeout=120, token=token) as c:
        c.register_model("fz-lm", "tiny-llama", wait=True)
        c.register_model("fz-rnn", "rnn-elman", wait=True)
        c.register_model("fz-chat", "tiny-chat", wait=True)  # tiny-llama with a chat template
        lm_hooks = [p.name for p in c.list_hook_points("fz-lm")]
        [pa] = c.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": "fz-lm"}, hook_points=[LM_HOOK],
            corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
            population_averaging=pb.PopulationAveragingParams(
                concepts=[{"concept": "cat"}, {"concept": "cake"}], n_samples=10, seed=0),
        ))  # fmt: skip
        [dsc] = c.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": "fz-rnn"}, hook_points=["rnn.hidden"],
            corpus=pb.Corpus(sequences=pb.SequenceList(
                sequences=[pb.SymbolSequence(symbols=list("EABCDEEABCDEEEABCDE" * 20))])),
            discrete_sequence_chunking=pb.DiscreteSequenceChunkingParams(),
        ))  # fmt: skip
        archive = c.export_dictionary(pa.id)
    channel = grpc.insecure_channel(
        server.address,
        options=[
            ("grpc.max_receive_message_length", 80 << 20),
            ("grpc.max_send_message_length", 80 << 20),
        ],
    )
    env = FuzzEnv(server, channel, metadata, pa.id, dsc.id, archive, lm_hooks, store=store)
    yield env
    channel.close()
    server.terminate()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not SENT:
        return
    total = sum(SENT.values())
    terminalreporter.write_sep("=", f"fuzz: {total} requests sent")
    for name, n in sorted(SENT.items()):
        terminalreporter.write_line(f"  {name:<32} {n}")
    terminalreporter.write_line(
        "  replies by code: " + ", ".join(f"{k} {v}" for k, v in CODES.most_common())
    )
    report = os.environ.get("CHUNKSCOPE_FUZZ_REPORT")
    if report:
        Path(report).write_text(
            json.dumps({"total": total, "by_rpc": dict(SENT), "codes": dict(CODES)}, indent=1)
        )
