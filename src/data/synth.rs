//! `coe data gen` (DESIGN §3): corrupt correct programs into repair tasks, keep
//! those that fail at least one test in the sandbox, de-duplicate, derive the
//! shortest DSL repair and replay it in the environment to record every state,
//! then write per-split task, demonstration, direct-answer and CoT files.
//!
//! Every random choice comes from a stream seeded by (seed, problem id), so the
//! output does not depend on thread timing or on the order of the input file.
use super::corrupt::{CorruptConfig, corrupt};
use super::rationale::rationale;
use super::split::{Split, split_ids};
use super::trace::repair_trace;
use crate::config::EnvSection;
use crate::env::buffer::Buffer;
use crate::env::episode::{Episode, Runner, Source};
use crate::protocol::run::{Limits, RunRequest};
use crate::task::{CotDemo, DemoTurn, Demonstration, DirectDemo, Origin, Problem, Task};
use crate::util::parallel_map;
use rand::SeedableRng;
use std::collections::{BTreeMap, HashSet};

/// Generation settings.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub seed: u64,
    pub per_problem: usize,
    pub corrupt: CorruptConfig,
    pub threads: usize,
}

/// Everything generated, by split.
#[derive(Debug, Default)]
pub struct Generated {
    pub tasks: BTreeMap<Split, Vec<Task>>,
    pub demos: BTreeMap<Split, Vec<Demonstration>>,
    pub direct: BTreeMap<Split, Vec<DirectDemo>>,
    pub cot: BTreeMap<Split, Vec<CotDemo>>,
    /// The first user message of each demonstration (instructions, task, tests,
    /// first state), aligned with `demos`; not written, used for token counts.
    pub first_user: BTreeMap<Split, Vec<String>>,
    /// Problems whose reference fails its own tests (skipped, reported).
    pub broken_problems: Vec<String>,
    /// Tasks whose replayed repair did not end solved (a bug; reported, not written).
    pub failed_replays: Vec<String>,
    /// Tasks dropped because their repair needs more turns than `env.max_turns`.
    pub too_long: usize,
}

/// FNV-1a, to derive a per-problem seed from its id.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Runs the whole pipeline; `progress(done, total, stage)` is called as work finishes.
pub fn generate(
    problems: &[Problem],
    runner: &dyn Runner,
    limits: &Limits,
    env: &EnvSection,
    opts: &GenOptions,
    progress: &(dyn Fn(usize, usize, &str) + Sync),
) -> Generated {
    let mut out = Generated::default();
    // 1. References must pass.
    let ok = parallel_map(problems, opts.threads, |_, p| {
        runner
            .run(&request(p, &p.solution, limits))
            .is_ok_and(|r| r.all_passed())
    });
    let problems: Vec<&Problem> = problems
        .iter()
        .zip(&ok)
        .filter_map(|(p, &ok)| {
            if !ok {
                out.broken_problems.push(p.id.clone());
            }
            ok.then_some(p)
        })
        .collect();
    // 2. Candidates per problem, checked in the sandbox, in rounds until K are kept.
    let donors: Vec<(usize, &str)> = problems
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.solution.lines().map(move |l| (i, l)))
        .collect();
    let mut kept: Vec<Vec<(String, Vec<String>)>> = vec![Vec::new(); problems.len()];
    let mut seen: Vec<HashSet<String>> = problems
        .iter()
        .map(|p| HashSet::from([Buffer::from_code(&p.solution).to_code()]))
        .collect();
    let mut rngs: Vec<rand_chacha::ChaCha8Rng> = problems
        .iter()
        .map(|p| rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed ^ fnv(&p.id)))
        .collect();
    // Only "does some test fail" matters here, and a corruption that loops forever
    // fails as soon as its first test times out: a tight budget keeps such
    // candidates from dominating the check (references and demos keep `limits`).
    let check_limits = Limits {
        test_timeout_s: limits.test_timeout_s.min(0.5),
        run_timeout_s: limits.run_timeout_s.min(1.0),
        ..limits.clone()
    };
    for round in 0..4 {
        let mut cands = Vec::new();
        for (i, p) in problems.iter().enumerate() {
            let missing = opts.per_problem.saturating_sub(kept[i].len());
            if missing == 0 {
                continue;
            }
            let own: Vec<&str> = donors
                .iter()
                .filter(|(j, _)| *j != i)
                .map(|(_, l)| *l)
                .collect();
            for _ in 0..missing * (2 << round) {
                if let Some(c) = corrupt(&p.solution, &own, &opts.corrupt, &mut rngs[i])
                    && seen[i].insert(c.buggy.clone())
                {
                    let ops = c
                        .operators
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>();
                    cands.push((i, c.buggy, ops));
                }
            }
        }
        if cands.is_empty() {
            break;
        }
        let stage = format!("round {} checking corruptions", round + 1);
        let ticker = Ticker::new(cands.len(), &stage, progress);
        let fails = parallel_map(&cands, opts.threads, |_, (i, buggy, _)| {
            let fail = runner
                .run(&request(problems[*i], buggy, &check_limits))
                .is_ok_and(|r| !r.all_passed());
            ticker.tick();
            fail
        });
        for ((i, buggy, ops), fail) in cands.into_iter().zip(fails) {
            if fail && kept[i].len() < opts.per_problem {
                kept[i].push((buggy, ops));
            }
        }
    }
    // 3. Tasks, split by problem.
    let ids: Vec<&str> = problems.iter().map(|p| p.id.as_str()).collect();
    let splits = split_ids(&ids, opts.seed);
    let mut tasks: Vec<(Split, Task)> = Vec::new();
    for (i, p) in problems.iter().enumerate() {
        for (j, (buggy, ops)) in kept[i].iter().enumerate() {
            let id = format!("{}#{j}", p.id);
            tasks.push((
                splits[i],
                Task::from_problem(p, id, buggy.clone(), Origin::Synthetic, Some(ops.clone())),
            ));
        }
    }
    // 4. Demonstrations by replay in the environment.
    let ticker = Ticker::new(tasks.len(), "replaying repairs", progress);
    let demos = parallel_map(&tasks, opts.threads, |_, (_, t)| {
        let d = demonstrate(t, runner, limits, env);
        ticker.tick();
        d
    });
    for ((split, task), demo) in tasks.into_iter().zip(demos) {
        let (demo, first_user) = match demo {
            Ok(d) => d,
            Err(DemoSkip::TooLong) => {
                out.too_long += 1;
                continue;
            }
            Err(DemoSkip::Failed) => {
                out.failed_replays.push(task.id.clone());
                continue;
            }
        };
        let solution = task.solution.clone().unwrap_or_default();
        let ops: Vec<&str> = task
            .corruptions
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        out.cot.entry(split).or_default().push(CotDemo {
            task: task.clone(),
            reasoning: rationale(&task.buggy, &solution, &ops),
            answer: solution.clone(),
        });
        out.direct.entry(split).or_default().push(DirectDemo {
            task: task.clone(),
            answer: solution,
        });
        out.demos.entry(split).or_default().push(demo);
        out.first_user.entry(split).or_default().push(first_user);
        out.tasks.entry(split).or_default().push(task);
    }
    out
}

