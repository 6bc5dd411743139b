"""User text before it reaches a tokenizer: bounded by bytes, then tokenized off the event loop.

A tokenizer's time and memory grow with its input (a fast BPE tokenizer held gigabytes for a
60 MiB text and kept them), so a text is first bounded by its size in bytes, which costs nothing,
and only then tokenized. The byte bound follows from the token bound: BYTES_PER_TOKEN is far
above what real text needs (about 4 bytes per token in English, 1-4 bytes per character in
UTF-8), so no input within --max-input-tokens is refused for its bytes in practice.

Tokenizing runs on a small pool of its own: never on the event loop (one long input stalled every
other call, Health checks included) and never on a device's scheduler thread (small Detects would
queue behind long forwards).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from chunkscope.errors import ResourceExhausted

BYTES_PER_TOKEN = 32
_WORKERS = 2  # tokenizers run their own threads inside a call; two calls at a time keep cores free
_POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="chunkscope-tokenize")

T = TypeVar("T")


def byte_limit(max_input_tokens: int) -> int:
    """Bytes one input text may have, from the server's tokens per input."""
    return BYTES_PER_TOKEN * max_input_tokens


def check_text_bytes(text: str, limit: int, field: str, fix: str) -> None:
    """INPUT_TOO_LONG when `text` is over `limit` UTF-8 bytes, checked without tokenizing.

    `fix` ends the message: what the caller can do (split the text, start a new input, ...).
    """
    if len(text) * 4 <= limit:  # at most 4 bytes per character: surely within, nothing to count
        return
    # A string longer than the limit in characters is over it in bytes; counting its bytes would
    # copy it, so the message gives the characters.
    size = f"over {limit} bytes ({len(text)} characters)" if len(text) > limit else None
    if size is None:
        n = len(text.encode("utf-8", "surrogatepass"))
        if n <= limit:
            return
        size = f"{n} bytes"
    raise ResourceExhausted(
        f"{field} is {size}; this server accepts at most {limit} bytes per input text "
        f"({BYTES_PER_TOKEN} per token of --max-input-tokens): {fix}",
        reason="INPUT_TOO_LONG",
        metadata={"limit_bytes": str(limit)},
    )


async def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a tokenizing call on the tokenizer pool and await its result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_POOL, functools.partial(fn, *args, **kwargs))
