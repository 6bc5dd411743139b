"""chunkscope benchmarks: measured ratios and fit costs, written to BENCHMARKS.md.

Run as `.venv/bin/python scripts/bench.py [--quick] [--out BENCHMARKS.md]` (`make bench`). In one
run it measures, with the alternatives interleaved so that machine noise hits them alike:

1. capture overhead on the demo model: plain forward vs `capture_batch` at 1, 30 and 122 hook
   points (median of paired per-batch ratios);
2. gRPC vs in-process: the same small PA extraction through a live server and through the engine
   pieces called directly, plus the round-trip latency of trivial RPCs; 2b. that in-process
   extraction in fresh processes under libgomp's default spin policy vs a throttled one;
3. fit time and peak memory vs number of states for PA, DSC, the cosine dictionary and density
   chunks, each case in a fresh subprocess (peak = VmHWM of that process);
4. the capture bookkeeping (`Captured.add`) cost vs number of segments.

By default the run sets GOMP_SPINCOUNT (torch's OpenMP workers otherwise spin on cores that other
jobs need, which on a shared host swamps every ratio; see `--omp-spin` and section 2b).
Everything talks only to 127.0.0.1; every loop is bounded and every subprocess has a timeout.
This script is a client of the service and its engine: it must not change them, and it writes
only the report (and temporary files under a temporary directory).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from benchdoc import cpu_name

REPO = Path(__file__).resolve().parent.parent
DEMO_MODEL = REPO / "data" / "models" / "smollm2-135m-instruct"
D_MODEL = 576  # hidden size of the demo model, used for the synthetic PA / UCD states
RNN_WINDOW = 2000  # DSC trajectories are windows of this many steps of one long sequence
MAX_TOKENS = 128
BATCH = 8
# libgomp's spin count when this script sets it (see --omp-spin and section 2b).
THROTTLED_SPIN = "1000"


@dataclass(frozen=True)
class Plan:
    """How much of everything one run measures (full run or --quick)."""

    sentences: int  # capture: how many of SENTENCES
    capture_reps: int
    grpc_reps: int
    rpc_calls: int
    spin_pairs: int  # section 2b: (default, throttled) subprocess pairs; 0 skips it
    rnn_iterations: int
    bookkeeping: tuple[int, ...]  # numbers of segments
    worker_timeout: float
    # (N, reps) per fit family; cosine (N, batch, reps); density (N, max_fit_states, reps)
    pa: tuple[tuple[int, int], ...]
    dsc: tuple[tuple[int, int], ...]
    cosine: tuple[tuple[int, int, int], ...]
    density: tuple[tuple[int, int, int], ...]


FULL = Plan(
    sentences=64,
    capture_reps=4,
    grpc_reps=8,
    rpc_calls=200,
    spin_pairs=2,
    rnn_iterations=400,
    bookkeeping=(8_000, 32_000, 64_000),
    worker_timeout=300.0,
    pa=((10_000, 3), (100_000, 3), (1_000_000, 2)),
    dsc=((10_000, 3), (100_000, 3), (1_000_000, 1)),
    cosine=((10_000, 64, 3), (10_000, 1024, 3), (100_000, 64, 1), (100_000, 1024, 2)),
    density=((10_000, 20_000, 3), (30_000, 30_000, 2), (100_000, 20_000, 2), (100_000, 100_000, 1)),
)
QUICK = Plan(
    sentences=8,
    capture_reps=1,
    grpc_reps=1,
    rpc_calls=50,
    spin_pairs=0,
    rnn_iterations=100,
    bookkeeping=(8_000, 32_000),
    worker_timeout=120.0,
    pa=((10_000, 1), (100_000, 1)),
    dsc=((10_000, 1),),
    cosine=((5_000, 1024, 1),),
    density=((5_000, 20_000, 1), (5_000, 1_000, 1)),
)
# A density fit without subsampling at N >= this many states is allowed about three minutes.
DENSITY_FULL_TIMEOUT = 200.0


# 64 sentences of varied length and topic, written for this benchmark.
SENTENCES: tuple[str, ...] = (
    "The ferry left the harbour an hour late because fog had settled over the bay.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "She tuned the old violin twice before the concert, and it still drifted flat.",
    "A binary search halves the interval at every step, so it needs about log n comparisons.",
    "Grandfather kept his seeds in labelled paper envelopes in a biscuit tin.",
    "The committee postponed the vote until the auditors had finished their report.",
    "Volcanic soil is rich in minerals, which is why vineyards climb the slopes of Etna.",
    "He missed the last train and walked home along the canal under a thin moon.",
    "Compound interest rewards patience more than it rewards cleverness.",
    "The recipe calls for two eggs, a cup of flour, a pinch of salt and warm milk.",
    "Octopuses can change colour in a fraction of a second, even though they are colour-blind.",
    "Our flight was diverted to Lisbon, where we spent an unexpected night by the river.",
    "The library's oldest map shows the coastline as it was before the great storm of 1703.",
    "If the test suite takes an hour, nobody runs it, and the bugs pile up quietly.",
    "Wind turbines are quieter than most people expect; the hum is mostly the gearbox.",
    "The children built a dam of stones across the stream and watched the pool fill.",
    "Rising interest rates cooled the housing market within a single quarter.",
    "A good editor cuts the sentence the writer loved most.",
    "Glaciers carve U-shaped valleys, while rivers cut narrow V-shaped ones.",
    "The bakery on our street opens at five, and by seven the croissants are gone.",
    "Vaccines train the immune system to recognise a pathogen before it causes disease.",
    "He stacked the firewood under the eaves so that the rain could not reach it.",
    "The spreadsheet had forty tabs, and only one of them was ever up to date.",
    "Migrating geese fly in a V because each bird rides the updraft of the one ahead.",
    "The museum reopened after a renovation that took six years and twice the budget.",
    "Quantum computers are not faster at everything; they excel at a few special problems.",
    "My neighbour waters her tomatoes at dawn and talks to them when she thinks nobody hears.",
    "The referee stopped the match when the floodlights failed in the second half.",
    "A lighthouse keeper once had to wind the lamp's clockwork by hand every few hours.",
    "Translation is never word for word; idioms have to be rebuilt in the other language.",
    "The startup ran out of money two weeks before the product was ready to ship.",
    "Bees communicate the direction of flowers with a waggle dance on the honeycomb.",
    "In winter the lake freezes so thick that trucks drive across it to the island.",
    "The detective noticed that the clock in the hall had been stopped at ten past nine.",
    "Sourdough needs a starter that has been fed with flour and water for several days.",
    "The orchestra rehearsed the slow movement until the strings breathed together.",
    "Satellites in geostationary orbit circle the Earth once a day, so they seem fixed.",
    "She kept a notebook of every bird she saw, with the date, the place and the weather.",
    "The bridge was closed for repairs, so the buses took a long detour through the hills.",
    "Memory leaks are easy to create and hard to find, especially in long-running servers.",
    "The farmer rotated wheat, beans and clover to keep the field from wearing out.",
    "A sudden hailstorm shredded the market awnings and sent everyone running for cover.",
    "Medieval scribes sometimes wrote complaints about the cold in the margins of manuscripts.",
    "The chess player sacrificed her queen and won the game nine moves later.",
    "Coral reefs cover a tiny fraction of the ocean floor but shelter a quarter of sea life.",
    "The printer jammed again, right before the grant application was due.",
    "Tea was once so valuable that it was kept in locked wooden caddies.",
    "When the power went out, the whole street came outside to look at the stars.",
    "Rust forms when iron meets oxygen and water, slowly turning metal back into ore.",
    "The hikers reached the summit just as the clouds lifted off the ridge.",
    "Good documentation answers the question the reader has, not the one the author had.",
    "The harbour seals sun themselves on the rocks and slide into the water when boats pass.",
    "A thermostat is a simple feedback loop: measure, compare, correct, and repeat.",
    "The novel begins with a funeral and ends, three hundred pages later, with a wedding.",
    "Cheap sensors and open data have changed how cities measure air quality.",
    "The goalkeeper guessed left, the striker shot right, and the stadium went silent.",
    "Ancient Romans used volcanic ash in concrete that still stands two thousand years later.",
    "The app asks for your location even when it has no reason to know it.",
    "Snow muffles sound, which is why a winter forest feels so still.",
    "The accountant found the error in a formula that had been copied down a thousand rows.",
    "Saffron comes from the stigmas of a crocus, picked by hand one flower at a time.",
    "The train to the coast runs along the cliffs, and on clear days you can see France.",
    "Sleep consolidates memory; students who sleep after studying remember more.",
    "At midnight the bells of the old town rang, and the fireworks began over the river.",
)

# The PA extraction of section 2: two concepts, each used at least ten times.
PA_CONCEPTS = ("coffee", "mountain")
PA_TEXTS: tuple[str, ...] = (
    "I drink coffee every morning before I look at the mountain outside my window.",
    "The coffee in the mountain hut was bitter but hot, and we were grateful.",
    "She roasts her own coffee beans in a pan and grinds them by hand.",
    "The mountain road closed after the first snow, and the village was cut off.",
    "A strong coffee after lunch keeps him awake through the afternoon meetings.",
    "From the top of the mountain you can see three lakes and the border.",
    "The café serves coffee from a farm on the slopes of a volcanic mountain.",
    "They argued about whether coffee or tea is better on a cold day.",
    "Every summer the mountain rescue team trains on the north face.",
    "Cold brew coffee steeps for twelve hours in the fridge.",
    "The mountain was hidden by cloud for the whole week of our holiday.",
    "He spilled coffee on the map just where the mountain pass should have been.",
    "Goats climbed the steep mountain meadow looking for fresh grass.",
    "Decaf coffee still contains a little caffeine, just much less.",
    "The mountain hut keeps a logbook that climbers sign when they pass.",
    "A cup of coffee and a slice of cake cost less than a bus ticket.",
    "Avalanche warnings were posted on every mountain trail that weekend.",
    "Her grandmother read fortunes in the grounds left at the bottom of a coffee cup.",
    "The train winds around the mountain in a spiral tunnel to gain height.",
    "The conference ran on coffee, biscuits and very little sleep.",
)


# ----- statistics and machine info ------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (q in [0, 1]) of a non-empty sequence."""
    return float(np.quantile(np.asarray(values, dtype=np.float64), q))


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def process_cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system, all threads) used so far by this process or by `pid`."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def machine_info(device: str) -> dict[str, str]:
    import torch

    cpu = cpu_name()
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "CPU": cpu,
        "cores (os.cpu_count / usable)": f"{os.cpu_count()} / {len(os.sched_getaffinity(0))}",
        "memory": mem,
        "GPU": gpu,
        "benchmark device": device,
        "torch": f"{torch.__version__} ({torch.get_num_threads()} intra-op threads)",
        "numpy": np.__version__,
        "python": platform.python_version(),
        "OS": platform.platform(),
    }


