"""Test support: tiny real models built from configs, and a real server in a subprocess.

The models are real transformers / chunkscope modules with random weights, saved to disk and
registered through the same loading path as production models.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from chunkscope.launcher import ServerProcess, spawn_server

__all__ = ["ROOT", "STARTED", "ServerProcess", "save_tiny_lm", "start_server", "train_tokenizer"]

ROOT = Path(__file__).resolve().parent.parent
CORPUS = [
    "The cat sat on the mat while the cheese cake cooled on the window sill.",
    "A school of fish swam past the old harbour; the children laughed at the llama.",
    "Monitoring pipelines stream traffic through the detector and alert on drift.",
    "Chunks are recurring hidden state patterns that stand for concepts.",
]


def train_tokenizer(vocab_size: int = 300) -> Any:
    """A byte-level BPE tokenizer trained on a few sentences (offline, deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )


def save_tiny_lm(directory: Path, family: str = "llama", *, layers: int = 2, seed: int = 0) -> Path:
    """A tiny causal LM (llama or gpt2) with random weights, saved as safetensors + tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    tokenizer = train_tokenizer()
    vocab = len(tokenizer)
    if family == "llama":
        config: Any = LlamaConfig(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            eos_token_id=0,
            bos_token_id=0,
            pad_token_id=0,
        )
    elif family == "gpt2":
        config = GPT2Config(
            vocab_size=vocab,
            n_embd=32,
            n_layer=layers,
            n_head=4,
            n_positions=128,
            eos_token_id=0,
            bos_token_id=0,
            pad_token_id=0,
        )
    else:
        raise ValueError(family)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


STARTED: list[ServerProcess] = []  # conftest kills what a test leaves running


def start_server(data_dir: Path, model_root: Path, *extra: str, port: int = 0) -> ServerProcess:
    """A real `chunkscope serve` on free loopback ports, CPU, with `model_root` as its only root."""
    server = spawn_server(
        data_dir, "--model-roots", str(model_root), "--device", "cpu", "--grace-seconds", "5",
        *extra, port=port, timeout=120,
    )  # fmt: skip
    STARTED.append(server)
    return server


def archive_members(archive: bytes) -> dict[str, bytes]:
    """The files of an exported dictionary archive, by name."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        return {i.name: tar.extractfile(i).read() for i in tar}  # type: ignore[union-attr]


def archive_of(members: dict[str, bytes]) -> bytes:
    """A tar of `members` (name -> bytes), as ExportDictionary would stream it."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def run_cli(
    server: ServerProcess | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m chunkscope ARGS` with the server's address and the admin token in its
    environment; never a traceback, whatever the outcome."""
    environ = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    if server is not None:
        environ["CHUNKSCOPE_ADDRESS"] = server.address
    environ.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "chunkscope", *args],
        capture_output=True, text=True, check=False, env=environ, timeout=300,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done
