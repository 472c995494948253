#!/usr/bin/env python3
"""The PyTorch + PEFT reference of `coe bench sft`: LoRA fine-tuning throughput on exactly
the batches the Rust side trains.

Input: a JSON file `{"batches": [[{"ids": [int...], "loss_mask": [0|1...]}, ...], ...]}`;
each inner list is one optimizer step's batch of sequences. `loss_mask[i] = 1` means token
i is a target, predicted from position i - 1 (so `loss_mask[0]` is ignored), as in
src/train/tokens.rs.

Each step: the batch is right-padded into one tensor with an attention mask on the real
tokens; a plain `transformers` forward with `labels` (ids where the mask is 1, -100
elsewhere) gives the mean cross-entropy over all targets of the step; backward; the
LoRA gradients are clipped to norm 1.0 and `torch.optim.AdamW` (betas 0.9 / 0.999,
eps 1e-8, no weight decay: the Rust SFT defaults) steps on the LoRA parameters only,
at a constant --lr. LoRA comes from `peft.LoraConfig` on the loaded model; all-linear
means q, k, v, o, gate, up and down projections (not lm_head), as src/model/lora.rs.

What it measures: the first --warmup-batches batches are run untimed; then the wall time
over the remaining batches (synchronised on CUDA), and tokens = the non-pad tokens of
those batches. It prints one JSON object on stdout: steps and tokens timed, seconds,
tokens_per_s, loss_first / loss_last (the first and last step's loss, warm-up included),
peak_mem_mib (CUDA: peak allocated by torch; CPU: the process's peak resident set),
device, dtype and the torch / transformers / peft versions.

    .venv/bin/python scripts/reference_sft.py --model models/tiny --batches b.json \
        --device cpu --threads 2
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import peft
import torch
from transformers import AutoModelForCausalLM
from transformers.utils import logging


ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CLIP_NORM = 1.0


def fail(message):
    sys.exit(f"reference_sft: {message}")


def is_ids(value):
    return isinstance(value, list) and value and all(isinstance(i, int) and i >= 0 for i in value)


def load_batches(path):
    """The batches of the file, checked; errors name the batch and sequence."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")
    batches = data.get("batches") if isinstance(data, dict) else None
    if not isinstance(batches, list) or not batches:
        fail(f'{path}: expected {{"batches": [[{{"ids", "loss_mask"}}, ...], ...]}}')
    for b, batch in enumerate(batches):
        if not isinstance(batch, list) or not batch:
            fail(f"{path}: batches[{b}]: expected a non-empty list of sequences")
        for s, seq in enumerate(batch):
            where = f"{path}: batches[{b}][{s}]"
            if not isinstance(seq, dict) or not is_ids(seq.get("ids")):
                fail(f"{where}: `ids` must be a non-empty list of token ids")
            mask = seq.get("loss_mask")
            if not isinstance(mask, list) or len(mask) != len(seq["ids"]) or any(
                m not in (0, 1) for m in mask
            ):
                fail(f"{where}: `loss_mask` must be 0/1 values, one per id")
        if not any(any(seq["loss_mask"][1:]) for seq in batch):
            fail(f"{path}: batches[{b}] has no target (a loss_mask 1 after position 0)")
    return batches


def to_tensors(batch, device):
    """Right-padded ids, attention mask and labels (-100 where nothing is learned)."""
    width = max(len(seq["ids"]) for seq in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    attention = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for row, seq in enumerate(batch):
        n = len(seq["ids"])
        ids[row, :n] = torch.tensor(seq["ids"])
        attention[row, :n] = 1
        labels[row, :n] = torch.where(torch.tensor(seq["loss_mask"]) == 1, ids[row, :n], -100)
    return ids.to(device), attention.to(device), labels.to(device)


def peak_mem_mib(device):
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def load_model(path, dtype, device):
    path = Path(path)
    if path.suffix == ".gguf":
        where, extra = str(path.parent), {"gguf_file": path.name}
    else:
        where, extra = str(path), {}
    return AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **extra).to(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a .gguf file or a Hugging Face model dir")
    ap.add_argument("--batches", required=True, help='JSON {"batches": [[{"ids", "loss_mask"}]]}')
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 leaves the default")
    ap.add_argument("--lora-rank", type=int, default=16)
    ap.add_argument("--lora-alpha", type=float, default=32.0)
    ap.add_argument("--lora-dropout", type=float, default=0.0)
    ap.add_argument("--lora-targets", default="all-linear", help="all-linear or e.g. q_proj,v_proj")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--warmup-batches", type=int, default=1)
    args = ap.parse_args()
    batches = load_batches(args.batches)
    if not 0 <= args.warmup_batches < len(batches):
        ap.error(f"--warmup-batches must leave at least one of the {len(batches)} batches to time")
    targets = ALL_LINEAR if args.lora_targets == "all-linear" else args.lora_targets.split(",")
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)  # deprecations inside peft
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, getattr(torch, args.dtype), args.device)
    top = max(max(seq["ids"]) for batch in batches for seq in batch)
    if top >= model.config.vocab_size:
        fail(f"{args.batches}: token id {top} is outside the vocabulary of {args.model}")
    lora = peft.LoraConfig(
        r=args.lora_rank,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    model = peft.get_peft_model(model, lora)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    losses, tokens, start = [], 0, None
    for step, batch in enumerate(batches):
        if step == args.warmup_batches:
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
        ids, attention, labels = to_tensors(batch, args.device)
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step >= args.warmup_batches:
            tokens += sum(len(seq["ids"]) for seq in batch)
        print(f"step {step + 1}/{len(batches)}: loss {losses[-1]:.4f}", file=sys.stderr)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "steps": len(batches) - args.warmup_batches,
                "tokens": tokens,
                "seconds": seconds,
                "tokens_per_s": tokens / seconds,
                "loss_first": losses[0],
                "loss_last": losses[-1],
                "peak_mem_mib": peak_mem_mib(args.device),
                "device": args.device,
                "dtype": args.dtype,
                "torch": torch.__version__,
                "transformers": __import__("transformers").__version__,
                "peft": peft.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