# ----- 1. capture overhead ----------------------------------------------------------------------


@dataclass
class CaptureVariant:
    name: str
    hook_points: tuple[str, ...]  # empty: the plain forward (or tokenization only)
    times: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_capture(model: Any, reps: int, sentences: Sequence[str]) -> list[CaptureVariant]:
    """Per batch, every variant once in a seeded random order; ratios pair with the plain run."""
    import torch

    from chunkscope.corpus import Inputs
    from chunkscope.engine.capture import capture_batch, segments

    names = model.adapter.names()
    resid = tuple(n for n in names if n.endswith(".resid_post"))
    one = (f"blocks.{model.adapter.num_blocks // 2}.resid_post",)
    variants = [
        CaptureVariant("plain forward (`model.module(input_ids, attention_mask)`)", ()),
        CaptureVariant("tokenization only (the part of capture before the forward)", ("tok",)),
        CaptureVariant(f"capture_batch, 1 hook point ({one[0]})", one),
        CaptureVariant(f"capture_batch, {len(resid)} hook points (all resid_post)", resid),
        CaptureVariant(f"capture_batch, {len(names)} hook points (all)", tuple(names)),
    ]
    segs = segments(Inputs(texts=tuple(sentences)), "whole_text")
    batches = [segs[i : i + BATCH] for i in range(0, len(segs), BATCH)]
    encoded = []
    for batch in batches:
        enc = model.tokenizer(
            [s.text for s in batch],
            padding=True,
            truncation=True,
            max_length=MAX_TOKENS,
            return_tensors="pt",
            padding_side="right",
        )
        encoded.append(
            (
                enc["input_ids"].to(model.device),
                enc["attention_mask"].to(model.device),
                int(enc["attention_mask"].sum()),
            )
        )

    def run(variant: CaptureVariant, b: int) -> float:
        ids, mask, _ = encoded[b]
        _sync(model.device)
        start = time.perf_counter()
        if not variant.hook_points:
            with torch.inference_mode():
                model.module(input_ids=ids, attention_mask=mask)
        elif variant.hook_points == ("tok",):
            model.tokenizer(
                [s.text for s in batches[b]],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_offsets_mapping=True,
                return_tensors="pt",
                padding_side="right",
            )
        else:
            capture_batch(model, batches[b], variant.hook_points, MAX_TOKENS, early_exit=False)
        _sync(model.device)
        return time.perf_counter() - start

    # Warm-up: first calls allocate and page in weights. The plain forward and the widest
    # capture exercise everything the other variants use.
    run(variants[0], 0)
    run(variants[-1], 0)
    # A random order, not a rotation: a variant pays for what the previous one left behind (freed
    # memory given back to the OS), so the predecessor must vary too.
    shuffler = random.Random(0)
    for _ in range(reps):
        for b in range(len(batches)):
            order = list(variants)
            shuffler.shuffle(order)
            took = {v.name: run(v, b) for v in order}
            plain = took[variants[0].name]
            for v in variants:
                v.times.append(took[v.name])
                v.tokens.append(encoded[b][2])
                v.ratios.append(took[v.name] / plain)
    return variants


# ----- 2. gRPC vs in-process ---------------------------------------------------------------------


@dataclass
class GrpcResult:
    grpc_s: list[float] = field(default_factory=list)
    server_job_s: list[float] = field(default_factory=list)
    inproc_s: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    server_cpu_s: list[float] = field(default_factory=list)  # server process, per gRPC run
    inproc_cpu_s: list[float] = field(default_factory=list)  # this process, per in-process run
    health_ms: list[float] = field(default_factory=list)
    get_model_ms: list[float] = field(default_factory=list)
    tokens: int = 0
    same_result: bool = False
    server_start_s: float = 0.0
    register_s: float = 0.0
    hook_point: str = ""


def _summary(entries: Sequence[Any]) -> list[tuple[str, int, float]]:
    return [(str(e["label"]), int(e["n_neurons"]), round(float(e["tau"]), 6)) for e in entries]


