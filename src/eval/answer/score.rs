//! Scoring one-shot answers: the program is read out of each reply and run against its
//! task's tests in the sandbox, on worker threads, while the answerer produces the next
//! replies (on a CPU the model decodes while Python runs tests; on a GPU the tests hide
//! entirely behind decoding). A reply is solved when every test passes; one without a
//! program is invalid and never runs.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};

use super::extract::extract_program;
use super::sampler::{AnswerError, AnswerRequest, Answerer, Reply};
use crate::env::episode::Runner;
use crate::protocol::run::{Limits, RunOutcome, RunReport, RunRequest, TestOutcome};

/// What became of one reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The reply holds no program (or the prompt did not fit the context).
    NoProgram,
    /// Every test passed.
    Passed,
    /// The program fails; `kind` names how (see [`failure_kind`]).
    Failed { kind: String },
    /// The sandbox failed twice on it: not scored.
    Infra { message: String },
}

/// A reply, its program and its verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub reply: Reply,
    pub program: Option<String>,
    pub verdict: Verdict,
}

/// Counts so far, for progress lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub total: usize,
    pub answered: usize,
    pub scored: usize,
    pub passed: usize,
    pub failed: usize,
    pub no_program: usize,
    pub infra: usize,
}

impl Tally {
    fn count(&mut self, v: &Verdict) {
        self.scored += 1;
        match v {
            Verdict::NoProgram => self.no_program += 1,
            Verdict::Passed => self.passed += 1,
            Verdict::Failed { .. } => self.failed += 1,
            Verdict::Infra { .. } => self.infra += 1,
        }
    }
}

/// Failure kinds of the failing verdicts, counted.
pub fn failures_by_kind<'a>(
    scored: impl IntoIterator<Item = &'a Scored>,
) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in scored {
        if let Verdict::Failed { kind } = &s.verdict {
            *out.entry(kind.clone()).or_insert(0) += 1;
        }
    }
    out
}

/// Answers every request and scores each reply; results come back in request order.
/// `threads` scorer threads run tests; `progress` is called on this thread as replies
/// arrive and verdicts come in.
pub fn answer_and_score(
    requests: &[AnswerRequest<'_>],
    answerer: &mut dyn Answerer,
    runner: &dyn Runner,
    limits: &Limits,
    threads: usize,
    progress: &mut dyn FnMut(&Tally),
) -> Result<Vec<Scored>, AnswerError> {
    let mut slots: Vec<Option<Scored>> = vec![None; requests.len()];
    let mut tally = Tally {
        total: requests.len(),
        ..Tally::default()
    };
    let (work_tx, work_rx) = mpsc::channel::<(usize, Reply)>();
    let (done_tx, done_rx) = mpsc::channel::<(usize, Scored)>();
    let work_rx = Mutex::new(work_rx);
    let answered = std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            let (work_rx, done_tx) = (&work_rx, done_tx.clone());
            s.spawn(move || {
                loop {
                    // Hold the lock only to take one item.
                    let next = work_rx
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .recv();
                    let Ok((i, reply)) = next else { return };
                    let Some(req) = requests.get(i) else { continue };
                    if done_tx
                        .send((i, score(req, reply, runner, limits)))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut take = |i: usize, s: Scored, tally: &mut Tally| {
            tally.count(&s.verdict);
            if let Some(slot) = slots.get_mut(i) {
                *slot = Some(s);
            }
        };
        let mut sink = |first: usize, replies: Vec<Reply>| {
            tally.answered += replies.len();
            for (k, r) in replies.into_iter().enumerate() {
                // The receivers live until this scope ends, so a send cannot fail here.
                let _ = work_tx.send((first + k, r));
            }
            while let Ok((i, s)) = done_rx.try_recv() {
                take(i, s, &mut tally);
            }
            progress(&tally);
        };
        let answered = answerer.answer(requests, &mut sink);
        drop(work_tx);
        // On an error the workers still finish what they were given; it is discarded.
        for (i, s) in done_rx.iter() {
            take(i, s, &mut tally);
            progress(&tally);
        }
        answered
    });
    answered?;
    let missing = slots.iter().position(Option::is_none);
    if let Some(i) = missing {
        let task = requests
            .get(i)
            .map_or_else(String::new, |r| r.task.id.clone());
        return Err(AnswerError::Task {
            task,
            message: format!("request {i} got no reply from the answerer"),
        });
    }
    Ok(slots.into_iter().flatten().collect())
}

/// Extracts and runs one reply's program.
pub fn score(
    req: &AnswerRequest<'_>,
    reply: Reply,
    runner: &dyn Runner,
    limits: &Limits,
) -> Scored {
    let program = extract_program(&reply.text);
    let verdict = match (&program, &reply.failed) {
        (_, Some(message)) => Verdict::Infra {
            message: message.clone(),
        },
        (None, None) => Verdict::NoProgram,
        (Some(code), None) => {
            let run = runner.run(&RunRequest {
                setup: req.task.setup_code().to_string(),
                code: code.clone(),
                tests: req.task.tests.clone(),
                limits: limits.clone(),
            });
            match run {
                Err(message) => Verdict::Infra { message },
                Ok(r) if r.all_passed() => Verdict::Passed,
                Ok(r) => Verdict::Failed {
                    kind: failure_kind(&r),
                },
            }
        }
    };
    Scored {
        reply,
        program,
        verdict,
    }
}

/// How a failing run failed, by its first failing test: `SyntaxError`, the exception type
/// (`AssertionError` is a wrong answer), `timeout`, `crash`, or `no tests`.
pub fn failure_kind(r: &RunReport) -> String {
    match &r.outcome {
        RunOutcome::SyntaxError { .. } => "SyntaxError".into(),
        RunOutcome::Tests { tests } => match tests.iter().find(|t| !t.passed()) {
            None => "no tests".into(),
            Some(TestOutcome::Failed { error }) if error.exc_type.is_empty() => "exception".into(),
            Some(TestOutcome::Failed { error }) => error.exc_type.clone(),
            Some(TestOutcome::TimedOut { .. }) => "timeout".into(),
            Some(TestOutcome::Crashed { .. }) => "crash".into(),
            Some(TestOutcome::Passed) => "passed".into(),
        },
    }
}
