"""Chat messages to a prompt with the model's own chat template (the HTTP front and gRPC Generate
and Perturb use it), and the tokens of each message's content in that prompt.

The template is the one the model ships (tokenizer_config.json's `chat_template` or
`chat_template.jinja`), rendered by transformers in its sandboxed Jinja environment: a template is
data, never code we run. A model without one is refused rather than given a made-up format, and
so is a recurrent network (its inputs are symbols, not text). Rendering is host work: call it on
the tokenizer pool (tokens.off_loop), never on the event loop or the device thread.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chunkscope.engine.loading import LoadedModel
from chunkscope.errors import FailedPrecondition, InvalidArgument

ROLES = ("system", "user", "assistant")


Span = tuple[int, int]


@dataclass(frozen=True)
class ChatText:
    """A formatted prompt and where each message's content lies in it ([start, end) characters;
    None for every message when the template rewrites contents beyond trimming them)."""

    text: str
    spans: tuple[Span | None, ...]


def chat_prompt(model: LoadedModel, messages: list[dict[str, str]], model_name: str) -> str:
    """The prompt text for `messages` ({"role", "content"}), ending where the assistant answers."""
    return format_chat(model, messages, model_name).text


def format_chat(
    model: LoadedModel,
    messages: Sequence[dict[str, str]],
    model_name: str,
    add_generation_prompt: bool = True,
    prompt_field: str = "",
) -> ChatText:
    """The prompt text for `messages` ({"role", "content"}) and each content's character span.

    The text is tokenized again like any prompt (with the tokenizer's special tokens), so when the
    template writes the BOS token itself and the tokenizer would add one too, the template's is
    dropped: the model sees exactly one.

    A model that cannot format messages is refused naming `model` (the HTTP front), or naming
    `messages` and pointing at `prompt_field` (gRPC: the request's raw prompt field).
    """
    field = "messages" if prompt_field else "model"
    if model.is_recurrent:
        fix = f"send {prompt_field}.symbols instead" if prompt_field else (
            "use gRPC Generate with a symbol prompt")  # fmt: skip
        raise InvalidArgument.field(
            field,
            f"{model_name!r} is a recurrent network over symbols and has no chat template; {fix}",
        )
    tokenizer: Any = model.tokenizer
    if not getattr(tokenizer, "chat_template", None):
        fix = f"send the formatted text as {prompt_field}.text" if prompt_field else (
            "use gRPC Generate with a raw prompt")  # fmt: skip
        raise InvalidArgument.field(
            field,
            f"{model_name!r} has no chat template (chat_template.jinja or tokenizer_config.json "
            f"'chat_template'); register an instruction-tuned model that ships one, or {fix}",
        )
    text = _render(tokenizer, messages, add_generation_prompt)
    spans = _content_spans(tokenizer, messages, add_generation_prompt, text)
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and _adds_bos(model):
        text = text[len(bos) :]
        spans = tuple(
            None if s is None else (max(0, s[0] - len(bos)), max(0, s[1] - len(bos))) for s in spans
        )
    return ChatText(text, spans)


def _render(tokenizer: Any, messages: Sequence[dict[str, str]], add_generation_prompt: bool) -> str:
    from jinja2 import TemplateError

    try:
        text = tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except TemplateError as exc:  # e.g. the template's own raise_exception("roles must alternate")
        raise InvalidArgument.field(
            "messages", f"the model's chat template refused them: {exc}"
        ) from None
    return str(text)


def _content_spans(
    tokenizer: Any, messages: Sequence[dict[str, str]], add_generation_prompt: bool, text: str
) -> tuple[Span | None, ...]:
    """Each content's span in `text`, found by rendering the messages again with a unique marker
    for each content: the text between the markers is the template's own, so putting the contents
    back must give `text` exactly (or, for templates that trim contents, the trimmed contents must).
    Searching the text for a content instead would be fooled by a content that the template's own
    words contain ("user" in a "user:" header)."""
    unknown: tuple[Span | None, ...] = (None,) * len(messages)
    nonce = secrets.token_hex(8)
    markers = [f"CHUNKSCOPEMESSAGE{nonce}N{i}X" for i in range(len(messages))]
    marked = [{**m, "content": markers[i]} for i, m in enumerate(messages)]
    try:
        template = _render(tokenizer, marked, add_generation_prompt)
    except InvalidArgument:  # the template refuses the markers (it inspects contents)
        return unknown
    pieces, cursor = [], 0
    for marker in markers:
        at = template.find(marker, cursor)
        if at < 0 or template.count(marker) != 1:
            return unknown
        pieces.append(template[cursor:at])
        cursor = at + len(marker)
    pieces.append(template[cursor:])
    for trim in (False, True):
        contents = [m["content"].strip() if trim else m["content"] for m in messages]
        spans, rebuilt = [], pieces[0]
        for content, piece in zip(contents, pieces[1:], strict=True):
            spans.append((len(rebuilt), len(rebuilt) + len(content)))
            rebuilt += content + piece
        if rebuilt == text:
            return tuple(spans)
    return unknown


def message_positions(
    offsets: Sequence[tuple[int, int]],
    chat: ChatText,
    message_index: int,
    count: int,
    skip_last: int,
    field: str,
) -> tuple[int, ...]:
    """Token positions of the last `count` tokens (0: all) of a message's content, leaving its last
    `skip_last` out. `offsets` are the prompt's tokens' character spans in `chat.text` ((0, 0) for
    special tokens); a token is the content's when its characters overlap the content."""
    n = len(chat.spans)
    if not -n <= message_index < n:
        raise InvalidArgument.field(
            f"{field}.message_index",
            f"{message_index} is not a message of the request ({n}: use {-n}..{n - 1})",
        )
    violations = [
        (f"{field}.{name}", f"{value} must be >= 0")
        for name, value in (("count", count), ("skip_last", skip_last))
        if value < 0
    ]
    if violations:
        raise InvalidArgument.field(*violations[0])
    index = message_index % n
    span = chat.spans[index]
    if span is None:
        raise FailedPrecondition(
            f"{field}: the model's chat template rewrites message contents, so their tokens "
            "cannot be found in the prompt; give positions.indices instead",
            reason="CONTENT_NOT_FOUND",
        )
    start, end = span
    content = [i for i, (s, e) in enumerate(offsets) if e > s and s < end and e > start]
    if not content:
        raise InvalidArgument.field(
            f"{field}.message_index", f"message {index}'s content has no tokens"
        )
    if count + skip_last > len(content) or skip_last >= len(content):
        wanted = f"count {count} + skip_last {skip_last}" if count else f"skip_last {skip_last}"
        raise InvalidArgument.field(
            f"{field}.count" if count else f"{field}.skip_last",
            f"message {index}'s content has {len(content)} tokens, too few for {wanted}",
        )
    stop = len(content) - skip_last
    return tuple(content[stop - count if count else 0 : stop])


def _adds_bos(model: LoadedModel) -> bool:
    bos_id = model.tokenizer.bos_token_id
    return bos_id is not None and bos_id in model.encode("", add_special_tokens=True)
