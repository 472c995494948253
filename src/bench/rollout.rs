//! `coe bench rollout`: CoE episodes per minute as an RL step samples them — `tasks_n`
//! tasks × G episodes live at once, up to `env.max_turns` turns, every test run included —
//! against `scripts/reference_rollout.py`, a plain Python loop with `transformers` (KV
//! cache, batched `generate`, one `subprocess` per test run) doing the same episodes with
//! the same model, adapter, sampling and turn budget, on the same machine in the same run.
//!
//! Our side runs twice from the same seed, so both runs sample exactly the same episodes:
//! once as RL does (an episode's tests run in the sandbox pool as soon as its command is
//! decoded, while the rest are still decoding) and once with whole rounds (decode every
//! command, then run the tests), which measures what that overlap buys (`--no-whole-rounds`
//! skips the second run). The baseline runs first. The model is
//! `model.path` with `model.adapter`, else `rl.init_adapter` (the policy RL starts from: an
//! untrained model's commands are mostly invalid and run no tests). Each timed run shows a
//! progress line on stderr after every round.

use std::ffi::OsString;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::BenchOptions;
use super::decode::cuda_name;
use super::python::{TimedOut, baseline_model, run_script, torch_device, torch_dtype};
use crate::config::Config;
use crate::eval::progress::RoundProgress;
use crate::eval::rollout::{
    EpisodeResult, RolloutOptions, Watch, run_episodes, run_episodes_watched,
};
use crate::model::loader::{load_for_inference, parse_device};
use crate::policy::model::DEFAULT_MAX_NEW_TOKENS;
use crate::policy::{ModelPolicy, ModelPolicyConfig, Policy, PolicyError, Proposal, Query};
use crate::sandbox::SandboxPool;
use crate::task::Task;
use crate::train::setup::resolve_adapter;
use crate::util::machine::{load_average, machine};
use crate::util::progress::ProgressLine;

/// Runs the benchmark; returns the JSON report.
pub fn run(cfg: &Config, opts: &BenchOptions) -> anyhow::Result<Value> {
    let (tasks_path, tasks, group) = super::rollout_tasks(cfg, opts, "rollout")?;
    let adapter = cfg
        .model
        .adapter
        .as_deref()
        .or(cfg.rl.init_adapter.as_deref())
        .map(resolve_adapter)
        .transpose()?;
    let load_before = load_average();
    let machine = machine();
    let device = parse_device(&cfg.model.device)?;
    let loaded = load_for_inference(&cfg.model, adapter.as_deref())?;
    let model_path = loaded.path.clone();
    let settings = ModelPolicyConfig::from_config(cfg, cfg.rl.temperature, 1.0);
    let mut policy = ModelPolicy::new(loaded, settings)?;
    let pool = SandboxPool::new(&cfg.sandbox).context("cannot start the Python sandbox")?;
    let rollout = RolloutOptions::from_config(cfg, tasks.len() * group, pool.workers().max(1));
    // Warm-up: one short episode, so kernels and workers are ready for both timings.
    let mut warm = rollout.clone();
    warm.env.max_turns = 1;
    run_episodes(&tasks[..1], 1, &mut policy, &pool, &warm, &mut |_| {})?;
    eprintln!(
        "bench rollout: {} tasks x {group} episodes, up to {} turns, {} sandbox workers",
        tasks.len(),
        cfg.env.max_turns,
        pool.workers()
    );
    let mut timed = |overlap: bool| -> anyhow::Result<(Vec<EpisodeResult>, f64)> {
        policy.reseed(cfg.seed);
        let mut line = ProgressLine::stderr();
        let mut on_round = |p: &RoundProgress| line.show(&format!("bench rollout: {}", p.line()));
        let watch = Watch {
            on_round: Some(&mut on_round),
            cancel: None,
        };
        let mut whole;
        let policy: &mut dyn Policy = if overlap {
            &mut policy
        } else {
            whole = WholeRounds(&mut policy);
            &mut whole
        };
        let started = Instant::now();
        let results =
            run_episodes_watched(&tasks, group, policy, &pool, &rollout, &mut |_| {}, watch)?;
        let secs = started.elapsed().as_secs_f64();
        line.clear();
        Ok((results, secs))
    };
    // The baseline first, while our process holds little GPU memory.
    let reference = if opts.baseline {
        let args = reference_args(
            cfg,
            &baseline_model(&model_path),
            adapter.as_deref(),
            &tasks_path,
            &tasks,
            group,
        );
        run_script("reference_rollout.py", &args, opts.baseline_timeout).unwrap_or_else(|e| {
            // Killed at the timeout: it ran slower than all its episodes in that time. A
            // baseline that failed otherwise bounds nothing.
            let bound = e
                .downcast_ref::<TimedOut>()
                .map(|t| (tasks.len() * group) as f64 * 60.0 / t.secs.max(1e-9));
            json!({"error": format!("{e:#}"), "episodes_per_min_below": bound})
        })
    } else {
        json!({"skipped": "--no-baseline"})
    };
    let (results, secs) = timed(true)?;
    let ours = summary(&results, secs);
    eprintln!("bench rollout: ours (tests during decode) {}", line(&ours));
    let (ours_whole, same, overlap_speedup) = if opts.whole_rounds {
        let (plain, plain_secs) = timed(false)?;
        let ours_whole = summary(&plain, plain_secs);
        eprintln!(
            "bench rollout: ours (whole rounds)        {}",
            line(&ours_whole)
        );
        let same = signature(&plain) == signature(&results);
        (ours_whole, json!(same), json!(plain_secs / secs.max(1e-9)))
    } else {
        let skipped = json!({"skipped": "--no-whole-rounds"});
        (skipped, Value::Null, Value::Null)
    };
    if reference.get("episodes_per_min").is_some() {
        eprintln!(
            "bench rollout: reference                {}",
            line(&reference)
        );
    }
    let ratio = |k: &str| Some(ours[k].as_f64()? / reference[k].as_f64()?);
    Ok(json!({
        "bench": "rollout",
        "machine": machine,
        "device": cfg.model.device,
        "cuda_device": cuda_name(device),
        "dtype": torch_dtype(cfg.model.dtype),
        "model": model_path,
        "adapter": adapter.map(|a| a.display().to_string()),
        "tasks_file": tasks_path.display().to_string(),
        "tasks": tasks.len(),
        "group": group,
        "max_turns": cfg.env.max_turns,
        "max_new_tokens": DEFAULT_MAX_NEW_TOKENS,
        "temperature": cfg.rl.temperature,
        "sandbox_workers": pool.workers(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "ours": ours,
        "ours_whole_rounds": ours_whole,
        "whole_rounds_sampled_the_same_episodes": same,
        "overlap_speedup": overlap_speedup,
        "reference": reference,
        "ratio_episodes_per_min": ratio("episodes_per_min"),
        "ratio_turns_per_s": ratio("turns_per_s"),
        // When the reference was killed at --baseline-timeout: a lower bound on the ratio.
        "ratio_episodes_per_min_at_least": ours["episodes_per_min"]
            .as_f64()
            .zip(reference["episodes_per_min_below"].as_f64())
            .map(|(o, r)| o / r),
    }))
}

/// The model policy without streaming: every command of a round is decoded before any
/// episode is stepped (the `Policy` default for `propose_each`).
struct WholeRounds<'a>(&'a mut ModelPolicy);

