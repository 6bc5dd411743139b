"""One reading of an OpenAI message's content for the chat front, the guardrails and Envoy's
external processor: the same text whichever meets it, refusals only where a request is validated."""

from __future__ import annotations

from typing import Any

import pytest

from chunkscope.chat_content import content_text
from chunkscope.errors import InvalidArgument

PARTS = [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "x"}},
         {"type": "text", "text": "at the cat"}]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "text"),
    [("the cat", "the cat"), (None, ""), ([], ""), ([{"type": "text", "text": "a"}], "a"),
     ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "a\nb")],
)  # fmt: skip
def test_every_reader_gets_the_same_text(content: Any, text: str) -> None:
    assert content_text(content) == text
    assert content_text(content, "messages[0].content") == text
    assert content_text(content, "messages[0].content", text_only=True) == text


def test_other_parts_are_skipped_by_checks_and_refused_by_generation() -> None:
    assert content_text(PARTS) == content_text(PARTS, "c") == "look\nat the cat"
    with pytest.raises(InvalidArgument) as err:
        content_text(PARTS, "messages[2].content", text_only=True)
    assert err.value.violations[0].field == "messages[2].content[1]"


@pytest.mark.parametrize(
    ("content", "field"),
    [(7, "m.content"), ({"text": "x"}, "m.content"), (["x"], "m.content[0]"),
     ([{"type": "text", "text": 3}], "m.content[0].text")],
)  # fmt: skip
def test_a_malformed_content_is_refused_by_field_where_validated_and_skipped_by_gateways(
    content: Any, field: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        content_text(content, "m.content")
    assert err.value.violations[0].field == field
    assert content_text(content) == ""
