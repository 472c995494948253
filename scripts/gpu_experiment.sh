#!/usr/bin/env bash
# The paper's experiment in one run (issue 8): the embedded SmolLM2-135M trained three ways
# on the synthetic split — (1) Chain-of-Edits: SFT then RL, (2) direct answer: SFT, (3) CoT:
# SFT on the synthesised rationales — each SFT with the same token budget; every method
# evaluated (pass@1, pass@4; the turn-budget curve for CoE) on the held-out test split and
# on model-written bugs of the test problems; then the speed benchmarks against their
# Python baselines on the same card: `coe bench decode` (transformers.generate),
# `coe bench sft` (transformers + peft) and `coe bench rollout` (scripts/reference_rollout.py).
# Writes results/<date>-<card>/{results.md,results.json,readme_table.md} and the raw JSON.
#
#   scripts/gpu_experiment.sh           # on the GPU host (GPU.md): cuda, bf16, default model
#   scripts/gpu_experiment.sh --tiny    # on a CPU: tiny random model, smoke problems, minutes
#
# Time: the whole run keeps to EXP_SECONDS (full mode 540; --tiny: no limit). Each step has
# a time cap (full mode; EXP_CAPS=0 lifts them) and gets at most what is left; training
# stopped at its cap checkpoints (SIGTERM) and its latest checkpoint is evaluated. A step
# that fails, is capped or finds no time left is recorded (logs/steps.tsv, the report's
# step table) and the run goes on; the report is always written, and the exit status is 1
# if any step failed or was skipped.
# The SFT token budget (the same for every method) is EXP_TOKEN_BUDGET, else measured: SFT
# tokens/s (from EXP_CALIB, a `coe bench sft` JSON, or a short `coe bench sft` now) times
# EXP_SFT_SECONDS, at most EXP_TOKEN_BUDGET_MAX.
#
# Environment: COE (the binary; default target/release/coe, else target/debug/coe),
# COE_BENCH_PYTHON (the baselines' Python; default .venv/bin/python), EXP_OUT (results
# folder), EXP_TAG (prefix of the run names under runs/), EXP_MODEL (the model; default
# `default`, with --tiny models/tiny, made if missing), EXP_DATA (a `coe data gen` folder
# made from the same problems, used instead of generating it), EXP_DEVICE / EXP_DTYPE /
# EXP_CARD (to rehearse the full mode elsewhere), and the budgets below (EXP_*). Every
# step's output: EXP_OUT/logs/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

die() { echo "gpu_experiment: error: $*" >&2; exit 1; }
say() { echo "gpu_experiment: $*" >&2; }

mode=full
update_readme=0
for arg in "$@"; do
  case $arg in
    --tiny) mode=tiny ;;
    --update-readme) update_readme=1 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) die "unknown argument $arg (known: --tiny, --update-readme)" ;;
  esac
done

if [ -z "${COE:-}" ]; then # the newer of the two builds
  for c in target/release/coe target/debug/coe; do
    if [ -x "$c" ] && { [ -z "${COE:-}" ] || [ "$c" -nt "$COE" ]; }; then COE=$c; fi
  done
fi
[ -n "${COE:-}" ] && [ -x "$COE" ] || die "no coe binary: build it (cargo build --release) or set COE=/path/to/coe"
PY=${PYTHON:-python3}
# The benchmarks' Python baselines: the checkout's .venv here; on the GPU host its PyTorch venv.
if [ -z "${COE_BENCH_PYTHON:-}" ] && [ ! -x .venv/bin/python ]; then
  COE_BENCH_PYTHON=$(command -v python3); export COE_BENCH_PYTHON
fi
command -v "$PY" >/dev/null || die "python3 is needed to write the report"

