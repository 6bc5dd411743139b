"""DetectionService and PerturbationService through the client against a real server."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np
import pytest

from chunkscope.engine.serving import DETECT_CHUNK, detect_chunk
from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import common_pb2
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import perturbation_pb2 as pp
from support import ServerProcess

TRAIN = [f"On day {i} the cat slept near the window while the cake cooled." for i in range(14)]
HOOK = "blocks.1.resid_post"


@pytest.fixture(scope="module")
def setup(server: ServerProcess) -> Iterator[tuple[Client, str, str]]:
    """A tiny LM with a PA dictionary (cat, cake), and an RNN with a DSC dictionary."""
    with Client.connect(server.address, timeout=120) as c:
        c.register_model("dp-lm", "tiny-llama", wait=True)
        c.register_model("dp-rnn", "rnn-elman", wait=True)
        c.register_model("dp-other", "tiny-gpt2", wait=True)
        [pa] = c.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": "dp-lm"}, hook_points=[HOOK],
            corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
            population_averaging=pb.PopulationAveragingParams(
                concepts=[{"concept": "cat"}, {"concept": "cake"}], n_samples=10, seed=0),
        ))  # fmt: skip
        [dsc] = c.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": "dp-rnn"}, hook_points=["rnn.hidden"],
            corpus=pb.Corpus(sequences=pb.SequenceList(
                sequences=[pb.SymbolSequence(symbols=list("EABCDEEABCDEEEABCDE" * 20))])),
            discrete_sequence_chunking=pb.DiscreteSequenceChunkingParams(),
        ))  # fmt: skip
        yield c, pa.id, dsc.id
        for name in ("dp-lm", "dp-rnn", "dp-other"):
            c.unregister_model(name)


def _error(call, *args, **kwargs) -> ChunkscopeError:  # type: ignore[no-untyped-def]
    with pytest.raises(ChunkscopeError) as err:
        call(*args, **kwargs)
    return err.value


def _detect(c: Client, dictionary: str, *texts: str, **config: object) -> dp.DetectResponse:
    request = dp.DetectRequest(
        config=dp.DetectionConfig(model={"name": "dp-lm"}, dictionary_ids=[dictionary], **config),
        inputs=[dp.DetectInput(text=t) for t in texts],
    )
    return c.detect(request)


def test_detect_marks_the_concept_tokens_it_was_extracted_on(setup: tuple) -> None:
    c, pa, _ = setup
    reply = _detect(c, pa, TRAIN[3], "A quiet morning without animals.")
    first, second = reply.results
    cat = next(s for s in first.summaries if s.label == "cat")
    assert cat.fired and cat.count >= 1
    fired_at = [t for t in first.tokens if any(m.label == "cat" for m in t.matches)]
    assert fired_at and all(TRAIN[3][t.char_start : t.char_end].strip() in "cat" for t in fired_at)
    assert cat.first_position == fired_at[0].position
    assert len(first.tokens) == first.n_tokens  # every token reported without positives_only
    assert not any(s.fired for s in second.summaries if s.label == "cat")
    assert reply.forward_ns > 0

    only = _detect(c, pa, TRAIN[3], positives_only=True, labels=["cat"]).results[0]
    assert only.tokens and all(t.matches for t in only.tokens)
    assert [s.label for s in only.summaries] == ["cat"]
    assert not _detect(c, pa, TRAIN[3], summary_only=True).results[0].tokens


def test_dsc_dictionaries_detect_chunks_along_the_sequence(setup: tuple) -> None:
    c, _, dsc = setup
    request = dp.DetectRequest(
        config=dp.DetectionConfig(model={"name": "dp-rnn"}, dictionary_ids=[dsc]),
        inputs=[dp.DetectInput(symbols=pb.SymbolSequence(symbols=list("EABCDEEABCDE")))],
    )
    [result] = c.detect(request).results
    assert result.n_tokens == 12
    assert sum(s.count for s in result.summaries) >= 2  # chunks span several steps


def test_detection_refuses_what_does_not_fit(setup: tuple) -> None:
    c, pa, _ = setup
    e = _error(_detect, c, "dict-" + "0" * 12, "x")
    assert e.code is grpc.StatusCode.NOT_FOUND
    e = _error(_detect, c, "nonsense", "x")
    assert (
        e.code is grpc.StatusCode.INVALID_ARGUMENT
        and "dictionary_ids[0]" in e.field_violations[0][0]
    )
    other = dp.DetectRequest(
        config=dp.DetectionConfig(model={"name": "dp-other"}, dictionary_ids=[pa]),
        inputs=[dp.DetectInput(text="cat")],
    )
    e = _error(c.detect, other)
    assert e.code is grpc.StatusCode.FAILED_PRECONDITION and e.reason == "DICTIONARY_MISMATCH"
    assert "dp-lm" in e.message
    assert _error(_detect, c, pa, "").code is grpc.StatusCode.INVALID_ARGUMENT
    assert _error(_detect, c, pa).code is grpc.StatusCode.INVALID_ARGUMENT
    e = _error(_detect, c, pa, "x", labels=["zebra"])
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT and "zebra" in e.message
    e = _error(_detect, c, pa, *["x"] * 300)  # over --max-inputs-per-request (256)
    assert e.code is grpc.StatusCode.RESOURCE_EXHAUSTED and e.reason == "TOO_MANY_INPUTS"
    assert c.health() == "SERVING"


def test_stream_detect_keeps_context_and_ends_on_garbage(
    setup: tuple, server: ServerProcess
) -> None:
    c, pa, _ = setup
    config = dp.DetectionConfig(model={"name": "dp-lm"}, dictionary_ids=[pa])
    messages = [
        dp.StreamDetectRequest(config=config),
        dp.StreamDetectRequest(input=dp.DetectInput(text="On day 3 the cat slept")),
        dp.StreamDetectRequest(input=dp.DetectInput(text=" near the window"), continues=True),
        dp.StreamDetectRequest(input=dp.DetectInput(text="A new input")),
    ]
    replies = list(c.detection.StreamDetect(iter(messages), timeout=60))
    assert [r.sequence for r in replies] == [0, 1, 2]
    whole = _detect(c, pa, "On day 3 the cat slept near the window").results[0]
    assert replies[0].result.n_tokens + replies[1].result.n_tokens == whole.n_tokens
    assert replies[1].result.tokens[0].position == replies[0].result.n_tokens
    garbage = [messages[0], messages[1], dp.StreamDetectRequest(config=config), messages[3]]
    stream = c.detection.StreamDetect(iter(garbage), timeout=60)
    assert next(stream).sequence == 0
    with pytest.raises(grpc.RpcError) as err:
        next(stream)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert c.health() == "SERVING"


def _stream(c: Client, config: dp.DetectionConfig, inputs: list[dp.DetectInput]) -> list[Any]:
    """One StreamDetect: each input continuing the one before; the replies' results."""
    messages = [dp.StreamDetectRequest(config=config)] + [
        dp.StreamDetectRequest(input=item, continues=i > 0) for i, item in enumerate(inputs)
    ]
    return [r.result for r in c.detection.StreamDetect(iter(messages), timeout=60)]


