"""Bounded load and soak generator on loopback: N concurrent clients for T seconds.

It starts its own server (`chunkscope serve` on free loopback ports, CPU), registers a model,
extracts a small Population Averaging dictionary, then runs `--clients` asyncio clients (grpc.aio,
one channel each) for `--seconds` seconds. Each client loops over a seeded mix of calls:

  Detect         two short texts against the PA dictionary
  StreamDetect   config, then three inputs (the second continues the first)
  Generate       8 new tokens, greedy, one ADD intervention along the dictionary's first chunk
  List           ListModels or ListDictionaries (alternating)

It reports throughput, p50/p95/p99 latency per method, errors by status code, and the server's
resident memory (VmRSS from /proc/<pid>/status, sampled every `--rss-interval` seconds).

Errors are split into expected and unexpected. RESOURCE_EXHAUSTED (admission control: queue
depth, concurrent streams) is expected: the client backs off (50-400 ms, jittered) and retries
the next call. Every other non-OK code is unexpected; the exit status is 1 when there are any.

Memory: "before" is sampled after a warm-up phase (`--warmup-seconds`, same mix, not counted)
so that one-off allocations (allocator arenas, first-call caches) are not mistaken for growth.
Growth is reported as the median RSS of the last minute minus the median of the first minute of
the measured phase (first/last third for runs shorter than 3 minutes), and as the least-squares
trend of all samples in MiB per minute.

Auth: an admin key is created with `python -m chunkscope keys create --data-dir DIR --role admin`
before the server starts; if that command does not exist the run goes on without a key, with a
warning.

Usage:
  .venv/bin/python scripts/loadgen.py --clients 32 --seconds 600 --json build/soak.json
  .venv/bin/python scripts/loadgen.py --clients 8 --seconds 30            # shakedown
  .venv/bin/python scripts/loadgen.py --model demo ...                   # SmolLM2-135M
"""

from __future__ import annotations

import os

# Idle OpenMP threads spin by default; the server shares the cores with this process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import asyncio
import json
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from chunkscope.launcher import ServerProcess, spawn_server
from chunkscope_client import Client
from chunkscope_client.v1 import common_pb2
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import detection_pb2_grpc as dpg
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import dictionaries_pb2_grpc as pbg
from chunkscope_client.v1 import models_pb2 as mp
from chunkscope_client.v1 import models_pb2_grpc as mpg
from chunkscope_client.v1 import perturbation_pb2 as pp
from chunkscope_client.v1 import perturbation_pb2_grpc as ppg

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "data" / "models" / "smollm2-135m-instruct"
METHODS = ("Detect", "StreamDetect", "Generate", "List")
DEFAULT_MIX = "Detect=4,StreamDetect=2,Generate=2,List=2"
EXPECTED_CODES = {grpc.StatusCode.RESOURCE_EXHAUSTED}
CALL_TIMEOUT = 120.0
TRAIN = [
    f"On day {i} the cat slept near the window while the cake cooled on the sill."
    for i in range(14)
] + [f"Day {i}: the children ate cake and the cat watched the birds outside." for i in range(8)]
PROMPTS = [
    "The cat sat on the mat and",
    "Monitoring pipelines stream traffic through the detector",
    "A school of fish swam past the old harbour",
    "Chunks are recurring hidden state patterns",
]


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    codes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    retries: int = 0
    measuring: bool = False


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def read_rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def create_admin_key(data_dir: Path) -> str:
    """An admin key from the CLI, or "" (with a warning) when the CLI has no `keys` command."""
    cmd = [sys.executable, "-m", "chunkscope", "keys", "create", "--data-dir", str(data_dir)]
    cmd += ["--role", "admin"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"warning: cannot create an API key ({exc}); running without one", file=sys.stderr)
        return ""
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].strip().startswith("cks_"):
        print(
            "warning: `chunkscope keys create` is not available "
            f"(exit {done.returncode}: {done.stderr.strip()[-200:]}); running without a key",
            file=sys.stderr,
        )
        return ""
    return lines[-1].strip()


def prepare_model(kind: str, work: Path) -> tuple[Path, str]:
    """(model root, source path) for the tiny config-built model or the demo model."""
    if kind == "demo":
        if not (DEMO_DIR / "config.json").exists():
            raise SystemExit(f"--model demo needs {DEMO_DIR} (make demo-model)")
        return DEMO_DIR.parent, DEMO_DIR.name
    sys.path.insert(0, str(ROOT / "tests"))
    from support import save_tiny_lm  # tests/support.py: real modules, random weights

    root = work / "models"
    save_tiny_lm(root / "tiny-llama", "llama")
    return root, "tiny-llama"


