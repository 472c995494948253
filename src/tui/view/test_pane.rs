//! The tests pane: one row per test (passed / failed / timed out / crashed /
//! not run, with the error), then the feedback text exactly as the model reads
//! it. In step mode the rows come from the sandbox report; a followed run only
//! carries the feedback, so its rows are read back from the feedback lines.
use super::frame::pane_block;
use crate::protocol::run::{RunOutcome, RunReport, TestOutcome};
use crate::tui::style::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestStatus {
    Passed,
    Failed,
    TimedOut,
    Crashed,
    NotRun,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TestRow {
    /// 1-based, in task order.
    pub index: usize,
    pub statement: String,
    pub status: TestStatus,
    pub detail: String,
}

/// Rows from a sandbox report over the task's tests.
pub fn rows_from_report(tests: &[String], report: Option<&RunReport>) -> Vec<TestRow> {
    let row = |i: usize, stmt: &String, status, detail: String| TestRow {
        index: i + 1,
        statement: stmt.clone(),
        status,
        detail,
    };
    match report.map(|r| &r.outcome) {
        None => tests
            .iter()
            .enumerate()
            .map(|(i, s)| row(i, s, TestStatus::NotRun, String::new()))
            .collect(),
        Some(RunOutcome::SyntaxError { line, message }) => tests
            .iter()
            .enumerate()
            .map(|(i, s)| {
                row(
                    i,
                    s,
                    TestStatus::NotRun,
                    format!("syntax error at L{line}: {message}"),
                )
            })
            .collect(),
        Some(RunOutcome::Tests { tests: outcomes }) => tests
            .iter()
            .enumerate()
            .map(|(i, s)| match outcomes.get(i) {
                Some(TestOutcome::Passed) => row(i, s, TestStatus::Passed, String::new()),
                Some(TestOutcome::Failed { error }) => {
                    let at = error.line.map_or(String::new(), |l| format!(" (L{l})"));
                    let msg = if error.message.is_empty() {
                        error.exc_type.clone()
                    } else {
                        format!("{}: {}", error.exc_type, error.message)
                    };
                    row(i, s, TestStatus::Failed, format!("{msg}{at}"))
                }
                Some(TestOutcome::TimedOut { seconds }) => {
                    row(i, s, TestStatus::TimedOut, format!("after {seconds}s"))
                }
                Some(TestOutcome::Crashed { reason }) => {
                    row(i, s, TestStatus::Crashed, reason.clone())
                }
                None => row(i, s, TestStatus::NotRun, String::new()),
            })
            .collect(),
    }
}

/// Rows for the tests a feedback text names (`Test k failed: …` and the error line after it).
pub fn rows_from_feedback(feedback: &str) -> Vec<TestRow> {
    let mut rows: Vec<TestRow> = Vec::new();
    let mut lines = feedback.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("Test ") else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(index) = digits.parse::<usize>() else {
            continue;
        };
        let rest = &rest[digits.len()..];
        let (status, statement, detail) = if let Some(stmt) = rest.strip_prefix(" failed: ") {
            let detail = lines
                .next_if(|l| !l.starts_with("Test ") && !l.starts_with('('))
                .unwrap_or_default();
            (TestStatus::Failed, stmt.to_string(), detail.to_string())
        } else if let Some(d) = rest.strip_prefix(" timed out ") {
            (TestStatus::TimedOut, String::new(), d.to_string())
        } else if let Some(d) = rest.strip_prefix(" crashed: ") {
            (TestStatus::Crashed, String::new(), d.to_string())
        } else {
            continue;
        };
        rows.push(TestRow {
            index,
            statement,
            status,
            detail,
        });
    }
    rows
}

pub struct TestsPane<'a> {
    rows: Vec<TestRow>,
    feedback: &'a str,
    theme: &'a Theme,
    title: String,
}

impl<'a> TestsPane<'a> {
    pub fn new(rows: Vec<TestRow>, feedback: &'a str, theme: &'a Theme, title: String) -> Self {
        TestsPane {
            rows,
            feedback,
            theme,
            title,
        }
    }
}

impl Widget for TestsPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let passed = self
            .rows
            .iter()
            .filter(|r| r.status == TestStatus::Passed)
            .count();
        let title = if self.rows.iter().any(|r| r.status != TestStatus::NotRun) {
            format!("{} · {passed}/{} passed", self.title, self.rows.len())
        } else {
            self.title
        };
        let block = pane_block(t, title, false);
        let inner = block.inner(area);
        block.render(area, buf);
        let mut lines: Vec<Line> = Vec::new();
        for r in &self.rows {
            let (mark, style) = match r.status {
                TestStatus::Passed => ("✓ pass", t.ok()),
                TestStatus::Failed => ("✗ fail", t.bad()),
                TestStatus::TimedOut => ("⧗ time", t.warn()),
                TestStatus::Crashed => ("✗ crash", t.bad()),
                TestStatus::NotRun => ("· —   ", t.muted()),
            };
            let mut spans = vec![
                Span::styled(format!("{mark} "), style),
                Span::raw(format!("{:>2} {}", r.index, r.statement)),
            ];
            if !r.detail.is_empty() {
                spans.push(Span::styled(format!("  {}", r.detail), t.muted()));
            }
            lines.push(Line::from(spans));
        }
        if !self.feedback.is_empty() {
            if !lines.is_empty() {
                lines.push(Line::styled("feedback:", t.muted()));
            }
            for l in self.feedback.lines() {
                let style = if l == "All tests passed." {
                    t.ok()
                } else {
                    t.base()
                };
                lines.push(Line::styled(l.to_string(), style));
            }
        }
        if lines.is_empty() {
            lines.push(Line::styled("(no test results yet)", t.muted()));
        }
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .render(inner, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_lines_become_rows() {
        let fb = "Test 1 failed: assert f(1) == 2\nAssertionError (L3)\nTest 3 timed out after 1s\nTest 4 crashed: killed\n(2 more tests failed)";
        let rows = rows_from_feedback(fb);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].statement, "assert f(1) == 2");
        assert_eq!(rows[0].detail, "AssertionError (L3)");
        assert_eq!(rows[1].status, TestStatus::TimedOut);
        assert_eq!(rows[2].status, TestStatus::Crashed);
        assert!(rows_from_feedback("All tests passed.").is_empty());
    }
}
