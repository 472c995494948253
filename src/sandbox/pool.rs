//! The pool of warm workers: check one out per run, return it afterwards, and
//! replace a worker that died or hung (retrying the run once on the fresh one).
//!
//! Workers are owned by slots; slot i always runs task code as uid `base + i`, so
//! a replacement keeps its predecessor's uid and no two workers share one. A slot
//! whose worker could not be restarted stays vacant and is retried by the next run.
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::error::SandboxError;
use super::protection::Protection;
use super::worker::{Starting, Worker, sweep_uids};
use crate::config::sandbox::{SandboxConfig, UID_SPAN, validate_limits};
use crate::protocol::run::{RunReport, RunRequest};

/// Head-room over the run timeout before a silent worker counts as hung.
const REPLY_MARGIN_S: f64 = 3.0;

enum Slot {
    Ready(Worker),
    Vacant(usize),
}

/// Warm Python fork-servers; `Send + Sync`, `run` may be called from many threads.
pub struct SandboxPool {
    cfg: SandboxConfig,
    python: PathBuf,
    protection: Protection,
    size: usize,
    /// The run uid of slot 0; slot i runs as `first_uid + i`.
    first_uid: u32,
    /// Free workers, least recently used first: a worker just handed back is still
    /// cleaning up after its run and forking its next child.
    slots: Mutex<VecDeque<Slot>>,
    returned: Condvar,
}

impl SandboxPool {
    /// Starts every worker (in parallel) and waits until all have set up.
    pub fn new(cfg: &SandboxConfig) -> Result<Self, SandboxError> {
        cfg.validate()?;
        let python = resolve_python(&cfg.python)?;
        let size = cfg.resolved_workers();
        let first_uid = first_uid(cfg, size);
        let starting = (0..size)
            .map(|slot| Starting::spawn(&python, cfg.isolation, uid_of(first_uid, slot), slot))
            .collect::<Result<Vec<_>, _>>()?;
        let workers = starting
            .into_iter()
            .map(Starting::ready)
            .collect::<Result<Vec<_>, _>>()?;
        let protection = workers
            .first()
            .map(|w| protection_of(w, first_uid, size))
            .unwrap_or_default();
        Ok(SandboxPool {
            cfg: cfg.clone(),
            python,
            protection,
            size,
            first_uid,
            slots: Mutex::new(workers.into_iter().map(Slot::Ready).collect()),
            returned: Condvar::new(),
        })
    }

    /// Runs a program and its tests on a free worker (blocking until one is free).
    /// A worker that dies or stays silent past the run timeout (plus a margin) is
    /// replaced and the run retried once; `elapsed_ms` is then the retry's own time.
    pub fn run(&self, req: &RunRequest) -> Result<RunReport, SandboxError> {
        validate_limits(&req.limits)?;
        let timeout = Duration::from_secs_f64(
            req.limits.run_timeout_s + req.limits.test_timeout_s + REPLY_MARGIN_S,
        );
        let mut worker = match self.checkout() {
            Slot::Ready(w) => w,
            Slot::Vacant(slot) => self.start(slot)?,
        };
        let first = match worker.run(req, timeout) {
            Ok(report) => {
                self.checkin(Slot::Ready(worker));
                return Ok(report);
            }
            Err(failure) => failure.0,
        };
        let slot = worker.slot();
        drop(worker);
        let mut fresh = match self.start(slot) {
            Ok(w) => w,
            Err(e) => {
                return Err(SandboxError::Infra(format!(
                    "{first}; restarting it failed: {e}"
                )));
            }
        };
        match fresh.run(req, timeout) {
            Ok(report) => {
                self.checkin(Slot::Ready(fresh));
                Ok(report)
            }
            Err(second) => {
                drop(fresh);
                self.checkin(Slot::Vacant(slot));
                Err(SandboxError::Infra(format!(
                    "{first}; on a fresh worker: {}",
                    second.0
                )))
            }
        }
    }

    pub fn protection(&self) -> &Protection {
        &self.protection
    }

    pub fn workers(&self) -> usize {
        self.size
    }

