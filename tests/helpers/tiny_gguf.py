"""Write a tiny, random-weight Llama GGUF file, so tests can exercise GGUF loading offline.

The file is a miniature of the demo model (SmolLM2-135M-Instruct, see `chunkscope.demo_model`):
same architecture (`llama`, grouped-query attention, tied embeddings), a byte-level BPE tokenizer
with the same ChatML special tokens and a chat template, but 2 layers of width 64 and a 268-token
vocabulary, about 200 KB. transformers loads it with

    AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)

`tiny_llama_weights(seed)` returns exactly the tensors that loading gives back, under transformers'
names, so a test can check a load against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, LlamaFileType, TokenType


@dataclass(frozen=True)
class TinyLlamaSpec:
    """Shape of the tiny model; transformers reads these back into its `LlamaConfig`."""

    num_hidden_layers: int = 2
    hidden_size: int = 64
    num_attention_heads: int = 4
    # Fewer KV heads than query heads, as in the demo model, so that grouped-query attention and
    # the K permutation's use of the KV head count are both exercised.
    num_key_value_heads: int = 2
    intermediate_size: int = 128
    max_position_embeddings: int = 256
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


TINY_LLAMA = TinyLlamaSpec()

# Special tokens at the ids SmolLM2 uses, so code that works on the demo model's ids works here.
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
UNK_TOKEN_ID, BOS_TOKEN_ID, EOS_TOKEN_ID = 0, 1, 2
PAD_TOKEN_ID = EOS_TOKEN_ID

# Merges in GPT-2's byte alphabet ("Ġ" is a space), learned by hand so that "hello world" becomes
# two tokens and a test can tell real BPE merging from byte-by-byte fallback.
MERGES = (
    "h e",
    "l l",
    "he ll",
    "hell o",
    "Ġ w",
    "o r",
    "Ġw or",
    "Ġwor l",
    "Ġworl d",
)

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table, which byte-level BPE vocabularies are spelled in.

    Reimplemented rather than imported from transformers so that writing the file does not depend
    on the code under test.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def tiny_llama_tokens() -> list[str]:
    """The vocabulary: special tokens, then the 256 byte tokens, then one token per merge."""
    alphabet = bytes_to_unicode()
    merged = [merge.replace(" ", "") for merge in MERGES]
    return [*SPECIAL_TOKENS, *(alphabet[b] for b in range(256)), *merged]


def tiny_llama_weights(seed: int = 0, spec: TinyLlamaSpec = TINY_LLAMA) -> dict[str, np.ndarray]:
    """Random weights under transformers' parameter names, as float32, in transformers' layout.

    Matrices are rounded through float16 because that is how they are stored in the file; the
    values returned are therefore exactly what a float32 load gives back. `lm_head.weight` is
    absent: the embeddings are tied, as in the demo model.
    """
    rng = np.random.default_rng(seed)
    vocab = len(tiny_llama_tokens())
    h, inter = spec.hidden_size, spec.intermediate_size
    q_rows = spec.num_attention_heads * spec.head_dim
    kv_rows = spec.num_key_value_heads * spec.head_dim

    def matrix(rows: int, cols: int) -> np.ndarray:
        # A larger scale than the usual 0.02 init, so logits differ visibly between tokens.
        return (rng.standard_normal((rows, cols)) * 0.1).astype(np.float16).astype(np.float32)

    def norm() -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(h)).astype(np.float32)

    weights = {"model.embed_tokens.weight": matrix(vocab, h)}
    for i in range(spec.num_hidden_layers):
        p = f"model.layers.{i}."
        weights[p + "input_layernorm.weight"] = norm()
        weights[p + "self_attn.q_proj.weight"] = matrix(q_rows, h)
        weights[p + "self_attn.k_proj.weight"] = matrix(kv_rows, h)
        weights[p + "self_attn.v_proj.weight"] = matrix(kv_rows, h)
        weights[p + "self_attn.o_proj.weight"] = matrix(h, q_rows)
        weights[p + "post_attention_layernorm.weight"] = norm()
        weights[p + "mlp.gate_proj.weight"] = matrix(inter, h)
        weights[p + "mlp.up_proj.weight"] = matrix(inter, h)
        weights[p + "mlp.down_proj.weight"] = matrix(h, inter)
    weights["model.norm.weight"] = norm()
    return weights


def llama_cpp_permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """The Q/K row reordering llama.cpp's converter applies (HF rotary halves -> interleaved pairs).

    transformers undoes it when it reads a llama GGUF (`LlamaTensorProcessor`), so the file must
    hold the permuted rows for the load to give back the HF-layout tensor. For K, `n_head` is the
    number of KV heads.
    """
    rows = weight.shape[0]
    return (
        weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


# transformers name (after "model.layers.N.") -> GGUF name (after "blk.N.").
_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_tensor_name(hf_name: str) -> str:
    """The GGUF name of a transformers parameter of the tiny model."""
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    _, _, layer, rest = hf_name.split(".", 3)
    return f"blk.{layer}.{_LAYER_NAMES[rest]}"


def write_tiny_llama_gguf(path: Path, *, seed: int = 0) -> Path:
    """Write the tiny model to `path` (a `.gguf` file) and return `path`.

    The same seed always gives the same weights: those of `tiny_llama_weights(seed)`.
    """
    spec = TINY_LLAMA
    tokens = tiny_llama_tokens()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    writer = GGUFWriter(path, "llama")
    # general.name must not contain "mistral": transformers would then read the file as Mistral.
    writer.add_name("chunkscope tiny llama")
    writer.add_file_type(LlamaFileType.MOSTLY_F16)
    writer.add_vocab_size(len(tokens))
    writer.add_context_length(spec.max_position_embeddings)
    writer.add_embedding_length(spec.hidden_size)
    writer.add_block_count(spec.num_hidden_layers)
    writer.add_feed_forward_length(spec.intermediate_size)
    writer.add_head_count(spec.num_attention_heads)
    writer.add_head_count_kv(spec.num_key_value_heads)
    # transformers takes head_dim from here for llama.
    writer.add_rope_dimension_count(spec.head_dim)
    writer.add_rope_freq_base(spec.rope_theta)
    writer.add_layer_norm_rms_eps(spec.rms_norm_eps)

    # Byte-level BPE ("gpt2" in llama.cpp's terms): transformers builds a GPT2Tokenizer from the
    # token list and merges, which needs no model file and round-trips any text.
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_merges(list(MERGES))
    writer.add_token_types(
        [TokenType.CONTROL if t in SPECIAL_TOKENS else TokenType.NORMAL for t in tokens]
    )
    writer.add_bos_token_id(BOS_TOKEN_ID)
    writer.add_eos_token_id(EOS_TOKEN_ID)
    writer.add_unk_token_id(UNK_TOKEN_ID)
    writer.add_pad_token_id(PAD_TOKEN_ID)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    for hf_name, weight in tiny_llama_weights(seed, spec).items():
        if hf_name.endswith("q_proj.weight"):
            weight = llama_cpp_permute(weight, spec.num_attention_heads)
        elif hf_name.endswith("k_proj.weight"):
            weight = llama_cpp_permute(weight, spec.num_key_value_heads)
        # As llama.cpp stores an f16 model: matrices in f16, norm vectors in f32. The writer takes
        # the GGML type from the array's dtype.
        dtype = np.float16 if weight.ndim == 2 else np.float32
        writer.add_tensor(gguf_tensor_name(hf_name), np.ascontiguousarray(weight, dtype=dtype))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
