"""What the Envoy external processor checks in a body (api/ext_proc.py), in-process: chat JSON,
other and malformed bodies, and server-sent events cut anywhere (tests/integration/test_ext_proc.py
covers the stream over the wire)."""

from __future__ import annotations

import json

import pytest

from chunkscope.api.ext_proc import _Response, request_inputs, response_texts
from chunkscope.config import load_settings


def test_a_chat_request_is_checked_as_its_messages_with_their_roles() -> None:
    body = json.dumps({"model": "m", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": "x"}},
                                     {"type": "text", "text": "at the cat"}]},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"content": "no role"},
        "not a message",
    ]}).encode()  # fmt: skip
    assert request_inputs(body) == ([], [
        ("system", "Be brief."), ("user", "look\nat the cat"), ("assistant", ""),
        ("unknown", "no role")])  # fmt: skip


@pytest.mark.parametrize(
    ("body", "texts"),
    [
        (b'{"prompt": "the cat"}', ["the cat"]),  # the completions API
        (b'{"input": "the cat"}', ['{"input": "the cat"}']),  # other JSON: whole
        (b'["the cat"]', ['["the cat"]']),
        (b"the cat, plainly", ["the cat, plainly"]),  # not JSON: as text
        (b"the cat \xff\xfe", ["the cat \ufffd\ufffd"]),  # not UTF-8: replacement characters
        (b"[" * 100_000, ["[" * 100_000]),  # too deep for the parser: as text
        (b'{"messages": []}', ['{"messages": []}']),
        (b"  \n", []),  # nothing to check
        (b"", []),
    ],
)
def test_other_request_bodies_are_checked_as_text(body: bytes, texts: list[str]) -> None:
    assert request_inputs(body) == (texts, [])


def _event(index: int, content: str) -> bytes:
    chunk = {"choices": [{"index": index, "delta": {"content": content}}]}
    return b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n"


def test_server_sent_events_accumulate_per_choice_wherever_the_chunks_cut() -> None:
    stream = (
        b": a comment\n\nevent: message\n"
        + b'data: {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}\n\n'
        + _event(0, "On day 3")
        + _event(1, "Other")
        + _event(0, " the cat")
        + b"data: not json\n\n"
        + b'data: {"choices": 7}\n\ndata: [1, 2]\n\n'
        + b"data: [DONE]\n\n"
    )
    for size in (1, 7, 64, len(stream)):
        response = _Response(sse=True)
        seen = []
        pieces = [stream[i : i + size] for i in range(0, len(stream), size)]
        for n, piece in enumerate(pieces):
            response.feed_sse(piece, end=n == len(pieces) - 1)
            if response.grew:
                response.grew = False
                seen.append(response.texts())
        assert response.texts() == ["On day 3 the catnot json", "Other"], size
        assert seen[-1] == response.texts()
        if size == 1:  # byte by byte: a check per event that adds text, as each line completes
            assert seen == [["On day 3"], ["On day 3", "Other"], ["On day 3 the cat", "Other"],
                            ["On day 3 the catnot json", "Other"]]  # fmt: skip
    last = _Response(sse=True)
    last.feed_sse(_event(0, "unterminated").rstrip(), end=True)  # the end completes the line
    assert last.texts() == ["unterminated"]


def test_whole_responses_are_checked_as_their_message_contents_or_as_text() -> None:
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "a cat"}},
                              {"index": 1, "text": "legacy"}]}  # fmt: skip
    assert response_texts(json.dumps(completion).encode()) == ["a cat", "legacy"]
    empty = {"choices": [{"message": {"role": "assistant", "content": None}}]}
    assert response_texts(json.dumps(empty).encode()) == []
    assert response_texts(b"plain cat") == ["plain cat"]
    assert response_texts(b"") == []


def test_ext_proc_flags_are_checked_at_start() -> None:
    settings = load_settings(environ={"CHUNKSCOPE_EXT_PROC_POLICY": "no-cats",
                                      "CHUNKSCOPE_EXT_PROC_MODE": "observe"})  # fmt: skip
    assert (settings.ext_proc_policy, settings.ext_proc_mode) == ("no-cats", "observe")
    assert load_settings(environ={}).ext_proc_policy == ""  # off
    with pytest.raises(ValueError, match="ext_proc_policy='No Cats' is not a policy name"):
        load_settings(environ={"CHUNKSCOPE_EXT_PROC_POLICY": "No Cats"})
    with pytest.raises(ValueError, match="ext_proc_mode='audit' must be block or observe"):
        load_settings(environ={"CHUNKSCOPE_EXT_PROC_MODE": "audit"})
