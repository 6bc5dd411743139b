"""A model's tokenizer is shared by the compute thread (padded batches) and the event loop (token
counts); LoadedModel.tokenize serialises them, since a fast tokenizer keeps padding state."""

from __future__ import annotations

import threading
from typing import Any

import torch
from torch import nn

from chunkscope.engine.loading import LoadedModel
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
