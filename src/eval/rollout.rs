//! Runs many episodes with one batched policy: each round asks the policy for
//! the next command of every live episode at once, and steps each episode in
//! parallel (its test run goes to the sandbox pool) as soon as its command is
//! ready — while the model is still decoding the others. Used by `coe eval`, data
//! checks and RL rollouts alike. A caller that wants to see it move or stop it passes a
//! `Watch`: a report after every round and a flag checked at every round boundary.
use crate::config::{Config, EnvSection};
use crate::task::Task;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Instant;

use super::progress::{RoundProgress, eta_s, rounds_left};
use crate::env::episode::{Episode, EpisodeError, Runner, Source, StepOutcome};
use crate::policy::{Policy, PolicyError, Proposal, Query};
use crate::protocol::run::Limits;
use crate::protocol::{EpisodeEvent, TurnRecord};
use crate::util::parallel_map;

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

impl RolloutOptions {
    /// The config's environment and sandbox limits, `batch` live episodes stepped by
    /// `threads` threads, job 0.
    pub fn from_config(cfg: &Config, batch: usize, threads: usize) -> Self {
        RolloutOptions {
            env: cfg.env.clone(),
            limits: cfg.sandbox.limits.clone(),
            batch,
            threads,
            job: 0,
        }
    }
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

/// What a caller adds to a rollout besides its events; `Watch::default()` adds nothing.
#[derive(Default)]
pub struct Watch<'a> {
    /// Called after every round.
    pub on_round: Option<&'a mut dyn FnMut(&RoundProgress)>,
    /// Once set, the rollout stops at the next round boundary (no new round, no new wave)
    /// and returns the episodes finished so far; the live ones are dropped.
    pub cancel: Option<&'a AtomicBool>,
}

impl Watch<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::SeqCst))
    }
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
    run_episodes_watched(
        tasks,
        samples,
        policy,
        runner,
        opts,
        on_event,
        Watch::default(),
    )
}

/// `run_episodes` with a report after every round and a cancel flag: when cancelled, the
/// result holds only the finished episodes (fewer than `tasks.len() * samples`).
pub fn run_episodes_watched(
    tasks: &[Task],
    samples: usize,
    policy: &mut dyn Policy,
    runner: &dyn Runner,
    opts: &RolloutOptions,
    on_event: &mut dyn FnMut(EpisodeEvent),
    mut watch: Watch<'_>,
) -> Result<Vec<EpisodeResult>, RolloutError> {
    let specs: Vec<(usize, usize)> = (0..tasks.len())
        .flat_map(|t| (0..samples).map(move |s| (t, s)))
        .collect();
    let batch = opts.batch.max(1);
    let waves = specs.len().div_ceil(batch);
    let clock = Instant::now();
    let mut rounds_done = 0u64;
    let mut results = Vec::with_capacity(specs.len());
    for (wave_no, wave) in specs.chunks(batch).enumerate() {
        if watch.cancelled() {
            break;
        }
        let base = (wave_no * batch) as u64;
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
        let mut turn = 0u32;
        while !live.is_empty() && !watch.cancelled() {
            let round_clock = Instant::now();
            let (stepped, tokens) = round(tasks, std::mem::take(&mut live), policy, opts)?;
            for mut l in stepped {
                for e in l.ep.take_events() {
                    on_event(e);
                }
                if l.ep.done() {
                    policy.end_episode(l.result.episode);
                    results.push(l.result);
                } else {
                    live.push(l);
                }
            }
            turn += 1;
            rounds_done += 1;
            if let Some(report) = watch.on_round.as_mut() {
                let elapsed_s = clock.elapsed().as_secs_f64();
                let max_turns = opts.env.max_turns;
                let left = rounds_left(turn, max_turns, live.len(), wave_no + 1, waves);
                report(&RoundProgress {
                    turn,
                    max_turns,
                    wave: wave_no + 1,
                    waves,
                    live: live.len(),
                    finished: results.len(),
                    total: specs.len(),
                    solved: results.iter().filter(|r| r.solved).count()
                        + live.iter().filter(|l| l.result.solved).count(),
                    tokens,
                    round_s: round_clock.elapsed().as_secs_f64(),
                    elapsed_s,
                    eta_s: eta_s(elapsed_s, rounds_done, left),
                });
            }
        }
        // Episodes dropped by a cancel end here too: the policy may free what it kept.
        for l in &live {
            policy.end_episode(l.result.episode);
        }
    }
    results.sort_by_key(|r| (r.task_index, r.sample));
    Ok(results)
}