def setup_server(args: argparse.Namespace, work: Path) -> tuple[ServerProcess, str, str, str]:
    """Start the server, register the model, extract a PA dictionary: (server, token, hook, id)."""
    model_root, source = prepare_model(args.model, work)
    data_dir = work / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    token = create_admin_key(data_dir)
    server = spawn_server(
        data_dir, "--model-roots", str(model_root), "--device", "cpu", "--grace-seconds", "10",
        "--log-level", "WARNING", timeout=300,
    )  # fmt: skip
    # The launcher also arranges an admin key of its own; use it when the CLI gave none.
    token = token or getattr(server, "token", "")
    with Client.connect(server.address, timeout=600, token=token) as c:
        c.register_model("load", source, wait=True)
        points = [p.name for p in c.list_hook_points("load") if p.name.endswith("resid_post")]
        hook = points[len(points) // 2]
        [dictionary] = c.extract_dictionary(
            pb.ExtractDictionaryRequest(
                model={"name": "load"},
                hook_points=[hook],
                corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
                population_averaging=pb.PopulationAveragingParams(
                    concepts=[{"concept": "cat"}, {"concept": "cake"}], n_samples=5, seed=0
                ),
                description="loadgen",
            )
        )
    return server, token, hook, dictionary.id


class Worker:
    """One client: its own channel, a seeded RNG, and the call mix."""

    def __init__(
        self, index: int, address: str, token: str, dictionary: str, mix: dict[str, int], seed: int
    ) -> None:
        self.rng = random.Random(seed * 1000 + index)
        self.channel = grpc.aio.insecure_channel(address)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.detect = dpg.DetectionServiceStub(self.channel)
        self.perturb = ppg.PerturbationServiceStub(self.channel)
        self.models = mpg.ModelServiceStub(self.channel)
        self.dicts = pbg.DictionaryServiceStub(self.channel)
        self.dictionary = dictionary
        self.names = list(mix)
        self.weights = [mix[n] for n in self.names]
        self.list_turn = index % 2
        self.config = dp.DetectionConfig(
            model=common_pb2.ModelRef(name="load"), dictionary_ids=[dictionary]
        )

    async def _detect(self) -> None:
        texts = self.rng.sample(TRAIN + PROMPTS, 2)
        request = dp.DetectRequest(
            config=self.config, inputs=[dp.DetectInput(text=t) for t in texts]
        )
        reply = await self.detect.Detect(request, timeout=CALL_TIMEOUT, metadata=self.metadata)
        assert len(reply.results) == 2

    async def _stream_detect(self) -> None:
        a, b = self.rng.sample(PROMPTS, 2)
        messages = [
            dp.StreamDetectRequest(config=self.config),
            dp.StreamDetectRequest(input=dp.DetectInput(text=a)),
            dp.StreamDetectRequest(input=dp.DetectInput(text=" and then"), continues=True),
            dp.StreamDetectRequest(input=dp.DetectInput(text=b)),
        ]
        call = self.detect.StreamDetect(
            iter(messages), timeout=CALL_TIMEOUT, metadata=self.metadata
        )
        replies = [r.sequence async for r in call]
        assert replies == [0, 1, 2], replies

    async def _generate(self) -> None:
        request = pp.GenerateRequest(
            model=common_pb2.ModelRef(name="load"),
            prompt=dp.DetectInput(text=self.rng.choice(PROMPTS)),
            interventions=[
                pp.Intervention(
                    chunk=pp.ChunkRef(dictionary_id=self.dictionary, entry_id=0),
                    mode=pp.INTERVENTION_MODE_ADD,
                    alpha=2.0,
                    positions=pp.Positions(generated=True),
                )
            ],
            sampling=pp.SamplingParams(max_new_tokens=8, seed=self.rng.randrange(1 << 30)),
        )
        call = self.perturb.Generate(request, timeout=CALL_TIMEOUT, metadata=self.metadata)
        done = [m async for m in call if m.done]
        assert len(done) == 1

    async def _list(self) -> None:
        self.list_turn ^= 1
        if self.list_turn:
            page = common_pb2.PageRequest(page_size=10)
            reply = await self.models.ListModels(
                mp.ListModelsRequest(page=page), timeout=CALL_TIMEOUT, metadata=self.metadata
            )
            assert reply.models
        else:
            await self.dicts.ListDictionaries(
                pb.ListDictionariesRequest(model="load"),
                timeout=CALL_TIMEOUT,
                metadata=self.metadata,
            )

    async def run(self, stats: Stats, stop_at: float) -> None:
        calls = {
            "Detect": self._detect,
            "StreamDetect": self._stream_detect,
            "Generate": self._generate,
            "List": self._list,
        }
        try:
            while time.monotonic() < stop_at:
                method = self.rng.choices(self.names, self.weights)[0]
                measuring = stats.measuring
                started = time.perf_counter()
                code = "OK"
                try:
                    await calls[method]()
                except grpc.aio.AioRpcError as error:
                    code = error.code().name
                except AssertionError as error:
                    code = f"BAD_REPLY({error})"[:80]
                elapsed = time.perf_counter() - started
                if not measuring:
                    continue
                stats.codes[method][code] += 1
                if code == "OK":
                    stats.latencies[method].append(elapsed)
                elif code == grpc.StatusCode.RESOURCE_EXHAUSTED.name:
                    stats.retries += 1
                    await asyncio.sleep(self.rng.uniform(0.05, 0.4))
        finally:
            await self.channel.close()


async def sample_rss(
    pid: int, interval: float, samples: list[tuple[float, int]], t0: float
) -> None:
    while True:
        samples.append((round(time.monotonic() - t0, 1), read_rss_kib(pid)))
        await asyncio.sleep(interval)


async def healthy(address: str) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=30
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def run_load(
    args: argparse.Namespace, server: ServerProcess, token: str, dictionary: str
) -> dict[str, Any]:
    mix = parse_mix(args.mix)
    stats = Stats()
    pid = server.proc.pid
    rss_start = read_rss_kib(pid)
    t0 = time.monotonic()
    warm_end = t0 + args.warmup_seconds
    stop_at = warm_end + args.seconds
    workers = [
        Worker(i, server.address, token, dictionary, mix, args.seed) for i in range(args.clients)
    ]
    tasks = [asyncio.create_task(w.run(stats, stop_at)) for w in workers]
    await asyncio.sleep(max(0.0, warm_end - time.monotonic()))
    stats.measuring = True
    measured_t0 = time.monotonic()
    samples: list[tuple[float, int]] = []
    sampler = asyncio.create_task(sample_rss(pid, args.rss_interval, samples, measured_t0))
    await asyncio.gather(*tasks)
    measured = time.monotonic() - measured_t0
    sampler.cancel()
    rss_after = read_rss_kib(pid)
    health = await healthy(server.address)
    return build_report(args, stats, samples, measured, rss_start, rss_after, health)


def build_report(
    args: argparse.Namespace,
    stats: Stats,
    samples: list[tuple[float, int]],
    measured: float,
    rss_start: int,
    rss_after: int,
    health: str,
) -> dict[str, Any]:
    per_method: dict[str, Any] = {}
    expected: Counter[str] = Counter()
    unexpected: Counter[str] = Counter()
    total_ok = 0
    for method in METHODS:
        codes = stats.codes.get(method, Counter())
        lat = stats.latencies.get(method, [])
        total_ok += len(lat)
        for code, n in codes.items():
            if code == "OK":
                continue
            target = expected if code in {c.name for c in EXPECTED_CODES} else unexpected
            target[code] += n
        per_method[method] = {
            "calls": sum(codes.values()),
            "ok": len(lat),
            "per_second": round(len(lat) / measured, 2) if measured else 0.0,
            "p50_ms": round(_percentile(lat, 50) * 1000, 1),
            "p95_ms": round(_percentile(lat, 95) * 1000, 1),
            "p99_ms": round(_percentile(lat, 99) * 1000, 1),
            "codes": dict(codes),
        }
    window = 60.0 if measured >= 180 else measured / 3
    first = [kib for t, kib in samples if t <= window]
    last = [kib for t, kib in samples if t >= measured - window]
    rss_first = statistics.median(first) if first else 0
    rss_last = statistics.median(last) if last else 0
    all_kib = [kib for _, kib in samples] or [0]
    slope = 0.0  # least-squares trend of RSS over the measured phase, KiB per minute
    if len(samples) >= 2:
        ts, ks = [s[0] for s in samples], [s[1] for s in samples]
        mt, mk = statistics.fmean(ts), statistics.fmean(ks)
        var = sum((x - mt) ** 2 for x in ts)
        if var > 0:
            slope = 60 * sum((x - mt) * (y - mk) for x, y in zip(ts, ks, strict=True)) / var
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "clients": args.clients,
        "seconds": round(measured, 1),
        "warmup_seconds": args.warmup_seconds,
        "model": args.model,
        "mix": args.mix,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "grpc": grpc.__version__,
        },
        "total_ok": total_ok,
        "throughput_per_second": round(total_ok / measured, 2) if measured else 0.0,
        "methods": per_method,
        "errors": {
            "expected": dict(expected),
            "unexpected": dict(unexpected),
            "expected_note": "RESOURCE_EXHAUSTED = admission control; the client backs off "
            "50-400 ms and goes on",
        },
        "rss_kib": {
            "server_start": rss_start,
            "before": samples[0][1] if samples else 0,
            "after": rss_after,
            "min": min(all_kib),
            "max": max(all_kib),
            "window_seconds": round(window, 1),
            "first_window_median": rss_first,
            "last_window_median": rss_last,
            "growth_last_minus_first": rss_last - rss_first,
            "trend_kib_per_minute": round(slope, 1),
            "samples": samples,
        },
        "health_after": health,
    }