def _by_position(results: list[Any]) -> dict[int, Any]:
    """Each position's last report."""
    return {t.position: t for r in results for t in r.tokens}


def _same_token(got: Any, want: Any) -> None:
    assert (got.position, got.token, got.char_start, got.char_end) == (
        want.position, want.token, want.char_start, want.char_end)  # fmt: skip
    assert [(m.entry_id, m.label) for m in got.matches] == [
        (m.entry_id, m.label) for m in want.matches
    ]
    for a, b in zip(got.matches, want.matches, strict=True):
        assert a.score == pytest.approx(b.score, rel=1e-3, abs=1e-7)


@pytest.mark.parametrize(
    "pieces",
    [
        ["On day 3 the ca", "t slept near the win", "dow while the ca", "ke cooled."],
        ["On day 3 the cat", " slept near the window", " while the cake", " cooled."],
    ],
    ids=["inside-words", "at-spaces"],
)
def test_stream_detect_continues_a_word_across_messages(setup: tuple, pieces: list[str]) -> None:
    """Each message costs its new tokens; a word split across messages comes again, revised,
    and taking each position's last report gives what one Detect of the whole text gives."""
    c, pa, _ = setup
    config = dp.DetectionConfig(model={"name": "dp-lm"}, dictionary_ids=[pa])
    results = _stream(c, config, [dp.DetectInput(text=p) for p in pieces])
    whole = _detect(c, pa, "".join(pieces)).results[0]
    last = _by_position(results)
    assert sorted(last) == list(range(whole.n_tokens))
    for want in whole.tokens:
        _same_token(last[want.position], want)
    reported = sum(r.n_tokens for r in results)
    if " " in pieces[1][:1]:
        assert reported == whole.n_tokens  # split at spaces: nothing is reported twice
    else:
        assert reported > whole.n_tokens  # the seams: the split words again
    for r in results[1:]:  # a revised token is reported again only where the text changed
        for t in r.tokens:
            before = [u for u in results[: results.index(r)] for u in u.tokens
                      if u.position == t.position]  # fmt: skip
            assert not before or (before[-1].token, before[-1].char_end) != (t.token, t.char_end)


