"""A live chunkscope server in a known state, for the client test suites of every language.

It builds a tiny real llama (random weights, from a config), starts `chunkscope serve` on a free
loopback port, registers the model and extracts one Population Averaging dictionary, then either
runs a command with the fixture in its environment or waits until interrupted:

    python scripts/client_fixture.py -- go test ./...      # run one suite, exit with its status
    python scripts/client_fixture.py --env /tmp/fixture.env  # write `export` lines, then wait

The environment every suite reads (the contract; tests/vectors/README.md uses the same names):

    CHUNKSCOPE_TEST_ADDRESS      host:port of the server (plaintext)
    CHUNKSCOPE_TEST_TOKEN        API key with the admin role (send as `authorization: Bearer`)
    CHUNKSCOPE_TEST_MONITOR_TOKEN  API key with the monitor role (may detect, may not register)
    CHUNKSCOPE_TEST_MODEL        name of the registered READY model
    CHUNKSCOPE_TEST_MODEL_SOURCE source path a suite may register again under its own name
    CHUNKSCOPE_TEST_CONTENT_HASH content hash of that model
    CHUNKSCOPE_TEST_DICTIONARY   id of the PA dictionary (concepts "cat" and "cake")
    CHUNKSCOPE_TEST_HOOK_POINT   the dictionary's hook point
    CHUNKSCOPE_TEST_VECTORS      absolute path of tests/vectors
    CHUNKSCOPE_TEST_METRICS_URL  the server's Prometheus /metrics URL

Two replicas, for the clients' balancing and retry tests: a second server (B, its own data dir and
keys file holding the same two keys) has the same model source registered under the same name and
the fixture's dictionary imported (exported from the first), so either one answers the same calls.

    CHUNKSCOPE_TEST_ADDRESSES    "127.0.0.1:<a>,127.0.0.1:<b>": the first server, then B
    CHUNKSCOPE_TEST_METRICS_URLS the two /metrics URLs, comma-separated, in the same order; each
                                 counts grpc_server_handled_total{grpc_method,grpc_code,...}
    CHUNKSCOPE_TEST_DEAD_ADDRESS a loopback host:port where nothing listens (connections refused)
    CHUNKSCOPE_TEST_WORKDIR      the fixture's directory (models/, data/, data-b/)

Both servers live as long as the fixture, which the suites share: none may stop either. A test
that kills a replica starts one of its own with `replica(workdir, "data-<name>", env)`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "service"), str(ROOT / "clients/python/src"), str(ROOT / "tests")]

from chunkscope.auth import KeyFile  # noqa: E402
from chunkscope.launcher import ServerProcess, spawn_server  # noqa: E402
from chunkscope_client import Client  # noqa: E402
from chunkscope_client.v1 import common_pb2  # noqa: E402
from chunkscope_client.v1 import dictionaries_pb2 as pb  # noqa: E402
from support import save_tiny_lm  # noqa: E402

MODEL = "fixture-lm"
SOURCE = "tiny-llama"
HOOK = "blocks.1.resid_post"
TRAIN = [f"On day {i} the cat slept near the window while the cake cooled." for i in range(14)]


def extraction_request() -> pb.ExtractDictionaryRequest:
    """The fixture's dictionary: PA for "cat" and "cake" on the tiny llama (deterministic)."""
    return pb.ExtractDictionaryRequest(
        model=common_pb2.ModelRef(name=MODEL),
        hook_points=[HOOK],
        corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
        population_averaging=pb.PopulationAveragingParams(
            concepts=[pb.ConceptWords(concept="cat"), pb.ConceptWords(concept="cake")],
            n_samples=10,
            seed=0,
        ),
        description="client fixture",
    )


def start_server(workdir: Path, data: str, keys: Path, *server_flags: str) -> ServerProcess:
    """`chunkscope serve` on a free loopback port, data in workdir/data, keys from `keys`."""
    (workdir / data).mkdir(parents=True, exist_ok=True)
    if keys.parent != workdir / data:
        shutil.copyfile(keys, workdir / data / "keys.json")
    return spawn_server(
        workdir / data, "--model-roots", str(workdir / "models"), "--device", "cpu",
        "--grace-seconds", "5", "--api-keys-file", str(workdir / data / "keys.json"),
        *server_flags, timeout=120,
    )  # fmt: skip


