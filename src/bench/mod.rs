//! `coe bench <what>`: the project's own benchmarks. Each prints one JSON object
//! on stdout (machine-readable) and a short summary on stderr, and measures its
//! baseline in the same run on the same machine.
mod decode;
mod env;
mod python;
mod rollout;
mod sandbox;
mod serve;
mod serve_child;
mod sft;
pub mod soak;
mod soak_probe;

use crate::config::Config;
use std::path::{Path, PathBuf};

/// The benchmarks that exist, for help and errors.
pub const KNOWN: &[&str] = &[
    "sandbox", "env", "decode", "rollout", "serve", "sft", "soak", "tui",
];

/// Batch sizes `coe bench decode` measures unless `--batch` names others.
pub const DECODE_BATCHES: &[usize] = &[1, 8, 32];

/// What the command line adds to the config for some benchmarks.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// `decode` batch sizes (empty: [`DECODE_BATCHES`]); `serve`: the first is the client count.
    pub batches: Vec<usize>,
    /// `rollout` and `serve` tasks (default: `rl.tasks`).
    pub tasks: Option<PathBuf>,
    /// `rollout` tasks per batch.
    pub tasks_n: usize,
    /// `rollout` episodes per task (default: `rl.group_size`).
    pub group: Option<usize>,
    /// `sft` timed optimizer steps.
    pub steps: usize,
    /// Measure the Python baseline too.
    pub baseline: bool,
    /// Kill the baseline after this long (recorded as its error).
    pub baseline_timeout: Option<std::time::Duration>,
    /// `rollout`: also time whole rounds (decode every command, then run the tests).
    pub whole_rounds: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            batches: Vec::new(),
            tasks: None,
            tasks_n: 64,
            group: None,
            steps: 20,
            baseline: true,
            baseline_timeout: None,
            whole_rounds: true,
        }
    }
}

/// Runs a benchmark by name and returns its JSON result.
pub fn run(what: &str, cfg: &Config, opts: &BenchOptions) -> anyhow::Result<serde_json::Value> {
    let batches = opts.batches.as_slice();
    match what {
        "rollout" => rollout::run(cfg, opts),
        "serve" => serve::run(cfg, opts),
        "sft" => sft::run(cfg, opts),
        "sandbox" => sandbox::run(&cfg.sandbox),
        "env" => env::run(&cfg.env),
        "soak" => soak::run(cfg),
        "tui" => anyhow::bail!("`coe bench tui` runs in the workbench, through `coe bench tui`"),
        "decode" => {
            let batches = if batches.is_empty() {
                DECODE_BATCHES
            } else {
                batches
            };
            decode::run(
                &cfg.model,
                batches,
                251,
                16,
                opts.baseline,
                opts.baseline_timeout,
            )
        }
        other => anyhow::bail!("unknown benchmark {other:?}; known: {}", KNOWN.join(", ")),
    }
}

/// Prints the result and writes it to `out` when given.
pub fn emit(value: &serde_json::Value, out: Option<&Path>) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{text}");
    if let Some(p) = out {
        crate::util::write_atomic(p, text.as_bytes())?;
    }
    Ok(())
}

/// The tasks a rollout-style benchmark runs: `--tasks F` or `rl.tasks`, cycled to `--tasks-n`,
/// and the group size (`--group`, else `rl.group_size`). `what` names the benchmark in errors.
pub(crate) fn rollout_tasks(
    cfg: &Config,
    opts: &BenchOptions,
    what: &str,
) -> anyhow::Result<(PathBuf, Vec<crate::task::Task>, usize)> {
    let tasks_path = match (&opts.tasks, &cfg.rl.tasks) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => p.into(),
        (None, None) => anyhow::bail!(
            "bench {what} needs tasks: pass --tasks F (a task JSONL from `coe data gen`) or set rl.tasks"
        ),
    };
    let all = crate::data::loaders::load_tasks(&tasks_path)?;
    anyhow::ensure!(
        !all.is_empty(),
        "{}: the file holds no tasks",
        tasks_path.display()
    );
    anyhow::ensure!(opts.tasks_n > 0, "--tasks-n must be at least 1");
    let tasks = all.iter().cycle().take(opts.tasks_n).cloned().collect();
    let group = opts.group.unwrap_or(cfg.rl.group_size);
    anyhow::ensure!(group > 0, "--group must be at least 1");
    Ok((tasks_path, tasks, group))
}
