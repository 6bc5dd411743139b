"""Choosing the device and compute dtype: CUDA when present, else CPU."""

from __future__ import annotations

import torch

from chunkscope.errors import FailedPrecondition, InvalidArgument

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class DeviceUnavailable(FailedPrecondition):
    """The --device asked for is not on this machine (raised at start-up, before serving)."""

    reason = "DEVICE_UNAVAILABLE"


def resolve_device(setting: str) -> torch.device:
    """'auto' picks cuda:0 when CUDA is available; an explicit cuda device must exist."""
    if setting == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(setting)
    except RuntimeError as exc:
        raise DeviceUnavailable(
            f"--device {setting!r} is not a device ({exc}); use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"--device {setting!r}: CUDA is not available on this machine (no GPU, or "
                "torch was built without CUDA); use --device cpu, or --device auto to take "
                "a GPU only when there is one"
            )
        index = device.index or 0
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceUnavailable(
                f"--device {setting!r}: this machine has {count} CUDA device(s) "
                f"(cuda:0..cuda:{count - 1}); choose one of those or --device auto"
            )
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
