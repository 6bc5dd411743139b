"""Guard Check latency on the demo model, against Envoy ext_proc's 200 ms default message timeout.

A real `chunkscope serve` (its own temporary data dir, the demo model from --models) with a PA
dictionary for the demo's concepts extracted at two hook points and a policy with one rule per
concept over both. One client sends Check for a prompt of about 200 tokens, one call at a time
(the latency a gateway sees per request), interleaved with Detect of the same text with the same
dictionaries (the path Check runs through), so the Check/Detect ratio is what the policy layer
adds. Reports p50/p95/max of the client-side latency and the share of calls within 200 ms.
Writes its section into BENCHMARKS.md between `<!-- guard:start -->` and `<!-- guard:end -->`.

    GOMP_SPINCOUNT=1000 .venv/bin/python scripts/bench_guard.py --out BENCHMARKS.md   # ~2 min
"""

from __future__ import annotations

import os

os.environ.setdefault("GOMP_SPINCOUNT", "1000")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import platform
import shlex
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts")]

from benchdoc import CONCEPTS, SENTENCES, cpu_name, load_average, write_section  # noqa: E402

from chunkscope.demo_model import DEMO_MODEL_NAME, ensure_demo_model  # noqa: E402
from chunkscope.launcher import spawn_server  # noqa: E402
from chunkscope_client import Client  # noqa: E402
from chunkscope_client.v1 import detection_pb2 as dp  # noqa: E402
from chunkscope_client.v1 import dictionaries_pb2 as xp  # noqa: E402
from chunkscope_client.v1 import guard_pb2 as gp  # noqa: E402
from chunkscope_client.v1 import perturbation_pb2 as pp  # noqa: E402

HOOKS = ["blocks.8.resid_post", "blocks.16.resid_post"]
ENVOY_TIMEOUT_MS = 200.0
TARGET_TOKENS = 200
TRAINING = (
    SENTENCES * 2 + [f"{c.capitalize()} again: more {c} here, and {c} there." for c in CONCEPTS] * 4
)
_BEGAN = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _BEGAN:6.1f}s] {message}", flush=True)


def prompt_of(cs: Client, policy: str) -> tuple[str, int]:
    """The demo's sentences repeated until the model sees about TARGET_TOKENS tokens."""
    text = ""
    for sentence in SENTENCES * 10:
        candidate = f"{text} {sentence}".strip()
        n = cs.check(policy, texts=[candidate]).n_tokens
        if n > TARGET_TOKENS:
            break
        text = candidate
    return text, cs.check(policy, texts=[text]).n_tokens


def _ms(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q) * 1e3)


def bench(cs: Client, policy: str, dictionaries: list[str], text: str, reps: int) -> dict:
    detect = dp.DetectRequest(
        config=dp.DetectionConfig(model={"name": DEMO_MODEL_NAME}, dictionary_ids=dictionaries,
                                  summary_only=True),
        inputs=[dp.DetectInput(text=text)],
    )  # fmt: skip
    for _ in range(3):  # warm-up: caches, allocator, first-call paths
        cs.check(policy, texts=[text])
        cs.detect(detect)
    checks: list[float] = []
    detects: list[float] = []
    server_ns: list[int] = []
    verdicts: dict[str, int] = {}
    for i in range(reps):
        for arm in ("check", "detect") if i % 2 == 0 else ("detect", "check"):
            t0 = time.perf_counter()
            if arm == "check":
                reply = cs.check(policy, texts=[text], timeout=30)
                checks.append(time.perf_counter() - t0)
                server_ns.append(reply.detect_ns)
                name = gp.Verdict.Name(reply.verdict).removeprefix("VERDICT_")
                verdicts[name] = verdicts.get(name, 0) + 1
            else:
                cs.detect(detect)
                detects.append(time.perf_counter() - t0)
    return {
        "check_p50": _ms(checks, 50), "check_p95": _ms(checks, 95),
        "check_max": max(checks) * 1e3, "check_min": min(checks) * 1e3,
        "detect_p50": _ms(detects, 50), "detect_p95": _ms(detects, 95),
        "server_detect_p50": statistics.median(server_ns) / 1e6,
        "within": sum(c * 1e3 <= ENVOY_TIMEOUT_MS for c in checks) / len(checks),
        "ratio": statistics.median(checks) / statistics.median(detects),
        "verdicts": verdicts,
    }  # fmt: skip


