"""Generate and Perturb with chat messages: the model's own template applied by the server, and
intervention positions given relative to a message's content (Positions.message_tail).

The server formats and tokenizes; these tests do the same on the client side with transformers and
Detect's character spans, and expect the very same tokens, positions and numbers.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import common_pb2
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import perturbation_pb2 as pp
from support import start_server

TRAIN = [f"On day {i} the cat slept near the window while the cake cooled." for i in range(14)]
HOOK = "blocks.1.resid_post"
# The tiny model has two blocks: an intervention on earlier tokens must be made before the last
# block to reach the last token.
STEER = "blocks.0.resid_post"
# The tiny test model has no template of its own; this one is written next to its weights, as an
# instruction-tuned model ships chat_template.jinja. The role is written before each content, so a
# content that is a role name ("user") also appears in the template's own text before it.
TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
# A template that trims contents (as Llama 3's does).
TRIM_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] | trim }}</{{ m['role'] }}>"
    "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)
MESSAGES = [
    {"role": "system", "content": "user"},
    {"role": "user", "content": "On day 9 the cat slept near the window"},
]
QUESTION = MESSAGES[1]["content"]


@pytest.fixture(scope="module")
def chat_root(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-chat and tiny-trim (tiny-llama with a chat template), tiny-plain (without one) and an
    RNN."""
    root = tmp_path_factory.mktemp("chat-prompt-models")
    for name in ("tiny-chat", "tiny-trim", "tiny-plain"):
        shutil.copytree(model_root / "tiny-llama", root / name)
    shutil.copytree(model_root / "rnn-elman", root / "rnn-elman")
    (root / "tiny-chat" / "chat_template.jinja").write_text(TEMPLATE)
    (root / "tiny-trim" / "chat_template.jinja").write_text(TRIM_TEMPLATE)
    return root


