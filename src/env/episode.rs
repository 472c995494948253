//! One repair episode (DESIGN §2.3): reset from a task, step with command text,
//! rewards, termination, undo for manual stepping, and an event stream.
//!
//! The episode owns the buffer and asks a `Runner` (the sandbox pool, or a fake
//! in tests) to run the tests after every edit. It never panics on model
//! output: anything unparsable is an invalid turn with a reason.
use super::buffer::{Buffer, EditMark};
use super::command::Command;
use super::dsl::{self, ParsedCommand};
use super::feedback::{self, FeedbackConfig};
use super::prompt;
use super::reward::{TurnFacts, turn_reward};
use crate::config::EnvSection;
pub use crate::protocol::Source;
use crate::protocol::run::{Limits, RunReport, RunRequest};
use crate::protocol::{EpisodeEvent, TurnRecord};
use crate::task::Task;

/// Runs a program's tests. The sandbox pool implements it; tests use fakes.
pub trait Runner: Send + Sync {
    /// `Err` is an infrastructure failure (already retried by the runner), never a code failure.
    fn run(&self, req: &RunRequest) -> Result<RunReport, String>;
}

/// What the policy sees this turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// 0 for the first observation, then the number of turns taken.
    pub turn: u32,
    /// The user message: the whole first turn, or only the state later.
    pub text: String,
    /// The state alone (`L<n> …`, `***`, feedback).
    pub state: String,
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    pub observation: Observation,
    pub reward: f64,
    pub done: bool,
    /// The state now passes every test.
    pub solved: bool,
    pub invalid: bool,
    pub infra_error: bool,
    pub record: TurnRecord,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EpisodeError {
    #[error("the episode is over; reset to start another")]
    Finished,
    #[error("task {task}: the test run failed for reasons outside the code: {reason}")]
    Infra { task: String, reason: String },
}

#[derive(Debug, Clone)]
struct Snapshot {
    buffer: Buffer,
    report: Option<RunReport>,
    feedback: String,
    turn: u32,
    solved_ever: bool,
    done: bool,
    rewards_len: usize,
}

/// A running episode.
pub struct Episode<'r> {
    task: Task,
    runner: &'r dyn Runner,
    cfg: EnvSection,
    limits: Limits,
    job: u64,
    id: u64,
    buffer: Buffer,
    report: Option<RunReport>,
    feedback: String,
    turn: u32,
    solved_ever: bool,
    done: bool,
    infra_error: bool,
    rewards: Vec<f64>,
    history: Vec<Snapshot>,
    events: Vec<EpisodeEvent>,
}

impl<'r> Episode<'r> {
    /// Starts an episode on the task's buggy code; the first state carries its test feedback.
    pub fn reset(
        task: Task,
        runner: &'r dyn Runner,
        cfg: &EnvSection,
        limits: &Limits,
        (job, id): (u64, u64),
    ) -> Result<(Episode<'r>, Observation), EpisodeError> {
        let buffer = Buffer::from_code(&task.buggy);
        let mut ep = Episode {
            runner,
            cfg: cfg.clone(),
            limits: limits.clone(),
            job,
            id,
            buffer,
            report: None,
            feedback: String::new(),
            turn: 0,
            solved_ever: false,
            done: false,
            infra_error: false,
            rewards: Vec::new(),
            history: Vec::new(),
            events: Vec::new(),
            task,
        };
        let report = ep.run_tests().map_err(|reason| EpisodeError::Infra {
            task: ep.task.id.clone(),
            reason,
        })?;
        ep.solved_ever = report.all_passed();
        ep.feedback = feedback::render_feedback(&report, &ep.task.tests, &ep.feedback_cfg());
        ep.report = Some(report);
        let state = ep.state();
        ep.events.push(EpisodeEvent::EpisodeStarted {
            job,
            episode: id,
            task_id: ep.task.id.clone(),
            state: state.clone(),
        });
        let obs = Observation {
            turn: 0,
            text: prompt::first_user_message(&ep.task, &state),
            state,
        };
        Ok((ep, obs))
    }

    fn feedback_cfg(&self) -> FeedbackConfig {
        FeedbackConfig {
            max_failures_shown: self.cfg.max_failures_shown,
            cap_chars: self.cfg.feedback_cap,
        }
    }

    fn run_tests(&self) -> Result<RunReport, String> {
        self.runner.run(&RunRequest {
            setup: self.task.setup_code().to_string(),
            code: self.buffer.to_code(),
            tests: self.task.tests.clone(),
            limits: self.limits.clone(),
        })
    }

    /// The current state text.
    pub fn state(&self) -> String {
        feedback::render_state(&self.buffer, &self.feedback)
    }

