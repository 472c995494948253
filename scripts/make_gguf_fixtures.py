#!/usr/bin/env python3
"""Reference data for the GGUF loader tests (tests/gguf.rs), written to tests/fixtures/gguf/.

Needs the `gguf` Python package (and `transformers` for its independent Q/K un-permute); the
Rust tests only read what this writes. Run from the repository root:

    .venv/bin/python scripts/make_gguf_fixtures.py

Outputs (all small, committed):
  <TYPE>.bin / <TYPE>.f32  raw ggml blocks of 512 elements and gguf-py's dequantisation (f32 LE).
                           Types with a gguf-py quantiser get one row quantised from random data
                           and one row of random block bytes (every bit pattern, finite scales);
                           Q4_K/Q6_K (no quantiser in gguf-py) get random block bytes only.
  permute.json             HF-order matrices and llama.cpp's permutation of their rows.
  tiny_llama.gguf          a 2-layer Llama written by gguf-py's GGUFWriter, every supported type.
  tiny_llama.json          what loading it must give: config, per-tensor checksums, token ids.
  smollm2_tensors.json     checksums of a few tensors of the default model as `transformers`
                           loads them (only if models/SmolLM2-135M-Instruct.Q4_1.gguf exists;
                           loading takes a few minutes on a CPU).
"""

import json
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

OUT = Path("tests/fixtures/gguf")
RNG = np.random.default_rng(20260101)
N = 512  # two K super-blocks, sixteen 32-blocks

BLOCK_BYTES = {T.Q8_0: 34, T.Q4_0: 18, T.Q4_1: 20, T.Q4_K: 144, T.Q6_K: 210}
BLOCK_ELEMS = {T.Q8_0: 32, T.Q4_0: 32, T.Q4_1: 32, T.Q4_K: 256, T.Q6_K: 256}
# Byte offsets of the f16 scales in each block: random bytes there could be inf/nan.
SCALE_OFFSETS = {T.Q8_0: [0], T.Q4_0: [0], T.Q4_1: [0, 2], T.Q4_K: [0, 2], T.Q6_K: [208]}


