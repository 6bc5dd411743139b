"""Engine: hook-point tables against HF's own hidden states, scoped hooks, loading rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from chunkscope.engine import loading
from chunkscope.engine.adapters import adapter_for
from chunkscope.engine.hooks import capture, hook_count, hooks
from chunkscope.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

CPU = torch.device("cpu")


@pytest.fixture(scope="module", params=["tiny-llama", "tiny-gpt2"])
def lm(request: pytest.FixtureRequest, model_root: Path) -> loading.LoadedModel:
    source = loading.inspect_source(model_root / request.param, "")
    return loading.load(source, CPU, torch.float32)


def _capture_all(model: loading.LoadedModel, text: str) -> tuple[dict, tuple]:
    ids = model.tokenizer(text, return_tensors="pt").input_ids
    sites = {n: model.adapter.resolve(n) for n in model.adapter.names()}
    with torch.inference_mode(), capture(model.module, sites) as recorded:
        out = model.module(ids, output_hidden_states=True)
    return {k: v[0] for k, v in recorded.items()}, out.hidden_states


def test_residual_points_equal_hf_hidden_states(lm: loading.LoadedModel) -> None:
    got, hidden = _capture_all(lm, "The cat sat on the mat")
    n = lm.adapter.num_blocks
    assert torch.equal(got["embed"], hidden[0])
    for i in range(n):
        assert torch.equal(got[f"blocks.{i}.resid_pre"], hidden[i])
    for i in range(n - 1):
        assert torch.equal(got[f"blocks.{i}.resid_post"], hidden[i + 1])
    # HF applies the final norm to its last hidden state; resid_post of the last block is pre-norm.
    assert torch.equal(got["final_norm"], hidden[n])
    assert not torch.allclose(got[f"blocks.{n - 1}.resid_post"], hidden[n])


def test_attention_and_mlp_outputs_sum_to_the_residual_update(lm: loading.LoadedModel) -> None:
    got, _ = _capture_all(lm, "Chunks are recurring hidden state patterns")
    for i in range(lm.adapter.num_blocks):
        update = got[f"blocks.{i}.attn_out"] + got[f"blocks.{i}.mlp_out"]
        torch.testing.assert_close(
            got[f"blocks.{i}.resid_pre"] + update, got[f"blocks.{i}.resid_post"]
        )


def test_probe_reports_hidden_size_for_every_hook_point(lm: loading.LoadedModel) -> None:
    assert set(lm.hook_shapes) == set(lm.adapter.names())
    assert len(lm.hook_shapes) == 2 + 4 * lm.adapter.num_blocks
    assert all(shape == (-1, -1, lm.hidden_size) for shape in lm.hook_shapes.values())


def test_editing_hook_changes_downstream_and_is_removed(lm: loading.LoadedModel) -> None:
    ids = lm.tokenizer("the llama laughed", return_tensors="pt").input_ids
    site = {"blocks.1.resid_pre": lm.adapter.resolve("blocks.1.resid_pre")}
    with torch.inference_mode():
        before = lm.module(ids).logits
        with hooks(lm.module, site, lambda _name, h: torch.zeros_like(h)):
            assert hook_count(lm.module) == 1
            zeroed = lm.module(ids).logits
        after = lm.module(ids).logits
    assert not torch.allclose(before, zeroed)
    assert torch.equal(before, after)
    assert hook_count(lm.module) == 0


def test_hooks_are_removed_when_the_forward_raises(lm: loading.LoadedModel) -> None:
    sites = {n: lm.adapter.resolve(n) for n in lm.adapter.names()}

    def explode(_name: str, _h: torch.Tensor) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), hooks(lm.module, sites, explode):
        lm.module(torch.zeros((1, 3), dtype=torch.long))
    assert hook_count(lm.module) == 0


def test_unknown_hook_point_is_an_invalid_argument_naming_valid_ones() -> None:
    adapter = adapter_for("llama", 30)
    assert adapter.resolve("blocks.29.resid_post").module_path == "model.layers.29"
    for bad in ("blocks.30.resid_post", "blocks.1.resid", "layer.3", "blocks.-1.resid_pre", ""):
        with pytest.raises(InvalidArgument) as err:
            adapter.resolve(bad)
        assert "blocks.0.resid_pre" in err.value.message
        assert err.value.violations[0].field == "hook_point"


@pytest.mark.parametrize("name", ["rnn-elman", "rnn-elman-tanh", "rnn-gru", "rnn-lstm"])
def test_recurrent_hidden_point_fires_once_per_step(model_root: Path, name: str) -> None:
    model = loading.load(loading.inspect_source(model_root / name, ""), CPU, torch.float32)
    tokens = torch.tensor([[0, 1, 2, 3, 4, 0, 1]])
    site = {"rnn.hidden": model.adapter.resolve("rnn.hidden")}
    with torch.inference_mode(), capture(model.module, site) as recorded:
        _, hidden = model.module(tokens)
    steps = recorded["rnn.hidden"]
    assert len(steps) == tokens.shape[1]
    assert torch.equal(torch.stack(steps, dim=1), hidden)
    assert model.hook_shapes == {"rnn.hidden": (-1, -1, 12)}
    assert model.symbols == tuple("ABCDE")


def test_gguf_file_loads_with_its_tokenizer_and_hook_points(model_root: Path) -> None:
    source = loading.inspect_source(model_root / "gguf" / "tiny-llama.gguf", "")
    assert (source.format, source.family) == ("gguf", "llama")
    model = loading.load(source, CPU, torch.float32)
    got, hidden = _capture_all(model, "hello world")
    assert torch.equal(got["blocks.0.resid_pre"], hidden[0])
    assert model.tokenizer is not None


def test_sources_must_stay_inside_the_model_roots(model_root: Path, tmp_path: Path) -> None:
    roots = (model_root.resolve(),)
    assert loading.resolve_under_roots("tiny-llama", roots) == roots[0] / "tiny-llama"
    with pytest.raises(PermissionDenied):
        loading.resolve_under_roots("escape", roots)  # symlink pointing outside
    with pytest.raises(PermissionDenied):
        loading.resolve_under_roots("../" * 8 + "etc/passwd", roots)
    with pytest.raises(PermissionDenied):
        loading.resolve_under_roots(str(tmp_path), roots)
    with pytest.raises(NotFound):
        loading.resolve_under_roots("no-such-model", roots)
    with pytest.raises(InvalidArgument):
        loading.resolve_under_roots("", roots)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("pickle-only", "PICKLE_REFUSED"),
        ("bert", "UNSUPPORTED_ARCHITECTURE"),
    ],
)
def test_refused_sources_say_why(model_root: Path, name: str, reason: str) -> None:
    with pytest.raises(FailedPrecondition) as err:
        loading.inspect_source(model_root / name, "")
    assert err.value.reason == reason


def test_format_must_match_the_files(model_root: Path) -> None:
    with pytest.raises(InvalidArgument):
        loading.inspect_source(model_root / "tiny-llama", "recurrent")
    with pytest.raises(InvalidArgument):
        loading.inspect_source(model_root / "rnn-elman", "hf_safetensors")
    with pytest.raises(InvalidArgument):
        loading.inspect_source(model_root / "tiny-llama", "gguf")


def test_content_hash_is_stable_and_follows_the_weights(tmp_path: Path, model_root: Path) -> None:
    copy = tmp_path / "rnn"
    copy.mkdir()
    for f in (model_root / "rnn-elman").iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    original = loading.content_hash(loading.inspect_source(model_root / "rnn-elman", ""))
    assert loading.content_hash(loading.inspect_source(copy, "")) == original
    assert original.startswith("sha256:") and len(original) == 7 + 64
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(config, indent=4))  # config is not weights
    assert loading.content_hash(loading.inspect_source(copy, "")) == original
    weights = bytearray((copy / "model.safetensors").read_bytes())
    weights[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(weights))
    assert loading.content_hash(loading.inspect_source(copy, "")) != original
