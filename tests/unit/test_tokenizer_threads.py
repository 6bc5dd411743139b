"""A model's tokenizer is shared by the compute thread (padded batches) and the tokenizer pool
(token counts of user input); LoadedModel.tokenize serialises them, since a fast tokenizer keeps
padding state. User text is bounded by bytes before it reaches either."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import torch
from torch import nn

from chunkscope.engine import tokens
from chunkscope.engine.loading import LoadedModel
from chunkscope.errors import ResourceExhausted
from support import train_tokenizer

BATCH = ["The cat sat on the mat and the cake cooled on the sill", "short"]


def test_padded_batches_stay_padded_while_another_thread_counts_tokens() -> None:
    model = LoadedModel(nn.Identity(), None, "llama", torch.device("cpu"), torch.float32, 1, 1,
                        tokenizer=train_tokenizer())  # type: ignore[arg-type]  # fmt: skip
    errors: list[BaseException] = []
    stop = threading.Event()

    def batches() -> None:
        try:
            for _ in range(3000):  # enough to interleave without the lock
                enc: Any = model.tokenize(BATCH, padding=True, truncation=True, max_length=512,
                                          return_offsets_mapping=True, return_tensors="pt",
                                          padding_side="right")  # fmt: skip
                assert enc["input_ids"].shape[0] == 2
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    def counts() -> None:
        while not stop.is_set():
            assert len(model.tokenize("Monitoring pipelines stream traffic")["input_ids"]) > 0

    threads = [threading.Thread(target=batches), threading.Thread(target=counts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[0]


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("a" * 64, False),  # exactly the limit
        ("a" * 65, True),
        ("é" * 32, False),  # 2 bytes each: 64 bytes in 32 characters
        ("é" * 33, True),  # 33 characters, 66 bytes: over in bytes, not in characters
        ("😀" * 16, False),
        ("😀" * 16 + "a", True),
    ],
)
def test_texts_are_bounded_by_their_utf8_bytes(text: str, refused: bool) -> None:
    if not refused:
        tokens.check_text_bytes(text, 64, "inputs[2]", "split it")
        return
    with pytest.raises(ResourceExhausted) as err:
        tokens.check_text_bytes(text, 64, "inputs[2]", "split it")
    assert err.value.reason == "INPUT_TOO_LONG"
    assert err.value.message.startswith("inputs[2] is ")
    assert "at most 64 bytes per input text" in err.value.message
    assert err.value.message.endswith(": split it")
    assert err.value.metadata == {"limit_bytes": "64"}


def test_the_byte_limit_follows_the_token_limit() -> None:
    assert tokens.byte_limit(8192) == 8192 * tokens.BYTES_PER_TOKEN == 256 * 1024


def test_tokenizing_runs_on_the_pool_not_on_the_loop_thread() -> None:
    async def main() -> tuple[str, str]:
        loop_thread = threading.current_thread().name
        return loop_thread, await tokens.off_loop(lambda: threading.current_thread().name)

    loop_thread, worker = asyncio.run(main())
    assert worker != loop_thread and worker.startswith("chunkscope-tokenize")
