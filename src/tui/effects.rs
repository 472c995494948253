//! The runtime side of the event loop: the channels to the worker threads and
//! the effects `update` asks for (starting step mode's workers, sending requests,
//! following a run, saving the config, starting and cancelling a job, loading
//! data files). Effects that finish at once are answered with a message fed
//! straight back to `update`.
//!
//! Step mode's workers (sandbox pool, model) are started only when `update` asks,
//! the first time step mode is shown: a workbench that only follows a run must not
//! take CPU, memory or a GPU from the run it watches. Choosing another adapter
//! replaces the model worker: the old one's request channel is dropped (it exits
//! after the generation in flight) and its replies, tagged with its id, are dropped.
use crate::config::Config;
use crate::runtime::follow::Follower;
use crate::runtime::launcher::Job;
use crate::runtime::{env_worker, model_worker};
use crate::tui::msg::{DataMsg, Effect, EnvRequest, JobMsg, ModelRequest, Msg};
use crate::tui::state::{AppState, Level};
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use std::path::Path;

/// Capacities: requests are few (one per key press); follow batches are large.
pub const INPUT_CAP: usize = 256;
pub const FOLLOW_CAP: usize = 16;
pub const WORKER_CAP: usize = 256;
pub const REQUEST_CAP: usize = 16;

pub struct EffectRunner {
    pub env_tx: Option<Sender<EnvRequest>>,
    /// The environment worker, joined on shutdown so its sandbox pool is dropped.
    pub env_handle: Option<std::thread::JoinHandle<()>>,
    pub model_tx: Option<Sender<ModelRequest>>,
    /// What step mode's workers start with; `None` (benchmarks, tests): they cannot start.
    pub step_config: Option<Config>,
    /// Replies from workers, jobs and loaders.
    pub worker_tx: Sender<Msg>,
    pub worker_rx: Receiver<Msg>,
    pub follow_tx: Sender<Msg>,
    pub follow_rx: Receiver<Msg>,
    /// One tail reader per followed run, by run id.
    followers: Vec<(u64, Follower)>,
    job: Option<Job>,
}

impl Default for EffectRunner {
    fn default() -> Self {
        Self::new()
    }
}

impl EffectRunner {
    pub fn new() -> Self {
        let (worker_tx, worker_rx) = bounded(WORKER_CAP);
        let (follow_tx, follow_rx) = bounded(FOLLOW_CAP);
        EffectRunner {
            env_tx: None,
            env_handle: None,
            model_tx: None,
            step_config: None,
            worker_tx,
            worker_rx,
            follow_tx,
            follow_rx,
            followers: Vec::new(),
            job: None,
        }
    }

    /// Starts following `dir` as run `run`, beside the runs followed already (the
    /// one code path for `--follow`, the run picker and jobs).
    pub fn follow(&mut self, run: u64, dir: &Path) -> Result<(), String> {
        self.unfollow(run);
        let f = Follower::start(dir, run, self.follow_tx.clone())
            .map_err(|e| format!("cannot start following {}: {e}", dir.display()))?;
        self.followers.push((run, f));
        Ok(())
    }

    /// Stops run `run`'s reader; what it queued is dropped by `update` (unknown id).
    pub fn unfollow(&mut self, run: u64) {
        self.followers.retain(|(id, _)| *id != run);
    }

    /// Stops every reader.
    pub fn unfollow_all(&mut self) {
        self.followers.clear();
    }

    /// Starts the environment worker and, with `model`, the model worker (which
    /// loads in the background and says so); at most once.
    pub fn start_step_workers(&mut self, model: bool) -> Result<(), String> {
        if self.env_tx.is_some() {
            return Ok(());
        }
        let Some(cfg) = self.step_config.clone() else {
            return Err("step mode's workers have no config to start with".into());
        };
        let (env_tx, env_rx) = bounded(REQUEST_CAP);
        let handle = env_worker::spawn(
            cfg.sandbox.clone(),
            cfg.env.clone(),
            env_rx,
            self.worker_tx.clone(),
        )
        .map_err(|e| format!("cannot start the environment worker: {e}"))?;
        self.env_tx = Some(env_tx);
        self.env_handle = Some(handle);
        if model {
            self.spawn_model(cfg, 0)?;
        }
        Ok(())
    }

    /// Starts a model worker on `cfg` whose replies are tagged `worker`, in place of
    /// the one running (if any).
    fn spawn_model(&mut self, cfg: Config, worker: u64) -> Result<(), String> {
        self.model_tx = None;
        let (model_tx, model_rx) = bounded(REQUEST_CAP);
        let tx = self.worker_tx.clone();
        model_worker::spawn(cfg, model_rx, move |reply| {
            tx.send(Msg::ModelOf { worker, reply }).is_ok()
        })
        .map_err(|e| format!("cannot start the model worker: {e}"))?;
        self.model_tx = Some(model_tx);
        Ok(())
    }

    /// Step mode's model loads `adapter` from now on; with `restart`, a new worker
    /// tagged `restart` loads it now.
    pub fn use_adapter(&mut self, adapter: &Path, restart: Option<u64>) -> Result<(), String> {
        let Some(cfg) = self.step_config.as_mut() else {
            return Err("step mode's model has no config to start with".into());
        };
        cfg.model.adapter = Some(adapter.display().to_string());
        match restart {
            Some(worker) => {
                let cfg = cfg.clone();
                self.spawn_model(cfg, worker)
            }
            None => Ok(()),
        }
    }

