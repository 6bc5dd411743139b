"""Choosing the device and compute dtype: CUDA when present, else CPU."""

from __future__ import annotations

import torch

from chunkscope.errors import InvalidArgument

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(setting: str) -> torch.device:
    """'auto' picks cuda:0 when CUDA is available; an explicit cuda device must exist."""
    if setting == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {setting!r} requested but CUDA is not available")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {setting!r}: only {torch.cuda.device_count()} CUDA devices")
        return torch.device("cuda", index)
    return device


def resolve_dtype(setting: str, device: torch.device, *, field: str = "dtype") -> torch.dtype:
    """'auto' (or empty) is bfloat16 on CUDA and float32 on CPU, where half precision is slow."""
    if setting in ("", "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if setting not in DTYPES:
        raise InvalidArgument.field(
            field, f"unknown dtype {setting!r}; use one of {', '.join(DTYPES)}"
        )
    return DTYPES[setting]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