if [ "$mode" = tiny ]; then
  device=${EXP_DEVICE:-cpu}; dtype=${EXP_DTYPE:-f32}; threads=${EXP_THREADS:-2}
  model=${EXP_MODEL:-models/tiny}
  [ -f "$model/config.json" ] || "$COE" model tiny --out "$model" >/dev/null
  problems=datasets/smoke/problems.jsonl
  gen_args=(--operators swap_arithmetic --max-ops 1 --per-problem 2)
  : "${EXP_SECONDS:=0}" "${EXP_TOKEN_BUDGET:=6000}" "${EXP_SFT_MAX_STEPS:=10}" "${EXP_SFT_LR:=1e-3}"
  : "${EXP_SFT_BATCH:=8}" "${EXP_SFT_SECONDS:=60}" "${EXP_RL_SECONDS:=300}"
  : "${EXP_RL_STEPS:=2}" "${EXP_RL_TASKS_PER_STEP:=2}" "${EXP_RL_LR:=1e-4}"
  : "${EXP_MAX_TURNS:=4}" "${EXP_EVAL_TASKS:=2}" "${EXP_BUG_PROBLEMS:=1}" "${EXP_BUG_SAMPLES:=1}"
  : "${EXP_ROLLOUT_TASKS:=2}" "${EXP_SFT_BENCH_STEPS:=1}" "${EXP_DECODE_BATCH:=1,2}"
  : "${EXP_ANSWER_TOKENS:=32}" "${EXP_DECODE_BATCH_TOKENS:=16384}" "${EXP_EVAL_BATCH:=64}"
  : "${EXP_BASELINE_TIMEOUT:=600}" "${EXP_ROLLOUT_BASELINE_TIMEOUT:=600}" "${EXP_CAPS:=0}"
  card=${EXP_CARD:-cpu-tiny}
else
  device=${EXP_DEVICE:-cuda}; dtype=${EXP_DTYPE:-bf16}; threads=${EXP_THREADS:-0}
  model=${EXP_MODEL:-default}
  problems=datasets/problems.jsonl
  gen_args=(--per-problem 4)
  # Sized from the first H100 run (results/2026-11-26-h100-80gb-hbm3/README.md): SFT ~29k
  # tokens/s plus ~25 s to replay the CoE demos; one RL step of 32 episodes x 10 turns took
  # over 60 s; a CoE evaluation of 12 tasks x 4 samples ~28 s.
  : "${EXP_SECONDS:=540}" "${EXP_SFT_SECONDS:=15}" "${EXP_TOKEN_BUDGET_MAX:=1500000}"
  : "${EXP_SFT_MAX_STEPS:=100000}" "${EXP_SFT_LR:=1e-3}" "${EXP_SFT_BATCH:=16}"
  : "${EXP_RL_SECONDS:=150}" "${EXP_RL_STEPS:=1000}" "${EXP_RL_TASKS_PER_STEP:=4}" "${EXP_RL_LR:=1e-4}"
  : "${EXP_MAX_TURNS:=10}" "${EXP_EVAL_TASKS:=16}" "${EXP_BUG_PROBLEMS:=8}" "${EXP_BUG_SAMPLES:=4}"
  : "${EXP_ROLLOUT_TASKS:=64}" "${EXP_SFT_BENCH_STEPS:=10}" "${EXP_DECODE_BATCH:=1,8,64}"
  : "${EXP_ANSWER_TOKENS:=None}" "${EXP_DECODE_BATCH_TOKENS:=131072}" "${EXP_EVAL_BATCH:=256}"
  : "${EXP_BASELINE_TIMEOUT:=40}" "${EXP_ROLLOUT_BASELINE_TIMEOUT:=75}" "${EXP_CAPS:=1}"
  card=${EXP_CARD:-}
  if [ -z "$card" ]; then
    card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 \
      | tr '[:upper:]' '[:lower:]' | sed -E 's/nvidia //; s/[^a-z0-9]+/-/g; s/-+$//') || true
  fi
  [ -n "$card" ] || die "no NVIDIA GPU found (nvidia-smi); on a CPU use --tiny"
fi

date=$(date +%F)
out=${EXP_OUT:-results/$date-$card}
tag=${EXP_TAG:-exp-$card}
work=runs/$tag-work
mkdir -p "$out/logs" "$work/configs"
logs=$out/logs
say "mode $mode, card $card, binary $COE, results in $out, runs under runs/$tag-*"