def extract_in_process(model: Any, hook_point: str) -> tuple[list[tuple[str, int, float]], int]:
    """The engine pieces an extraction runs, minus the server: capture, labels, PA fit."""
    from chunkscope.chunking import pa
    from chunkscope.corpus import Inputs
    from chunkscope.engine import methods
    from chunkscope.engine.capture import Captured, capture_batch, segments

    inputs = Inputs(texts=PA_TEXTS)
    segs = segments(inputs, "whole_text")
    captured = Captured((hook_point,))
    for i in range(0, len(segs), BATCH):
        captured.add(capture_batch(model, segs[i : i + BATCH], (hook_point,), MAX_TOKENS))
    spec = methods.PASpec(tuple((c, (c,)) for c in PA_CONCEPTS), (), 0, pa.PAParams())
    rows = methods.concept_rows(methods.concept_spans(spec, inputs), captured, 0)
    out = methods.fit_population_averaging(
        model, spec, hook_point, captured, rows, None, None, lambda done, total: None
    )
    return _summary(out.entries), captured.n_rows


def bench_grpc(model: Any, device: str, reps: int, n_rpc: int, workdir: Path) -> GrpcResult:
    from chunkscope.launcher import spawn_server
    from chunkscope_client import Client
    from chunkscope_client.v1 import dictionaries_pb2 as dpb

    result = GrpcResult(hook_point=f"blocks.{model.adapter.num_blocks // 2}.resid_post")
    started = time.perf_counter()
    server = spawn_server(
        workdir / "server",
        "--model-roots",
        str(DEMO_MODEL.parent),
        "--device",
        device,
        "--grace-seconds",
        "5",
    )
    result.server_start_s = time.perf_counter() - started
    try:
        with Client.connect(server.address, timeout=120, token=server.token) as cs:
            started = time.perf_counter()
            registered = cs.register_model("bench-smollm2", str(DEMO_MODEL), wait=True)
            result.register_s = time.perf_counter() - started
            request = dpb.ExtractDictionaryRequest(
                model={"name": registered.name, "content_hash": registered.content_hash},
                hook_points=[result.hook_point],
                corpus=dpb.Corpus(texts=dpb.TextList(texts=list(PA_TEXTS))),
                batch_size=BATCH,
                max_tokens=MAX_TOKENS,
                population_averaging=dpb.PopulationAveragingParams(
                    concepts=[dpb.ConceptWords(concept=c) for c in PA_CONCEPTS]
                ),
                description="scripts/bench.py",
            )

            def via_grpc() -> tuple[float, float, list[tuple[str, int, float]]]:
                cpu0 = process_cpu_s(server.proc.pid)
                t0 = time.perf_counter()
                last = None
                for message in cs.extract_dictionary_stream(request, timeout=600):
                    last = message
                took = time.perf_counter() - t0
                result.server_cpu_s.append(process_cpu_s(server.proc.pid) - cpu0)
                assert last is not None and last.HasField("result")
                entries = [
                    {"label": e.label, "n_neurons": e.n_neurons, "tau": e.tau}
                    for e in last.result.dictionaries[0].entries
                ]
                return took, last.result.elapsed_seconds, _summary(entries)

            def in_process() -> tuple[float, list[tuple[str, int, float]], int]:
                cpu0 = process_cpu_s()
                t0 = time.perf_counter()
                summary, n_rows = extract_in_process(model, result.hook_point)
                took = time.perf_counter() - t0
                result.inproc_cpu_s.append(process_cpu_s() - cpu0)
                return took, summary, n_rows

            _, _, grpc_summary = via_grpc()  # warm-up of both paths
            _, local_summary, result.tokens = in_process()
            result.same_result = grpc_summary == local_summary
            result.server_cpu_s.clear()  # the warm-up runs are not reported
            result.inproc_cpu_s.clear()
            for rep in range(reps):
                # Alternate which path goes first, so drift in machine load hits both.
                if rep % 2 == 0:
                    g, job, _ = via_grpc()
                    local, _, _ = in_process()
                else:
                    local, _, _ = in_process()
                    g, job, _ = via_grpc()
                result.grpc_s.append(g)
                result.server_job_s.append(job)
                result.inproc_s.append(local)
                result.ratios.append(g / local)

            for _ in range(10):  # warm-up of the channel and the handlers
                cs.health()
                cs.get_model(registered.name)
            for _ in range(n_rpc):
                t0 = time.perf_counter_ns()
                cs.health()
                t1 = time.perf_counter_ns()
                cs.get_model(registered.name)
                t2 = time.perf_counter_ns()
                result.health_ms.append((t1 - t0) / 1e6)
                result.get_model_ms.append((t2 - t1) / 1e6)
    finally:
        server.terminate()
    return result


# ----- 2b. libgomp spin policy ------------------------------------------------------------------


def spin_worker(timed: int) -> dict[str, Any]:
    """In a fresh process: load the demo model, one warm-up, then `timed` in-process extractions."""
    import torch

    from chunkscope.engine.device import resolve_dtype
    from chunkscope.engine.loading import inspect_source, load

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load(inspect_source(DEMO_MODEL, ""), device, resolve_dtype("auto", device))
    hook_point = f"blocks.{model.adapter.num_blocks // 2}.resid_post"
    extract_in_process(model, hook_point)
    times, cpu = [], []
    for _ in range(timed):
        cpu0, t0 = process_cpu_s(), time.perf_counter()
        extract_in_process(model, hook_point)
        times.append(time.perf_counter() - t0)
        cpu.append(process_cpu_s() - cpu0)
    return {"times": times, "cpu": cpu}


def bench_spin(pairs: int, timed: int, log: Callable[[str], None]) -> dict[str, list[float]]:
    """The section-2 in-process extraction in fresh subprocesses, libgomp's default spin count
    vs GOMP_SPINCOUNT=THROTTLED_SPIN, alternating which goes first."""
    out: dict[str, list[float]] = {
        "default": [],
        "throttled": [],
        "default_cpu": [],
        "throttled_cpu": [],
    }
    for pair in range(pairs):
        order = ["default", "throttled"] if pair % 2 == 0 else ["throttled", "default"]
        for policy in order:
            env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
            env.pop("GOMP_SPINCOUNT", None)
            if policy == "throttled":
                env["GOMP_SPINCOUNT"] = THROTTLED_SPIN
            cmd = [sys.executable, str(Path(__file__).resolve()), "--spin-worker", str(timed)]
            try:
                done = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=300, env=env, check=False
                )
            except subprocess.TimeoutExpired:
                log(f"  spin {policy}: timed out")
                continue
            lines = done.stdout.strip().splitlines()
            if done.returncode != 0 or not lines:
                log(f"  spin {policy}: failed (exit {done.returncode})")
                continue
            result = json.loads(lines[-1])
            out[policy] += result["times"]
            out[f"{policy}_cpu"] += result["cpu"]
            log(f"  spin {policy}: {', '.join(f'{t:.1f}s' for t in result['times'])}")
    return out


# ----- 3. fits: synthetic data and the subprocess worker -----------------------------------------


