#!/usr/bin/env python3
"""The `transformers` side of `coe bench decode` (src/bench/decode.rs runs it).

Loads a GGUF model with `transformers` (float32 on the CPU unless --dtype / --device say
otherwise) and measures, for each batch size, greedy `generate` on a given prompt repeated
per row: the time for one new token (prefill) and for N new tokens with end-of-sequence
disabled, so exactly N are produced.
Prefill rate = rows * prompt tokens / t(1); decode rate = rows * (N - 1) / (t(N) - t(1)),
the same formulas the Rust side uses. On CUDA every timing starts and ends with
`torch.cuda.synchronize()`. Prints one JSON object on stdout.

    .venv/bin/python scripts/bench_decode_hf.py --gguf models/X.gguf --threads 2 \
        --batch-sizes 1,8 --new-tokens 16 --prompt-ids ids.json [--device cuda --dtype bfloat16]
"""

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM
from transformers.utils import logging


REPEATS = 2


def peak_rss_mib():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec, so
    # it would report the Rust process's peak instead of ours.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_of(model, input_ids, new_tokens):
    return min(timed_generate(model, input_ids, new_tokens) for _ in range(REPEATS))


def timed_generate(model, input_ids, new_tokens):
    mask = torch.ones_like(input_ids)
    synchronize(input_ids.device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            input_ids,
            attention_mask=mask,
            do_sample=False,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            pad_token_id=0,
        )
    synchronize(input_ids.device)
    elapsed = time.perf_counter() - start
    assert out.shape[1] == input_ids.shape[1] + new_tokens, out.shape
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True, help="a .gguf file or a Hugging Face model dir")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch-sizes", required=True)
    ap.add_argument("--new-tokens", type=int, required=True)
    ap.add_argument("--prompt-ids", required=True, help="a JSON file holding a list of ids")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = ap.parse_args()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gguf = Path(args.gguf)
    where, extra = (str(gguf), {}) if gguf.is_dir() else (str(gguf.parent), {"gguf_file": gguf.name})
    ids = json.loads(Path(args.prompt_ids).read_text())
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        where, dtype=getattr(torch, args.dtype), **extra
    ).to(device)
    model.eval()
    synchronize(device)
    load_s = time.perf_counter() - start
    timed_generate(model, torch.tensor([ids], device=device), 2)  # warm-up
    rows = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        input_ids = torch.tensor([ids] * batch, device=device)
        t_first = best_of(model, input_ids, 1)
        t_all = best_of(model, input_ids, args.new_tokens)
        rows.append(
            {
                "batch": batch,
                "prefill_s": t_first,
                "generate_s": t_all,
                "prefill_tok_s": batch * len(ids) / t_first,
                "decode_tok_s": batch * (args.new_tokens - 1) / max(t_all - t_first, 1e-9),
            }
        )
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "transformers": __import__("transformers").__version__,
                "device": args.device,
                "dtype": args.dtype,
                "load_s": load_s,
                "peak_rss_mib": peak_rss_mib(),
                "per_batch": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
