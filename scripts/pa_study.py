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
from dataclasses import dataclass, field, replace
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
CV_FOLDS = 5
PROPOSED = "proposed default"
REFERENCE = "the issue's reference"


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
    cv_tpr: list[float] = field(default_factory=list)  # cross-validated on training, per cell
    cv_fpr: list[float] = field(default_factory=list)
    cells: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [block, concept] TPR


def variants() -> list[Variant]:
    """The variants compared (a name's "all": every training occurrence is a sample)."""
    tpr = replace(pa.PAParams(), criterion="tpr_at_fpr", max_fpr=MAX_FPR, cv_folds=0)
    neg = replace(tpr, radius_rule="negatives")
    return [
        # The authors' radius (the largest distance of a sample from the prototype).
        Variant("authors", pa.PAParams(cv_folds=0), note="the paper's settings"),
        Variant("n5 tpr", replace(tpr, n_samples=5)),
        Variant("n10 tpr", replace(tpr, n_samples=10, cv_folds=CV_FOLDS), note=REFERENCE),
        Variant("n20 tpr", replace(tpr, n_samples=20)),
        Variant("all tpr", replace(tpr, sample_all=True)),
        Variant("n10 tpr x1.5", replace(tpr, n_samples=10, radius_scale=1.5)),
        # Robust centring / scaling of the states (study-side transforms, samples radius).
        Variant("n10 tpr rms", replace(tpr, n_samples=10), "rms"),
        Variant("n10 tpr robust", replace(tpr, n_samples=10), "robust"),
        Variant("n20 tpr robust", replace(tpr, n_samples=20), "robust"),
        # The radius calibrated on the training negatives.
        Variant("n5 neg", replace(neg, n_samples=5)),
        Variant("n10 neg", replace(neg, n_samples=10, cv_folds=CV_FOLDS)),
        Variant("n20 neg", replace(neg, n_samples=20)),
        Variant("all neg", replace(neg, sample_all=True, cv_folds=CV_FOLDS)),
        Variant("n10 neg acc", replace(neg, n_samples=10, criterion="accuracy")),
        Variant("n10 neg k1", replace(neg, n_samples=10, radius_negatives=1, cv_folds=CV_FOLDS)),
        Variant("n10 neg rms", replace(neg, n_samples=10), "rms"),
        # ... with a margin to the nearest negative.
        Variant("n5 neg x0.9", replace(neg, n_samples=5, radius_scale=0.9)),
        Variant("n10 neg x0.9", replace(neg, n_samples=10, radius_scale=0.9, cv_folds=CV_FOLDS)),
        Variant("n10 neg x0.9 seed 1", replace(neg, n_samples=10, radius_scale=0.9, seed=1)),
        Variant("n10 neg x0.9 seed 2", replace(neg, n_samples=10, radius_scale=0.9, seed=2)),
        Variant("n20 neg x0.9", replace(neg, n_samples=20, radius_scale=0.9)),
        Variant(
            "all neg x0.9",
            replace(neg, sample_all=True, radius_scale=0.9, cv_folds=CV_FOLDS),
            note=PROPOSED,
        ),
        Variant(
            "all neg x0.9 acc",
            replace(neg, sample_all=True, radius_scale=0.9, criterion="accuracy"),
        ),
        Variant("all neg x0.8", replace(neg, sample_all=True, radius_scale=0.8, cv_folds=CV_FOLDS)),
        Variant("all neg x0.9 rms", replace(neg, sample_all=True, radius_scale=0.9), "rms"),
        Variant("all neg x0.9 robust", replace(neg, sample_all=True, radius_scale=0.9), "robust"),
    ]