t_start=$(date +%s)
failures=0
printf 'step\tstatus\tseconds\tcap_s\n' >"$logs/steps.tsv"
report() { # writes the report from whatever the steps left; runs on every exit
  cp "$work"/configs/*.ron "$logs/" 2>/dev/null || true
  local args=("$out" --mode "$mode" --card "$card" --model "$model" --device "$device" --dtype "$dtype")
  [ "$update_readme" = 1 ] && args+=(--readme README.md)
  if "$PY" scripts/experiment_report.py "${args[@]}"; then
    say "wrote $out/results.md and $out/results.json ($(( $(date +%s) - t_start )) s in all)"
  else
    say "the report could not be written"
  fi
}
trap report EXIT

left() { # seconds left before EXP_SECONDS (a large number when unlimited)
  if [ "$EXP_SECONDS" = 0 ]; then echo 1000000; else echo $(( EXP_SECONDS - ($(date +%s) - t_start) )); fi
}
# step NAME CAP CMD... : runs CMD (output in logs/NAME.log) for at most CAP seconds (0: no cap)
# and what is left; records the status: ok, capped (stopped at the cap by SIGTERM, then
# SIGKILL 30 s later), failed, or skipped (under 10 s left).
step() {
  local name=$1 cap=$2; shift 2
  local budget
  budget=$(left)
  [ "$EXP_CAPS" = 1 ] || cap=0
  if [ "$cap" = 0 ] || [ "$cap" -gt "$budget" ]; then cap=$budget; fi
  if [ "$cap" -lt 10 ]; then
    say "$name skipped: ${budget} s left"
    printf '%s\tskipped\t0\t%s\n' "$name" "$cap" >>"$logs/steps.tsv"
    failures=$((failures + 1))
    return 1
  fi
  local t0 t1 rc=0 status=ok secs
  t0=$(date +%s.%N)
  # --foreground: the signal goes to coe alone, not to its sandbox workers, which a job
  # finishing its last step still needs.
  timeout --foreground -k 30 "$cap" "$@" >"$logs/$name.log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    status=capped
  elif [ "$rc" != 0 ]; then
    status=failed; failures=$((failures + 1))
    tail -20 "$logs/$name.log" >&2
  fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$secs" "$cap" >>"$logs/steps.tsv"
  say "$name $status in $secs s (cap $cap s; log $logs/$name.log)"
  [ "$status" != failed ]
}

# --- data ---------------------------------------------------------------------------------
data=$work/data
if [ -n "${EXP_DATA:-}" ]; then
  [ -s "$EXP_DATA/train.demos.jsonl" ] || die "EXP_DATA=$EXP_DATA holds no train.demos.jsonl"
  rm -rf "$data" && cp -r "$EXP_DATA" "$data"
  say "data from $EXP_DATA"
else
  step data_gen 0 "$COE" data gen --problems "$problems" --out "$data" "${gen_args[@]}" \
    || die "no data, nothing to train on"
fi
# Model-written bugs, on held-out (test-split) problems only, so no method trained on them.
"$PY" - "$problems" "$data/test.tasks.jsonl" "$data/test.problems.jsonl" "$EXP_BUG_PROBLEMS" <<'EOF'
import json, sys
problems, tasks, out, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
held = {json.loads(l)["problem_id"] for l in open(tasks) if l.strip()}
rows = [l for l in open(problems) if l.strip() and json.loads(l)["id"] in held]
open(out, "w").writelines(rows[:limit])
EOF

# The baselines load the model converted once to a Hugging Face directory (in the
# background, on the CPU, while we train) instead of converting the GGUF on every load.
convert_pid=
if [ "$mode" = full ] && [ -z "${COE_BENCH_BASELINE_MODEL:-}" ] && [ "${EXP_CONVERT:-1}" = 1 ]; then
  gguf=$model
  [ "$model" = default ] && gguf=models/SmolLM2-135M-Instruct.Q4_1.gguf
  if [ -f "$gguf" ]; then
    hf=$work/baseline-hf
    rm -rf "$hf" "$hf.part"
    "${COE_BENCH_PYTHON:-.venv/bin/python}" scripts/gguf_to_hf.py "$gguf" "$hf" >"$logs/convert.log" 2>&1 &
    convert_pid=$!
  fi
fi
use_converted() { # before the first benchmark; waits at most a minute more
  [ -n "$convert_pid" ] || return 0
  local waited=0
  while kill -0 "$convert_pid" 2>/dev/null && [ "$waited" -lt 60 ]; do
    sleep 1; waited=$((waited + 1))
  done
  if kill -0 "$convert_pid" 2>/dev/null; then
    kill "$convert_pid" 2>/dev/null || true
    say "conversion still running; stopped it; the baselines load the GGUF"
  elif wait "$convert_pid"; then
    export COE_BENCH_BASELINE_MODEL=$root/$hf
    say "baselines load $hf (converted from $gguf)"
  else
    say "conversion failed (logs/convert.log); the baselines load the GGUF"
  fi
  convert_pid=
}

model_section="model: (path: \"$model\", device: \"$device\", dtype: $dtype, threads: $threads, decode_batch_tokens: $EXP_DECODE_BATCH_TOKENS)"
env_section="env: (max_turns: $EXP_MAX_TURNS, context_tokens: 2048)"
write_sft() { # write_sft NAME DEMOS BUDGET
  cat >"$work/configs/$1.ron" <<EOF
(
    name: "$tag-$1",
    seed: 0,
    $model_section,
    $env_section,
    sft: (
        train: ["$2"],
        valid: None,
        lora: (rank: 16, alpha: 32.0, dropout: 0.05, targets: ["all-linear"]),
        lr: $EXP_SFT_LR,
        warmup_steps: 10,
        steps: $EXP_SFT_MAX_STEPS,
        batch_size: $EXP_SFT_BATCH,
        max_batch_tokens: 65536,
        token_budget: $3,
        checkpoint_every: 1000000,
        keep_last: 1,
    ),
)
EOF
}
write_sft coe-sft "$data/train.demos.jsonl" None
# The shared SFT token budget: given, or SFT throughput here times EXP_SFT_SECONDS.
if [ -z "${EXP_TOKEN_BUDGET:-}" ]; then
  calib=${EXP_CALIB:-}
  if [ -z "$calib" ]; then
    calib=$out/calibrate-sft.json
    step calibrate_sft 90 "$COE" bench sft --config "$work/configs/coe-sft.ron" --steps 3 \
      --no-baseline --out "$calib" || true
  fi
  EXP_TOKEN_BUDGET=$("$PY" - "$calib" "$EXP_SFT_SECONDS" "$EXP_TOKEN_BUDGET_MAX" <<'EOF'
import json, sys
try:
    rate = json.load(open(sys.argv[1]))["ours"]["tokens_per_s"]
except (OSError, ValueError, KeyError, TypeError):
    rate = 5000.0  # no measurement: a conservative guess
print(int(min(rate * float(sys.argv[2]), float(sys.argv[3]))))
EOF
)
  say "SFT token budget $EXP_TOKEN_BUDGET (each method)"
fi
echo "$EXP_TOKEN_BUDGET" >"$out/token_budget.txt"
write_sft coe-sft "$data/train.demos.jsonl" "Some($EXP_TOKEN_BUDGET)"
write_sft direct "$data/train.direct.jsonl" "Some($EXP_TOKEN_BUDGET)"
write_sft cot "$data/train.cot.jsonl" "Some($EXP_TOKEN_BUDGET)"
cat >"$work/configs/coe-rl.ron" <<EOF
(
    name: "$tag-coe-rl",
    seed: 0,
    $model_section,
    $env_section,
    rl: (
        tasks: Some("$data/train.tasks.jsonl"),
        init_adapter: Some("runs/$tag-coe-sft"),
        valid: None,
        group_size: 4,
        tasks_per_step: $EXP_RL_TASKS_PER_STEP,
        lr: $EXP_RL_LR,
        steps: $EXP_RL_STEPS,
        temperature: 1.0,
        kl_beta: 0.01,
        max_batch_tokens: 65536,
        eval_every: $EXP_RL_STEPS,
        checkpoint_every: $EXP_RL_STEPS,
        keep_last: 1,
    ),
)
EOF
answer_tokens=$EXP_ANSWER_TOKENS
[ "$answer_tokens" = None ] || answer_tokens="Some($answer_tokens)"
cat >"$work/configs/eval.ron" <<EOF
(
    name: "$tag-eval",
    seed: 0,
    $model_section,
    $env_section,
    eval: (samples: 4, k: [1, 4], temperature: 0.8, top_p: 0.95, answer_tokens: $answer_tokens, batch: $EXP_EVAL_BATCH),
)
EOF
rm -rf "runs/$tag-coe-sft" "runs/$tag-coe-rl" "runs/$tag-direct" "runs/$tag-cot"
step sample_bugs 60 "$COE" data sample-bugs --config "$work/configs/eval.ron" \
  --problems "$data/test.problems.jsonl" --model "$model" --out "$data/model-bugs.tasks.jsonl" \
  --samples "$EXP_BUG_SAMPLES" || true

# --- training -------------------------------------------------------------------------------
sft_cap=$(( EXP_SFT_SECONDS * 2 + 30 ))
step train_coe_sft "$sft_cap" "$COE" train sft --config "$work/configs/coe-sft.ron" || true
step train_direct "$sft_cap" "$COE" train sft --config "$work/configs/direct.ron" || true
step train_cot "$sft_cap" "$COE" train sft --config "$work/configs/cot.ron" || true
# RL runs until its step count or its time cap, whichever comes first.
step train_coe_rl "$EXP_RL_SECONDS" "$COE" train rl --config "$work/configs/coe-rl.ron" || true

# --- evaluation -------------------------------------------------------------------------------
head -n "$EXP_EVAL_TASKS" "$data/test.tasks.jsonl" >"$data/eval-synthetic.tasks.jsonl"
touch "$data/model-bugs.tasks.jsonl"
head -n "$EXP_EVAL_TASKS" "$data/model-bugs.tasks.jsonl" >"$data/eval-model-bugs.tasks.jsonl"
evaluate() { # evaluate SET CAP
  local set=$1 cap=$2 tasks=$data/eval-$1.tasks.jsonl
  if [ ! -s "$tasks" ]; then say "no $set tasks to evaluate on; skipped"; return; fi
  for run in coe-rl:coe direct:direct cot:cot coe-sft:coe; do
    local name=${run%%:*} method=${run##*:}
    step "eval_${name}_$set" "$cap" "$COE" eval --config "$work/configs/eval.ron" --model "$model" \
      --adapter "runs/$tag-$name" --method "$method" --tasks "$tasks" \
      --out "$out/eval-$name-$set.json" || true
  done
}
evaluate synthetic 40

# --- speed, each against its baseline on the same machine -----------------------------------
use_converted
step bench_decode 60 "$COE" bench decode --config "$work/configs/eval.ron" --batch "$EXP_DECODE_BATCH" \
  --baseline-timeout "$EXP_BASELINE_TIMEOUT" --out "$out/bench-decode.json" || true
step bench_sft 60 "$COE" bench sft --config "$work/configs/coe-sft.ron" --steps "$EXP_SFT_BENCH_STEPS" \
  --baseline-timeout "$EXP_BASELINE_TIMEOUT" --out "$out/bench-sft.json" || true
whole=(); [ "$mode" = full ] && whole=(--no-whole-rounds) # one timing of ours on the GPU
step bench_rollout 120 "$COE" bench rollout --config "$work/configs/coe-rl.ron" \
  --tasks-n "$EXP_ROLLOUT_TASKS" --group 4 "${whole[@]}" --baseline-timeout "$EXP_ROLLOUT_BASELINE_TIMEOUT" \
  --out "$out/bench-rollout.json" || true

evaluate model-bugs 30

say "all steps done in $(( $(date +%s) - t_start )) s"
if [ "$failures" -gt 0 ]; then
  say "$failures step(s) failed or were skipped: see $logs/steps.tsv"
  exit 1
fi
