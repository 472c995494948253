//! The whole workbench state, owned by the UI thread (STYLE 1). Handlers in
//! `update` change it and set `dirty`; views read it. Per-mode state lives in
//! its own struct so each mode's handlers and views touch one thing.
pub mod code_view;
pub mod editor;
pub mod followed;
pub mod results;
pub mod ring;
pub mod run_view;

use crate::policy::Proposal;
use crate::protocol::TurnRecord;
use crate::task::Task;
use crate::tui::keymap::Keymap;
use crate::tui::msg::{DataRecord, EnvSnapshot};
use crate::tui::state::code_view::CodeView;
use crate::tui::state::editor::{LineInput, TextEditor};
use crate::tui::state::followed::{FollowedRun, XAxis};
use crate::tui::state::results::ResultsState;
use crate::tui::state::ring::Ring;
use crate::tui::state::run_view::PlotKind;
use crate::tui::style::theme::Theme;
use std::path::PathBuf;

/// Log lines kept for the log pane.
pub const LOG_LINES: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Monitor,
    Step,
    Config,
    Data,
    Results,
}

impl Mode {
    pub const ALL: [Mode; 5] = [
        Mode::Monitor,
        Mode::Step,
        Mode::Config,
        Mode::Data,
        Mode::Results,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Monitor => "monitor",
            Mode::Step => "step",
            Mode::Config => "config",
            Mode::Data => "data",
            Mode::Results => "results",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub level: Level,
    pub text: String,
}

/// A popup over the mode's panes; keys go to it first.
#[derive(Debug, Clone, PartialEq)]
pub enum Popup {
    Help { scroll: usize },
    Episodes { selected: usize },
    Tasks { selected: usize },
    Runs { selected: usize },
}

/// Monitor mode: the followed runs and the episode being scrubbed.
#[derive(Debug, Clone, Default)]
pub struct MonitorState {
    /// Every followed run, in the order they were added (their legend order).
    pub runs: Vec<FollowedRun>,
    /// Index in `runs` of the run whose episodes the panes show.
    pub current: usize,
    /// The id the next followed run gets.
    pub next_run: u64,
    /// What the status bar says while no run is followed.
    pub follow_status: String,
    pub x_axis: XAxis,
    /// The run picker's list (`runs/*/` and followed folders), newest read.
    pub picker: Vec<crate::protocol::workbench::RunSummary>,
    /// (job, episode) shown; `None` with `follow_latest` shows the newest.
    pub selected: Option<(u64, u64)>,
    pub follow_latest: bool,
    /// Turns into the episode (0 = its initial state).
    pub turn: usize,
    pub plot: Option<PlotKind>,
    pub code: CodeView,
}

impl MonitorState {
    /// The run whose episodes are shown.
    pub fn current_run(&self) -> Option<&FollowedRun> {
        self.runs.get(self.current)
    }

    pub fn current_run_mut(&mut self) -> Option<&mut FollowedRun> {
        self.runs.get_mut(self.current)
    }

