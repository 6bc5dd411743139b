"""Discrete Sequence Chunking (DSC): small recurrent networks, chunks as recurring state sequences.

Everything DSC-specific outside chunking/dsc.py: the request's parameters, the check that the
model is recurrent and small enough, the fit (trajectories -> chunks labelled by the symbols they
stand for), the stored layout, detection (the greedy parse of the discretised state sequence:
every step a chunk spans matches it; `sequential`, so streams and Generate pass the whole context)
and steering (graft the first state its label names: the chunk's first state after the leading
fillers that the label leaves out).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from chunkscope.chunking import dsc
from chunkscope.corpus import Inputs
from chunkscope.engine.capture import Captured
from chunkscope.engine.loading import LoadedModel
from chunkscope.engine.methods.base import (
    N_EXAMPLES,
    Detection,
    Fit,
    FitOutput,
    Graft,
    Layout,
    Method,
    ProgressFn,
    Span,
    center_of,
    examples,
    invalid_dictionary,
    known_fields,
    or_default,
)
from chunkscope.engine.methods.base import (
    unit as unit_vector,
)
from chunkscope.errors import InvalidArgument
from chunkscope_client.v1 import dictionaries_pb2 as pb


def fit_discrete_sequence_chunking(
    model: LoadedModel, params: dsc.DSCParams, hook_point: str, train: Captured,
    progress: ProgressFn,
) -> FitOutput:  # fmt: skip
    states = train.states(hook_point)
    trajectories = [
        states[start : start + n] for start, n in zip(train.row_starts, train.lengths, strict=True)
    ]
    n_steps = sum(int(n) for n in train.lengths)
    if n_steps < 2:
        raise InvalidArgument.field(
            "corpus",
            f"discrete sequence chunking needs at least 2 time steps in all (after max_tokens); "
            f"got {n_steps}: send longer sequences or raise max_tokens",
        )
    # Checked before the corpus was cut at max_tokens (validate); again on what was captured.
    train_steps = _decode_split(params, n_steps)
    progress(0, 1)
    result = dsc.fit(trajectories, params)
    progress(1, 1)
    symbols = [[model.symbols[int(t)] for t in ids] for ids in train.token_ids]
    all_states = np.concatenate(result.sequences)
    all_symbols = [s for seq in symbols for s in seq]
    # Labels: the input symbols each chunk most often spans, without the filler's runs at either
    # end, unique ("#2", "#3" for variants); see dsc.chunk_labels.
    labels = dsc.chunk_labels(result, symbols)
    label_offsets = dsc.label_offsets(result, symbols)
    first_rows: list[list[int]] = [[] for _ in result.chunks]
    states_of = [c.states for c in result.chunks]
    for seq_index, parse in enumerate(result.parses):
        for found in dsc.occurrences(parse, states_of):
            if len(first_rows[found.chunk]) < N_EXAMPLES:
                first_rows[found.chunk].append(train.row_starts[seq_index] + found.start)
    entries: list[dict[str, Any]] = []
    for i, chunk in enumerate(result.chunks):
        rows = np.asarray(first_rows[i], dtype=np.int64)
        entries.append({
            "id": i, "label": labels[i], "count": int(chunk.count), "states": list(chunk.states),
            "source": chunk.source,
            "examples": examples(model, train, rows, np.zeros(rows.size)),
        })  # fmt: skip
    accuracy, n_test = dsc.decode_accuracy(all_states, all_symbols, train_steps)
    offsets = np.concatenate([[0], np.cumsum([len(c.states) for c in result.chunks])])
    tensors: dict[str, np.ndarray] = {
        "centroids": result.centroids.astype(np.float32),
        "state_bins": result.state_bins.astype(np.int64),
        "state_vectors": result.state_vectors.astype(np.float32),
        "state_counts": result.state_counts.astype(np.int64),
        "chunk_states": np.asarray([s for c in result.chunks for s in c.states], dtype=np.int64),
        "chunk_offsets": offsets.astype(np.int64),
        "label_offsets": label_offsets,
    }
    stats = {
        "distinct_states": float(result.state_bins.shape[0]),
        "null_state": float(result.null_state),
        "decode_accuracy": accuracy,
        "decode_train_steps": float(train_steps),
        "decode_test_steps": float(n_test),
        "parse_length": float(sum(len(p) for p in result.parses)),
        "steps": float(all_states.size),
    }
    tensors["center"] = center_of(states, train)
    return FitOutput(entries, tensors, stats)


NAME = "discrete_sequence_chunking"


# The request's fields (DiscreteSequenceChunkingParams); DSCParams' ValueErrors start with one.
_REQUEST_FIELDS = (
    "n_bins", "n_iter", "n_new_chunks", "min_frequency", "overlap_jaccard", "seed",
    "decode_train_fraction", "decode_train_steps",
)  # fmt: skip


def _invalid(exc: ValueError) -> InvalidArgument:
    """A DSCParams ValueError ("<field>: ...") as INVALID_ARGUMENT naming the request's field."""
    message = str(exc)
    head = message.split(":", 1)[0]
    field = f"{NAME}.{head}" if head in _REQUEST_FIELDS else NAME
    return InvalidArgument.field(field, message)


