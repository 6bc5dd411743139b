"""Batching benchmarks: the server's per-device scheduler against transformers on the same machine.

Everything on the server side goes through a real `chunkscope serve` (spawned with
`chunkscope.launcher.spawn_server`) and the generated Python client; the baselines are plain
transformers calls in this process on the same model, dtype and device. Measured in one run, the
arms of each ratio alternating (A, B, then B, A, ...) so that machine noise hits both; medians
(of the paired per-run ratios, for ratios):

  1. Generate tokens/s with 1, 4 and 16 concurrent clients, each with its own ADD intervention
     and the control arm, greedy, a fixed number of new tokens, vs one `model.generate` of the
     same prompts as a static batch (left padding, 2N rows: both arms' tokens count);
  2. the same clients without interventions (control arm still on): intervention overhead;
  3. one Generate stream vs `generate` of its prompt alone, per token;
  4. Detect sentences/s with 1, 4, 8 and 16 concurrent clients (one sentence per request, one PA
     dictionary at blocks.15.resid_post, summaries only) vs one forward of the N sentences batched;
  5. Detect of 8 sentences with the dictionary at blocks.15 (and at the last block) vs a full
     forward of the same batch: what stopping at the deepest hook point saves;
  6. Detect p50/p95 latency on an idle server and while 8 long Generates run.

Writes its section into BENCHMARKS.md between `<!-- batching:start -->` and `<!-- batching:end -->`.
Usage: .venv/bin/python scripts/bench_batching.py [--quick] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import os

# Set before torch (and libgomp) loads; the spawned server inherits it. Idle OpenMP workers
# otherwise spin on the cores that the other process (server or baseline) needs.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import copy
import platform
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import transformers
from benchdoc import CONCEPTS, cpu_name, load_average, write_section
from benchdoc import SENTENCES as BASE_SENTENCES
from transformers import AutoModelForCausalLM, AutoTokenizer

from chunkscope.demo_model import DEMO_MODEL_NAME, ensure_demo_model
from chunkscope.launcher import spawn_server
from chunkscope_client import Client
from chunkscope_client.v1 import common_pb2 as cp
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import dictionaries_pb2 as xp
from chunkscope_client.v1 import perturbation_pb2 as pp

ROOT = Path(__file__).resolve().parent.parent
HOOK = "blocks.15.resid_post"  # the middle of the demo model's 30 blocks
LAST_HOOK = "blocks.29.resid_post"
ALPHA = 4.0  # strength of each client's ADD
GEN_CLIENTS = (1, 4, 16)
DETECT_CLIENTS = (1, 4, 8, 16)
BACKGROUND_GENERATES = 8
START, END = "<!-- batching:start -->", "<!-- batching:end -->"


@dataclass(frozen=True)
class Plan:
    """How much one run measures (full or --quick). Runs alternate the order of their arms."""

    gen_tokens: int  # new tokens per arm, items 1-3
    gen_runs: int  # items 1-2, per number of clients
    single_runs: int  # item 3
    detect_rounds: int  # item 4: requests per client per run
    detect_runs: int  # item 4
    depth_runs: int  # item 5
    long_tokens: int  # item 6: new tokens of each background Generate
    latency_runs: int  # item 6: idle and loaded phases each
    idle_detects: int  # item 6: Detects per idle phase


FULL = Plan(32, 2, 4, 2, 2, 6, 64, 2, 12)
QUICK = Plan(8, 2, 2, 1, 2, 2, 12, 2, 6)

PROMPTS = [
    "My favourite way to spend a Sunday afternoon is",
    "The best advice my grandmother ever gave me was",
    "Once upon a time, in a village at the edge of a forest,",
    "To make a good cup of tea, you should first",
    "The most surprising thing about the ocean is",
    "When I moved to the city, the first thing I noticed",
    "A short guide to planting tomatoes:",
    "The history of the bicycle begins in",
    "If I could travel anywhere tomorrow, I would go to",
    "The old lighthouse keeper looked out at the storm and",
    "Three reasons to learn a second language are",
    "The recipe for a simple bread needs only",
    "In the year 2050, most people will",
    "The train was late again, so she decided to",
    "Scientists recently discovered that octopuses",
    "Dear diary, today something strange happened at school:",
]
SENTENCES = [
    *BASE_SENTENCES,
    "The ferry left the harbour an hour late because fog had settled over the bay.",
    "Grandfather kept his seeds in labelled paper envelopes in a biscuit tin.",
    "The children built a dam of stones across the stream and watched the pool fill.",
    "In winter the lake freezes so thick that trucks drive across it to the island.",
    "The orchestra rehearsed the slow movement until the strings breathed together.",
    "She kept a notebook of every bird she saw, with the date and the weather.",
    "A sudden hailstorm shredded the market awnings and sent everyone running.",
    "The bakery on our street opens at five, and by seven the croissants are gone.",
]


# ----- helpers --------------------------------------------------------------------------------


_BEGAN = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _BEGAN:6.1f}s] {message}", flush=True)


def machine() -> str:
    cpu = cpu_name()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {gpu}; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers "
        f"{transformers.__version__}, Python {platform.python_version()}"
    )


def interleaved(runs: int, arms: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Each arm `runs` times, in the given order on even runs and reversed on odd ones."""
    names = list(arms)
    out: dict[str, list[float]] = {name: [] for name in names}
    for i in range(runs):
        for name in names if i % 2 == 0 else names[::-1]:
            out[name].append(arms[name]())
    return out


