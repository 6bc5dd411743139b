"""Does choosing a hook point by cross-validated scores come near choosing on held-out text?

Issue #14 item 2: the in-sample training TPR counts the sampled occurrences that set the radius,
so choosing a block by it can pick flattered cells. The API now reports honest scores per entry
(out of sample: the stored chunk without its own samples; k-fold cross-validated: the whole fit
refitted without each fold) and recommends a hook point per concept by them (pa.recommend). This
script
checks that recommendation on the project's own concept texts (docs/concepts.json): it runs the
demo model in this process over the training and the held-out paragraphs, one sentence per
forward pass as `make reproduce` does, fits PA at every block's resid_post for every concept
with chunkscope's own functions (those the server runs), and compares, per concept, the held-out
TPR of the block chosen

- on held-out scores (the oracle, which a user without held-out text cannot run),
- by the honest scores (what the API's `recommended` field names),
- by the cross-validated scores alone, and by the in-sample training scores alone,

each by the same rule (pa.recommend). Cells with no valid tolerance are no candidates, as in the
API. The PA settings are the server's default (--preset recommended: every occurrence a sample,
so no occurrence is out of sample and the honest scores are the cross-validated ones alone) or
the paper's (--preset authors, with --n-samples). Exits 1 when the honest choice's mean held-out
TPR is more than --tolerance below the oracle's.

    .venv/bin/python scripts/check_recommendation.py --models-root data/models
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from reproduce import InProcess, inprocess_states

from chunkscope.chunking import pa
from chunkscope.demo_model import DEMO_MODEL_NAME

ROOT = Path(__file__).resolve().parent.parent
Choice = tuple[int, pa.Scores] | None  # (block, that block's held-out scores)
# How each way of choosing sees a chunk, as pa.recommend's candidates.
RULES: dict[str, Callable[[pa.PAChunk], pa.HonestScores]] = {
    "oracle": lambda c: pa.HonestScores(None, c.heldout),
    "honest": lambda c: c.honest,
    "cross-validated": lambda c: pa.HonestScores(None, c.cross_validated),
    "in-sample": lambda c: pa.HonestScores(None, c.train),
}


def fit_all(
    train: InProcess, held: InProcess, concepts: Sequence[str], params: pa.PAParams
) -> dict[str, list[pa.PAChunk | None]]:
    """Per concept, the chunk of every block (None where no tolerance is valid)."""
    out: dict[str, list[pa.PAChunk | None]] = {c: [] for c in concepts}
    for block, states in enumerate(train.states):
        for concept in concepts:
            try:
                chunk = pa.fit_concept(
                    states, train.positives[concept], params,
                    heldout_states=held.states[block], heldout_positives=held.positives[concept],
                )  # fmt: skip
            except pa.NoValidTolerance:
                chunk = None
            out[concept].append(chunk)
    return out


def choose(chunks: list[pa.PAChunk | None], rule: str, params: pa.PAParams) -> Choice:
    """The block `pa.recommend` picks by the named rule, and its held-out scores."""
    candidates = [None if c is None else RULES[rule](c) for c in chunks]
    index = pa.recommend(candidates, params.max_fpr)
    if index is None:
        return None
    chunk = chunks[index]
    assert chunk is not None and chunk.heldout is not None
    return index, chunk.heldout


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models-root", type=Path, default=ROOT / "data" / "models")
    p.add_argument("--concepts", type=Path, default=ROOT / "docs" / "concepts.json")
    p.add_argument("--preset", default="recommended", choices=("recommended", "authors"),
                   help="the PA settings to start from (the server's default)")  # fmt: skip
    p.add_argument("--n-samples", default="", help="comma-separated n_samples values (each "
                   "draws that many, as an explicit n_samples does in a request; default: the "
                   "preset's, every occurrence for recommended, 10 for authors)")  # fmt: skip
    p.add_argument("--criterion", default="tpr_at_fpr", choices=pa.CRITERIA)
    p.add_argument("--max-fpr", type=float, default=0.001)
    p.add_argument("--cv-folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tolerance", type=float, default=0.05)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    corpus = json.loads(args.concepts.read_text())
    concepts = list(corpus["concepts"])
    model_dir = args.models_root / DEMO_MODEL_NAME
    started = time.perf_counter()
    common = (corpus["concepts"], args.batch_size, args.threads)
    train = inprocess_states(model_dir, corpus["train"], *common)
    held = inprocess_states(model_dir, corpus["heldout"], *common)
    print(
        f"{DEMO_MODEL_NAME}: {len(train.states)} blocks, {train.states[0].shape[0]} training and "
        f"{held.states[0].shape[0]} held-out tokens ({time.perf_counter() - started:.0f}s)"
    )
    failed = False
    base = pa.RECOMMENDED if args.preset == "recommended" else pa.AUTHORS
    common_params = {"criterion": args.criterion, "max_fpr": args.max_fpr, "seed": args.seed,
                     "cv_folds": args.cv_folds}  # fmt: skip
    if args.n_samples:
        variants = [
            dataclasses.replace(base, n_samples=int(n), sample_all=False, **common_params)
            for n in args.n_samples.split(",")
        ]
    elif args.preset == "recommended":
        variants = [dataclasses.replace(base, **common_params)]
    else:
        variants = [dataclasses.replace(base, n_samples=10, **common_params)]
    for params in variants:
        t0 = time.perf_counter()
        chunks = fit_all(train, held, concepts, params)
        drawn = "every occurrence" if params.sample_all else f"n_samples {params.n_samples}"
        print(
            f"\n{args.preset} preset: {drawn}, {params.criterion}, radius {params.radius_rule}"
            f" x{params.radius_scale:g}, max_fpr {params.max_fpr:g}, {params.cv_folds}-fold CV "
            f"({time.perf_counter() - t0:.0f}s of fitting)"
        )
        print(f"{'concept':<12}" + "".join(f"{h:>24}" for h in RULES))
        means: dict[str, list[float]] = {rule: [] for rule in RULES}
        gaps = []
        for concept in concepts:
            picks = {rule: choose(chunks[concept], rule, params) for rule in RULES}
            if picks["oracle"] is None:
                print(f"{concept:<12} no feasible block")
                continue
            cells = []
            for by, pick in picks.items():
                tpr = pick[1].tpr if pick is not None else 0.0
                means[by].append(tpr)
                cells.append(
                    f"block {pick[0]:>2}: {tpr:.2f} ({pick[1].fpr:.4f})" if pick else "none"
                )
            gaps.append(means["oracle"][-1] - means["honest"][-1])
            print(f"{concept:<12}" + "".join(f"{c:>24}" for c in cells))
        mean = {by: float(np.mean(v)) for by, v in means.items()}
        print(
            f"{'mean':<12}" + "".join(f"{mean[rule]:>24.3f}" for rule in RULES)
            + "\nheld-out TPR (FPR) of the chosen block. Below the oracle on the mean: "
            + ", ".join(f"{rule} {mean['oracle'] - mean[rule]:.3f}" for rule in list(RULES)[1:])
            + f"; the honest choice's largest gap for one concept: {max(gaps):.3f}."
        )  # fmt: skip
        failed |= mean["oracle"] - mean["honest"] > args.tolerance
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
