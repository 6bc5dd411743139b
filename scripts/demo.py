"""The chunkscope demo: start a server, register SmolLM2-135M-Instruct, show what it exposes.

Run by `make demo` after `make demo-model` has put the model under <data-dir>/models. Everything
goes through the public gRPC API with the Python client, as any user's program would.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

from chunkscope.demo_model import DEMO_MODEL_NAME
from chunkscope.launcher import spawn_server
from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import models_pb2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args()

    print(f"starting chunkscope (data dir {args.data_dir}) ...")
    server = spawn_server(args.data_dir, "--grace-seconds", "10")
    try:
        with Client.connect(server.address, timeout=60) as cs:
            print(
                f"server {server.address} health: {cs.health()}, metrics on :{server.metrics_port}"
            )
            started = time.perf_counter()
            try:
                model = cs.register_model(DEMO_MODEL_NAME, DEMO_MODEL_NAME, wait=True)
                print(f"registered {model.name} in {time.perf_counter() - started:.1f}s")
            except ChunkscopeError as err:
                if err.reason != "ALREADY_EXISTS":
                    raise
                model = cs.get_model(DEMO_MODEL_NAME)  # restored from an earlier demo run
                print(f"{model.name} was already registered (restored from {args.data_dir})")

            for m in cs.list_models():
                state = models_pb2.ModelState.Name(m.state).removeprefix("MODEL_STATE_")
                print(
                    f"  model {m.name}: {state}, {m.architecture}, {m.num_blocks} blocks, "
                    f"d={m.hidden_size}, {m.parameter_count / 1e6:.1f}M params, "
                    f"{m.device}/{m.dtype}"
                )
                print(f"        {m.content_hash}")

            points = cs.list_hook_points(DEMO_MODEL_NAME, content_hash=model.content_hash)
            by_block: dict[int, list[str]] = defaultdict(list)
            for p in points:
                by_block[p.block].append(p.name.rsplit(".", 1)[-1])
            width = list(points[0].shape)
            print(f"\n{len(points)} hook points (shape {width}: batch, tokens, hidden):")
            print(f"  {'embed':<10} {'final_norm':<10}")
            for block in sorted(b for b in by_block if b >= 0):
                print(f"  block {block:>2}: {' '.join(by_block[block])}")
    finally:
        code = server.terminate()
        print(f"\nserver stopped (exit {code}); its log: {server.log_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