def random_blocks(qtype, n_elems):
    n_blocks = n_elems // BLOCK_ELEMS[qtype]
    raw = RNG.integers(0, 256, size=(n_blocks, BLOCK_BYTES[qtype]), dtype=np.uint8)
    for off in SCALE_OFFSETS[qtype]:
        scale = RNG.uniform(-0.05, 0.05, size=n_blocks).astype(np.float16)
        raw[:, off : off + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(-1)


def float_rows(qtype):
    values = RNG.normal(size=N).astype(np.float32)
    if qtype == T.F32:
        values[:4] = [0.0, -0.0, np.inf, 1e-40]  # signed zero, infinity, subnormal
        return values.view(np.uint8)
    if qtype == T.F16:
        bits = RNG.integers(0, 0x7C00, size=N, dtype=np.uint16)  # finite magnitudes
        bits |= RNG.integers(0, 2, size=N, dtype=np.uint16) << 15
        bits[:4] = [0x0001, 0x03FF, 0x7C00, 0x8000]  # subnormals, infinity, -0
        return bits.view(np.uint8)
    bits = RNG.integers(0, 0x7F80, size=N, dtype=np.uint16)  # BF16, finite
    bits |= RNG.integers(0, 2, size=N, dtype=np.uint16) << 15
    return bits.view(np.uint8)


def write_block_fixtures():
    for qtype in [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q4_K, T.Q6_K]:
        if qtype in (T.F32, T.F16, T.BF16):
            raw = float_rows(qtype)
        elif qtype in (T.Q4_K, T.Q6_K):
            raw = random_blocks(qtype, N)
        else:
            quantised = quantize(RNG.normal(size=(1, N // 2)).astype(np.float32), qtype).reshape(-1)
            raw = np.concatenate([quantised, random_blocks(qtype, N // 2)])
        ref = dequantize(raw.reshape(1, -1), qtype).astype("<f4").reshape(-1)
        assert ref.size == N, (qtype.name, ref.size)
        (OUT / f"{qtype.name}.bin").write_bytes(raw.tobytes())
        (OUT / f"{qtype.name}.f32").write_bytes(ref.tobytes())


def llama_cpp_permute(w, n_head):
    """The row permutation llama.cpp's convert_hf_to_gguf.py applies to Q and K."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_unpermute(w, n_head):
    """transformers' own inverse, an independent check on ours."""
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    return LlamaTensorProcessor()._reverse_permute_weights(w, n_head, n_head)


def write_permute_fixture():
    cases = []
    for n_head, head_dim, cols in [(3, 4, 5), (2, 8, 3), (1, 2, 1)]:
        hf = np.arange(n_head * head_dim * cols, dtype=np.float32).reshape(n_head * head_dim, cols)
        permuted = llama_cpp_permute(hf, n_head)
        assert np.array_equal(hf_unpermute(permuted, n_head), hf)
        cases.append({"n_heads": n_head, "cols": cols, "hf": hf.ravel().tolist(), "gguf": permuted.ravel().tolist()})
    (OUT / "permute.json").write_text(json.dumps(cases, indent=1) + "\n")


# ---- the tiny model -------------------------------------------------------------------------

HIDDEN, INTER, LAYERS, HEADS, KV_HEADS = 64, 256, 2, 4, 2
THETA, ORIGINAL_CTX, ROPE_FACTOR = 500000.0, 8192, 8.0
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def byte_alphabet():
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return [bytes_to_unicode()[b] for b in range(256)]


def tiny_vocab():
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "d e", "de f", "Ċ Ġ", "Ġ Ġ", "ĠĠ ĠĠ", "r e", "re t"]
    merged = ["".join(m.split(" ")) for m in merges]
    tokens = specials + byte_alphabet() + merged + ["<think>"]
    types = [3] * len(specials) + [1] * (256 + len(merged)) + [4]
    return tokens, types, merges


def llama3_rope_factors(head_dim):
    """Per-frequency factors as llama.cpp's converter computes them for Llama-3 scaling."""
    freqs = 1.0 / (THETA ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    low_wavelen, high_wavelen = ORIGINAL_CTX / 1.0, ORIGINAL_CTX / 4.0
    factors = []
    for freq in freqs:
        wavelen = 2 * np.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(ROPE_FACTOR)
        else:
            smooth = (ORIGINAL_CTX / wavelen - 1.0) / (4.0 - 1.0)
            factors.append(1 / ((1 - smooth) / ROPE_FACTOR + smooth))
    return np.array(factors, dtype=np.float32)


def checksum(values):
    """Position-weighted sum, so a permutation of the values changes it."""
    v = values.astype(np.float64).ravel()
    return float(np.sum(v * (np.arange(v.size) % 7 + 1)))


def write_tiny_model():
    tokens, types, merges = tiny_vocab()
    vocab, head_dim = len(tokens), HIDDEN // HEADS
    kv_dim = KV_HEADS * head_dim
    # (gguf name, HF shape, storage type). Q/K are permuted before storage, as llama.cpp does.
    plan = [("token_embd", [vocab, HIDDEN], T.Q8_0), ("output_norm", [HIDDEN], T.F32), ("output", [vocab, HIDDEN], T.Q4_0)]
    layer_types = [
        {"attn_q": T.F32, "attn_k": T.F16, "attn_v": T.BF16, "attn_output": T.Q4_0, "ffn_gate": T.Q4_1, "ffn_up": T.Q8_0, "ffn_down": T.Q6_K},
        {"attn_q": T.Q8_0, "attn_k": T.Q4_1, "attn_v": T.Q4_0, "attn_output": T.F16, "ffn_gate": T.Q4_0, "ffn_up": T.Q8_0, "ffn_down": T.Q4_K},
    ]
    shapes = {"attn_q": [HIDDEN, HIDDEN], "attn_k": [kv_dim, HIDDEN], "attn_v": [kv_dim, HIDDEN], "attn_output": [HIDDEN, HIDDEN],
              "ffn_gate": [INTER, HIDDEN], "ffn_up": [INTER, HIDDEN], "ffn_down": [HIDDEN, INTER]}
    for layer, kinds in enumerate(layer_types):
        plan += [(f"blk.{layer}.attn_norm", [HIDDEN], T.F32), (f"blk.{layer}.ffn_norm", [HIDDEN], T.F32)]
        plan += [(f"blk.{layer}.{short}", shapes[short], qtype) for short, qtype in kinds.items()]

    writer = gguf.GGUFWriter(str(OUT / "tiny_llama.gguf"), "llama")
    writer.add_name("tiny test llama")
    writer.add_block_count(LAYERS)
    writer.add_context_length(131072)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(INTER)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(THETA)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template(SMOLLM2_TEMPLATE)

    expected = {}
    writer.add_tensor("rope_freqs.weight", llama3_rope_factors(head_dim))
    for name, shape, qtype in plan:
        hf = RNG.normal(size=shape).astype(np.float32)
        if name.endswith(("attn_norm", "ffn_norm", "output_norm")):
            hf = 1.0 + 0.1 * hf
        short = name.split(".")[-1]
        heads = {"attn_q": HEADS, "attn_k": KV_HEADS}.get(short)
        stored = llama_cpp_permute(hf, heads) if heads else hf
        if qtype in (T.Q4_K, T.Q6_K):
            raw = random_blocks(qtype, stored.size).reshape(shape[0], -1)
        elif qtype in (T.F32,):
            raw = stored
        else:
            raw = quantize(stored, qtype)
        writer.add_tensor(f"{name}.weight", raw, raw_dtype=qtype)
        values = dequantize(raw, qtype).reshape(shape) if qtype != T.F32 else stored
        if heads:
            values = hf_unpermute(values, heads)
        expected[name] = {"type": qtype.name, "shape": shape, "checksum": checksum(values), "first": values.ravel()[:4].tolist()}

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return expected


def tiny_token_ids():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(OUT), gguf_file="tiny_llama.gguf")
    texts = ["the thin def", "<|im_start|>user\n  ret <think> x<|im_end|>", "\n    return a", "héllo ✓"]
    return [{"text": t, "ids": tok(t, add_special_tokens=False).input_ids} for t in texts]


def default_model_tensors():
    """A few tensors of the default model, dequantised and un-permuted by transformers."""
    from transformers import AutoModelForCausalLM

    model_file = "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not (Path("models") / model_file).exists():
        print("models/ has no default model; skipping smollm2_tensors.json")
        return
    state = AutoModelForCausalLM.from_pretrained("models", gguf_file=model_file).state_dict()
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    names += [f"model.layers.0.{p}.weight" for p in ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "input_layernorm"]]
    names += [f"model.layers.29.{p}.weight" for p in ["self_attn.k_proj", "mlp.down_proj", "mlp.gate_proj"]]
    out = {}
    for name in names:
        values = state[name].float().numpy()
        out[name] = {"shape": list(values.shape), "checksum": checksum(values), "first": values.ravel()[:4].tolist()}
    (OUT / "smollm2_tensors.json").write_text(json.dumps(out, indent=1) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    write_block_fixtures()
    write_permute_fixture()
    tensors = write_tiny_model()
    reference = {
        "config": {"hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
                   "num_key_value_heads": KV_HEADS, "rope_theta": THETA, "max_position_embeddings": 131072,
                   "rope_scaling": {"factor": ROPE_FACTOR, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                    "original_max_position_embeddings": ORIGINAL_CTX}},
        "tensors": tensors,
        "tokens": tiny_token_ids(),
    }
    (OUT / "tiny_llama.json").write_text(json.dumps(reference, indent=1) + "\n")
    default_model_tensors()
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total} bytes, to {OUT}")


if __name__ == "__main__":
    main()
