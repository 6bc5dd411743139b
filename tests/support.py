"""Test support: tiny real models built from configs, and a real server in a subprocess.

The models are real transformers / chunkscope modules with random weights, saved to disk and
registered through the same loading path as production models.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

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
        tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
        pad_token="<|endoftext|>", unk_token="<|endoftext|>",
    )


def save_tiny_lm(directory: Path, family: str = "llama", *, layers: int = 2, seed: int = 0) -> Path:
    """A tiny causal LM (llama or gpt2) with random weights, saved as safetensors + tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    tokenizer = train_tokenizer()
    vocab = len(tokenizer)
    if family == "llama":
        config: Any = LlamaConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
            eos_token_id=0, bos_token_id=0, pad_token_id=0,
        )
    elif family == "gpt2":
        config = GPT2Config(
            vocab_size=vocab, n_embd=32, n_layer=layers, n_head=4, n_positions=128,
            eos_token_id=0, bos_token_id=0, pad_token_id=0,
        )
    else:
        raise ValueError(family)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


@dataclass
class ServerProcess:
    """A real `chunkscope serve` subprocess on free loopback ports."""

    proc: subprocess.Popen[str]
    port: int
    metrics_port: int
    data_dir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def start_server(
    data_dir: Path, model_root: Path, *extra: str, timeout: float = 120, port: int = 0
) -> ServerProcess:
    """Start `python -m chunkscope serve` and wait for its ready line (ports are chosen by the OS)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"server-{time.monotonic_ns()}.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "service"), str(ROOT / "clients" / "python" / "src"), env.get("PYTHONPATH", "")]
    )
    args = [
        sys.executable, "-m", "chunkscope", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--metrics-port", "0", "--data-dir", str(data_dir), "--model-roots", str(model_root),
        "--device", "cpu", "--grace-seconds", "5", *extra,
    ]
    log_file: IO[str] = log_path.open("w")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log_file, text=True, env=env)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited {proc.returncode}:\n{log_path.read_text()}")
            continue
        event = json.loads(line)
        if event.get("event") == "ready":
            return ServerProcess(proc, event["grpc_port"], event["metrics_port"], data_dir, log_path)
    proc.kill()
    raise TimeoutError(f"server not ready in {timeout}s:\n{log_path.read_text()}")
