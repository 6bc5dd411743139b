"""Serving benchmarks for detection and perturbation on the demo model (CPU or CUDA).

Measured interleaved in one run (A and B alternate, so machine noise hits both), reported as
medians and ratios:
  1. detection overhead: a forward with detection (capture + matching) / a plain forward, same
     batches;
  2. generation with an intervention / the same generation loop without one, and / transformers'
     own `generate`, per token (greedy, so all arms produce the same number of tokens);
  3. Detect through gRPC / the same detection in-process;
  4. Detect throughput with 1, 4 and 16 concurrent clients.
Writes its section into BENCHMARKS.md between `<!-- serving:start -->` and `<!-- serving:end -->`.
Usage: .venv/bin/python scripts/bench_serving.py [--quick] [--out BENCHMARKS.md]
"""

from __future__ import annotations

import os

# Idle OpenMP threads spin by default; with the server in another process on the same cores,
# spinning threads of one side steal the CPU from the other and distort both timings.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime
import platform
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from benchdoc import CONCEPTS, cpu_name, write_section
from benchdoc import SENTENCES as BASE_SENTENCES

from chunkscope.demo_model import DEMO_MODEL_NAME
from chunkscope.engine import loading
from chunkscope.engine import steering as st
from chunkscope.engine.capture import Segment
from chunkscope.engine.decoding import generate_alone
from chunkscope.engine.detection import Detector, detect_batch
from chunkscope.launcher import spawn_server
from chunkscope.store.dictionaries import LocalDictionaryStore
from chunkscope_client import Client
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import dictionaries_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
HOOK = "blocks.16.resid_post"
SENTENCES = BASE_SENTENCES * 4


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def _machine() -> str:
    cpu = cpu_name()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {device}; torch {torch.__version__}, "
            f"Python {platform.python_version()}")  # fmt: skip


def extract_dictionary(cs: Client) -> str:
    texts = [s for s in SENTENCES[:8]] * 2
    texts += [f"{c.capitalize()} again: more {c} here, and {c} there." for c in CONCEPTS] * 4
    request = pb.ExtractDictionaryRequest(
        model={"name": DEMO_MODEL_NAME}, hook_points=[HOOK],
        corpus=pb.Corpus(texts=pb.TextList(texts=texts)),
        population_averaging=pb.PopulationAveragingParams(
            concepts=[pb.ConceptWords(concept=c) for c in CONCEPTS], seed=0),
    )  # fmt: skip
    [d] = cs.extract_dictionary(request, timeout=600)
    return d.id


def bench_detection_overhead(model: loading.LoadedModel, detector: Detector, reps: int) -> dict:
    batches = [
        [Segment(i, 0, t) for i, t in enumerate(SENTENCES[j : j + 8])]
        for j in range(0, len(SENTENCES), 8)
    ]
    tok = model.tokenizer
    plain, detect = [], []
    tokens = 0
    for _ in range(reps):
        for batch in batches:
            enc = tok([s.text for s in batch], padding=True, return_tensors="pt",
                      padding_side="right")  # fmt: skip
            with torch.inference_mode():
                t0 = time.perf_counter()
                model.module(input_ids=enc["input_ids"].to(model.device),
                             attention_mask=enc["attention_mask"].to(model.device))  # fmt: skip
                plain.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            detect_batch(model, [detector], batch, 512)
            detect.append(time.perf_counter() - t0)
            tokens += int(enc["attention_mask"].sum())
    return {
        "plain_ms": _median_ms(plain),
        "detect_ms": _median_ms(detect),
        "ratio": statistics.median(detect) / statistics.median(plain),
        "tokens_per_batch": tokens / (reps * len(batches)),
    }


