#!/usr/bin/env python3
"""Reference logits and greedy continuations of the default model for tests/parity.rs.

Loads models/SmolLM2-135M-Instruct.Q4_1.gguf with `transformers` (which dequantises it with
the `gguf` package) in float32 on the CPU, and writes tests/fixtures/parity/smollm2.json: for
each prompt its ids (raw text, no special tokens added), the logits after the last prompt
token at the top-20 ids and a few fixed ids (the full 49,152-logit row is too big to commit),
and a greedy continuation of 32 tokens computed by full re-evaluation each step (no cache,
no stop tokens), so the Rust side checks its KV cache against a cache-free reference.
Run from the repository root after set-up has fetched the model:

    .venv/bin/python scripts/make_parity_reference.py
"""

import hashlib
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

MODEL_DIR = Path("models")
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = Path("tests/fixtures/parity/smollm2.json")
TOP = 20
FIXED_IDS = [0, 1, 2, 3, 100, 1000, 10000, 49151]
CONTINUATION = 32

STATE = (
    "L1 def gcd(a, b):\nL2     if b == 0:\nL3         return a\nL4     else:\n"
    "L5         return gcd(a % b, b)\n***\nTest 1 failed: assert gcd(35, 21) == 7\n"
    "RecursionError: maximum recursion depth exceeded (L5)"
)

PROMPTS = [
    "def add(a, b):",
    "import sys\n\nfor line in sys.stdin:\n    words = line.split()\n    print(len(words))\n",
    "<|im_start|>user\nFix the code with one command.\n\n"
    + STATE
    + "<|im_end|>\n<|im_start|>assistant\n",
    "The capital of France is",
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def last_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1].float()


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(str(MODEL_DIR), gguf_file=MODEL_FILE)
    model = AutoModelForCausalLM.from_pretrained(
        str(MODEL_DIR), gguf_file=MODEL_FILE, torch_dtype=torch.float32
    )
    model.eval()
    cases = []
    for prompt in PROMPTS:
        ids = tok(prompt, add_special_tokens=False).input_ids
        logits = last_logits(model, ids)
        top = torch.topk(logits, TOP)
        wanted = top.indices.tolist() + [i for i in FIXED_IDS if i not in top.indices]
        seq = list(ids)
        for _ in range(CONTINUATION):
            seq.append(int(torch.argmax(last_logits(model, seq))))
        cases.append(
            {
                "prompt": prompt,
                "prompt_ids": ids,
                "top_ids": top.indices.tolist(),
                "logits": {str(i): float(logits[i]) for i in wanted},
                "greedy": seq[len(ids) :],
                "greedy_text": tok.decode(seq[len(ids) :]),
                "top1_token": tok.decode([int(top.indices[0])]),
            }
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "model": MODEL_FILE,
        "sha256": sha256(MODEL_DIR / MODEL_FILE),
        "transformers": __import__("transformers").__version__,
        "torch": torch.__version__,
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