    /// Applies one turn of text. Model turns need `### `; a person's may omit it.
    pub fn step(&mut self, text: &str, source: Source) -> Result<StepOutcome, EpisodeError> {
        if self.done {
            return Err(EpisodeError::Finished);
        }
        self.history.push(self.snapshot());
        self.turn += 1;
        let last_turn = self.turn >= self.cfg.max_turns;
        let line = text.split('\n').next().unwrap_or("");
        let parsed = match source {
            Source::Model => dsl::parse_model_turn(line),
            Source::Person => dsl::parse_command(line),
        };
        let mut facts = TurnFacts::default();
        let mut error = None;
        let mut edited_line = None;
        let mut canonical = None;
        let mut exited = false;
        match parsed {
            Err(e) => error = Some(e.message.clone()),
            Ok(ParsedCommand { command, .. }) => {
                canonical = Some(command.to_string());
                if command == Command::Exit {
                    exited = true;
                } else {
                    match self.buffer.apply(&command) {
                        Err(e) => error = Some(e.to_string()),
                        Ok(mark) => {
                            edited_line = Some(match mark {
                                EditMark::Changed(n) | EditMark::Deleted(n) => n,
                            });
                            match self.run_tests() {
                                Ok(report) => {
                                    let passed = report.all_passed();
                                    facts.first_solve = passed && !self.solved_ever;
                                    self.solved_ever |= passed;
                                    self.feedback = feedback::render_feedback(
                                        &report,
                                        &self.task.tests,
                                        &self.feedback_cfg(),
                                    );
                                    self.report = Some(report);
                                }
                                Err(reason) => {
                                    self.infra_error = true;
                                    self.done = true;
                                    self.feedback = format!("Infrastructure error: {reason}");
                                }
                            }
                        }
                    }
                }
            }
        }
        if let Some(reason) = &error {
            facts.invalid = true;
            self.feedback = feedback::render_invalid(reason, &self.feedback_cfg());
        }
        if exited || last_turn {
            self.done = true;
        }
        facts.capped = last_turn && !exited;
        let reward = if self.infra_error {
            0.0
        } else {
            turn_reward(&self.cfg.rewards, facts)
        };
        self.rewards.push(reward);
        let state = self.state();
        let solved = self.solved_now();
        let record = TurnRecord {
            turn: self.turn,
            text: text.to_string(),
            command: canonical,
            valid: error.is_none(),
            error,
            reward,
            logprob: None,
            state: state.clone(),
            solved,
            edited_line,
        };
        self.events.push(EpisodeEvent::Turn {
            job: self.job,
            episode: self.id,
            record: record.clone(),
        });
        if self.done {
            self.events.push(EpisodeEvent::EpisodeFinished {
                job: self.job,
                episode: self.id,
                solved,
                turns: self.turn,
                ret: self.rewards.iter().sum(),
                infra_error: self.infra_error,
            });
        }
        Ok(StepOutcome {
            observation: Observation {
                turn: self.turn,
                text: state.clone(),
                state,
            },
            reward,
            done: self.done,
            solved,
            invalid: facts.invalid,
            infra_error: self.infra_error,
            record,
        })
    }

    /// Ends the episode as an infrastructure error without a turn: the policy could not
    /// produce a command (a remote server failed past its retries). Unscored, like a
    /// sandbox failure.
    pub fn abort_infra(&mut self, reason: &str) {
        if self.done {
            return;
        }
        self.infra_error = true;
        self.done = true;
        self.feedback = format!("Infrastructure error: {reason}");
        self.events.push(EpisodeEvent::EpisodeFinished {
            job: self.job,
            episode: self.id,
            solved: self.solved_now(),
            turns: self.turn,
            ret: self.rewards.iter().sum(),
            infra_error: true,
        });
    }

    /// Whether the current code passes every test (from the last test run).
    pub fn solved_now(&self) -> bool {
        self.report.as_ref().is_some_and(RunReport::all_passed)
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            buffer: self.buffer.clone(),
            report: self.report.clone(),
            feedback: self.feedback.clone(),
            turn: self.turn,
            solved_ever: self.solved_ever,
            done: self.done,
            rewards_len: self.rewards.len(),
        }
    }

    /// Takes back the last turn (manual stepping). False when there is nothing to undo.
    pub fn undo(&mut self) -> bool {
        let Some(s) = self.history.pop() else {
            return false;
        };
        self.buffer = s.buffer;
        self.report = s.report;
        self.feedback = s.feedback;
        self.turn = s.turn;
        self.solved_ever = s.solved_ever;
        self.done = s.done;
        self.infra_error = false;
        self.rewards.truncate(s.rewards_len);
        true
    }

    /// Events since the last call, in order.
    pub fn take_events(&mut self) -> Vec<EpisodeEvent> {
        std::mem::take(&mut self.events)
    }

    pub fn task(&self) -> &Task {
        &self.task
    }
    pub fn buffer(&self) -> &Buffer {
        &self.buffer
    }
    pub fn report(&self) -> Option<&RunReport> {
        self.report.as_ref()
    }
    pub fn turn(&self) -> u32 {
        self.turn
    }
    pub fn done(&self) -> bool {
        self.done
    }
    pub fn infra_error(&self) -> bool {
        self.infra_error
    }
    pub fn rewards(&self) -> &[f64] {
        &self.rewards
    }
    pub fn id(&self) -> u64 {
        self.id
    }

    #[cfg(test)]
    pub(crate) fn runner_for_tests(&mut self, runner: &'r dyn Runner) {
        self.runner = runner;
    }
}
