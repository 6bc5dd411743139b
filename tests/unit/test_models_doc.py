"""docs/MODELS.md stays true: its checkpoint example runs and loads with chunkscope's own loader,
the network computes what the doc says, and its key and tensor tables match the code."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from chunkscope.engine import loading, recurrent

DOC = Path(__file__).resolve().parents[2] / "docs" / "MODELS.md"
MARKER = "<!-- example: recurrent-checkpoint -->"


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _example() -> str:
    text = _doc()
    assert text.count(MARKER) == 1, f"{DOC} must hold the marker {MARKER!r} once"
    found = re.search(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, re.DOTALL)
    assert found, f"no ```python block right after {MARKER!r} in {DOC}"
    return found.group(1)


def _table(heading: str) -> list[list[str]]:
    """Body rows of the first Markdown table after ``heading`` (cells stripped, backticks off)."""
    text = _doc()
    start = text.index(heading)
    rows: list[list[str]] = []
    for line in text[start:].splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        if line.startswith("|") and not line.startswith("| ---"):
            rows.append([c.strip().strip("`") for c in line.strip().strip("|").split("|")])
    return rows[1:]  # the header row off


def test_example_writes_a_checkpoint_the_loader_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(_example(), str(DOC), "exec"), {"__name__": "models_doc_example"})
    path = tmp_path / "data" / "models" / "my-rnn"

    # What RegisterModel does: inspect (format, family, regular files, safetensors header), load.
    source = loading.inspect_source(path, "")
    assert (source.format, source.family) == ("recurrent", "elman")
    model = loading.load(source, torch.device("cpu"), torch.float32)
    assert model.symbols == ("a", "b", "c")
    assert (model.hidden_size, model.vocab_size) == (8, 3)
    assert model.hook_shapes == {"rnn.hidden": (-1, -1, 8)}
    assert loading.content_hash(source).startswith("sha256:")

    # The doc's equations, in float64 from the saved tensors, against the loaded network.
    t = {k: v.double() for k, v in load_file(str(path / "model.safetensors")).items()}
    tokens = model.module.encode(list("abcacb"))  # type: ignore[operator]
    with torch.no_grad():
        logits, hidden = model.module(tokens[None])
    h = torch.zeros(8, dtype=torch.float64)
    for step, token in enumerate(tokens.tolist()):
        xh = torch.cat((torch.nn.functional.one_hot(torch.tensor(token), 3).double(), h))
        expected_logits = t["readout.weight"] @ xh + t["readout.bias"]
        h = torch.tanh(t["cell.weight"] @ xh + t["cell.bias"])
        # float32 dot products of 11 terms of size <= ~1: rounding is ~1e-6; 1e-5 leaves room.
        np.testing.assert_allclose(logits[0, step].double(), expected_logits, atol=1e-5)
        np.testing.assert_allclose(hidden[0, step].double(), h, atol=1e-5)


def test_config_table_lists_exactly_the_config_keys() -> None:
    keys = [row[0] for row in _table("### config.json")]
    assert keys == list(recurrent._CONFIG_KEYS)


@pytest.mark.parametrize("architecture", recurrent.ARCHITECTURES)
def test_tensor_table_matches_the_network(architecture: str) -> None:
    v, d = 5, 3
    documented = {
        name: list(eval(shape, {}, {"V": v, "d": d}))
        for arch, name, shape in _table("### Tensors")
        if arch == architecture
        for shape in [re.sub(r"(\d)d", r"\1*d", shape)]
    }
    config = recurrent.RecurrentConfig(architecture, tuple("abcde"), hidden_size=d)
    actual = {k: list(t.shape) for k, t in recurrent.RecurrentLM(config).state_dict().items()}
    assert documented == actual