def test_stream_detect_slides_past_its_window_instead_of_refusing(setup: tuple) -> None:
    """An input longer than its window (config.max_tokens here) keeps being answered: the
    context is the most recent tokens, positions and offsets still count from the start."""
    c, pa, _ = setup
    first, *words = " ".join(TRAIN[:4]).split(" ")
    pieces = [first] + [" " + w for w in words]  # each within the window
    config = dp.DetectionConfig(model={"name": "dp-lm"}, dictionary_ids=[pa], max_tokens=24)
    results = _stream(c, config, [dp.DetectInput(text=p) for p in pieces])
    whole = _detect(c, pa, "".join(pieces)).results[0]
    assert whole.n_tokens > 4 * 24  # the window slid several times
    assert sum(r.n_tokens for r in results) == whole.n_tokens
    last = _by_position(results)
    assert sorted(last) == list(range(whole.n_tokens))
    for want in whole.tokens:
        got = last[want.position]
        assert (got.token, got.char_start, got.char_end) == (want.token, want.char_start,
                                                             want.char_end)  # fmt: skip


def test_stream_detect_parses_dsc_chunks_over_the_running_sequence(setup: tuple) -> None:
    """DSC matches span steps: each message is parsed with the sequence before it (its window),
    so its rows equal those of one Detect of the input so far, chunks across the split included."""
    c, _, dsc = setup
    config = dp.DetectionConfig(model={"name": "dp-rnn"}, dictionary_ids=[dsc])
    pieces = ["EABC", "DEEAB", "CDE"]

    def symbols(text: str) -> dp.DetectInput:
        return dp.DetectInput(symbols=pb.SymbolSequence(symbols=list(text)))

    results = _stream(c, config, [symbols(p) for p in pieces])
    assert [r.n_tokens for r in results] == [len(p) for p in pieces]
    matched = 0
    for i, result in enumerate(results):
        prefix = "".join(pieces[: i + 1])
        [whole] = c.detect(dp.DetectRequest(config=config, inputs=[symbols(prefix)])).results
        assert [t.position for t in result.tokens] == list(range(len(prefix) - len(pieces[i]),
                                                                 len(prefix)))  # fmt: skip
        for got in result.tokens:
            _same_token(got, whole.tokens[got.position])
            matched += len(got.matches)
    assert matched >= 2


def _perturb(c: Client, dictionary: str, entry: int, mode: int, **kw: object) -> pp.PerturbResponse:
    iv = pp.Intervention(chunk=pp.ChunkRef(dictionary_id=dictionary, entry_id=entry), mode=mode,
                         positions=kw.pop("positions", pp.Positions(indices=[-1])),
                         alpha=kw.pop("alpha", 0.0))  # fmt: skip
    request = pp.PerturbRequest(model={"name": "dp-lm"}, input=dp.DetectInput(text=TRAIN[0]),
                                interventions=[iv], **kw)  # fmt: skip
    return c.perturb(request)


