"""Model sources: where a model may come from, what it is, its content hash, and loading it.

Security rules enforced here and nowhere else: a source must resolve (symlinks followed) inside a
configured model root; weights are safetensors or GGUF only (pickle formats are refused, never
opened); `trust_remote_code` is never set; nothing is fetched from a hub (local files only).

Every file a load may read is a regular file, checked with stat before anything opens it (a FIFO
blocks open() forever, /dev/zero reads forever), and its size is checked before it is read: a model
root is user-controlled, and one hostile file must not hang the loader or the server's start-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

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
# What Hugging Face's loaders read from a model directory besides weights: configs (config.json,
# generation_config.json), tokenizer files and chat templates. All of it changes what the model
# computes, so all of it is checked, size-bounded and hashed.
SIDE_FILE_PATTERNS = ("*.json", "*.model", "*.tiktoken", "*.jinja", "merges.txt", "vocab.txt")
CHAT_TEMPLATE_DIR = "additional_chat_templates"
MAX_CONFIG_BYTES = 16 << 20  # config.json is parsed here; real ones are a few KiB
SAFETENSORS_MAX_HEADER = 100 << 20  # the safetensors format's own limit
# Hash scheme 2: every model file; JSON by its parsed content (reformatting changes nothing).
HASH_PREFIX = "sha256:"


@dataclass(frozen=True)
class ModelSource:
    """A validated model location: what it is and which files hold its weights."""

    path: Path
    format: str
    family: str
    weight_files: tuple[Path, ...]
    # Every file the load reads (weights included), checked regular and hashed. `base` is the
    # directory their hashed names are relative to.
    model_files: tuple[Path, ...] = ()
    base: Path | None = None


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
    # The devices holding the weights (accelerate's device map may split a model); inputs go to
    # `device`, where the embedding is. One scheduler serves each placement.
    placement: tuple[str, ...] = ()
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


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "special file"


def _not_regular(path: Path, mode: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"{path.name} is a {_kind(mode)}, not a regular file ({path}); model files must be "
        "regular files: replace it with the real file",
        reason="NOT_A_REGULAR_FILE",
        metadata={"file": path.name},
    )


def regular_file(path: Path) -> os.stat_result:
    """stat() (symlinks followed) of a file the loader will read; refuses anything not regular."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise FailedPrecondition(
            f"cannot read {path.name}: {exc.strerror or exc}", reason="UNREADABLE_MODEL_FILE"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(path, info.st_mode)
    return info


def open_regular(path: Path) -> BinaryIO:
    """Open for reading without ever blocking: O_NONBLOCK makes a FIFO swapped in after the
    stat() check open at once, and fstat() then refuses it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise FailedPrecondition(
            f"cannot read {path.name}: {exc.strerror or exc}", reason="UNREADABLE_MODEL_FILE"
        ) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(path, mode)
    return os.fdopen(fd, "rb")


def memory_bytes() -> int:
    """Physical memory: weights are read into it, so no model can be larger."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_sizes(files: tuple[Path, ...]) -> None:
    total = sum(regular_file(f).st_size for f in files)
    limit = memory_bytes()
    if total > limit:
        raise FailedPrecondition(
            f"the model files add up to {total / 2**30:.1f} GiB, more than this machine's "
            f"{limit / 2**30:.1f} GiB of memory; a model must fit in memory to load",
            reason="MODEL_TOO_LARGE",
        )


def _check_safetensors(path: Path) -> None:
    """The header must describe exactly the file's bytes: a zero-filled or truncated file (a
    sparse giant) is refused here, before anything reads or hashes it."""
    size = regular_file(path).st_size
    with open_regular(path) as fh:
        head = fh.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        ok = 2 <= length <= min(SAFETENSORS_MAX_HEADER, size - 8)
        header: Any = None
        if ok:
            try:
                header = json.loads(fh.read(length))
            except (UnicodeDecodeError, json.JSONDecodeError):
                ok = False
    if ok and isinstance(header, dict):
        ends = [
            t["data_offsets"][1]
            for k, t in header.items()
            if k != "__metadata__" and isinstance(t, dict) and len(t.get("data_offsets", ())) == 2
        ]
        if all(isinstance(e, int) for e in ends) and 8 + length + max(ends, default=0) == size:
            return
    raise FailedPrecondition(
        f"{path.name} is not a valid safetensors file (its header does not describe its "
        f"{size} bytes)",
        reason="BAD_SAFETENSORS",
        metadata={"file": path.name},
    )


def _side_files(directory: Path) -> Iterator[Path]:
    """The non-weight files Hugging Face may read from `directory` (each checked regular)."""
    for pattern in SIDE_FILE_PATTERNS:
        yield from directory.glob(pattern)
    templates = directory / CHAT_TEMPLATE_DIR
    if templates.is_dir():
        yield from templates.glob("*.jinja")