def med(values: list[float]) -> float:
    return float(statistics.median(values))


def paired(a: list[float], b: list[float]) -> float:
    """Median of the per-run ratios a[i] / b[i]."""
    return med([x / y for x, y in zip(a, b, strict=True)])


# ----- the server side ------------------------------------------------------------------------


def extract_dictionaries(cs: Client) -> dict[str, str]:
    """One PA dictionary per hook point (HOOK and LAST_HOOK); returns hook point -> id."""
    texts = SENTENCES[:8] * 2
    texts += [f"{c.capitalize()} again: more {c} here, and {c} there." for c in CONCEPTS] * 4
    request = xp.ExtractDictionaryRequest(
        model=cp.ModelRef(name=DEMO_MODEL_NAME),
        hook_points=[HOOK, LAST_HOOK],
        corpus=xp.Corpus(texts=xp.TextList(texts=texts)),
        population_averaging=xp.PopulationAveragingParams(
            concepts=[xp.ConceptWords(concept=c) for c in CONCEPTS], seed=0
        ),
    )
    return {d.hook_point: d.id for d in cs.extract_dictionary(request, timeout=900)}


def detect_request(dictionary: str, texts: list[str]) -> dp.DetectRequest:
    return dp.DetectRequest(
        config=dp.DetectionConfig(
            model=cp.ModelRef(name=DEMO_MODEL_NAME), dictionary_ids=[dictionary], summary_only=True
        ),
        inputs=[dp.DetectInput(text=t) for t in texts],
    )


def generate_request(
    prompt: str, n: int, vector: np.ndarray | None, control: bool | None = None
) -> pp.GenerateRequest:
    """Greedy, exactly n new tokens; with `vector`, an ADD of it everywhere.

    The control arm is on with a vector unless `control` says otherwise.
    """
    interventions = []
    if vector is not None:
        tensor = cp.Tensor(
            dtype=cp.DTYPE_FLOAT32, shape=[vector.size], data=vector.astype("<f4").tobytes()
        )
        interventions.append(
            pp.Intervention(
                vector=tensor,
                mode=pp.INTERVENTION_MODE_ADD,
                hook_point=HOOK,
                alpha=ALPHA,
                positions=pp.Positions(all_prompt=True, generated=True),
            )
        )
    return pp.GenerateRequest(
        model=cp.ModelRef(name=DEMO_MODEL_NAME),
        prompt=dp.DetectInput(text=prompt),
        interventions=interventions,
        sampling=pp.SamplingParams(max_new_tokens=n, temperature=0.0, stop_at_eos=False),
        control=vector is not None if control is None else control,
    )