def test_perturb_reports_the_change_and_only_where_asked(setup: tuple) -> None:
    c, pa, _ = setup
    activated = _perturb(c, pa, 0, pp.INTERVENTION_MODE_ACTIVATE, top_k=5)
    assert activated.applied == 1 and activated.kl_divergence > 0
    assert [t.token_id for t in activated.top_before] != [] and len(activated.top_after) == 5
    before = {t.token_id: t.logprob for t in activated.top_before}
    again = _perturb(c, pa, 0, pp.INTERVENTION_MODE_ACTIVATE, top_k=5)
    assert {t.token_id: t.logprob for t in again.top_before} == before  # deterministic
    inhibited = _perturb(c, pa, 0, pp.INTERVENTION_MODE_INHIBIT)
    assert inhibited.kl_divergence > 0
    nothing = _perturb(c, pa, 0, pp.INTERVENTION_MODE_ADD, alpha=0.0)
    assert nothing.kl_divergence == pytest.approx(0.0, abs=1e-6)
    pushed = _perturb(c, pa, 0, pp.INTERVENTION_MODE_ADD, alpha=8.0)
    assert pushed.kl_divergence > 0


def test_perturbation_errors(setup: tuple) -> None:
    c, pa, _ = setup
    cases = [
        ({"alpha": float("nan")}, pp.INTERVENTION_MODE_ADD, 0, "alpha"),
        ({"positions": pp.Positions(indices=[999])}, pp.INTERVENTION_MODE_ACTIVATE, 0,
         "indices[0]"),
        ({"positions": pp.Positions()}, pp.INTERVENTION_MODE_ACTIVATE, 0, "positions"),
        ({}, pp.INTERVENTION_MODE_UNSPECIFIED, 0, "mode"),
        ({}, pp.INTERVENTION_MODE_ACTIVATE, 7, "entry_id"),
        ({"target_tokens": ["a whole phrase of words"]}, pp.INTERVENTION_MODE_ACTIVATE, 0,
         "target_tokens[0]"),
    ]  # fmt: skip
    for kw, mode, entry, where in cases:
        e = _error(_perturb, c, pa, entry, mode, **kw)
        assert e.code is grpc.StatusCode.INVALID_ARGUMENT, (where, e)
        assert any(where in f for f, _ in e.field_violations), (where, e.field_violations)
    wrong_width = pp.Intervention(
        vector=common_pb2.Tensor(dtype=common_pb2.DTYPE_FLOAT32, shape=[3],
                                 data=np.ones(3, np.float32).tobytes()),
        mode=pp.INTERVENTION_MODE_ADD, hook_point=HOOK, alpha=1.0,
        positions=pp.Positions(indices=[0]))  # fmt: skip
    request = pp.PerturbRequest(model={"name": "dp-lm"}, input=dp.DetectInput(text="x"),
                                interventions=[wrong_width])  # fmt: skip
    e = _error(c.perturb, request)
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT and "32 wide" in e.message
    other_hook = pp.Intervention(chunk=pp.ChunkRef(dictionary_id=pa, entry_id=0),
                                 mode=pp.INTERVENTION_MODE_ACTIVATE,
                                 hook_point="blocks.0.resid_post",
                                 positions=pp.Positions(indices=[0]))  # fmt: skip
    request = pp.PerturbRequest(model={"name": "dp-lm"}, input=dp.DetectInput(text="x"),
                                interventions=[other_hook])  # fmt: skip
    e = _error(c.perturb, request)
    assert e.code is grpc.StatusCode.FAILED_PRECONDITION and "allow_other_hook_point" in e.message
    other_hook.allow_other_hook_point = True
    request = pp.PerturbRequest(model={"name": "dp-lm"}, input=dp.DetectInput(text="x"),
                                interventions=[other_hook])  # fmt: skip
    assert c.perturb(request).applied == 1


def test_concurrent_perturbations_equal_the_same_requests_alone(setup: tuple) -> None:
    c, pa, _ = setup
    variants = [
        (0, pp.INTERVENTION_MODE_ACTIVATE, 0.0), (1, pp.INTERVENTION_MODE_ACTIVATE, 0.0),
        (0, pp.INTERVENTION_MODE_INHIBIT, 0.0), (1, pp.INTERVENTION_MODE_ADD, 5.0),
    ] * 3  # fmt: skip
    alone = [_perturb(c, pa, e, m, alpha=a, top_k=3) for e, m, a in variants]
    with ThreadPoolExecutor(8) as pool:
        together = list(
            pool.map(lambda v: _perturb(c, pa, v[0], v[1], alpha=v[2], top_k=3), variants)
        )
    for a, b in zip(alone, together, strict=True):
        assert a.top_after == b.top_after and a.kl_divergence == b.kl_divergence
    assert len({round(r.kl_divergence, 6) for r in alone}) >= 3  # the variants really differ


