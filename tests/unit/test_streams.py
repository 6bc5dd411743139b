"""StreamDetect's engine side (engine/streams.py): a continued message costs its new tokens.

A real tiny llama and the real scheduler, behind a stand-in for the registry. The tokens fed to
the model are counted at the embedding (a forward pre-hook), so the test sees what the model
reads, whatever the engine thinks it sends.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from chunkscope.engine import loading
from chunkscope.engine.capture import Segment, encode, forward_states
from chunkscope.engine.detection import Detector
from chunkscope.engine.loading import LoadedModel
from chunkscope.engine.scheduler import Scheduler
from chunkscope.engine.streams import DetectStream, StreamReply, TooManyTokens
from support import save_tiny_lm

HOOK = "blocks.1.resid_post"


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    path = save_tiny_lm(tmp_path_factory.mktemp("lm") / "llama4", "llama", layers=4)
    return loading.load(loading.inspect_source(path, ""), torch.device("cpu"), torch.float32)


def _detector() -> Detector:
    atoms = np.random.default_rng(0).normal(size=(3, 32)).astype(np.float32)
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    manifest = {"id": "d", "method": "cosine_dictionary", "hook_point": HOOK,
                "entries": [{"label": f"e{i}"} for i in range(3)], "parameters": {}}  # fmt: skip
    return Detector(manifest, {"atoms": atoms})


def _stream(model: LoadedModel, window: int = 1 << 16, truncate: bool = False) -> DetectStream:
    scheduler = Scheduler("cpu", max_queue_depth=8, max_batch_tokens=4096, max_batch_delay_s=0.01)
    registry: Any = SimpleNamespace(
        ready=lambda *_: model, scheduler=scheduler, scheduler_for=lambda _model: scheduler
    )
    return DetectStream(registry, "lm", "", [_detector()], window, truncate)


def _count(model: LoadedModel) -> tuple[list[int], Any]:
    counts: list[int] = []
    handle = model.module.model.embed_tokens.register_forward_pre_hook(
        lambda _m, args: counts.append(int(args[0].shape[1]))
    )
    return counts, handle


def _feed(
    stream: DetectStream, model: LoadedModel, pieces: list[str]
) -> tuple[list[Any], list[int]]:
    """Replies, and the tokens the model read for each message."""
    per_message: list[int] = []

    async def scenario() -> list[StreamReply]:
        replies = []
        counts, handle = _count(model)
        try:
            for i, piece in enumerate(pieces):
                counts.clear()
                replies.append(await stream.feed(Segment(0, 0, piece), continues=i > 0))
                per_message.append(sum(counts))
        finally:
            handle.remove()
            stream.registry.scheduler.close()
        return replies

    return asyncio.run(scenario()), per_message


def _last_reports(replies: list[StreamReply]) -> dict[int, tuple[int, tuple[int, int], np.ndarray]]:
    """Position -> (token id, char span, scores) as last reported."""
    out = {}
    for reply in replies:
        found = reply.detection
        for j, token in enumerate(found.token_ids.tolist()):
            out[reply.start + j] = (token, found.offsets[j], found.results[0].scores[j])
    return out


def test_each_continued_message_feeds_only_its_new_tokens(llama: LoadedModel) -> None:
    pieces = ["the cat sat on the mat"] + [" and the dog ran far"] * 10
    new_tokens = [len(llama.encode(p, add_special_tokens=False)) for p in pieces]
    replies, fed = _feed(_stream(llama), llama, pieces)
    print("tokens fed per message:", fed, "new tokens:", new_tokens)
    # The first message reads its tokens; each continuation its own 5 tokens, never the text
    # before it (re-running the input would read 6, 11, 16, ... tokens).
    assert fed[0] == len(llama.encode(pieces[0]))
    assert fed[1:] == new_tokens[1:]
    assert [r.detection.token_ids.size for r in replies] == fed
    whole = "".join(pieces)
    assert sorted(_last_reports(replies)) == list(range(len(llama.encode(whole))))


def test_replies_equal_the_whole_text_run_at_once_across_a_seam(llama: LoadedModel) -> None:
    whole = "The weather is nice today and the cheese cake cooled on the window sill."
    pieces = ["The weather is ni", "ce today and the chee", "se cake cooled on the window sill."]
    replies, fed = _feed(_stream(llama), llama, pieces)
    [encoded] = encode(llama, [Segment(0, 0, whole)], 1 << 16)
    states = forward_states(llama, [encoded.ids], [HOOK], True)[HOOK][0].numpy()
    expected = _detector().detect(states)
    last = _last_reports(replies)
    assert sorted(last) == list(range(len(encoded.ids)))
    assert [last[t][0] for t in sorted(last)] == encoded.ids.tolist()
    assert [last[t][1] for t in sorted(last)] == encoded.offsets
    got = np.stack([last[t][2] for t in sorted(last)])
    np.testing.assert_allclose(got, expected.scores, rtol=0, atol=1e-5)
    # The revised word came again (the seam), and nothing else did.
    reported = sum(r.detection.token_ids.size for r in replies)
    assert len(encoded.ids) < reported <= len(encoded.ids) + 4
    assert sum(fed) == reported


def test_a_long_input_slides_its_window(llama: LoadedModel) -> None:
    pieces = ["the cat sat on the mat"] + [" and the dog ran far away"] * 12
    stream = _stream(llama, window=40)
    replies, fed = _feed(stream, llama, pieces)
    whole = "".join(pieces)
    enc = llama.tokenize(whole, return_offsets_mapping=True)
    last = _last_reports(replies)
    # Positions count from the input's start; every token reported once (splits at spaces).
    assert [last[t][0] for t in sorted(last)] == list(enc["input_ids"])
    assert [last[t][1] for t in sorted(last)] == [tuple(o) for o in enc["offset_mapping"]]
    assert sum(r.detection.token_ids.size for r in replies) == len(enc["input_ids"])
    assert max(fed) <= 40 and len(stream.ids) <= 40
    assert stream.past.length == len(stream.ids)


def test_the_cache_holds_the_layers_up_to_the_hook_point_only(llama: LoadedModel) -> None:
    stream = _stream(llama)
    _feed(stream, llama, ["the cat sat", " on the mat"])
    layers = stream.past.cache.layers
    assert [layer.is_initialized for layer in layers] == [True, True, False, False]
    assert stream.past.length == len(llama.encode("the cat sat on the mat"))


def test_one_message_over_the_window_is_refused_or_cut(llama: LoadedModel) -> None:
    text = "the cat sat on the mat " * 4
    with pytest.raises(TooManyTokens):
        _feed(_stream(llama, window=8), llama, [text])
    replies, fed = _feed(_stream(llama, window=8, truncate=True), llama, [text, " and the dog"])
    assert replies[0].detection.token_ids.size == 8
    # The cut text is never read, so the next message does not continue its last word.
    assert replies[1].start == 8 and replies[1].detection.offsets[0][0] == len(text)
    # It passes the window of 8: the context slides to its last token, run again.
    n = len(llama.encode(" and the dog"))
    assert fed == [8, min(8 // 2, 8 - n) + n] and replies[1].detection.token_ids.size == n
