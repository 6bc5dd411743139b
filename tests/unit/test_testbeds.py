"""The recurrent test bed: the paper's sequence generators, the trainer and the training CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from chunkscope.engine.recurrent import RecurrentConfig, RecurrentLM, load_checkpoint
from chunkscope.testbeds.sequences import (
    GENERATORS,
    PLANTED_WORDS,
    alphabet,
    hierarchy,
    overlapping,
    planted_words,
    reflection,
    words,
)
from chunkscope.testbeds.train import (
    build_model,
    main,
    majority_accuracy,
    next_symbol_accuracy,
    train_rnn,
)

SERVICE_ROOT = Path(__file__).resolve().parents[2] / "service"

# --- generators ------------------------------------------------------------------------------


def test_generators_registry_names_and_defaults() -> None:
    assert set(GENERATORS) == {"reflection", "words", "overlapping", "hierarchy", "planted"}
    for name, generate in GENERATORS.items():
        sequence = generate()
        assert isinstance(sequence, str), name
        assert len(sequence) > 1000, name
        letters = "EKLMPQRSTUVWXYZ" if name == "planted" else "ABCDEGHIJKLMN"
        assert set(sequence) <= set(letters), name


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_are_deterministic_per_seed(name: str) -> None:
    generate = GENERATORS[name]
    assert generate(seed=5) == generate(seed=5)
    assert generate(seed=5) != generate(seed=6)


def test_reflection_structure() -> None:
    sequence = reflection()
    assert sequence[0] == "E"
    assert set(sequence) == set("ABCDE")
    assert sequence.count("A") == 1000
    # Every A opens a full "ABCD"; nothing else ever follows or precedes it.
    assert [m.start() for m in re.finditer("A", sequence)] == [
        m.start() for m in re.finditer("ABCD", sequence)
    ]
    assert sequence.replace("ABCD", "") == "E" * sequence.count("E")
    runs = [len(run) for run in re.findall("D(E*)", sequence)]
    assert len(runs) == 1000
    assert max(runs) == 19
    assert min(runs) == 0
    assert set(runs) == set(range(20))  # U{0..19}: every run length turns up in 1000 draws
    assert 8.5 < np.mean(runs) < 10.5


def test_reflection_respects_its_arguments() -> None:
    sequence = reflection(n_repeats=50, max_fillers=2, seed=3)
    runs = [len(run) for run in re.findall("D(E*)", sequence)]
    assert len(runs) == 50
    assert max(runs) <= 2
    with pytest.raises(ValueError, match="n_repeats"):
        reflection(n_repeats=-1)


def test_words_are_drawn_uniformly_with_bounded_fillers() -> None:
    sequence = words(seed=4)
    pairs = re.findall("(ABCD|GHI|JKLMN)(E*)", sequence)
    assert "".join(word + run for word, run in pairs) == sequence
    assert len(pairs) == 1000
    assert max(len(run) for _, run in pairs) == 9
    counts = Counter(word for word, _ in pairs)
    assert set(counts) == {"ABCD", "GHI", "JKLMN"}
    for count in counts.values():
        assert abs(count / 1000 - 1 / 3) < 0.06
    assert alphabet(sequence) == tuple("ABCDEGHIJKLMN")


def test_words_accepts_another_vocabulary() -> None:
    sequence = words(vocabulary=("ABCDLMN",), n_words=20, seed=0)
    assert sequence.replace("E", "") == "ABCDLMN" * 20
    with pytest.raises(ValueError, match="vocabulary"):
        words(vocabulary=())


def test_planted_words_structure() -> None:
    sequence = planted_words()
    pairs = re.findall("(PQRS|TUV|WXYZ|KLM)(E*)", sequence)
    assert "".join(word + run for word, run in pairs) == sequence
    assert len(pairs) == 600
    assert {len(run) for _, run in pairs} == set(range(10))  # U{0..9}
    counts = Counter(word for word, _ in pairs)
    assert set(counts) == set(PLANTED_WORDS)
    for count in counts.values():
        assert abs(count / 600 - 1 / 4) < 0.07
    # The same draws as `words` with the same arguments.
    assert sequence == words(PLANTED_WORDS, n_words=600, max_fillers=9, seed=1)


def test_planted_words_respects_its_arguments() -> None:
    sequence = planted_words(("AB", "CDE"), n_words=40, min_fillers=2, max_fillers=3, filler="O")
    pairs = re.findall("(AB|CDE)(O*)", sequence)
    assert "".join(word + run for word, run in pairs) == sequence
    assert len(pairs) == 40
    assert {len(run) for _, run in pairs} <= {2, 3}
    for kwargs, field in [
        ({"vocabulary": ()}, "vocabulary"),
        ({"filler": "OO"}, "filler"),
        ({"filler": "P"}, "filler"),  # occurs in PQRS
        ({"min_fillers": 5, "max_fillers": 4}, "min_fillers"),
        ({"n_words": -1}, "n_words"),
    ]:
        with pytest.raises(ValueError, match=f"^{field}"):
            planted_words(**kwargs)  # type: ignore[arg-type]


def _overlapping_draws(sequence: str) -> list[str]:
    """Split into draws: each is a chunk then "E", and only the chunk "E" starts with E."""
    draws, i = [], 0
    while i < len(sequence):
        end = i + 1 if sequence[i] == "E" else sequence.index("E", i)
        draws.append(sequence[i:end])
        assert sequence[end] == "E"
        i = end + 1
    return draws


def test_overlapping_frequencies_match_p() -> None:
    draws = _overlapping_draws(overlapping(seed=2))
    assert len(draws) == 10_000
    counts = Counter(draws)
    assert set(counts) == {"CDAB", "AB", "ABCD", "E"}
    # Binomial sd for p = 0.1 over 10,000 draws is 0.003; 0.015 is five of them.
    for chunk, p in {"CDAB": 0.1, "AB": 0.1, "ABCD": 0.1, "E": 0.7}.items():
        assert abs(counts[chunk] / 10_000 - p) < 0.015, chunk


@pytest.mark.parametrize("n_h", [0, 5, 35])
def test_hierarchy_grows_vocabulary_by_concatenation(n_h: int) -> None:
    sequence, vocabulary = hierarchy(n_h, 20_000, seed=n_h)
    assert len(vocabulary) == 4 + n_h + 1
    assert vocabulary[:4] == ["A", "B", "C", "D"]
    assert vocabulary[-1] == "E"
    for k, entry in enumerate(vocabulary[4:-1], start=4):
        earlier = vocabulary[:k]
        assert any(entry == a + b for a in earlier for b in earlier), entry
    assert len(sequence) == 20_000
    assert set(sequence) <= set("ABCDE")
    assert hierarchy(n_h, 20_000, seed=n_h) == (sequence, vocabulary)


def test_hierarchy_draws_e_as_four_fifths_of_words() -> None:
    sequence, _ = hierarchy(0, 20_000, seed=1)  # all words are one symbol: symbols are words
    assert abs(sequence.count("E") / 20_000 - 0.8) < 0.02
    deep, _ = hierarchy(35, 20_000, seed=1)
    assert deep.count("E") / 20_000 < 0.75  # composite words dilute E among the symbols


def test_alphabet_is_sorted_and_unique() -> None:
    assert alphabet("EDCBAABE") == ("A", "B", "C", "D", "E")


# --- trainer ---------------------------------------------------------------------------------


def _states(hidden: np.ndarray, n_bins: int = 5) -> tuple[int, int]:
    """Distinct population states two ways: rounded to 0.1, and per-neuron 1-D k-means bins."""
    rounded = len(np.unique(np.round(hidden, 1), axis=0))
    bins = []
    for column in hidden.T:
        centroids = np.quantile(column, (np.arange(n_bins) + 0.5) / n_bins)
        for _ in range(50):
            labels = np.abs(column[:, None] - centroids[None]).argmin(axis=1)
            centroids = np.array(
                [
                    column[labels == k].mean() if (labels == k).any() else centroids[k]
                    for k in range(n_bins)
                ]
            )
        bins.append(np.abs(column[:, None] - centroids[None]).argmin(axis=1))
    return rounded, len(np.unique(np.stack(bins, axis=1), axis=0))


@pytest.fixture(scope="module")
def reflection_nets() -> tuple[RecurrentLM, RecurrentLM, list[float]]:
    sequence = reflection()
    config = RecurrentConfig("elman", alphabet(sequence), 12)
    untrained = build_model(config, seed=0)
    trained = build_model(config, seed=0)
    losses = train_rnn(trained, sequence, iterations=200, window=200, seed=0)
    return trained, untrained, losses


def test_trained_reflection_net_beats_the_majority_baseline(
    reflection_nets: tuple[RecurrentLM, RecurrentLM, list[float]],
) -> None:
    trained, untrained, losses = reflection_nets
    sequence = reflection()
    baseline = majority_accuracy(sequence)
    assert 0.69 < baseline < 0.72  # always "E"
    assert next_symbol_accuracy(trained, sequence) > max(0.85, baseline + 0.12)
    assert next_symbol_accuracy(untrained, sequence) < baseline
    assert len(losses) == 200
    assert np.mean(losses[-50:]) < 0.5 * np.mean(losses[:10])


def test_trained_net_has_many_more_population_states_than_untrained(
    reflection_nets: tuple[RecurrentLM, RecurrentLM, list[float]],
) -> None:
    trained, untrained, _ = reflection_nets
    tokens = trained.encode(reflection())[None]
    with torch.no_grad():
        trained_states = _states(trained(tokens)[1][0].numpy())
        untrained_states = _states(untrained(tokens)[1][0].numpy())
    assert trained_states[0] > 5 * untrained_states[0]
    assert trained_states[1] > 2 * untrained_states[1]


def test_same_seed_gives_bit_identical_weights() -> None:
    sequence = reflection(n_repeats=100)
    config = RecurrentConfig("elman", alphabet(sequence), 12)

    def run(seed: int) -> tuple[dict[str, torch.Tensor], list[float]]:
        model = build_model(config, seed=seed)
        losses = train_rnn(model, sequence, iterations=15, window=40, seed=seed)
        return model.state_dict(), losses

    (weights_a, losses_a), (weights_b, losses_b), (weights_c, _) = run(3), run(3), run(4)
    assert losses_a == losses_b
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert not torch.equal(weights_a["cell.weight"], weights_c["cell.weight"])


def test_build_model_leaves_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    build_model(RecurrentConfig("gru", ("A", "E"), 4), seed=1)
    assert torch.equal(torch.get_rng_state(), state)


def test_train_rnn_rejects_bad_arguments() -> None:
    model = build_model(RecurrentConfig("elman", ("A", "E"), 4), seed=0)
    with pytest.raises(ValueError, match="iterations"):
        train_rnn(model, "AEAE", iterations=-1)
    with pytest.raises(ValueError, match="window"):
        train_rnn(model, "AEAE", iterations=1, window=0)
    with pytest.raises(ValueError, match="'B'"):
        train_rnn(model, "AEBE", iterations=1)
    # A sequence shorter than the window is trained on whole.
    assert len(train_rnn(model, "AEAE", iterations=2, window=200)) == 2


# --- CLI -------------------------------------------------------------------------------------


def test_cli_trains_saves_and_summarises(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "net"
    argv = ["train", "--generator", "words", "--out", str(out), "--architecture", "gru"]
    assert main([*argv, "--hidden-size", "8", "--iterations", "3", "--window", "50"]) == 0
    summary = json.loads(capsys.readouterr().out.strip())
    assert summary["out"] == str(out)
    assert summary["vocab"] == list("ABCDEGHIJKLMN")
    assert summary["iterations"] == 3
    assert summary["trained"] is True
    assert summary["final_loss"] > 0
    loaded = load_checkpoint(out)
    assert loaded.config == RecurrentConfig("gru", tuple("ABCDEGHIJKLMN"), 8)
    assert summary["accuracy"] == next_symbol_accuracy(loaded, words())


def test_cli_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "net")
    with pytest.raises(SystemExit) as exited:
        main(["train", "--generator", "nope", "--out", out])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["train", "--generator", "words", "--out", out, "--architecture", "lstm",
              "--nonlinearity", "tanh"])  # fmt: skip
    assert exited.value.code == 2
    assert "nonlinearity" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--generator", "words", "--out", out, "--hidden-size", "0"])
    assert "hidden_size" in capsys.readouterr().err
    assert not Path(out).exists()


def test_python_dash_m_untrained_control_net(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SERVICE_ROOT)}
    argv = ["train", "--generator", "reflection", "--out", str(tmp_path), "--untrained"]
    done = subprocess.run(
        [sys.executable, "-m", "chunkscope.testbeds", *argv],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["trained"] is False
    assert summary["final_loss"] is None
    untrained = build_model(load_checkpoint(tmp_path).config, seed=0)
    for name, tensor in load_checkpoint(tmp_path).state_dict().items():
        assert torch.equal(tensor, untrained.state_dict()[name]), name