def stream(
    cs: Client, request: pp.GenerateRequest, started: threading.Event | None = None
) -> dict[pp.Arm.ValueType, list[int]]:
    """Reads one Generate to its end; the token ids per arm, each checked to be complete."""
    tokens: dict[pp.Arm.ValueType, list[int]] = {}
    for message in cs.generate(request):
        if started is not None:
            started.set()
        if not message.done:
            tokens.setdefault(message.arm, []).append(message.token_id)
    arms = 2 if request.control else 1
    n = request.sampling.max_new_tokens
    if len(tokens) != arms or any(len(ids) != n for ids in tokens.values()):
        got = {pp.Arm.Name(a): len(ids) for a, ids in tokens.items()}
        raise RuntimeError(f"expected {arms} arm(s) of {n} tokens each, got {got}")
    return tokens


def concurrent_generate(clients: list[Client], requests: list[pp.GenerateRequest]) -> float:
    """All requests at once, one client each; aggregate tokens/s over every arm."""
    with ThreadPoolExecutor(len(requests)) as pool:
        t0 = time.perf_counter()
        results = list(pool.map(stream, clients, requests))
        wall = time.perf_counter() - t0
    return sum(len(ids) for r in results for ids in r.values()) / wall


def concurrent_detect(
    clients: list[Client], requests: list[dp.DetectRequest], rounds: int
) -> float:
    """Each client sends its request `rounds` times in a row, all clients at once; inputs/s."""

    def work(cs: Client, request: dp.DetectRequest) -> int:
        for _ in range(rounds):
            cs.detect(request)
        return rounds * len(request.inputs)

    with ThreadPoolExecutor(len(requests)) as pool:
        t0 = time.perf_counter()
        inputs = sum(pool.map(work, clients, requests))
        wall = time.perf_counter() - t0
    return inputs / wall


def timed_detect(cs: Client, request: dp.DetectRequest) -> float:
    t0 = time.perf_counter()
    cs.detect(request)
    return time.perf_counter() - t0


# ----- the in-process baseline ----------------------------------------------------------------


class Baseline:
    """The demo model in this process with plain transformers, float32, on the same device."""

    def __init__(self, model_dir: Path, device: torch.device) -> None:
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        # Any: transformers' typing of `to` trips mypy.
        self.model: Any = cast(
            Any,
            AutoModelForCausalLM.from_pretrained(
                model_dir, dtype=torch.float32, local_files_only=True
            ),
        )
        self.model.to(device).eval()
        # Greedy, and no stop at end-of-sequence: exactly max_new_tokens per row, like the
        # server with stop_at_eos false.
        config = copy.deepcopy(self.model.generation_config)
        config.eos_token_id = None
        config.pad_token_id = self.tokenizer.pad_token_id
        config.do_sample = False
        self.generation_config = config

    def generate(self, prompts: list[str], n: int) -> tuple[float, torch.Tensor]:
        """One static batch (left padding); seconds, and the new token ids [rows, n]."""
        t0 = time.perf_counter()
        enc = self.tokenizer(prompts, padding=True, padding_side="left", return_tensors="pt")
        enc = enc.to(self.device)
        with torch.inference_mode():
            out = self.model.generate(
                **enc, generation_config=self.generation_config, max_new_tokens=n
            )
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        new = out[:, enc["input_ids"].shape[1] :]
        if new.shape != (len(prompts), n):
            raise RuntimeError(f"generate returned {tuple(new.shape)} new tokens, not {n} per row")
        return seconds, new.cpu()

    def generate_tokens_per_s(self, prompts: list[str], n: int) -> float:
        seconds, new = self.generate(prompts, n)
        return new.numel() / seconds

    def forward(self, texts: list[str]) -> float:
        """Seconds for one full forward of the batch (right padding, attention mask)."""
        t0 = time.perf_counter()
        enc = self.tokenizer(texts, padding=True, padding_side="right", return_tensors="pt")
        with torch.inference_mode():
            self.model(**enc.to(self.device))
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    def forwards_per_s(self, texts: list[str], rounds: int) -> float:
        """Inputs/s over `rounds` forwards of the batch."""
        return rounds * len(texts) / sum(self.forward(texts) for _ in range(rounds))


