"""The OpenAI-compatible HTTP front against gRPC Generate, on the demo model (CPU or CUDA).

One server with both fronts (--http-port). Measured in one run:
  1. overhead: the same chat request (the demo model's chat template applied, greedy, the same
     new tokens) through gRPC Generate (the templated prompt), the HTTP front without streaming
     and the HTTP front streaming (the official `openai` SDK), in paired repetitions whose order
     is shuffled per repetition; medians and the median of the per-repetition ratios;
  2. throughput: 8 concurrent clients through each front, each sending the same requests, the
     fronts alternating round by round; completions/s, tokens/s, p50/p95 latency.
Checks first that both fronts produce the same text. Writes its section into BENCHMARKS.md
between `<!-- http:start -->` and `<!-- http:end -->`.
Usage: .venv/bin/python scripts/bench_http.py [--quick] [--out BENCHMARKS.md] [--models DIR]
"""

from __future__ import annotations

import os

# As the other benchmarks: idle OpenMP threads spinning in the server steal the client's core.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

import argparse
import datetime
import platform
import random
import socket
import statistics
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import openai
from benchdoc import cpu_name, load_average, write_section

from chunkscope.demo_model import DEMO_MODEL_NAME
from chunkscope.launcher import spawn_server
from chunkscope_client import Client
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import perturbation_pb2 as pp

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "Name three things a river carries to the sea."}]
CLIENTS = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prompt(models: Path) -> str:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models / DEMO_MODEL_NAME)
    return str(tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True))


class Fronts:
    """One request through each front; each returns (text, completion tokens)."""

    def __init__(self, grpc: Client, http: openai.OpenAI, prompt: str, tokens: int) -> None:
        self.grpc, self.http, self.prompt, self.tokens = grpc, http, prompt, tokens

    def via_grpc(self) -> tuple[str, int]:
        request = pp.GenerateRequest(
            model={"name": DEMO_MODEL_NAME}, prompt=dp.DetectInput(text=self.prompt),
            sampling=pp.SamplingParams(max_new_tokens=self.tokens, stop_at_eos=True),
        )  # fmt: skip
        for steps, message in enumerate(self.grpc.perturbation.Generate(request, timeout=600)):
            if message.done:
                return message.text, steps
        raise RuntimeError("Generate ended without its last message")

    def via_http(self) -> tuple[str, int]:
        reply = self.http.chat.completions.create(
            model=DEMO_MODEL_NAME,
            messages=MESSAGES,
            temperature=0,
            max_tokens=self.tokens,  # type: ignore[arg-type]
        )
        return reply.choices[0].message.content or "", reply.usage.completion_tokens  # type: ignore[union-attr]

    def via_http_stream(self) -> tuple[str, int]:
        stream = self.http.chat.completions.create(
            model=DEMO_MODEL_NAME, messages=MESSAGES, temperature=0, max_tokens=self.tokens,  # type: ignore[arg-type]
            stream=True, stream_options={"include_usage": True},
        )  # fmt: skip
        text, tokens = [], 0
        for chunk in stream:
            if chunk.choices:
                text.append(chunk.choices[0].delta.content or "")
            if chunk.usage:
                tokens = chunk.usage.completion_tokens
        return "".join(text), tokens


# The server's own time per request, from its metrics: (metric, a label that picks the front).
SERVER_TIME = {
    "grpc": ("grpc_server_handling_seconds_sum", 'grpc_method="Generate"'),
    "http": ("chunkscope_http_request_seconds_sum", 'route="/v1/chat/completions"'),
}


def server_seconds(metrics_url: str, front: str) -> float:
    """The server's total handling seconds so far for `front`'s chat/Generate requests."""
    name, label = SERVER_TIME["grpc" if front == "grpc" else "http"]
    text = urllib.request.urlopen(metrics_url, timeout=60).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and label in line
    )


