"""What every chunking method provides, in one interface (`Method`), and what they share.

A method is one module of this package holding one `Method` subclass, registered in
`registry.py`. Everything that differs between methods is here and nowhere else: its request
parameters (parsed from the proto and validated, with violations naming the request's fields),
its checks against the model, its fit (captured states -> manifest entries and tensors), its
manifest parameters (typed, written and read back), its tensor layout (checked by the store on
every save, load and import), its detection rule, the steering vectors of its entries and the
prototype GetDictionary returns. The science itself stays in chunking/ (pure functions).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from chunkscope.chunking import pa
from chunkscope.corpus import Inputs
from chunkscope.engine.capture import Captured, context_window, decode_token
from chunkscope.engine.loading import LoadedModel
from chunkscope.errors import FailedPrecondition
from chunkscope_client.v1 import dictionaries_pb2 as pb

N_EXAMPLES = 5
ProgressFn = Callable[[int, int], None]
P = TypeVar("P")
S = TypeVar("S")


@dataclass
class FitOutput:
    entries: list[dict[str, Any]]
    tensors: dict[str, np.ndarray]
    stats: dict[str, float]
    # PA: the concepts that yielded no entry at this hook point, with reason and sweep.
    infeasible: list[dict[str, Any]] = field(default_factory=list)


Fit = Callable[[str, ProgressFn], FitOutput]


@dataclass(frozen=True)
class Span:
    """Rows [start, end) of a Detection that one occurrence of entry `entry` covers."""

    entry: int
    start: int
    end: int  # exclusive


@dataclass(frozen=True)
class Detection:
    matches: np.ndarray  # bool [T, E]
    scores: np.ndarray  # float32 [T, E]
    higher_is_better: bool
    # Sequence methods (DSC): each occurrence of an entry, in row order, and the discrete state
    # of every row (-1: unseen in the fit). None for methods that match rows one by one.
    spans: tuple[Span, ...] | None = None
    states: np.ndarray | None = None  # int64 [T]

    def since(self, start: int) -> Detection:
        """The rows from position `start` on (negative: from the end). Spans that end after it
        are kept, shifted with the rows (one that began before it starts below 0)."""
        first = start if start >= 0 else max(0, self.matches.shape[0] + start)
        spans = (
            None
            if self.spans is None
            else tuple(
                Span(s.entry, s.start - first, s.end - first) for s in self.spans if s.end > first
            )
        )
        states = None if self.states is None else self.states[first:]
        return Detection(
            self.matches[first:], self.scores[first:], self.higher_is_better, spans, states
        )


@dataclass(frozen=True)
class Graft:
    """What steering with one entry needs (engine/chunks.py turns it into an Action)."""

    direction: np.ndarray  # unit vector [d]
    values: np.ndarray  # activate: values for `neurons`, or a full [d] vector
    neurons: np.ndarray | None = None
    scale_to_norm: bool = False


@dataclass(frozen=True)
class Layout:
    """The tensors a method stores: name -> (dtype kind, ndim), plus the shape rules the store
    checks generically. Every method stores `center` [hidden_size]."""

    tensors: dict[str, tuple[str, int]]
    entry_rows: tuple[str, ...] = ()  # tensors with one row per entry
    width: tuple[str, ...] = ()  # 2-D tensors whose second axis is hidden_size
    # (offsets tensor, the flat tensors it cuts into one slice per entry)
    offsets: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Tensors a dictionary may lack (added after dictionaries were stored without them): checked
    # like the others when present.
    optional: dict[str, tuple[str, int]] = field(default_factory=dict)


def invalid_dictionary(message: str) -> FailedPrecondition:
    """A stored or imported dictionary that fails its method's checks."""
    return FailedPrecondition(message, reason="INVALID_DICTIONARY")