/// Counts finished items from many threads and reports every 64th and the last.
struct Ticker<'a> {
    done: std::sync::atomic::AtomicUsize,
    total: usize,
    stage: &'a str,
    progress: &'a (dyn Fn(usize, usize, &str) + Sync),
}

impl<'a> Ticker<'a> {
    fn new(
        total: usize,
        stage: &'a str,
        progress: &'a (dyn Fn(usize, usize, &str) + Sync),
    ) -> Self {
        progress(0, total, stage);
        Ticker {
            done: std::sync::atomic::AtomicUsize::new(0),
            total,
            stage,
            progress,
        }
    }

    fn tick(&self) {
        let n = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if n.is_multiple_of(64) || n == self.total {
            (self.progress)(n, self.total, self.stage);
        }
    }
}

fn request(p: &Problem, code: &str, limits: &Limits) -> RunRequest {
    RunRequest {
        setup: p.setup.clone().unwrap_or_default(),
        code: code.to_string(),
        tests: p.tests.clone(),
        limits: limits.clone(),
    }
}

/// Why a task has no demonstration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoSkip {
    /// The repair needs more turns (edits + EXIT) than the episode allows.
    TooLong,
    /// The replay did not end solved by EXIT (or the sandbox failed).
    Failed,
}

/// Replays the shortest repair in the environment, recording every state; also
/// returns the first user message the model would see.
pub fn demonstrate(
    task: &Task,
    runner: &dyn Runner,
    limits: &Limits,
    env: &EnvSection,
) -> Result<(Demonstration, String), DemoSkip> {
    let solution = task.solution.as_deref().ok_or(DemoSkip::Failed)?;
    let trace = repair_trace(&task.buggy, solution);
    if trace.len() > env.max_turns as usize {
        return Err(DemoSkip::TooLong);
    }
    let (mut ep, first) =
        Episode::reset(task.clone(), runner, env, limits, (0, 0)).map_err(|_| DemoSkip::Failed)?;
    let mut turns = Vec::with_capacity(trace.len());
    for cmd in &trace {
        let s = ep
            .step(&format!("### {cmd}"), Source::Model)
            .map_err(|_| DemoSkip::Failed)?;
        if s.invalid || s.infra_error {
            return Err(DemoSkip::Failed);
        }
        turns.push(DemoTurn {
            command: cmd.to_string(),
            state: s.observation.state,
            reward: s.reward,
        });
        if s.done {
            return if s.solved {
                Ok((
                    Demonstration {
                        task: task.clone(),
                        turns,
                    },
                    first.text,
                ))
            } else {
                Err(DemoSkip::Failed)
            };
        }
    }
    Err(DemoSkip::Failed)
}