def bench_overhead(fronts: Fronts, reps: int, metrics_url: str) -> dict[str, Any]:
    arms = {"grpc": fronts.via_grpc, "http": fronts.via_http, "http_stream": fronts.via_http_stream}
    times: dict[str, list[float]] = {k: [] for k in arms}
    inside: dict[str, list[float]] = {k: [] for k in arms}
    rng = random.Random(0)
    for _ in range(reps):
        order = list(arms)
        rng.shuffle(order)
        for name in order:
            before = server_seconds(metrics_url, name)  # outside the timed call
            t0 = time.perf_counter()
            arms[name]()
            times[name].append(time.perf_counter() - t0)
            inside[name].append(server_seconds(metrics_url, name) - before)
    ratios = {
        k: statistics.median(a / b for a, b in zip(times[k], times["grpc"], strict=True))
        for k in ("http", "http_stream")
    }
    return {
        "median_ms": {k: statistics.median(v) * 1e3 for k, v in times.items()},
        "server_ms": {k: statistics.median(v) * 1e3 for k, v in inside.items()},
        "ratio": ratios,
        "diff_ms": {
            k: statistics.median(
                (a - b) * 1e3 for a, b in zip(times[k], times["grpc"], strict=True)
            )
            for k in ("http", "http_stream")
        },
    }


def bench_throughput(
    make: dict[str, Any], per_client: int, rounds: int
) -> dict[str, dict[str, float]]:
    """`make[front]()` gives a new client's request function; fronts alternate per round."""
    latencies: dict[str, list[float]] = {k: [] for k in make}
    walls: dict[str, float] = dict.fromkeys(make, 0.0)
    tokens: dict[str, int] = dict.fromkeys(make, 0)
    for r in range(rounds):
        for name in list(make)[:: 1 if r % 2 == 0 else -1]:
            calls = [make[name]() for _ in range(CLIENTS)]

            def work(call: Any) -> list[tuple[float, int]]:
                out = []
                for _ in range(per_client):
                    t0 = time.perf_counter()
                    _, n = call()
                    out.append((time.perf_counter() - t0, n))
                return out

            t0 = time.perf_counter()
            with ThreadPoolExecutor(CLIENTS) as pool:
                results = [x for chunk in pool.map(work, calls) for x in chunk]
            walls[name] += time.perf_counter() - t0
            latencies[name] += [s for s, _ in results]
            tokens[name] += sum(n for _, n in results)
    return {
        name: {
            "completions_per_s": len(latencies[name]) / walls[name],
            "tokens_per_s": tokens[name] / walls[name],
            "p50_ms": float(np.percentile(latencies[name], 50) * 1e3),
            "p95_ms": float(np.percentile(latencies[name], 95) * 1e3),
            "completions": len(latencies[name]),
        }
        for name in make
    }


