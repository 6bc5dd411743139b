"""The recurrent test-bed networks: maths, the `hidden_point` hook and the checkpoint format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from chunkscope.engine.recurrent import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    RecurrentConfig,
    RecurrentLM,
    load_checkpoint,
    save_checkpoint,
)

VOCAB = ("A", "B", "C", "D", "E")
ARCHITECTURES = ("elman", "gru", "lstm")


def _model(architecture: str = "elman", nonlinearity: str = "linear", seed: int = 0) -> RecurrentLM:
    torch.manual_seed(seed)
    config = RecurrentConfig(architecture, VOCAB, hidden_size=6, nonlinearity=nonlinearity)
    return RecurrentLM(config).eval()


def _tokens(batch: int = 2, steps: int = 9, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, len(VOCAB), (batch, steps), generator=generator)


def _valid_json() -> dict[str, Any]:
    return RecurrentConfig("elman", VOCAB, 12).to_json()


# --- config ---------------------------------------------------------------------------------


def test_config_json_layout_and_round_trip() -> None:
    config = RecurrentConfig("elman", VOCAB, 12)
    document = config.to_json()
    assert document == {
        "chunkscope_format": "recurrent",
        "format_version": 1,
        "architecture": "elman",
        "vocab": ["A", "B", "C", "D", "E"],
        "hidden_size": 12,
        "nonlinearity": "linear",
    }
    assert RecurrentConfig.from_json(json.loads(json.dumps(document))) == config


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"architecture": "transformer"}, ["architecture", "elman", "gru", "lstm"]),
        ({"vocab": []}, ["vocab"]),
        ({"vocab": ["A", "B", "A"]}, ["vocab", "duplicate", "'A'"]),
        ({"vocab": ["A", ""]}, ["vocab"]),
        ({"vocab": "ABCDE"}, ["vocab", "list"]),
        ({"hidden_size": 0}, ["hidden_size", "1..4096"]),
        ({"hidden_size": 4097}, ["hidden_size", "1..4096"]),
        ({"hidden_size": 12.0}, ["hidden_size"]),
        ({"hidden_size": True}, ["hidden_size"]),
        ({"nonlinearity": "relu"}, ["nonlinearity", "linear", "tanh"]),
        ({"architecture": "gru", "nonlinearity": "tanh"}, ["nonlinearity", "gru"]),
        ({"format_version": 2}, ["format_version", "1"]),
        ({"format_version": 1.0}, ["format_version", "1.0"]),
        ({"chunkscope_format": "hf"}, ["chunkscope_format", "recurrent"]),
        ({"dropout": 0.1}, ["unknown", "dropout", "hidden_size"]),
    ],
)
def test_from_json_rejects_bad_values_naming_the_key(
    change: dict[str, Any], names: list[str]
) -> None:
    document = _valid_json() | change
    with pytest.raises(ValueError, match=names[0]) as error:
        RecurrentConfig.from_json(document)
    for name in names:
        assert name in str(error.value)


def test_from_json_rejects_missing_key_naming_it() -> None:
    document = _valid_json()
    del document["hidden_size"]
    with pytest.raises(ValueError, match=r"missing keys \['hidden_size'\]"):
        RecurrentConfig.from_json(document)


def test_config_validates_on_direct_construction() -> None:
    with pytest.raises(ValueError, match="architecture"):
        RecurrentConfig("rnn", VOCAB, 12)


# --- forward maths --------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_forward_shapes_and_zero_default_h0(architecture: str) -> None:
    model = _model(architecture)
    tokens = _tokens(batch=3, steps=7)
    logits, hidden = model(tokens)
    assert logits.shape == (3, 7, 5)
    assert hidden.shape == (3, 7, 6)
    logits0, hidden0 = model(tokens, torch.zeros(3, 6))
    assert torch.equal(logits, logits0)
    assert torch.equal(hidden, hidden0)
    logits1, _ = model(tokens, torch.ones(3, 6))
    assert not torch.allclose(logits, logits1)


@pytest.mark.parametrize("nonlinearity", ["linear", "tanh"])
def test_elman_matches_hand_computation(nonlinearity: str) -> None:
    model = _model("elman", nonlinearity).double()
    tokens = _tokens(batch=1, steps=8)
    h0 = torch.randn(1, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    logits, hidden = model(tokens, h0)

    params = {name: p.detach().numpy() for name, p in model.named_parameters()}
    w, b = params["cell.weight"], params["cell.bias"]
    u, c = params["readout.weight"], params["readout.bias"]
    eps = np.finfo(np.float64).eps
    h = h0[0].numpy()
    for t, token in enumerate(tokens[0].tolist()):
        xh = np.concatenate([np.eye(5)[token], h])
        # Each step from the model's own previous state, so rounding does not compound; torch and
        # numpy may each be off by the dot-product bound n·eps·Σ|terms| (Higham, Thm 3.1).
        bound = 2 * (xh.size + 1) * eps
        logit_scale = np.abs(u) @ np.abs(xh) + np.abs(c)
        got = logits[0, t].detach().numpy()
        assert np.all(np.abs(got - (u @ xh + c)) <= bound * logit_scale)
        want = w @ xh + b
        scale = bound * (np.abs(w) @ np.abs(xh) + np.abs(b))
        if nonlinearity == "tanh":
            want = np.tanh(want)  # 1-Lipschitz, plus its own rounding of at most an ulp or so
            scale = scale + 4 * eps * np.abs(want)
        h = hidden[0, t].detach().numpy()
        assert np.all(np.abs(h - want) <= scale)


@pytest.mark.parametrize("architecture", ["gru", "lstm"])
def test_gated_cells_match_torch_sequence_layers(architecture: str) -> None:
    model = _model(architecture)
    layer_type = torch.nn.GRU if architecture == "gru" else torch.nn.LSTM
    layer = layer_type(5, 6, batch_first=True)
    state = model.state_dict()
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    layer.load_state_dict({f"{name}_l0": state[f"cell.{name}"] for name in names})
    tokens = _tokens()
    logits, hidden = model(tokens)
    expected, _ = layer(torch.nn.functional.one_hot(tokens, 5).float())
    torch.testing.assert_close(hidden, expected)
    torch.testing.assert_close(logits, model.readout(expected))


def test_forward_rejects_bad_tokens() -> None:
    model = _model()
    with pytest.raises(ValueError, match=r"0\.\.4"):
        model(torch.tensor([[0, 5]]))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        model(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="h0"):
        model(torch.tensor([[0, 1]]), torch.zeros(1, 7))


def test_encode_maps_symbols_to_vocab_indices() -> None:
    model = _model()
    assert model.encode("EDCBA").tolist() == [4, 3, 2, 1, 0]
    with pytest.raises(ValueError, match="'Z'"):
        model.encode("ABZ")


# --- the hidden_point hook --------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_hidden_point_hook_sees_every_step_in_order(architecture: str) -> None:
    model = _model(architecture)
    tokens = _tokens(steps=9)
    seen: list[torch.Tensor] = []
    handle = model.hidden_point.register_forward_hook(
        lambda _m, _i, out: seen.append(out.detach().clone())
    )
    try:
        _, hidden = model(tokens)
    finally:
        handle.remove()
    assert len(seen) == 9
    for t, h_t in enumerate(seen):
        assert torch.equal(h_t, hidden[:, t])


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_hidden_point_replacement_changes_later_steps(architecture: str) -> None:
    model = _model(architecture)
    tokens = _tokens(steps=9)
    logits, hidden = model(tokens)
    calls = {"n": 0}
    clamp = torch.full((6,), 0.5)

    def graft_step_3(_m: torch.nn.Module, _i: tuple[torch.Tensor], out: torch.Tensor) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:  # t = 3
            return clamp.expand_as(out)
        return None

    handle = model.hidden_point.register_forward_hook(graft_step_3)
    try:
        grafted_logits, grafted_hidden = model(tokens)
    finally:
        handle.remove()
    assert torch.equal(grafted_hidden[:, :3], hidden[:, :3])
    assert torch.equal(grafted_hidden[:, 3], clamp.expand(2, 6))
    assert not torch.allclose(grafted_hidden[:, 4], hidden[:, 4])
    # elman reads h_{t-1}, so step 3's logits are untouched; the gated readouts read h_t.
    first_changed = 4 if architecture == "elman" else 3
    assert torch.equal(grafted_logits[:, :first_changed], logits[:, :first_changed])
    assert not torch.allclose(grafted_logits[:, first_changed], logits[:, first_changed])


# --- checkpoints ---------------------------------------------------------------------------------


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_save_load_round_trip_gives_identical_outputs(architecture: str, tmp_path: Path) -> None:
    model = _model(architecture, seed=7)
    save_checkpoint(model, tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} == {CONFIG_FILE, WEIGHTS_FILE}
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert not loaded.training
    assert loaded.config == model.config
    tokens = _tokens()
    for got, want in zip(loaded(tokens), model(tokens), strict=True):
        assert torch.equal(got, want)
    as_double = load_checkpoint(tmp_path / "ckpt", dtype=torch.float64)
    assert as_double.readout.weight.dtype == torch.float64
    torch.testing.assert_close(as_double(tokens)[0].float(), model(tokens)[0])


def test_load_rejects_unknown_architecture(tmp_path: Path) -> None:
    save_checkpoint(_model(), tmp_path)
    document = json.loads((tmp_path / CONFIG_FILE).read_text())
    document["architecture"] = "mamba"
    (tmp_path / CONFIG_FILE).write_text(json.dumps(document))
    with pytest.raises(ValueError, match="architecture: got 'mamba'"):
        load_checkpoint(tmp_path)


def test_load_rejects_missing_weights_file(tmp_path: Path) -> None:
    save_checkpoint(_model(), tmp_path)
    (tmp_path / WEIGHTS_FILE).unlink()
    with pytest.raises(ValueError, match=r"missing file model\.safetensors"):
        load_checkpoint(tmp_path)


def test_load_rejects_missing_and_unexpected_tensors(tmp_path: Path) -> None:
    save_checkpoint(_model(), tmp_path)
    tensors = load_file(str(tmp_path / WEIGHTS_FILE))
    tensors["extra.weight"] = tensors.pop("readout.bias")
    save_file(tensors, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(
        ValueError, match=r"missing \['readout.bias'\], unexpected \['extra.weight'\]"
    ):
        load_checkpoint(tmp_path)


def test_load_rejects_wrong_tensor_shape(tmp_path: Path) -> None:
    save_checkpoint(_model(), tmp_path)
    tensors = load_file(str(tmp_path / WEIGHTS_FILE))
    tensors["cell.bias"] = torch.zeros(7)
    save_file(tensors, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(ValueError, match=r"'cell.bias' has shape \[7\], expected \[6\]"):
        load_checkpoint(tmp_path)


def test_load_rejects_corrupt_files(tmp_path: Path) -> None:
    save_checkpoint(_model(), tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"model\.safetensors"):
        load_checkpoint(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_checkpoint(tmp_path)