def bench_generation(model: loading.LoadedModel, detector: Detector, reps: int, n: int) -> dict:
    prompt = model.tokenizer("My favourite way to spend a Sunday afternoon is",
                             return_tensors="pt")["input_ids"].to(model.device)  # fmt: skip
    t = detector.tensors
    direction = t["mean"][0] - t["center"]
    direction = (direction / np.linalg.norm(direction)).astype(np.float32)
    action = st.Action(HOOK, "add", direction, alpha=4.0, center=t["center"], generated=True,
                       prompt_positions=(int(prompt.shape[1]) - 1,))  # fmt: skip
    sampling = st.Sampling(n, 0.0, 0.0, 0, 0, False)
    timings: dict[str, list[float]] = {"hf_generate": [], "loop": [], "loop_intervention": []}
    for _ in range(reps):
        with torch.inference_mode():
            t0 = time.perf_counter()
            model.module.generate(prompt, attention_mask=torch.ones_like(prompt),
                                  max_new_tokens=n, min_new_tokens=n, do_sample=False)  # fmt: skip
            timings["hf_generate"].append((time.perf_counter() - t0) / n)
        for key, actions in (("loop", []), ("loop_intervention", [action])):
            steering = st.Steering(list(actions), int(prompt.shape[1]), False)
            t0 = time.perf_counter()
            generate_alone(model, prompt[0].cpu(), steering, sampling)
            timings[key].append((time.perf_counter() - t0) / n)
    med = {k: statistics.median(v) for k, v in timings.items()}
    return {
        **{f"{k}_ms_per_token": v * 1e3 for k, v in med.items()},
        "intervention_vs_loop": med["loop_intervention"] / med["loop"],
        "intervention_vs_hf": med["loop_intervention"] / med["hf_generate"],
        "loop_vs_hf": med["loop"] / med["hf_generate"],
    }


def _detect_request(dictionary: str, texts: list[str]) -> dp.DetectRequest:
    return dp.DetectRequest(
        config=dp.DetectionConfig(model={"name": DEMO_MODEL_NAME}, dictionary_ids=[dictionary],
                                  summary_only=True),
        inputs=[dp.DetectInput(text=t) for t in texts],
    )  # fmt: skip


def bench_grpc(cs: Client, model: loading.LoadedModel, detector: Detector, reps: int) -> dict:
    texts = SENTENCES[:8]
    segments = [Segment(i, 0, t) for i, t in enumerate(texts)]
    request = _detect_request(detector.id, texts)
    remote, local = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        cs.detect(request)
        remote.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        detect_batch(model, [detector], segments, 512)
        local.append(time.perf_counter() - t0)
    return {
        "grpc_ms": _median_ms(remote),
        "in_process_ms": _median_ms(local),
        "ratio": statistics.median(remote) / statistics.median(local),
    }


def bench_concurrency(address: str, token: str, dictionary: str, per_client: int) -> list[dict]:
    texts = SENTENCES[:4]
    rows = []
    for clients in (1, 4, 16):
        request = _detect_request(dictionary, texts)
        connections = [Client.connect(address, timeout=600, token=token) for _ in range(clients)]
        latencies: list[float] = []

        def work(c: Client, request: dp.DetectRequest = request) -> list[float]:
            out = []
            for _ in range(per_client):
                t0 = time.perf_counter()
                c.detect(request)
                out.append(time.perf_counter() - t0)
            return out

        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            for result in pool.map(work, connections):
                latencies += result
        wall = time.perf_counter() - t0
        for c in connections:
            c.close()
        rows.append({
            "clients": clients,
            "requests_per_s": len(latencies) / wall,
            "texts_per_s": len(latencies) * len(texts) / wall,
            "p50_ms": float(np.percentile(latencies, 50) * 1e3),
            "p95_ms": float(np.percentile(latencies, 95) * 1e3),
        })  # fmt: skip
    return rows