def logged_bugs(log: str, context: int = 40) -> list[str]:
    """INTERNAL errors the server logged ("bug in ..."), each with its traceback."""
    lines = log.splitlines()
    return ["\n".join(lines[i : i + context]) for i, line in enumerate(lines) if "bug in" in line]


def parse_mix(text: str) -> dict[str, int]:
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip() not in METHODS:
            raise SystemExit(f"--mix: unknown method {name!r}; known: {', '.join(METHODS)}")
        mix[name.strip()] = int(weight or 1)
    return mix


def print_report(report: dict[str, Any]) -> None:
    print(
        f"\n{report['clients']} clients, {report['seconds']} s measured "
        f"(after {report['warmup_seconds']} s warm-up), model {report['model']}: "
        f"{report['total_ok']} OK calls, {report['throughput_per_second']} calls/s"
    )
    print(f"{'method':<14}{'calls':>8}{'ok':>8}{'/s':>8}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    for name, m in report["methods"].items():
        print(
            f"{name:<14}{m['calls']:>8}{m['ok']:>8}{m['per_second']:>8}"
            f"{m['p50_ms']:>10}{m['p95_ms']:>10}{m['p99_ms']:>10}"
        )
    errors = report["errors"]
    print(f"expected errors (retried): {errors['expected'] or 'none'}")
    print(f"unexpected errors: {errors['unexpected'] or 'none'}")
    rss = report["rss_kib"]
    print(
        f"server RSS MiB: start {rss['server_start'] / 1024:.1f}, "
        f"before {rss['before'] / 1024:.1f}, after {rss['after'] / 1024:.1f}, "
        f"min {rss['min'] / 1024:.1f}, max {rss['max'] / 1024:.1f}"
        f"; median first {rss['window_seconds']} s {rss['first_window_median'] / 1024:.1f}, "
        f"last {rss['window_seconds']} s {rss['last_window_median'] / 1024:.1f} "
        f"(growth {rss['growth_last_minus_first'] / 1024:+.1f} MiB; "
        f"trend {rss['trend_kib_per_minute'] / 1024:+.2f} MiB/min)"
    )
    print(f"health after: {report['health_after']}")
    for bug in report.get("server_bugs", [])[:3]:
        print(f"server logged a bug:\n{bug}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--seconds", type=float, default=30, help="measured seconds (default 30)")
    parser.add_argument(
        "--model", choices=("tiny", "demo"), default="tiny",
        help="tiny: a config-built 2-layer llama (default); "
        "demo: data/models/smollm2-135m-instruct",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument("--mix", default=DEFAULT_MIX, help=f"call weights (default {DEFAULT_MIX})")
    parser.add_argument("--warmup-seconds", type=float, default=5.0)
    parser.add_argument("--rss-interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, help="keep the server's data here (default: temp)")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients and --seconds must be positive")

    with tempfile.TemporaryDirectory(prefix="chunkscope-load-") as tmp:
        work = args.work_dir or Path(tmp)
        t = time.monotonic()
        server, token, hook, dictionary = setup_server(args, work)
        print(
            f"server pid {server.proc.pid} on {server.address}; model {args.model}, dictionary "
            f"{dictionary} at {hook}; setup {time.monotonic() - t:.1f} s; auth "
            f"{'on (admin key)' if token else 'off'}",
            flush=True,
        )
        try:
            report = asyncio.run(run_load(args, server, token, dictionary))
        finally:
            status = server.terminate(timeout=60)
        report["server_exit_status"] = status
        report["auth"] = bool(token)
        report["server_bugs"] = logged_bugs(server.log())
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print(f"report written to {args.json}")
    bad = (
        report["errors"]["unexpected"]
        or report["server_bugs"]
        or report["health_after"] != "SERVING"
        or status != 0
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
