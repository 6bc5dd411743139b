"""Checks that the tiny GGUF test fixture loads through transformers' GGUF path as intended.

Other tests rely on `tests.helpers.tiny_gguf` standing in for the demo model's GGUF, so this pins
down that the config, the weights (including llama.cpp's Q/K row permutation) and the tokenizer
all come back exactly as written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gguf import GGUFReader
from transformers import AutoModelForCausalLM, AutoTokenizer

from helpers.tiny_gguf import (
    BOS_TOKEN_ID,
    CHAT_TEMPLATE,
    EOS_TOKEN_ID,
    TINY_LLAMA,
    gguf_tensor_name,
    llama_cpp_permute,
    tiny_llama_tokens,
    tiny_llama_weights,
    write_tiny_llama_gguf,
)

SEED = 3


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("tiny") / "tiny-llama.gguf", seed=SEED)


@pytest.fixture(scope="module")
def model(gguf_path: Path) -> Any:
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True
    )
    return loaded.eval()


@pytest.fixture(scope="module")
def tokenizer(gguf_path: Path) -> Any:
    return AutoTokenizer.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True
    )


def test_file_is_small(gguf_path: Path) -> None:
    assert gguf_path.stat().st_size < 300_000


def test_same_seed_writes_same_file(gguf_path: Path, tmp_path: Path) -> None:
    again = write_tiny_llama_gguf(tmp_path / "again.gguf", seed=SEED)
    assert again.read_bytes() == gguf_path.read_bytes()


def test_config_matches_what_was_written(model: Any) -> None:
    config = model.config
    assert type(model).__name__ == "LlamaForCausalLM"
    assert config.model_type == "llama"
    assert config.num_hidden_layers == TINY_LLAMA.num_hidden_layers
    assert config.hidden_size == TINY_LLAMA.hidden_size
    assert config.num_attention_heads == TINY_LLAMA.num_attention_heads
    assert config.num_key_value_heads == TINY_LLAMA.num_key_value_heads
    assert config.intermediate_size == TINY_LLAMA.intermediate_size
    assert config.head_dim == TINY_LLAMA.head_dim
    assert config.max_position_embeddings == TINY_LLAMA.max_position_embeddings
    assert config.vocab_size == len(tiny_llama_tokens())
    assert config.tie_word_embeddings is True
    assert (config.bos_token_id, config.eos_token_id) == (BOS_TOKEN_ID, EOS_TOKEN_ID)


def test_file_holds_llama_cpp_permuted_q_and_k(gguf_path: Path) -> None:
    # Without this, the weight test below would also pass if neither side permuted anything.
    raw = {t.name: np.asarray(t.data) for t in GGUFReader(gguf_path).tensors}
    weights = tiny_llama_weights(SEED)
    for proj, heads in (
        ("q_proj", TINY_LLAMA.num_attention_heads),
        ("k_proj", TINY_LLAMA.num_key_value_heads),
    ):
        hf_name = f"model.layers.0.self_attn.{proj}.weight"
        stored = raw[gguf_tensor_name(hf_name)].astype(np.float32)
        assert not np.array_equal(stored, weights[hf_name])
        np.testing.assert_array_equal(stored, llama_cpp_permute(weights[hf_name], heads))


def test_loaded_weights_equal_written_weights(model: Any) -> None:
    state = model.state_dict()
    expected = tiny_llama_weights(SEED)
    # Every parameter comes from the file; lm_head is the tied embedding, not a tensor of its own.
    assert set(state) == set(expected) | {"lm_head.weight"}
    for name in (
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.k_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
    ):
        torch.testing.assert_close(state[name], torch.from_numpy(expected[name]), rtol=0, atol=0)
    mismatched = [n for n, w in expected.items() if not torch.equal(state[n], torch.from_numpy(w))]
    assert mismatched == []
    assert torch.equal(state["lm_head.weight"], state["model.embed_tokens.weight"])


def test_tokenizer_round_trips_and_merges(tokenizer: Any) -> None:
    ids = tokenizer("hello world").input_ids
    assert tokenizer.convert_ids_to_tokens(ids) == ["hello", "Ġworld"]
    assert tokenizer.decode(ids) == "hello world"
    text = "Ünïcode, tabs\tand 123 — anything"
    assert tokenizer.decode(tokenizer(text).input_ids) == text


def test_tokenizer_special_tokens_and_chat_template(tokenizer: Any) -> None:
    assert tokenizer.bos_token == "<|im_start|>"
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.chat_template == CHAT_TEMPLATE
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hello world"}], add_generation_prompt=True, tokenize=True
    )
    if not isinstance(ids, list):  # transformers 5 returns a BatchEncoding here
        ids = ids["input_ids"]
    # Special tokens stay whole instead of being cut into bytes.
    assert ids.count(BOS_TOKEN_ID) == 2
    assert ids.count(EOS_TOKEN_ID) == 1


def test_forward_pass_shape(model: Any, tokenizer: Any) -> None:
    ids = tokenizer("hello world, hello", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tiny_llama_tokens()))
    assert torch.isfinite(logits).all()
