"""Training the recurrent test bed the authors' way, and the `python -m chunkscope.testbeds` CLI.

Training (paper §6.1): Adam, lr 0.005; each iteration takes one random window of the sequence,
starts from a zero hidden state, sums the next-symbol cross-entropy over the window and makes one
update. Everything random is seeded, so equal seeds give bit-identical weights on CPU.
This module may import torch and the engine's recurrent module; it must not import gRPC or the api.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from torch.nn import functional

from chunkscope.engine.recurrent import (
    ARCHITECTURES,
    NONLINEARITIES,
    RecurrentConfig,
    RecurrentLM,
    save_checkpoint,
)
from chunkscope.testbeds.sequences import GENERATORS, alphabet


def build_model(config: RecurrentConfig, *, seed: int) -> RecurrentLM:
    """A freshly initialised model whose weights depend only on `config` and `seed`."""
    # fork_rng keeps the caller's global RNG state untouched by our seeding.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return RecurrentLM(config)


def train_rnn(
    model: RecurrentLM,
    sequence: str,
    *,
    iterations: int,
    window: int = 200,
    lr: float = 0.005,
    seed: int = 0,
) -> list[float]:
    """Train in place; returns each iteration's loss (cross-entropy summed over its window).

    A sequence shorter than `window + 1` symbols is trained on whole, as one window.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations: expected a non-negative integer, got {iterations!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window: expected a positive integer, got {window!r}")
    if not lr > 0:
        raise ValueError(f"lr: expected a positive number, got {lr!r}")
    if len(sequence) < 2:
        raise ValueError("sequence: need at least 2 symbols to predict a next one")
    device = model.readout.weight.device
    ids = model.encode(sequence).to(device)
    window = min(window, len(ids) - 1)
    n_starts = len(ids) - window  # start s uses inputs ids[s:s+window], targets one step later

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    was_training = model.training
    model.train()
    losses: list[float] = []
    try:
        for _ in range(iterations):
            start = int(torch.randint(0, n_starts, (1,), generator=generator))
            chunk = ids[start : start + window + 1]
            logits, _ = model(chunk[None, :-1])  # h0 = 0: hidden reset for every window
            loss = functional.nll_loss(
                functional.log_softmax(logits[0], dim=-1), chunk[1:], reduction="sum"
            )
            optimizer.zero_grad()
            torch.autograd.backward(loss)  # same as loss.backward(), but typed for mypy
            optimizer.step()
            losses.append(float(loss.detach()))
    finally:
        model.train(was_training)
    return losses


@torch.no_grad()
def next_symbol_accuracy(model: RecurrentLM, sequence: str) -> float:
    """Share of steps t where argmax logits_t equals x_{t+1}, over one pass from a zero state."""
    if len(sequence) < 2:
        raise ValueError("sequence: need at least 2 symbols to predict a next one")
    ids = model.encode(sequence).to(model.readout.weight.device)
    logits, _ = model(ids[None, :-1])
    return float((logits[0].argmax(dim=-1) == ids[1:]).double().mean())


def majority_accuracy(sequence: str) -> float:
    """Next-symbol accuracy of always predicting the most frequent target symbol (the baseline)."""
    targets = sequence[1:]
    if not targets:
        raise ValueError("sequence: need at least 2 symbols to predict a next one")
    return Counter(targets).most_common(1)[0][1] / len(targets)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chunkscope testbed",
        description="Build and train the paper's recurrent test bed, then save a checkpoint.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="generate a sequence, train a net, save it")
    train.add_argument("--generator", required=True, choices=sorted(GENERATORS))
    train.add_argument("--out", required=True, type=Path, help="checkpoint directory to write")
    train.add_argument("--architecture", default="elman", choices=ARCHITECTURES)
    train.add_argument("--nonlinearity", default="linear", choices=NONLINEARITIES)
    train.add_argument("--hidden-size", type=int, default=12)
    train.add_argument("--iterations", type=int, default=400)
    train.add_argument("--window", type=int, default=200)
    train.add_argument("--lr", type=float, default=0.005)
    train.add_argument("--seed", type=int, default=0, help="seed for weights and window draws")
    train.add_argument(
        "--data-seed",
        type=int,
        default=None,
        help="seed for the sequence generator (default: the generator's own, as in the paper)",
    )
    train.add_argument(
        "--untrained", action="store_true", help="save the initial weights (the control net)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.iterations < 0:
        parser.error(f"--iterations: expected >= 0, got {args.iterations}")
    if args.window < 1:
        parser.error(f"--window: expected >= 1, got {args.window}")
    if not args.lr > 0:
        parser.error(f"--lr: expected > 0, got {args.lr}")

    began = time.perf_counter()
    generate = GENERATORS[args.generator]
    sequence = generate() if args.data_seed is None else generate(seed=args.data_seed)
    try:
        config = RecurrentConfig(
            architecture=args.architecture,
            vocab=alphabet(sequence),
            hidden_size=args.hidden_size,
            nonlinearity=args.nonlinearity,
        )
    except ValueError as exc:
        parser.error(str(exc))
    model = build_model(config, seed=args.seed)
    losses: list[float] = []
    if not args.untrained:
        losses = train_rnn(
            model,
            sequence,
            iterations=args.iterations,
            window=args.window,
            lr=args.lr,
            seed=args.seed,
        )
    model.eval()
    try:
        save_checkpoint(model, args.out)
    except OSError as exc:
        print(f"error: cannot write checkpoint to {args.out}: {exc}", file=sys.stderr)
        return 1
    summary = {
        "out": str(args.out),
        "generator": args.generator,
        "architecture": config.architecture,
        "vocab": list(config.vocab),
        "hidden_size": config.hidden_size,
        "trained": not args.untrained,
        "iterations": len(losses),
        "final_loss": losses[-1] if losses else None,
        "sequence_length": len(sequence),
        "accuracy": next_symbol_accuracy(model, sequence),
        "baseline_accuracy": majority_accuracy(sequence),
        "seconds": round(time.perf_counter() - began, 3),
    }
    print(json.dumps(summary))
    return 0
