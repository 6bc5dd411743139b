"""Study of Population Averaging variants on the demo model; writes docs/PA_STUDY.md.

    PYTHONPATH=service:clients/python/src .venv/bin/python scripts/pa_study.py \
        --models-root data/models --out docs/PA_STUDY.md

What it does, all in this process (no server):
1. Captures the residual stream after every block of SmolLM2-135M (the demo model, `make
   demo-model`) for docs/concepts.json's training and held-out texts, once, with the very function
   scripts/reproduce.py uses for its in-process part (one sentence per pass, right padding,
   chunkscope's own token labelling), and caches the states to --cache (default under /tmp).
2. Fits PA (chunking/pa.py, `fit_concept`) per block and concept under several variants of the
   method and scores each fitted chunk on the held-out text, TPR at FPR <= 0.001.
3. Writes a table per variant: mean / best / worst held-out TPR over all blocks (concepts averaged
   per block; a cell with no admissible tolerance counts as a detector that never fires, TPR 0),
   the largest held-out FPR of any cell, the run settings and the machine load.

Everything is seeded; on CPU the numbers repeat from run to run. Torch and BLAS use one thread
(--threads) so the study shares the machine politely.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduce import inprocess_states  # noqa: E402

from chunkscope.chunking import pa  # noqa: E402
from chunkscope.demo_model import ensure_demo_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MAX_FPR = 0.001


# ----- 1. states ------------------------------------------------------------------------------


@dataclass
class Split:
    states: list[np.ndarray]  # per block, float32 [N, d]
    positives: dict[str, np.ndarray]  # concept -> sorted rows
    first: np.ndarray  # bool [N]: the token opens its sentence


def capture(args: argparse.Namespace, corpus: dict) -> tuple[Split, Split, float]:
    """Both splits' states, from the cache when it matches the corpus, else from the model."""
    key = json.dumps([corpus["concepts"], corpus["train"], corpus["heldout"]], sort_keys=True)
    cache = Path(args.cache)
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return _unpack(z, "train"), _unpack(z, "held"), float(z["seconds"])
    model_dir = ensure_demo_model(Path(args.models_root))
    started = time.perf_counter()
    common = (corpus["concepts"], args.batch_size, args.threads)
    train = inprocess_states(model_dir, corpus["train"], *common)
    held = inprocess_states(model_dir, corpus["heldout"], *common)
    seconds = time.perf_counter() - started
    arrays: dict[str, np.ndarray] = {"key": np.array(key), "seconds": np.array(seconds)}
    for name, split in (("train", train), ("held", held)):
        for b, x in enumerate(split.states):
            arrays[f"{name}/states/{b}"] = x
        for c, p in split.positives.items():
            arrays[f"{name}/pos/{c}"] = p
        arrays[f"{name}/first"] = split.first
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".partial.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(cache)
    return (
        Split(train.states, train.positives, train.first),
        Split(held.states, held.positives, held.first),
        seconds,
    )


def _unpack(z: np.lib.npyio.NpzFile, name: str) -> Split:
    blocks = sorted(int(k.split("/")[2]) for k in z.files if k.startswith(f"{name}/states/"))
    pos = {k.split("/")[2]: z[k] for k in z.files if k.startswith(f"{name}/pos/")}
    return Split([z[f"{name}/states/{b}"] for b in blocks], pos, z[f"{name}/first"])


# ----- 2. variants ----------------------------------------------------------------------------

# A study-side transform of the states of one block (applied to training and held-out states
# alike; its statistics come from the training states only). Not part of chunking/pa.py: the
# engine would have to apply it at detection time too (docs/PA_STUDY.md says what it would take).
Transform = Callable[[np.ndarray, Split], np.ndarray]


def identity(x: np.ndarray, train: Split) -> np.ndarray:
    return x


def rms_normalise(x: np.ndarray, train: Split) -> np.ndarray:
    """Each token's state divided by its root mean square (what the next block's RMSNorm sees):
    attention-sink tokens, whose norm is hundreds of times the median, no longer dominate."""
    x = x.astype(np.float32)
    return x / np.sqrt(np.mean(np.square(x), axis=1, keepdims=True))


def robust_standardise(block: int) -> Transform:
    def apply(x: np.ndarray, train: Split) -> np.ndarray:
        """Per neuron (x - median) / IQR, fitted on the training states minus sentence-first
        tokens (the attention sinks)."""
        fit = train.states[block][~train.first]
        q25, med, q75 = np.percentile(fit, [25, 50, 75], axis=0)
        return ((x - med) / np.maximum(q75 - q25, 1e-6)).astype(np.float32)

    return apply


@dataclass(frozen=True)
class Variant:
    name: str
    params: pa.PAParams
    transform: str = "none"  # "none", "rms", "robust"
    note: str = ""


@dataclass
class Outcome:
    variant: Variant
    per_block: np.ndarray  # mean held-out TPR over concepts, per block
    fprs: list[float]  # held-out FPR of every fitted cell
    infeasible: int  # cells with no admissible tolerance (TPR 0)
    seconds: float
    load: tuple[float, float]  # 1-min load average before / after