def _decode_split(params: dsc.DSCParams, n_steps: int) -> int:
    """dsc.decode_train_steps, its ValueError naming the request's field."""
    try:
        return dsc.decode_train_steps(params, n_steps)
    except ValueError as exc:
        raise _invalid(exc) from None


@dataclass(frozen=True)
class DSCDetector:
    centroids: np.ndarray
    state_bins: np.ndarray
    chunks: list[tuple[int, ...]]  # each chunk's state ids


class DiscreteSequenceChunking(Method[dsc.DSCParams, DSCDetector]):
    name = NAME
    proto = pb.CHUNK_METHOD_DISCRETE_SEQUENCE_CHUNKING
    # The scores are the 0/1 matches: 1 on every step a chunk spans.
    higher_is_better = True
    sequential = True
    layout = Layout(
        # label_offsets: added with filler-stripped labels; without it the graft is state 0.
        optional={"label_offsets": ("i", 1)},
        tensors={
            "centroids": ("f", 2), "state_bins": ("i", 2), "state_vectors": ("f", 2),
            "state_counts": ("i", 1), "chunk_states": ("i", 1), "chunk_offsets": ("i", 1),
            "center": ("f", 1),
        },
        width=("state_vectors",),
        offsets=(("chunk_offsets", ("chunk_states",)),),
    )  # fmt: skip

    def from_request(self, s: Any) -> dsc.DSCParams:
        return dsc.DSCParams(
            n_bins=s.n_bins or 5, n_iter=s.n_iter or 60, n_new_chunks=s.n_new_chunks or 10,
            min_frequency=s.min_frequency or 5, overlap_jaccard=or_default(s.overlap_jaccard, 0.8),
            seed=s.seed, decode_train_fraction=or_default(s.decode_train_fraction, 0.3),
            decode_train_steps=s.decode_train_steps,
        )  # fmt: skip

    def parameters(self, params: dsc.DSCParams) -> dict[str, Any]:
        return asdict(params)

    def load_parameters(self, stored: dict[str, Any]) -> dsc.DSCParams:
        return dsc.DSCParams(**known_fields(dsc.DSCParams, stored))

    def validate(self, params: dsc.DSCParams, model: LoadedModel, corpus: Inputs) -> None:
        if not model.is_recurrent:
            raise InvalidArgument.field(
                self.name, "DSC is for small recurrent networks; for language models use "
                "cosine_dictionary or density_chunks")  # fmt: skip
        try:
            params.validate(model.hidden_size)
        except ValueError as exc:
            raise _invalid(exc) from None
        # The decode split against the corpus's steps before any capture (max_tokens may cut
        # them further: the fit checks again).
        n_steps = sum(len(seq) for seq in corpus.sequences)
        if n_steps >= 2:
            _decode_split(params, n_steps)

    def prepare(
        self, params: dsc.DSCParams, model: LoadedModel, corpus: Inputs,
        heldout_inputs: Inputs | None, train: Captured, heldout: Captured | None,
    ) -> Fit:  # fmt: skip
        return lambda hp, progress: fit_discrete_sequence_chunking(
            model, params, hp, train, progress
        )

    def check_tensors(self, tensors: dict[str, np.ndarray], hidden_size: int) -> None:
        s = tensors["state_vectors"].shape[0]
        if tensors["state_bins"].shape[0] != s or tensors["state_counts"].shape[0] != s:
            raise invalid_dictionary(
                "state_bins, state_vectors and state_counts disagree on the number of states"
            )
        cs = tensors["chunk_states"]
        if cs.size and (cs.min() < 0 or cs.max() >= s):
            raise invalid_dictionary("tensor chunk_states refers to states that do not exist")
        if "label_offsets" in tensors:
            lengths = np.diff(tensors["chunk_offsets"])
            lo = tensors["label_offsets"]
            if lo.shape != lengths.shape or np.any(lo < 0) or np.any(lo >= lengths):
                raise invalid_dictionary(
                    "tensor label_offsets must hold one offset per entry within its states"
                )

    def detector(self, manifest: dict[str, Any], tensors: dict[str, np.ndarray]) -> DSCDetector:
        offsets, flat = tensors["chunk_offsets"], tensors["chunk_states"]
        chunks = [tuple(int(s) for s in flat[a:b]) for a, b in itertools.pairwise(offsets.tolist())]
        return DSCDetector(tensors["centroids"], tensors["state_bins"], chunks)

    def thresholds(self, state: DSCDetector, n_entries: int) -> np.ndarray:
        return np.ones(n_entries)

    def detect(self, state: DSCDetector, states: np.ndarray) -> Detection:
        ids = dsc.assign_states(states, state.centroids, state.state_bins)
        matches = np.zeros((ids.shape[0], len(state.chunks)), dtype=bool)
        # A state never seen during extraction breaks the sequence (dsc.find_occurrences).
        found = dsc.find_occurrences(ids, state.chunks)
        for o in found:
            matches[o.start : o.end, o.chunk] = True
        spans = tuple(Span(o.chunk, o.start, o.end) for o in found)
        return Detection(matches, matches.astype(np.float32), True, spans, ids)

    def graft(self, t: dict[str, np.ndarray], entry: int, center: np.ndarray) -> Graft:
        # The first state the label names (leading fillers skipped; older dictionaries: state 0).
        skip = int(t["label_offsets"][entry]) if "label_offsets" in t else 0
        first = int(t["chunk_states"][t["chunk_offsets"][entry] + skip])
        vector = t["state_vectors"][first]
        return Graft(unit_vector(vector - center), values=vector)

    def prototype(self, entry: dict[str, Any], t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"prototype": t["state_vectors"][np.asarray(entry["states"])]}