# ----- the measures ---------------------------------------------------------------------------


def bench_generate(
    clients: list[Client], base: Baseline, vectors: list[np.ndarray], plan: Plan
) -> list[dict[str, Any]]:
    """Items 1 and 2: per number of clients, server with/without interventions vs static batch."""
    rows = []
    n = plan.gen_tokens
    for k in GEN_CLIENTS:
        prompts = PROMPTS[:k]
        steered = [generate_request(p, n, vectors[i]) for i, p in enumerate(prompts)]
        # The same rows (both arms) without the interventions: what the interventions cost.
        plain = [generate_request(p, n, None, control=True) for p in prompts]
        runs = interleaved(
            plan.gen_runs,
            {
                "server": partial(concurrent_generate, clients[:k], steered),
                "static": partial(base.generate_tokens_per_s, prompts + prompts, n),
                "plain": partial(concurrent_generate, clients[:k], plain),
            },
        )
        row = {
            "clients": k,
            **{f"{arm}_tok_s": med(v) for arm, v in runs.items()},
            "server_ms_tok": med([1e3 / x for x in runs["server"]]),
            "plain_ms_tok": med([1e3 / x for x in runs["plain"]]),
            "vs_static": paired(runs["server"], runs["static"]),
            # time per token with / without = tokens/s without / with
            "overhead": paired(runs["plain"], runs["server"]),
        }
        log(
            f"  {k:2d} clients: server {row['server_tok_s']:.1f} tok/s, static batch "
            f"{row['static_tok_s']:.1f}, no interventions {row['plain_tok_s']:.1f}"
        )
        rows.append(row)
    return rows


def bench_single(cs: Client, base: Baseline, plan: Plan) -> dict[str, Any]:
    """Item 3: one Generate stream vs `generate` of the same prompt alone, seconds per token."""
    n = plan.gen_tokens
    request = generate_request(PROMPTS[0], n, None)
    ids: dict[str, list[int]] = {}

    def server() -> float:
        t0 = time.perf_counter()
        ids["server"] = next(iter(stream(cs, request).values()))
        return (time.perf_counter() - t0) / n

    def local() -> float:
        seconds, new = base.generate([PROMPTS[0]], n)
        ids["local"] = new[0].tolist()
        return seconds / n

    runs = interleaved(plan.single_runs, {"server": server, "local": local})
    return {
        "server_ms": med(runs["server"]) * 1e3,
        "local_ms": med(runs["local"]) * 1e3,
        "ratio": paired(runs["server"], runs["local"]),
        "same_tokens": ids["server"] == ids["local"],
    }


def bench_detect(
    clients: list[Client], base: Baseline, dictionary: str, plan: Plan
) -> list[dict[str, Any]]:
    """Item 4: concurrent one-sentence Detects vs one forward of the same sentences batched."""
    rows = []
    for k in DETECT_CLIENTS:
        texts = SENTENCES[:k]
        requests = [detect_request(dictionary, [t]) for t in texts]
        runs = interleaved(
            plan.detect_runs,
            {
                "server": partial(concurrent_detect, clients[:k], requests, plan.detect_rounds),
                "static": partial(base.forwards_per_s, texts, plan.detect_rounds),
            },
        )
        row = {
            "clients": k,
            "server_s_per_s": med(runs["server"]),
            "static_s_per_s": med(runs["static"]),
            "ratio": paired(runs["server"], runs["static"]),
        }
        log(
            f"  {k:2d} clients: server {row['server_s_per_s']:.1f} sentences/s, batched forward "
            f"{row['static_s_per_s']:.1f}"
        )
        rows.append(row)
    return rows