def _read_json(path: Path) -> dict[str, Any]:
    size = regular_file(path).st_size
    if size > MAX_CONFIG_BYTES:
        raise FailedPrecondition(
            f"{path.name} is {size} bytes; a model config is at most {MAX_CONFIG_BYTES}",
            reason="BAD_MODEL_CONFIG",
        )
    try:
        with open_regular(path) as fh:
            data = json.loads(fh.read(MAX_CONFIG_BYTES + 1))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FailedPrecondition(
            f"{path.name} is not readable JSON: {exc}", reason="BAD_MODEL_CONFIG"
        ) from None
    if not isinstance(data, dict):
        raise FailedPrecondition(f"{path.name} must hold a JSON object", reason="BAD_MODEL_CONFIG")
    return data


def _gguf_architecture(path: Path) -> str:
    from gguf import GGUFReader  # memory-maps the file; reads metadata only

    with open_regular(path) as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise FailedPrecondition(
            f"{path.name} is not a GGUF file (no GGUF magic)", reason="BAD_GGUF"
        )
    try:
        reader = GGUFReader(path)
        field_ = reader.fields["general.architecture"]
        return bytes(field_.parts[field_.data[0]]).decode()
    except Exception as exc:  # the gguf reader raises many types on malformed files
        raise FailedPrecondition(
            f"{path.name} is not a readable GGUF file: {exc}", reason="BAD_GGUF"
        ) from None


def _checked(files: Iterator[Path] | tuple[Path, ...]) -> tuple[Path, ...]:
    out = tuple(sorted(set(files)))
    for f in out:
        regular_file(f)
    _check_sizes(out)
    return out


