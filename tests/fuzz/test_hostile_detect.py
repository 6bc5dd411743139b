"""Hostile input sizes for every RPC that tokenizes user text (Detect, StreamDetect, Perturb,
Generate): huge inputs by bytes and by tokens, and many-message streams with `continues`.

These run against a server of their own with --max-input-tokens 65536, so one input may have
2 MiB of text (32 bytes per token): big enough that tokenizing an input within the byte limit
takes a while, which is what shows whether the event loop keeps serving meanwhile. No input here
reaches a forward pass longer than a few dozen tokens.

Sizes: a few MiB by default (make test); CHUNKSCOPE_HOSTILE_MIB (e.g. "8,32,60") sets them, and a
long fuzzing run (CHUNKSCOPE_FUZZ_EXAMPLES above the CI default, as make fuzz sets it) takes the
sizes of the report that found these: 8, 32 and 60 MiB.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from fuzz_support import LM_HOOK, FuzzEnv

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import dictionaries_pb2
from chunkscope_client.v1 import perturbation_pb2 as pp
from support import ServerProcess, start_server

MAX_INPUT_TOKENS = 65536
MAX_INPUT_BYTES = 32 * MAX_INPUT_TOKENS  # the server's bound: 32 bytes per token
MIB = 1 << 20
_LONG_RUN = int(os.environ.get("CHUNKSCOPE_FUZZ_EXAMPLES", "12")) > 12
SIZES_MIB = [
    int(s)
    for s in os.environ.get("CHUNKSCOPE_HOSTILE_MIB", "8,32,60" if _LONG_RUN else "4").split(",")
]
CALL_TIMEOUT = 300.0


@dataclass
class Hostile:
    server: ServerProcess
    client: Client
    pa_id: str
    dsc_id: str

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.server.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")  # pragma: no cover


@pytest.fixture(scope="module")
def hostile(fuzz_env: FuzzEnv, model_root: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Hostile]:  # fmt: skip
    server = start_server(tmp_path_factory.mktemp("hostile-data"), model_root,
                          "--max-input-tokens", str(MAX_INPUT_TOKENS))  # fmt: skip
    # Messages up to the server's 64 MiB: the 60 MiB case must reach the server to be refused.
    with Client.connect(server.address, timeout=CALL_TIMEOUT, token=server.token) as c:
        c.register_model("fz-lm", "tiny-llama", wait=True)  # the names the archives are bound to
        c.register_model("fz-rnn", "rnn-elman", wait=True)
        pa = c.import_dictionary(fuzz_env.archive)
        assert pa.hook_point == LM_HOOK
        with Client.connect(fuzz_env.server.address, token=fuzz_env.server.token) as fz:
            dsc = c.import_dictionary(fz.export_dictionary(fuzz_env.dsc_id))
        yield Hostile(server, c, pa.id, dsc.id)
    server.terminate()


def _config(h: Hostile, **options: Any) -> dp.DetectionConfig:
    return dp.DetectionConfig(model={"name": "fz-lm"}, dictionary_ids=[h.pa_id], summary_only=True,
                              **options)  # fmt: skip


def _refusal(call: Callable[[], Any]) -> ChunkscopeError:
    with pytest.raises(ChunkscopeError) as err:
        call()
    return err.value


def _refusal_while_serving(h: Hostile, call: Callable[[], Any]) -> ChunkscopeError:
    """The call's error, Health checks answered all along (each within the call timeout)."""
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(_refusal, call)
        while not pending.done():
            assert h.client.health() == "SERVING"
            time.sleep(0.05)
        return pending.result()


def _calls(h: Hostile, text: str) -> dict[str, tuple[str, Callable[[], Any]]]:
    """RPC -> (the field that holds the text, a call sending it)."""
    lm = {"name": "fz-lm"}
    return {
        "Detect": ("inputs[0]", lambda: h.client.detect(
            dp.DetectRequest(config=_config(h), inputs=[dp.DetectInput(text=text)]))),
        "StreamDetect": ("message[1].input", lambda: list(h.client.stream_detect(iter([
            dp.StreamDetectRequest(config=_config(h)),
            dp.StreamDetectRequest(input=dp.DetectInput(text=text)),
        ]), timeout=CALL_TIMEOUT))),
        "Perturb": ("input", lambda: h.client.perturb(
            pp.PerturbRequest(model=lm, input=dp.DetectInput(text=text)))),
        "Generate": ("prompt", lambda: list(h.client.generate(
            pp.GenerateRequest(model=lm, prompt=dp.DetectInput(text=text))))),
    }  # fmt: skip