    /// The directory of the run shown, if any.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.current_run().map(|r| r.dir.as_path())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ModelStatus {
    /// Not loaded: `--no-model`, or step mode not shown yet.
    Off,
    Loading(String),
    Ready {
        name: String,
        device: String,
    },
    Unavailable(String),
}

/// Step mode: one task, turn by turn, with the model's proposals.
#[derive(Debug, Clone)]
pub struct StepState {
    pub tasks: Vec<Task>,
    /// Where the tasks came from (shown in the title).
    pub tasks_origin: String,
    pub task_index: usize,
    /// The open episode's tag (0: none); replies for another are dropped.
    pub episode: u64,
    pub next_episode: u64,
    pub snapshot: Option<EnvSnapshot>,
    pub turns: Vec<TurnRecord>,
    /// (user message, reply) pairs for the model's prompt.
    pub history: Vec<(String, Proposal)>,
    /// The reply being applied, added to `history` when its turn comes back.
    pub pending_reply: Option<Proposal>,
    /// What the environment worker is doing, when busy.
    pub busy: Option<String>,
    pub sandbox: Option<String>,
    /// The model to load when step mode is first shown; `None`: `--no-model`.
    pub model_spec: Option<String>,
    /// Whether step mode's workers were asked to start (once, on first showing step mode).
    pub workers_started: bool,
    /// The LoRA adapter the model loads (`model.adapter`, or a run's chosen in the picker).
    pub adapter: Option<String>,
    /// The id of the current model worker; replies of a replaced one are dropped.
    pub model_worker: u64,
    pub model: ModelStatus,
    /// Distinct proposals, best first, with how many samples gave each.
    pub proposals: Vec<(Proposal, usize)>,
    pub selected: usize,
    pub proposing: bool,
    /// Samples drawn per turn.
    pub samples: usize,
    /// The command line, while typing.
    pub input: Option<LineInput>,
    pub code: CodeView,
}

impl Default for StepState {
    fn default() -> Self {
        StepState {
            tasks: Vec::new(),
            tasks_origin: String::new(),
            task_index: 0,
            episode: 0,
            next_episode: 1,
            snapshot: None,
            turns: Vec::new(),
            history: Vec::new(),
            pending_reply: None,
            busy: None,
            sandbox: None,
            model_spec: None,
            workers_started: false,
            adapter: None,
            model_worker: 0,
            model: ModelStatus::Off,
            proposals: Vec::new(),
            selected: 0,
            proposing: false,
            samples: 3,
            input: None,
            code: CodeView::default(),
        }
    }
}

/// Config mode: the run's RON in an editor, validated as it is typed.
#[derive(Debug, Clone)]
pub struct ConfigState {
    pub path: PathBuf,
    pub editor: TextEditor,
    pub editing: bool,
    /// The text as last loaded or saved.
    pub saved: String,
    /// (line, message) of the first problem; `None` when the text is valid.
    pub error: Option<(Option<usize>, String)>,
    /// The run name of the text, when it parses.
    pub run_name: Option<String>,
    pub scroll: usize,
}

/// A job started from config mode.
#[derive(Debug, Clone, PartialEq)]
pub struct JobState {
    pub pid: Option<u32>,
    pub run_dir: PathBuf,
    pub log: Option<PathBuf>,
    pub running: bool,
    pub status: String,
}

/// Data mode: files of tasks or demonstrations.
#[derive(Debug, Clone, Default)]
pub struct DataState {
    pub files: Vec<PathBuf>,
    pub file: usize,
    pub records: Vec<DataRecord>,
    pub selected: usize,
    pub status: String,
    pub code: CodeView,
}

/// Everything the UI shows.
#[derive(Debug, Clone)]
pub struct AppState {
    pub mode: Mode,
    pub keymap: Keymap,
    pub theme: Theme,
    pub popup: Option<Popup>,
    pub log: Ring<LogLine>,
    /// Seconds since the Unix epoch, from the last tick.
    pub now: f64,
    pub device: String,
    pub monitor: MonitorState,
    pub step: StepState,
    pub config: ConfigState,
    pub data: DataState,
    pub results: ResultsState,
    pub job: Option<JobState>,
    pub quit: bool,
    pub dirty: bool,
}

impl AppState {
    pub fn new(keymap: Keymap, theme: Theme, config_path: PathBuf, config_text: &str) -> Self {
        let mut state = AppState {
            mode: Mode::Step,
            keymap,
            theme,
            popup: None,
            log: Ring::new(LOG_LINES),
            now: 0.0,
            device: "cpu".into(),
            monitor: MonitorState {
                follow_latest: true,
                plot: Some(PlotKind::Loss),
                follow_status:
                    "no run followed (coe tui --follow runs/<name>, or start a job in config mode)"
                        .into(),
                ..MonitorState::default()
            },
            step: StepState::default(),
            config: ConfigState {
                path: config_path,
                editor: TextEditor::new(config_text),
                editing: false,
                saved: config_text.to_string(),
                error: None,
                run_name: None,
                scroll: 0,
            },
            data: DataState::default(),
            results: ResultsState::default(),
            job: None,
            quit: false,
            dirty: true,
        };
        state.config.revalidate();
        state
    }

    pub fn log(&mut self, level: Level, text: impl Into<String>) {
        let text = text.into();
        for line in text.lines() {
            self.log.push(LogLine {
                level,
                text: line.to_string(),
            });
        }
        self.dirty = true;
    }

    /// Re-highlights whatever code views changed (call before drawing).
    pub fn prepare_frame(&mut self) {
        let (syntax, mode) = (self.theme.syntax.clone(), self.theme.mode);
        self.monitor.code.prepare(&syntax, mode);
        self.step.code.prepare(&syntax, mode);
        self.data.code.prepare(&syntax, mode);
        self.results.code.prepare(&syntax, mode);
    }
}

impl ConfigState {
    /// Parses and validates the editor's text; records the first problem and its line.
    pub fn revalidate(&mut self) {
        let text = self.editor.text();
        let origin = self.path.display().to_string();
        match crate::config::Config::from_ron(&text, &origin) {
            Ok(cfg) => {
                self.error = None;
                self.run_name = Some(cfg.name);
            }
            Err(e) => {
                self.error = Some((e.line(), e.to_string()));
                self.run_name = None;
            }
        }
    }
}
