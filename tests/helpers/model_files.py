"""Model directories for the loader's error paths, built from the session's real tiny models."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path


def copy_model(source: Path, target: Path) -> Path:
    """A private copy of a model directory (tests that damage files must not share them)."""
    if not target.exists():
        shutil.copytree(source, target)
    return target


def write_safetensors(
    path: Path, tensors: dict[str, tuple[str, list[int], int]], size: int
) -> None:
    """A safetensors file whose header declares `tensors` (name -> dtype, shape, bytes) and whose
    data is `size` bytes of zeros, written sparse: a header says what follows, the disk holds
    next to nothing."""
    header, offset = {}, 0
    for name, (dtype, shape, nbytes) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    assert offset == size
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(blob)) + blob)
        fh.truncate(8 + len(blob) + size)


def mismatched_llama(tiny_llama: Path, target: Path) -> Path:
    """Passes inspection (config, tokenizer, a well-formed safetensors file) but fails to load:
    the embedding has the wrong shape for the config."""
    if target.exists():
        return target
    target.mkdir(parents=True)
    for f in tiny_llama.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, target / f.name)
    write_safetensors(
        target / "model.safetensors", {"model.embed_tokens.weight": ("F32", [2, 2], 16)}, 16
    )
    return target


def big_gpt2(tiny_gpt2: Path, target: Path, padding: int) -> Path:
    """tiny-gpt2 plus `padding` bytes of an extra (unused) tensor in a second weights file: a
    valid model whose hashing takes as long as reading `padding` bytes."""
    copy_model(tiny_gpt2, target)
    write_safetensors(target / "padding.safetensors", {"padding": ("U8", [padding], padding)},
                      padding)  # fmt: skip
    return target
