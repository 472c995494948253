//! The runtime of DESIGN §6: a job table and, per job, a model worker thread that owns the
//! VarStore, model, optimizer and tokenizer for the job's whole life (tch tensors never leave
//! it); its sandbox pool steps episodes on other threads. Jobs report through one bounded
//! channel of [`Event`]s — the same events the job appends to `runs/<name>/events.jsonl` —
//! and stop at the next step boundary when their cancel flag is set, checkpointing first.
//! Headless commands and the workbench drive jobs through this one interface.
//!
//! The workbench's own threads live here too: the step-mode model and environment workers,
//! the launcher of a job started from config mode, and the follower of a run's events. They
//! speak `crate::protocol::workbench` and send into any channel whose message type wraps
//! their replies (`M: From<Reply>`), so this layer never sees the terminal.
pub mod env_worker;
pub mod follow;
pub mod launcher;
pub mod model_worker;
pub mod run_scan;
pub mod serve;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::config::Config;
use crate::protocol::{Event, JobKind, RunEvent, RunStatus};
use crate::sandbox::SandboxPool;
use crate::train::run_dir::{Emitter, RunDir};
use crate::train::{JobEnv, JobOutcome};

/// Events buffered between a job and its watcher before the job waits.
pub const EVENT_CAPACITY: usize = 1024;

/// A job to start.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub kind: JobKind,
    pub config: Config,
    /// Continue the run from its latest checkpoint.
    pub resume: bool,
    /// Where run directories live (`runs/`).
    pub runs_dir: PathBuf,
}

struct JobEntry {
    kind: JobKind,
    run: PathBuf,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<JobOutcome, String>>>,
}

/// The job table.
pub struct Runtime {
    jobs: BTreeMap<u64, JobEntry>,
    next_id: u64,
    tx: Sender<Event>,
}

impl Runtime {
    /// A runtime and the receiving end of its event channel.
    pub fn new() -> (Runtime, Receiver<Event>) {
        let (tx, rx) = crossbeam_channel::bounded(EVENT_CAPACITY);
        (
            Runtime {
                jobs: BTreeMap::new(),
                next_id: 0,
                tx,
            },
            rx,
        )
    }

    /// Starts a job; errors that need no model (a bad run directory) come back at once.
    pub fn start(&mut self, spec: JobSpec) -> anyhow::Result<u64> {
        anyhow::ensure!(
            spec.kind != JobKind::Eval,
            "evaluation runs through `coe eval`, not a training job"
        );
        let id = self.next_id;
        let run = RunDir::prepare(
            &spec.runs_dir,
            &spec.config.name,
            spec.resume,
            &spec.config.to_ron(),
        )?;
        let emit = Emitter::open(&run.events(), id, Some(self.tx.clone()))
            .map_err(|e| anyhow::anyhow!("{}: {e}", run.events().display()))?;
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&cancel);
        let (kind, root) = (spec.kind, run.root.clone());
        let thread = std::thread::Builder::new()
            .name(format!("coe-model-worker-{id}"))
            .spawn(move || worker(spec, run, emit, &flag))?;
        self.jobs.insert(
            id,
            JobEntry {
                kind,
                run: root,
                cancel,
                thread: Some(thread),
            },
        );
        self.next_id += 1;
        Ok(id)
    }

    /// Asks a job to checkpoint and stop at its next step boundary.
    pub fn cancel(&self, job: u64) {
        if let Some(j) = self.jobs.get(&job) {
            j.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// The cancel flag of a job (for signal handlers).
    pub fn cancel_flag(&self, job: u64) -> Option<Arc<AtomicBool>> {
        self.jobs.get(&job).map(|j| Arc::clone(&j.cancel))
    }

    /// (id, kind, run directory) of every job started.
    pub fn jobs(&self) -> Vec<(u64, JobKind, PathBuf)> {
        self.jobs
            .iter()
            .map(|(id, j)| (*id, j.kind, j.run.clone()))
            .collect()
    }

    /// Waits for a job to end.
    pub fn wait(&mut self, job: u64) -> Result<JobOutcome, String> {
        let thread = self
            .jobs
            .get_mut(&job)
            .and_then(|j| j.thread.take())
            .ok_or_else(|| format!("no running job {job}"))?;
        thread
            .join()
            .unwrap_or_else(|_| Err("the model worker panicked".into()))
    }

    /// Shutdown: stop admitting work, cancel every job and wait for their checkpoints.
    pub fn shutdown(&mut self) {
        for j in self.jobs.values() {
            j.cancel.store(true, Ordering::Relaxed);
        }
        for j in self.jobs.values_mut() {
            if let Some(t) = j.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// The model worker: runs the job, then reports how it ended.
fn worker(
    spec: JobSpec,
    run: RunDir,
    mut emit: Emitter,
    cancel: &AtomicBool,
) -> Result<JobOutcome, String> {
    let job = emit.job();
    let result = (|| -> anyhow::Result<JobOutcome> {
        let pool = SandboxPool::new(&spec.config.sandbox)
            .map_err(|e| anyhow::anyhow!("cannot start the Python sandbox: {e}"))?;
        let mut env = JobEnv {
            run: &run,
            emit: &mut emit,
            cancel,
            pool: &pool,
            resume: spec.resume,
        };
        match spec.kind {
            JobKind::Sft => Ok(crate::train::sft::run(&spec.config, &mut env)?),
            JobKind::Rl => Ok(crate::train::rl::run(&spec.config, &mut env)?),
            JobKind::Eval => anyhow::bail!("not a training job"),
        }
    })();
    let (status, step, error) = match &result {
        Ok(o) if o.cancelled => (RunStatus::Cancelled, o.step, None),
        Ok(o) => (RunStatus::Completed, o.step, None),
        Err(e) => (RunStatus::Failed, 0, Some(format!("{e:#}"))),
    };
    if let Ok(o) = &result
        && let Some(eval) = &o.last_eval
    {
        let json = serde_json::json!({"schema": 1, "kind": crate::train::setup::kind_name(spec.kind), "step": o.step, "eval": eval});
        let _ = crate::util::write_atomic(&run.results(), json.to_string().as_bytes());
    }
    let _ = emit.run(RunEvent::RunFinished {
        job,
        status,
        step,
        error: error.clone(),
    });
    let _ = emit.flush();
    result.map_err(|e| format!("{e:#}"))
}