def render(r: dict[str, Any]) -> str:
    o, t = r["overhead"], r["throughput"]
    m = o["median_ms"]
    names = {"grpc": "gRPC Generate (stream)", "http": "HTTP front, `stream: false`",
             "http_stream": "HTTP front, `stream: true` (SSE)"}  # fmt: skip
    lines = [
        "<!-- http:start -->",
        "## The OpenAI-compatible HTTP front vs gRPC Generate (demo model, SmolLM2-135M-Instruct)",
        "",
        f"Command: `{r['command']}`; {r['date']}; {r['machine']}; device {r['device']}, float32, "
        f"{r['spin']}. Load average (1/5/15 min) {r['load_start']} at the start, "
        f"{r['load_end']} at the end; {r['seconds']:.0f} s in all.",
        "",
        f"One server with both fronts. The request: one user message ({r['prompt_tokens']} "
        f"prompt tokens with the model's chat template), greedy, {r['tokens']} new tokens "
        "(both fronts produced the same text, checked first). gRPC gets the templated prompt "
        "through the Python client; the HTTP front gets the chat messages through the official "
        f"`openai` SDK {openai.__version__} and applies the template itself.",
        "",
        f"Overhead: {r['reps']} repetitions, each running the three variants once in a shuffled "
        "order; medians, and the median of each repetition's ratio to gRPC.",
        "",
        "| front | median ms (client) | ratio to gRPC (paired) | difference ms (paired) | "
        "median ms in the server |",
        "|---|---|---|---|---|",
        f"| {names['grpc']} | {m['grpc']:.1f} | 1 | 0 | {o['server_ms']['grpc']:.1f} |",
    ]
    for k in ("http", "http_stream"):
        lines.append(
            f"| {names[k]} | {m[k]:.1f} | **{o['ratio'][k]:.3f}x** | {o['diff_ms'][k]:+.1f} | "
            f"{o['server_ms'][k]:.1f} |"
        )
    lines += [
        "",
        "'In the server' is the server's own handling time of each request, from its metrics "
        "(`grpc_server_handling_seconds` for Generate, `chunkscope_http_request_seconds` for the "
        "front; scraped before and after each call, outside the timed call): the rest of the "
        "client's time is the client library and the transport on the same cores.",
    ]
    lines += [
        "",
        f"Throughput: {CLIENTS} concurrent clients (threads, one connection each) per front, "
        f"{r['per_client']} requests each per round, {r['rounds']} rounds alternating the fronts; "
        "the scheduler batches the concurrent rows of both alike.",
        "",
        "| front | completions | completions/s | tokens/s | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|",
    ]
    for k, row in t.items():
        lines.append(
            f"| {names[k]} | {row['completions']} | {row['completions_per_s']:.2f} | "
            f"{row['tokens_per_s']:.1f} | {row['p50_ms']:.0f} | {row['p95_ms']:.0f} |"
        )
    ratio = t["http"]["tokens_per_s"] / t["grpc"]["tokens_per_s"]
    lines += [
        "",
        f"HTTP/gRPC throughput (tokens/s): **{ratio:.3f}x**. The HTTP front's own work per "
        "request is JSON parsing, the chat template (on the tokenizer pool), re-decoding the "
        "text so far at each token (whole characters, stop sequences) and the JSON/SSE "
        "encoding; generation itself is the same scheduler path as gRPC Generate. The clients "
        "run in the benchmark's process on the same cores as the server.",
        "<!-- http:end -->",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke check)")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--models", type=Path, default=ROOT / "data" / "models",
                        help="a models root holding the demo model")  # fmt: skip
    args = parser.parse_args()
    import torch

    reps, per_client, rounds = (3, 1, 1) if args.quick else (15, 2, 2)
    tokens = 8 if args.quick else 24
    device = "cuda" if torch.cuda.is_available() else "cpu"
    models = args.models.resolve()
    command = ".venv/bin/python scripts/bench_http.py" + (" --quick" if args.quick else "")
    command += (
        f" --out {args.out}" if args.out != ROOT / "BENCHMARKS.md" else " --out BENCHMARKS.md"
    )
    started, load_start = time.perf_counter(), load_average()
    prompt = _prompt(models)
    with tempfile.TemporaryDirectory() as tmp:
        server = spawn_server(Path(tmp), "--model-roots", str(models), "--dtype", "float32",
                              "--grace-seconds", "5", "--http-port", str(_free_port()))  # fmt: skip
        try:
            grpc = Client.connect(server.address, timeout=600, token=server.token)
            grpc.register_model(DEMO_MODEL_NAME, DEMO_MODEL_NAME, wait=True)
            url = f"http://127.0.0.1:{server.http_port}/v1"

            def http() -> openai.OpenAI:
                return openai.OpenAI(base_url=url, api_key=server.token, max_retries=0,
                                     timeout=600)  # fmt: skip

            fronts = Fronts(grpc, http(), prompt, tokens)
            want = fronts.via_grpc()
            for got in (fronts.via_http(), fronts.via_http_stream()):
                if got != want:
                    raise SystemExit(f"the fronts disagree: gRPC {want!r}, HTTP {got!r}")
            prompt_tokens = (
                http()
                .chat.completions.create(
                    model=DEMO_MODEL_NAME,
                    messages=MESSAGES,
                    max_tokens=1,  # type: ignore[arg-type]
                )
                .usage.prompt_tokens
            )  # type: ignore[union-attr]
            print("overhead ...", flush=True)
            overhead = bench_overhead(
                fronts, reps, f"http://127.0.0.1:{server.metrics_port}/metrics"
            )
            print("throughput ...", flush=True)

            def grpc_client() -> Any:
                return Fronts(Client.connect(server.address, timeout=600, token=server.token),
                              http(), prompt, tokens).via_grpc  # fmt: skip

            def http_client() -> Any:
                return Fronts(grpc, http(), prompt, tokens).via_http

            throughput = bench_throughput(
                {"grpc": grpc_client, "http": http_client}, per_client, rounds
            )
            grpc.close()
        finally:
            server.terminate()
    results = {
        "command": command, "date": f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "machine": f"{cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, "
                   f"Python {platform.python_version()}",
        "device": device, "spin": f"GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}",
        "load_start": load_start, "load_end": load_average(),
        "seconds": time.perf_counter() - started, "tokens": tokens, "reps": reps,
        "per_client": per_client, "rounds": rounds, "prompt_tokens": prompt_tokens,
        "overhead": overhead, "throughput": throughput,
    }  # fmt: skip
    section = render(results)
    write_section(args.out, section, "http")
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