def _generate(c: Client, pa: str, **kw: object) -> dict[int, pp.GenerateResponse]:
    request = pp.GenerateRequest(
        model={"name": "dp-lm"},
        prompt=dp.DetectInput(text="On day 9 the"),
        sampling=pp.SamplingParams(max_new_tokens=8, temperature=0.8, top_k=50, seed=7),
        **kw,
    )  # type: ignore[arg-type]
    done = {}
    for message in c.perturbation.Generate(request, timeout=60):
        if message.done:
            done[message.arm] = message
    return done


def test_generate_control_arm_uses_the_same_seed(setup: tuple) -> None:
    c, pa, _ = setup
    graft = pp.Intervention(chunk=pp.ChunkRef(dictionary_id=pa, entry_id=0),
                            mode=pp.INTERVENTION_MODE_ADD, alpha=30.0,
                            positions=pp.Positions(all_prompt=True, generated=True))  # fmt: skip
    first = _generate(c, pa, interventions=[graft], control=True)
    second = _generate(c, pa, interventions=[graft], control=True)
    plain = _generate(c, pa)
    assert first[pp.ARM_CONTROL].text == second[pp.ARM_CONTROL].text == plain[pp.ARM_PERTURBED].text
    assert first[pp.ARM_PERTURBED].text == second[pp.ARM_PERTURBED].text
    assert first[pp.ARM_PERTURBED].text != first[pp.ARM_CONTROL].text


def test_generation_rules_fire_server_side(setup: tuple) -> None:
    c, pa, _ = setup
    # Force the "cat" chunk onto every generated token, then stop as soon as it is detected.
    graft = pp.Intervention(chunk=pp.ChunkRef(dictionary_id=pa, entry_id=0),
                            mode=pp.INTERVENTION_MODE_ACTIVATE,
                            positions=pp.Positions(generated=True))  # fmt: skip
    rule = pp.DetectionRule(when=pp.ChunkRef(dictionary_id=pa, entry_id=0), consecutive_tokens=2,
                            stop=True)  # fmt: skip
    request = pp.GenerateRequest(
        model={"name": "dp-lm"},
        prompt=dp.DetectInput(text="On day 9 the"),
        interventions=[graft],
        rules=[rule],
        detect_dictionary_ids=[pa],
        sampling=pp.SamplingParams(max_new_tokens=10),
    )
    steps = list(c.perturbation.Generate(request, timeout=60))
    events = [e for m in steps for e in m.rule_events]
    assert [(e.rule_index, e.action, e.step) for e in events] == [(0, "stop", 1)]
    assert steps[-1].done and steps[-1].step == 2  # stopped after two tokens, not ten
    assert all(any(m.label == "cat" for m in s.matches) for s in steps[:-1])


def test_generate_can_be_cancelled_and_the_server_carries_on(setup: tuple) -> None:
    c, pa, _ = setup
    request = pp.GenerateRequest(model={"name": "dp-lm"}, prompt=dp.DetectInput(text="On day"),
                                 sampling=pp.SamplingParams(max_new_tokens=1000))  # fmt: skip
    stream = c.perturbation.Generate(request, timeout=60)
    next(stream)
    stream.cancel()
    assert _generate(c, pa)[pp.ARM_PERTURBED].done


def test_detection_and_intervention_metrics(setup: tuple, server: ServerProcess) -> None:
    c, pa, _ = setup
    _detect(c, pa, TRAIN[1])
    _perturb(c, pa, 1, pp.INTERVENTION_MODE_INHIBIT)
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
        text = r.read().decode()
    assert f'chunkscope_detections_total{{dictionary="{pa}"}}' in text
    assert "chunkscope_detection_seconds" not in text  # was the request's latency per dictionary
    assert f'chunkscope_detection_match_seconds_count{{dictionary="{pa}"}}' in text
    assert 'chunkscope_interventions_total{mode="inhibit"}' in text
    assert "chunkscope_generated_tokens_total" in text


