"""Every chunking method, by name (the manifest's `method`, the request's oneof field) and by its
ChunkMethod enum value. Adding a method: one module with a `Method` subclass, and one line here."""

from __future__ import annotations

from typing import Any

from chunkscope.engine.methods.base import Method
from chunkscope.engine.methods.cosine_dictionary import CosineDictionary
from chunkscope.engine.methods.density_chunks import DensityChunks
from chunkscope.engine.methods.discrete_sequence_chunking import DiscreteSequenceChunking
from chunkscope.engine.methods.population_averaging import PopulationAveraging

AnyMethod = Method[Any, Any]

# In this order in messages that list them.
METHODS: dict[str, AnyMethod] = {
    m.name: m
    for m in (
        PopulationAveraging(),
        DiscreteSequenceChunking(),
        CosineDictionary(),
        DensityChunks(),
    )
}


def names() -> tuple[str, ...]:
    return tuple(METHODS)


def get(name: str) -> AnyMethod:
    """The method of a name that is registered (KeyError otherwise: check with `METHODS`)."""
    return METHODS[name]


def by_proto(value: int) -> AnyMethod | None:
    """The method of a ChunkMethod enum value; None for UNSPECIFIED and unknown values."""
    for method in METHODS.values():
        if method.proto == value:
            return method
    return None


def register(method: AnyMethod) -> None:
    """Add a method (a name may be registered once)."""
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is already registered")
    METHODS[method.name] = method


def unregister(name: str) -> None:
    METHODS.pop(name, None)
