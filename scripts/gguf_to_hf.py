#!/usr/bin/env python3
"""Converts a GGUF model to a Hugging Face directory with `transformers` (which dequantizes
it to float32), so the Python baselines of `coe bench` load it in a second instead of
converting the GGUF on every load (~20 s). Same weights, same tokenizer and chat template.

    python3 scripts/gguf_to_hf.py models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/smollm2-hf
    COE_BENCH_BASELINE_MODEL=/tmp/smollm2-hf coe bench decode ...
"""

import sys
import time
from pathlib import Path


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gguf_to_hf.py MODEL.gguf OUT_DIR")
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    if not src.is_file():
        sys.exit(f"gguf_to_hf: {src}: no such file")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name,
                                                  dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained (it counts as quantized); a plain model of
    # the same config with the same (dequantized) weights does not.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    tmp = out.with_name(out.name + ".part")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out)
    print(f"gguf_to_hf: wrote {out} in {time.time() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