def bench_depth(
    cs: Client, base: Baseline, dictionaries: dict[str, str], plan: Plan
) -> dict[str, Any]:
    """Item 5: Detect of 8 sentences at the middle and the last block vs a full forward."""
    texts = SENTENCES[:8]
    runs = interleaved(
        plan.depth_runs,
        {
            "middle": partial(timed_detect, cs, detect_request(dictionaries[HOOK], texts)),
            "forward": partial(base.forward, texts),
            "last": partial(timed_detect, cs, detect_request(dictionaries[LAST_HOOK], texts)),
        },
    )
    return {
        **{f"{arm}_ms": med(v) * 1e3 for arm, v in runs.items()},
        "middle_ratio": paired(runs["middle"], runs["forward"]),
        "last_ratio": paired(runs["last"], runs["forward"]),
    }


def bench_latency(clients: list[Client], dictionary: str, plan: Plan) -> dict[str, Any]:
    """Item 6: one client's sequential one-sentence Detects, idle vs under 8 long Generates."""
    probe, generators = clients[0], clients[1 : 1 + BACKGROUND_GENERATES]
    request = detect_request(dictionary, SENTENCES[:1])
    background = [generate_request(p, plan.long_tokens, None) for p in PROMPTS[: len(generators)]]
    samples: dict[str, list[float]] = {"idle": [], "loaded": []}
    phases = {"idle": 0, "loaded": 0}

    def idle() -> float:
        samples["idle"] += [timed_detect(probe, request) for _ in range(plan.idle_detects)]
        phases["idle"] += 1
        return 0.0

    def loaded() -> float:
        started = threading.Event()
        with ThreadPoolExecutor(len(generators)) as pool:
            futures = [
                pool.submit(stream, cs, r, started)
                for cs, r in zip(generators, background, strict=True)
            ]
            if not started.wait(600):
                raise RuntimeError("no Generate produced a token within 600 s")
            while True:  # at least one Detect, then more while any Generate runs
                samples["loaded"].append(timed_detect(probe, request))
                if all(f.done() for f in futures):
                    break
            for f in futures:
                f.result()
        phases["loaded"] += 1
        return 0.0

    interleaved(plan.latency_runs, {"idle": idle, "loaded": loaded})
    out: dict[str, Any] = {"phases": phases}
    for name, values in samples.items():
        out[f"{name}_n"] = len(values)
        out[f"{name}_p50_ms"] = float(np.percentile(values, 50)) * 1e3
        out[f"{name}_p95_ms"] = float(np.percentile(values, 95)) * 1e3
    out["ratio"] = out["loaded_p95_ms"] / out["idle_p95_ms"]
    return out


# ----- the report -----------------------------------------------------------------------------


def row(
    measure: str, a: str, b: str, ratio: float, target: str = "", met: bool | None = None
) -> str:
    verdict = "—" if met is None else ("yes" if met else "**no**")
    return f"| {measure} | {a} | {b} | {ratio:.3f}x | {target or '—'} | {verdict} |"