    /// Closes the request channels and waits up to `wait` for the environment worker to
    /// drop its sandbox pool (which kills the Python workers); the model worker is left to
    /// the process exit, since a generation in flight cannot be interrupted.
    pub fn shutdown(&mut self, wait: std::time::Duration) {
        self.env_tx = None;
        self.model_tx = None;
        self.followers.clear();
        let deadline = std::time::Instant::now() + wait;
        if let Some(h) = self.env_handle.take() {
            while !h.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }

    /// The pid of a job that is still running, if any.
    pub fn running_job(&self) -> Option<u32> {
        self.job.as_ref().filter(|j| j.is_alive()).map(|j| j.pid)
    }

    /// Carries out one effect; a message to feed back to `update` when it finished at once.
    pub fn perform(&mut self, state: &mut AppState, effect: Effect) -> Option<Msg> {
        match effect {
            Effect::Env(req) => {
                send_request(state, self.env_tx.as_ref(), req, "environment");
                None
            }
            Effect::StartStepWorkers { model } => {
                if let Err(e) = self.start_step_workers(model) {
                    state.log(Level::Error, e);
                }
                None
            }
            Effect::UseAdapter { adapter, restart } => {
                if let Err(e) = self.use_adapter(&adapter, restart) {
                    state.log(Level::Error, e);
                }
                None
            }
            Effect::ExportPlot(path) => {
                match crate::tui::export::write_plot(state, &path) {
                    Ok(()) => state.log(Level::Info, format!("plot written to {}", path.display())),
                    Err(e) => state.log(Level::Error, e.to_string()),
                }
                None
            }
            Effect::Model(req) => {
                let req = ModelRequest::Propose(req);
                send_request(state, self.model_tx.as_ref(), req, "model");
                None
            }
            Effect::CancelProposals => {
                // Best effort: with the queue full the newest request is still answered,
                // which costs one generation, not correctness.
                if let Some(tx) = &self.model_tx {
                    let _ = tx.try_send(ModelRequest::Cancel);
                }
                None
            }
            Effect::Follow { run, dir } => {
                if let Err(e) = self.follow(run, &dir) {
                    state.log(Level::Error, e);
                }
                None
            }
            Effect::Unfollow(run) => {
                self.unfollow(run);
                None
            }
            Effect::SaveConfig { path, text } => Some(Msg::ConfigSaved(save(&path, &text))),
            Effect::StartJob {
                path,
                text,
                run_dir,
                run,
            } => {
                if let Err(e) = save(&path, &text) {
                    return Some(Msg::Job(JobMsg::Failed(format!(
                        "cannot save the config: {e}"
                    ))));
                }
                state.config.saved = text;
                self.unfollow_all();
                if let Err(e) = self.follow(run, &run_dir) {
                    state.log(Level::Error, e);
                }
                match Job::start(&path, &run_dir, self.worker_tx.clone()) {
                    Ok(job) => {
                        self.job = Some(job);
                        None
                    }
                    Err(e) => Some(Msg::Job(JobMsg::Failed(e))),
                }
            }
            Effect::CancelJob => {
                if let Some(Err(e)) = self.job.as_ref().map(Job::cancel) {
                    state.log(Level::Error, e);
                }
                None
            }
            Effect::ScanRuns(extra) => {
                let tx = self.worker_tx.clone();
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                let spawned = std::thread::Builder::new()
                    .name("coe-run-scan".into())
                    .spawn(move || {
                        let list = crate::runtime::run_scan::scan(Path::new("runs"), &extra, now);
                        let _ = tx.send(Msg::Runs(list));
                    });
                if let Err(e) = spawned {
                    state.log(Level::Error, format!("cannot start a scanner thread: {e}"));
                }
                None
            }
            Effect::LoadData(path) => {
                let tx = self.worker_tx.clone();
                let spawned = std::thread::Builder::new()
                    .name("coe-data-load".into())
                    .spawn(move || {
                        let msg = match crate::tui::sources::load_records(&path) {
                            Ok(records) => DataMsg::Loaded { path, records },
                            Err(message) => DataMsg::Failed { path, message },
                        };
                        let _ = tx.send(Msg::Data(msg));
                    });
                if let Err(e) = spawned {
                    state.log(Level::Error, format!("cannot start a loader thread: {e}"));
                }
                None
            }
        }
    }
}

fn send_request<T>(state: &mut AppState, tx: Option<&Sender<T>>, req: T, what: &str) {
    let Some(tx) = tx else {
        state.log(Level::Warn, format!("the {what} worker is not running"));
        return;
    };
    // try_send: the UI thread must never block on a worker (DESIGN §6).
    match tx.try_send(req) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            state.log(Level::Warn, format!("the {what} worker is busy; try again"))
        }
        Err(TrySendError::Disconnected(_)) => {
            state.log(Level::Error, format!("the {what} worker has stopped"))
        }
    }
}

fn save(path: &Path, text: &str) -> Result<String, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut body = text.to_string();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    crate::util::write_atomic(path, body.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path.display().to_string())
}
