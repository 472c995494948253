#!/usr/bin/env bash
# On the GPU host, first copy (see pack.sh): keeps part a in /tmp/coe, checks CUDA, and
# measures SFT tokens/s on a random model of SmolLM2-135M's shape (the experiment's token
# budget). With SMOKE=1 it also runs the whole experiment in --tiny mode on CUDA (~100 s).
set -u
t0=$(date +%s)
mkdir -p /tmp/coe/data && cp -r .dev/a/. /tmp/coe/ && tar xzf /tmp/coe/data.tgz -C /tmp/coe/data
TL=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
export LD_LIBRARY_PATH=$TL COE=/tmp/coe/coe COE_BENCH_PYTHON=$(command -v python3)
r=/tmp/r1 && mkdir -p $r
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; $COE --version; } 2>&1 | tee $r/facts.txt
if [ "${SMOKE:-0}" = 1 ]; then
  $COE model tiny --tokenizer-from /tmp/coe/tok --out /tmp/coe/tiny >/dev/null 2>&1
  EXP_OUT=$r/tiny-cuda EXP_TAG=exp-r1 EXP_MODEL=/tmp/coe/tiny EXP_DEVICE=cuda EXP_DTYPE=bf16 \
    EXP_THREADS=0 EXP_CARD=tiny-cuda timeout 150 bash scripts/gpu_experiment.sh --tiny \
    >$r/tiny-cuda.log 2>&1
  echo "tiny rc=$?" | tee -a $r/facts.txt
fi
$COE model tiny --tokenizer-from /tmp/coe/tok --layers 30 --hidden 576 --heads 9 --kv-heads 3 \
  --intermediate 1536 --out /tmp/coe/shaped >$r/shaped.log 2>&1
cat >/tmp/coe/calib.ron <<R
(
    name: "calib",
    model: (path: "/tmp/coe/shaped", device: "cuda", dtype: bf16, threads: 0),
    sft: (train: ["/tmp/coe/data/train.demos.jsonl"], batch_size: 16, max_batch_tokens: 65536,
          lora: (rank: 16, alpha: 32.0, dropout: 0.05, targets: ["all-linear"])),
)
R
timeout 90 $COE bench sft --config /tmp/coe/calib.ron --steps 4 --no-baseline \
  --out /tmp/coe/calib-sft.json >$r/calib-sft.log 2>&1
echo "calib sft rc=$?" | tee -a $r/facts.txt
cp /tmp/coe/calib-sft.json $r/ 2>/dev/null; grep -h '"tokens_per_s"' $r/calib-sft.json
tar czf "$OUT/r1.tgz" -C /tmp r1 # $OUT: the device tool's folder of files to send back
echo "run1 done in $(( $(date +%s) - t0 )) s"
