#!/usr/bin/env bash
# Packs the GPU experiment for a GPU host that takes at most 64 MiB per copy (the device tool
# of this workplace): part a (binary, data, the model's first 50 MB, run1.sh) and part b (the
# rest of the model, run2.sh), under .dev/ (git-ignored). Then:
#   run `bash .dev/a/run1.sh` carrying .dev/a              (keeps part a in /tmp/coe, ~20 s)
#   run `bash .dev/b/run2.sh SECS` carrying .dev/b and .whl (at once, while the host is warm)
# .whl holds the gguf wheel: pip download --no-deps --only-binary=:all: --python-version 3.12 \
#   --implementation cp --platform manylinux_2_17_x86_64 -d .whl gguf==0.19.0
# Needs: a release build, models/ (scripts/setup.sh) and a `coe data gen` folder (DATA, default
# runs/gpu-data, made from datasets/problems.jsonl with --per-problem 4 if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${DATA:-runs/gpu-data}
[ -x target/release/coe ] || { echo "pack: build first: cargo build --release" >&2; exit 1; }
[ -s "$data/train.demos.jsonl" ] ||
  target/release/coe data gen --problems datasets/problems.jsonl --out "$data" --per-problem 4
rm -rf .dev/a .dev/b && mkdir -p .dev/a/tok .dev/b
cp target/release/coe .dev/a/coe && strip .dev/a/coe
tar czf .dev/a/data.tgz -C "$data" .
target/release/coe model tiny --out .dev/tiny >/dev/null # only for its tokenizer files
cp .dev/tiny/tokenizer.json .dev/tiny/tokenizer_config.json .dev/a/tok/ && rm -rf .dev/tiny
split -b 50000000 -d -a 1 models/SmolLM2-135M-Instruct.Q4_1.gguf .dev/model.part-
mv .dev/model.part-0 .dev/a/model.part-a && mv .dev/model.part-1 .dev/b/model.part-b
cp scripts/device/run1.sh .dev/a/ && cp scripts/device/run2.sh .dev/b/
echo "pack: tree $(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1) bytes;" \
  "a $(du -sb .dev/a | cut -f1), b $(du -sb .dev/b | cut -f1) (each with the tree: < 67108864)"