def render(r: dict[str, Any]) -> str:
    plan: Plan = r["plan"]
    n = plan.gen_tokens
    lines = [
        START,
        "## Batching: the per-device scheduler vs transformers (demo model, SmolLM2-135M-Instruct)",
        "",
        f"Command: `{r['command']}`; {r['date']}; {r['machine']}; device {r['device']}, float32, "
        f"{r['spin']}. Load average (1/5/15 min) {r['load_start']} at the start, "
        f"{r['load_end']} at the end; {r['total_s']:.0f} s in all.",
        "",
        "A is the server, B the transformers baseline or the server's own reference; the ratio is "
        "A/B of the unit shown.",
        "",
        "| measure | A | B | ratio A/B | target | met? |",
        "|---|---|---|---|---|---|",
    ]
    for g in r["generate"]:
        k = g["clients"]
        lines.append(
            row(f"Generate tokens/s, {k} concurrent client(s), each its own ADD + control arm, "
                f"greedy, {n} new tokens",
                f"server {g['server_tok_s']:.1f} tok/s",
                f"`generate`, static batch of {2 * k} rows, {g['static_tok_s']:.1f} tok/s",
                g["vs_static"], "≥ 0.9x" if k == 16 else "",
                g["vs_static"] >= 0.9 if k == 16 else None)
        )  # fmt: skip
    for g in r["generate"]:
        k = g["clients"]
        lines.append(
            row(f"intervention overhead, {k} concurrent client(s): time per token with distinct "
                "interventions / without (control arm on in both)",
                f"with {g['server_ms_tok']:.1f} ms/token",
                f"without {g['plain_ms_tok']:.1f} ms/token",
                g["overhead"], "≤ 1.03x" if k == 16 else "",
                g["overhead"] <= 1.03 if k == 16 else None)
        )  # fmt: skip
    s = r["single"]
    lines.append(
        row(f"one Generate stream vs `generate` of its prompt, {n} tokens, time per token"
            + ("" if s["same_tokens"] else " (**tokens differ from `generate`'s**)"),
            f"server {s['server_ms']:.1f} ms/token", f"`generate` {s['local_ms']:.1f} ms/token",
            s["ratio"], "≤ 1.05x", s["ratio"] <= 1.05)
    )  # fmt: skip
    for d in r["detect"]:
        k = d["clients"]
        lines.append(
            row(f"Detect sentences/s, {k} concurrent client(s), 1 sentence per request, PA at "
                f"{HOOK}, summaries only",
                f"server {d['server_s_per_s']:.1f}/s",
                f"one forward of the {k} sentence(s) batched, {d['static_s_per_s']:.1f}/s",
                d["ratio"], "≥ 0.9x" if k == 8 else "", d["ratio"] >= 0.9 if k == 8 else None)
        )  # fmt: skip
    p = r["depth"]
    lines += [
        row(f"Detect of 8 sentences, dictionary at {HOOK} (of 30 blocks), time",
            f"Detect {p['middle_ms']:.0f} ms", f"full forward {p['forward_ms']:.0f} ms",
            p["middle_ratio"], "≤ 0.6x", p["middle_ratio"] <= 0.6),
        row(f"Detect of 8 sentences, dictionary at {LAST_HOOK} (the last block), time",
            f"Detect {p['last_ms']:.0f} ms", f"full forward {p['forward_ms']:.0f} ms",
            p["last_ratio"]),
    ]  # fmt: skip
    t = r["latency"]
    lines += [
        row(f"Detect latency (1 sentence) while {BACKGROUND_GENERATES} Generates of "
            f"{plan.long_tokens} tokens run vs idle, p95",
            f"generating: p50 {t['loaded_p50_ms']:.0f}, p95 {t['loaded_p95_ms']:.0f} ms "
            f"({t['loaded_n']} requests)",
            f"idle: p50 {t['idle_p50_ms']:.0f}, p95 {t['idle_p95_ms']:.0f} ms "
            f"({t['idle_n']} requests)",
            t["ratio"], "≤ 2x", t["ratio"] <= 2.0),
        "",
    ]  # fmt: skip
    lines += [
        "What was measured: every server number is a real `chunkscope serve` on this machine, "
        "called through the generated Python client, one gRPC connection per client thread; "
        "every baseline is plain transformers in the benchmark's own process on the same model "
        "and dtype, while the server idles (both on the same cores; the load averages above count "
        "whatever else ran on the machine). The two sides of each ratio ran alternately in one "
        f"run (A, B, then B, A), {plan.gen_runs} runs per Generate row, "
        f"{plan.single_runs} for the single stream, {plan.detect_runs} for Detect throughput, "
        f"{plan.depth_runs} for the depth rows; A and B are medians, the ratio the median of the "
        "per-run ratios. Generate rows: N threads each stream one greedy Generate of exactly "
        f"{n} new tokens (stop_at_eos false) on its own prompt, with an ADD (alpha {ALPHA:g}) of "
        f"its own random unit vector at {HOOK} on every prompt and generated token and the "
        "control arm on; tokens/s counts both arms over the wall time from the first request to "
        "the last token; the baseline is one `model.generate` of the same prompts as one batch "
        "with every prompt twice (2N rows, left padding, greedy, no end-of-sequence stop). The "
        "overhead rows compare those clients with the same ones sending no interventions (the "
        "control arm still on, so both run the same rows), per token. Detect throughput: N "
        f"threads each send {plan.detect_rounds} request(s) of one sentence in a row, all at "
        f"once, against {plan.detect_rounds} forward(s) of the N sentences batched (right "
        "padding, attention mask, logits included). The depth rows time one Detect of 8 "
        "sentences against one full forward of them; a server that stops at the deepest hook "
        "point a request needs should come in well under the full forward at the middle block. "
        "Latency: one client sends "
        f"one-sentence Detects in a row, {plan.idle_detects} per idle phase, and in the loaded "
        f"phases from the first generated token until {BACKGROUND_GENERATES} concurrent "
        "Generates (no interventions) have all finished; percentiles pool the "
        f"{plan.latency_runs} phases of each kind. Targets are those of the scheduler's issue "
        '(item 8); "—" marks rows shown for context.',
        END,
    ]
    return "\n".join(lines) + "\n"


