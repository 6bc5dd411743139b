# ruff: noqa: E501  (the Markdown tables of the generated document are long lines)
"""The worked example of docs/ANALYSIS.md, regenerated end to end through the public gRPC API.

    .venv/bin/python scripts/analysis_example.py          # writes docs/ANALYSIS.md

Needs the demo model under data/models (`make demo-model`). Starts its own server on free ports
with a throw-away data directory; trains the RNN test bed (trained and untrained) and the BIMT
MLP test bed on the way. Everything is seeded; timings vary with the machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from chunkscope.analysis import layers as layer_maps
from chunkscope.api.tensors import to_proto
from chunkscope.demo_model import DEMO_MODEL_NAME
from chunkscope.engine.recurrent import RecurrentConfig, save_checkpoint
from chunkscope.launcher import spawn_server
from chunkscope.testbeds import bimt as bimt_bed
from chunkscope.testbeds.sequences import alphabet, reflection
from chunkscope.testbeds.train import build_model, next_symbol_accuracy, train_rnn
from chunkscope_client import Client
from chunkscope_client.v1 import analysis_pb2 as pb
from chunkscope_client.v1 import dictionaries_pb2 as dpb

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ANALYSIS.md"
TEXTS = [
    "The cheese shop on the corner sells a sharp cheddar and a soft goat cheese.",
    "We walked along the river until it bent south past the old mill.",
    "She played music every evening, and the music filled the narrow street.",
    "The train left the station at noon and arrived in the city by evening.",
    "Rain fell on the roofs all afternoon while the clocks ticked in the hall.",
    "A wooden bridge crossed the river where the water was narrowest.",
]
LM_POINTS = ["embed"] + [f"blocks.{i}.resid_post" for i in range(0, 30, 3)] + ["final_norm"]


def _matrix_table(names: list[str], values: list[float], fmt: str = "{:.2f}") -> str:
    n = len(names)
    short = [name.replace("blocks.", "b").replace(".resid_post", "") for name in names]
    lines = ["| | " + " | ".join(short) + " |", "|---" * (n + 1) + "|"]
    for i in range(n):
        row = " | ".join(fmt.format(values[i * n + j]) for j in range(n))
        lines.append(f"| **{short[i]}** | {row} |")
    return "\n".join(lines)


def _groups(result: pb.LayerSimilarityResult) -> str:
    return "; ".join(
        "{"
        + ", ".join(result.layers[i] for i in g.layers)
        + f"}} (mean within {g.mean_within:.3f})"
        for g in result.groups
    )


def layer_maps_section(cs: Client, out: list[str], pngs: Path) -> None:
    text_corpus = dpb.Corpus(texts=dpb.TextList(texts=TEXTS))
    for measure, label in ((pb.MEASURE_LINEAR_CKA, "cka"), (pb.MEASURE_GROMOV_WASSERSTEIN, "gw")):
        request = pb.LayerSimilarityRequest(
            model=pb.ModelLayers(
                model={"name": DEMO_MODEL_NAME}, hook_points=LM_POINTS, inputs=text_corpus
            ),
            measure=measure,
            params=pb.MeasureParams(
                gromov_wasserstein=pb.GromovWassersteinParams(max_samples=100, seed=0)
            ),
            grouping=pb.GroupingParams(method=pb.GROUPING_METHOD_CONTIGUOUS),
            heatmap_png=True,
        )
        r = cs.layer_similarity(request, timeout=1800)
        png = pngs / f"analysis_layers_{label}.png"
        png.write_bytes(r.heatmap_png)
        title = "Linear CKA" if label == "cka" else "Gromov-Wasserstein"
        out += [
            f"### {title}\n",
            f"`{r.definition}`\n",
            f"Samples: {r.samples_used} token states per layer (of {r.samples_total}"
            + (f"; seeded subsample, seed {r.seed}" if r.subsampled else "")
            + f"). Computed in {r.elapsed_seconds:.1f} s (capture included).\n",
            _matrix_table(list(r.layers), list(r.matrix)),
            "",
            f"Groups ({r.grouping_description}):\n\n{_groups(r)}\n",
            f"Heatmap of the dissimilarity (darker = more similar): `docs/{png.name}`\n",
        ]


def rnn_section(cs: Client, out: list[str], models: Path) -> None:
    sequence = reflection()
    config = RecurrentConfig("elman", alphabet(sequence), 12)
    trained, untrained = build_model(config, seed=0), build_model(config, seed=0)
    other = build_model(config, seed=1)
    started = time.perf_counter()
    train_rnn(trained, sequence, iterations=400, seed=0)
    train_rnn(other, sequence, iterations=400, seed=1)
    seconds = time.perf_counter() - started
    for name, model in (("rnn-trained", trained), ("rnn-trained-2", other),
                        ("rnn-untrained", untrained)):  # fmt: skip
        save_checkpoint(model.eval(), models / name)
        cs.register_model(name, str(models / name), wait=True)
    accuracy = {n: next_symbol_accuracy(m, sequence) for n, m in
                (("rnn-trained", trained), ("rnn-trained-2", other), ("rnn-untrained", untrained))}  # fmt: skip
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(sequence) - 200, size=20)
    inputs = dpb.Corpus(sequences=dpb.SequenceList(sequences=[
        dpb.SymbolSequence(symbols=list(sequence[s : s + 200])) for s in starts]))  # fmt: skip
    dsa = pb.DsaParams(n_delays=5, rank=10, seed=0)
    out += [
        "Elman RNN, 12 units, trained on the `reflection` generator (ABCD + 0..19 fillers E) with "
        f"the paper's recipe (400 iterations, Adam 0.005; both trained nets took {seconds:.0f} s "
        "here), against the same initial weights untrained and against a second net trained "
        "from another seed. Next-symbol accuracy on the training sequence: "
        + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items())
        + ". States: `rnn.hidden` captured by the server on 20 windows of 200 symbols of the "
        "training sequence (seeded draw), DSA with n_delays 5, rank 10, seed 0.\n",
        "| pair | DSA angle (rad) | eigenvalue W2 | Procrustes | linear CKA | time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for a, b in (("rnn-trained", "rnn-untrained"), ("rnn-trained", "rnn-trained-2"),
                 ("rnn-trained-2", "rnn-untrained")):  # fmt: skip
        sets = [pb.StateSet(captured=pb.CapturedStates(model={"name": n}, hook_point="rnn.hidden",
                                                       inputs=inputs)) for n in (a, b)]  # fmt: skip
        r = cs.compare_representations(pb.CompareRepresentationsRequest(
            a=sets[0], b=sets[1],
            measures=[pb.MEASURE_DSA, pb.MEASURE_DSA_EIGENVALUES, pb.MEASURE_PROCRUSTES,
                      pb.MEASURE_LINEAR_CKA],
            params=pb.MeasureParams(dsa=dsa)), timeout=1800)  # fmt: skip
        v = [x.value for x in r.results]
        out.append(f"| {a} vs {b} | {v[0]:.3f} | {v[1]:.3f} | {v[2]:.3f} | {v[3]:.3f} | "
                   f"{r.elapsed_seconds:.1f} |")  # fmt: skip
    out.append("")


def _dense(weights: list[np.ndarray], biases: list[np.ndarray | None]) -> pb.NetworkSource:
    net = pb.DenseNetwork()
    for w, b in zip(weights, biases, strict=True):
        layer = pb.DenseLayer(weight=to_proto(w))
        if b is not None:
            layer.bias.CopyFrom(to_proto(b))
        net.layers.append(layer)
    return pb.NetworkSource(network=net)


def _pattern(w: np.ndarray, threshold: float = 0.05) -> str:
    alive = np.abs(w) > threshold * np.abs(w).max()
    return "\n".join("".join("#" if a else "." for a in row) for row in alive)


def bimt_section(cs: Client, out: list[str], steps: int) -> None:
    started = time.perf_counter()
    runs = {
        "BIMT": bimt_bed.train_bimt(steps=steps, seed=0, regularize=True),
        "plain": bimt_bed.train_bimt(steps=steps, seed=0, regularize=False),
    }
    seconds = time.perf_counter() - started
    out += [
        f"MLP [4, 20, 20, 2] on y = [(x1+x3)^3, x2^2 + sin(pi x4)], {steps} AdamW steps per run "
        f"(both runs {seconds:.0f} s here), cost with A = 1, l0 = 0.1 (biases included). "
        "`dependencies` = the inputs each output still reaches through weights above 5% of their "
        "layer's largest.\n",
        "| training | train MSE | test MSE | cost | swaps in training | cost after "
        "OptimizeNeuronLayout | max output change | dependencies (inputs per output) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    patterns = {}
    for name, run in runs.items():
        source = _dense(run.weights, run.biases)
        cost = cs.connection_cost(pb.ConnectionCostRequest(network=source))
        layout = cs.optimize_neuron_layout(pb.OptimizeNeuronLayoutRequest(network=source))
        deps = bimt_bed.dependencies(run.weights)
        out.append(
            f"| {name} | {run.train_mse:.4f} | {run.test_mse:.4f} | {cost.cost:.2f} | "
            f"{run.swaps} | {layout.cost_after:.2f} | {layout.max_output_difference:.1e} | "
            + ", ".join(f"y{o + 1} <- {{{', '.join(f'x{i + 1}' for i in sorted(d))}}}"
                        for o, d in enumerate(deps)) + " |"
        )  # fmt: skip
        patterns[name] = _pattern(run.weights[1])
    out += [
        "",
        "Second weight matrix (20 x 20, rows = neurons of hidden layer 2) with |w| above 5% of "
        "its largest marked `#`, BIMT-trained (the dependencies column above is the check that "
        "the two modules separated).\n",
        "```\n" + patterns["BIMT"] + "\n```\n",
    ]


HEADER = """# Representation analysis (AnalysisService)

