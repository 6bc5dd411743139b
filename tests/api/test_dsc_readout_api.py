"""DSC as a user reads it, through a real server and the generated client.

A 12-unit Elman network is trained on the planted-words test bed (four words separated by filler
runs, testbeds/sequences.py `planted_words`), stored as a checkpoint under the server's model
root and registered. Its DSC dictionary must label the words by their symbols without the filler,
uniquely; Detect's occurrence boundaries and state sequences must be the pure functions of
chunking/dsc.py applied to the same states; GetDictionary(include_tables) must return the
centroid table the states come from and the decoding check of the split that was asked for.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import torch
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

from chunkscope.chunking import dsc
from chunkscope.engine.recurrent import RecurrentConfig, RecurrentLM, save_checkpoint
from chunkscope.testbeds.sequences import FILLER, PLANTED_WORDS, alphabet, planted_words
from chunkscope.testbeds.train import build_model, train_rnn
from chunkscope_client import ChunkscopeError, Client
from chunkscope_client.v1 import detection_pb2 as dp
from chunkscope_client.v1 import dictionaries_pb2 as pb
from support import ServerProcess

MODEL, HOOK = "dsc-planted", "rnn.hidden"
# As tests/unit/test_dsc_planted.py trains its networks (seed 0 there finds all four words).
SEED, ITERATIONS, WINDOW, LR = 0, 200, 200, 0.02
FIELD = "discrete_sequence_chunking"


class Setup:
    def __init__(self, client: Client, model: RecurrentLM, sequence: str) -> None:
        self.client, self.model, self.sequence = client, model, sequence
        self.default: pb.Dictionary = pb.Dictionary()
        self.first_100: pb.Dictionary = pb.Dictionary()

    def hidden(self, symbols: str) -> np.ndarray:
        """The network's hidden states on `symbols`, computed here, not by the server."""
        with torch.no_grad():
            _, hidden = self.model(self.model.encode(symbols)[None])
        return hidden[0].numpy()


def _extract(c: Client, sequence: str, **params: Any) -> pb.Dictionary:
    [d] = c.extract_dictionary(pb.ExtractDictionaryRequest(
        model={"name": MODEL}, hook_points=[HOOK],
        corpus=pb.Corpus(sequences=pb.SequenceList(
            sequences=[pb.SymbolSequence(symbols=list(sequence))])),
        discrete_sequence_chunking=pb.DiscreteSequenceChunkingParams(**params),
    ))  # fmt: skip
    return d


@pytest.fixture(scope="module")
def setup(server: ServerProcess, model_root: Path) -> Iterator[Setup]:
    sequence = planted_words()
    model = build_model(RecurrentConfig("elman", alphabet(sequence), 12), seed=SEED)
    train_rnn(model, sequence, iterations=ITERATIONS, window=WINDOW, lr=LR, seed=SEED)
    model.eval()
    save_checkpoint(model, model_root / "rnn-planted")
    with Client.connect(server.address, timeout=120) as c:
        c.register_model(MODEL, "rnn-planted", dtype="float32", wait=True)
        s = Setup(c, model, sequence)
        s.default = _extract(c, sequence)
        s.first_100 = _extract(c, sequence, decode_train_steps=100)
        yield s
        c.unregister_model(MODEL)


def _get(c: Client, dictionary_id: str, **kw: bool) -> pb.Dictionary:
    return c.get_dictionary(dictionary_id, **kw)


def _detect(c: Client, dictionary_id: str, *inputs: str, **config: Any) -> dp.DetectResponse:
    return c.detect(dp.DetectRequest(
        config=dp.DetectionConfig(model={"name": MODEL}, dictionary_ids=[dictionary_id], **config),
        inputs=[dp.DetectInput(symbols=pb.SymbolSequence(symbols=list(s))) for s in inputs],
    ))  # fmt: skip


def _padded(tables: pb.DscTables) -> np.ndarray:
    """The centroid table as the fit stores it: rows padded by repeating their largest value."""
    width = max(len(n.centroids) for n in tables.neurons)
    return np.asarray(
        [list(n.centroids) + [n.centroids[-1]] * (width - len(n.centroids)) for n in tables.neurons]
    )


