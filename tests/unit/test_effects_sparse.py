"""Pure helpers of scripts/effects.py's sparse part: the difference interval, the verdict, the
sweep summary and the marked blocks (the run itself needs the demo model; see REPRODUCTION.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from chunkscope_client.v1 import dictionaries_pb2 as dpb
from support import ROOT


def _effects() -> ModuleType:
    spec = importlib.util.spec_from_file_location("effects", ROOT / "scripts" / "effects.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["effects"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_newcombe_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, table II example (a): 56/70 against 48/80,
    # method 10 (score interval without continuity correction): 0.0524 to 0.3339.
    fx = _effects()
    lo, hi = fx.newcombe_diff(56, 70, 48, 80)
    assert lo == pytest.approx(0.0524, abs=5e-4)
    assert hi == pytest.approx(0.3339, abs=5e-4)
    # Antisymmetric, and always inside [-1, 1].
    lo2, hi2 = fx.newcombe_diff(48, 80, 56, 70)
    assert (lo2, hi2) == pytest.approx((-hi, -lo))
    assert fx.newcombe_diff(10, 10, 0, 10)[1] <= 1.0
    assert fx.newcombe_diff(0, 10, 10, 10)[0] >= -1.0
    assert fx.newcombe_diff(0, 0, 3, 5) == (-1.0, 1.0)


def test_verdict_follows_the_difference_intervals() -> None:
    fx = _effects()
    # Sparse clearly better: 36/40 against 5/40.
    better = fx.verdict("INHIBIT", {"full": (5, 40), "≤64 neurons": (36, 40)}, "m")
    assert "use the ≤64 neurons entries" in better[-1]
    # ... unless it is no better than no intervention at all (control 30/40).
    no_better = fx.verdict("INHIBIT", {"full": (5, 40), "≤64 neurons": (36, 40)}, "m", (30, 40))
    assert "no width does better than no intervention" in no_better[-1]
    assert "use the" not in no_better[-1]
    assert "use the ≤64 neurons entries" in fx.verdict(
        "INHIBIT", {"full": (5, 40), "≤64 neurons": (36, 40)}, "m", (4, 40))[-1]  # fmt: skip
    # Every sparse variant clearly worse.
    worse = fx.verdict("ACTIVATE", {"full": (35, 40), "a": (2, 40), "b": (3, 40)}, "m")
    assert "use full-width entries**; every sparse" in worse[-1]
    # One worse, one not distinguishable: full width, naming both.
    mixed = fx.verdict("ACTIVATE", {"full": (35, 40), "a": (33, 40), "b": (3, 40)}, "m")
    assert "use full-width entries** (or a," in mixed[-1] and "b is worse" in mixed[-1]
    # Nothing distinguishable.
    tie = fx.verdict("INHIBIT", {"full": (3, 8), "a": (4, 8)}, "m")
    assert "no sparse variant is distinguishable" in tie[-1]
    assert "full 3/8 = 0.38" in tie[0]


def test_sweep_summary_keeps_the_points_where_c_changes() -> None:
    fx = _effects()
    entry = dpb.ChunkEntry(
        sweep=[
            dpb.PaSweepPoint(tau=100, n_neurons=576, tpr=0.59),
            dpb.PaSweepPoint(tau=30, n_neurons=576, tpr=0.59),
            dpb.PaSweepPoint(tau=3, n_neurons=499, tpr=0.37),
            dpb.PaSweepPoint(tau=1, n_neurons=51, tpr=0.19),
            dpb.PaSweepPoint(tau=0.1, n_neurons=0, tpr=0.0),
        ]
    )
    assert fx.sweep_summary(entry) == "100:576/0.59 3:499/0.37 1:51/0.19"
    assert fx.sweep_summary(entry, max_points=1) == "100:576/0.59"


def test_the_sparse_block_leaves_the_main_block_alone(tmp_path: Path) -> None:
    fx = _effects()
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n\n<!-- effects:start -->\nmain v1\n<!-- effects:end -->\n\ntail\n")
    fx.write_block(doc, "sparse v1", fx.SPARSE_START_MARKER, fx.SPARSE_END_MARKER)
    fx.write_block(doc, "sparse v2", fx.SPARSE_START_MARKER, fx.SPARSE_END_MARKER)
    fx.write_block(doc, "main v2")
    text = doc.read_text()
    assert text == (
        "intro\n\n<!-- effects:start -->\nmain v2\n<!-- effects:end -->\n\ntail\n\n"
        "<!-- effects-sparse:start -->\nsparse v2\n<!-- effects-sparse:end -->\n"
    )


def test_parts_option() -> None:
    fx = _effects()
    assert fx.parse_args([]).parts == ["main", "sparse"]
    args = fx.parse_args(["--parts", "sparse", "--sparse-max-neurons", "128"])
    assert args.parts == ["sparse"]
    assert [v.name for v in fx.sparse_variants(args)] == ["full", "margin 0.1", "≤128 neurons"]
    with pytest.raises(SystemExit):
        fx.parse_args(["--parts", "sparse,other"])


def test_on_topic_names_the_question_s_subject() -> None:
    fx = _effects()
    stems = fx.topic_stems("What is a symphony?", ["music"])
    assert stems == frozenset({"symph"})
    assert fx.on_topic("Symphonies are long works for orchestra.", stems)
    assert not fx.on_topic(" forward life. heartbeat, men. daily, per.", stems)
    # The concept's own words are not the topic; a question without other content words is
    # always on topic (nothing to check).
    assert fx.topic_stems("What is music?", ["music"]) == frozenset()
    assert fx.on_topic("abyabyaby", frozenset())
    arm = fx.Arm(
        "x",
        texts=["a", "b", "c", "d"],
        hits=[False, False, True, False],
        coherent=[True, True, True, False],
        on_topic=[True, False, True, True],
    )
    assert fx.answers_without_word(arm) == 1