@contextmanager
def replica(
    workdir: Path, data: str, env: dict[str, str], *server_flags: str
) -> Iterator[ServerProcess]:
    """One more server in the fixture's state (the same keys, model name and dictionary), for a
    test that stops servers; `env` is the fixture's. Stopped (if still running) on exit."""
    shutil.rmtree(workdir / data, ignore_errors=True)  # models are reused, state is not
    server = start_server(workdir, data, workdir / "data" / "keys.json", *server_flags)
    try:
        token = env["CHUNKSCOPE_TEST_TOKEN"]
        with (
            Client.connect(env["CHUNKSCOPE_TEST_ADDRESS"], timeout=120, token=token) as first,
            Client.connect(server.address, timeout=120, token=token) as client,
        ):
            client.register_model(MODEL, SOURCE, wait=True)
            archive = first.export_dictionary(env["CHUNKSCOPE_TEST_DICTIONARY"])
            imported = client.import_dictionary(archive)
        assert imported.id == env["CHUNKSCOPE_TEST_DICTIONARY"], (imported.id, env)
        yield server
    finally:
        server.terminate()


@contextmanager
def fixture(workdir: Path, *server_flags: str) -> Iterator[dict[str, str]]:
    """Start the servers, bring them to the fixture state, yield the environment, stop them."""
    models = workdir / "models"
    if not (models / SOURCE / "model.safetensors").exists():
        save_tiny_lm(models / SOURCE, "llama")
    shutil.rmtree(workdir / "data", ignore_errors=True)  # models are reused, state is not
    keys = KeyFile(workdir / "data" / "keys.json")
    token, _ = keys.create("admin", "client-fixture")
    monitor, _ = keys.create("monitor", "client-fixture")
    server = start_server(workdir, "data", keys.path, *server_flags)
    dead = socket.socket()  # bound, never listening: connections to it are refused
    try:
        dead.bind(("127.0.0.1", 0))
        with Client.connect(server.address, timeout=120, token=token) as client:
            model = client.register_model(MODEL, SOURCE, wait=True)
            [dictionary] = client.extract_dictionary(extraction_request())
        env = {
            "CHUNKSCOPE_TEST_ADDRESS": server.address,
            "CHUNKSCOPE_TEST_TOKEN": token,
            "CHUNKSCOPE_TEST_MONITOR_TOKEN": monitor,
            "CHUNKSCOPE_TEST_MODEL": MODEL,
            "CHUNKSCOPE_TEST_MODEL_SOURCE": SOURCE,
            "CHUNKSCOPE_TEST_CONTENT_HASH": model.content_hash,
            "CHUNKSCOPE_TEST_DICTIONARY": dictionary.id,
            "CHUNKSCOPE_TEST_HOOK_POINT": HOOK,
            "CHUNKSCOPE_TEST_VECTORS": str(ROOT / "tests" / "vectors"),
            "CHUNKSCOPE_TEST_METRICS_URL": _metrics_url(server),
        }
        with replica(workdir, "data-b", env, *server_flags) as second:
            yield {
                **env,
                "CHUNKSCOPE_TEST_ADDRESSES": f"{server.address},{second.address}",
                "CHUNKSCOPE_TEST_METRICS_URLS": f"{_metrics_url(server)},{_metrics_url(second)}",
                "CHUNKSCOPE_TEST_DEAD_ADDRESS": f"127.0.0.1:{dead.getsockname()[1]}",
                "CHUNKSCOPE_TEST_WORKDIR": str(workdir),
            }
    finally:
        dead.close()
        server.terminate()


def _metrics_url(server: ServerProcess) -> str:
    return f"http://127.0.0.1:{server.metrics_port}/metrics"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="models and data here (default: a temp dir)")
    parser.add_argument("--env", type=Path, help="write the environment as `export` lines here")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- command to run, then stop")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    with (
        tempfile.TemporaryDirectory(prefix="chunkscope-fixture-") as tmp,
        fixture(args.workdir or Path(tmp)) as env,
    ):
        if args.env:
            args.env.write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
        if command:
            return subprocess.call(command, env={**os.environ, **env})
        print("\n".join(f"{k}={v}" for k, v in env.items()), flush=True)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
