"""numpy arrays <-> chunkscope.v1.Tensor (dtype, shape, little-endian row-major bytes)."""

from __future__ import annotations

from typing import Any

import numpy as np

from chunkscope.errors import InvalidArgument
from chunkscope_client.v1 import common_pb2

_TO_PROTO: dict[np.dtype[Any], Any] = {
    np.dtype("<f4"): common_pb2.DTYPE_FLOAT32,
    np.dtype("<f2"): common_pb2.DTYPE_FLOAT16,
    np.dtype("<f8"): common_pb2.DTYPE_FLOAT64,
    np.dtype("<i8"): common_pb2.DTYPE_INT64,
    np.dtype("<i4"): common_pb2.DTYPE_INT32,
    np.dtype("u1"): common_pb2.DTYPE_UINT8,
    np.dtype("?"): common_pb2.DTYPE_BOOL,
}
_FROM_PROTO: dict[Any, np.dtype[Any]] = {v: k for k, v in _TO_PROTO.items()}


def to_proto(array: np.ndarray) -> common_pb2.Tensor:
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    if dtype not in _TO_PROTO:
        raise TypeError(f"no wire dtype for {array.dtype}")
    data = np.ascontiguousarray(array, dtype=dtype).tobytes()
    return common_pb2.Tensor(dtype=_TO_PROTO[dtype], shape=list(array.shape), data=data)


def from_proto(tensor: common_pb2.Tensor, field: str) -> np.ndarray:
    """Decode a Tensor; INVALID_ARGUMENT naming `field` when dtype, shape and bytes disagree."""
    if tensor.dtype not in _FROM_PROTO:
        raise InvalidArgument.field(f"{field}.dtype", "unsupported or unspecified dtype")
    shape = tuple(int(n) for n in tensor.shape)
    if any(n < 0 for n in shape):
        raise InvalidArgument.field(f"{field}.shape", "dimensions must be >= 0")
    dtype = _FROM_PROTO[tensor.dtype]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(tensor.data) != expected:
        raise InvalidArgument.field(
            f"{field}.data", f"{len(tensor.data)} bytes, but shape {list(shape)} of "
            f"{dtype.name} needs {expected}",
        )  # fmt: skip
    return np.frombuffer(tensor.data, dtype=dtype).reshape(shape)
