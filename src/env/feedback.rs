//! The text the model reads after each turn (DESIGN §2.1): execution feedback for a
//! test run or an invalid command, and the state (`L<n>` buffer, `***`, feedback).
//!
//! Everything here is a pure function of plain data so the exact strings the model is
//! trained on are pinned by table tests. The feedback is short on purpose: only the
//! first few failures, one line per error, and a hard cap in characters (not bytes, so
//! a cap never splits a character and means the same for any script), because every
//! character costs context in a multi-turn conversation.

use serde::{Deserialize, Serialize};

use super::buffer::Buffer;
use crate::protocol::run::{RunOutcome, RunReport, TestError, TestOutcome};

/// How much feedback to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedbackConfig {
    /// Failing tests described in full; the rest are counted.
    pub max_failures_shown: usize,
    /// Maximum length of the feedback in characters, `…` included.
    pub cap_chars: usize,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        FeedbackConfig {
            max_failures_shown: 3,
            cap_chars: 1500,
        }
    }
}

/// Feedback for a test run; `tests` are the task's test statements, in the order the
/// report's outcomes follow.
pub fn render_feedback(report: &RunReport, tests: &[String], cfg: &FeedbackConfig) -> String {
    let text = match &report.outcome {
        RunOutcome::SyntaxError { line, message } => {
            format!("SyntaxError at L{line}: {}", first_line(message))
        }
        RunOutcome::Tests { tests: outcomes } => {
            render_outcomes(outcomes, tests, cfg.max_failures_shown)
        }
    };
    cap_chars(&text, cfg.cap_chars)
}

/// Feedback after a command that did not parse or could not be applied.
pub fn render_invalid(reason: &str, cfg: &FeedbackConfig) -> String {
    cap_chars(&format!("Invalid command: {reason}"), cfg.cap_chars)
}

/// The observation of one turn: the numbered buffer, `***`, then the feedback.
pub fn render_state(buffer: &Buffer, feedback: &str) -> String {
    if buffer.is_empty() {
        format!("***\n{feedback}")
    } else {
        format!("{}\n***\n{feedback}", buffer.render())
    }
}

fn render_outcomes(outcomes: &[TestOutcome], statements: &[String], max_shown: usize) -> String {
    // No tests means nothing was checked; saying "passed" would teach the model a lie.
    if outcomes.is_empty() {
        return "No tests ran.".to_owned();
    }
    let failing: Vec<(usize, &TestOutcome)> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, outcome)| !outcome.passed())
        .collect();
    if failing.is_empty() {
        return "All tests passed.".to_owned();
    }
    let mut lines = Vec::new();
    for &(index, outcome) in failing.iter().take(max_shown) {
        let k = index + 1;
        match outcome {
            TestOutcome::Passed => {}
            TestOutcome::Failed { error } => {
                match statements.get(index) {
                    Some(statement) => {
                        lines.push(format!("Test {k} failed: {}", statement_line(statement)))
                    }
                    None => lines.push(format!("Test {k} failed")),
                }
                lines.push(error_line(error));
            }
            TestOutcome::TimedOut { seconds } => {
                lines.push(format!(
                    "Test {k} timed out after {}s",
                    format_seconds(*seconds)
                ));
            }
            TestOutcome::Crashed { reason } => {
                lines.push(format!("Test {k} crashed: {}", first_line(reason)));
            }
        }
    }
    match failing.len().saturating_sub(max_shown) {
        0 => {}
        1 => lines.push("(1 more test failed)".to_owned()),
        more => lines.push(format!("({more} more tests failed)")),
    }
    lines.join("\n")
}

/// A statement on one line: its first line, and ` …` when more lines follow.
fn statement_line(statement: &str) -> String {
    let statement = statement.trim();
    let mut lines = statement.lines();
    let first = lines.next().unwrap_or("").trim_end();
    if lines.next().is_some() {
        format!("{first} …")
    } else {
        first.to_owned()
    }
}

/// `ExceptionType: message (L<n>)`, without the `: ` when the message is empty.
fn error_line(error: &TestError) -> String {
    let message = first_line(&error.message);
    let mut out = if message.is_empty() {
        error.exc_type.clone()
    } else {
        format!("{}: {message}", error.exc_type)
    };
    if let Some(line) = error.line {
        out.push_str(&format!(" (L{line})"));
    }
    out
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim_end()
}