def render(results: dict, command: str) -> str:
    d, g, r = results["detection"], results["generation"], results["grpc"]
    lines = [
        "<!-- serving:start -->",
        "## Detection and perturbation (demo model, SmolLM2-135M-Instruct)",
        "",
        f"Command: `{command}`; {results['date']}; {results['machine']}; device "
        f"{results['device']}, float32. Medians over {results['reps']} interleaved repetitions.",
        "",
        "| measure | A | B | ratio B/A |",
        "|---|---|---|---|",
        f"| detection overhead (batch of 8 sentences, ~{d['tokens_per_batch']:.0f} tokens; 1 PA "
        f"dictionary at {HOOK}) | plain forward {d['plain_ms']:.1f} ms | forward to {HOOK} "
        "(early exit) + detection "
        f"{d['detect_ms']:.1f} ms | **{d['ratio']:.3f}x** |",
        f"| generation per token, greedy, {results['gen_tokens']} tokens | our loop, no "
        f"intervention {g['loop_ms_per_token']:.1f} ms | ADD on every generated token "
        f"{g['loop_intervention_ms_per_token']:.1f} ms | **{g['intervention_vs_loop']:.3f}x** |",
        "| generation per token vs transformers | `model.generate` "
        f"{g['hf_generate_ms_per_token']:.1f} ms | our loop with the intervention "
        f"{g['loop_intervention_ms_per_token']:.1f} ms | "
        f"{g['intervention_vs_hf']:.3f}x (loop alone {g['loop_vs_hf']:.3f}x) |",
        f"| Detect, 8 sentences | in-process {r['in_process_ms']:.1f} ms | through gRPC "
        f"{r['grpc_ms']:.1f} ms | {r['ratio']:.3f}x |",
        "",
        "Detect throughput (4 sentences per request, summaries only), concurrent clients:",
        "",
        "| clients | requests/s | sentences/s | p50 ms | p95 ms |",
        "|---|---|---|---|---|",
    ]
    for row in results["concurrency"]:
        lines.append(
            f"| {row['clients']} | {row['requests_per_s']:.1f} | {row['texts_per_s']:.1f} | "
            f"{row['p50_ms']:.0f} | {row['p95_ms']:.0f} |"
        )
    lines += [
        "",
        "Notes: detection stops the forward at its deepest hook point (the plain forward runs "
        "every block and the LM head), and includes copying the rows to the CPU and matching "
        "there. The generation loop is chunkscope's own (one row of the decoding batch the "
        "server's scheduler runs: KV cache, one token per forward, hooks for the row's "
        "interventions), compared with transformers' `generate` on the same prompt. Concurrent "
        "Detect clients here send 4 sentences each; the scheduler coalesces them into shared "
        "forwards (the batching section below measures that against a batched forward). No GPU "
        "was measured unless the device above says CUDA.",
        "<!-- serving:end -->",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke check)")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--models", type=Path, default=ROOT / "data" / "models")
    args = parser.parse_args()
    reps = 3 if args.quick else 15
    gen_tokens = 16 if args.quick else 32
    device = "cuda" if torch.cuda.is_available() else "cpu"
    command = "make bench" if not args.quick else "scripts/bench_serving.py --quick"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        server = spawn_server(data, "--model-roots", str(args.models.resolve()),
                              "--dtype", "float32", "--grace-seconds", "5")  # fmt: skip
        try:
            cs = Client.connect(server.address, timeout=600, token=server.token)
            cs.register_model(DEMO_MODEL_NAME, DEMO_MODEL_NAME, wait=True)
            dictionary = extract_dictionary(cs)
            manifest, tensors = LocalDictionaryStore(data).load(dictionary)
            detector = Detector(manifest, tensors)
            source = loading.inspect_source(args.models.resolve() / DEMO_MODEL_NAME, "")
            model = loading.load(source, torch.device(device), torch.float32)
            print("detection overhead ...", flush=True)
            detection = bench_detection_overhead(model, detector, reps)
            print("generation ...", flush=True)
            generation = bench_generation(model, detector, max(2, reps // 3), gen_tokens)
            print("gRPC vs in-process ...", flush=True)
            grpc_ratio = bench_grpc(cs, model, detector, reps)
            print("concurrency ...", flush=True)
            concurrency = bench_concurrency(
                server.address, server.token, dictionary, 2 if args.quick else 6
            )
            cs.close()
        finally:
            server.terminate()
    results = {
        "date": datetime.date.today().isoformat(), "machine": _machine(), "device": device,
        "reps": reps, "gen_tokens": gen_tokens, "detection": detection,
        "generation": generation, "grpc": grpc_ratio, "concurrency": concurrency,
    }  # fmt: skip
    section = render(results, command)
    write_section(args.out, section, "serving")
    print(section)
    print(f"total {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