def variants(min_occurrences: int) -> list[Variant]:
    tpr = replace(pa.PAParams(), criterion="tpr_at_fpr", max_fpr=MAX_FPR, cv_folds=0)
    neg = replace(tpr, radius_rule="negatives")
    return [
        Variant("authors", pa.PAParams(cv_folds=0), note="n 5, accuracy rule (the paper's)"),
        Variant("n5 tpr", replace(tpr, n_samples=5)),
        Variant("n10 tpr", replace(tpr, n_samples=10), note="the issue's reference"),
        Variant("n20 tpr", replace(tpr, n_samples=20)),
        Variant(
            f"n{min_occurrences} tpr",
            replace(tpr, n_samples=min_occurrences),
            note="about all occurrences",
        ),
        Variant("n10 tpr rms", replace(tpr, n_samples=10), "rms"),
        Variant("n10 tpr robust", replace(tpr, n_samples=10), "robust"),
        Variant("n20 tpr robust", replace(tpr, n_samples=20), "robust"),
        Variant("n5 tpr neg", replace(neg, n_samples=5)),
        Variant("n10 tpr neg", replace(neg, n_samples=10)),
        Variant("n20 tpr neg", replace(neg, n_samples=20)),
        Variant("n10 acc neg", replace(neg, n_samples=10, criterion="accuracy")),
        Variant("n10 tpr neg k1", replace(neg, n_samples=10, radius_negatives=1)),
        Variant("n10 tpr neg rms", replace(neg, n_samples=10), "rms"),
        Variant("n5 tpr neg 0.9", replace(neg, n_samples=5, radius_scale=0.9)),
        Variant(
            "n10 tpr neg 0.9", replace(neg, n_samples=10, radius_scale=0.9), note="proposed default"
        ),
        Variant("n20 tpr neg 0.9", replace(neg, n_samples=20, radius_scale=0.9)),
        Variant(
            "n10 acc neg 0.9", replace(neg, n_samples=10, radius_scale=0.9, criterion="accuracy")
        ),
        Variant("n10 tpr neg 0.8", replace(neg, n_samples=10, radius_scale=0.8)),
        Variant("n10 tpr neg 0.9 rms", replace(neg, n_samples=10, radius_scale=0.9), "rms"),
    ]


def evaluate(v: Variant, train: Split, held: Split, concepts: Sequence[str]) -> Outcome:
    load0 = os.getloadavg()[0]
    started = time.perf_counter()
    per_block, fprs, infeasible = [], [], 0
    for b in range(len(train.states)):
        tf: Transform = {"none": identity, "rms": rms_normalise, "robust": robust_standardise(b)}[
            v.transform
        ]
        x, h = tf(train.states[b], train), tf(held.states[b], train)
        tprs = []
        for c in concepts:
            try:
                chunk = pa.fit_concept(
                    x,
                    train.positives[c],
                    v.params,
                    heldout_states=h,
                    heldout_positives=held.positives[c],
                )
            except pa.NoValidTolerance:
                tprs.append(0.0)  # a detector that never fires
                infeasible += 1
                continue
            assert chunk.heldout is not None
            tprs.append(chunk.heldout.tpr)
            fprs.append(chunk.heldout.fpr)
        per_block.append(float(np.mean(tprs)))
    seconds = time.perf_counter() - started
    return Outcome(v, np.array(per_block), fprs, infeasible, seconds, (load0, os.getloadavg()[0]))


# ----- 3. report ------------------------------------------------------------------------------


