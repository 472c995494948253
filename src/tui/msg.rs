//! The workbench's messages: what reaches the UI thread (`Msg`, which carries key
//! presses and the worker replies of `crate::protocol::workbench`) and what the UI asks
//! of its effect runner (`Effect`). Only these two know about the terminal.
pub use crate::protocol::workbench::{
    DataMsg, DataRecord, EnvReply, EnvRequest, EnvSnapshot, FollowMsg, JobMsg, ModelReply,
    ModelRequest, ProposeRequest, RunFollowMsg, RunSummary,
};
use crossterm::event::KeyEvent;
use std::path::PathBuf;

/// Everything the UI thread reacts to.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Resize,
    /// Wall-clock time, once a second (drives elapsed-time displays).
    Tick {
        unix: f64,
    },
    Follow(RunFollowMsg),
    Env(EnvReply),
    /// A reply of the current model worker.
    Model(ModelReply),
    /// A reply of model worker `worker` (the runtime tags every worker's replies):
    /// dropped unless `worker` is step mode's current one, so a worker replaced by
    /// one with another adapter cannot answer for it.
    ModelOf {
        worker: u64,
        reply: ModelReply,
    },
    Job(JobMsg),
    Data(DataMsg),
    /// The run picker's list, freshly read.
    Runs(Vec<RunSummary>),
    /// The config file was written (`Ok(path)`) or not.
    ConfigSaved(Result<String, String>),
}

/// Work the UI asks the runtime to do (update stays free of I/O).
#[derive(Debug, Clone)]
pub enum Effect {
    /// Start step mode's workers: the environment worker (sandbox pool) and, with
    /// `model`, the model worker. Asked for once, the first time step mode is shown.
    StartStepWorkers {
        model: bool,
    },
    /// Step mode's model loads `adapter` from now on. With `restart: Some(worker)` the
    /// running model worker is dropped and a new one, tagged `worker`, loads it at once.
    UseAdapter {
        adapter: PathBuf,
        restart: Option<u64>,
    },
    Env(EnvRequest),
    Model(ProposeRequest),
    /// Drop the proposal requests still queued (their task is no longer on screen).
    CancelProposals,
    /// Follow `dir/events.jsonl` as run `run`, beside the runs already followed.
    Follow {
        run: u64,
        dir: PathBuf,
    },
    /// Stop following run `run`.
    Unfollow(u64),
    SaveConfig {
        path: PathBuf,
        text: String,
    },
    /// Save the config, then start `coe train sft --config <path>` and follow `run_dir`
    /// as run `run`, instead of every run followed before.
    StartJob {
        path: PathBuf,
        text: String,
        run_dir: PathBuf,
        run: u64,
    },
    CancelJob,
    LoadData(PathBuf),
    /// List `runs/*/` and these folders for the run picker (answered with `Msg::Runs`).
    ScanRuns(Vec<PathBuf>),
    /// Write the plots pane's current chart (metric, x-axis, every followed run) to `path`.
    ExportPlot(PathBuf),
}

impl From<RunFollowMsg> for Msg {
    fn from(m: RunFollowMsg) -> Self {
        Msg::Follow(m)
    }
}

impl From<EnvReply> for Msg {
    fn from(m: EnvReply) -> Self {
        Msg::Env(m)
    }
}

impl From<ModelReply> for Msg {
    fn from(m: ModelReply) -> Self {
        Msg::Model(m)
    }
}

impl From<JobMsg> for Msg {
    fn from(m: JobMsg) -> Self {
        Msg::Job(m)
    }
}
