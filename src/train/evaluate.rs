//! Held-out evaluation inside a training job: greedy Chain-of-Edits episodes on a task file,
//! their events logged to the run, summarised as solve rate, mean return and invalid rate.
use super::error::{TrainError, TrainResult};
use crate::config::Config;
use crate::eval::rollout::{EpisodeResult, RolloutOptions, run_episodes};
use crate::model::sampling::SamplingParams;
use crate::policy::ModelPolicy;
use crate::protocol::EpisodeEvent;
use crate::sandbox::SandboxPool;
use crate::task::Task;

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

/// Runs one episode per task with `sampling`, logging every event with episode ids offset by
/// `batch_no · EPISODE_STRIDE`.
pub fn run_logged(
    tasks: &[Task],
    samples: usize,
    policy: &mut ModelPolicy,
    pool: &SandboxPool,
    cfg: &Config,
    emit: &mut Emitter,
    batch_no: u64,
) -> TrainResult<Vec<EpisodeResult>> {
    policy.loaded_mut().model.set_training(false);
    let opts = RolloutOptions {
        env: cfg.env.clone(),
        limits: cfg.sandbox.limits.clone(),
        batch: (tasks.len() * samples).max(1),
        threads: pool.workers().max(1),
        job: emit.job(),
    };
    let base = batch_no * EPISODE_STRIDE;
    let mut write_error = None;
    let mut on_event = |e: EpisodeEvent| {
        let e = e.with_episode_offset(base);
        if let Err(err) = emit.episode(e) {
            write_error.get_or_insert(err);
        }
    };
    let results = run_episodes(tasks, samples, policy, pool, &opts, &mut on_event)?;
    if let Some(err) = write_error {
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
    let results = run_logged(tasks, 1, policy, pool, cfg, emit, batch_no);
    policy.set_sampling(previous)?;
    Ok(summarise(&results?))
}