def evaluate(v: Variant, train: Split, held: Split, concepts: Sequence[str]) -> Outcome:
    load0 = os.getloadavg()[0]
    started = time.perf_counter()
    per_block: list[list[float]] = []
    fprs: list[float] = []
    infeasible = 0
    cv_tpr: list[float] = []
    cv_fpr: list[float] = []
    for b in range(len(train.states)):
        transforms: dict[str, Transform] = {
            "none": identity,
            "rms": rms_normalise,
            "robust": robust_standardise(b),
        }
        tf = transforms[v.transform]
        x, h = tf(train.states[b], train), tf(held.states[b], train)
        tprs: list[float] = []
        for c in concepts:
            cross: pa.Scores | None
            try:
                chunk = pa.fit_concept(
                    x,
                    train.positives[c],
                    v.params,
                    heldout_states=h,
                    heldout_positives=held.positives[c],
                )
            except pa.NoValidTolerance as exc:
                tprs.append(0.0)  # a detector that never fires
                infeasible += 1
                cross = exc.cross_validated
            else:
                assert chunk.heldout is not None
                tprs.append(chunk.heldout.tpr)
                fprs.append(chunk.heldout.fpr)
                cross = chunk.cross_validated
            if v.params.cv_folds and cross is not None:
                cv_tpr.append(cross.tpr)
                cv_fpr.append(cross.fpr)
        per_block.append(tprs)
    seconds = time.perf_counter() - started
    cells = np.array(per_block)
    return Outcome(
        v,
        cells.mean(axis=1),
        fprs,
        infeasible,
        seconds,
        (load0, os.getloadavg()[0]),
        cv_tpr,
        cv_fpr,
        cells,
    )


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
        *findings(outcomes, concepts),
        "",
        "## All variants",
        "",
        "Columns: mean, best and worst held-out TPR over all blocks; the mean over blocks 24-29; "
        "held-out FPR (mean over cells, largest cell, and cells above 0.001 out of "
        f"{len(train.states) * len(concepts)}); cells with no admissible tolerance; for some "
        f"variants the {CV_FOLDS}-fold cross-validated TPR / FPR on the training text (mean over "
        "cells: what a choice of settings can honestly be made by, without the held-out text); "
        "seconds of fitting and the 1-minute load average before / after. *rms*: each token's "
        "state divided by its root mean square; *robust*: per neuron (x - median) / IQR fitted "
        "on the training states without sentence-first tokens (both are applied by this script "
        "only, to training and held-out states alike; chunking/pa.py does not have them).",
        "",
        "| variant | settings | mean TPR | best | worst | blocks 24-29 | mean FPR | max FPR | "
        "cells FPR > 0.001 | infeasible | CV TPR / FPR | s | load |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        p, f = o.variant.params, np.array(o.fprs)
        settings = (
            ("every occurrence" if p.sample_all else f"n_samples {p.n_samples}")
            + f", {p.criterion}, radius {p.radius_rule}"
            + (f" (k {p.radius_negatives})" if p.radius_rule == "negatives" else "")
            + (f" × {p.radius_scale:g}" if p.radius_scale != 1.0 else "")
            + (f", states {o.variant.transform}" if o.variant.transform != "none" else "")
            + (f", seed {p.seed}" if p.seed else "")
            + (f"; {o.variant.note}" if o.variant.note else "")
        )
        lines.append(
            f"| {o.variant.name} | {settings} | {o.per_block.mean():.3f} | "
            f"{o.per_block.max():.3f} | {o.per_block.min():.3f} | "
            f"{o.per_block[24:].mean():.3f} | {f.mean():.4f} | {f.max():.4f} | "
            f"{int(np.sum(f > MAX_FPR))} | {o.infeasible} | {cv_cell(o)} | {o.seconds:.0f} | "
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


def cv_cell(o: Outcome) -> str:
    if not o.cv_tpr:
        return "–"
    return f"{np.mean(o.cv_tpr):.3f} / {np.mean(o.cv_fpr):.4f}"


def findings(outcomes: Sequence[Outcome], concepts: Sequence[str]) -> list[str]:
    """The summary: reference, authors and proposed variant, the targets, what stands in the way."""
    by = {o.variant.name: o for o in outcomes}
    ref, authors, inflate = by["n10 tpr"], by["authors"], by["n10 tpr x1.5"]
    best = next(o for o in outcomes if o.variant.note == PROPOSED)
    n10 = by["n10 neg x0.9"]
    seeds = [o for o in outcomes if o.variant.name.startswith("n10 neg x0.9 seed")]
    margins = [by["all neg"], best, by["all neg x0.8"]]
    p = best.variant.params

    def line(o: Outcome) -> str:
        f = np.array(o.fprs)
        return (
            f"mean held-out TPR over all blocks {o.per_block.mean():.3f}, best block "
            f"{o.per_block.max():.3f}, worst {o.per_block.min():.3f}, blocks 24-29 "
            f"{o.per_block[24:].mean():.3f}; held-out FPR mean {f.mean():.4f}, largest "
            f"{f.max():.4f}, cells above 0.001: {int(np.sum(f > MAX_FPR))}"
        )

    late = best.cells[24:].mean(axis=0)
    late_rows = ", ".join(f"{c} {v:.2f}" for c, v in zip(concepts, late, strict=True))
    other_seeds = "; ".join(
        f"seed {o.variant.params.seed}: mean {o.per_block.mean():.3f}, best {o.per_block.max():.3f}"
        for o in seeds
    )
    fprs = np.array(best.fprs)

    def over(o: Outcome) -> int:
        return int(np.sum(np.array(o.fprs) > MAX_FPR))

    return [
        "## Findings",
        "",
        f"- **Reference** (n_samples 10, TPR at FPR <= 0.001, the authors' radius): {line(ref)}.",
        f"- **Authors' exact settings** (n_samples 5, accuracy rule): {line(authors)}.",
        f'- **Proposed** (`radius_rule="{p.radius_rule}"`, `radius_negatives='
        f"{p.radius_negatives}`, `radius_scale={p.radius_scale:g}`, `sample_all={p.sample_all}`, "
        f"TPR at FPR <= 0.001): {line(best)}. Every occurrence is a sample, so the fit does not "
        "depend on the seed. With 10 samples instead: "
        f"{line(n10)}; other seeds of that draw: {other_seeds}.",
        f"- **Targets** (mean over blocks >= 0.80, best block >= 0.97, at FPR <= 0.001): mean "
        f"{'met' if best.per_block.mean() >= 0.80 else 'not met'} "
        f"({best.per_block.mean():.3f}), best block "
        f"{'met' if best.per_block.max() >= 0.97 else 'not met'} ({best.per_block.max():.3f}); "
        f"the mean held-out FPR is {fprs.mean():.4f}, and {int(np.sum(fprs > MAX_FPR))} of "
        f"{fprs.size} cells exceed 0.001 on the held-out text.",
        "- **Why the authors' rule falls short: the radius.** The ball's radius is the largest "
        "distance of a few samples from their mean, so a handful of occurrences set it and "
        "many others fall outside; to keep the training FPR down, the sweep then settles on "
        "small neuron subsets. Inflating that radius trades TPR for FPR blindly "
        f"(x1.5: mean {inflate.per_block.mean():.3f}, cells above 0.001: {over(inflate)}). "
        "Calibrating the radius on the training negatives puts the "
        "boundary where the data put it: as far out as no training negative is inside, with a "
        "margin (x0.9) so that unseen negatives near the boundary stay out. The margin was "
        "picked among 1, 0.9 and 0.8; the cross-validated scores on the training text alone "
        "(column *CV*) show the same trade-off as the held-out text (CV TPR / FPR: "
        + "; ".join(f"x{o.variant.params.radius_scale:g} {cv_cell(o)}" for o in margins)
        + "): without the margin, more unseen negatives fall inside.",
        "- **Robust centring and scaling of the states** (rms, per-neuron median/IQR with the "
        "sentence-first attention-sink tokens left out of the fit) raise the mean under the "
        "authors' radius, but less than the radius rule does, and add little on top of it; "
        "they would also need the engine to transform states at detection time. Not proposed "
        f"(on top of the proposed variant: rms {by['all neg x0.9 rms'].per_block.mean():.3f}, "
        f"robust {by['all neg x0.9 robust'].per_block.mean():.3f} with "
        f"{over(by['all neg x0.9 robust'])} cell(s) above 0.001).",
        "- **Sample size.** Once the radius comes from the negatives, the samples only set the "
        "prototype and the neuron subsets, and the more the better: every training occurrence "
        "(the size the data offer) gave the highest mean of the x0.9 variants with no cell "
        "above 0.001, and removes the dependence on the seed.",
        f"- **What stands in the way in blocks 24-29** (proposed variant, mean held-out TPR per "
        f"concept there: {late_rows}). In those blocks the occurrences of *cheese*, *cake* and "
        "*cheesecake* are each other's nearest neighbours, and for *music*, *doctor* and "
        "*school* plain text tokens lie nearer the concept's mean state than most of its own "
        "occurrences (table at the end): one ball around one mean cannot separate them at FPR "
        "0.001, under any rescaling tried here.",
    ]


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
    for v in variants():
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
