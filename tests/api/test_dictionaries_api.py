"""DictionaryService through the client against a real server: all four methods, storage, errors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import dictionaries_pb2 as pb
from chunkscope_client.v1 import perturbation_pb2 as pp
from support import ServerProcess

CONCEPT_TEXTS = [
    f"On day {i} the cat slept near the window while the cake cooled on the table."
    for i in range(14)
] + [f"Nothing here mentions animals or food, sentence number {i}." for i in range(6)]


def texts(items: list[str]) -> pb.Corpus:
    return pb.Corpus(texts=pb.TextList(texts=items))


def symbols(*seqs: str) -> pb.Corpus:
    return pb.Corpus(sequences=pb.SequenceList(
        sequences=[pb.SymbolSequence(symbols=list(s)) for s in seqs]))  # fmt: skip


@pytest.fixture(scope="module")
def models(client_module: Client) -> Iterator[Client]:
    client_module.register_model("dict-lm", "tiny-llama", wait=True)
    client_module.register_model("dict-rnn", "rnn-elman", wait=True)
    yield client_module
    for name in ("dict-lm", "dict-rnn"):
        client_module.unregister_model(name)


@pytest.fixture(scope="module")
def client_module(server: ServerProcess) -> Iterator[Client]:
    with Client.connect(server.address, timeout=120) as c:
        yield c


def _error(call, *args, **kwargs) -> ChunkscopeError:  # type: ignore[no-untyped-def]
    with pytest.raises(ChunkscopeError) as err:
        call(*args, **kwargs)
    return err.value


def _pa_request(**kw: object) -> pb.ExtractDictionaryRequest:
    params = pb.PopulationAveragingParams(
        concepts=[pb.ConceptWords(concept="cat"), pb.ConceptWords(concept="cake")], seed=1
    )
    base: dict[str, object] = {
        "model": {"name": "dict-lm"},
        "hook_points": ["blocks.0.resid_post", "blocks.1.resid_post"],
        "corpus": texts(CONCEPT_TEXTS),
        "heldout": texts(CONCEPT_TEXTS[10:]),
        "population_averaging": params,
    }
    base.update(kw)
    return pb.ExtractDictionaryRequest(**base)  # type: ignore[arg-type]


def test_population_averaging_streams_progress_and_stores_one_dictionary_per_hook_point(
    models: Client,
) -> None:
    progress: list[pb.ExtractionProgress] = []
    stored = models.extract_dictionary(_pa_request(), on_progress=progress.append)
    phases = [p.phase for p in progress]
    assert phases[0] == pb.EXTRACTION_PHASE_CAPTURE and pb.EXTRACTION_PHASE_FIT in phases
    assert phases[-1] == pb.EXTRACTION_PHASE_STORE
    assert progress[-1].tokens_processed > 100
    assert [d.hook_point for d in stored] == ["blocks.0.resid_post", "blocks.1.resid_post"]
    for d in stored:
        assert d.method == pb.CHUNK_METHOD_POPULATION_AVERAGING
        assert (d.model.name, d.hidden_size, d.dtype) == ("dict-lm", 32, "float32")
        assert d.model.content_hash == models.get_model("dict-lm").content_hash
        assert [e.label for e in d.entries] == ["cat", "cake"]
        assert d.corpus_fingerprint.startswith("sha256:") and d.n_inputs == len(CONCEPT_TEXTS)
        for entry in d.entries:
            assert entry.count == 14  # one "cat" / "cake" per concept text
            assert entry.n_neurons > 0 and entry.threshold > 0 and entry.tau > 0
            assert 0 <= entry.train.tpr <= 1 and entry.train.positives == 14
            assert entry.heldout.positives == 4
            assert entry.examples and "[" in entry.examples[0].context
        params = json.loads(d.parameters_json)
        assert params["n_samples"] == 5 and params["min_occurrences"] == 10

    full = models.get_dictionary(stored[0].id, include_prototypes=True)
    entry = full.entries[0]
    neurons = np.frombuffer(entry.neurons.data, dtype=np.int64)
    proto = np.frombuffer(entry.prototype.data, dtype=np.float32)
    assert neurons.size == entry.n_neurons == proto.size == entry.prototype.shape[0]
    assert np.all(np.diff(neurons) > 0) and neurons.max() < 32
    assert not models.get_dictionary(stored[0].id).entries[0].HasField("prototype")


def test_dsc_on_a_recurrent_model_finds_multi_state_chunks(models: Client) -> None:
    sequence = "EABCDEEABCDEEEABCDEABCDEE" * 30
    [d] = models.extract_dictionary(pb.ExtractDictionaryRequest(
        model={"name": "dict-rnn"}, hook_points=["rnn.hidden"], corpus=symbols(sequence),
        discrete_sequence_chunking=pb.DiscreteSequenceChunkingParams(seed=0),
    ))  # fmt: skip
    assert d.method == pb.CHUNK_METHOD_DISCRETE_SEQUENCE_CHUNKING
    assert d.n_tokens == len(sequence)
    assert d.stats["distinct_states"] >= 2 and d.n_entries >= 1
    full = models.get_dictionary(d.id, include_prototypes=True)
    for entry in full.entries:
        assert len(entry.states) >= 2
        assert list(entry.prototype.shape) == [len(entry.states), 12]


def test_both_unsupervised_variants(models: Client) -> None:
    corpus = texts(CONCEPT_TEXTS)
    [cos] = models.extract_dictionary(pb.ExtractDictionaryRequest(
        model={"name": "dict-lm"}, hook_points=["blocks.1.resid_post"], corpus=corpus,
        cosine_dictionary=pb.CosineDictionaryParams(k=6, epochs=3, seed=2, reject_below=0.2),
    ))  # fmt: skip
    assert cos.n_entries == 6 and 0 < cos.stats["mean_max_cos"] <= 1
    assert "dead_atoms" in cos.stats
    atoms = models.get_dictionary(cos.id, include_prototypes=True).entries
    vectors = np.stack([np.frombuffer(e.prototype.data, dtype=np.float32) for e in atoms])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    [den] = models.extract_dictionary(pb.ExtractDictionaryRequest(
        model={"name": "dict-lm"}, hook_points=["blocks.1.resid_post"], corpus=corpus,
        density_chunks=pb.DensityChunksParams(min_cluster_size=5, pca_dim=8),
    ))  # fmt: skip
    assert den.method == pb.CHUNK_METHOD_DENSITY_CHUNKS
    assert 0 <= den.stats["noise_fraction"] < 1
    # Identical prefixes give identical states: such clusters legitimately have radius 0.
    assert den.n_entries >= 1 and all(e.threshold >= 0 and e.count > 0 for e in den.entries)
    assigned = sum(e.count for e in den.entries)
    assert assigned == round((1 - den.stats["noise_fraction"]) * den.n_tokens)


def test_cosine_start_and_dead_atom_policy_round_trip(models: Client) -> None:
    corpus = texts(CONCEPT_TEXTS)

    def extract(**params: object) -> pb.Dictionary:
        [d] = models.extract_dictionary(pb.ExtractDictionaryRequest(
            model={"name": "dict-lm"}, hook_points=["blocks.1.resid_post"], corpus=corpus,
            cosine_dictionary=pb.CosineDictionaryParams(k=16, epochs=3, seed=1, **params),
        ))  # fmt: skip
        return models.get_dictionary(d.id)

    # Unset means the new default: k-means++ start and re-seeding.
    default = extract()
    authors = extract(init=pb.COSINE_INIT_GAUSSIAN, dead_atom_policy=pb.DEAD_ATOM_POLICY_KEEP)
    uniform = extract(
        init=pb.COSINE_INIT_RANDOM_STATES, dead_atom_policy=pb.DEAD_ATOM_POLICY_RESEED
    )
    stored = [json.loads(d.parameters_json) for d in (default, authors, uniform)]
    assert [(p["init"], p["reseed_dead"]) for p in stored] == [
        ("kmeans++", True),
        ("gaussian", False),
        ("random_states", True),
    ]
    for d in (default, authors, uniform):
        assert d.n_entries == 16
        assert d.stats["dead_atom_fraction"] == pytest.approx(d.stats["dead_atoms"] / 16)
        assert sum(e.count for e in d.entries) == d.n_tokens
        assert sum(e.count == 0 for e in d.entries) == d.stats["dead_atoms"]
    # Atoms that start on states win at least the states they start on, and three epochs at
    # lr 0.01 barely move them; the authors' random start loses most of its atoms.
    assert default.stats["dead_atoms"] <= 1
    assert authors.stats["dead_atoms"] > default.stats["dead_atoms"]

    before = {d.id for d in models.list_dictionaries()}
    for params, field, fix in (
        (pb.CosineDictionaryParams(k=4, init=99), "cosine_dictionary.init",  # type: ignore[arg-type]
         "COSINE_INIT_GAUSSIAN"),
        (pb.CosineDictionaryParams(k=4, dead_atom_policy=7),  # type: ignore[arg-type]
         "cosine_dictionary.dead_atom_policy", "DEAD_ATOM_POLICY_KEEP"),
    ):  # fmt: skip
        e = _error(models.extract_dictionary, pb.ExtractDictionaryRequest(
            model={"name": "dict-lm"}, hook_points=["blocks.1.resid_post"], corpus=corpus,
            cosine_dictionary=params,
        ))  # fmt: skip
        assert e.code is grpc.StatusCode.INVALID_ARGUMENT, e
        [(named, description)] = e.field_violations
        assert named == field and fix in description and "unknown" in description, e
    assert {d.id for d in models.list_dictionaries()} == before


def test_pa_sparse_selection_round_trips_and_is_validated(models: Client) -> None:
    def extract(**params: object) -> pb.Dictionary:
        pa_params = pb.PopulationAveragingParams(
            concepts=[pb.ConceptWords(concept="cat"), pb.ConceptWords(concept="cake")],
            seed=1, cv_folds=-1, preset=pb.PA_PRESET_AUTHORS,
            **params,  # type: ignore[arg-type]
        )  # fmt: skip
        [d] = models.extract_dictionary(_pa_request(
            hook_points=["blocks.1.resid_post"], population_averaging=pa_params))  # fmt: skip
        return models.get_dictionary(d.id)

    full = extract()
    margin = extract(sparsity_margin=0.1)
    bounded = extract(max_neurons=4)
    assert json.loads(margin.parameters_json)["sparsity_margin"] == 0.1
    assert json.loads(bounded.parameters_json)["max_neurons"] == 4
    assert json.loads(full.parameters_json)["sparsity_margin"] == 0.0
    for f, m in zip(full.entries, margin.entries, strict=True):
        # The same seed gives the same sweep; the rule picks off it (accuracy criterion).
        assert [(p.n_neurons, p.accuracy) for p in m.sweep] == [
            (p.n_neurons, p.accuracy) for p in f.sweep
        ]
        best = max(p.accuracy for p in f.sweep)
        assert f.train.accuracy == pytest.approx(best)
        near = [p.n_neurons for p in f.sweep if p.accuracy >= best - 0.1]
        assert m.n_neurons == min(near) <= f.n_neurons
        assert m.train.accuracy >= best - 0.1
    for e in bounded.entries:
        assert 1 <= e.n_neurons <= 4
    assert all(c.reason for c in bounded.infeasible_cells)

    for params, field in (
        ({"sparsity_margin": -0.5}, "population_averaging.sparsity_margin"),
        ({"sparsity_margin": float("nan")}, "population_averaging.sparsity_margin"),
        ({"sparsity_margin": 1.5}, "population_averaging.sparsity_margin"),
        ({"max_neurons": -3}, "population_averaging.max_neurons"),
    ):
        e = _error(models.extract_dictionary, _pa_request(
            population_averaging=pb.PopulationAveragingParams(
                concepts=[pb.ConceptWords(concept="cat")], **params)))  # fmt: skip
        assert e.code is grpc.StatusCode.INVALID_ARGUMENT, e
        [(named, description)] = e.field_violations
        assert named == field and "use 0" in description, e


def test_list_export_delete_import_round_trip(models: Client) -> None:
    [d, _] = models.extract_dictionary(_pa_request(description="round trip"))
    listed = {x.id: x for x in models.list_dictionaries(model="dict-lm")}
    assert d.id in listed and listed[d.id].description == "round trip"
    assert not listed[d.id].entries  # listing leaves entries out
    assert all(x.model.name == "dict-lm" for x in listed.values())
    assert not list(models.list_dictionaries(model="no-such-model"))

    archive = models.export_dictionary(d.id)
    before = models.get_dictionary(d.id, include_prototypes=True)
    models.delete_dictionary(d.id)
    assert _error(models.get_dictionary, d.id).code is grpc.StatusCode.NOT_FOUND
    assert models.import_dictionary(archive).id == d.id
    assert models.get_dictionary(d.id, include_prototypes=True) == before
    e = _error(models.import_dictionary, archive)
    assert e.code is grpc.StatusCode.ALREADY_EXISTS


def test_tampered_archives_are_refused(models: Client) -> None:
    from support import archive_members, archive_of

    [d, _] = models.extract_dictionary(_pa_request())
    archive = models.export_dictionary(d.id)
    models.delete_dictionary(d.id)

    def rebuilt(change) -> bytes:  # type: ignore[no-untyped-def]
        members = archive_members(archive)
        change(members)
        return archive_of(members)

    def flip_tensor_byte(m: dict[str, bytes]) -> None:
        blob = bytearray(m["chunks.safetensors"])
        blob[-1] ^= 1
        m["chunks.safetensors"] = bytes(blob)

    def extra_key(m: dict[str, bytes]) -> None:
        manifest = json.loads(m["manifest.json"])
        manifest["surprise"] = 1
        m["manifest.json"] = json.dumps(manifest).encode()

    def smuggle(m: dict[str, bytes]) -> None:
        m["../../evil.sh"] = b"#!/bin/sh\n"

    for change, words in ((flip_tensor_byte, "tensors_sha256"), (extra_key, "unknown keys"),
                          (smuggle, "not allowed")):  # fmt: skip
        e = _error(models.import_dictionary, rebuilt(change))
        assert e.code is grpc.StatusCode.INVALID_ARGUMENT and words in e.message, e.message
        assert e.reason == "INVALID_DICTIONARY" and e.message.startswith("data: ")
    assert _error(models.import_dictionary, b"not a tar").code is grpc.StatusCode.INVALID_ARGUMENT
    assert _error(models.import_dictionary, b"").code is grpc.StatusCode.INVALID_ARGUMENT
    assert d.id not in {x.id for x in models.list_dictionaries()}


def test_bad_extraction_requests_get_clear_errors_and_store_nothing(
    models: Client, model_root: Path, tmp_path: Path
) -> None:
    before = {d.id for d in models.list_dictionaries()}
    cases: list[tuple[pb.ExtractDictionaryRequest, grpc.StatusCode, str]] = [
        (_pa_request(model={"name": "ghost"}), grpc.StatusCode.NOT_FOUND, "ghost"),
        (_pa_request(hook_points=["blocks.9.resid_post"]), grpc.StatusCode.INVALID_ARGUMENT,
         "hook_points[0]"),
        (_pa_request(hook_points=[]), grpc.StatusCode.INVALID_ARGUMENT, "hook_points"),
        (_pa_request(corpus=texts([])), grpc.StatusCode.INVALID_ARGUMENT, "corpus"),
        (_pa_request(corpus=pb.Corpus()), grpc.StatusCode.INVALID_ARGUMENT, "corpus"),
        (_pa_request(population_averaging=pb.PopulationAveragingParams(
            concepts=[pb.ConceptWords(concept="window"), pb.ConceptWords(concept="zebra")])),
         grpc.StatusCode.INVALID_ARGUMENT, "'zebra' occurs 0 times"),
        (_pa_request(population_averaging=pb.PopulationAveragingParams(
            spans=[pb.LabelSpan(text_index=0, start=5, end=500, concept="x")])),
         grpc.StatusCode.INVALID_ARGUMENT, "spans[0]"),
        (_pa_request(population_averaging=pb.PopulationAveragingParams(
            spans=[pb.LabelSpan(text_index=99, start=0, end=3, concept="x")])),
         grpc.StatusCode.INVALID_ARGUMENT, "text_index"),
        (pb.ExtractDictionaryRequest(model={"name": "dict-lm"}, hook_points=["embed"],
                                     corpus=texts(CONCEPT_TEXTS),
                                     discrete_sequence_chunking=pb.DiscreteSequenceChunkingParams()),
         grpc.StatusCode.INVALID_ARGUMENT, "recurrent"),
        (pb.ExtractDictionaryRequest(model={"name": "dict-lm"}, hook_points=["embed"],
                                     corpus=texts(CONCEPT_TEXTS[:2]),
                                     cosine_dictionary=pb.CosineDictionaryParams(k=5000)),
         grpc.StatusCode.INVALID_ARGUMENT, "5000"),
        (pb.ExtractDictionaryRequest(model={"name": "dict-rnn"}, hook_points=["rnn.hidden"],
                                     corpus=symbols("ABXZ"),
                                     discrete_sequence_chunking=pb.DiscreteSequenceChunkingParams()),
         grpc.StatusCode.INVALID_ARGUMENT, "unknown symbols"),
        (pb.ExtractDictionaryRequest(model={"name": "dict-rnn"}, hook_points=["rnn.hidden"],
                                     corpus=texts(["ABCD"]),
                                     discrete_sequence_chunking=pb.DiscreteSequenceChunkingParams()),
         grpc.StatusCode.INVALID_ARGUMENT, "symbol sequences"),
        (_pa_request(corpus=pb.Corpus(path="/etc/passwd")), grpc.StatusCode.PERMISSION_DENIED,
         "corpus roots"),
        (_pa_request(corpus=pb.Corpus(path="missing.txt")), grpc.StatusCode.NOT_FOUND, "missing"),
        (pb.ExtractDictionaryRequest(model={"name": "dict-lm"}, hook_points=["embed"],
                                     corpus=texts(CONCEPT_TEXTS)),
         grpc.StatusCode.INVALID_ARGUMENT, "method"),
        (_pa_request(model={"name": "dict-lm", "content_hash": "sha256:" + "0" * 64}),
         grpc.StatusCode.FAILED_PRECONDITION, "content hash"),
    ]  # fmt: skip
    for request, code, words in cases:
        e = _error(models.extract_dictionary, request)
        assert e.code is code, (words, e)
        assert words in e.message or any(words in f for f, _ in e.field_violations), (words, e)
    assert {d.id for d in models.list_dictionaries()} == before
    assert models.health() == "SERVING"


def test_a_cancelled_extraction_stores_nothing(models: Client, server: ServerProcess) -> None:
    before = {d.id for d in models.list_dictionaries()}
    request = pb.ExtractDictionaryRequest(
        model={"name": "dict-lm"}, hook_points=["blocks.1.resid_post"],
        corpus=texts(CONCEPT_TEXTS * 20),
        cosine_dictionary=pb.CosineDictionaryParams(k=16, epochs=5000, batch_size=8),
    )  # fmt: skip
    stream = models.dictionaries.ExtractDictionary(request, timeout=120)
    for message in stream:
        if message.progress.phase == pb.EXTRACTION_PHASE_FIT:
            stream.cancel()
            break
    with pytest.raises(grpc.RpcError) as err:
        next(stream)
    assert err.value.code() is grpc.StatusCode.CANCELLED
    # A deadline that expires mid-job ends it the same way.
    e = _error(models.extract_dictionary, request, timeout=3)
    assert e.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert {d.id for d in models.list_dictionaries()} == before
    assert not [p for p in (server.data_dir / "dictionaries").iterdir() if p.name.startswith(".")]
    # The server is free again: a small extraction runs to the end.
    assert models.extract_dictionary(_pa_request(hook_points=["embed"]))


def test_corpus_file_sentence_context_and_step(models: Client, server: ServerProcess) -> None:
    corpora = server.data_dir / "corpora"
    corpora.mkdir(exist_ok=True)
    (corpora / "concepts.jsonl").write_text(
        "\n".join(json.dumps({"text": t}) for t in CONCEPT_TEXTS) + "\n"
    )
    (corpora / "concepts.txt").write_text("\n\n".join(CONCEPT_TEXTS) + "\n")
    base = {"hook_points": ["blocks.0.resid_post"],
            "population_averaging": pb.PopulationAveragingParams(
                concepts=[pb.ConceptWords(concept="cat")], seed=3)}  # fmt: skip
    inline = models.extract_dictionary(_pa_request(**base))[0]  # type: ignore[arg-type]
    jsonl = models.extract_dictionary(_pa_request(corpus=pb.Corpus(path="concepts.jsonl"), **base))[
        0
    ]  # type: ignore[arg-type]
    txt = models.extract_dictionary(_pa_request(corpus=pb.Corpus(path="concepts.txt"), **base))[0]  # type: ignore[arg-type]
    assert jsonl.corpus_fingerprint == txt.corpus_fingerprint == inline.corpus_fingerprint
    assert jsonl.entries[0].threshold == inline.entries[0].threshold

    # Sentence context: each sentence is its own forward pass (more BOS-free segments, same labels).
    two_sentences = [t + " Then the cat woke up." for t in CONCEPT_TEXTS]
    whole = models.extract_dictionary(_pa_request(corpus=texts(two_sentences), **base))[0]  # type: ignore[arg-type]
    split = models.extract_dictionary(
        _pa_request(corpus=texts(two_sentences), context=pb.CONTEXT_POLICY_SENTENCE, **base)
    )[0]  # type: ignore[arg-type]
    assert whole.entries[0].count == split.entries[0].count == 14 * 2 + 6
    assert whole.corpus_fingerprint != split.corpus_fingerprint
    assert whole.entries[0].threshold != split.entries[0].threshold  # context changed the states

    # step=1 labels the token before the word's last sub-token (the tiny tokenizer splits
    # " cat" into " c" + "at", so the label moves from "at" to " c").
    stepped = models.extract_dictionary(
        _pa_request(
            **{
                **base,
                "population_averaging": pb.PopulationAveragingParams(
                    concepts=[pb.ConceptWords(concept="cat")], step=1
                ),
            }
        )
    )[0]  # type: ignore[arg-type]
    contexts = [e.context for e in stepped.entries[0].examples]
    assert contexts and all("]at" in c for c in contexts[:3]), contexts


def test_dsc_refuses_wide_networks_naming_the_state_space(models: Client) -> None:
    models.register_model("dict-wide", "rnn-wide", wait=True)
    e = _error(models.extract_dictionary, pb.ExtractDictionaryRequest(
        model={"name": "dict-wide"}, hook_points=["rnn.hidden"], corpus=symbols("ABCDE" * 20),
        discrete_sequence_chunking=pb.DiscreteSequenceChunkingParams(),
    ))  # fmt: skip
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "96" in e.message and "^" in e.message
    models.unregister_model("dict-wide")


def test_pa_needs_n_samples_occurrences_and_says_so_before_capturing(models: Client) -> None:
    """min_occurrences below n_samples: the fit would draw 5 of 4 occurrences; refuse up front."""
    corpus = [f"On day {i} the cat slept near the window." for i in range(4)] + [
        f"Nothing here mentions animals, sentence {i}." for i in range(4)
    ]
    request = _pa_request(
        corpus=texts(corpus), heldout=None, hook_points=["blocks.1.resid_post"],
        population_averaging=pb.PopulationAveragingParams(
            concepts=[pb.ConceptWords(concept="cat")], n_samples=5, min_occurrences=3, seed=1),
    )  # fmt: skip
    progress = []
    with pytest.raises(ChunkscopeError) as err:
        for message in models.extract_dictionary_stream(request):
            progress.append(message)
    e = err.value
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT and e.reason == "TOO_FEW_OCCURRENCES"
    assert [f for f, _ in e.field_violations] == ["population_averaging.n_samples"], e
    assert "'cat' occurs 4 times" in e.message and "at least 5 (n_samples)" in e.message
    assert progress == []  # refused before any forward ran
    # With enough occurrences the same parameters fit: the check is not stricter than the fit.
    ok = request.__deepcopy__()
    ok.corpus.CopyFrom(texts(corpus + [f"The cat came back on day {i}." for i in range(2)]))
    [stored] = models.extract_dictionary(ok)
    assert stored.entries[0].label == "cat" and stored.entries[0].count >= 5
    models.delete_dictionary(stored.id)


def test_health_answers_while_a_large_corpus_file_is_parsed(
    models: Client, server: ServerProcess
) -> None:
    """Reading and parsing a corpus file takes seconds (here about 70 MiB of JSON lines, seconds
    of parsing on this machine); it runs on a worker thread, so the event loop keeps answering."""
    corpora = server.data_dir / "corpora"
    corpora.mkdir(exist_ok=True)
    path = corpora / "large.jsonl"
    lines = 2_000_000
    path.write_text((json.dumps({"text": "the cat sat on the mat"}) + "\n") * lines + "not json\n")
    outcome: list[ChunkscopeError] = []

    def extract() -> None:
        try:
            models.extract_dictionary(_pa_request(corpus=pb.Corpus(path="large.jsonl")))
        except ChunkscopeError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=extract)
    answered = 0
    try:
        thread.start()
        # A blocked loop would hold each check past its deadline (DEADLINE_EXCEEDED raises here).
        with Client.connect(server.address, timeout=2) as quick:
            while thread.is_alive():
                assert quick.health() == "SERVING"
                answered += 1
                time.sleep(0.1)
    finally:
        thread.join(120)
        path.unlink()
    [error] = outcome  # the last line is refused only once the whole file has been parsed
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert f"line {lines + 1}: not JSON" in error.message, error.message
    assert answered >= 5  # the checks overlapped the parse rather than racing ahead of it


def _cake_spans(n: int) -> list[pb.LabelSpan]:
    """'cake' in the first n concept texts only: its other occurrences stay unlabelled."""
    spans = []
    for i in range(n):
        start = CONCEPT_TEXTS[i].index("cake")
        spans.append(pb.LabelSpan(text_index=i, start=start, end=start + 4, concept="some-cake"))
    return spans


def _cells_request(
    concepts: list[str], hook_points: list[str], **params: object
) -> pb.ExtractDictionaryRequest:
    # "some-cake" labels 12 of the 14 cakes: at `embed` a token's state is its embedding, so the
    # two unlabelled cakes match every sample and the FPR cannot go below 2/870 > max_fpr there
    # (a planted infeasible cell); in context (blocks.1) they differ and the bound is met.
    return _pa_request(
        hook_points=hook_points,
        population_averaging=pb.PopulationAveragingParams(
            concepts=[pb.ConceptWords(concept=c) for c in concepts if c != "some-cake"],
            spans=_cake_spans(12) if "some-cake" in concepts else [], seed=1,
            preset=pb.PA_PRESET_AUTHORS,  # five samples: out-of-sample scores to check
            criterion=pb.PA_CRITERION_TPR_AT_FPR, max_fpr=0.002, **params,  # type: ignore[arg-type]
        ),
    )  # fmt: skip


def _result(models: Client, request: pb.ExtractDictionaryRequest) -> pb.ExtractionResult:
    return next(m.result for m in models.extract_dictionary_stream(request) if m.HasField("result"))


def test_pa_stores_feasible_cells_and_reports_infeasible_ones_with_their_sweep(
    models: Client,
) -> None:
    result = _result(models, _cells_request(["cat", "some-cake"], ["blocks.1.resid_post", "embed"]))
    in_context, embed = result.dictionaries
    assert [e.label for e in in_context.entries] == ["cat", "some-cake"]
    assert not in_context.infeasible_cells
    assert [(e.id, e.label) for e in embed.entries] == [(0, "cat")]
    [cell] = embed.infeasible_cells
    assert (cell.hook_point, cell.concept, cell.reason) == ("embed", "some-cake",
                                                            "NO_VALID_TOLERANCE")  # fmt: skip
    assert cell.count == 12 and "max_fpr=0.002" in cell.message
    # The sweep shows why: every tolerance's FPR is above the bound (the two unlabelled cakes).
    assert len(cell.sweep) == 40 and min(p.fpr for p in cell.sweep) >= 2 / 870
    assert [(c.hook_point, c.concept) for c in result.infeasible_cells] == [("embed", "some-cake")]
    assert embed.stats["infeasible_concepts"] == 1 and embed.stats["concepts"] == 1

    # GetDictionary shows the same cells and every entry's sweep.
    stored = models.get_dictionary(embed.id)
    assert list(stored.infeasible_cells) == list(embed.infeasible_cells)
    entry = stored.entries[0]
    assert len(entry.sweep) == 40 and entry.tau in [p.tau for p in entry.sweep]
    chosen = next(p for p in entry.sweep if p.tau == entry.tau)
    assert (chosen.n_neurons, chosen.tpr) == (entry.n_neurons, entry.train.tpr)

    # A hook point where no concept is feasible is stored without entries, with its reason.
    only_cake = _result(models, _cells_request(["some-cake"], ["blocks.1.resid_post", "embed"]))
    assert [d.n_entries for d in only_cake.dictionaries] == [1, 0]
    empty = only_cake.dictionaries[1].id
    assert [c.concept for c in models.get_dictionary(empty).infeasible_cells] == ["some-cake"]
    # It detects nothing, and an intervention on it says why instead of "entry 0 of 0..-1".
    [found] = models.detect(dp.DetectRequest(
        config=dp.DetectionConfig(model={"name": "dict-lm"}, dictionary_ids=[empty]),
        inputs=[dp.DetectInput(text=CONCEPT_TEXTS[0])])).results  # fmt: skip
    assert found.n_tokens > 0 and not found.summaries
    e = _error(models.perturb, pp.PerturbRequest(
        model={"name": "dict-lm"}, input=dp.DetectInput(text=CONCEPT_TEXTS[0]),
        interventions=[pp.Intervention(chunk=pp.ChunkRef(dictionary_id=empty, entry_id=0),
                                       mode=pp.INTERVENTION_MODE_INHIBIT,
                                       positions=pp.Positions(indices=[-1]))]))  # fmt: skip
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT and "has no entries" in e.message
    assert [f for f, _ in e.field_violations] == ["interventions[0].chunk.entry_id"]


def test_pa_all_or_nothing_stays_available_and_nothing_feasible_is_refused(
    models: Client,
) -> None:
    before = {d.id for d in models.list_dictionaries()}
    strict = _cells_request(["cat", "some-cake"], ["blocks.1.resid_post", "embed"],
                            require_all_cells=True)  # fmt: skip
    e = _error(models.extract_dictionary, strict)
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NO_VALID_TOLERANCE")
    assert "'some-cake' at embed" in e.message
    e = _error(models.extract_dictionary, _cells_request(["some-cake"], ["embed"]))
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NO_VALID_TOLERANCE")
    assert "no (hook point, concept) cell" in e.message and "max_fpr" in e.message
    e = _error(models.extract_dictionary, _cells_request(["cat"], ["embed"], cv_folds=1))
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in e.field_violations] == ["population_averaging.cv_folds"]
    assert "-1" in e.field_violations[0][1] and "2..100" in e.field_violations[0][1]
    assert {d.id for d in models.list_dictionaries()} == before


def test_pa_recommends_a_hook_point_per_concept_by_cross_validated_scores(
    models: Client,
) -> None:
    result = _result(models, _cells_request(["cat", "some-cake"], ["blocks.1.resid_post", "embed"]))
    in_context, embed = result.dictionaries
    for d in result.dictionaries:
        for entry in d.entries:
            cv, oos = entry.cross_validated, entry.out_of_sample
            assert entry.cv_folds == 5 and (cv.positives, cv.negatives) == (
                entry.train.positives, entry.train.negatives)  # fmt: skip
            # Out of sample: the five samples leave TP and the positives, FP stays.
            assert oos.positives == entry.train.positives - 5 and oos.fpr == entry.train.fpr
            assert oos.tpr * oos.positives == pytest.approx(
                entry.train.tpr * entry.train.positives - 5)  # fmt: skip
    # "cat" ends in the token "at", which only "cat" ends with here: at `embed` every occurrence
    # has the same state, so no fold misses one (CV TPR 1); in context the samples disagree.
    assert embed.entries[0].cross_validated.tpr == 1.0
    assert in_context.entries[0].cross_validated.tpr < 1.0
    cat, cake = result.recommended
    # The later hook point wins for "cat" (ties would go to the earlier one); "some-cake" is
    # feasible only in context.
    assert (cat.concept, cat.hook_point, cat.dictionary_id, cat.entry_id) == (
        "cat", "embed", embed.id, 0)  # fmt: skip
    assert cat.cross_validated == embed.entries[0].cross_validated
    assert cat.out_of_sample == embed.entries[0].out_of_sample and cat.honest_tpr == 1.0
    entry = in_context.entries[1]
    assert cake.honest_tpr == pytest.approx(
        (entry.out_of_sample.tpr + entry.cross_validated.tpr) / 2)  # fmt: skip
    assert (cake.concept, cake.hook_point, cake.dictionary_id, cake.entry_id) == (
        "some-cake", "blocks.1.resid_post", in_context.id, 1)  # fmt: skip
    # Every dictionary of the extraction carries the same recommendation, also when read back.
    for d in result.dictionaries:
        assert list(models.get_dictionary(d.id).recommended) == list(result.recommended)
    # Without cross-validation the out-of-sample scores alone recommend.
    off = _result(models, _cells_request(["cat"], ["blocks.1.resid_post", "embed"], cv_folds=-1))
    assert not off.dictionaries[0].entries[0].HasField("cross_validated")
    assert off.dictionaries[0].entries[0].cv_folds == 0
    [cat] = off.recommended
    assert cat.hook_point == "embed" and not cat.HasField("cross_validated")
    assert cat.honest_tpr == cat.out_of_sample.tpr == 1.0
