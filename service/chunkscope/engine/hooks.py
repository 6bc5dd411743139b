"""Scoped forward hooks: registered for one forward pass, removed in `finally`.

A hook function sees the activation at a hook point and may return a replacement (interventions)
or None (read only). After the `with` block the modules' hook dicts are exactly as before, also
when the forward pass raised or was cancelled. Callers serialise forwards per model (the engine
runs them on one executor per device), so hooks of one request never see another's tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from chunkscope.engine.adapters import HookSite

# (hook point name, activation) -> replacement or None
HookFn = Callable[[str, torch.Tensor], torch.Tensor | None]


def _first_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    hidden = kwargs.get("hidden_states")
    if isinstance(hidden, torch.Tensor):
        return hidden
    raise RuntimeError("hook point input is not a tensor: adapter table does not match the model")


def _make_pre_hook(name: str, fn: HookFn) -> Callable[..., Any]:
    def pre_hook(
        _module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        new = fn(name, _first_input(args, kwargs))
        if new is None:
            return None
        if args and isinstance(args[0], torch.Tensor):
            return (new, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": new}

    pre_hook._chunkscope = True  # type: ignore[attr-defined]
    return pre_hook


def _make_post_hook(name: str, fn: HookFn) -> Callable[..., Any]:
    def post_hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> Any:
        # Blocks and attention modules return tuples whose first element is the hidden state.
        tensor = output[0] if isinstance(output, tuple) else output
        new = fn(name, tensor)
        if new is None:
            return None
        return (new, *output[1:]) if isinstance(output, tuple) else new

    post_hook._chunkscope = True  # type: ignore[attr-defined]
    return post_hook


@contextmanager
def hooks(model: nn.Module, sites: Mapping[str, HookSite], fn: HookFn) -> Iterator[None]:
    """Attach `fn` at every named site for the duration of the block."""
    handles = []
    try:
        for name, site in sites.items():
            module = model.get_submodule(site.module_path)
            if site.side == "input":
                handles.append(
                    module.register_forward_pre_hook(_make_pre_hook(name, fn), with_kwargs=True)
                )
            else:
                handles.append(module.register_forward_hook(_make_post_hook(name, fn)))
        yield
    finally:
        for handle in handles:
            handle.remove()


class StopForward(Exception):
    """Raised by a capture hook once every site has fired: the rest of the forward is not needed."""


@contextmanager
def capture(
    model: nn.Module, sites: Mapping[str, HookSite], stop_when_done: bool = False
) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Record (detached) activations at the named sites; one list entry per call of the module.

    Recurrent hook points fire once per time step, so their list holds T tensors of [B, d];
    transformer points fire once per forward and hold one [B, T, d] tensor. With
    `stop_when_done` the hook that completes the set raises StopForward, which the caller
    catches around the forward (blocks after the deepest site and the LM head never run).
    """
    recorded: dict[str, list[torch.Tensor]] = {name: [] for name in sites}
    waiting = set(sites)

    def record(name: str, tensor: torch.Tensor) -> None:
        recorded[name].append(tensor.detach())
        if stop_when_done:
            waiting.discard(name)
            if not waiting:
                raise StopForward

    with hooks(model, sites, record):
        yield recorded


def hook_count(model: nn.Module) -> int:
    """Number of chunkscope hooks left on any submodule: 0 unless one leaked.

    transformers installs (and keeps) hooks of its own for output_hidden_states, so only hooks
    marked as ours are counted.
    """
    return sum(
        getattr(fn, "_chunkscope", False)
        for m in model.modules()
        for fn in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())
    )
