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
# Environment: COE (the binary; default target/release/coe, else target/debug/coe),
# COE_BENCH_PYTHON (the baselines' Python; default .venv/bin/python), OUT (results folder),
# TAG (prefix of the run names under runs/), EXP_MODEL (the model; default `default`, with
# --tiny models/tiny, made if missing), and the budgets below (EXP_*), sized so the
# full run takes about 6 minutes on one H100. Every step's output goes to OUT/logs/.
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
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
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
  device=cpu; dtype=f32; threads=${EXP_THREADS:-2}
  model=${EXP_MODEL:-models/tiny}
  [ -f "$model/config.json" ] || "$COE" model tiny --out "$model" >/dev/null
  problems=datasets/smoke/problems.jsonl
  gen_args=(--operators swap_arithmetic --max-ops 1 --per-problem 2)
  : "${EXP_TOKEN_BUDGET:=6000}" "${EXP_SFT_MAX_STEPS:=10}" "${EXP_SFT_LR:=1e-3}"
  : "${EXP_RL_STEPS:=2}" "${EXP_RL_TASKS_PER_STEP:=2}" "${EXP_RL_LR:=1e-4}"
  : "${EXP_MAX_TURNS:=4}" "${EXP_EVAL_TASKS:=2}" "${EXP_BUG_PROBLEMS:=1}" "${EXP_BUG_SAMPLES:=1}"
  : "${EXP_ROLLOUT_TASKS:=2}" "${EXP_SFT_BENCH_STEPS:=1}" "${EXP_DECODE_BATCH:=1,2}"
  : "${EXP_ANSWER_TOKENS:=32}"
  card=cpu-tiny
else
  device=cuda; dtype=bf16; threads=${EXP_THREADS:-0}
  model=${EXP_MODEL:-default}
  problems=datasets/problems.jsonl
  gen_args=(--per-problem 4)
  : "${EXP_TOKEN_BUDGET:=2000000}" "${EXP_SFT_MAX_STEPS:=400}" "${EXP_SFT_LR:=1e-3}"
  : "${EXP_RL_STEPS:=20}" "${EXP_RL_TASKS_PER_STEP:=16}" "${EXP_RL_LR:=1e-4}"
  : "${EXP_MAX_TURNS:=10}" "${EXP_EVAL_TASKS:=100}" "${EXP_BUG_PROBLEMS:=40}" "${EXP_BUG_SAMPLES:=4}"
  : "${EXP_ROLLOUT_TASKS:=64}" "${EXP_SFT_BENCH_STEPS:=20}" "${EXP_DECODE_BATCH:=1,8,64}"
  : "${EXP_ANSWER_TOKENS:=None}"
  card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 \
    | tr '[:upper:]' '[:lower:]' | sed -E 's/nvidia //; s/[^a-z0-9]+/-/g; s/-+$//') || true
  [ -n "$card" ] || die "no NVIDIA GPU found (nvidia-smi); on a CPU use --tiny"
fi

date=$(date +%F)
out=${OUT:-results/$date-$card}
tag=${TAG:-exp-$card}
work=runs/$tag-work
mkdir -p "$out/logs" "$work/configs"
logs=$out/logs
say "mode $mode, card $card, binary $COE, results in $out, runs under runs/$tag-*"

t_start=$(date +%s)
timed() { # timed NAME CMD... : runs CMD with its output in logs/NAME.log, records seconds
  local name=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  if ! "$@" >"$logs/$name.log" 2>&1; then
    tail -20 "$logs/$name.log" >&2
    die "$name failed (log: $logs/$name.log)"
  fi
  t1=$(date +%s.%N)
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  echo "$name $secs" >>"$out/timings.txt"
  say "$name done in $secs s"
}
: >"$out/timings.txt"

