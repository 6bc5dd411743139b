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
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
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
from chunkscope_client.v1 import dictionaries_pb2 as pb  # noqa: E402
from support import save_tiny_lm  # noqa: E402

MODEL = "fixture-lm"
SOURCE = "tiny-llama"
HOOK = "blocks.1.resid_post"
TRAIN = [f"On day {i} the cat slept near the window while the cake cooled." for i in range(14)]


def extraction_request() -> pb.ExtractDictionaryRequest:
    """The fixture's dictionary: PA for "cat" and "cake" on the tiny llama (deterministic)."""
    return pb.ExtractDictionaryRequest(
        model={"name": MODEL},
        hook_points=[HOOK],
        corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
        population_averaging=pb.PopulationAveragingParams(
            concepts=[{"concept": "cat"}, {"concept": "cake"}], n_samples=10, seed=0
        ),
        description="client fixture",
    )


@contextmanager
def fixture(workdir: Path, *server_flags: str) -> Iterator[dict[str, str]]:
    """Start the server, bring it to the fixture state, yield the environment, stop it."""
    models = workdir / "models"
    if not (models / SOURCE / "model.safetensors").exists():
        save_tiny_lm(models / SOURCE, "llama")
    shutil.rmtree(workdir / "data", ignore_errors=True)  # models are reused, state is not
    keys = KeyFile(workdir / "data" / "keys.json")
    token, _ = keys.create("admin", "client-fixture")
    monitor, _ = keys.create("monitor", "client-fixture")
    server: ServerProcess = spawn_server(
        workdir / "data", "--model-roots", str(models), "--device", "cpu",
        "--grace-seconds", "5", "--api-keys-file", str(keys.path), *server_flags, timeout=120,
    )  # fmt: skip
    try:
        with Client.connect(server.address, timeout=120, token=token) as client:
            model = client.register_model(MODEL, SOURCE, wait=True)
            [dictionary] = client.extract_dictionary(extraction_request())
        yield {
            "CHUNKSCOPE_TEST_ADDRESS": server.address,
            "CHUNKSCOPE_TEST_TOKEN": token,
            "CHUNKSCOPE_TEST_MONITOR_TOKEN": monitor,
            "CHUNKSCOPE_TEST_MODEL": MODEL,
            "CHUNKSCOPE_TEST_MODEL_SOURCE": SOURCE,
            "CHUNKSCOPE_TEST_CONTENT_HASH": model.content_hash,
            "CHUNKSCOPE_TEST_DICTIONARY": dictionary.id,
            "CHUNKSCOPE_TEST_HOOK_POINT": HOOK,
            "CHUNKSCOPE_TEST_VECTORS": str(ROOT / "tests" / "vectors"),
            "CHUNKSCOPE_TEST_METRICS_URL": f"http://127.0.0.1:{server.metrics_port}/metrics",
        }
    finally:
        server.terminate()


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
