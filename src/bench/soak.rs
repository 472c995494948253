//! `coe bench soak`: the environment and sandbox under hours-long load, looking for
//! what only shows over time: throughput that decays, memory that grows, processes or
//! temp files that pile up. A scripted policy (the oracle, plus invalid commands and
//! hostile edits: infinite loops, exits, memory bombs, forks) plays episodes on tasks
//! made by corrupting the project's problems, through the same `run_episodes` and
//! sandbox pool as `coe eval`, until an episode count or a time limit is reached.
//! Every minute it records throughput, this process's RSS, the workers' RSS and the
//! number of processes under it; at the end it drops the pool and counts what is left
//! (processes, files in the host's temp dirs) — both must be zero.
//!
//! Settings come from the environment so `coe bench` needs no new flags:
//! `COE_SOAK_SECS` (default 1800), `COE_SOAK_EPISODES` (default 100000),
//! `COE_SOAK_PROBLEMS` (default `datasets/problems.jsonl`), `COE_SOAK_SEED` (default 0).
use super::soak_probe::{Probe, Sample};
use crate::config::Config;
use crate::data::corrupt::{CorruptConfig, corrupt};
use crate::data::loaders::load_problems;
use crate::eval::rollout::{RolloutOptions, run_episodes};
use crate::policy::{OraclePolicy, Policy, PolicyError, Proposal, Query};
use crate::protocol::EpisodeEvent;
use crate::sandbox::SandboxPool;
use crate::task::{Origin, Task};
use anyhow::Context;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long and on what the soak runs.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub limit: Duration,
    pub episodes: usize,
    pub problems: PathBuf,
    pub seed: u64,
}

impl SoakOptions {
    /// Reads the `COE_SOAK_*` variables; a value that does not parse is an error.
    pub fn from_env() -> anyhow::Result<SoakOptions> {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
            match std::env::var(name) {
                Err(_) => Ok(default),
                Ok(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a valid number")),
            }
        }
        Ok(SoakOptions {
            limit: Duration::from_secs_f64(var("COE_SOAK_SECS", 1800.0)?),
            episodes: var("COE_SOAK_EPISODES", 100_000)?,
            problems: std::env::var_os("COE_SOAK_PROBLEMS")
                .map_or_else(|| PathBuf::from("datasets/problems.jsonl"), PathBuf::from),
            seed: var("COE_SOAK_SEED", 0)?,
        })
    }
}

pub fn run(cfg: &Config) -> anyhow::Result<serde_json::Value> {
    run_with(cfg, &SoakOptions::from_env()?)
}

/// Commands that fail to parse or to apply (the environment must answer, not break).
const INVALID: &[&str] = &[
    "DELL 1",
    "### DELL 0",
    "### ADDL 9999 >>>x = 1",
    "### REPW 1 >>>no such text >>>x",
    "### FROB 3",
    "### EXIT now",
    "",
];

/// Valid edits that make the code hostile; each must cost at most its time limits.
const HOSTILE: &[&str] = &[
    "### ADDL 2 >>>    while True: pass",
    "### ADDL 2 >>>    import os; os._exit(0)",
    "### ADDL 2 >>>    x = bytearray(10 ** 10)",
    "### ADDL 2 >>>    import os; os.fork()",
    "### ADDL 1 >>>import sys; sys.stdout.close()",
    "### ADDL 2 >>>    import os; os.kill(-1, 9)",
    "### REPL 1 >>>x = (",
    "### DELL 1",
];

/// The oracle, but a share of its turns replaced by invalid or hostile commands.
struct ScriptedPolicy {
    oracle: OraclePolicy,
    rng: ChaCha8Rng,
}

impl Policy for ScriptedPolicy {
    fn name(&self) -> String {
        "soak (oracle + invalid + hostile)".into()
    }

    fn propose(&mut self, queries: &[Query<'_>]) -> Result<Vec<Proposal>, PolicyError> {
        let mut out = self.oracle.propose(queries)?;
        for p in &mut out {
            let roll: f64 = self.rng.random();
            if roll < 0.10 {
                p.text = pick(INVALID, &mut self.rng).to_string();
            } else if roll < 0.13 {
                p.text = pick(HOSTILE, &mut self.rng).to_string();
            }
        }
        Ok(out)
    }
}

fn pick(list: &'static [&'static str], rng: &mut ChaCha8Rng) -> &'static str {
    list.get(rng.random_range(0..list.len()))
        .copied()
        .unwrap_or("EXIT")
}

