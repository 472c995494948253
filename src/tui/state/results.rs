//! The results view's state: one or several eval `results.json` files read side
//! by side (DESIGN §8), and the episodes saved beside them by
//! `coe eval --save-episodes`, scrubbed turn by turn like a followed run's.
//!
//! The summary is read leniently (every field defaulted) so a results file of
//! an older or newer schema still shows what it has.
use crate::protocol::TurnRecord;
use crate::tui::state::code_view::CodeView;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The fields of `results.json` the view shows.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ResultsSummary {
    pub method: String,
    pub tasks: usize,
    pub tasks_file: String,
    pub samples: usize,
    pub partial: bool,
    pub pass_at: BTreeMap<String, f64>,
    pub turn_curve: BTreeMap<String, f64>,
    pub mean_turns: f64,
    pub invalid_rate: f64,
    pub infra_errors: usize,
    pub provenance: ResultsProvenance,
    pub per_task: Vec<TaskOutcome>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ResultsProvenance {
    pub adapter: Option<String>,
    pub policy: String,
}

/// One task's samples: solved or not, and in how many turns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TaskOutcome {
    pub id: String,
    pub solved: Vec<bool>,
    pub turns: Vec<u32>,
}

/// One line of `episodes.jsonl` (`coe eval --save-episodes`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SavedEpisode {
    pub episode: u64,
    pub task_id: String,
    pub sample: usize,
    pub solved: bool,
    pub turns: u32,
    pub infra_error: bool,
    pub records: Vec<TurnRecord>,
    /// Direct / CoT answers: `passed`, `failed`, `no_program`, `infra_error`.
    pub verdict: Option<String>,
    pub detail: Option<String>,
}

impl SavedEpisode {
    /// Why an unsolved episode failed, in a few words.
    pub fn why_not(&self) -> String {
        if self.infra_error {
            return "infra error".into();
        }
        if let Some(v) = &self.verdict {
            return match &self.detail {
                Some(d) => format!("{v}: {d}"),
                None => v.clone(),
            };
        }
        match self.records.last() {
            Some(r) if !r.valid => "invalid command".into(),
            Some(r) if r.command.as_deref() == Some("EXIT") => "gave up (EXIT)".into(),
            Some(_) => "out of turns".into(),
            None => "no turn".into(),
        }
    }
}

/// One results file as loaded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadedResults {
    pub path: PathBuf,
    pub summary: ResultsSummary,
    /// Where the saved episodes were read from, if any were found.
    pub episodes_path: Option<PathBuf>,
    pub episodes: Vec<SavedEpisode>,
}

impl LoadedResults {
    /// The saved episodes of `task_id`, in sample order.
    pub fn episodes_of(&self, task_id: &str) -> Vec<&SavedEpisode> {
        let mut eps: Vec<&SavedEpisode> = self
            .episodes
            .iter()
            .filter(|e| e.task_id == task_id)
            .collect();
        eps.sort_by_key(|e| e.sample);
        eps
    }

    /// A short label for tables and legends: the method and the file's folder.
    pub fn label(&self) -> String {
        let folder = self
            .path
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        match folder {
            Some(f) if !f.is_empty() => format!("{} ({f})", self.summary.method),
            _ => self.summary.method.clone(),
        }
    }
}

/// The results view: files side by side, one of them browsed task by task.
#[derive(Debug, Clone, Default)]
pub struct ResultsState {
    pub files: Vec<LoadedResults>,
    /// The file whose tasks and episodes are browsed.
    pub file: usize,
    /// Index into that file's `per_task`.
    pub task: usize,
    /// Index among the task's saved episodes.
    pub sample: usize,
    /// Turns into the episode (0 = before the first turn).
    pub turn: usize,
    pub code: CodeView,
}

impl ResultsState {
    pub fn current(&self) -> Option<&LoadedResults> {
        self.files.get(self.file)
    }

    pub fn current_task(&self) -> Option<&TaskOutcome> {
        self.current()?.summary.per_task.get(self.task)
    }

    /// The saved episode shown, if the file has any for the task.
    pub fn current_episode(&self) -> Option<&SavedEpisode> {
        let f = self.current()?;
        let task = f.summary.per_task.get(self.task)?;
        f.episodes_of(&task.id).get(self.sample).copied()
    }
}