@pytest.mark.parametrize("mib", SIZES_MIB)
@pytest.mark.parametrize("rpc", ["Detect", "StreamDetect", "Perturb", "Generate"])
def test_a_huge_text_is_refused_by_its_bytes_without_tokenizing(
    hostile: Hostile, rpc: str, mib: int
) -> None:
    """Regression (issue 12.1): a 60 MiB Detect input was tokenized on the event loop for 66 s
    (Health checks timed out meanwhile) before INPUT_TOO_LONG, and the server kept 5.9 GiB."""
    text = "the cat " * (mib * MIB // 8)
    field, call = _calls(hostile, text)[rpc]
    rss_before = hostile.rss_mib()
    err = _refusal_while_serving(hostile, call)
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.reason == "INPUT_TOO_LONG"
    assert err.message.startswith(f"{field} is over {MAX_INPUT_BYTES} bytes")
    assert "--max-input-tokens" in err.message  # the limit's flag ...
    assert "split it" in err.message or "shorten it" in err.message  # ... and the fix
    assert err.metadata["limit_bytes"] == str(MAX_INPUT_BYTES)
    # Nothing the size of a tokenization is kept: the message's own copies come and go (a few
    # times its size at most, while it is decoded); tokenizing it took about 100 times its size.
    assert hostile.rss_mib() - rss_before < 4 * mib + 128


def test_the_loop_serves_while_a_long_input_is_tokenized(hostile: Hostile) -> None:
    """Regression (issues 12.1, 11.12): token counting ran on the event loop, so a Health check
    waited for the whole tokenization. The input is within the byte limit and far over the token
    limit, so it is tokenized (seconds on a CPU) and then refused by its token count."""
    text = "the cat " * ((MAX_INPUT_BYTES - 4096) // 8)
    request = dp.DetectRequest(config=_config(hostile), inputs=[dp.DetectInput(text=text)])
    answered_meanwhile = 0
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(_refusal, lambda: hostile.client.detect(request))
        while not pending.done():
            assert hostile.client.health() == "SERVING"
            answered_meanwhile += not pending.done()
            time.sleep(0.05)
        err = pending.result()
    # A blocked loop answers at most the checks sent before the message arrived (a few ms):
    # several answers mean the loop kept serving while the tokenizer ran (for seconds).
    assert answered_meanwhile >= 3, answered_meanwhile
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.reason == "INPUT_TOO_LONG"
    assert err.message.startswith("inputs[0] has ")
    assert f"at most {MAX_INPUT_TOKENS} per input (--max-input-tokens)" in err.message


def test_a_continued_input_past_max_tokens_slides_and_is_never_dropped(hostile: Hostile) -> None:
    """Regression (issue 12.2): with config.max_tokens, every continued segment after the first
    max_tokens tokens came back with n_tokens=0 and no error, while the stream held (and
    re-tokenized) all the text sent so far. Now config.max_tokens is the input's window: each
    message is cut there (as one input would be) and answered, and the context slides."""
    piece = "the cat sat on the mat " * (MAX_INPUT_BYTES // 8 // 23)  # within the byte limit

    def messages() -> Iterator[dp.StreamDetectRequest]:
        yield dp.StreamDetectRequest(config=_config(hostile, max_tokens=16))
        for _ in range(12):
            yield dp.StreamDetectRequest(input=dp.DetectInput(text=piece), continues=True)

    replies = list(hostile.client.stream_detect(messages(), timeout=CALL_TIMEOUT))
    assert [r.result.n_tokens for r in replies] == [16] * 12  # each segment, cut at 16 tokens
    firsts = [r.result.summaries[0].first_position for r in replies]
    assert all(f == -1 or 16 * i <= f < 16 * (i + 1) for i, f in enumerate(firsts))


def test_many_small_continued_segments_are_all_answered(hostile: Hostile) -> None:
    """Every token of a continued input is reported once, past config.max_tokens too: the
    window slides instead of refusing."""
    n = 100

    def messages() -> Iterator[dp.StreamDetectRequest]:
        yield dp.StreamDetectRequest(config=_config(hostile, max_tokens=64))
        for i in range(n):
            yield dp.StreamDetectRequest(input=dp.DetectInput(text=" the cat"), continues=i > 0)

    replies = list(hostile.client.stream_detect(messages(), timeout=CALL_TIMEOUT))
    assert len(replies) == n and all(r.result.n_tokens > 0 for r in replies)
    request = dp.DetectRequest(
        config=_config(hostile), inputs=[dp.DetectInput(text=" the cat" * n)]
    )
    whole = hostile.client.detect(request).results[0]
    assert sum(r.result.n_tokens for r in replies) == whole.n_tokens > 64


def test_a_message_over_the_token_limit_names_the_stream_message(hostile: Hostile) -> None:
    """Without config.max_tokens one message is bounded like one input: a continued segment
    over --max-input-tokens is refused, named by its message, before any forward. (The input it
    continues is not counted: it slides.)"""
    piece = "the cat " * (MAX_INPUT_TOKENS // 3 + 100)  # 3 tokens each: just over the limit

    def messages() -> Iterator[dp.StreamDetectRequest]:
        yield dp.StreamDetectRequest(config=_config(hostile))
        yield dp.StreamDetectRequest(input=dp.DetectInput(text="the cat"))
        yield dp.StreamDetectRequest(input=dp.DetectInput(text=piece), continues=True)

    replies: list[dp.StreamDetectResponse] = []
    with pytest.raises(ChunkscopeError) as err:
        for reply in hostile.client.stream_detect(messages(), timeout=CALL_TIMEOUT):
            replies.append(reply)
    assert len(replies) == 1
    assert err.value.reason == "INPUT_TOO_LONG"
    assert err.value.message.startswith("message[2].input has ")
    assert f"at most {MAX_INPUT_TOKENS} per input" in err.value.message
    assert "split it into several messages" in err.value.message


@pytest.mark.parametrize("mib", SIZES_MIB)
def test_a_huge_symbol_sequence_is_refused_by_its_length(hostile: Hostile, mib: int) -> None:
    """Recurrent models: the sequence's length is its token count, checked before its symbols
    are looked at; truncating (config.max_tokens) cuts it first."""
    # 3 bytes each on the wire; at most 16 MiB (5.6 M symbols), as they cost ~40 bytes each once
    # parsed, on both sides.
    symbols = dictionaries_pb2.SymbolSequence(symbols=["A"] * (min(mib, 16) * MIB // 3))
    config = dp.DetectionConfig(model={"name": "fz-rnn"}, dictionary_ids=[hostile.dsc_id],
                                summary_only=True)  # fmt: skip
    request = dp.DetectRequest(config=config, inputs=[dp.DetectInput(symbols=symbols)])
    err = _refusal_while_serving(hostile, lambda: hostile.client.detect(request))
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.reason == "INPUT_TOO_LONG"
    assert err.message.startswith(f"inputs[0] has {len(symbols.symbols)} tokens")
    assert f"at most {MAX_INPUT_TOKENS} per input" in err.message
    request.config.max_tokens = 8
    request.inputs[0].symbols.symbols.append("not a symbol")  # beyond the cut: never seen
    [result] = hostile.client.detect(request).results
    assert result.n_tokens == 8


def test_target_tokens_are_bounded_before_encoding(hostile: Hostile) -> None:
    """Perturb's target tokens are single tokens: a huge one, or a huge list, is refused before
    any of them is encoded (they were encoded on the event loop)."""
    base = pp.PerturbRequest(model={"name": "fz-lm"}, input=dp.DetectInput(text="the cat"))
    huge = pp.PerturbRequest(target_tokens=["the cat " * (max(SIZES_MIB) * MIB // 8)])
    huge.MergeFrom(base)
    err = _refusal_while_serving(hostile, lambda: hostile.client.perturb(huge))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    [(field, description)] = err.field_violations
    assert field == "target_tokens[0]" and description.endswith("characters; give a single token")
    many = pp.PerturbRequest(target_tokens=[" cat"] * 257)
    many.MergeFrom(base)
    err = _refusal(lambda: hostile.client.perturb(many))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.field_violations == [("target_tokens", "at most 256")]
