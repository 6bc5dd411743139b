"""Chat messages to a prompt with the model's own chat template (the HTTP front uses it; gRPC can).

The template is the one the model ships (tokenizer_config.json's `chat_template` or
`chat_template.jinja`), rendered by transformers in its sandboxed Jinja environment: a template is
data, never code we run. A model without one is refused rather than given a made-up format, and
so is a recurrent network (its inputs are symbols, not text). Rendering is host work: call it on
the tokenizer pool (tokens.off_loop), never on the event loop or the device thread.
"""

from __future__ import annotations

from typing import Any

from chunkscope.engine.loading import LoadedModel
from chunkscope.errors import InvalidArgument

ROLES = ("system", "user", "assistant")


def chat_prompt(model: LoadedModel, messages: list[dict[str, str]], model_name: str) -> str:
    """The prompt text for `messages` ({"role", "content"}), ending where the assistant answers.

    The text is tokenized again like any prompt (with the tokenizer's special tokens), so when the
    template writes the BOS token itself and the tokenizer would add one too, the template's is
    dropped: the model sees exactly one.
    """
    if model.is_recurrent:
        raise InvalidArgument.field(
            "model",
            f"{model_name!r} is a recurrent network over symbols and has no chat template; use "
            "gRPC Generate with a symbol prompt",
        )
    tokenizer: Any = model.tokenizer
    if not getattr(tokenizer, "chat_template", None):
        raise InvalidArgument.field(
            "model",
            f"{model_name!r} has no chat template (chat_template.jinja or tokenizer_config.json "
            "'chat_template'); register an instruction-tuned model that ships one, or use gRPC "
            "Generate with a raw prompt",
        )
    from jinja2 import TemplateError

    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except TemplateError as exc:  # e.g. the template's own raise_exception("roles must alternate")
        raise InvalidArgument.field(
            "messages", f"the model's chat template refused them: {exc}"
        ) from None
    text = str(text)
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and _adds_bos(model):
        text = text[len(bos) :]
    return text


def _adds_bos(model: LoadedModel) -> bool:
    bos_id = model.tokenizer.bos_token_id
    return bos_id is not None and bos_id in model.encode("", add_special_tokens=True)