/// One turn of every live episode. The policy hands proposals over as they are ready
/// and `opts.threads` workers step those episodes (their tests run in the sandbox pool)
/// while the policy goes on producing the rest; the turn's bookkeeping then happens in
/// episode order, so the outcome does not depend on which finished first. Also returns
/// the number of token ids sampled for the round's commands.
fn round<'r>(
    tasks: &[Task],
    live: Vec<Live<'r>>,
    policy: &mut dyn Policy,
    opts: &RolloutOptions,
) -> Result<(Vec<Live<'r>>, usize), RolloutError> {
    let n = live.len();
    let buffers: Vec<_> = live.iter().map(|l| l.ep.buffer().clone()).collect();
    let (mut episodes, books): (Vec<_>, Vec<_>) = live
        .into_iter()
        .map(|l| (Some(l.ep), (l.result, l.observation)))
        .unzip();
    let mut proposals: Vec<Option<Proposal>> = vec![None; n];
    let mut stepped: Vec<Option<Stepped<'r>>> = (0..n).map(|_| None).collect();
    let mut stepped_early: Vec<Option<Stepped<'r>>> = (0..n).map(|_| None).collect();
    let queries: Vec<Query<'_>> = books
        .iter()
        .zip(&buffers)
        .map(|((result, observation), buffer)| Query {
            episode: result.episode,
            task: &tasks[result.task_index],
            buffer,
            history: &result.history,
            observation,
        })
        .collect();
    let (job_tx, job_rx) = mpsc::channel::<(usize, Episode<'r>, String, Source)>();
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Stepped<'r>)>();
    let proposed = std::thread::scope(|s| {
        for _ in 0..opts.threads.clamp(1, n.max(1)) {
            let (job_rx, done_tx) = (&job_rx, done_tx.clone());
            s.spawn(move || {
                loop {
                    // The lock is held only while waiting for a job, never while stepping.
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    let Ok((i, mut ep, text, source)) = job else {
                        break;
                    };
                    let outcome = ep.step(&text, source).ok();
                    if done_tx.send((i, (ep, outcome))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let proposed = policy.propose_each(&queries, &mut |i, p| {
            if let (Some(slot), Some(ep)) = (proposals.get_mut(i), episodes.get_mut(i))
                && slot.is_none()
                && let Some(mut ep) = ep.take()
            {
                match &p.failed {
                    // No command came: the episode ends unscored, without a step.
                    Some(reason) => {
                        ep.abort_infra(reason);
                        if let Some(s) = stepped_early.get_mut(i) {
                            *s = Some((ep, None));
                        }
                    }
                    None => {
                        let _ = job_tx.send((i, ep, p.text.clone(), p.source()));
                    }
                }
                *slot = Some(p);
            }
        });
        drop(job_tx);
        for (i, done) in done_rx {
            stepped[i] = Some(done);
        }
        for (i, early) in stepped_early.iter_mut().enumerate() {
            if let Some(done) = early.take() {
                stepped[i] = Some(done);
            }
        }
        proposed
    });
    proposed?;
    drop(queries);
    // An episode is stepped only once its proposal came, so this counts both.
    let got = stepped.iter().filter(|s| s.is_some()).count();
    if got != n {
        return Err(RolloutError::Count { got, want: n });
    }
    let tokens = proposals.iter().flatten().map(|p| p.token_ids.len()).sum();
    let mut out = Vec::with_capacity(n);
    for (((result, observation), p), done) in books.into_iter().zip(proposals).zip(stepped) {
        let (Some(p), Some((ep, outcome))) = (p, done) else {
            return Err(RolloutError::Count { got, want: n });
        };
        let mut l = Live {
            ep,
            result,
            observation,
        };
        if let Some(out) = outcome {
            record(&mut l, p, out);
        }
        l.result.infra_error |= l.ep.infra_error();
        out.push(l);
    }
    Ok((out, tokens))
}

/// An episode back from a worker, with its step's outcome (`None`: the step failed).
type Stepped<'r> = (Episode<'r>, Option<StepOutcome>);

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

/// Records a stepped turn in the episode's result.
fn record(l: &mut Live<'_>, p: Proposal, out: StepOutcome) {
    let mut record = out.record;
    record.logprob = p.logprob();
    let user = std::mem::replace(&mut l.observation, out.observation.text);
    l.result.history.push((user, p));
    l.result.turns = record.turn;
    l.result.invalid += u32::from(out.invalid);
    l.result.rewards.push(out.reward);
    l.result.solved_after.push(out.solved);
    l.result.solved = out.solved;
    l.result.infra_error = out.infra_error;
    l.result.records.push(record);
}