impl Policy for WholeRounds<'_> {
    fn name(&self) -> String {
        self.0.name()
    }
    fn propose(&mut self, queries: &[Query<'_>]) -> Result<Vec<Proposal>, PolicyError> {
        self.0.propose(queries)
    }
}

/// Counts and rates of a set of finished episodes.
pub(super) fn summary(results: &[EpisodeResult], seconds: f64) -> Value {
    let episodes = results.len();
    let turns: u64 = results.iter().map(|r| u64::from(r.turns)).sum();
    let tokens: usize = results
        .iter()
        .flat_map(|r| &r.history)
        .map(|(_, p)| p.token_ids.len())
        .sum();
    // One run at reset, one per valid edit (EXIT and invalid commands run nothing).
    let edits = results
        .iter()
        .flat_map(|r| &r.records)
        .filter(|rec| rec.valid && rec.command.as_deref() != Some("EXIT"))
        .count();
    let solved = results.iter().filter(|r| r.solved).count();
    let per_s = |n: f64| n / seconds.max(1e-9);
    json!({
        "episodes": episodes,
        "turns": turns,
        "generated_tokens": tokens,
        "test_runs": episodes + edits,
        "solved": solved,
        "seconds": seconds,
        "episodes_per_min": 60.0 * per_s(episodes as f64),
        "turns_per_s": per_s(turns as f64),
        "tokens_per_s": per_s(tokens as f64),
    })
}

pub(super) fn line(v: &Value) -> String {
    format!(
        "{:.1} episodes/min, {:.1} turns/s, {} test runs, {:.1} s",
        v["episodes_per_min"].as_f64().unwrap_or(0.0),
        v["turns_per_s"].as_f64().unwrap_or(0.0),
        v["test_runs"],
        v["seconds"].as_f64().unwrap_or(0.0)
    )
}

/// What each episode did, to check that both of our runs sampled the same episodes.
pub(super) fn signature(results: &[EpisodeResult]) -> Vec<(u64, Vec<Vec<u32>>, Vec<f64>)> {
    results
        .iter()
        .map(|r| {
            let ids = r.history.iter().map(|(_, p)| p.token_ids.clone()).collect();
            (r.episode, ids, r.rewards.clone())
        })
        .collect()
}

fn reference_args(
    cfg: &Config,
    model: &str,
    adapter: Option<&std::path::Path>,
    tasks_path: &std::path::Path,
    tasks: &[Task],
    group: usize,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--model".into(), model.into()];
    if let Some(a) = adapter {
        args.extend(["--adapter".into(), a.as_os_str().to_owned()]);
    }
    args.extend(["--tasks".into(), tasks_path.as_os_str().to_owned()]);
    let pairs = [
        ("--tasks-n", tasks.len().to_string()),
        ("--group", group.to_string()),
        ("--max-turns", cfg.env.max_turns.to_string()),
        ("--max-new-tokens", DEFAULT_MAX_NEW_TOKENS.to_string()),
        ("--temperature", cfg.rl.temperature.to_string()),
        ("--top-p", "1.0".into()),
        ("--device", torch_device(&cfg.model.device).into()),
        ("--dtype", torch_dtype(cfg.model.dtype).into()),
        ("--threads", cfg.model.threads.to_string()),
        ("--seed", cfg.seed.to_string()),
        (
            "--test-timeout-s",
            cfg.sandbox.limits.test_timeout_s.to_string(),
        ),
    ];
    for (k, v) in pairs {
        args.push(k.into());
        args.push(v.into());
    }
    args
}