@pytest.fixture(scope="module")
def setup(chat_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A server with the models registered and a PA dictionary (cat, cake) of tiny-chat."""
    server = start_server(tmp_path_factory.mktemp("chat-prompt-data"), chat_root)
    with Client.connect(server.address, timeout=120, token=server.token or None) as c:
        for name in ("tiny-chat", "tiny-trim", "tiny-plain", "rnn-elman"):
            c.register_model(name, name, wait=True)
        [pa] = c.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": "tiny-chat"}, hook_points=[HOOK],
            corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
            population_averaging=pb.PopulationAveragingParams(
                concepts=[{"concept": "cat"}, {"concept": "cake"}], n_samples=10, seed=0),
        ))  # fmt: skip
        yield {"client": c, "pa": pa}
    server.terminate()


def client_side(chat_root: Path, model: str, messages: list[dict[str, str]], **kw: Any) -> str:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(chat_root / model)
    return str(tokenizer.apply_chat_template(messages, tokenize=False, **kw))


def content_positions(c: Client, pa: pb.Dictionary, text: str, start: int, end: int) -> list[int]:
    """The tokens of text[start:end] by Detect's character spans (a token overlapping it counts)."""
    reply = c.detect(dp.DetectRequest(
        config=dp.DetectionConfig(model={"name": "tiny-chat"}, dictionary_ids=[pa.id]),
        inputs=[dp.DetectInput(text=text)],
    ))  # fmt: skip
    tokens = reply.results[0].tokens
    assert len(tokens) == reply.results[0].n_tokens
    return [t.position for t in tokens if t.char_end > t.char_start
            and t.char_start < end and t.char_end > start]  # fmt: skip


def vector(seed: int = 0) -> common_pb2.Tensor:
    v = np.random.default_rng(seed).standard_normal(32).astype(np.float32)
    return common_pb2.Tensor(shape=[32], dtype=common_pb2.DTYPE_FLOAT32, data=v.tobytes())


def add(positions: pp.Positions) -> pp.Intervention:
    """A strong push along a fixed direction: moves the next-token distribution wherever it is."""
    return pp.Intervention(vector=vector(), mode=pp.INTERVENTION_MODE_ADD, hook_point=STEER,
                           alpha=40.0, positions=positions)  # fmt: skip


def messages_pb(messages: list[dict[str, str]]) -> list[pp.ChatPromptMessage]:
    return [pp.ChatPromptMessage(**m) for m in messages]


def perturb(c: Client, model: str = "tiny-chat", **kw: Any) -> pp.PerturbResponse:
    return c.perturb(pp.PerturbRequest(model={"name": model}, top_k=20, **kw))


def numbers(reply: pp.PerturbResponse) -> list[Any]:
    return [
        [(t.token_id, t.logprob) for t in reply.top_before],
        [(t.token_id, t.logprob) for t in reply.top_after],
        reply.kl_divergence,
        reply.applied,
    ]


def generated(c: Client, **kw: Any) -> dict[int, list[int]]:
    request = pp.GenerateRequest(
        model={"name": "tiny-chat"},
        sampling=pp.SamplingParams(max_new_tokens=8, temperature=0.8, seed=3),
        control=True,
        **kw,
    )
    arms: dict[int, list[int]] = {pp.ARM_PERTURBED: [], pp.ARM_CONTROL: []}
    for message in c.generate(request):
        if not message.done:
            arms[message.arm].append(message.token_id)
    return arms


def error(call: Any, *args: Any, **kwargs: Any) -> ChunkscopeError:
    with pytest.raises(ChunkscopeError) as err:
        call(*args, **kwargs)
    return err.value


def test_messages_are_the_model_template_applied_on_the_server(
    setup: dict[str, Any], chat_root: Path
) -> None:
    c = setup["client"]
    text = client_side(chat_root, "tiny-chat", MESSAGES, add_generation_prompt=True)
    assert text == f"system: user\nuser: {QUESTION}\nassistant:"
    by_messages = perturb(c, messages=messages_pb(MESSAGES))
    by_text = perturb(c, input=dp.DetectInput(text=text))
    assert numbers(by_messages) == numbers(by_text)
    assert generated(c, messages=messages_pb(MESSAGES)) == generated(
        c, prompt=dp.DetectInput(text=text)
    )

    bare = client_side(chat_root, "tiny-chat", MESSAGES, add_generation_prompt=False)
    assert bare == f"system: user\nuser: {QUESTION}\n"
    no_prompt = perturb(c, messages=messages_pb(MESSAGES), add_generation_prompt=False)
    assert numbers(no_prompt) == numbers(perturb(c, input=dp.DetectInput(text=bare)))
    assert numbers(no_prompt) != numbers(by_messages)  # the assistant's header made a difference


def test_message_tail_resolves_to_the_content_tokens_found_by_detect(
    setup: dict[str, Any], chat_root: Path
) -> None:
    c, pa = setup["client"], setup["pa"]
    text = client_side(chat_root, "tiny-chat", MESSAGES, add_generation_prompt=True)
    start = text.index(f"user: {QUESTION}") + len("user: ")
    content = content_positions(c, pa, text, start, start + len(QUESTION))
    assert len(content) >= 6
    # The paper's graft: the three tokens before the question's last token.
    graft = content[-4:-1]
    tail = pp.MessageTokens(message_index=1, count=3, skip_last=1)
    by_tail = perturb(c, messages=messages_pb(MESSAGES),
                      interventions=[add(pp.Positions(message_tail=tail))])  # fmt: skip
    by_indices = perturb(c, input=dp.DetectInput(text=text),
                         interventions=[add(pp.Positions(indices=graft))])  # fmt: skip
    assert by_tail.applied == 3 and by_tail.kl_divergence > 0
    assert numbers(by_tail) == numbers(by_indices)
    # One token off changes the numbers: the comparison above can tell positions apart.
    before = pp.Positions(indices=[p - 1 for p in graft])
    shifted = perturb(c, input=dp.DetectInput(text=text), interventions=[add(before)])
    assert numbers(shifted) != numbers(by_tail)

    # Negative message indices count from the end; count 0 is the whole content; message_tail
    # adds to explicit indices.
    whole = pp.MessageTokens(message_index=-1)
    both = perturb(c, messages=messages_pb(MESSAGES),
                   interventions=[add(pp.Positions(message_tail=whole, indices=[0]))])  # fmt: skip
    expected = perturb(c, input=dp.DetectInput(text=text),
                       interventions=[add(pp.Positions(indices=[0, *content]))])  # fmt: skip
    assert both.applied == len(content) + 1
    assert numbers(both) == numbers(expected)

    # The system message's content is "user": its token, not the "user" of the next header.
    system = perturb(c, messages=messages_pb(MESSAGES), interventions=[
        add(pp.Positions(message_tail=pp.MessageTokens(message_index=0)))])  # fmt: skip
    at = text.index("user")
    assert at == len("system: ")
    mine = content_positions(c, pa, text, at, at + len("user"))
    assert numbers(system) == numbers(
        perturb(c, input=dp.DetectInput(text=text), interventions=[add(pp.Positions(indices=mine))])
    )


def test_generate_grafts_at_the_same_positions_as_client_side_indices(
    setup: dict[str, Any], chat_root: Path
) -> None:
    c, pa = setup["client"], setup["pa"]
    text = client_side(chat_root, "tiny-chat", MESSAGES, add_generation_prompt=True)
    start = text.index(f"user: {QUESTION}") + len("user: ")
    graft = content_positions(c, pa, text, start, start + len(QUESTION))[-4:-1]
    cat = next(e for e in pa.entries if e.label == "cat")
    chunk = pp.ChunkRef(dictionary_id=pa.id, entry_id=cat.id)

    def graft_at(positions: pp.Positions) -> list[pp.Intervention]:
        """The cat chunk grafted, and a push along a direction. (The tiny model's random weights
        barely let earlier tokens move the answer: Perturb's numbers, not sampled tokens, show
        that positions matter, in the test above.)"""
        return [pp.Intervention(chunk=chunk, mode=pp.INTERVENTION_MODE_ACTIVATE, hook_point=STEER,
                                allow_other_hook_point=True, positions=positions),
                add(positions)]  # fmt: skip

    tail = pp.MessageTokens(message_index=1, count=3, skip_last=1)
    by_tail = generated(c, messages=messages_pb(MESSAGES),
                        interventions=graft_at(pp.Positions(message_tail=tail)))  # fmt: skip
    by_indices = generated(c, prompt=dp.DetectInput(text=text),
                           interventions=graft_at(pp.Positions(indices=graft)))  # fmt: skip
    assert by_tail == by_indices
    assert len(by_tail[pp.ARM_PERTURBED]) == 8


def test_a_trimming_template_places_the_trimmed_content(
    setup: dict[str, Any], chat_root: Path
) -> None:
    c, pa = setup["client"], setup["pa"]
    messages = [{"role": "user", "content": "  the cat slept  "}]
    text = client_side(chat_root, "tiny-trim", messages, add_generation_prompt=True)
    assert text == "<user>the cat slept</user><assistant>"
    start = text.index("the cat")
    content = content_positions(c, pa, text, start, start + len("the cat slept"))
    tail = pp.MessageTokens(message_index=0, count=2)
    by_tail = perturb(c, "tiny-trim", messages=messages_pb(messages),
                      interventions=[add(pp.Positions(message_tail=tail))])  # fmt: skip
    by_indices = perturb(c, "tiny-trim", input=dp.DetectInput(text=text),
                         interventions=[add(pp.Positions(indices=content[-2:]))])  # fmt: skip
    assert by_tail.applied == 2
    assert numbers(by_tail) == numbers(by_indices)


def _violations(err: ChunkscopeError) -> list[str]:
    assert err.code.name == "INVALID_ARGUMENT", err
    return [f for f, _ in err.field_violations]


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "hi"}], "input": {"text": "hi"}}, "messages"),
        ({"input": {"text": "hi"}, "add_generation_prompt": False}, "add_generation_prompt"),
        ({"messages": [{"role": "user", "content": "x"}] * 257}, "messages"),
        ({"input": {"text": "hi"}, "tail": {"count": 1}},
         "interventions[0].positions.message_tail"),
        ({"tail": {"message_index": 2}}, "interventions[0].positions.message_tail.message_index"),
        ({"tail": {"message_index": -3}}, "interventions[0].positions.message_tail.message_index"),
        ({"tail": {"count": 99}}, "interventions[0].positions.message_tail.count"),
        ({"tail": {"skip_last": 99}}, "interventions[0].positions.message_tail.skip_last"),
        ({"tail": {"count": -1}}, "interventions[0].positions.message_tail.count"),
        ({"tail": {"skip_last": -2}}, "interventions[0].positions.message_tail.skip_last"),
        ({"messages": [{"role": "user", "content": ""}], "tail": {}},
         "interventions[0].positions.message_tail.message_index"),
        ({}, "input"),
    ],
)  # fmt: skip
def test_bad_chat_requests_name_the_field(
    setup: dict[str, Any], request_fields: dict[str, Any], field: str
) -> None:
    c = setup["client"]
    fields = dict(request_fields)
    tail = fields.pop("tail", None)
    if tail is not None:
        if "input" not in fields:
            fields.setdefault("messages", MESSAGES)
        fields["interventions"] = [add(pp.Positions(message_tail=pp.MessageTokens(**tail)))]
    if not fields.get("messages"):
        fields.pop("messages", None)
    request = pp.PerturbRequest(model={"name": "tiny-chat"}, **fields)
    assert field in _violations(error(c.perturb, request))
    generate = pp.GenerateRequest(
        model={"name": "tiny-chat"},
        **{("prompt" if k == "input" else k): v for k, v in fields.items()},
    )
    expected = field.replace("input", "prompt") if field == "input" else field
    assert expected in _violations(error(lambda: list(c.generate(generate))))


def test_a_model_without_a_chat_template_is_refused_with_the_fix(setup: dict[str, Any]) -> None:
    c = setup["client"]
    request = pp.GenerateRequest(model={"name": "tiny-plain"}, messages=messages_pb(MESSAGES))
    err = error(lambda: list(c.generate(request)))
    assert _violations(err) == ["messages"]
    assert "no chat template" in err.message and "prompt.text" in err.message

    rnn = pp.PerturbRequest(model={"name": "rnn-elman"}, messages=messages_pb(MESSAGES))
    err = error(c.perturb, rnn)
    assert _violations(err) == ["messages"]
    assert "recurrent" in err.message and "input.symbols" in err.message


def test_an_overlong_conversation_is_refused_by_its_size(setup: dict[str, Any]) -> None:
    c = setup["client"]
    long = [{"role": "user", "content": "the cat " * 20_000}]
    err = error(c.perturb, pp.PerturbRequest(model={"name": "tiny-chat"},
                                             messages=messages_pb(long)))  # fmt: skip
    assert err.code.name == "RESOURCE_EXHAUSTED" and err.reason == "INPUT_TOO_LONG"
    assert "messages" in err.message
