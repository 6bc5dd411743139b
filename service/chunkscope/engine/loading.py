"""Model sources: where a model may come from, what it is, its content hash, and loading it.

Security rules enforced here and nowhere else: a source must resolve (symlinks followed) inside a
configured model root; weights are safetensors or GGUF only (pickle formats are refused, never
opened); `trust_remote_code` is never set; nothing is fetched from a hub (local files only).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from chunkscope.engine import recurrent
from chunkscope.engine.adapters import (
    LANGUAGE_MODEL_FAMILIES,
    RECURRENT_FAMILIES,
    ArchitectureAdapter,
    adapter_for,
)
from chunkscope.engine.hooks import capture
from chunkscope.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from chunkscope.paths import path_test, resolve_user_path

FORMATS = ("hf_safetensors", "gguf", "recurrent")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


@dataclass(frozen=True)
class ModelSource:
    """A validated model location: what it is and which files hold its weights."""

    path: Path
    format: str
    family: str
    weight_files: tuple[Path, ...]


@dataclass
class LoadedModel:
    """A model in memory, ready for forwards on `device`."""

    module: nn.Module
    adapter: ArchitectureAdapter
    family: str
    device: torch.device
    dtype: torch.dtype
    hidden_size: int
    vocab_size: int
    tokenizer: Any = None  # transformers tokenizer for LMs; None for recurrent networks
    symbols: tuple[str, ...] = ()  # input alphabet of recurrent networks
    hook_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # A fast tokenizer keeps padding/truncation state in its Rust object: a padded batch on the
    # compute thread and a plain call elsewhere (token counting) must not interleave.
    _tokenizer_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def tokenize(self, text: Any, **kwargs: Any) -> Any:
        """The tokenizer's __call__, serialised per model (safe from any thread)."""
        with self._tokenizer_lock:
            return self.tokenizer(text, **kwargs)

    def encode(self, text: str, **kwargs: Any) -> list[int]:
        with self._tokenizer_lock:
            return list(self.tokenizer.encode(text, **kwargs))

    @property
    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    @property
    def is_recurrent(self) -> bool:
        return self.family in RECURRENT_FAMILIES


def resolve_under_roots(source_path: str, roots: tuple[Path, ...]) -> Path:
    """Resolve a user-given path; it must land inside a model root, or the request is refused."""
    if not source_path:
        raise InvalidArgument.field("source_path", "required: a path under a model root")
    resolved = resolve_user_path(source_path, roots, "source_path")
    if not any(resolved.is_relative_to(root) for root in roots):
        raise PermissionDenied(
            f"source_path {source_path!r} is outside the configured model roots "
            f"({', '.join(map(str, roots))}); put the model under a root or add its directory "
            "with --model-roots / CHUNKSCOPE_MODEL_ROOTS",
            reason="OUTSIDE_MODEL_ROOTS",
        )
    if not path_test(resolved, Path.exists):
        raise NotFound(
            f"source_path {source_path!r} does not exist (resolved to {resolved})",
            reason="SOURCE_NOT_FOUND",
        )
    return resolved


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FailedPrecondition(
            f"{path.name} is not readable JSON: {exc}", reason="BAD_MODEL_CONFIG"
        ) from None
    if not isinstance(data, dict):
        raise FailedPrecondition(f"{path.name} must hold a JSON object", reason="BAD_MODEL_CONFIG")
    return data


def _gguf_architecture(path: Path) -> str:
    from gguf import GGUFReader  # memory-maps the file; reads metadata only

    try:
        reader = GGUFReader(path)
        field_ = reader.fields["general.architecture"]
        return bytes(field_.parts[field_.data[0]]).decode()
    except Exception as exc:  # the gguf reader raises many types on malformed files
        raise FailedPrecondition(
            f"{path.name} is not a readable GGUF file: {exc}", reason="BAD_GGUF"
        ) from None