def _metric(server: ServerProcess, sample: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
        lines = r.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(sample + " "))


def test_match_seconds_are_observed_per_dictionary_and_batch(
    setup: tuple, server: ServerProcess
) -> None:
    """Regression: the request's whole latency was observed once per dictionary as its own."""
    c, pa, _ = setup
    count = f'chunkscope_detection_match_seconds_count{{dictionary="{pa}"}}'
    total = f'chunkscope_detection_match_seconds_sum{{dictionary="{pa}"}}'
    before = _metric(server, count), _metric(server, total)
    inputs = (TRAIN * 3)[: DETECT_CHUNK + 1]  # two chunks: DETECT_CHUNK inputs, then one
    reply = _detect(c, pa, *inputs)
    after = _metric(server, count), _metric(server, total)
    assert after[0] - before[0] == 2  # one observation per chunk the dictionary matched
    # Matching happens inside the forward span that forward_ns measures, so it cannot exceed it.
    assert 0 < after[1] - before[1] <= reply.forward_ns / 1e9


def test_generate_streams_every_step_of_every_arm(setup: tuple) -> None:
    """Regression: steps queued in the same wake-up as the arm's end were once dropped."""
    c, _, _ = setup
    request = pp.GenerateRequest(
        model={"name": "dp-lm"}, prompt={"text": "the cat"},
        sampling=pp.SamplingParams(max_new_tokens=5), control=True,
    )  # fmt: skip
    for _ in range(40):  # the loss was timing-dependent (about 1 arm in 80)
        messages = list(c.generate(request))
        for arm in (pp.ARM_PERTURBED, pp.ARM_CONTROL):
            steps = [m.step for m in messages if m.arm == arm and not m.done]
            [done] = [m for m in messages if m.arm == arm and m.done]
            assert steps == list(range(done.step)) == list(range(5))


def test_detect_takes_a_whole_multi_hook_set_in_one_forward(
    setup: tuple, server: ServerProcess
) -> None:
    """Every hook point of the tiny model, twice over (two seeds): more than the old limit of 16
    dictionaries, all captured by one forward of the input, each as it detects alone."""
    c, _, _ = setup
    hook_points = [h.name for h in c.list_hook_points("dp-lm")]
    ids = []
    for seed in (1, 2):
        stored = c.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": "dp-lm"}, hook_points=hook_points,
            corpus=pb.Corpus(texts=pb.TextList(texts=TRAIN)),
            population_averaging=pb.PopulationAveragingParams(
                concepts=[{"concept": "cat"}, {"concept": "cake"}], seed=seed, cv_folds=-1),
        ))  # fmt: skip
        ids += [d.id for d in stored]
    assert len(ids) == 2 * len(hook_points) > 16
    forwards = 'chunkscope_batch_rows_count{kind="capture"}'
    before = _metric(server, forwards)
    request = dp.DetectRequest(
        config=dp.DetectionConfig(model={"name": "dp-lm"}, dictionary_ids=ids),
        inputs=[dp.DetectInput(text=TRAIN[5])],
    )
    [together] = c.detect(request).results
    assert _metric(server, forwards) - before == 1
    counts = {(s.dictionary_id, s.label): s.count for s in together.summaries}
    assert {d for d, _ in counts} == set(ids)
    for dictionary in ids:
        [alone] = _detect(c, dictionary, TRAIN[5]).results
        assert {(s.dictionary_id, s.label): s.count for s in alone.summaries}.items() <= (
            counts.items())  # fmt: skip
    assert sum(counts.values()) > 0
    # The limit names itself; more hook points mean fewer inputs per forward, never none.
    request.config.dictionary_ids[:] = [f"dict-{i:012x}" for i in range(65)]
    e = _error(c.detect, request)
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT
    assert e.field_violations == [("config.dictionary_ids", "at most 64")]
    assert [detect_chunk(n) for n in (1, 16, 17, 30, 64, 1000)] == [16, 16, 15, 8, 4, 1]
