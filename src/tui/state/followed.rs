//! The runs monitor mode follows: each one's directory, tail-reader status and
//! bounded [`RunState`], under an id that tags its reader's messages, so several
//! runs (CoE, direct answer and CoT trained side by side) are read as one
//! picture and a message from a run no longer followed is dropped.
use crate::tui::state::run_view::RunState;
use std::path::{Path, PathBuf};

/// At most this many runs are followed at once (one colour and legend entry each).
pub const MAX_RUNS: usize = 8;

/// One followed run.
#[derive(Debug, Clone)]
pub struct FollowedRun {
    /// Tags the reader's messages; never reused within a session.
    pub id: u64,
    pub dir: PathBuf,
    /// What the tail reader last said (waiting, following, …).
    pub status: String,
    pub run: RunState,
}

impl FollowedRun {
    pub fn new(id: u64, dir: PathBuf) -> Self {
        FollowedRun {
            id,
            status: format!("opening {}", dir.join("events.jsonl").display()),
            dir,
            run: RunState::default(),
        }
    }

    /// The run's name from its `run_started`, else its directory's name.
    pub fn name(&self) -> String {
        match &self.run.started {
            Some(s) => s.run.clone(),
            None => dir_name(&self.dir),
        }
    }
}

/// The last component of a path, or the whole path when it has none.
pub fn dir_name(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// What the plots' x-axis counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XAxis {
    #[default]
    Step,
    /// Trained tokens, so methods with different batch sizes compare fairly.
    Tokens,
}

impl XAxis {
    pub fn label(self) -> &'static str {
        match self {
            XAxis::Step => "step",
            XAxis::Tokens => "trained tokens",
        }
    }

    pub fn toggled(self) -> XAxis {
        match self {
            XAxis::Step => XAxis::Tokens,
            XAxis::Tokens => XAxis::Step,
        }
    }
}