def planted_concept(
    n: int, d: int = D_MODEL, seed: int = 0, block: int = 65536
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian states with per-neuron scales; 2% of rows hold a concept: 48 neurons pinned near
    a prototype (noise 5% of each neuron's scale). Returns (states [n, d] float32, positives)."""
    rng = np.random.default_rng(seed)
    scale = rng.lognormal(0.0, 0.5, size=d).astype(np.float32)
    offset = rng.standard_normal(d).astype(np.float32)
    x = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, block):  # blocks keep the generator's temporaries small
        part = rng.standard_normal((min(block, n - s), d), dtype=np.float32)
        part *= scale
        part += offset
        x[s : s + block] = part
    positives = np.sort(rng.choice(n, size=max(10, n // 50), replace=False))
    neurons = np.sort(rng.choice(d, size=48, replace=False))
    prototype = offset[neurons] + rng.standard_normal(48).astype(np.float32) * scale[neurons]
    noise = rng.standard_normal((positives.size, 48), dtype=np.float32) * 0.05 * scale[neurons]
    x[positives[:, None], neurons[None, :]] = prototype + noise
    return x, positives


def concept_blobs(
    n: int, d: int = D_MODEL, k: int = 24, seed: int = 0, block: int = 65536
) -> tuple[np.ndarray, np.ndarray]:
    """24 planted clusters (sizes ~ 1/rank^0.8, each a centre of norm 4 plus an 8-dim spread of
    its own), 20% background from one shared 64-dim Gaussian (label -1), isotropic noise 0.15 and
    a common offset. Returns (states [n, d] float32, planted labels [n])."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)).astype(np.float32)
    centres *= 4.0 / np.linalg.norm(centres, axis=1, keepdims=True)
    bases = rng.standard_normal((k, 8, d)).astype(np.float32) / np.float32(math.sqrt(d))
    spread = rng.uniform(0.5, 1.5, size=k).astype(np.float32)
    weights = 1.0 / np.arange(1, k + 1) ** 0.8
    mix = rng.standard_normal((64, d)).astype(np.float32) * np.float32(4.0 / math.sqrt(64 * d))
    shared = rng.standard_normal(d).astype(np.float32) * np.float32(2.0 / math.sqrt(d))
    labels = np.where(rng.random(n) < 0.2, -1, rng.choice(k, size=n, p=weights / weights.sum()))
    x = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, block):
        lab = labels[s : s + block]
        part = rng.standard_normal((lab.size, d), dtype=np.float32)
        part *= 0.15
        part += shared
        for c in range(-1, k):
            idx = np.flatnonzero(lab == c)
            if c < 0:
                part[idx] += rng.standard_normal((idx.size, 64), dtype=np.float32) @ mix
            else:
                z = rng.standard_normal((idx.size, 8), dtype=np.float32) * spread[c]
                part[idx] += centres[c] + z @ bases[c]
        x[s : s + block] = part
    return x, labels


def status_mib(key: str) -> float:
    """A memory figure of this process from /proc/self/status (VmHWM: peak, VmRSS: now), in MiB.

    Not `ru_maxrss`: Linux carries it over fork + exec, so a worker started by a large parent
    would report the parent's size; /proc/self/status describes the worker's own address space.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def reset_peak_rss() -> bool:
    """Restart VmHWM from the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def run_case(spec: dict[str, Any]) -> dict[str, Any]:
    """One fit in this (fresh) process: make the data, fit, report time, memory and quality."""
    method, n = spec["method"], int(spec["n"])
    t0 = time.perf_counter()
    quality: dict[str, Any] = {}
    fit: Callable[[], Any]
    if method == "pa":
        from chunkscope.chunking import pa

        states, positives = planted_concept(n)

        def fit() -> Any:
            return pa.fit_concept(states, positives, pa.PAParams())

    elif method == "dsc":
        from chunkscope.chunking import dsc

        windows = np.load(spec["data"])
        trajectories = list(windows)

        def fit() -> Any:
            return dsc.fit(trajectories, dsc.DSCParams())

    else:
        from chunkscope.chunking import ucd

        states, planted = concept_blobs(n)
        if method == "cosine":
            params = ucd.CosineParams(k=256, epochs=spec["epochs"], batch_size=spec["batch"])

            def fit() -> Any:
                return ucd.fit_cosine(states, params, device=spec["device"])

        else:
            dparams = ucd.DensityParams(max_fit_states=spec["max_fit_states"])

            def fit() -> Any:
                return ucd.fit_density(states, dparams)

    generate_s = time.perf_counter() - t0
    setup_peak = status_mib("VmHWM")  # making the data may have peaked above the fit
    reset = reset_peak_rss()
    at_start = status_mib("VmRSS") if reset else setup_peak
    t0 = time.perf_counter()
    out = fit()
    fit_s = time.perf_counter() - t0
    fit_peak = status_mib("VmHWM")
    if method == "pa":
        quality = {
            "neurons": int(out.neurons.size),
            "tpr": out.train.tpr,
            "fpr": out.train.fpr,
        }
    elif method == "dsc":
        quality = {"states": int(out.state_bins.shape[0]), "chunks": len(out.chunks)}
    elif method == "cosine":
        quality = {"dead": int(out.dead.size), "mean_max_cos": out.mean_max_cos}
    else:
        from sklearn.metrics import adjusted_rand_score

        np.save(spec["labels_out"], out.labels)
        quality = {
            "clusters": int(out.prototypes.shape[0]),
            "noise": out.noise_fraction,
            "fit_states": out.fit_states,
            "ari_planted": float(adjusted_rand_score(planted, out.labels)),
        }
    return {
        "fit_s": fit_s,
        "generate_s": generate_s,
        "rss_at_start_mib": at_start,
        "fit_peak_mib": fit_peak,
        "process_peak_mib": max(setup_peak, fit_peak),
        "peak_reset": reset,
        "quality": quality,
    }


@dataclass
class FitCase:
    key: str
    method: str
    label: str
    n: int
    reps: int
    timeout: float
    spec: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    failure: str = ""


def run_worker(case: FitCase) -> None:
    spec = {"method": case.method, "n": case.n, **case.spec}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=case.timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        case.failure = f"did not finish within {case.timeout:.0f} s and was stopped"
        return
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        case.failure = f"worker failed (exit {done.returncode}): {tail[0][:200]}"
        return
    case.runs.append(json.loads(lines[-1]))


def make_trajectories(n_values: Sequence[int], iterations: int, out_dir: Path) -> dict[str, Any]:
    """Train the reflection RNN (d = 12) and save its hidden trajectories for each N."""
    import torch

    from chunkscope.engine.recurrent import RecurrentConfig
    from chunkscope.testbeds.sequences import alphabet, reflection
    from chunkscope.testbeds.train import build_model, next_symbol_accuracy, train_rnn

    train_seq = reflection()
    config = RecurrentConfig(
        architecture="elman", vocab=alphabet(train_seq), hidden_size=12, nonlinearity="linear"
    )
    started = time.perf_counter()
    net = build_model(config, seed=0)
    train_rnn(net, train_seq, iterations=iterations, seed=0)
    net.eval()
    info: dict[str, Any] = {
        "train_s": time.perf_counter() - started,
        "iterations": iterations,
        "accuracy": next_symbol_accuracy(net, train_seq),
        "files": {},
    }
    for n in n_values:
        # A fresh sequence from the same generator (another seed), cut into windows.
        seq = reflection(n_repeats=n // 10 + 10, seed=2)[:n]
        tokens = net.encode(seq).view(n // RNN_WINDOW, RNN_WINDOW)
        with torch.inference_mode():
            _, hidden = net(tokens)
        path = out_dir / f"reflection-{n}.npy"
        np.save(path, hidden.float().numpy())
        info["files"][n] = str(path)
    return info


def build_cases(plan: Plan, device: str, workdir: Path, dsc_files: dict[int, str]) -> list[FitCase]:
    """The fit cases of a plan."""
    t = plan.worker_timeout
    cases = [FitCase(f"pa-{n}", "pa", "PA (fit_concept)", n, reps, t, {}) for n, reps in plan.pa]
    for n, reps in plan.dsc:
        cases.append(FitCase(f"dsc-{n}", "dsc", "DSC (fit)", n, reps, t, {"data": dsc_files[n]}))
    for n, batch, reps in plan.cosine:
        spec = {"epochs": 2, "batch": batch, "device": device}
        label = f"cosine (K=256, 2 epochs, batch {batch})"
        cases.append(FitCase(f"cos-{n}-{batch}", "cosine", label, n, reps, t, spec))
    for n, mfs, reps in plan.density:
        sub = n > mfs
        label = f"density (subsample {mfs:,} + assign)" if sub else "density (no subsample)"
        spec = {"max_fit_states": mfs, "labels_out": str(workdir / f"density-{n}-{mfs}.npy")}
        timeout = DENSITY_FULL_TIMEOUT if (not sub and n >= 100_000) else t
        cases.append(FitCase(f"den-{n}-{mfs}", "density", label, n, reps, timeout, spec))
    return cases


def run_fits(cases: list[FitCase], log: Callable[[str], None]) -> None:
    """Round-robin over cases, one fresh subprocess per repetition."""
    for rep in range(max(c.reps for c in cases)):
        for case in cases:
            if rep < case.reps and not case.failure:
                t0 = time.perf_counter()
                run_worker(case)
                status = case.failure or f"fit {case.runs[-1]['fit_s']:.2f}s"
                log(f"  {case.key} rep {rep + 1}/{case.reps}: {status} "
                    f"(wall {time.perf_counter() - t0:.0f}s)")  # fmt: skip


# ----- 4. capture bookkeeping ---------------------------------------------------------------------


def bench_bookkeeping(n_segments: Sequence[int]) -> list[tuple[int, float]]:
    """`Captured.add` of 8-segment batches (20 tokens each, d = 4) as the extraction calls it."""
    from chunkscope.engine.capture import Captured, CapturedBatch, Segment

    out = []
    for total in n_segments:
        segs = [Segment(0, 0, "x")] * BATCH
        batch = CapturedBatch(
            segs,
            {"h": np.zeros((BATCH * 20, 4), np.float32)},
            [20] * BATCH,
            [[(0, 1)] * 20] * BATCH,
            [np.zeros(20, np.int64)] * BATCH,
        )
        captured = Captured(("h",))
        t0 = time.perf_counter()
        for _ in range(total // BATCH):
            captured.add(batch)
            _ = captured.n_rows  # extraction._capture reads it once per batch (memory check)
        out.append((total, time.perf_counter() - t0))
    return out


# ----- report ---------------------------------------------------------------------------------


def _fmt(x: float, digits: int = 2) -> str:
    return f"{x:,.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def render(
    info: dict[str, str],
    meta: dict[str, Any],
    capture: list[CaptureVariant],
    grpc_result: GrpcResult,
    spin: dict[str, list[float]],
    cases: list[FitCase],
    rnn: dict[str, Any],
    ari_sub_vs_full: dict[int, float],
    bookkeeping: list[tuple[int, float]],
) -> str:
    md: list[str] = ["# chunkscope benchmarks", ""]
    md += [
        "Generated by `scripts/bench.py` (`make bench`); every number below was measured by "
        "the run described here. Re-run to refresh; do not edit by hand.",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}; total wall time {meta['total_s'] / 60:.1f} min"
        + (
            " (**--quick**: reduced set, a smoke check, not for comparison)"
            if meta["quick"]
            else ""
        ),
        f"- load average (1/5/15 min) at start {meta['load_start']}, at end {meta['load_end']}"
        " — this machine is shared; others' jobs ran during the benchmark, so absolute times are"
        " noisy and the paired ratios are the numbers to trust",
    ]
    md += [f"- {k}: {v}" for k, v in info.items()]
    md += [f"- OpenMP: {meta['gomp_spincount']} in this process and its children (section 2b)"]
    md += [""]

    # 1. capture
    plain = capture[0]
    md += ["## 1. Capture overhead (demo model, real text)", ""]
    md += [
        f"SmolLM2-135M-Instruct, {meta['dtype']} on {info['benchmark device']}; "
        f"{len(meta['sentences'])} hand-written sentences, batch {BATCH}, max_tokens "
        f"{MAX_TOKENS}, right padding ({sum(plain.tokens) // max(1, meta['capture_reps'])} "
        f"real tokens per pass over the set). {meta['capture_reps']} repetition(s) of "
        f"{len(plain.times) // max(1, meta['capture_reps'])} batches; per batch every variant "
        "ran once in a seeded random order, and each ratio is paired with the plain forward of the "
        "same batch and repetition. Load average after this section: "
        f"{meta['load_capture']}; this process used {meta['capture_cpu_share']:.2f} CPU "
        f"seconds per wall second (at most {torch_threads()} with its {torch_threads()} torch "
        "threads; less means other jobs took the cores).",
        "",
    ]
    rows = []
    for v in capture:
        tps = [tok / t for tok, t in zip(v.tokens, v.times, strict=True)]
        rows.append(
            [
                v.name,
                _fmt(median(v.times) * 1e3, 1),
                _fmt(min(v.times) * 1e3, 1),
                _fmt(median(tps), 0),
                _fmt(median(v.ratios), 3),
                f"{_fmt(quantile(v.ratios, 0.25), 3)}–{_fmt(quantile(v.ratios, 0.75), 3)}",
            ]
        )
    md += _table(
        [
            "variant",
            "median ms / batch",
            "min ms / batch",
            "median tokens/s",
            "× plain (median)",
            "× plain IQR",
        ],
        rows,
    )
    md += [
        "",
        "`capture_batch` = tokenization with offsets + forward with scoped hooks + copying the "
        "real-token rows of every captured point to float32 numpy. The plain forward gets "
        "pre-tokenized tensors; both compute the logits (capture runs with `early_exit=False` "
        "here, so this measures the hooks' cost alone; the batching section measures what "
        "stopping at the deepest hook point saves).",
        "",
    ]

    # 2. gRPC
    g = grpc_result
    md += ["## 2. gRPC vs in-process (same PA extraction)", ""]
    md += [
        f"{len(PA_TEXTS)} texts ({g.tokens} tokens), concepts {', '.join(PA_CONCEPTS)}, hook "
        f"point {g.hook_point}, batch {BATCH}, max_tokens {MAX_TOKENS}, default PAParams. "
        "gRPC: `Client.extract_dictionary_stream` against a live `chunkscope serve` child "
        "(127.0.0.1, same machine, insecure channel); the server also validates, writes the "
        "dictionary (safetensors + manifest) and streams progress. In-process: `segments` + "
        "`capture_batch` + `methods.concept_rows` + `methods.fit_population_averaging` "
        "(which calls `pa.fit_concept`) on a model loaded in the benchmark process. "
        f"{len(g.grpc_s)} paired repetitions after one warm-up each, alternating which path "
        f"goes first. Entries identical on both paths (label, |C|, τ): "
        f"**{'yes' if g.same_result else 'NO'}**. Server start {g.server_start_s:.1f} s, "
        f"RegisterModel(wait) {g.register_s:.1f} s (not in the ratio). Load average after "
        f"this section: {meta['load_grpc']}. CPU seconds per wall second of the process doing "
        f"the work (median): server during gRPC runs "
        f"{median([c / w for c, w in zip(g.server_cpu_s, g.grpc_s, strict=True)]):.2f}, "
        f"benchmark process during in-process runs "
        f"{median([c / w for c, w in zip(g.inproc_cpu_s, g.inproc_s, strict=True)]):.2f}.",
        "",
    ]
    overhead = [a - b for a, b in zip(g.grpc_s, g.inproc_s, strict=True)]
    transport = [a - b for a, b in zip(g.grpc_s, g.server_job_s, strict=True)]
    md += _table(
        ["measure", "median", "min", "max"],
        [
            [
                "gRPC, client wall time (s)",
                _fmt(median(g.grpc_s), 3),
                _fmt(min(g.grpc_s), 3),
                _fmt(max(g.grpc_s), 3),
            ],
            [
                "gRPC, server-reported job time `elapsed_seconds` (s)",
                _fmt(median(g.server_job_s), 3),
                _fmt(min(g.server_job_s), 3),
                _fmt(max(g.server_job_s), 3),
            ],
            [
                "in-process (s)",
                _fmt(median(g.inproc_s), 3),
                _fmt(min(g.inproc_s), 3),
                _fmt(max(g.inproc_s), 3),
            ],
            [
                "**gRPC / in-process (paired ratio)**",
                f"**{_fmt(median(g.ratios), 3)}**",
                _fmt(min(g.ratios), 3),
                _fmt(max(g.ratios), 3),
            ],
            [
                "gRPC − in-process (s)",
                _fmt(median(overhead), 3),
                _fmt(min(overhead), 3),
                _fmt(max(overhead), 3),
            ],
            [
                "client wall − server job time (s): transport, decode, queueing",
                _fmt(median(transport), 3),
                _fmt(min(transport), 3),
                _fmt(max(transport), 3),
            ],
        ],
    )
    md += ["", f"Trivial RPC round trips ({len(g.health_ms)} calls each, interleaved):", ""]
    md += _table(
        ["RPC", "p50 ms", "p95 ms", "mean ms", "max ms"],
        [
            [
                name,
                _fmt(quantile(vals, 0.5), 3),
                _fmt(quantile(vals, 0.95), 3),
                _fmt(statistics.fmean(vals), 3),
                _fmt(max(vals), 3),
            ]
            for name, vals in (
                ("grpc.health.v1.Health/Check", g.health_ms),
                ("ModelService/GetModel", g.get_model_ms),
            )
        ],
    )
    md += [""]

    # 2b. spin policy
    md += ["## 2b. OpenMP spin policy: the in-process path in fresh processes", ""]
    if spin["default"] and spin["throttled"]:
        md += [
            "torch's CPU kernels run on libgomp (GNU OpenMP), whose idle workers spin before "
            "they sleep. The same in-process extraction as in section 2, each run in a fresh "
            "subprocess (model load and one warm-up not timed, then 2 timed extractions), "
            f"with libgomp's default spin count vs `GOMP_SPINCOUNT={THROTTLED_SPIN}`; "
            f"{len(spin['default']) // 2} pair(s) of subprocesses, alternating which goes "
            f"first. Load average after this section: {meta['load_spin']}.",
            "",
        ]
        rows = []
        for policy, label in (
            ("default", "libgomp default spin"),
            ("throttled", f"GOMP_SPINCOUNT={THROTTLED_SPIN}"),
        ):
            t, c = spin[policy], spin[f"{policy}_cpu"]
            rows.append(
                [label, _fmt(median(t), 2), _fmt(min(t), 2), _fmt(max(t), 2), _fmt(median(c), 2)]
            )
        md += _table(["in-process extraction", "median s", "min s", "max s", "median CPU s"], rows)
        md += [
            "",
            "Default / throttled (medians): "
            f"×{median(spin['default']) / median(spin['throttled']):.2f} wall time. This run "
            "itself used "
            f"{meta['gomp_spincount']} (see `--omp-spin`).",
            "",
        ]
    else:
        md += ["Not run (`--quick`), or both policies did not finish.", ""]

    # 3. fits
    md += ["## 3. Fit time and peak memory vs number of states", ""]
    md += [
        "Each repetition is a fresh subprocess that makes its data, then times the fit alone "
        "(`time.perf_counter`). Memory comes from the subprocess's own /proc/self/status "
        "(not `ru_maxrss`, which Linux carries over fork + exec, so a worker would report this "
        "large parent's size): 'RSS at fit start' is VmRSS once the data exist (interpreter, "
        "libraries — torch for the UCD methods — and the input states); the peak is then "
        "reset (`/proc/self/clear_refs`) so that 'peak during fit' is the VmHWM of the fit "
        "alone, and 'fit adds' = peak during fit − RSS at fit start, the memory the fit needed "
        "on top of its input. 'process peak' includes making the data. Repetitions run "
        "round-robin over the cases; times are medians, memory the maximum over repetitions. "
        "A case that failed or ran out of time says so.",
        "",
        "Data:",
        "",
        f"- PA: d = {D_MODEL} Gaussian states (per-neuron log-normal scales, random offsets); 2% "
        "of rows hold a planted concept: 48 neurons pinned near a prototype with noise 5% of "
        "their scale. Default PAParams (5 samples, 40 tolerances, accuracy criterion). The "
        "result column describes the fit, it is not a quality benchmark: PA's ball is sized by "
        "its 5 samples' own distances to their mean, so positives outside that tight ball are "
        "missed.",
        f"- cosine / density: d = {D_MODEL} planted clusters: 24 clusters (sizes ∝ 1/rank^0.8, "
        "centre of norm 4 plus an 8-dim within-cluster spread), 20% background drawn from one "
        "shared 64-dim Gaussian (planted label −1), isotropic noise 0.15, a common offset. "
        "Cosine: K = 256, 2 epochs (the service default is 20), lr 0.01. Density: default "
        "DensityParams (L2-normalise, PCA 32, HDBSCAN min_cluster_size 25, radius quantile "
        "0.95), `max_fit_states` as stated.",
        f"- DSC: d = 12 hidden trajectories of the reflection test bed (Elman, linear), trained "
        f"in this run for {rnn['iterations']} iterations ({rnn['train_s']:.0f} s, next-symbol "
        f"accuracy {rnn['accuracy']:.3f} on its training sequence), run on a fresh reflection "
        f"sequence (seed 2) cut into windows of {RNN_WINDOW} steps; N = total steps. Default "
        "DSCParams (5 bins, 60 rounds).",
        "",
    ]
    rows = []
    for c in cases:
        if not c.runs:
            rows.append([c.label, f"{c.n:,}", "—", c.failure or "not run", "—", "—", "—", "—", ""])
            continue
        fit = median([r["fit_s"] for r in c.runs])
        at_start = max(r["rss_at_start_mib"] for r in c.runs)
        fit_peak = max(r["fit_peak_mib"] for r in c.runs)
        adds = max(r["fit_peak_mib"] - r["rss_at_start_mib"] for r in c.runs)
        process_peak = max(r["process_peak_mib"] for r in c.runs)
        q = c.runs[-1]["quality"]
        if c.method == "pa":
            # A bare "|" would end the table cell.
            quality = f"\\|C\\| = {q['neurons']}, train TPR {q['tpr']:.3f}, FPR {q['fpr']:.4f}"
        elif c.method == "dsc":
            quality = f"{q['states']} distinct states, {q['chunks']} chunks"
        elif c.method == "cosine":
            quality = f"mean max cos {q['mean_max_cos']:.3f}, {q['dead']} dead atoms"
        else:
            quality = (
                f"{q['clusters']} clusters, noise {q['noise']:.3f}, ARI vs planted "
                f"{q['ari_planted']:.3f}, HDBSCAN saw {q['fit_states']:,}"
            )
            if c.n in ari_sub_vs_full and c.spec["max_fit_states"] < c.n:
                quality += f", ARI vs full fit {ari_sub_vs_full[c.n]:.3f}"
        note = f" ({c.failure})" if c.failure else ""
        rows.append(
            [
                c.label,
                f"{c.n:,}",
                _fmt(fit, 3),
                f"{len(c.runs)}{note}",
                _fmt(at_start, 0),
                _fmt(fit_peak, 0),
                _fmt(adds, 0),
                _fmt(process_peak, 0),
                quality,
            ]
        )
    md += _table(
        [
            "method",
            "N states",
            "fit s (median)",
            "reps",
            "RSS at fit start MiB",
            "peak during fit MiB",
            "fit adds MiB",
            "process peak MiB",
            "result",
        ],
        rows,
    )
    md += [""]
    md += scaling_notes(cases)

    # 4. bookkeeping
    md += ["## 4. Capture bookkeeping vs number of segments", ""]
    md += [
        f"`Captured.add` of {BATCH}-segment batches (tiny states, d = 4, so the forward and the "
        "copies cost nothing), reading `n_rows` once per batch as `extraction._capture` does. "
        "This isolates the per-segment bookkeeping of an extraction.",
        "",
    ]
    rows = []
    base_n, base_t = bookkeeping[0]
    for n, t in bookkeeping:
        rows.append(
            [f"{n:,}", _fmt(t, 3), _fmt(t / n * 1e6, 2), f"{(t / base_t) / (n / base_n):.1f}"]
        )
    md += _table(
        ["segments", "seconds", "µs per segment", f"cost/segment relative to {base_n:,}"], rows
    )
    md += [""]
    md += notes(capture, grpc_result, spin, cases, bookkeeping)
    return "\n".join(md) + "\n"


def scaling_notes(cases: list[FitCase]) -> list[str]:
    """Observed growth of fit time between consecutive N of the same case family."""
    families: dict[str, list[FitCase]] = {}
    for c in cases:
        if c.runs:
            families.setdefault(c.label, []).append(c)
    lines = []
    for label, group in families.items():
        group.sort(key=lambda c: c.n)
        for a, b in pairwise(group):
            ta = median([r["fit_s"] for r in a.runs])
            tb = median([r["fit_s"] for r in b.runs])
            if ta > 0 and tb > 0:
                exponent = math.log(tb / ta) / math.log(b.n / a.n)
                lines.append(
                    f"- {label}: N {a.n:,} → {b.n:,}: time ×{tb / ta:.1f} (≈ N^{exponent:.2f})"
                )
    # The density cases at the same N differ by family label; compare them directly.
    dens = [c for c in cases if c.method == "density" and c.runs]
    by_n: dict[int, list[FitCase]] = {}
    for c in dens:
        by_n.setdefault(c.n, []).append(c)
    for n, group in by_n.items():
        full = [c for c in group if c.spec["max_fit_states"] >= n]
        sub = [c for c in group if c.spec["max_fit_states"] < n]
        if full and sub:
            tf = median([r["fit_s"] for r in full[0].runs])
            ts = median([r["fit_s"] for r in sub[0].runs])
            lines.append(
                f"- density at N = {n:,}: no subsample {tf:.1f} s vs subsample "
                f"{sub[0].spec['max_fit_states']:,} + assign {ts:.1f} s (×{tf / ts:.1f})"
            )
    if not lines:
        return []
    return ["Observed scaling (from the medians above):", "", *lines, ""]


def notes(
    capture: list[CaptureVariant],
    g: GrpcResult,
    spin: dict[str, list[float]],
    cases: list[FitCase],
    bookkeeping: list[tuple[int, float]],
) -> list[str]:
    """Short readings of this run's numbers; every figure quoted is one measured above."""
    r = [median(v.ratios) for v in capture]
    lines = ["## What the numbers mean", ""]
    line = (
        f"- Capture vs plain forward (median paired ratio): 1 hook point ×{r[2]:.2f}, "
        f"{len(capture[3].hook_points)} points ×{r[3]:.2f}, all {len(capture[4].hook_points)} "
        f"points ×{r[4]:.2f}; tokenization with offsets alone is ×{r[1]:.3f}. The hooks only "
        "keep references; what grows with the number of points is copying the real-token rows "
        "to float32 numpy."
    )
    unresolved = [
        len(v.hook_points)
        for v in capture[2:]
        if quantile(v.ratios, 0.25) <= 1.0 <= quantile(v.ratios, 0.75)
    ]
    if unresolved:
        line += (
            " The interquartile range includes 1 for "
            + ", ".join(f"{n} point{'s' if n > 1 else ''}" for n in unresolved)
            + ": this run resolves no capture overhead there, only an upper bound of the order "
            "of the spread."
        )
    if min(r[2:]) < 1.0:
        line += (
            " A median below 1 is noise: `capture_batch` does strictly more work than the plain "
            "forward."
        )
    lines.append(line)
    extra = median([a - b for a, b in zip(g.grpc_s, g.inproc_s, strict=True)])
    transport = median([a - b for a, b in zip(g.grpc_s, g.server_job_s, strict=True)])
    line = (
        f"- The PA extraction through gRPC took ×{median(g.ratios):.2f} the in-process time "
        f"(median difference {extra:+.3f} s). Of the client's wall time, everything but "
        f"{transport:.3f} s (median) is the server's own job time, so transport, decoding and "
        "streaming cost about that much per extraction. A trivial RPC round trip is "
        f"{quantile(g.health_ms, 0.5):.2f} ms (Health) / {quantile(g.get_model_ms, 0.5):.2f} ms "
        "(GetModel) at p50."
    )
    if min(g.ratios) <= 1.0 <= max(g.ratios):
        line += (
            f" The paired ratios range from {min(g.ratios):.2f} to {max(g.ratios):.2f}, so the "
            "end-to-end difference is within this machine's run-to-run noise; the transport "
            "figure is the direct measure of what gRPC adds."
        )
    if not 0.8 <= median(g.ratios) <= 1.25:
        line += (
            " The ratio is far from 1 although both paths run the same engine code (the server "
            "does more); compare the CPU seconds per wall second above: the two processes did "
            "not get the same share of the two cores while other jobs ran, so on this run the "
            "ratio measures scheduling, and the transport figure is the service's overhead."
        )
    lines.append(line)
    if spin["default"] and spin["throttled"]:
        factor = median(spin["default"]) / median(spin["throttled"])
        line = (
            f"- libgomp's default spin policy made the in-process extraction ×{factor:.2f} as "
            "slow as with a throttled spin count, in fresh processes on this machine."
        )
        if factor > 1.5:
            line += (
                " Spinning workers of a process that calls torch from one thread keep burning "
                "their time slices while their partner waits for a core that other jobs hold "
                "(compare the CPU seconds). The server calls torch from two threads (loader "
                "and compute), and libgomp spins far less once it manages more threads than "
                "there are CPUs, so it is likely less exposed (not measured here). Timing torch "
                "on a shared CPU host needs GOMP_SPINCOUNT (or OMP_WAIT_POLICY=passive) set."
            )
        lines.append(line)
    largest: dict[str, FitCase] = {}
    for c in cases:
        if c.runs and (c.label not in largest or c.n > largest[c.label].n):
            largest[c.label] = c
    if largest:
        parts = [
            f"{label} {c.n:,} in {median([x['fit_s'] for x in c.runs]):.1f} s "
            f"(+{max(x['fit_peak_mib'] - x['rss_at_start_mib'] for x in c.runs):.0f} MiB)"
            for label, c in largest.items()
        ]
        lines.append(
            "- Largest N measured per case, fit time and memory on top of the input: "
            + "; ".join(parts)
            + "."
        )
    den = {(c.n, c.spec["max_fit_states"] < c.n): c for c in cases if c.method == "density"}
    for (n, sub), c in den.items():
        full = den.get((n, False))
        if sub and c.runs and (full is None or not full.runs):
            q = c.runs[-1]["quality"]
            why = f"the full fit {full.failure or 'did not run'}" if full else "no full fit"
            lines.append(
                f"- Density at N = {n:,} with subsampling to {c.spec['max_fit_states']:,}: "
                f"{q['clusters']} clusters, noise {q['noise']:.3f}, ARI vs planted "
                f"{q['ari_planted']:.3f} ({why}, so no comparison with it)."
            )
        if sub and c.runs and full is not None and full.runs:
            qs, qf = c.runs[-1]["quality"], full.runs[-1]["quality"]
            lines.append(
                f"- Density at N = {n:,}: subsampling to {c.spec['max_fit_states']:,} and "
                f"assigning the rest found {qs['clusters']} clusters with noise "
                f"{qs['noise']:.3f}, the full fit {qf['clusters']} with noise {qf['noise']:.3f} "
                f"(ARI vs planted {qs['ari_planted']:.3f} vs {qf['ari_planted']:.3f}). By "
                "design, an assigned state must fall inside a radius set at its cluster members' "
                "0.95 distance quantile, so about 5% of the assigned members of a found cluster "
                "become noise, and clusters that HDBSCAN did not find in the subsample receive "
                "no states at all."
            )
    if len(bookkeeping) > 1:
        (n0, t0), (n1, t1) = bookkeeping[0], bookkeeping[-1]
        lines.append(
            f"- Capture bookkeeping is not linear: per segment it cost ×{(t1 / n1) / (t0 / n0):.1f}"
            f" more at {n1:,} segments than at {n0:,}. `Captured.add` (engine/capture.py) "
            "evaluates `self.n_rows`, a sum over every segment seen so far, once per added "
            "segment, which makes an extraction O(segments²). Small next to CPU forwards of a "
            "few thousand texts; large for sentence-level corpora of 10^5 segments or fast GPU "
            "forwards."
        )
    lines += [
        "",
        "## What was not measured",
        "",
        "- GPU: the script uses CUDA when `torch.cuda.is_available()`, but this machine has "
        "none, so there is no GPU number here and the CUDA path of the script is untested.",
        "- Half precision (bfloat16/float16), GGUF models, recurrent-model capture through the "
        "server, SENTENCE context, held-out scoring, interventions.",
        "- Concurrency in these sections: one client, one request at a time (the serving and "
        "batching sections below measure concurrent clients); no TLS or auth interceptors, no "
        "network beyond loopback.",
        "- Fits on states captured from the model: fit costs are on synthetic states of the "
        "model's width. The cosine dictionary ran 2 epochs, not the service default of 20.",
        "- Memory of the capture itself and of the server process.",
        "- An idle machine: other jobs shared the 2 cores throughout (see the load averages).",
        "",
    ]
    return lines


# ----- main ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced set (~2 min), a smoke check")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "BENCHMARKS.md",
        help="report to write (default: BENCHMARKS.md at the repository root)",
    )
    parser.add_argument(
        "--omp-spin",
        choices=("throttled", "default"),
        default="throttled",
        help=f"throttled (default): run with GOMP_SPINCOUNT={THROTTLED_SPIN} unless it is set "
        "already, so that torch's OpenMP workers do not burn shared cores spinning; default: "
        "leave libgomp's own spin policy (section 2b measures the difference)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spin-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_case(json.loads(args.worker))))
        return 0
    if args.spin_worker:
        print(json.dumps(spin_worker(args.spin_worker)))
        return 0
    # Must happen before torch (and its libgomp) is loaded; children inherit it.
    if args.omp_spin == "throttled":
        os.environ.setdefault("GOMP_SPINCOUNT", THROTTLED_SPIN)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    began = time.perf_counter()
    load_start = load_average()
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - began:7.1f}s] {msg}", flush=True)

    import torch

    from chunkscope.engine.device import dtype_name, resolve_dtype
    from chunkscope.engine.loading import inspect_source, load

    device = "cuda" if torch.cuda.is_available() else "cpu"
    info = machine_info(device)
    log(f"device {device}; load average {load_start}")
    torch_device = torch.device(device)
    dtype = resolve_dtype("auto", torch_device)
    model = load(inspect_source(DEMO_MODEL, ""), torch_device, dtype)
    log(f"demo model loaded ({dtype_name(dtype)})")

    plan = QUICK if args.quick else FULL
    sentences = SENTENCES[: plan.sentences]
    cpu0, wall0 = process_cpu_s(), time.perf_counter()
    capture = bench_capture(model, plan.capture_reps, sentences)
    capture_cpu_share = (process_cpu_s() - cpu0) / (time.perf_counter() - wall0)
    load_capture = load_average()
    log(f"capture done; load {load_capture}")

    with tempfile.TemporaryDirectory(prefix="chunkscope-bench-") as tmp:
        workdir = Path(tmp)
        grpc_result = bench_grpc(model, device, plan.grpc_reps, plan.rpc_calls, workdir)
        load_grpc = load_average()
        log(f"gRPC done; load {load_grpc}")
        del model  # the rest runs in subprocesses; free the parent's copy
        spin = bench_spin(plan.spin_pairs, 2, log)
        load_spin = load_average()

        rnn = make_trajectories([n for n, _ in plan.dsc], plan.rnn_iterations, workdir)
        log(f"reflection RNN trained in {rnn['train_s']:.0f}s")
        cases = build_cases(plan, device, workdir, rnn["files"])
        run_fits(cases, log)

        from sklearn.metrics import adjusted_rand_score

        ari_sub_vs_full: dict[int, float] = {}
        for n in {c.n for c in cases if c.method == "density"}:
            group = [c for c in cases if c.method == "density" and c.n == n and c.runs]
            full = [c for c in group if c.spec["max_fit_states"] >= n]
            sub = [c for c in group if c.spec["max_fit_states"] < n]
            if full and sub:
                a = np.load(full[0].spec["labels_out"])
                b = np.load(sub[0].spec["labels_out"])
                ari_sub_vs_full[n] = float(adjusted_rand_score(a, b))

    bookkeeping = bench_bookkeeping(plan.bookkeeping)
    log("bookkeeping done")

    meta = {
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "total_s": time.perf_counter() - began,
        "quick": args.quick,
        "load_start": load_start,
        "load_end": load_average(),
        "load_capture": load_capture,
        "load_grpc": load_grpc,
        "load_spin": load_spin,
        "dtype": dtype_name(dtype),
        "sentences": sentences,
        "capture_reps": plan.capture_reps,
        "capture_cpu_share": capture_cpu_share,
        "gomp_spincount": (
            f"GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}"
            if "GOMP_SPINCOUNT" in os.environ
            else "libgomp's default spin policy"
        ),
    }
    report = render(
        info, meta, capture, grpc_result, spin, cases, rnn, ari_sub_vs_full, bookkeeping
    )
    args.out.write_text(report)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