@dataclass(frozen=True)
class Tables:
    """What a DSC dictionary's state ids mean (GetDictionary's DscTables)."""

    neurons: list[list[float]]  # per neuron, its bin centroids (bin id = index)
    state_bins: list[list[int]]  # per state id, each neuron's bin id
    state_counts: list[int]  # per state id, its training steps
    null_state: int
    decode_accuracy: float
    decode_train_steps: int
    decode_test_steps: int


def tables(manifest: dict[str, Any], t: dict[str, np.ndarray]) -> Tables:
    """The centroid table, the states and the decoding check of a stored DSC dictionary."""
    stats = manifest.get("stats", {})
    n_test = int(stats.get("decode_test_steps", 0))
    # Dictionaries stored before the split was a parameter have no "decode_train_steps": their
    # table was fitted on every step the test part left.
    n_train = int(stats.get("decode_train_steps", max(0, int(stats.get("steps", 0)) - n_test)))
    return Tables(
        neurons=dsc.centroid_table(t["centroids"]),
        state_bins=t["state_bins"].astype(np.int64).tolist(),
        state_counts=t["state_counts"].astype(np.int64).tolist(),
        null_state=int(stats.get("null_state", -1)),
        decode_accuracy=float(stats.get("decode_accuracy", 0.0)),
        decode_train_steps=n_train,
        decode_test_steps=n_test,
    )
