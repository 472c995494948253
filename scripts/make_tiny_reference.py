#!/usr/bin/env python3
"""Writes the tiny-Llama reference fixture used by tests/model_tiny.rs.

A random `transformers` LlamaForCausalLM small enough to commit (GQA 4/2 heads,
untied head, Llama-3 RoPE scaling with a short original context so all three
frequency bands occur) is saved as two BF16 shards plus an index, with weights
rounded to BF16 first so the file *is* the model the reference ran. Alongside:
reference logits for two prompts run alone, greedy continuation ids, and a PEFT
LoRA adapter (random non-zero B) saved by `save_pretrained` with its logits.

The Rust tests never run Python; rerun this only to regenerate the fixture:

    .venv/bin/python scripts/make_tiny_reference.py tests/fixtures/tiny_llama
"""

import json
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/tiny_llama"
SEQ_A = [1, 17, 42, 5, 88, 3, 60]
SEQ_B = [1, 9, 71, 33]
GREEDY_STEPS = 6

# The config.json written for Rust, in the classic HF layout `LlamaConfig` parses.
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 96,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "rope_scaling": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    },
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
}


def build_model():
    torch.manual_seed(0)
    hf_cfg = {k: v for k, v in CONFIG.items() if k not in ("architectures", "model_type")}
    cfg = LlamaConfig(**hf_cfg, initializer_range=0.2)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:  # ones by default: perturb so norm weights are exercised
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            p.copy_(p.to(torch.bfloat16).float())
    return model


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float().contiguous()


def greedy(model, ids, steps):
    ids = list(ids)
    out = []
    for _ in range(steps):
        last = logits_of(model, ids)[-1]
        top2 = torch.topk(last, 2).values
        assert top2[0] - top2[1] > 1e-3, "near tie: pick another seed"
        nxt = int(last.argmax())
        out.append(nxt)
        ids.append(nxt)
    return out


def save_shards(model, out):
    state = {k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    first = {k: v for k, v in state.items() if k.startswith("model.embed_tokens") or ".layers.0." in k}
    second = {k: v for k, v in state.items() if k not in first}
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    weight_map = {}
    for shard, part in zip(names, [first, second]):
        save_file(part, os.path.join(out, shard), metadata={"format": "pt"})
        weight_map.update({k: shard for k in part})
    total = sum(v.numel() * v.element_size() for v in state.values())
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=1, sort_keys=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    model = build_model()
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=1)
    save_shards(model, OUT)
    expected = {"logits_a": logits_of(model, SEQ_A), "logits_b": logits_of(model, SEQ_B)}
    ids = {"seq_a": SEQ_A, "seq_b": SEQ_B, "greedy_a": greedy(model, SEQ_A, GREEDY_STEPS)}

    torch.manual_seed(1)
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "down_proj"],
                      task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora).eval()
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.5 * torch.randn_like(p))
    expected["logits_a_adapter"] = logits_of(peft_model, SEQ_A)
    adapter_dir = os.path.join(OUT, "adapter")
    peft_model.save_pretrained(adapter_dir)
    readme = os.path.join(adapter_dir, "README.md")
    if os.path.exists(readme):
        os.remove(readme)

    save_file(expected, os.path.join(OUT, "expected.safetensors"))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(ids, f, indent=1)


if __name__ == "__main__":
    main()