def render(r: dict[str, Any]) -> str:
    b = r["bench"]
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(b["verdicts"].items()))
    verdict = "within" if b["check_p95"] <= ENVOY_TIMEOUT_MS else "over"
    lines = [
        "<!-- guard:start -->",
        "## Guard: Check latency (demo model, SmolLM2-135M-Instruct)",
        "",
        f"Command: `{r['command']}`; {r['date']}; {r['machine']}; device {r['device']}, float32, "
        f"{r['spin']}. Load average (1/5/15 min) {r['load_start']} at the start, "
        f"{r['load_end']} at the end; {r['total_s']:.0f} s in all.",
        "",
        f"One client, one call at a time, {r['reps']} Checks interleaved with {r['reps']} Detects "
        f"of the same text (after 3 warm-up calls of each). The prompt: the demo's sentences, "
        f"{r['n_tokens']} tokens. The policy: {len(CONCEPTS)} rules (block "
        f"{CONCEPTS[0]!r}, intervene on {CONCEPTS[1]!r}, record {CONCEPTS[2]!r}) over one PA "
        f"dictionary at each of {', '.join(HOOKS)}: one forward, stopped at the deeper hook "
        "point, serves both. Latency is measured at the client (gRPC on loopback included).",
        "",
        "| call | p50 ms | p95 ms | min ms | max ms |",
        "|---|---|---|---|---|",
        f"| Check | **{b['check_p50']:.0f}** | **{b['check_p95']:.0f}** | {b['check_min']:.0f} | "
        f"{b['check_max']:.0f} |",
        f"| Detect (same text and dictionaries) | {b['detect_p50']:.0f} | {b['detect_p95']:.0f} "
        "| | |",
        "",
        f"Check / Detect (medians): {b['ratio']:.3f}x. Server-side detection time in Check "
        f"(`detect_ns`, median): {b['server_detect_p50']:.0f} ms. Verdicts: {verdicts}.",
        "",
        f"Against Envoy ext_proc's default message timeout of {ENVOY_TIMEOUT_MS:.0f} ms: p95 is "
        f"**{verdict}** it on this machine; {b['within']:.0%} of the Checks answered within "
        f"{ENVOY_TIMEOUT_MS:.0f} ms. The time is the forward pass on 2 CPU cores (the policy "
        "adds matching and a store read); a GPU, a shallower hook point (the forward stops at "
        "the deepest one a policy uses) or a raised timeout (`message_timeout` in Envoy's "
        "ext_proc filter) are the levers (docs/GUARD.md). No GPU was measured unless the device "
        "above says CUDA.",
        "<!-- guard:end -->",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--models", type=Path, default=ROOT / "data" / "models")
    parser.add_argument("--reps", type=int, default=40)
    args = parser.parse_args()
    load_start = load_average()
    models = args.models.resolve()
    ensure_demo_model(models)
    with tempfile.TemporaryDirectory(prefix="chunkscope-bench-guard-") as tmp:
        server = spawn_server(Path(tmp), "--model-roots", str(models), "--dtype", "float32",
                              "--grace-seconds", "5")  # fmt: skip
        try:
            with Client.connect(server.address, timeout=600, token=server.token) as cs:
                log("registering the demo model")
                cs.register_model(DEMO_MODEL_NAME, DEMO_MODEL_NAME, wait=True)
                device = cs.get_model(DEMO_MODEL_NAME).device or "cpu"
                log(f"extracting a PA dictionary at {', '.join(HOOKS)}")
                shallow, deep = cs.extract_dictionary(xp.ExtractDictionaryRequest(
                    model={"name": DEMO_MODEL_NAME}, hook_points=HOOKS,
                    corpus=xp.Corpus(texts=xp.TextList(texts=TRAINING)),
                    population_averaging=xp.PopulationAveragingParams(
                        concepts=[xp.ConceptWords(concept=c) for c in CONCEPTS], seed=0),
                ), timeout=1200)  # fmt: skip
                inhibit = pp.Intervention(
                    chunk=pp.ChunkRef(dictionary_id=shallow.id, entry_id=1),
                    mode=pp.INTERVENTION_MODE_INHIBIT, positions=pp.Positions(generated=True),
                )  # fmt: skip
                cs.put_policy(gp.Policy(
                    name="bench", model={"name": DEMO_MODEL_NAME},
                    rules=[
                        gp.PolicyRule(dictionary_id=deep.id, label=CONCEPTS[0],
                                      action=gp.POLICY_ACTION_BLOCK),
                        gp.PolicyRule(dictionary_id=shallow.id, label=CONCEPTS[1],
                                      action=gp.POLICY_ACTION_INTERVENE, interventions=[inhibit]),
                        gp.PolicyRule(dictionary_id=deep.id, label=CONCEPTS[2],
                                      action=gp.POLICY_ACTION_ALLOW),
                    ],
                ))  # fmt: skip
                text, n_tokens = prompt_of(cs, "bench")
                log(f"prompt: {n_tokens} tokens; {args.reps} Checks and Detects, interleaved")
                result = bench(cs, "bench", [shallow.id, deep.id], text, args.reps)
                log(f"Check p50 {result['check_p50']:.0f} ms, p95 {result['check_p95']:.0f} ms")
        finally:
            server.terminate()
    results = {
        "command": shlex.join([os.path.relpath(sys.executable), *sys.argv]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "device": device,
        "spin": f"GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}",
        "load_start": load_start,
        "load_end": load_average(),
        "total_s": time.perf_counter() - _BEGAN,
        "reps": args.reps,
        "n_tokens": n_tokens,
        "bench": result,
    }
    section = render(results)
    write_section(args.out, section, "guard")
    print(section)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