`chunkscope.v1.AnalysisService` compares representations rather than chunking them
(docs/METHODS.md section 6). Definitions are in `protos/chunkscope/v1/analysis.proto`; the science is
in `service/chunkscope/analysis/` (pure functions), the transport in
`service/chunkscope/api/analysis.py`.

## RPCs

| RPC | what it returns |
|---|---|
| `CompareRepresentations` (server stream) | one `MeasureResult` per requested measure between two sets of states; progress messages first |
| `LayerSimilarity` (server stream) | the matrix of one measure between hook points (or inline layers), groups of similar layers, optional PNG heatmap |
| `ConnectionCost` | BIMT connection cost of a registered recurrent model or an inline MLP, per connection |
| `OptimizeNeuronLayout` | function-preserving neuron swaps within hidden layers: permutations, cost before and after, the reordered MLP, and a check of the outputs |

States are either sent as tensors (`[samples, units]`, or `[trials, time, units]` for
trajectories; float32/float64) or captured by the server (`CapturedStates`: model, hook point,
texts or symbol sequences; padding is masked out, `pooling` = all tokens (default), last token
or mean). CKA and Procrustes need paired samples (the same inputs in both sets).

## Measures and their defaults

| measure | value | defaults |
|---|---|---|
| `MEASURE_LINEAR_CKA` | similarity in [0, 1]: ‖YcᵀXc‖²_F / (‖XcᵀXc‖_F ‖YcᵀYc‖_F) on column-centred states; `angle` = arccos(CKA) | none (exact) |
| `MEASURE_PROCRUSTES` | shape distance in [0, √2]: centred, unit-Frobenius-norm states, min over orthogonal Q of ‖X − YQ‖_F = √(2 − 2 cos θ); `angle` θ = arccos(‖XcᵀYc‖_* / (‖Xc‖‖Yc‖)) ∈ [0, π/2], `normalized_angle` = θ/(π/2) | none (exact); the narrower set is zero-padded |
| `MEASURE_GROMOV_WASSERSTEIN` | POT `gromov_wasserstein2`, square loss, uniform weights, between the two sets' pairwise-distance matrices; `gw_metric` = ½√GW in diagnostics | Euclidean distances, each matrix divided by its mean off-diagonal entry (scale-invariant), 300 samples (seeded subsample, same rows of both sets when paired), 1000 iterations, tol 1e-9, start = best of product and identity coupling |
| `MEASURE_DSA` | angle in [0, π] (`normalized_angle` = angle/π): delay embedding, HAVOK-style DMD operator of rank r (SVD of the Hankel matrix, least squares in the reduced coordinates, signs of the singular vectors fixed), then arccos max over C ∈ O(r) of tr(ÂᵀCB̂Cᵀ) for the unit-norm operators (Ostrow et al. 2023) | n_delays 1, delay_interval 1, rank min(10, width), ridge 0; optimiser: Adam 500 steps, lr 0.05 decaying to 1%, starts identity, a reflection, the eigenvector alignment of the symmetric parts and 4 seeded Haar-random rotations; at most 20000 time steps (whole trials subsampled, seeded) |
| `MEASURE_DSA_EIGENVALUES` | 2-Wasserstein distance between the two operators' eigenvalues (complex plane, uniform weights, POT `emd2` on squared distances, square root taken) | as DSA, no optimiser |

