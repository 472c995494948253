//! The data that crosses the sandbox boundary: what to run, with which limits, and
//! what came out, per test. Plain owned data so it can travel between threads
//! and into `events.jsonl`.

use serde::{Deserialize, Serialize};

/// Resource limits for one run (one program + its tests in a fresh child).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock seconds one test may take before the run's process group is killed.
    pub test_timeout_s: f64,
    /// Wall-clock seconds for the whole run (code + all tests); tests not reached in time time out.
    pub run_timeout_s: f64,
    /// RLIMIT_CPU, seconds.
    pub cpu_s: u64,
    /// RLIMIT_AS, MiB.
    pub memory_mb: u64,
    /// RLIMIT_NPROC.
    pub max_procs: u64,
    /// RLIMIT_NOFILE.
    pub max_open_files: u64,
    /// RLIMIT_FSIZE, MiB.
    pub max_file_mb: u64,
    /// Bytes of stdout+stderr kept; the rest is discarded.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            test_timeout_s: 1.0,
            run_timeout_s: 4.0,
            cpu_s: 10,
            memory_mb: 1024,
            max_procs: 32,
            max_open_files: 64,
            max_file_mb: 16,
            output_bytes: 64 * 1024,
        }
    }
}

/// A program and its tests. `setup` runs first, then `code`, then each test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub setup: String,
    pub code: String,
    pub tests: Vec<String>,
    pub limits: Limits,
}

/// A Python exception, reduced to one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestError {
    /// e.g. `AssertionError`, `RecursionError`.
    pub exc_type: String,
    /// `str(exc)`, first line only (may be empty).
    pub message: String,
    /// The innermost traceback frame that lies in the buffer (`code`), 1-based.
    pub line: Option<usize>,
}

/// What happened to one test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TestOutcome {
    Passed,
    Failed { error: TestError },
    TimedOut { seconds: f64 },
    Crashed { reason: String },
}

impl TestOutcome {
    pub fn passed(&self) -> bool {
        matches!(self, TestOutcome::Passed)
    }
}

/// The result of running a program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunOutcome {
    /// The code does not compile; no test ran. `line` is 1-based in the code.
    SyntaxError { line: usize, message: String },
    /// One outcome per test, in task order.
    Tests { tests: Vec<TestOutcome> },
}

/// A finished run, with what the program printed (capped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub outcome: RunOutcome,
    pub output: String,
    pub elapsed_ms: f64,
}

impl RunReport {
    /// True when the code compiled and every test passed (and there is at least one test).
    pub fn all_passed(&self) -> bool {
        match &self.outcome {
            RunOutcome::SyntaxError { .. } => false,
            RunOutcome::Tests { tests } => {
                !tests.is_empty() && tests.iter().all(TestOutcome::passed)
            }
        }
    }
}
