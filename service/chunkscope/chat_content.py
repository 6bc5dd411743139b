"""An OpenAI chat message's `content` as text: one reading for every front that meets one.

The chat-completion front (http/openai.py), the guardrail routes (http/guardrails.py) and the
Envoy external processor (api/ext_proc.py) all read OpenAI messages; reading their content here
keeps what a guard checks the same text a model is given. Content is a string, null (no text),
or a list of parts whose text parts are joined with newlines.
"""

from __future__ import annotations

from typing import Any

from chunkscope.errors import InvalidArgument

SEPARATOR = "\n"  # between a content's text parts


def content_text(content: Any, field: str | None = None, *, text_only: bool = False) -> str:
    """The text of a message's `content`.

    With `field` (a request being validated) a malformed content or part is refused, naming
    `field` or `field[j]`; `text_only` refuses parts that are not text (a model that would not
    see an image must not answer as if it had), else they are skipped. Without `field` (a
    gateway that checks whatever passes) nothing is refused: any part with a string `text`
    counts and anything else is skipped.
    """
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if not isinstance(content, list):
        if field is None:
            return ""
        raise InvalidArgument.field(field, "must be a string or a list of content parts")
    texts = []
    for j, part in enumerate(content):
        if field is None:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            continue
        if not isinstance(part, dict):
            raise InvalidArgument.field(f"{field}[{j}]", 'must be a part {"type", ...}')
        if part.get("type") != "text":
            if text_only:
                raise InvalidArgument.field(
                    f"{field}[{j}]", 'only {"type": "text"} parts are supported'
                )
            continue
        if not isinstance(part.get("text"), str):
            raise InvalidArgument.field(f"{field}[{j}].text", "required: a string")
        texts.append(part["text"])
    return SEPARATOR.join(texts)