def inspect_source(path: Path, fmt: str) -> ModelSource:
    """Decide format and architecture from the files, refusing pickle and unsupported models.

    `fmt` is one of FORMATS or "" (infer). Cheap: reads configs and metadata, not weights.
    """
    if fmt and fmt not in FORMATS:
        raise InvalidArgument.field("format", f"unknown format {fmt!r}")
    if path.is_file():
        if path.suffix.lower() == ".gguf" and fmt in ("", "gguf"):
            family = _gguf_architecture(path)
            _require_family(family, LANGUAGE_MODEL_FAMILIES, "GGUF")
            return ModelSource(path, "gguf", family, (path,))
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise _pickle_refused(path)
        raise InvalidArgument.field(
            "source_path",
            f"{path.name} is a file but not a .gguf; give a GGUF file, a Hugging Face directory "
            "or a recurrent checkpoint directory",
        )
    if fmt == "gguf":
        raise InvalidArgument.field(
            "source_path", "format GGUF needs a .gguf file, got a directory"
        )
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FailedPrecondition(
            f"{path} has no config.json; a model directory needs config.json and "
            "safetensors weights",
            reason="BAD_MODEL_CONFIG",
        )
    config = _read_json(config_file)
    is_recurrent = config.get("chunkscope_format") == "recurrent"
    if fmt == "recurrent" and not is_recurrent:
        raise InvalidArgument.field(
            "format", 'RECURRENT needs a config.json with "chunkscope_format": "recurrent"'
        )
    if is_recurrent and fmt not in ("", "recurrent"):
        raise InvalidArgument.field(
            "format", "this directory is a recurrent checkpoint; use RECURRENT"
        )
    if is_recurrent:
        try:
            rconfig = recurrent.RecurrentConfig.from_json(config)
        except ValueError as exc:
            raise FailedPrecondition(f"config.json: {exc}", reason="BAD_MODEL_CONFIG") from None
        weights = path / recurrent.WEIGHTS_FILE
        if not weights.is_file():
            raise FailedPrecondition(
                f"{path} has no {recurrent.WEIGHTS_FILE}", reason="MISSING_WEIGHTS"
            )
        return ModelSource(path, "recurrent", rconfig.architecture, (weights,))
    family = str(config.get("model_type", ""))
    _require_family(family, LANGUAGE_MODEL_FAMILIES, "Hugging Face")
    weights_ = tuple(sorted(path.glob("*.safetensors")))
    if not weights_:
        pickles = [p for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            raise _pickle_refused(pickles[0])
        raise FailedPrecondition(f"{path} has no *.safetensors weights", reason="MISSING_WEIGHTS")
    return ModelSource(path, "hf_safetensors", family, weights_)


def _require_family(family: str, allowed: tuple[str, ...], what: str) -> None:
    if family not in allowed:
        raise FailedPrecondition(
            f"{what} model architecture {family or '<none>'!r} is not supported; supported: "
            + ", ".join(allowed),
            reason="UNSUPPORTED_ARCHITECTURE",
            metadata={"architecture": family},
        )


def _pickle_refused(path: Path) -> FailedPrecondition:
    return FailedPrecondition(
        f"{path.name} is a pickle checkpoint, which chunkscope never loads (it can run code); "
        "convert it to safetensors (e.g. save_pretrained(..., safe_serialization=True))",
        reason="PICKLE_REFUSED",
    )


def content_hash(source: ModelSource) -> str:
    """sha256 over the weight files (name and bytes, in name order); binds dictionaries."""
    digest = hashlib.sha256()
    for weight in source.weight_files:
        digest.update(weight.name.encode() + b"\0")
        with weight.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def load(source: ModelSource, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    """Load weights onto the device and resolve every hook point with a probe forward."""
    if source.format == "recurrent":
        model = _load_recurrent(source, device, dtype)
    else:
        model = _load_language_model(source, device, dtype)
    model.hook_shapes = probe_hook_shapes(model)
    return model


def _load_recurrent(source: ModelSource, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    try:
        module = recurrent.load_checkpoint(source.path, device=device, dtype=dtype)
    except ValueError as exc:
        raise FailedPrecondition(str(exc), reason="BAD_CHECKPOINT") from None
    cfg = module.config
    return LoadedModel(
        module=module,
        adapter=adapter_for(cfg.architecture, 1),
        family=cfg.architecture,
        device=device,
        dtype=dtype,
        hidden_size=cfg.hidden_size,
        vocab_size=len(cfg.vocab),
        symbols=tuple(cfg.vocab),
    )


def _load_language_model(
    source: ModelSource, device: torch.device, dtype: torch.dtype
) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # progress bars would flood the server log

    common: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    gguf: dict[str, Any] = {}
    if source.format == "gguf":
        location, gguf = source.path.parent, {"gguf_file": source.path.name}
    else:
        location = source.path
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **common, **gguf)
        module: nn.Module = AutoModelForCausalLM.from_pretrained(
            location, dtype=dtype, use_safetensors=not gguf, **common, **gguf
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise FailedPrecondition(
            f"could not load {source.path.name}: {exc}", reason="MODEL_LOAD_FAILED"
        ) from None
    if tokenizer.pad_token is None:  # batched capture pads on the right; pads are masked out
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    module.to(device)
    module.eval()
    config: Any = module.config
    num_blocks = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0))
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0))
    return LoadedModel(
        module=module,
        adapter=adapter_for(source.family, num_blocks),
        family=source.family,
        device=device,
        dtype=dtype,
        hidden_size=hidden,
        vocab_size=int(config.vocab_size),
        tokenizer=tokenizer,
    )


@torch.inference_mode()
def probe_hook_shapes(model: LoadedModel) -> dict[str, tuple[int, ...]]:
    """Run a 2-token forward with every hook point captured: proves the table matches the model.

    Shapes come back with -1 for the per-request dimensions (batch, sequence).
    """
    names = model.adapter.names()
    sites = {name: model.adapter.resolve(name) for name in names}
    tokens = torch.zeros((1, 2), dtype=torch.long, device=model.device)
    with capture(model.module, sites) as recorded:
        if model.is_recurrent:
            model.module(tokens)
        else:
            model.module(input_ids=tokens, attention_mask=torch.ones_like(tokens))
    shapes: dict[str, tuple[int, ...]] = {}
    for name in names:
        calls = recorded[name]
        if not calls:
            raise RuntimeError(f"hook point {name} never fired in the probe forward")
        width = int(calls[0].shape[-1])
        shapes[name] = (-1, -1, width)
    return shapes