def _bins(tables: pb.DscTables) -> np.ndarray:
    return np.asarray([list(s.bins) for s in tables.states], dtype=np.int64)


def _error(call: Any, *args: Any, **kwargs: Any) -> ChunkscopeError:
    with pytest.raises(ChunkscopeError) as err:
        call(*args, **kwargs)
    return err.value


def test_labels_name_the_planted_words_without_the_filler_and_are_unique(setup: Setup) -> None:
    d = _get(setup.client, setup.default.id)
    labels = [e.label for e in d.entries]
    assert len(set(labels)) == len(labels)
    assert all(w in labels for w in PLANTED_WORDS), labels
    for label in labels:
        spelled = label.split("#")[0]
        # The filler is cut off both ends, unless the chunk spells fillers only.
        assert set(spelled) == {FILLER} or not (
            spelled.startswith(FILLER) or spelled.endswith(FILLER)
        ), label
    # Variants: "#2", "#3", ... in order of decreasing count after the label's first holder.
    for label in labels:
        match = re.fullmatch(r"(.*)#(\d+)", label)
        if match:
            base, k = match.group(1), int(match.group(2))
            assert k >= 2 and base in labels
            assert d.entries[labels.index(base)].count >= d.entries[labels.index(label)].count


def test_tables_are_the_fit_of_the_same_states(setup: Setup) -> None:
    """The centroid table and states equal an in-process fit on the states computed here."""
    d = _get(setup.client, setup.default.id, include_tables=True)
    tables = d.dsc_tables
    result = dsc.fit([setup.hidden(setup.sequence)], dsc.DSCParams())
    # Float32 centroids carried as doubles: exact.
    assert [list(n.centroids) for n in tables.neurons] == dsc.centroid_table(result.centroids)
    np.testing.assert_array_equal(_bins(tables), result.state_bins)
    assert [s.count for s in tables.states] == result.state_counts.tolist()
    assert tables.null_state == result.null_state
    assert [tuple(e.states) for e in d.entries] == [c.states for c in result.chunks]
    assert [e.label for e in d.entries] == dsc.chunk_labels(result, [list(setup.sequence)])
    # The stored decoding check: the default split is the first 30 % of the steps.
    n = len(setup.sequence)
    train_steps = int(0.3 * n)
    accuracy, n_test = dsc.decode_accuracy(result.sequences[0], list(setup.sequence), train_steps)
    assert (tables.decode_train_steps, tables.decode_test_steps) == (train_steps, n_test)
    assert tables.decode_accuracy == pytest.approx(accuracy, abs=1e-12)
    assert d.stats["decode_accuracy"] == tables.decode_accuracy
    assert d.stats["decode_train_steps"] == train_steps
    # Default responses stay small: no tables unless asked.
    assert not _get(setup.client, setup.default.id).HasField("dsc_tables")