DSA does not centre the states (as the reference): a constant offset changes the operator.
Rotations and isotropic scaling do not. Every result reports the samples used, whether they were
subsampled and with which seed, and its compute time (`compute_seconds`; `elapsed_seconds` for
the whole call).

**Layer groups**: agglomerative clustering with average linkage on the dissimilarity matrix
(1 − CKA for CKA, the distance itself otherwise); `GROUPING_METHOD_CONTIGUOUS` only merges
neighbouring groups, so each group is a range of layers. The cut: `n_groups` if given, else
merge while the linkage is ≤ `threshold`, else automatically before the merge with the largest
jump in linkage (so at least 2 groups for 3 or more layers: set a threshold to allow one group).

**BIMT connection cost** (Liu, Gan, Tegmark 2023): neurons of a layer of n at x = (slot + ½)/n,
layers l0 apart; cost = Σ|W_ij|·(A·|x_i − x_j| + gap·l0) + Σ|b|·l0 (A = 1, l0 = 0.1 by default).
Recurrent weights h_{t−1} → h_t count as a connection of the hidden layer to itself one step
later (gap 1); GRU/LSTM gates of a unit sit at the unit's position; the Elman readout's direct
input → output weights have gap 2. `OptimizeNeuronLayout` moves only hidden neurons (inputs and
outputs keep their meaning): per pass, each neuron (most important first; `top_k` limits them)
takes the swap partner that lowers the cost most, if any; passes repeat until one makes no swap
(at most `max_rounds`, default 10). The cost never increases. An MLP is sent inline
(`DenseNetwork`, any elementwise activation); registered recurrent models are read from the
registry and left unchanged (the reply gives the permutation).

