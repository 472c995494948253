//! Jobs started from config mode: the running `coe` binary itself is started
//! as `coe train sft --config <file>` with its output going to
//! `<run dir>/workbench-job.log`, and a waiter thread reports its exit with the
//! end of that log (so a failure shows in the log
//! pane). The run directory is followed through the same tail reader as
//! `--follow`. Cancelling sends SIGTERM, which the trainer answers by writing a
//! checkpoint and stopping (DESIGN §5).
use crate::protocol::workbench::JobMsg;
use crossbeam_channel::Sender;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Lines of the job's log shown when it exits.
const TAIL_LINES: usize = 12;

/// A started child.
pub struct Job {
    pub pid: u32,
    /// False once the waiter has reaped the child (its pid may be reused after that).
    alive: Arc<AtomicBool>,
}

impl Job {
    /// Saves nothing itself: the caller wrote `config` already.
    pub fn start<M: From<JobMsg> + Send + 'static>(
        config: &Path,
        run_dir: &Path,
        tx: Sender<M>,
    ) -> Result<Job, String> {
        std::fs::create_dir_all(run_dir)
            .map_err(|e| format!("cannot create {}: {e}", run_dir.display()))?;
        let log: PathBuf = run_dir.join("workbench-job.log");
        let out = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find the coe binary: {e}"))?;
        let mut child = Command::new(&exe)
            .arg("train")
            .arg("sft")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {} train sft: {e}", exe.display()))?;
        let pid = child.id();
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        let _ = tx.send(M::from(JobMsg::Started {
            pid,
            run_dir: run_dir.to_path_buf(),
            log: log.clone(),
        }));
        std::thread::Builder::new()
            .name("coe-job-wait".into())
            .spawn(move || {
                let status = child.wait();
                flag.store(false, Ordering::SeqCst);
                let (status, success) = match status {
                    Ok(s) => (describe(&s), s.success()),
                    Err(e) => (format!("cannot wait for it: {e}"), false),
                };
                let _ = tx.send(M::from(JobMsg::Exited {
                    pid,
                    status,
                    success,
                    log_tail: tail(&log, TAIL_LINES),
                }));
            })
            .map_err(|e| format!("cannot start the job's waiter thread: {e}"))?;
        Ok(Job { pid, alive })
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Sends SIGTERM (the trainer checkpoints and stops); a no-op once it has exited.
    pub fn cancel(&self) -> Result<(), String> {
        if !self.is_alive() {
            return Ok(());
        }
        let pid = libc::pid_t::try_from(self.pid)
            .map_err(|_| format!("pid {} out of range", self.pid))?;
        // SAFETY: kill(2) with a pid we spawned and have not reaped (checked above).
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!(
                "kill {}: {}",
                self.pid,
                std::io::Error::last_os_error()
            ))
        }
    }
}

fn describe(s: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "ended".into(),
    }
}

/// The last `n` lines of a text file (empty if unreadable).
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(n);
    lines.into_iter().skip(skip).map(str::to_string).collect()
}