def test_detect_reports_occurrences_and_states_as_the_pure_functions_find_them(
    setup: Setup,
) -> None:
    c = setup.client
    tables = _get(c, setup.default.id, include_tables=True).dsc_tables
    entries = _get(c, setup.default.id).entries
    chunks = [tuple(e.states) for e in entries]
    labels = [e.label for e in entries]
    fresh = planted_words(n_words=60, seed=7)
    reply = _detect(c, setup.default.id, fresh, setup.sequence, include_state_sequences=True)
    for symbols, result in zip((fresh, setup.sequence), reply.results, strict=True):
        # The state of every step: assign_states on the states computed here, with the tables.
        expected = dsc.assign_states(setup.hidden(symbols), _padded(tables), _bins(tables))
        [seq] = result.state_sequences
        assert (seq.dictionary_id, seq.start) == (setup.default.id, 0)
        np.testing.assert_array_equal(seq.state_ids, expected)
        # Boundaries: find_occurrences on those states.
        got = [(o.entry_id, o.start, o.end, o.label) for o in result.occurrences]
        want = [(o.chunk, o.start, o.end, labels[o.chunk])
                for o in dsc.find_occurrences(expected, chunks)]  # fmt: skip
        assert got == want and got
        # Every step of an occurrence carries its entry's match, and only those steps do.
        covered = {(o.entry_id, t) for o in result.occurrences for t in range(o.start, o.end)}
        matched = {(m.entry_id, t.position) for t in result.tokens for m in t.matches}
        assert covered == matched
    # On the training sequence the parse is the fit's: each planted word is read as itself at
    # most of its positions (tests/unit/test_dsc_planted.py: at least 40 %, measured 54-82 %).
    training = reply.results[1]
    for word in PLANTED_WORDS:
        positions = [m.start() for m in re.finditer(word, setup.sequence)]
        read = {
            p for o in training.occurrences for p in positions
            if o.label.split("#")[0] == word and o.start <= p and p + len(word) <= o.end
        }  # fmt: skip
        assert len(read) >= 0.4 * len(positions), (word, len(read), len(positions))
    # Without the flag no state sequences; with summary_only no occurrences either.
    plain = _detect(c, setup.default.id, fresh).results[0]
    assert not plain.state_sequences and plain.occurrences
    summary = _detect(c, setup.default.id, fresh, summary_only=True).results[0]
    assert not summary.occurrences and not summary.tokens
    # labels= restricts the occurrences to the entries asked for.
    only = _detect(c, setup.default.id, fresh, labels=[PLANTED_WORDS[0]]).results[0]
    assert only.occurrences
    assert {o.label for o in only.occurrences} == {PLANTED_WORDS[0]}


def test_stream_detect_reports_the_occurrences_that_reach_each_message(setup: Setup) -> None:
    """A continued input's parse covers the whole window: a message reports the occurrences of
    the input so far that end in it (one may start in an earlier message) and its own states."""
    c = setup.client
    config = dp.DetectionConfig(model={"name": MODEL}, dictionary_ids=[setup.default.id],
                                include_state_sequences=True)  # fmt: skip
    text = planted_words(n_words=12, seed=3)
    pieces = [text[:17], text[17:40], text[40:]]
    messages = [dp.StreamDetectRequest(config=config)] + [
        dp.StreamDetectRequest(input=dp.DetectInput(symbols=pb.SymbolSequence(symbols=list(p))),
                               continues=i > 0)
        for i, p in enumerate(pieces)
    ]  # fmt: skip
    replies = [r.result for r in c.detection.StreamDetect(iter(messages), timeout=60)]
    spanning = 0
    for i, result in enumerate(replies):
        prefix = "".join(pieces[: i + 1])
        begin = len(prefix) - len(pieces[i])
        [whole] = c.detect(dp.DetectRequest(
            config=config, inputs=[dp.DetectInput(symbols=pb.SymbolSequence(symbols=list(prefix)))],
        )).results  # fmt: skip
        want = [(o.entry_id, o.start, o.end) for o in whole.occurrences if o.end > begin]
        assert [(o.entry_id, o.start, o.end) for o in result.occurrences] == want
        spanning += sum(o.start < begin for o in result.occurrences)
        [seq] = result.state_sequences
        assert seq.start == begin
        assert list(seq.state_ids) == list(whole.state_sequences[0].state_ids)[begin:]
    assert sum(len(r.occurrences) for r in replies) >= 3


