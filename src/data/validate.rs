//! `coe data validate`: every line of a task (or problem) file is checked —
//! schema, unique id, the reference passes every test, the buggy code fails at
//! least one — and every finding names the file line, the task and the test.
use super::jsonl::{self, JsonlError};
use crate::env::episode::Runner;
use crate::protocol::run::{Limits, RunOutcome, RunReport, RunRequest, TestOutcome};
use crate::task::Task;
use crate::util::parallel_map;
use std::path::Path;

/// One problem with one line of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub line: usize,
    pub task: Option<String>,
    pub message: String,
}

/// Checks every line; returns the number of records and the findings.
pub fn validate_file(
    path: &Path,
    runner: &dyn Runner,
    limits: &Limits,
    threads: usize,
) -> Result<(usize, Vec<Finding>), JsonlError> {
    let values = jsonl::read_lines(path)?;
    let mut findings = Vec::new();
    let mut tasks = Vec::new();
    let mut seen = std::collections::HashMap::new();
    let records = values.len();
    for (line, v) in values {
        let v = match v {
            Ok(v) => v,
            Err(e) => {
                findings.push(line_finding(line, e));
                continue;
            }
        };
        let is_task = v.get("buggy").is_some();
        let parsed: Result<Task, JsonlError> = if is_task {
            jsonl::from_value(path, line, v)
        } else {
            // A problem record: check it as a task whose buggy code is absent.
            jsonl::from_value::<crate::task::Problem>(path, line, v).map(|p| {
                let mut t = Task::from_problem(
                    &p,
                    p.id.clone(),
                    String::new(),
                    crate::task::Origin::Human,
                    None,
                );
                t.extra
                    .insert("coe_problem_only".into(), serde_json::Value::Bool(true));
                t
            })
        };
        match parsed {
            Err(e) => findings.push(line_finding(line, e)),
            Ok(t) => {
                if let Some(first) = seen.insert(t.id.clone(), line) {
                    findings.push(Finding {
                        line,
                        task: Some(t.id.clone()),
                        message: format!("id already used on line {first}; ids must be unique"),
                    });
                }
                if t.tests.is_empty() {
                    findings.push(Finding {
                        line,
                        task: Some(t.id.clone()),
                        message: "field `tests`: no tests".into(),
                    });
                    continue;
                }
                tasks.push((line, t));
            }
        }
    }
    let checked = parallel_map(&tasks, threads, |_, (line, t)| {
        check_task(*line, t, runner, limits)
    });
    findings.extend(checked.into_iter().flatten());
    findings.sort_by_key(|f| f.line);
    Ok((records, findings))
}

/// A schema or JSON error as a finding (the file and line are printed by the caller).
fn line_finding(line: usize, e: JsonlError) -> Finding {
    let message = match e {
        JsonlError::Line {
            field: Some(f),
            message,
            ..
        } => format!("field `{f}`: {message}"),
        JsonlError::Line { message, .. } => message,
        other => other.to_string(),
    };
    Finding {
        line,
        task: None,
        message,
    }
}

fn check_task(line: usize, t: &Task, runner: &dyn Runner, limits: &Limits) -> Vec<Finding> {
    let mut out = Vec::new();
    let finding = |message: String| Finding {
        line,
        task: Some(t.id.clone()),
        message,
    };
    let run = |code: &str| {
        runner.run(&RunRequest {
            setup: t.setup_code().to_string(),
            code: code.to_string(),
            tests: t.tests.clone(),
            limits: limits.clone(),
        })
    };
    match t.solution.as_deref() {
        None => out.push(finding(
            "field `solution`: missing (validation needs the reference)".into(),
        )),
        Some(sol) => match run(sol) {
            Err(e) => out.push(finding(format!("the sandbox failed on the reference: {e}"))),
            Ok(r) => {
                if let Some(why) = first_failure(&r, &t.tests) {
                    out.push(finding(format!("the reference solution fails: {why}")));
                }
            }
        },
    }
    if t.extra.get("coe_problem_only").is_none() {
        match run(&t.buggy) {
            Err(e) => out.push(finding(format!(
                "the sandbox failed on the buggy code: {e}"
            ))),
            Ok(r) if r.all_passed() => out.push(finding(
                "the buggy code passes every test (a task must fail at least one)".into(),
            )),
            Ok(_) => {}
        }
    }
    out
}

/// `test 2 (assert f(1) == 2): AssertionError` for the first non-passing test.
fn first_failure(r: &RunReport, tests: &[String]) -> Option<String> {
    match &r.outcome {
        RunOutcome::SyntaxError { line, message } => {
            Some(format!("SyntaxError at L{line}: {message}"))
        }
        RunOutcome::Tests { tests: outcomes } => outcomes.iter().enumerate().find_map(|(i, o)| {
            let stmt = tests.get(i).map(String::as_str).unwrap_or("?");
            let why = match o {
                TestOutcome::Passed => return None,
                TestOutcome::Failed { error } => {
                    if error.message.is_empty() {
                        error.exc_type.clone()
                    } else {
                        format!("{}: {}", error.exc_type, error.message)
                    }
                }
                TestOutcome::TimedOut { seconds } => format!("timed out after {seconds}s"),
                TestOutcome::Crashed { reason } => format!("crashed: {reason}"),
            };
            Some(format!("test {} ({stmt}): {why}", i + 1))
        }),
    }
}
