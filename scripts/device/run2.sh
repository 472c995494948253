#!/usr/bin/env bash
# On the GPU host, second copy, right after run1.sh (see pack.sh): joins and checks the model,
# runs scripts/gpu_experiment.sh within $1 seconds, and sends the results folder back in $OUT
# (the device tool's folder: at most 8 files, so the folder travels as one tarball).
set -u
t0=$(date +%s)
mkdir -p models
cat /tmp/coe/model.part-a .dev/b/model.part-b >models/SmolLM2-135M-Instruct.Q4_1.gguf
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  models/SmolLM2-135M-Instruct.Q4_1.gguf" \
  | sha256sum -c || exit 3
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/*.whl && export PYTHONPATH=/tmp/site
TL=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
export LD_LIBRARY_PATH=$TL COE=/tmp/coe/coe COE_BENCH_PYTHON=$(command -v python3)
calib=/tmp/coe/calib-sft.json; [ -s "$calib" ] || calib=
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr '[:upper:]' '[:lower:]' \
  | sed -E 's/nvidia //; s/[^a-z0-9]+/-/g; s/-+$//')
res=results/$(date +%F)-$card # the script's own default, named here to find it afterwards
secs=$(( ${1:-540} - ($(date +%s) - t0) - 15 ))
EXP_OUT=$res EXP_DATA=/tmp/coe/data EXP_CALIB=$calib EXP_SECONDS=$secs \
  bash scripts/gpu_experiment.sh 2>&1 | tee /tmp/run2.log
cp /tmp/run2.log "$res/logs/run2.log"
cp "$res/results.md" "$OUT/"
tar czf "$OUT/results.tgz" "$res" runs/exp-*/events.jsonl
echo "run2 done in $(( $(date +%s) - t0 )) s"