def test_a_first_steps_decode_split_is_stored_and_reported(setup: Setup) -> None:
    d = _get(setup.client, setup.first_100.id, include_tables=True)
    default = _get(setup.client, setup.default.id, include_tables=True)
    n = len(setup.sequence)
    assert json.loads(d.parameters_json)["decode_train_steps"] == 100
    assert (d.dsc_tables.decode_train_steps, d.dsc_tables.decode_test_steps) == (100, n - 100)
    assert d.stats["decode_train_steps"] == 100 and d.stats["decode_test_steps"] == n - 100
    # The same states (the split changes nothing else), so the accuracy is decode_accuracy's.
    assert [e.states for e in d.entries] == [e.states for e in default.entries]
    [seq] = _detect(setup.client, d.id, setup.sequence,
                    include_state_sequences=True).results[0].state_sequences  # fmt: skip
    accuracy, _ = dsc.decode_accuracy(np.asarray(seq.state_ids), list(setup.sequence), 100)
    assert d.dsc_tables.decode_accuracy == pytest.approx(accuracy, abs=1e-12)
    # 100 steps see fewer states than 30 % of the steps: a different (measured: lower) accuracy.
    assert d.dsc_tables.decode_accuracy != default.dsc_tables.decode_accuracy


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"decode_train_fraction": 1.5}, "decode_train_fraction"),
        ({"decode_train_fraction": -0.2}, "decode_train_fraction"),
        ({"decode_train_fraction": float("nan")}, "decode_train_fraction"),
        ({"decode_train_steps": 40}, "decode_train_steps"),  # all 40 steps: none left to score
        ({"n_bins": 1}, "n_bins"),
    ],
)
def test_bad_decode_splits_are_refused_naming_the_field(
    setup: Setup, params: dict[str, Any], field: str
) -> None:
    e = _error(_extract, setup.client, setup.sequence[:40], **params)
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT
    assert e.field_violations[0][0] == f"{FIELD}.{field}"
    assert field in e.field_violations[0][1]


def test_a_split_that_max_tokens_leaves_too_long_is_refused_naming_the_field(
    setup: Setup,
) -> None:
    request = pb.ExtractDictionaryRequest(
        model={"name": MODEL}, hook_points=[HOOK], max_tokens=30,
        corpus=pb.Corpus(sequences=pb.SequenceList(
            sequences=[pb.SymbolSequence(symbols=list(setup.sequence[:200]))])),
        discrete_sequence_chunking=pb.DiscreteSequenceChunkingParams(decode_train_steps=50),
    )  # fmt: skip
    e = _error(setup.client.extract_dictionary, request)
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT
    assert e.field_violations[0][0] == f"{FIELD}.decode_train_steps"
    assert "30 steps" in e.field_violations[0][1]


def _as_stored_before(archive: bytes, new_id: str) -> bytes:
    """The archive as a DSC dictionary stored before the decode split and filler-stripped labels
    existed: no split parameters, no decode_train_steps stat, no label_offsets tensor (under
    another id, so both can be stored)."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as src:
        files = {info.name: src.extractfile(info).read() for info in src}  # type: ignore[union-attr]
    tensors = load_tensors(files["chunks.safetensors"])
    assert tensors.pop("label_offsets").shape == (
        len(json.loads(files["manifest.json"])["entries"]),
    )
    files["chunks.safetensors"] = save_tensors(tensors)
    manifest = json.loads(files["manifest.json"])
    for key in ("decode_train_fraction", "decode_train_steps"):
        del manifest["parameters"][key]
    del manifest["stats"]["decode_train_steps"]
    manifest["id"] = new_id
    manifest["tensors_sha256"] = "sha256:" + hashlib.sha256(files["chunks.safetensors"]).hexdigest()
    files["manifest.json"] = json.dumps(manifest, indent=1, sort_keys=True).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_dictionaries_stored_before_the_split_still_load_and_detect(setup: Setup) -> None:
    c = setup.client
    new_id = "dict-00000000d5c0"
    old = c.import_dictionary(_as_stored_before(c.export_dictionary(setup.default.id), new_id))
    try:
        assert old.id == new_id
        got = _get(c, new_id, include_tables=True)
        assert "decode_train_steps" not in json.loads(got.parameters_json)
        want = _get(c, setup.default.id, include_tables=True).dsc_tables
        # The split is read back from the steps and the test steps.
        assert got.dsc_tables == want
        fresh = planted_words(n_words=20, seed=5)
        before, now = (
            _detect(c, d, fresh, include_state_sequences=True).results[0]
            for d in (new_id, setup.default.id)
        )
        assert [(o.entry_id, o.start, o.end) for o in before.occurrences] == [
            (o.entry_id, o.start, o.end) for o in now.occurrences
        ]
        assert before.occurrences
        assert list(before.state_sequences[0].state_ids) == list(now.state_sequences[0].state_ids)
    finally:
        c.delete_dictionary(new_id)
