//! Runs many episodes with one batched policy: each round asks the policy for
//! the next command of every live episode at once, then steps the episodes in
//! parallel (their test runs go to the sandbox pool). Used by `coe eval`, data
//! checks and RL rollouts alike.
use crate::config::EnvSection;
use crate::data::task::Task;
use crate::env::episode::{Episode, EpisodeError, Runner};
use crate::policy::{Policy, PolicyError, Proposal, Query};
use crate::protocol::{EpisodeEvent, TurnRecord};
use crate::sandbox::types::Limits;

/// How to run a batch of episodes.
#[derive(Debug, Clone)]
pub struct RolloutOptions {
    /// The environment's turn budget, rewards and feedback settings.
    pub env: EnvSection,
    /// Sandbox limits for every test run.
    pub limits: Limits,
    /// Episodes live at once (the policy's batch size).
    pub batch: usize,
    /// Threads stepping episodes (≈ sandbox workers).
    pub threads: usize,
    /// Job id stamped on events.
    pub job: u64,
}

/// A finished episode.
#[derive(Debug, Clone)]
pub struct EpisodeResult {
    pub episode: u64,
    pub task_index: usize,
    pub task_id: String,
    pub sample: usize,
    /// The final state passes every test.
    pub solved: bool,
    pub turns: u32,
    pub invalid: u32,
    pub rewards: Vec<f64>,
    /// Whether the state after each turn passed every test.
    pub solved_after: Vec<bool>,
    /// The state before any edit already passed (an invalid task).
    pub solved_at_start: bool,
    pub infra_error: bool,
    /// (user message, reply) per turn — what a model saw and produced.
    pub history: Vec<(String, Proposal)>,
    pub records: Vec<TurnRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("the policy returned {got} proposals for {want} episodes")]
    Count { got: usize, want: usize },
}

struct Live<'r> {
    ep: Episode<'r>,
    result: EpisodeResult,
    observation: String,
}

/// Runs `samples` episodes for every task; results come back in (task, sample) order.
pub fn run_episodes(
    tasks: &[Task],
    samples: usize,
    policy: &mut dyn Policy,
    runner: &dyn Runner,
    opts: &RolloutOptions,
    on_event: &mut dyn FnMut(EpisodeEvent),
) -> Result<Vec<EpisodeResult>, RolloutError> {
    let specs: Vec<(usize, usize)> = (0..tasks.len())
        .flat_map(|t| (0..samples).map(move |s| (t, s)))
        .collect();
    let mut results = Vec::with_capacity(specs.len());
    for (wave_no, wave) in specs.chunks(opts.batch.max(1)).enumerate() {
        let base = (wave_no * opts.batch.max(1)) as u64;
        let started = parallel_map(wave, opts.threads, |i, &(t, s)| {
            start(&tasks[t], (t, s, base + i as u64), runner, opts)
        });
        let mut live = Vec::new();
        for item in started {
            match item {
                Ok(mut l) => {
                    for e in l.ep.take_events() {
                        on_event(e);
                    }
                    live.push(l);
                }
                Err(finished) => results.push(*finished),
            }
        }
        while !live.is_empty() {
            let proposals = {
                let queries: Vec<Query<'_>> = live
                    .iter()
                    .map(|l| Query {
                        episode: l.result.episode,
                        task: l.ep.task(),
                        buffer: l.ep.buffer(),
                        history: &l.result.history,
                        observation: &l.observation,
                    })
                    .collect();
                policy.propose(&queries)?
            };
            if proposals.len() != live.len() {
                return Err(RolloutError::Count {
                    got: proposals.len(),
                    want: live.len(),
                });
            }
            let mut pairs: Vec<(Live<'_>, Proposal)> = live.drain(..).zip(proposals).collect();
            parallel_for_each(&mut pairs, opts.threads, |(l, p)| advance(l, p));
            for (mut l, _) in pairs {
                for e in l.ep.take_events() {
                    on_event(e);
                }
                if l.ep.done() {
                    results.push(l.result);
                } else {
                    live.push(l);
                }
            }
        }
    }
    results.sort_by_key(|r| (r.task_index, r.sample));
    Ok(results)
}

/// Resets an episode; an infra failure comes back as a finished, unscored result.
fn start<'r>(
    task: &Task,
    (task_index, sample, id): (usize, usize, u64),
    runner: &'r dyn Runner,
    opts: &RolloutOptions,
) -> Result<Live<'r>, Box<EpisodeResult>> {
    let mut result = EpisodeResult {
        episode: id,
        task_index,
        task_id: task.id.clone(),
        sample,
        solved: false,
        turns: 0,
        invalid: 0,
        rewards: Vec::new(),
        solved_after: Vec::new(),
        solved_at_start: false,
        infra_error: false,
        history: Vec::new(),
        records: Vec::new(),
    };
    match Episode::reset(
        task.clone(),
        runner,
        &opts.env,
        &opts.limits,
        (opts.job, id),
    ) {
        Ok((ep, obs)) => {
            result.solved_at_start = ep.solved_now();
            Ok(Live {
                ep,
                result,
                observation: obs.text,
            })
        }
        Err(EpisodeError::Infra { .. } | EpisodeError::Finished) => {
            result.infra_error = true;
            Err(Box::new(result))
        }
    }
}

/// Applies one proposal to a live episode and records the turn.
fn advance(l: &mut Live<'_>, p: &Proposal) {
    let Ok(out) = l.ep.step(&p.text, p.source()) else {
        return;
    };
    let mut record = out.record;
    record.logprob = p.logprob();
    let user = std::mem::replace(&mut l.observation, out.observation.text);
    l.result.history.push((user, p.clone()));
    l.result.turns = record.turn;
    l.result.invalid += u32::from(out.invalid);
    l.result.rewards.push(out.reward);
    l.result.solved_after.push(out.solved);
    l.result.solved = out.solved;
    l.result.infra_error = out.infra_error;
    l.result.records.push(record);
}

/// Maps `f` over `items` on up to `threads` scoped threads, keeping order.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(usize, &T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let f = &f;
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(i, x)| f(c * chunk + i, x))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// Runs `f` on every item on up to `threads` scoped threads.
pub fn parallel_for_each<T: Send>(items: &mut [T], threads: usize, f: impl Fn(&mut T) + Sync) {
    let threads = threads.clamp(1, items.len().max(1));
    let chunk = items.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for part in items.chunks_mut(chunk) {
            let f = &f;
            s.spawn(move || part.iter_mut().for_each(f));
        }
    });
}
