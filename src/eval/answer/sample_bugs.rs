//! Model-written bugs (DESIGN §3, the paper's harder RL/eval set): sample solutions to each
//! problem from a model, run them against the problem's tests, and keep the ones that fail
//! as repair tasks with `origin: "model"`.
//!
//! What is kept: a reply with an extractable program that fails at least one test — a syntax
//! error counts, as it does for synthetic bugs. A reply without a program is not a bug in a
//! program and is dropped, as are passing programs and runs the sandbox could not finish.
//! Programs are de-duplicated per problem on their normalised text (line ends, trailing
//! spaces, blank and comment-only lines do not make a new bug). Problems whose reference fails
//! its own tests are skipped up front, so the output passes `coe data validate` (reference
//! passes, buggy fails). Task ids are `<problem>#m<k>`, k counting the kept bugs of a problem.

use std::collections::{BTreeMap, HashSet};

use super::format::AnswerFormat;
use super::sampler::{AnswerError, AnswerRequest, Answerer};
use super::score::{Tally, Verdict, answer_and_score, failures_by_kind};
use crate::env::episode::Runner;
use crate::protocol::run::{Limits, RunRequest};
use crate::task::{Origin, Problem, Task};
use crate::util::parallel_map;

/// How to sample.
#[derive(Debug, Clone)]
pub struct SampleBugsOptions {
    /// Replies sampled per problem.
    pub samples: usize,
    pub limits: Limits,
    /// Threads running tests.
    pub threads: usize,
}

/// What happened, for the summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampleBugsReport {
    pub problems: usize,
    /// Problems left out, with why (no tests, the reference fails, the sandbox failed).
    pub skipped: Vec<(String, String)>,
    pub samples: usize,
    pub passed: usize,
    pub no_program: usize,
    pub failing: usize,
    pub duplicates: usize,
    pub infra: usize,
    pub kept: usize,
    /// Failing programs by how they fail (`SyntaxError`, `AssertionError`, `timeout`, …).
    pub failures_by_kind: BTreeMap<String, usize>,
}

/// Samples, scores and keeps the failing programs, in problem then sample order.
pub fn sample_bugs(
    problems: &[Problem],
    answerer: &mut dyn Answerer,
    runner: &dyn Runner,
    opts: &SampleBugsOptions,
    progress: &mut dyn FnMut(&Tally),
) -> Result<(Vec<Task>, SampleBugsReport), AnswerError> {
    let mut report = SampleBugsReport {
        problems: problems.len(),
        ..SampleBugsReport::default()
    };
    let checked = parallel_map(problems, opts.threads, |_, p| {
        reference_problem(p, runner, &opts.limits)
    });
    let mut usable: Vec<(&Problem, Task)> = Vec::new();
    for (p, check) in problems.iter().zip(checked) {
        match check {
            Ok(()) => {
                let context =
                    Task::from_problem(p, p.id.clone(), String::new(), Origin::Model, None);
                usable.push((p, context));
            }
            Err(why) => report.skipped.push((p.id.clone(), why)),
        }
    }
    let n = opts.samples;
    let requests: Vec<AnswerRequest<'_>> = usable
        .iter()
        .flat_map(|(_, task)| {
            (0..n).map(move |_| AnswerRequest {
                task,
                format: AnswerFormat::Write,
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
    report.samples = scored.len();
    report.failures_by_kind = failures_by_kind(&scored);
    let mut kept = Vec::new();
    for ((p, _), replies) in usable.iter().zip(scored.chunks(n.max(1))) {
        let mut seen = HashSet::new();
        seen.insert(normalise(&p.solution));
        let mut k = 0usize;
        for s in replies {
            match (&s.verdict, &s.program) {
                (Verdict::Passed, _) => report.passed += 1,
                (Verdict::NoProgram, _) | (_, None) => report.no_program += 1,
                (Verdict::Infra { .. }, _) => report.infra += 1,
                (Verdict::Failed { .. }, Some(program)) => {
                    report.failing += 1;
                    if !seen.insert(normalise(program)) {
                        report.duplicates += 1;
                        continue;
                    }
                    let id = format!("{}#m{k}", p.id);
                    k += 1;
                    kept.push(Task::from_problem(
                        p,
                        id,
                        program.clone(),
                        Origin::Model,
                        None,
                    ));
                }
            }
        }
    }
    report.kept = kept.len();
    Ok((kept, report))
}

/// `Ok` when the problem has tests and its reference passes them.
fn reference_problem(p: &Problem, runner: &dyn Runner, limits: &Limits) -> Result<(), String> {
    if p.tests.is_empty() {
        return Err("it has no tests".into());
    }
    let run = runner.run(&RunRequest {
        setup: p.setup.clone().unwrap_or_default(),
        code: p.solution.clone(),
        tests: p.tests.clone(),
        limits: limits.clone(),
    });
    match run {
        Err(e) => Err(format!("the sandbox failed on the reference: {e}")),
        Ok(r) if r.all_passed() => Ok(()),
        Ok(r) => Err(format!(
            "the reference fails its tests ({})",
            crate::eval::answer::failure_kind(&r)
        )),
    }
}

/// The program text that decides whether two samples are the same bug: LF line ends, no
/// trailing spaces, no blank or comment-only lines.
pub fn normalise(program: &str) -> String {
    let mut out = String::with_capacity(program.len());
    for line in program.replace("\r\n", "\n").lines() {
        let line = line.trim_end();
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

impl SampleBugsReport {
    /// The summary `coe data sample-bugs` prints.
    pub fn render(&self) -> String {
        let mut out = format!(
            "problems {}  skipped {}  samples {}\n  kept {}  (failing {}, duplicates {})  passed {}  no program {}  infra errors {}\n",
            self.problems,
            self.skipped.len(),
            self.samples,
            self.kept,
            self.failing,
            self.duplicates,
            self.passed,
            self.no_program,
            self.infra
        );
        if !self.failures_by_kind.is_empty() {
            out.push_str("  failures by kind:");
            for (kind, n) in &self.failures_by_kind {
                out.push_str(&format!(" {kind} {n};"));
            }
            out.pop();
            out.push('\n');
        }
        for (id, why) in &self.skipped {
            out.push_str(&format!("  skipped {id:?}: {why}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn normalising_ignores_layout_and_comments_but_not_code() {
        let a = "def f(x):\r\n    # add one\n\n    return x + 1   \n";
        let b = "def f(x):\n    return x + 1\n";
        assert_eq!(normalise(a), normalise(b));
        assert_ne!(normalise(b), normalise("def f(x):\n    return x - 1\n"));
        // Indentation is code in Python.
        assert_ne!(normalise(b), normalise("def f(x):\nreturn x + 1\n"));
        assert_eq!(normalise("# only\n\n"), "");
    }
}