def inspect_source(path: Path, fmt: str) -> ModelSource:
    """Decide format and architecture from the files, refusing pickle and unsupported models.

    `fmt` is one of FORMATS or "" (infer). Cheap: stats every model file and reads configs and
    metadata, not weights.
    """
    if fmt and fmt not in FORMATS:
        raise InvalidArgument.field("format", f"unknown format {fmt!r}")
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise FailedPrecondition(
            f"cannot read {path}: {exc.strerror or exc}", reason="UNREADABLE_MODEL_FILE"
        ) from None
    if stat.S_ISREG(mode):
        if path.suffix.lower() == ".gguf" and fmt in ("", "gguf"):
            _check_sizes((path,))
            family = _gguf_architecture(path)
            _require_family(family, LANGUAGE_MODEL_FAMILIES, "GGUF")
            # Tokenizer and generation configs next to the GGUF are read by transformers too.
            files = _checked((path, *_side_files(path.parent)))
            return ModelSource(path, "gguf", family, (path,), files, path.parent)
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise _pickle_refused(path)
        raise InvalidArgument.field(
            "source_path",
            f"{path.name} is a file but not a .gguf; give a GGUF file, a Hugging Face directory "
            "or a recurrent checkpoint directory",
        )
    if not stat.S_ISDIR(mode):
        raise FailedPrecondition(
            f"source_path {path} is a {_kind(mode)}; give a GGUF file or a model directory",
            reason="NOT_A_REGULAR_FILE",
        )
    if fmt == "gguf":
        raise InvalidArgument.field(
            "source_path", "format GGUF needs a .gguf file, got a directory"
        )
    config_file = path / "config.json"
    if not os.path.lexists(config_file):
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
        if not os.path.lexists(weights):
            raise FailedPrecondition(
                f"{path} has no {recurrent.WEIGHTS_FILE}", reason="MISSING_WEIGHTS"
            )
        files = _checked((config_file, weights))
        _check_safetensors(weights)
        return ModelSource(path, "recurrent", rconfig.architecture, (weights,), files, path)
    family = str(config.get("model_type", ""))
    _require_family(family, LANGUAGE_MODEL_FAMILIES, "Hugging Face")
    weights_ = tuple(sorted(path.glob("*.safetensors")))
    if not weights_:
        pickles = [p for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            raise _pickle_refused(pickles[0])
        raise FailedPrecondition(f"{path} has no *.safetensors weights", reason="MISSING_WEIGHTS")
    files = _checked((*weights_, *_side_files(path)))
    for weight in weights_:
        _check_safetensors(weight)
    return ModelSource(path, "hf_safetensors", family, weights_, files, path)


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
    """sha256 over every model file (name, length, bytes; JSON by its parsed content, so
    reformatting it changes nothing); binds dictionaries to what the model computes."""
    digest = hashlib.sha256()
    base = source.base or source.path.parent
    for path in source.model_files or source.weight_files:
        name = path.relative_to(base).as_posix() if path.is_relative_to(base) else path.name
        digest.update(name.encode() + b"\0")
        if path.suffix == ".json":
            with open_regular(path) as fh:
                raw = fh.read()
            # Not JSON after all: then its bytes are what counts.
            with contextlib.suppress(UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                raw = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
            digest.update(len(raw).to_bytes(8, "little") + raw)
            continue
        digest.update(regular_file(path).st_size.to_bytes(8, "little"))
        _update(digest, path)
    return HASH_PREFIX + digest.hexdigest()


def weights_hash(source: ModelSource) -> str:
    """Hash scheme 1 (registrations before schema 2): the weight files only, in name order."""
    digest = hashlib.sha256()
    for weight in source.weight_files:
        digest.update(weight.name.encode() + b"\0")
        _update(digest, weight)
    return HASH_PREFIX + digest.hexdigest()


def _update(digest: Any, path: Path) -> None:
    # Only regular files get here (open_regular), and only the bytes they held when opened: a
    # file that keeps growing cannot keep the hash reading.
    with open_regular(path) as fh:
        remaining = os.fstat(fh.fileno()).st_size
        while remaining > 0 and (block := fh.read(min(1 << 20, remaining))):
            digest.update(block)
            remaining -= len(block)


def load(
    source: ModelSource,
    device: torch.device,
    dtype: torch.dtype,
    device_map: str | dict[str, str] = "",
    offload_folder: str = "",
) -> LoadedModel:
    """Load weights onto the device and resolve every hook point with a probe forward.

    `device_map` (language models): empty puts the whole model on `device`; `auto`,
    `balanced`, `sequential` or an explicit map let accelerate split it over devices (GPUs,
    then CPU; `disk` entries need `offload_folder`). Either way each tensor goes straight to its
    device as it is read, without a full copy in host memory first.
    """
    if source.format == "recurrent":
        model = _load_recurrent(source, device, dtype)
    else:
        model = _load_language_model(source, device, dtype, device_map, offload_folder)
    model.placement = model.placement or (str(model.device),)
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


# transformers' lazy imports are not thread-safe (two first loads at once fail with "cannot import
# name 'AutoModelForCausalLM'"), so its part of a load runs one at a time. Each load has a thread
# of its own, though: one stuck in the OS (a file swapped for a FIFO after the checks) holds the
# others up for LIBRARY_WAIT_SECONDS at most, then they go ahead without the lock.
_LIBRARY = threading.Lock()
LIBRARY_WAIT_SECONDS = 120.0


def _load_language_model(
    source: ModelSource,
    device: torch.device,
    dtype: torch.dtype,
    device_map: str | dict[str, str],
    offload_folder: str,
) -> LoadedModel:
    locked = _LIBRARY.acquire(timeout=LIBRARY_WAIT_SECONDS)
    try:
        return _load_language_model_unlocked(source, device, dtype, device_map, offload_folder)
    finally:
        if locked:
            _LIBRARY.release()


def _load_language_model_unlocked(
    source: ModelSource,
    device: torch.device,
    dtype: torch.dtype,
    device_map: str | dict[str, str],
    offload_folder: str,
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
        # device_map: accelerate puts each tensor straight onto its device as it is read,
        # without a full copy in host memory first.
        placing: dict[str, Any] = {"device_map": device_map or str(device)}
        if offload_folder:
            placing["offload_folder"] = offload_folder
        module: nn.Module = AutoModelForCausalLM.from_pretrained(
            location, dtype=dtype, use_safetensors=not gguf, **placing, **common, **gguf,
        )  # fmt: skip
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise FailedPrecondition(
            f"could not load {source.path.name}: {exc}", reason="MODEL_LOAD_FAILED"
        ) from None
    if tokenizer.pad_token is None:  # batched capture pads on the right; pads are masked out
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    module.eval()
    config: Any = module.config
    num_blocks = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0))
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0))
    split = getattr(module, "hf_device_map", None) or {}
    placement = tuple(sorted({_device_name(d) for d in split.values()})) or (str(device),)
    embedding = module.get_input_embeddings().weight  # type: ignore[operator]
    return LoadedModel(
        module=module,
        adapter=adapter_for(source.family, num_blocks),
        family=source.family,
        device=embedding.device if embedding.device.type != "meta" else device,
        dtype=dtype,
        hidden_size=hidden,
        vocab_size=int(config.vocab_size),
        tokenizer=tokenizer,
        placement=placement,
    )


def _device_name(where: Any) -> str:
    """accelerate's map values: an int (a CUDA index), a device or a name (cpu, disk)."""
    if isinstance(where, int):
        return f"cuda:{where}"
    return str(where)


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