    /// Starts a worker for `slot`; on failure the slot is returned vacant.
    fn start(&self, slot: usize) -> Result<Worker, SandboxError> {
        let started = Starting::spawn(
            &self.python,
            self.cfg.isolation,
            uid_of(self.first_uid, slot),
            slot,
        )
        .and_then(Starting::ready);
        if started.is_err() {
            self.checkin(Slot::Vacant(slot));
        }
        started
    }

    fn checkout(&self) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(slot) = slots.pop_front() {
                return slot;
            }
            slots = self
                .returned
                .wait(slots)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn checkin(&self, slot: Slot) {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(slot);
        self.returned.notify_one();
    }
}

impl Drop for SandboxPool {
    /// Lets every server clean up (in parallel), then kills whatever is left; without
    /// namespaces a last sweep removes what a killed server could not.
    fn drop(&mut self) {
        let slots = std::mem::take(self.slots.get_mut().unwrap_or_else(PoisonError::into_inner));
        let mut workers: Vec<Worker> = slots
            .into_iter()
            .filter_map(|s| match s {
                Slot::Ready(w) => Some(w),
                Slot::Vacant(_) => None,
            })
            .collect();
        workers.iter_mut().for_each(Worker::close_input);
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        for w in &mut workers {
            w.wait_exit(deadline);
        }
        drop(workers);
        if let (false, Some((first, last))) = (self.protection.namespaces, self.protection.run_uids)
        {
            sweep_uids(&self.python, (first..=last).collect());
        }
    }
}

/// How long a dropped pool lets its servers clean up before killing them.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

/// Pools in one process (tests, the workbench beside a job) and `coe` processes on
/// one machine must not share run uids: RLIMIT_NPROC counts per uid across
/// namespaces, so a fork bomb in one pool would starve the other. Each pool takes
/// the next block of uids from a process-wide counter, offset by the process id,
/// within `UID_SPAN` uids above the configured base.
fn first_uid(cfg: &SandboxConfig, size: usize) -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let size = u32::try_from(size).unwrap_or(UID_SPAN);
    let block = NEXT.fetch_add(size, Ordering::Relaxed);
    let spread = (std::process::id() % 61) * 257;
    let offset = (spread + block) % (UID_SPAN - size.min(UID_SPAN - 1));
    cfg.unprivileged_uid_base.saturating_add(offset)
}

fn uid_of(first_uid: u32, slot: usize) -> u32 {
    // validate() keeps base + UID_SPAN below u32::MAX.
    first_uid.saturating_add(u32::try_from(slot).unwrap_or(u32::MAX))
}

fn protection_of(worker: &Worker, first_uid: u32, size: usize) -> Protection {
    let h = worker.hello();
    let last = uid_of(first_uid, size.saturating_sub(1));
    Protection {
        namespaces: h.namespaces,
        network_cut: h.network_cut,
        uid_dropped: h.uid_dropped,
        private_tmp: h.private_tmp,
        private_proc: h.private_proc,
        read_only_root: h.read_only_root,
        host_dirs_hidden: h.host_dirs_hidden,
        syscall_filter: h.syscall_filter,
        sysv_ipc_off: h.sysv_ipc_off,
        run_uids: h.run_uid.map(|first| (first, last)),
        notes: h.notes.clone(),
    }
}

/// Asks `python` (with the caller's environment, so version shims work) for the real
/// interpreter path; workers then start from it with a cleared environment.
fn resolve_python(python: &str) -> Result<PathBuf, SandboxError> {
    let probe = "import sys; print(sys.executable); print('%d.%d' % sys.version_info[:2])";
    let out = Command::new(python)
        .args(["-S", "-c", probe])
        .output()
        .map_err(|source| SandboxError::Spawn {
            python: python.to_string(),
            source,
        })?;
    let bad = |detail: String| SandboxError::Interpreter {
        python: python.to_string(),
        detail,
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(bad(format!(
            "the probe failed ({}): {}",
            out.status,
            err.trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let (exe, version) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let numbers: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    if numbers.len() != 2 || numbers[..] < [3, 9][..] {
        return Err(bad(format!("it reports version {version:?}")));
    }
    Ok(if exe.is_empty() {
        PathBuf::from(python)
    } else {
        PathBuf::from(exe)
    })
}