## Limits and errors

Bad requests are `INVALID_ARGUMENT` with the field named (e.g. `b` for unpaired samples,
`a.tensor.shape`, `a.captured.hook_point`, `measures[0]` when a measure cannot be computed such
as constant states). Beyond the server's limits: `RESOURCE_EXHAUSTED` — GW `max_samples` above
the limit (default 2000), DSA `max_samples` above the limit (default 200000 time steps), more
than 64 layers per LayerSimilarity, captured states above `--max-capture-bytes`, swap search on
layers wider than 1024 neurons. Long calls stream progress (`AnalysisProgress`); cancelling the
call or passing its deadline stops the work at the next step (between GW pairs, every 50
optimiser steps of DSA). One analysis runs at a time per server.

## Worked example

Regenerate this whole document with:

    .venv/bin/python scripts/analysis_example.py

(it needs the demo model under data/models: `make demo-model`).
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DOC)
    parser.add_argument("--bimt-steps", type=int, default=3000)
    args = parser.parse_args()
    began = time.perf_counter()
    out = [HEADER]
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        models.mkdir()
        roots = os.pathsep.join([str((ROOT / "data" / "models").resolve()), str(models)])
        server = spawn_server(Path(tmp) / "data", "--model-roots", roots, "--device", "cpu")
        try:
            token = getattr(server, "token", "") or ""
            with Client.connect(server.address, timeout=600, token=token) as cs:
                cs.register_model(DEMO_MODEL_NAME, DEMO_MODEL_NAME, wait=True)
                out.append(
                    f"### 1. Layer-similarity map of {DEMO_MODEL_NAME}\n\nHook points "
                    f"{', '.join(LM_POINTS)}; inputs: {len(TEXTS)} short sentences, every token "
                    "state a sample; contiguous grouping, automatic cut.\n"
                )
                print("layer similarity ...", flush=True)
                layer_maps_section(cs, out, args.out.parent)
                out.append("### 2. DSA: the RNN test bed trained vs untrained\n")
                print("RNN test bed ...", flush=True)
                rnn_section(cs, out, models)
                out.append("### 3. BIMT: connection cost and neuron swaps\n")
                print("BIMT test bed ...", flush=True)
                bimt_section(cs, out, args.bimt_steps)
        finally:
            server.terminate()
    out.append(f"Whole example: {time.perf_counter() - began:.0f} s on this machine.\n")
    args.out.write_text("\n".join(out), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


_ = layer_maps  # the heatmaps are drawn by the server (chunkscope.analysis.layers)
