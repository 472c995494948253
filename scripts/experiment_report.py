#!/usr/bin/env python3
"""Writes the report of one scripts/gpu_experiment.sh run from the files it left in OUT.

Reads OUT/eval-<run>-<set>.json (coe eval results), OUT/bench-{decode,sft,rollout}.json,
OUT/token_budget.txt and OUT/logs/ (steps.tsv: each step's status and seconds, or OUT/timings.txt
in folders written before it; the training logs: where each run stopped); writes OUT/results.json (everything, plus the run's facts), OUT/results.md
(the tables) and OUT/readme_table.md (model, method, pass@1, pass@4, train time, card). With
--readme FILE, the table replaces what lies between the markers
<!-- gpu-results:begin --> and <!-- gpu-results:end --> in FILE. Standard library only.

    python3 scripts/experiment_report.py OUT --mode full --card h100 --model default \
        --device cuda --dtype bf16 [--readme README.md]
"""

import argparse
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

# (run name, method, what was trained); train time sums the named timings.
RUNS = [
    ("coe-rl", "coe", "CoE: SFT then RL", ["train_coe_sft", "train_coe_rl"]),
    ("coe-sft", "coe", "CoE: SFT only", ["train_coe_sft"]),
    ("direct", "direct", "direct answer: SFT", ["train_direct"]),
    ("cot", "cot", "CoT: SFT on rationales", ["train_cot"]),
]
SETS = ["synthetic", "model-bugs"]
BEGIN, END = "<!-- gpu-results:begin -->", "<!-- gpu-results:end -->"


