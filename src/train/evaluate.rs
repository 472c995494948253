//! Held-out evaluation inside a training job: greedy Chain-of-Edits episodes on a task file,
//! their events logged to the run, summarised as solve rate, mean return and invalid rate.
//! After every round of episodes (an RL rollout's or an evaluation's) a `progress` log line
//! goes to the run, so a long rollout shows signs of life before its step's metric.
use super::error::{TrainError, TrainResult};
use crate::config::Config;
use crate::eval::progress::RoundProgress;
use crate::eval::rollout::{EpisodeResult, RolloutOptions, Watch, run_episodes_watched};
use crate::model::sampling::SamplingParams;
use crate::policy::ModelPolicy;
use crate::protocol::EpisodeEvent;
use crate::sandbox::SandboxPool;
use crate::task::Task;
use std::cell::RefCell;

use super::run_dir::Emitter;

/// Scores of one set of episodes (infra errors excluded).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct EvalSummary {
    pub episodes: usize,
    pub solve_rate: f64,
    pub mean_return: f64,
    pub invalid_rate: f64,
    pub infra_errors: usize,
}

/// Summarises finished episodes.
pub fn summarise(results: &[EpisodeResult]) -> EvalSummary {
    let scored: Vec<&EpisodeResult> = results.iter().filter(|r| !r.infra_error).collect();
    let n = scored.len().max(1) as f64;
    let turns: u32 = scored.iter().map(|r| r.turns).sum();
    let invalid: u32 = scored.iter().map(|r| r.invalid).sum();
    EvalSummary {
        episodes: scored.len(),
        solve_rate: scored.iter().filter(|r| r.solved).count() as f64 / n,
        mean_return: scored
            .iter()
            .map(|r| r.rewards.iter().sum::<f64>())
            .sum::<f64>()
            / n,
        invalid_rate: if turns == 0 {
            0.0
        } else {
            f64::from(invalid) / f64::from(turns)
        },
        infra_errors: results.len() - scored.len(),
    }
}

/// Episode ids of the `n`-th batch of a job start at `n · EPISODE_STRIDE`, so ids stay unique
/// across a run's many rollouts and evaluations.
pub const EPISODE_STRIDE: u64 = 1_000_000;

/// The log level of the per-round lines (`cli::train` rewrites them in place).
pub const PROGRESS_LEVEL: &str = "progress";

/// Runs `samples` episodes per task, logging every event with episode ids offset by
/// `batch_no · EPISODE_STRIDE`, and a progress line `<phase>: <round>` after every round.
pub fn run_logged(
    tasks: &[Task],
    samples: usize,
    policy: &mut ModelPolicy,
    pool: &SandboxPool,
    cfg: &Config,
    emit: &mut Emitter,
    phase: (&str, u64),
) -> TrainResult<Vec<EpisodeResult>> {
    policy.loaded_mut().model.set_training(false);
    run_logged_with(tasks, samples, policy, pool, cfg, emit, phase)
}

/// [`run_logged`] with any policy (e.g. remote servers sampling for a local model).
pub fn run_logged_with(
    tasks: &[Task],
    samples: usize,
    policy: &mut dyn crate::policy::Policy,
    pool: &SandboxPool,
    cfg: &Config,
    emit: &mut Emitter,
    (phase, batch_no): (&str, u64),
) -> TrainResult<Vec<EpisodeResult>> {
    let opts = RolloutOptions {
        job: emit.job(),
        ..RolloutOptions::from_config(cfg, (tasks.len() * samples).max(1), pool.workers().max(1))
    };
    let base = batch_no * EPISODE_STRIDE;
    // Both callbacks write to the run; they are never called at the same time.
    let emit = RefCell::new(emit);
    let write_error = RefCell::new(None);
    let mut on_event = |e: EpisodeEvent| {
        let e = e.with_episode_offset(base);
        if let Err(err) = emit.borrow_mut().episode(e) {
            write_error.borrow_mut().get_or_insert(err);
        }
    };
    let mut on_round = |p: &RoundProgress| {
        let line = format!("{phase}: {}", p.line());
        if let Err(err) = emit.borrow_mut().log(PROGRESS_LEVEL, line) {
            write_error.borrow_mut().get_or_insert(err);
        }
    };
    let watch = Watch {
        on_round: Some(&mut on_round),
        cancel: None,
    };
    let results = run_episodes_watched(tasks, samples, policy, pool, &opts, &mut on_event, watch)?;
    if let Some(err) = write_error.into_inner() {
        return Err(TrainError::Invalid(format!("cannot write events: {err}")));
    }
    Ok(results)
}

/// Greedy held-out evaluation.
pub fn evaluate(
    tasks: &[Task],
    policy: &mut ModelPolicy,
    pool: &SandboxPool,
    cfg: &Config,
    emit: &mut Emitter,
    batch_no: u64,
) -> TrainResult<EvalSummary> {
    let previous = policy.config().sampling.clone();
    policy.set_sampling(SamplingParams::greedy())?;
    let results = run_logged(tasks, 1, policy, pool, cfg, emit, ("eval", batch_no));
    policy.set_sampling(previous)?;
    Ok(summarise(&results?))
}
