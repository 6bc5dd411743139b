"""The device side of a StreamDetect input: its own KV cache, run one row at a time.

A `Past` holds one input's DynamicCache between messages; `forward_cached` (device work, on the
scheduler's thread, engine/scheduler.py `StreamWork`) crops it back to the positions that are
still valid, runs only the tokens after them and leaves their keys and values in the cache.

Early exit: the forward stops once every hook point has fired, so the cache holds the layers up
to the deepest hook point only; the later layers stay uninitialised. That is all later messages
need (they stop there too). transformers 5.23's DynamicCache allows it: `get_seq_length()` reads
layer 0, and `crop(-n)` (a negative count: the tokens to remove) skips uninitialised layers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import DynamicCache

from chunkscope.engine.hooks import StopForward, capture
from chunkscope.engine.loading import LoadedModel


@dataclass(eq=False)
class Past:
    """One input's cache (None: nothing cached) and the tokens fed to the model so far."""

    cache: Any = None  # DynamicCache, only ever touched on the device thread
    fed: int = 0  # tokens the model has read for this stream, all messages together

    @property
    def length(self) -> int:
        return int(self.cache.get_seq_length()) if self.cache is not None else 0


@torch.inference_mode()
def forward_cached(
    model: LoadedModel,
    past: Past,
    keep: int,
    ids: torch.Tensor,
    hook_points: Sequence[str],
    early_exit: bool = True,
) -> dict[str, torch.Tensor]:
    """Crop `past` to its first `keep` positions, run `ids` [T] after them; states [T, d].

    `keep = 0` starts afresh. The cache is only kept when the forward completes: a failed one
    leaves `past.cache` None, so the next message re-runs its context instead of trusting a
    half-updated cache.
    """
    cache = past.cache
    past.cache = None
    if cache is None or keep == 0:
        module: Any = model.module
        cache = DynamicCache(config=module.config)
    else:
        extra = int(cache.get_seq_length()) - keep
        if extra < 0:
            raise RuntimeError(f"the cache holds {keep + extra} positions, not {keep}")
        if extra:
            cache.crop(-extra)
    sites = {name: model.adapter.resolve(name) for name in hook_points}
    with (
        capture(model.module, sites, stop_when_done=early_exit) as recorded,
        contextlib.suppress(StopForward),
    ):
        model.module(input_ids=ids[None, :].to(model.device), past_key_values=cache, use_cache=True)
    past.cache = cache
    past.fed += int(ids.shape[0])
    return {name: recorded[name][0][0].float().cpu() for name in hook_points}
