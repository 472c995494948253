//! `coe bench env`: the cost of an environment step without the sandbox (parse,
//! apply, feedback, state rendering, rewards), using a runner that answers at once.
use crate::config::EnvSection;
use crate::env::episode::{Episode, Runner, Source};
use crate::protocol::run::{Limits, RunOutcome, RunReport, RunRequest, TestError, TestOutcome};
use crate::task::{Origin, Task};
use crate::util::stats::median_p99;
use serde_json::json;
use std::time::Instant;

/// Fails the first test of every run, so feedback rendering is exercised.
struct Instant0;

impl Runner for Instant0 {
    fn run(&self, req: &RunRequest) -> Result<RunReport, String> {
        let mut tests = vec![TestOutcome::Passed; req.tests.len()];
        if let Some(t) = tests.first_mut() {
            *t = TestOutcome::Failed {
                error: TestError {
                    exc_type: "AssertionError".into(),
                    message: String::new(),
                    line: Some(3),
                },
            };
        }
        Ok(RunReport {
            outcome: RunOutcome::Tests { tests },
            output: String::new(),
            elapsed_ms: 0.0,
        })
    }
}

pub fn run(env: &EnvSection) -> anyhow::Result<serde_json::Value> {
    let buggy: String = (0..20)
        .map(|i| format!("    total = total + values[{i}] * {i}\n"))
        .collect();
    let task = Task {
        id: "bench".into(),
        prompt: "Sum weighted values.".into(),
        solution: None,
        tests: (0..5).map(|i| format!("assert f([{i}]) == {i}")).collect(),
        setup: None,
        entry_point: None,
        buggy: format!("def f(values):\n    total = 0\n{buggy}    return total\n"),
        origin: Origin::Human,
        problem_id: "bench".into(),
        corruptions: None,
        extra: Default::default(),
    };
    let env = EnvSection {
        max_turns: 1_000_000,
        ..env.clone()
    };
    let runner = Instant0;
    let (mut ep, _) = Episode::reset(task, &runner, &env, &Limits::default(), (0, 0))?;
    let n = 20_000;
    let mut us = Vec::with_capacity(n);
    for i in 0..n {
        let cmd = if i % 2 == 0 {
            "### REPW 5 >>>* 2 >>>* 3"
        } else {
            "### REPW 5 >>>* 3 >>>* 2"
        };
        let t = Instant::now();
        let s = ep.step(cmd, Source::Model)?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(
            !s.invalid,
            "bench command was invalid: {:?}",
            s.record.error
        );
        ep.take_events();
    }
    let (med, p99) = median_p99(&mut us);
    eprintln!(
        "bench env: step without sandbox median {med:.1} µs, p99 {p99:.1} µs (24-line buffer)"
    );
    Ok(json!({
        "bench": "env",
        "machine": crate::util::machine::machine(),
        "steps": n,
        "buffer_lines": 24,
        "step_median_us": med,
        "step_p99_us": p99,
    }))
}
