"""Per-architecture tables from canonical hook-point names to the modules that produce them.

One small table per architecture family; a name that is not in the table is an error, never a
guess. Canonical names (docs/METHODS.md section 0):

  embed                   token (+ position) embeddings entering block 0
  blocks.{i}.resid_pre    residual stream entering block i   (= HF hidden_states[i])
  blocks.{i}.attn_out     attention output of block i, before it is added to the residual
  blocks.{i}.mlp_out      MLP output of block i, before it is added to the residual
  blocks.{i}.resid_post   residual stream leaving block i    (= HF hidden_states[i+1];
                          HF applies the final norm to its last entry, this point does not)
  final_norm              output of the final norm, what the unembedding reads
  rnn.hidden              recurrent networks: h_t, aligned with input x_t
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from chunkscope.errors import FailedPrecondition, InvalidArgument


@dataclass(frozen=True)
class HookSite:
    """Where a hook point lives: a submodule and whether its first input or its output is meant."""

    module_path: str
    side: Literal["input", "output"]
    block: int = -1
    description: str = ""


@dataclass(frozen=True)
class _DecoderLayout:
    """Module paths of a decoder-only transformer; `{i}` stands for the block index."""

    embed: str
    block: str
    attn: str
    mlp: str
    final_norm: str


_BLOCK_NAME = re.compile(r"^blocks\.(\d+)\.(resid_pre|attn_out|mlp_out|resid_post)$")


@dataclass(frozen=True)
class ArchitectureAdapter:
    """Resolves canonical hook-point names for one architecture family."""

    family: str
    num_blocks: int
    resolve_fn: Callable[[str], HookSite | None]
    names_fn: Callable[[], list[str]]

    def resolve(self, name: str) -> HookSite:
        site = self.resolve_fn(name)
        if site is None:
            known = self.names_fn()
            sample = ", ".join(known[:4] + (["...", known[-1]] if len(known) > 4 else []))
            raise InvalidArgument.field(
                "hook_point",
                f"unknown hook point {name!r} for a {self.family} model; valid names: {sample} "
                "(ListHookPoints lists them all)",
                reason="UNKNOWN_HOOK_POINT",
            )
        return site

    def names(self) -> list[str]:
        return self.names_fn()


def _decoder_adapter(family: str, layout: _DecoderLayout, num_blocks: int) -> ArchitectureAdapter:
    def names() -> list[str]:
        out = ["embed"]
        for i in range(num_blocks):
            out += [f"blocks.{i}.{k}" for k in ("resid_pre", "attn_out", "mlp_out", "resid_post")]
        return [*out, "final_norm"]

    def resolve(name: str) -> HookSite | None:
        if name == "embed":
            return HookSite(layout.embed, "output", -1, "embeddings entering block 0")
        if name == "final_norm":
            return HookSite(
                layout.final_norm, "output", -1, "final norm output, read by the unembedding"
            )
        match = _BLOCK_NAME.match(name)
        if match is None or int(match.group(1)) >= num_blocks:
            return None
        i, kind = int(match.group(1)), match.group(2)
        block = layout.block.format(i=i)
        if kind == "resid_pre":
            return HookSite(block, "input", i, f"residual stream entering block {i}")
        if kind == "resid_post":
            return HookSite(block, "output", i, f"residual stream leaving block {i}")
        if kind == "attn_out":
            return HookSite(layout.attn.format(i=i), "output", i, f"attention output of block {i}")
        return HookSite(layout.mlp.format(i=i), "output", i, f"MLP output of block {i}")

    return ArchitectureAdapter(family, num_blocks, resolve, names)


# The tables. Keys are HF `model_type` / GGUF `general.architecture` values.
_DECODER_LAYOUTS: dict[str, _DecoderLayout] = {
    "llama": _DecoderLayout(
        embed="model.embed_tokens",
        block="model.layers.{i}",
        attn="model.layers.{i}.self_attn",
        mlp="model.layers.{i}.mlp",
        final_norm="model.norm",
    ),
    "gpt2": _DecoderLayout(
        # GPT-2 adds position embeddings after wte; `drop` outputs their sum (identity in eval).
        embed="transformer.drop",
        block="transformer.h.{i}",
        attn="transformer.h.{i}.attn",
        mlp="transformer.h.{i}.mlp",
        final_norm="transformer.ln_f",
    ),
}

RECURRENT_FAMILIES = ("elman", "gru", "lstm")
LANGUAGE_MODEL_FAMILIES = tuple(_DECODER_LAYOUTS)


def _recurrent_adapter(family: str) -> ArchitectureAdapter:
    site = HookSite("hidden_point", "output", 0, "hidden state h_t, aligned with input x_t")
    return ArchitectureAdapter(
        family, 1, lambda name: site if name == "rnn.hidden" else None, lambda: ["rnn.hidden"]
    )


def adapter_for(family: str, num_blocks: int) -> ArchitectureAdapter:
    """The adapter of an architecture family; FailedPrecondition if there is no table for it."""
    if family in _DECODER_LAYOUTS:
        return _decoder_adapter(family, _DECODER_LAYOUTS[family], num_blocks)
    if family in RECURRENT_FAMILIES:
        return _recurrent_adapter(family)
    supported = ", ".join((*LANGUAGE_MODEL_FAMILIES, *RECURRENT_FAMILIES))
    raise FailedPrecondition(
        f"architecture {family!r} is not supported; supported: {supported}",
        reason="UNSUPPORTED_ARCHITECTURE",
        metadata={"architecture": family},
    )


def is_supported(family: str) -> bool:
    return family in _DECODER_LAYOUTS or family in RECURRENT_FAMILIES