def report(
    outcomes: Sequence[Outcome],
    train: Split,
    held: Split,
    concepts: Sequence[str],
    capture_seconds: float,
    args: argparse.Namespace,
    total: float,
) -> str:
    n_neg_held = held.states[0].shape[0] - int(np.mean([held.positives[c].size for c in concepts]))
    lines = [
        "# Population Averaging: a study of variants on the demo model",
        "",
        "Generated by `scripts/pa_study.py` (regenerate: `make demo-model`, then "
        "`PYTHONPATH=service:clients/python/src .venv/bin/python scripts/pa_study.py "
        "--models-root data/models --out docs/PA_STUDY.md`; the states are cached under "
        f"{Path(args.cache).parent}/, a re-run without the model forward takes about a minute). "
        "Everything is seeded; on CPU the numbers repeat.",
        "",
        "**Setup.** SmolLM2-135M-Instruct, residual stream after each of its "
        f"{len(train.states)} blocks (`blocks.N.resid_post`), docs/concepts.json: "
        f"{len(concepts)} concepts, training text {train.states[0].shape[0]} tokens "
        f"({', '.join(f'{c} {train.positives[c].size}' for c in concepts)} occurrences), "
        "held-out "
        f"text {held.states[0].shape[0]} tokens "
        f"({', '.join(str(held.positives[c].size) for c in concepts)}"
        " occurrences). States are computed with the same function as scripts/reproduce.py's "
        "in-process part (one sentence per pass, chunkscope's own token labels). Each variant "
        "fits one chunk per block and concept with chunking/pa.py `fit_concept` on the training "
        "text and scores it unchanged on the held-out text. A block's TPR is the mean over its "
        "concepts; a cell with no tolerance that meets FPR <= 0.001 on the training text counts "
        f"as a detector that never fires (TPR 0). The held-out text has about {n_neg_held} "
        "negatives per concept, so one false positive is an FPR of about "
        f"{1 / n_neg_held:.4f} and the bound 0.001 allows at most one.",
        "",
        "Columns: mean, best and worst held-out TPR over all blocks; the mean over blocks 24-29; "
        "held-out FPR (mean over cells, largest cell, and cells above 0.001 out of "
        f"{len(train.states) * len(concepts)}); cells with no admissible tolerance; seconds of "
        "fitting and the 1-minute load average before / after.",
        "",
        "| variant | settings | mean TPR | best | worst | blocks 24-29 | mean FPR | max FPR | "
        "cells FPR > 0.001 | infeasible | s | load |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        p, f = o.variant.params, np.array(o.fprs)
        settings = (
            f"n_samples {p.n_samples}, {p.criterion}, radius {p.radius_rule}"
            + (f" (k {p.radius_negatives})" if p.radius_rule == "negatives" else "")
            + (f" × {p.radius_scale:g}" if p.radius_scale != 1.0 else "")
            + (f", states {o.variant.transform}" if o.variant.transform != "none" else "")
            + (f"; {o.variant.note}" if o.variant.note else "")
        )
        lines.append(
            f"| {o.variant.name} | {settings} | {o.per_block.mean():.3f} | "
            f"{o.per_block.max():.3f} | {o.per_block.min():.3f} | "
            f"{o.per_block[24:].mean():.3f} | {f.mean():.4f} | {f.max():.4f} | "
            f"{int(np.sum(f > MAX_FPR))} | {o.infeasible} | {o.seconds:.0f} | "
            f"{o.load[0]:.1f} / {o.load[1]:.1f} |"
        )
    lines += ["", "Held-out TPR per block (mean over concepts):", ""]
    blocks = range(len(train.states))
    lines.append("| variant | " + " | ".join(str(b) for b in blocks) + " |")
    lines.append("| --- |" + " --- |" * len(train.states))
    for o in outcomes:
        lines.append(f"| {o.variant.name} | " + " | ".join(f"{v:.2f}" for v in o.per_block) + " |")
    lines += ["", *nearest_negatives(train, concepts), ""]
    lines += [
        f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} "
        f"({os.cpu_count()} cores visible), {args.threads} torch/BLAS thread(s); forward passes "
        f"{capture_seconds:.0f}s (cached runs reuse them), whole run {total:.0f}s.",
        "",
    ]
    return "\n".join(lines)


def nearest_negatives(train: Split, concepts: Sequence[str]) -> list[str]:
    """Why late blocks fail: which training tokens lie nearest each concept's mean state."""
    owner: dict[int, str] = {}
    for c in concepts:
        for r in train.positives[c].tolist():
            owner[r] = c
    rows = [
        "**Nearest negatives.** Per block and concept: the share of the concept's own training "
        "occurrences nearer its mean state (all 576 neurons) than the third-nearest other "
        "token, and what the 8 nearest other tokens are (an occurrence of another concept, "
        "or plain text).",
        "",
        "| block | concept | occurrences nearer than the 3rd-nearest other token | 8 nearest "
        "other tokens |",
        "| --- | --- | --- | --- |",
    ]
    for b in (8, 27):
        x = train.states[b].astype(np.float64)
        for c in concepts:
            pos = train.positives[c]
            d = np.mean(np.square(x - x[pos].mean(axis=0)), axis=1)
            mask = np.zeros(len(x), dtype=bool)
            mask[pos] = True
            others = [int(r) for r in np.argsort(d) if not mask[r]][:8]
            kinds = [owner.get(r, "text") for r in others]
            summary = ", ".join(f"{k} {kinds.count(k)}" for k in dict.fromkeys(kinds))
            nearer = float(np.mean(d[pos] < d[others[2]]))
            rows.append(f"| {b} | {c} | {nearer:.2f} | {summary} |")
    return rows


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-root", type=Path, default=ROOT / "data" / "models")
    ap.add_argument("--concepts", type=Path, default=ROOT / "docs" / "concepts.json")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/pa_study/states.npz"))
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "PA_STUDY.md")
    ap.add_argument("--batch-size", type=int, default=16, help="sentences per forward pass")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the forward passes")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    corpus = json.loads(args.concepts.read_text())
    concepts = list(corpus["concepts"])
    train, held, capture_seconds = capture(args, corpus)
    outcomes = []
    for v in variants(min(int(train.positives[c].size) for c in concepts)):
        o = evaluate(v, train, held, concepts)
        print(
            f"{v.name:18s} mean {o.per_block.mean():.3f} best {o.per_block.max():.3f} "
            f"worst {o.per_block.min():.3f} max FPR {max(o.fprs):.4f} ({o.seconds:.0f}s)",
            flush=True,
        )
        outcomes.append(o)
    text = report(
        outcomes, train, held, concepts, capture_seconds, args, time.perf_counter() - started
    )
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