/// Two corrupted versions of every problem (unchecked: a corruption that still passes
/// makes an episode that starts solved, which the soak tolerates).
fn make_tasks(opts: &SoakOptions) -> anyhow::Result<Vec<Task>> {
    let problems = load_problems(&opts.problems)
        .with_context(|| "set COE_SOAK_PROBLEMS to a problems file, or run from the repository")?;
    let donors: Vec<&str> = problems.iter().flat_map(|p| p.solution.lines()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut tasks = Vec::new();
    for p in &problems {
        for j in 0..2 {
            if let Some(c) = corrupt(&p.solution, &donors, &CorruptConfig::default(), &mut rng) {
                let ops = c.operators.iter().map(|s| s.to_string()).collect();
                let id = format!("{}#{j}", p.id);
                tasks.push(Task::from_problem(
                    p,
                    id,
                    c.buggy,
                    Origin::Synthetic,
                    Some(ops),
                ));
            }
        }
    }
    anyhow::ensure!(
        !tasks.is_empty(),
        "no tasks could be made from {}",
        opts.problems.display()
    );
    Ok(tasks)
}

/// Counts for one minute of the soak.
#[derive(Debug, Default, Clone)]
struct Minute {
    episodes: usize,
    turns: u64,
    solved: usize,
    infra: usize,
    sample: Option<Sample>,
}

pub fn run_with(cfg: &Config, opts: &SoakOptions) -> anyhow::Result<serde_json::Value> {
    let machine = crate::util::machine::machine();
    let tasks = make_tasks(opts)?;
    let probe = Probe::start()?;
    let pool = SandboxPool::new(&cfg.sandbox)?;
    let run_uids = pool.protection().run_uids;
    let workers = pool.workers();
    let rollout = RolloutOptions::from_config(cfg, workers * 4, workers);
    let mut policy = ScriptedPolicy {
        oracle: OraclePolicy,
        rng: ChaCha8Rng::seed_from_u64(opts.seed ^ 0x50a4),
    };
    let started = Instant::now();
    let mut minutes = vec![Minute {
        sample: Some(probe.sample()),
        ..Minute::default()
    }];
    let (mut episodes, mut next_task, mut invalid_turns) = (0usize, 0usize, 0u64);
    while episodes < opts.episodes && started.elapsed() < opts.limit {
        let n = rollout.batch.min(opts.episodes - episodes);
        let chunk: Vec<Task> = (0..n)
            .map(|i| tasks[(next_task + i) % tasks.len()].clone())
            .collect();
        next_task += n;
        let results = run_episodes(&chunk, 1, &mut policy, &pool, &rollout, &mut |e| {
            let minute = (started.elapsed().as_secs() / 60) as usize;
            if minutes.len() <= minute {
                minutes.resize(minute + 1, Minute::default());
            }
            if let EpisodeEvent::EpisodeFinished {
                solved,
                turns,
                infra_error,
                ..
            } = e
            {
                let m = &mut minutes[minute];
                m.episodes += 1;
                m.turns += u64::from(turns);
                m.solved += usize::from(solved);
                m.infra += usize::from(infra_error);
            }
        })?;
        episodes += results.len();
        invalid_turns += results.iter().map(|r| u64::from(r.invalid)).sum::<u64>();
        let minute = (started.elapsed().as_secs() / 60) as usize;
        if minutes.len() <= minute {
            minutes.resize(minute + 1, Minute::default());
        }
        if minutes[minute].sample.is_none() {
            minutes[minute].sample = Some(probe.sample());
            eprintln!(
                "soak: minute {minute}, {episodes} episodes, {}",
                probe.sample().line()
            );
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let last = probe.sample();
    drop(pool);
    let leaks = probe.leaks(run_uids);
    let total = |f: fn(&Minute) -> u64| minutes.iter().map(f).sum::<u64>();
    let (turns, solved, infra) = (
        total(|m| m.turns),
        total(|m| m.solved as u64),
        total(|m| m.infra as u64),
    );
    let per_minute: Vec<serde_json::Value> = minutes
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!({"minute": i, "episodes": m.episodes, "turns": m.turns, "solved": m.solved,
                   "infra_errors": m.infra, "sample": m.sample.as_ref().map(Sample::to_json)})
        })
        .collect();
    let first = minutes
        .first()
        .and_then(|m| m.sample.clone())
        .unwrap_or_default();
    eprintln!(
        "bench soak: {episodes} episodes, {turns} turns in {elapsed:.0} s ({:.1} episodes/s); \
         anonymous RSS {:.1} -> {:.1} MiB; leaked processes {}, temp files {}",
        episodes as f64 / elapsed,
        first.rss_anon_mb,
        last.rss_anon_mb,
        leaks.processes.len(),
        leaks.temp_files.len()
    );
    Ok(json!({
        "bench": "soak",
        "machine": machine,
        "load_end": crate::util::machine::load_average(),
        "workers": workers,
        "tasks": tasks.len(),
        "seconds": elapsed,
        "episodes": episodes,
        "turns": turns,
        "invalid_turns": invalid_turns,
        "solved": solved,
        "infra_errors": infra,
        "episodes_per_s": episodes as f64 / elapsed,
        "turns_per_s": turns as f64 / elapsed,
        "rss_mb": {"start": first.rss_mb, "end": last.rss_mb},
        "rss_anon_mb": {"start": first.rss_anon_mb, "end": last.rss_anon_mb,
                        "growth": last.rss_anon_mb - first.rss_anon_mb},
        "workers_rss_mb": {"start": first.workers_rss_mb, "end": last.workers_rss_mb},
        "leaked_processes": leaks.processes,
        "leaked_temp_files": leaks.temp_files,
        "per_minute": per_minute,
    }))
}
