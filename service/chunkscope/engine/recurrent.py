"""Small recurrent language models (the paper's test-bed RNN, GRU, LSTM) and their checkpoints.

The recurrence is stepped in Python, one time step at a time, and every new hidden state passes
through the `hidden_point` submodule (an `nn.Identity`) before it is stored or fed to the next step.
A forward hook on `hidden_point` therefore sees h_t once per step, in order, and whatever it returns
replaces h_t everywhere downstream: this is the `rnn.hidden` hook point.

Checkpoints are a directory holding a strict, versioned `config.json` and a `model.safetensors`;
nothing is ever unpickled. This module may import torch and safetensors; it must not import gRPC,
the api package or anything from the chunking science.
"""

from __future__ import annotations

import json
import reprlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

FORMAT_NAME = "recurrent"
FORMAT_VERSION = 1
ARCHITECTURES = ("elman", "gru", "lstm")
NONLINEARITIES = ("linear", "tanh")
MAX_HIDDEN_SIZE = 4096
MAX_SYMBOL_LENGTH = 64
MAX_VOCAB_SIZE = 65536

_CONFIG_KEYS = (
    "chunkscope_format",
    "format_version",
    "architecture",
    "vocab",
    "hidden_size",
    "nonlinearity",
)


@dataclass(frozen=True)
class RecurrentConfig:
    """What a recurrent checkpoint is: architecture, input symbols (index = token id), width."""

    architecture: str
    vocab: tuple[str, ...]
    hidden_size: int
    nonlinearity: str = "linear"

    def __post_init__(self) -> None:
        # Validate on construction too, so an invalid config cannot exist in memory either.
        if not isinstance(self.architecture, str) or self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture: got {_show(self.architecture)}, allowed values are "
                f"{list(ARCHITECTURES)}"
            )
        _check_vocab(self.vocab)
        if (
            isinstance(self.hidden_size, bool)
            or not isinstance(self.hidden_size, int)
            or not 1 <= self.hidden_size <= MAX_HIDDEN_SIZE
        ):
            raise ValueError(
                f"hidden_size: got {_show(self.hidden_size)}, allowed values are integers "
                f"1..{MAX_HIDDEN_SIZE}"
            )
        if not isinstance(self.nonlinearity, str) or self.nonlinearity not in NONLINEARITIES:
            raise ValueError(
                f"nonlinearity: got {_show(self.nonlinearity)}, allowed values are "
                f"{list(NONLINEARITIES)}"
            )
        if self.architecture != "elman" and self.nonlinearity != "linear":
            # GRU/LSTM cells carry their own gates; the knob only exists for the Elman net.
            raise ValueError(
                f"nonlinearity: got {_show(self.nonlinearity)} for architecture "
                f"{_show(self.architecture)}; only 'elman' takes a nonlinearity, the others "
                "require the default 'linear'"
            )

    def to_json(self) -> dict[str, Any]:
        """The `config.json` document, format header included."""
        return {
            "chunkscope_format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "architecture": self.architecture,
            "vocab": list(self.vocab),
            "hidden_size": self.hidden_size,
            "nonlinearity": self.nonlinearity,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RecurrentConfig:
        """Parse a `config.json` document; any unknown, missing or invalid key is a ValueError."""
        if not isinstance(d, dict):
            raise ValueError(f"config: expected a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - set(_CONFIG_KEYS))
        if unknown:
            raise ValueError(
                f"config: unknown keys {unknown}; allowed keys are {list(_CONFIG_KEYS)}"
            )
        missing = [k for k in _CONFIG_KEYS if k not in d]
        if missing:
            raise ValueError(
                f"config: missing keys {missing}; required keys are {list(_CONFIG_KEYS)}"
            )
        if d["chunkscope_format"] != FORMAT_NAME:
            raise ValueError(
                f"chunkscope_format: got {_show(d['chunkscope_format'])}, allowed values are "
                f"[{FORMAT_NAME!r}]"
            )
        version = d["format_version"]
        if type(version) is not int or version != FORMAT_VERSION:  # 1.0 and true are not 1
            raise ValueError(
                f"format_version: got {_show(version)}, allowed values are [{FORMAT_VERSION}]"
            )
        vocab = d["vocab"]
        if not isinstance(vocab, list):
            raise ValueError(
                f"vocab: got {type(vocab).__name__}, allowed values are a list of distinct "
                f"strings of 1..{MAX_SYMBOL_LENGTH} characters"
            )
        return cls(
            architecture=d["architecture"],
            vocab=tuple(vocab),
            hidden_size=d["hidden_size"],
            nonlinearity=d["nonlinearity"],
        )

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


def _check_vocab(vocab: object) -> None:
    allowed = (
        f"allowed values are 1..{MAX_VOCAB_SIZE} distinct strings of "
        f"1..{MAX_SYMBOL_LENGTH} characters"
    )
    if not isinstance(vocab, tuple):
        raise ValueError(f"vocab: got a {type(vocab).__name__}, expected a tuple; {allowed}")
    if not 1 <= len(vocab) <= MAX_VOCAB_SIZE:
        raise ValueError(f"vocab: got {len(vocab)} symbols; {allowed}")
    for symbol in vocab:
        if not isinstance(symbol, str) or not 1 <= len(symbol) <= MAX_SYMBOL_LENGTH:
            raise ValueError(f"vocab: bad symbol {_show(symbol)}; {allowed}")
    if len(set(vocab)) != len(vocab):
        duplicates = sorted(s for s, n in Counter(vocab).items() if n > 1)
        raise ValueError(f"vocab: duplicate symbols {duplicates}; {allowed}")


def _show(value: object) -> str:
    # Values from a config file are echoed in errors; keep a huge one from flooding the message.
    return reprlib.repr(value)


class RecurrentLM(nn.Module):
    """Next-symbol model over `config.vocab`; returns raw logits and the hidden trajectory.

    elman: h_t = W [onehot(x_t) ⊕ h_{t-1}] (+ tanh if asked), logits_t = U [onehot(x_t) ⊕ h_{t-1}].
    gru / lstm: the torch cell on onehot(x_t), logits_t = U h_t.
    In every case logits_t predicts x_{t+1} and hidden[:, t] is h_t, aligned with x_t.
    """

    def __init__(self, config: RecurrentConfig) -> None:
        super().__init__()
        self.config = config
        v, d = config.vocab_size, config.hidden_size
        self.cell: nn.Module
        if config.architecture == "elman":
            self.cell = nn.Linear(v + d, d)
            # The paper's readout sees the input and the *previous* hidden state.
            self.readout = nn.Linear(v + d, v)
        elif config.architecture == "gru":
            self.cell = nn.GRUCell(v, d)
            self.readout = nn.Linear(d, v)
        else:
            self.cell = nn.LSTMCell(v, d)
            self.readout = nn.Linear(d, v)
        # The `rnn.hidden` hook point: every h_t goes through here before it is used.
        self.hidden_point = nn.Identity()
        self._symbol_ids = {s: i for i, s in enumerate(config.vocab)}

    def encode(self, symbols: str | list[str] | tuple[str, ...]) -> torch.Tensor:
        """Token ids (int64, shape [T]) of a sequence of symbols; a str is read per character."""
        try:
            ids = [self._symbol_ids[s] for s in symbols]
        except KeyError as exc:
            raise ValueError(
                f"symbol {_show(exc.args[0])} is not in the model's vocab "
                f"{_show(self.config.vocab)}"
            ) from None
        return torch.tensor(ids, dtype=torch.long)

    def _initial_state(self, tokens: torch.Tensor, h0: torch.Tensor | None) -> torch.Tensor:
        """Check the inputs of `forward` and return h_{-1} on the module's device and dtype."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens: expected shape [B, T], got {list(tokens.shape)}")
        if tokens.dtype != torch.long:
            raise ValueError(f"tokens: expected dtype int64, got {tokens.dtype}")
        v, d = self.config.vocab_size, self.config.hidden_size
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= v):
            raise ValueError(f"tokens: ids must lie in 0..{v - 1}")
        weight = self.readout.weight
        batch = tokens.shape[0]
        if h0 is None:
            return weight.new_zeros(batch, d)
        if h0.shape != (batch, d):
            raise ValueError(f"h0: expected shape {[batch, d]}, got {list(h0.shape)}")
        return h0.to(dtype=weight.dtype, device=weight.device)

    def forward(
        self, tokens: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, T] int64 → (logits [B, T, V], hidden [B, T, d])."""
        h = self._initial_state(tokens, h0)
        batch, steps = tokens.shape
        v, d = self.config.vocab_size, self.config.hidden_size
        weight = self.readout.weight
        if steps == 0:
            return weight.new_zeros(batch, 0, v), weight.new_zeros(batch, 0, d)

        onehot = functional.one_hot(tokens.to(weight.device), v).to(weight.dtype)
        logits: list[torch.Tensor] = []
        hidden: list[torch.Tensor] = []
        arch = self.config.architecture
        c = torch.zeros_like(h)  # LSTM cell state; internal, never exposed
        for t in range(steps):
            x = onehot[:, t]
            if arch == "elman":
                xh = torch.cat((x, h), dim=1)
                logits.append(self.readout(xh))
                h = self.cell(xh)
                if self.config.nonlinearity == "tanh":
                    h = torch.tanh(h)
                h = self.hidden_point(h)
            else:
                if arch == "gru":
                    h = self.cell(x, h)
                else:
                    h, c = self.cell(x, (h, c))
                h = self.hidden_point(h)
                logits.append(self.readout(h))
            hidden.append(h)
        return torch.stack(logits, dim=1), torch.stack(hidden, dim=1)


def save_checkpoint(model: RecurrentLM, directory: Path) -> None:
    """Write `config.json` and `model.safetensors` into `directory` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(
        json.dumps(model.config.to_json(), indent=2) + "\n", encoding="utf-8"
    )


def load_checkpoint(
    directory: Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> RecurrentLM:
    """Read a checkpoint written by `save_checkpoint`; any problem with it is a ValueError."""
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    weights_path = directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ValueError(f"checkpoint {directory}: missing file {path.name}")
    try:
        document = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{config_path}: not valid JSON ({exc})") from None
    try:
        config = RecurrentConfig.from_json(document)
    except ValueError as exc:
        raise ValueError(f"{config_path}: {exc}") from None
    if not dtype.is_floating_point:
        raise ValueError(f"dtype: expected a floating-point dtype, got {dtype}")

    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{weights_path}: unreadable safetensors file ({exc})") from None
    model = RecurrentLM(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{weights_path}: tensors do not match the config; missing {missing}, "
            f"unexpected {unexpected}"
        )
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise ValueError(
                f"{weights_path}: tensor {_show(name)} has shape {list(tensor.shape)}, "
                f"expected {list(expected[name].shape)}"
            )
        if not tensor.dtype.is_floating_point:
            raise ValueError(
                f"{weights_path}: tensor {_show(name)} has dtype {tensor.dtype}, "
                "expected floating point"
            )
    model.load_state_dict(tensors, strict=True)
    return model.to(device=device, dtype=dtype).eval()