# ----- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and tokens (~4 min)")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--models", type=Path, default=ROOT / "data" / "models")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    load_start = load_average()
    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models = args.models.resolve()
    model_dir = ensure_demo_model(models)
    log(f"load average {load_start}; device {device}")

    with tempfile.TemporaryDirectory(prefix="chunkscope-bench-batching-") as tmp:
        server = spawn_server(Path(tmp), "--model-roots", str(models), "--dtype", "float32",
                              "--grace-seconds", "5")  # fmt: skip
        clients: list[Client] = []
        try:
            admin = Client.connect(server.address, timeout=600, token=server.token)
            admin.register_model(DEMO_MODEL_NAME, DEMO_MODEL_NAME, wait=True)
            dictionaries = extract_dictionaries(admin)
            log(f"server ready at {server.address}; dictionaries {dictionaries}")
            base = Baseline(model_dir, device)
            hidden = int(base.model.config.hidden_size)
            rng = np.random.default_rng(0)
            vectors = [v / np.linalg.norm(v) for v in rng.standard_normal((16, hidden))]
            clients = [
                Client.connect(server.address, timeout=600, token=server.token)
                for _ in range(max(*GEN_CLIENTS, *DETECT_CLIENTS, 1 + BACKGROUND_GENERATES))
            ]
            for cs in clients:
                cs.health()
            # Warm-up: first calls of each kind on both sides (caches, lazy loads, allocators).
            stream(admin, generate_request(PROMPTS[0], 2, vectors[0]))
            for dictionary in dictionaries.values():
                admin.detect(detect_request(dictionary, SENTENCES[:8]))
            base.generate(PROMPTS[:2], 2)
            base.forward(SENTENCES[:8])

            log("1-2. Generate: concurrent clients vs a static batch, with and without steering")
            generate = bench_generate(clients, base, vectors, plan)
            log("3. one Generate stream vs generate()")
            single = bench_single(admin, base, plan)
            log(f"   {single}")
            log("4. Detect: concurrent clients vs one batched forward")
            detect = bench_detect(clients, base, dictionaries[HOOK], plan)
            log("5. Detect at the middle and last block vs a full forward")
            depth = bench_depth(admin, base, dictionaries, plan)
            log(f"   {depth}")
            log("6. Detect latency, idle vs under long Generates")
            latency = bench_latency(clients, dictionaries[HOOK], plan)
            log(f"   {latency}")
            admin.close()
        except BaseException:
            print(f"server log ({server.log_path}), last lines:", file=sys.stderr)
            print("\n".join(server.log().splitlines()[-30:]), file=sys.stderr)
            raise
        finally:
            for cs in clients:
                cs.close()
            server.terminate()

    results = {
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "device": device.type,
        "spin": f"GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}",
        "load_start": load_start,
        "load_end": load_average(),
        "total_s": time.perf_counter() - _BEGAN,
        "plan": plan,
        "generate": generate,
        "single": single,
        "detect": detect,
        "depth": depth,
        "latency": latency,
    }
    section = render(results)
    write_section(args.out, section, "batching")
    print(section)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