# --- data ---------------------------------------------------------------------------------
data=$work/data
timed data_gen "$COE" data gen --problems "$problems" --out "$data" "${gen_args[@]}"
# Model-written bugs, on held-out (test-split) problems only, so no method trained on them.
"$PY" - "$problems" "$data/test.tasks.jsonl" "$data/test.problems.jsonl" "$EXP_BUG_PROBLEMS" <<'EOF'
import json, sys
problems, tasks, out, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
held = {json.loads(l)["problem_id"] for l in open(tasks) if l.strip()}
rows = [l for l in open(problems) if l.strip() and json.loads(l)["id"] in held]
open(out, "w").writelines(rows[:limit])
EOF

model_section="model: (path: \"$model\", device: \"$device\", dtype: $dtype, threads: $threads)"
env_section="env: (max_turns: $EXP_MAX_TURNS, context_tokens: 2048)"
write_sft() { # write_sft NAME DEMOS
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
        batch_size: 8,
        token_budget: Some($EXP_TOKEN_BUDGET),
        checkpoint_every: $EXP_SFT_MAX_STEPS,
        keep_last: 1,
    ),
)
EOF
}
write_sft coe-sft "$data/train.demos.jsonl"
write_sft direct "$data/train.direct.jsonl"
write_sft cot "$data/train.cot.jsonl"
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
    eval: (samples: 4, k: [1, 4], temperature: 0.8, top_p: 0.95, answer_tokens: $answer_tokens),
)
EOF
rm -rf "runs/$tag-coe-sft" "runs/$tag-coe-rl" "runs/$tag-direct" "runs/$tag-cot"
timed sample_bugs "$COE" data sample-bugs --config "$work/configs/eval.ron" \
  --problems "$data/test.problems.jsonl" --model "$model" --out "$data/model-bugs.tasks.jsonl" --samples "$EXP_BUG_SAMPLES"

# --- training -------------------------------------------------------------------------------
timed train_coe_sft "$COE" train sft --config "$work/configs/coe-sft.ron"
timed train_coe_rl "$COE" train rl --config "$work/configs/coe-rl.ron"
timed train_direct "$COE" train sft --config "$work/configs/direct.ron"
timed train_cot "$COE" train sft --config "$work/configs/cot.ron"

# --- evaluation -------------------------------------------------------------------------------
head -n "$EXP_EVAL_TASKS" "$data/test.tasks.jsonl" >"$data/eval-synthetic.tasks.jsonl"
head -n "$EXP_EVAL_TASKS" "$data/model-bugs.tasks.jsonl" >"$data/eval-model-bugs.tasks.jsonl"
for set in synthetic model-bugs; do
  tasks=$data/eval-$set.tasks.jsonl
  if [ ! -s "$tasks" ]; then say "no $set tasks to evaluate on; skipped"; continue; fi
  for run in coe-rl:coe coe-sft:coe direct:direct cot:cot; do
    name=${run%%:*}; method=${run##*:}
    timed "eval_${name}_$set" "$COE" eval --config "$work/configs/eval.ron" --model "$model" \
      --adapter "runs/$tag-$name" --method "$method" --tasks "$tasks" --out "$out/eval-$name-$set.json"
  done
done

# --- speed, each against its baseline on the same machine -----------------------------------
timed bench_decode "$COE" bench decode --config "$work/configs/eval.ron" --batch "$EXP_DECODE_BATCH" \
  --out "$out/bench-decode.json"
timed bench_sft "$COE" bench sft --config "$work/configs/coe-sft.ron" --steps "$EXP_SFT_BENCH_STEPS" \
  --out "$out/bench-sft.json"
timed bench_rollout "$COE" bench rollout --config "$work/configs/coe-rl.ron" \
  --tasks-n "$EXP_ROLLOUT_TASKS" --group 4 --out "$out/bench-rollout.json"

cp "$work"/configs/*.ron "$out/logs/"
say "all steps done in $(( $(date +%s) - t_start )) s; writing the report"
report_args=("$out" --mode "$mode" --card "$card" --model "$model" --device "$device" --dtype "$dtype")
[ "$update_readme" = 1 ] && report_args+=(--readme README.md)
"$PY" scripts/experiment_report.py "${report_args[@]}"
say "wrote $out/results.md and $out/results.json"
