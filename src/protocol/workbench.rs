//! The requests and replies of the workbench's worker threads (the tail reader of a
//! followed run, the environment worker, the model worker, a started job, a data file
//! load). Like the run events, they are plain owned data (`Debug + Clone`) tagged with
//! the episode or run they belong to, so a reply for something the UI no longer shows
//! is recognised and dropped; workers report errors as data (`Failed`), never as prints.
//! The workers (`crate::runtime`) send them; the workbench wraps them in its `Msg`.
use super::run::RunReport;
use super::{Event, Proposal, TurnRecord};
use crate::task::{Demonstration, Task};
use std::path::PathBuf;

/// What the tail reader of `events.jsonl` reports.
#[derive(Debug, Clone)]
pub enum FollowMsg {
    /// The file does not exist yet; the reader polls for it.
    Waiting {
        path: PathBuf,
    },
    Opened {
        path: PathBuf,
    },
    /// Parsed lines in file order (batched to keep channel traffic low).
    Events(Vec<Event>),
    BadLine {
        line: u64,
        error: String,
    },
    /// The file shrank or was replaced: it is being read again from the start.
    Restarted,
    Failed(String),
}

/// A tail reader's report tagged with the run it follows: the workbench follows
/// several runs at once, and a report for a run it stopped following is dropped.
#[derive(Debug, Clone)]
pub struct RunFollowMsg {
    pub run: u64,
    pub msg: FollowMsg,
}

/// Requests to the environment worker (sandbox pool + the open episode).
#[derive(Debug, Clone)]
pub enum EnvRequest {
    /// Start an episode; `episode` tags every reply about it.
    Open {
        episode: u64,
        task: Box<Task>,
    },
    /// One turn. `person`: typed by hand (the `### ` prefix is optional).
    Apply {
        episode: u64,
        text: String,
        person: bool,
        logprob: Option<f64>,
    },
    Undo {
        episode: u64,
    },
    /// Run the tests again on the code as it stands.
    RunTests {
        episode: u64,
    },
}

/// The episode as it stands after a request.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvSnapshot {
    pub task_id: String,
    /// `L<n> …`, `***`, feedback.
    pub state: String,
    /// What the policy reads next (the whole first message on turn 0).
    pub observation: String,
    pub tests: Vec<String>,
    pub report: Option<RunReport>,
    pub turn: u32,
    pub done: bool,
    pub solved: bool,
    /// Sum of the rewards so far.
    pub ret: f64,
    /// The code as it stands, for the model's query.
    pub code: String,
}

#[derive(Debug, Clone)]
pub enum EnvReply {
    /// The sandbox pool is up; `protection` says what isolation is active.
    Ready {
        workers: usize,
        protection: String,
    },
    // Boxed: a snapshot holds the whole state and test report, and `Msg` should stay small.
    Opened {
        episode: u64,
        snapshot: Box<EnvSnapshot>,
    },
    Stepped {
        episode: u64,
        record: Box<TurnRecord>,
        snapshot: Box<EnvSnapshot>,
    },
    Undone {
        episode: u64,
        snapshot: Box<EnvSnapshot>,
    },
    Tested {
        episode: u64,
        report: RunReport,
    },
    Failed {
        episode: u64,
        message: String,
    },
}

/// Requests to the model worker (it owns the model; tensors never leave it).
#[derive(Debug, Clone)]
pub struct ProposeRequest {
    pub episode: u64,
    /// Turns taken; a reply for an older turn is stale.
    pub turn: u32,
    pub task: Box<Task>,
    pub code: String,
    pub history: Vec<(String, Proposal)>,
    pub observation: String,
    /// How many samples to draw.
    pub n: usize,
}

/// What the model worker is asked: it serves only the newest queued request, so a
/// `Cancel` behind older ones means "answer none of them" (the task they were for has
/// left the screen: another task was opened, or step mode was left).
#[derive(Debug, Clone)]
pub enum ModelRequest {
    Propose(ProposeRequest),
    Cancel,
}

#[derive(Debug, Clone)]
pub enum ModelReply {
    Loading {
        spec: String,
    },
    Ready {
        name: String,
        device: String,
        load_s: f64,
    },
    Unavailable {
        reason: String,
    },
    Proposals {
        episode: u64,
        turn: u32,
        proposals: Vec<Proposal>,
        elapsed_s: f64,
    },
    Failed {
        episode: u64,
        turn: u32,
        message: String,
    },
}

/// A training job started from config mode.
#[derive(Debug, Clone)]
pub enum JobMsg {
    Started {
        pid: u32,
        run_dir: PathBuf,
        log: PathBuf,
    },
    /// The child ended; `log_tail` is the end of its log file.
    Exited {
        pid: u32,
        status: String,
        success: bool,
        log_tail: Vec<String>,
    },
    Failed(String),
}

/// One record of a data file, as the data browser shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum DataRecord {
    Task(Box<Task>),
    Demo(Box<Demonstration>),
    /// A record of another schema (problems, direct or CoT demos): its id and JSON.
    Other {
        id: String,
        json: String,
    },
}

impl DataRecord {
    pub fn id(&self) -> &str {
        match self {
            DataRecord::Task(t) => &t.id,
            DataRecord::Demo(d) => &d.task.id,
            DataRecord::Other { id, .. } => id,
        }
    }
}

#[derive(Debug, Clone)]
pub enum DataMsg {
    Loaded {
        path: PathBuf,
        records: Vec<DataRecord>,
    },
    Failed {
        path: PathBuf,
        message: String,
    },
}

/// One run as the run picker lists it, read from its `events.jsonl` (the first
/// line and the newest part of the file).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunSummary {
    pub dir: PathBuf,
    pub name: String,
    /// `sft`, `rl`, `eval`, or `?` before `run_started` arrives.
    pub kind: String,
    /// `running`, `completed`, `failed` or `interrupted` (cancelled, or silent for long).
    pub status: String,
    pub step: u64,
    pub loss: Option<f64>,
    pub reward: Option<f64>,
    pub solve_rate: Option<f64>,
    /// When `events.jsonl` was last written (seconds since the Unix epoch).
    pub modified_unix: f64,
    /// Whether a `results.json` sits in the run's folder.
    pub has_results: bool,
    /// The adapter step mode can load from this run: its final `adapter/`, else its
    /// latest checkpoint.
    pub adapter: Option<PathBuf>,
}