class Method(ABC, Generic[P, S]):
    """One chunking method. P: its typed parameters; S: what a detector holds for it."""

    name: ClassVar[str]  # the manifest's `method`, and the request's oneof field
    proto: ClassVar[pb.ChunkMethod.ValueType]  # its ChunkMethod enum value
    layout: ClassVar[Layout]
    # Scores: higher is better (cosine) or lower is better (distances).
    higher_is_better: ClassVar[bool] = False
    # Matches depend on the states before (DSC's parse): detection sees the whole context.
    sequential: ClassVar[bool] = False

    # ----- parameters -----------------------------------------------------------------------

    @abstractmethod
    def from_request(self, message: Any) -> P:
        """The request's parameters message -> typed parameters with defaults filled in;
        InvalidArgument naming `<name>.<field>` for values no model could accept."""

    @abstractmethod
    def parameters(self, params: P) -> dict[str, Any]:
        """The parameters as stored in the manifest (JSON-able)."""

    @abstractmethod
    def load_parameters(self, stored: dict[str, Any]) -> P:
        """A manifest's parameters back as typed parameters (`parameters` inverted)."""

    def validate(self, params: P, model: LoadedModel, corpus: Inputs) -> None:
        """Checks against the model and corpus before any capture; ValueError becomes
        INVALID_ARGUMENT on the method's field, or raise InvalidArgument naming a field."""

    # ----- fit ------------------------------------------------------------------------------

    @abstractmethod
    def prepare(
        self, params: P, model: LoadedModel, corpus: Inputs, heldout_inputs: Inputs | None,
        train: Captured, heldout: Captured | None,
    ) -> Fit:  # fmt: skip
        """After capture: the fit of one hook point (hook point, progress) -> FitOutput."""

    def finish(
        self, params: P, manifests: list[dict[str, Any]], outputs: list[tuple[str, FitOutput]]
    ) -> None:
        """After every hook point is fitted, before storing: results across the job's manifests."""

    # ----- stored dictionaries ------------------------------------------------------------

    def check_tensors(self, tensors: dict[str, np.ndarray], hidden_size: int) -> None:
        """Checks beyond `layout` (raise invalid_dictionary)."""

    @abstractmethod
    def detector(self, manifest: dict[str, Any], tensors: dict[str, np.ndarray]) -> S:
        """What detection needs, read once per dictionary."""

    @abstractmethod
    def thresholds(self, state: S, n_entries: int) -> np.ndarray:
        """Each entry's threshold as replies report it."""

    @abstractmethod
    def detect(self, state: S, states: np.ndarray) -> Detection:
        """Match every entry against the [T, d] states of one input."""

    @abstractmethod
    def graft(self, tensors: dict[str, np.ndarray], entry: int, center: np.ndarray) -> Graft:
        """Steering with one entry: activation grafts its values, directions are measured from
        the center."""

    @abstractmethod
    def prototype(
        self, entry: dict[str, Any], tensors: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The entry's `prototype` (and `neurons`) as GetDictionary returns them."""


# ----- shared helpers of the fits ---------------------------------------------------------------


def examples(
    model: LoadedModel, captured: Captured, rows: np.ndarray, scores: np.ndarray
) -> list[dict[str, Any]]:
    out = []
    for row, value in zip(rows.tolist(), scores.tolist(), strict=True):
        seg, pos = captured.locate(int(row))
        ids = captured.token_ids[seg]
        out.append({
            "input_index": captured.segments[seg].input_index,
            "position": pos,
            "token": decode_token(model, int(ids[pos])),
            "context": context_window(model, ids, pos),
            "score": float(value),
        })  # fmt: skip
    return out


def scores_of(s: pa.Scores | None) -> dict[str, Any] | None:
    return None if s is None else asdict(s)


def center_of(states: np.ndarray, captured: Captured) -> np.ndarray:
    """Mean state, leaving out each input's first token: language models park very large
    activations there (attention sinks), which would otherwise dominate every direction."""
    keep = np.ones(states.shape[0], dtype=bool)
    keep[np.asarray(captured.row_starts, dtype=np.int64)] = False
    rows = states[keep] if keep.any() else states
    return rows.mean(axis=0, dtype=np.float64).astype(np.float32)


def unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return (vector / norm).astype(np.float32) if norm > 0 else vector.astype(np.float32)


def or_default(value: float, default: float) -> float:
    return value if value else default


def nearest_matches(index: np.ndarray, n_entries: int) -> np.ndarray:
    """bool [T, E]: row t matches entry index[t] (none where index < 0)."""
    matches = np.zeros((index.shape[0], n_entries), dtype=bool)
    hit = index >= 0
    matches[np.nonzero(hit)[0], index[hit]] = True
    return matches


def known_fields(cls: type, stored: dict[str, Any]) -> dict[str, Any]:
    """The stored values of a parameters dataclass's fields (missing ones keep their defaults:
    dictionaries stored before a field existed still load)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in stored.items() if k in names}