def load(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as e:
        sys.exit(f"experiment_report: {path}: not JSON: {e}")


def timings(out, step_rows):
    """Seconds per step that ran: from logs/steps.tsv, or timings.txt in older folders."""
    if step_rows:
        return {r["step"]: float(r["seconds"]) for r in step_rows if r.get("status") != "skipped"}
    t = {}
    path = out / "timings.txt"
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if len(parts) != 2:
            sys.exit(f"experiment_report: {path}:{n}: expected 'name seconds', got {line!r}")
        t[parts[0]] = float(parts[1])
    return t


def steps(out):
    """Each step's row of logs/steps.tsv: step, status, seconds, cap_s."""
    path = out / "logs" / "steps.tsv"
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    head = lines[0].split("\t") if lines else []
    return [dict(zip(head, l.split("\t"))) for l in lines[1:] if l.strip()]


def training(out):
    """Where each training run stopped, read from its log."""
    runs = {}
    for name in ("train_coe_sft", "train_direct", "train_cot", "train_coe_rl"):
        path = out / "logs" / f"{name}.log"
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        row = {}
        m = re.search(r"token budget of (\d+) tokens reached at step (\d+)", text)
        if m:
            row["tokens"], row["stopped_at_step"] = int(m.group(1)), int(m.group(2))
            row["stopped_by"] = "token budget"
        saved = re.findall(r"checkpoint @ step (\d+)", text)
        if saved:
            row["last_checkpoint_step"] = int(saved[-1])
        if "stopped_by" not in row and "cancel" in text.lower():
            row["stopped_by"] = "time cap"
        runs[name] = row
    return runs


def fmt(x, pct=False):
    if x is None:
        return "–"
    return f"{100 * x:.1f}%" if pct else f"{x:.2f}"


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    for k in ("mode", "card", "model", "device", "dtype"):
        ap.add_argument(f"--{k}", required=True)
    ap.add_argument("--readme", type=Path)
    a = ap.parse_args()
    out = a.out
    step_rows, trained = steps(out), training(out)
    t = timings(out, step_rows)
    budget = out / "token_budget.txt"
    budget = int(budget.read_text().strip()) if budget.is_file() else None
    methods = []
    for run, method, label, train_steps in RUNS:
        row = {"run": run, "method": method, "label": label,
               "train_time_s": sum(t.get(s, 0.0) for s in train_steps), "sets": {}}
        for s in SETS:
            r = load(out / f"eval-{run}-{s}.json")
            if r is None:
                continue
            row["sets"][s] = {k: r.get(k) for k in
                              ("tasks", "samples", "pass_at", "turn_curve", "mean_turns",
                               "mean_return", "invalid_rate", "infra_errors")}
        methods.append(row)
    benches = {b: load(out / f"bench-{b}.json") for b in ("decode", "sft", "rollout")}
    report = {
        "schema": 1, "date": datetime.date.today().isoformat(), "commit": commit(),
        "mode": a.mode, "card": a.card, "model": a.model, "device": a.device, "dtype": a.dtype,
        "timings_s": t, "sft_token_budget": budget, "training": trained,
        "steps": step_rows, "methods": methods, "benches": benches,
    }
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")

    table = ["| model | method | set | pass@1 | pass@4 | train time | card |",
             "|---|---|---|---|---|---|---|"]
    for m in methods:
        for s, r in m["sets"].items():
            p = r.get("pass_at") or {}
            table.append(f"| {a.model} | {m['label']} | {s} ({r.get('tasks')} tasks) | "
                         f"{fmt(p.get('1'), True)} | {fmt(p.get('4'), True)} | "
                         f"{m['train_time_s']:.0f} s | {a.card} |")
    table_md = "\n".join(table) + "\n"
    (out / "readme_table.md").write_text(table_md)

    md = [f"# Experiment {report['date']} on {a.card} ({a.mode})", "",
          f"Commit {report['commit']}, model `{a.model}` on {a.device} in {a.dtype}; "
          "written by `scripts/gpu_experiment.sh` (commands and configs in `logs/`).", "",
          "## Repair (pass@k over 4 samples per task at temperature 0.8)", "", table_md]
    for m in methods:
        r = m["sets"].get("synthetic")
        if m["method"] == "coe" and r and r.get("turn_curve"):
            curve = r["turn_curve"]
            turns = sorted(curve, key=int)
            md += [f"Turn-budget curve, {m['label']}, synthetic: solve rate within t turns", "",
                   "| t | " + " | ".join(turns) + " |", "|---" * (len(turns) + 1) + "|",
                   "| solved | " + " | ".join(fmt(curve[k], True) for k in turns) + " |", ""]
    md += ["## Speed (ours against the baseline, same card, same run)", ""]
    d = benches["decode"]
    if d:
        md.append("Decode (`coe bench decode` vs `transformers.generate`), tokens/s:")
        md.append("")
        md.append("| batch | ours | transformers | ratio |")
        md.append("|---|---|---|---|")
        theirs = {r["batch"]: r for r in (d.get("transformers") or {}).get("per_batch", [])}
        for r in d["ours"]["per_batch"]:
            th = theirs.get(r["batch"], {}).get("decode_tok_s")
            ratio = r["decode_tok_s"] / th if th else None
            md.append(f"| {r['batch']} | {r['decode_tok_s']:.0f} | "
                      f"{fmt(th) if th is None else f'{th:.0f}'} | {fmt(ratio)} |")
        md.append("")
    s = benches["sft"]
    if s:
        ref = s.get("reference") or {}
        md.append(f"SFT (`coe bench sft` vs transformers + peft): ours "
                  f"{s['ours']['tokens_per_s']:.0f} tokens/s, reference "
                  f"{fmt(ref.get('tokens_per_s'))} tokens/s, ratio {fmt(s.get('ratio_tokens_per_s'))}.")
        md.append("")
    r = benches["rollout"]
    if r:
        ref = r.get("reference") or {}
        if r.get("ratio_episodes_per_min_at_least") is not None:
            md.append(f"The reference was stopped at its time limit ({ref.get('error')}); "
                      f"it ran below {fmt(ref.get('episodes_per_min_below'))} episodes/min, "
                      f"so the ratio is at least {fmt(r['ratio_episodes_per_min_at_least'])}.")
            md.append("")
        md.append(f"Rollout (`coe bench rollout`, {r['tasks']} tasks × G={r['group']}, up to "
                  f"{r['max_turns']} turns, tests included): ours "
                  f"{r['ours']['episodes_per_min']:.1f} episodes/min (whole rounds: "
                  f"{fmt((r.get('ours_whole_rounds') or {}).get('episodes_per_min'))}), reference "
                  f"{fmt(ref.get('episodes_per_min'))} episodes/min, ratio "
                  f"{fmt(r.get('ratio_episodes_per_min'))}.")
        md.append("")
    for b, d in benches.items():
        for side in ("transformers", "reference"):
            err = (d or {}).get(side, {}) if isinstance((d or {}).get(side), dict) else {}
            if err.get("error"):
                md += [f"{b} baseline ({side}): {err['error']}", ""]
    if budget is not None or trained:
        md += ["## Training", "", f"SFT token budget, each method: {budget} tokens.", ""]
        md += ["| run | stopped by | at step | tokens | last checkpoint |", "|---|---|---|---|---|"]
        for name, row in trained.items():
            md.append(f"| {name} | {row.get('stopped_by', 'step count')} | "
                      f"{row.get('stopped_at_step', '–')} | {row.get('tokens', '–')} | "
                      f"{row.get('last_checkpoint_step', '–')} |")
        md.append("")
    md += ["## Steps", "", "| step | status | s | cap (s) |", "|---|---|---|---|"]
    md += [f"| {r.get('step')} | {r.get('status')} | {r.get('seconds')} | {r.get('cap_s')} |"
           for r in step_rows]
    (out / "results.md").write_text("\n".join(md) + "\n")

    if a.readme:
        text = a.readme.read_text()
        if BEGIN not in text or END not in text:
            sys.exit(f"experiment_report: {a.readme}: no {BEGIN} … {END} markers")
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        note = f"\n_From `{out}` ({a.card}, {report['date']}, commit {report['commit']})._\n\n"
        a.readme.write_text(head + BEGIN + note + table_md + END + tail)


if __name__ == "__main__":
    main()