/// Seconds without trailing zeros, to the millisecond: 2.0 → `2`, 0.5 → `0.5`.
fn format_seconds(seconds: f64) -> String {
    if !seconds.is_finite() {
        return seconds.to_string();
    }
    let fixed = format!("{seconds:.3}");
    fixed.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Cuts `text` to at most `cap` characters, ending with `…` when it was cut.
fn cap_chars(text: &str, cap: usize) -> String {
    if text.chars().count() <= cap {
        return text.to_owned();
    }
    let Some(keep) = cap.checked_sub(1) else {
        return String::new();
    };
    let mut out: String = text.chars().take(keep).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: RunOutcome) -> RunReport {
        RunReport {
            outcome,
            output: String::new(),
            elapsed_ms: 1.0,
        }
    }

    fn failed(exc_type: &str, message: &str, line: Option<usize>) -> TestOutcome {
        let error = TestError {
            exc_type: exc_type.into(),
            message: message.into(),
            line,
        };
        TestOutcome::Failed { error }
    }

    fn tests(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("assert f({i}) == {i}")).collect()
    }

    #[test]
    fn gcd_example_from_the_design() {
        let code = "def gcd(a, b):\n    if b == 0:\n        return a\n    else:\n        return gcd(a % b, b)\n";
        let statements = vec![
            "assert gcd(35, 21) == 7".to_owned(),
            "assert gcd(4, 0) == 4".to_owned(),
        ];
        let run = report(RunOutcome::Tests {
            tests: vec![
                failed(
                    "RecursionError",
                    "maximum recursion depth exceeded",
                    Some(5),
                ),
                TestOutcome::Passed,
            ],
        });
        let feedback = render_feedback(&run, &statements, &FeedbackConfig::default());
        assert_eq!(
            render_state(&Buffer::from_code(code), &feedback),
            "L1 def gcd(a, b):\nL2     if b == 0:\nL3         return a\nL4     else:\nL5         return gcd(a % b, b)\n***\nTest 1 failed: assert gcd(35, 21) == 7\nRecursionError: maximum recursion depth exceeded (L5)"
        );
    }

    #[test]
    fn feedback_table() {
        let cfg = FeedbackConfig::default();
        let multi = vec![
            "assert f(1) == [\n    1,\n]".to_owned(),
            "assert g()".to_owned(),
        ];
        let cases: Vec<(RunOutcome, Vec<String>, &str)> = vec![
            (
                RunOutcome::Tests {
                    tests: vec![TestOutcome::Passed, TestOutcome::Passed],
                },
                tests(2),
                "All tests passed.",
            ),
            (
                RunOutcome::Tests { tests: vec![] },
                tests(0),
                "No tests ran.",
            ),
            (
                RunOutcome::SyntaxError {
                    line: 3,
                    message: "invalid syntax".into(),
                },
                tests(1),
                "SyntaxError at L3: invalid syntax",
            ),
            (
                RunOutcome::Tests {
                    tests: vec![TestOutcome::Passed, failed("AssertionError", "", None)],
                },
                tests(2),
                "Test 2 failed: assert f(2) == 2\nAssertionError",
            ),
            (
                RunOutcome::Tests {
                    tests: vec![failed("AssertionError", "", Some(4))],
                },
                tests(1),
                "Test 1 failed: assert f(1) == 1\nAssertionError (L4)",
            ),
            (
                RunOutcome::Tests {
                    tests: vec![failed("NameError", "name 'x' is not defined\nmore", None)],
                },
                multi.clone(),
                "Test 1 failed: assert f(1) == [ …\nNameError: name 'x' is not defined",
            ),
            (
                RunOutcome::Tests {
                    tests: vec![
                        TestOutcome::TimedOut { seconds: 2.0 },
                        TestOutcome::TimedOut { seconds: 0.5 },
                        TestOutcome::Crashed {
                            reason: "killed by signal 9".into(),
                        },
                    ],
                },
                multi,
                "Test 1 timed out after 2s\nTest 2 timed out after 0.5s\nTest 3 crashed: killed by signal 9",
            ),
            (
                RunOutcome::Tests {
                    tests: vec![
                        failed("E", "a", None),
                        TestOutcome::Passed,
                        failed("E", "b", None),
                        failed("E", "c", Some(1)),
                        failed("E", "d", None),
                    ],
                },
                tests(5),
                "Test 1 failed: assert f(1) == 1\nE: a\nTest 3 failed: assert f(3) == 3\nE: b\nTest 4 failed: assert f(4) == 4\nE: c (L1)\n(1 more test failed)",
            ),
            (
                RunOutcome::Tests {
                    tests: vec![failed("E", "", None); 6],
                },
                tests(1),
                "Test 1 failed: assert f(1) == 1\nE\nTest 2 failed\nE\nTest 3 failed\nE\n(3 more tests failed)",
            ),
        ];
        for (outcome, statements, want) in cases {
            assert_eq!(
                render_feedback(&report(outcome.clone()), &statements, &cfg),
                want,
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn seconds_have_no_trailing_zeros() {
        for (s, want) in [
            (2.0, "2"),
            (0.5, "0.5"),
            (10.0, "10"),
            (1.25, "1.25"),
            (0.1 + 0.2, "0.3"),
        ] {
            assert_eq!(format_seconds(s), want);
        }
    }

    #[test]
    fn cap_counts_characters_and_ends_with_ellipsis() {
        let cfg = FeedbackConfig {
            max_failures_shown: 3,
            cap_chars: 30,
        };
        let reason = "é".repeat(40);
        let out = render_invalid(&reason, &cfg);
        assert_eq!(out, format!("Invalid command: {}…", "é".repeat(12)));
        assert_eq!(out.chars().count(), 30);
        let exact = FeedbackConfig {
            cap_chars: 21,
            ..cfg.clone()
        };
        assert_eq!(
            render_invalid("日本語で", &exact),
            "Invalid command: 日本語で"
        );
        assert_eq!(
            render_invalid("日本語で!", &exact),
            "Invalid command: 日本語…"
        );
        assert_eq!(cap_chars("abc", 0), "");
        assert_eq!(cap_chars("abc", 1), "…");
    }

    #[test]
    fn state_of_an_empty_buffer_is_only_the_feedback() {
        assert_eq!(
            render_state(&Buffer::default(), "All tests passed."),
            "***\nAll tests passed."
        );
        let b = Buffer::from_code("x = 1\n\n");
        assert_eq!(render_state(&b, "fb"), "L1 x = 1\nL2\n***\nfb");
    }
}
