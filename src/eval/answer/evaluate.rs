//! The direct and CoT baselines as evaluation episodes: n samples per task, each a single
//! turn, so `results::summarise` scores them exactly like CoE episodes — pass@k from the
//! solved flags, one turn each (mean turns 1), and a reply without a program counted as
//! the turn's invalid command (invalid rate = share of replies with no program).

use super::format::AnswerFormat;
use super::sampler::{AnswerError, AnswerRequest, Answerer};
use super::score::{Scored, Tally, Verdict, answer_and_score};
use crate::env::episode::Runner;
use crate::eval::rollout::EpisodeResult;
use crate::protocol::run::Limits;
use crate::task::Task;

/// How to run a one-shot evaluation.
#[derive(Debug, Clone)]
pub struct OneShotOptions {
    pub format: AnswerFormat,
    pub samples: usize,
    pub limits: Limits,
    /// Threads running tests (≈ sandbox workers).
    pub threads: usize,
}

/// One scored sample of one task.
#[derive(Debug, Clone)]
pub struct OneShotSample {
    pub task_index: usize,
    pub task_id: String,
    pub sample: usize,
    pub scored: Scored,
}

/// Samples `opts.samples` replies per task (in task, sample order) and scores them.
pub fn run_one_shot(
    tasks: &[Task],
    answerer: &mut dyn Answerer,
    runner: &dyn Runner,
    opts: &OneShotOptions,
    progress: &mut dyn FnMut(&Tally),
) -> Result<Vec<OneShotSample>, AnswerError> {
    let requests: Vec<AnswerRequest<'_>> = tasks
        .iter()
        .flat_map(|task| {
            (0..opts.samples).map(move |_| AnswerRequest {
                task,
                format: opts.format,
            })
        })
        .collect();
    let scored = answer_and_score(
        &requests,
        answerer,
        runner,
        &opts.limits,
        opts.threads,
        progress,
    )?;
    let samples = opts.samples.max(1);
    Ok(scored
        .into_iter()
        .enumerate()
        .map(|(i, scored)| OneShotSample {
            task_index: i / samples,
            task_id: tasks
                .get(i / samples)
                .map_or_else(String::new, |t| t.id.clone()),
            sample: i % samples,
            scored,
        })
        .collect())
}

/// The samples as one-turn episodes for `results::summarise`.
pub fn as_episodes(samples: &[OneShotSample]) -> Vec<EpisodeResult> {
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let solved = s.scored.verdict == Verdict::Passed;
            EpisodeResult {
                episode: i as u64,
                task_index: s.task_index,
                task_id: s.task_id.clone(),
                sample: s.sample,
                solved,
                turns: 1,
                invalid: u32::from(s.scored.verdict == Verdict::NoProgram),
                rewards: Vec::new(),
                solved_after: vec![solved],
                solved_at_start: false,
                infra_error: matches!(s.scored.verdict, Verdict::Infra { .. }),
                history: Vec::new(),
                records: Vec::new(),
            }
        })
        .collect()
}
