#!/usr/bin/env python3
"""Reference token ids and chat renders for tests/tokenizer_parity.rs.

Loads the default model's tokenizer the way `transformers` does for a GGUF file
(AutoTokenizer with gguf_file=..., which needs the `gguf` package) and writes
tests/fixtures/tokenizer/smollm2_ids.json: for each corpus string its ids (no special tokens
added) and their decoding, and for a few conversations the text `apply_chat_template` renders
and its ids. Run from the repository root after set-up has fetched the model:

    .venv/bin/python scripts/make_tokenizer_reference.py
"""

import hashlib
import json
from pathlib import Path

from transformers import AutoTokenizer

MODEL_DIR = Path("models")
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = Path("tests/fixtures/tokenizer/smollm2_ids.json")

STATE = "L1 def gcd(a, b):\nL2     if b == 0:\nL3         return a\nL4     else:\nL5         return gcd(a % b, b)\n***\nTest 1 failed: assert gcd(35, 21) == 7\nRecursionError: maximum recursion depth exceeded (L5)"

CORPUS = [
    "",
    " ",
    "hello world",
    "Hello, World!",
    "  leading spaces",
    "trailing spaces   ",
    "def add(a, b):\n    return a + b\n",
    "def f(x):\n\tif x:\n\t\treturn 1\n\treturn 0",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n        self.items.append(x)\n",
    "for i in range(10):\n    print(i ** 2, end=' ')",
    "assert gcd(35, 21) == 7",
    "x = [1, 22, 333, 4444, 55555, 1234567890]",
    "3.14159 2e-10 0x1F 1_000_000",
    "s = 'it's' + \"quoted\" + '''triple'''",
    "# comment with émojis 🚀 and ünïcödé",
    "print('日本語のテキスト')  # CJK",
    "λx. x → y ≤ z ≠ w",
    "   \n\n\n   \t  \r\n",
    "a\r\nb\r\n",
    "### DELL 3",
    "### ADDL 2 >>>    return a",
    "### REPL 5 >>>        return gcd(b, a % b)",
    "### REPW 3 >>>a < b >>>a <= b",
    "### REPW 12 >>>x+=1 >>>x -= 1",
    "### EXIT",
    "DELL 7   ",
    STATE,
    "Invalid command: unknown keyword 'FOO' (expected DELL, ADDL, REPL, REPW or EXIT)",
    "SyntaxError at L3: invalid syntax",
    "Test 2 timed out after 5s",
    "(3 more tests failed)",
    "<|im_start|>user\nFix the code.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>assistant\n### DELL 2<|im_end|>",
    "text<|im_end|>more text<|endoftext|>",
    "<|im_start|><|im_end|><|im_start|>",
    "not special: <|im_sta rt|> <im_start> |im_end|",
    "<repo_name>foo<file_sep>bar.py<gh_stars>10",
    "if a<b and b>c: pass  # <b>html</b>",
    "don't can't won't I'm you're we've they'll he'd",
    "C'EST LA VIE. IT'S FINE",
    "\u00a0non-breaking\u2003em space\u200bzero width",
]

SYSTEM = "You repair Python code with editor commands."
CONVERSATIONS = [
    ([{"role": "user", "content": "hi"}], True),
    ([{"role": "user", "content": "hi"}], False),
    ([{"role": "system", "content": SYSTEM}, {"role": "user", "content": STATE}], True),
    (
        [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": STATE},
            {"role": "assistant", "content": "### REPL 5 >>>        return gcd(b, a % b)"},
            {"role": "user", "content": "L1 def gcd(a, b):\n***\nAll tests passed."},
            {"role": "assistant", "content": "### EXIT"},
        ],
        False,
    ),
    ([{"role": "user", "content": "Fix it."}, {"role": "assistant", "content": "### DELL 1"}], True),
]


def main():
    model = MODEL_DIR / MODEL_FILE
    tok = AutoTokenizer.from_pretrained(str(MODEL_DIR), gguf_file=MODEL_FILE)
    corpus = []
    for text in CORPUS:
        ids = tok(text, add_special_tokens=False).input_ids
        corpus.append({"text": text, "ids": ids, "decoded": tok.decode(ids)})
    chats = []
    for messages, add_generation_prompt in CONVERSATIONS:
        rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        ids = tok(rendered, add_special_tokens=False).input_ids
        chats.append({"messages": messages, "add_generation_prompt": add_generation_prompt, "rendered": rendered, "ids": ids})
    reference = {
        "model_file": MODEL_FILE,
        "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "bos_token_id": tok.convert_tokens_to_ids(tok.bos_token),
        "eos_token_id": tok.convert_tokens_to_ids(tok.eos_token),
        "vocab_size": len(tok),
        "corpus": corpus,
        "chats": chats,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(reference, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT}: {len(corpus)} strings, {len(chats)} conversations")


if __name__ == "__main__":
    main()
