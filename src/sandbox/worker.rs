//! One resident worker (`worker/*.py`) process as the pool sees it: start it, wait for its
//! greeting, send a run and wait (with a deadline) for the reply, kill it.
//!
//! The fork-server may be a grandchild (PID 1 of its own pid namespace); a pidfd
//! on it lets `kill` make sure it, and with it the namespace, is gone.
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::error::SandboxError;
use super::line_reader::{LineError, LineReader};
use super::protocol::{Greeting, Hello, WireReply, WireRequest, WorkerArgs};
use crate::config::sandbox::Isolation;
use crate::protocol::run::{RunReport, RunRequest};

/// The fork-server, embedded so the binary needs no file beside it. One Python
/// program kept in six files by concern; `python -c BOOT` reads their concatenation
/// from its stdin (its length is the last argument) and compiles it in a throw-away
/// child. Not an argument: the interpreter keeps several copies of its arguments
/// (~1.2 MB for this one), which every fork and every run child's exit then pays for.
const WORKER_SOURCE: &str = concat!(
    include_str!("worker/setup.py"),
    include_str!("worker/confine.py"),
    include_str!("worker/seccomp.py"),
    include_str!("worker/server.py"),
    include_str!("worker/zygote.py"),
    include_str!("worker/child.py"),
);
const BOOT: &str = include_str!("worker/boot.py");

/// Interpreter start, imports and namespace set-up, on a busy machine.
const GREETING_TIMEOUT: Duration = Duration::from_secs(60);

/// A worker that broke during a run; the pool replaces it.
#[derive(Debug)]
pub(crate) struct WorkerFailure(pub String);

/// Started, but its greeting not read yet (so many can start in parallel).
pub(crate) struct Starting {
    slot: usize,
    child: Reaped,
    stdin: ChildStdin,
    lines: LineReader,
}

pub(crate) struct Worker {
    slot: usize,
    child: Reaped,
    stdin: Option<ChildStdin>,
    lines: LineReader,
    server: Option<OwnedFd>,
    hello: Hello,
    next_id: u64,
}

impl Starting {
    pub(crate) fn spawn(
        python: &Path,
        isolation: Isolation,
        uid: u32,
        slot: usize,
    ) -> Result<Self, SandboxError> {
        let args = WorkerArgs {
            isolation,
            uid,
            sweep: Vec::new(),
        };
        let mut child = worker_command(python, &args)
            .map_err(|message| SandboxError::Setup { slot, message })?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| SandboxError::Spawn {
                python: python.display().to_string(),
                source,
            })?;
        // Written before the child is wrapped: a write that fails leaves it to be killed.
        let sent = child
            .stdin
            .as_mut()
            .map(|w| w.write_all(WORKER_SOURCE.as_bytes()));
        let mut child = Reaped(child);
        if let Some(Err(e)) = sent {
            return Err(SandboxError::Setup {
                slot,
                message: format!("cannot send the worker its program: {e}"),
            });
        }
        let (Some(stdin), Some(stdout)) = (child.0.stdin.take(), child.0.stdout.take()) else {
            return Err(SandboxError::Setup {
                slot,
                message: "no pipes to the worker".into(),
            });
        };
        Ok(Starting {
            slot,
            child,
            stdin,
            lines: LineReader::new(stdout),
        })
    }

    /// Waits for the greeting; a worker that reports failure or says nothing is killed.
    pub(crate) fn ready(mut self) -> Result<Worker, SandboxError> {
        let slot = self.slot;
        let fail = |message: String| SandboxError::Setup { slot, message };
        let greeting = match self.lines.next_line(GREETING_TIMEOUT) {
            Ok(line) => serde_json::from_str::<Greeting>(&line)
                .map_err(|e| fail(format!("unreadable greeting {line:?}: {e}"))),
            Err(LineError::Timeout) => {
                Err(fail(format!("no greeting within {GREETING_TIMEOUT:?}")))
            }
            Err(LineError::Io(e)) => Err(fail(format!("cannot read its greeting: {e}"))),
            Err(LineError::Closed) => Err(fail(match self.child.0.wait() {
                Ok(status) => format!("it exited during start-up ({status})"),
                Err(e) => format!("it exited during start-up ({e})"),
            })),
        };
        let hello = match greeting {
            Ok(Greeting::Hello(hello)) => hello,
            Ok(Greeting::Fatal(message)) => Err(fail(message))?,
            Err(e) => Err(e)?,
        };
        Ok(Worker {
            slot,
            server: pidfd_open(hello.server_pid),
            child: self.child,
            stdin: Some(self.stdin),
            lines: self.lines,
            hello,
            next_id: 1,
        })
    }
}

/// The worker's first process, killed and reaped whenever its owner goes away.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Worker {
    pub(crate) fn slot(&self) -> usize {
        self.slot
    }

    pub(crate) fn hello(&self) -> &Hello {
        &self.hello
    }

    /// Sends one run and waits up to `timeout` for its reply.
    pub(crate) fn run(
        &mut self,
        req: &RunRequest,
        timeout: Duration,
    ) -> Result<RunReport, WorkerFailure> {
        let slot = self.slot;
        let id = self.next_id;
        self.next_id += 1;
        let wire = WireRequest {
            id,
            setup: &req.setup,
            code: &req.code,
            tests: &req.tests,
            limits: &req.limits,
        };
        let mut line = serde_json::to_string(&wire)
            .map_err(|e| WorkerFailure(format!("cannot encode the run: {e}")))?;
        line.push('\n');
        let started = Instant::now();
        let sent = match self.stdin.as_mut() {
            Some(stdin) => stdin
                .write_all(line.as_bytes())
                .and_then(|()| stdin.flush()),
            None => Err(std::io::Error::other("worker already stopped")),
        };
        sent.map_err(|e| WorkerFailure(format!("worker {slot} does not take runs: {e}")))?;
        let text = self.lines.next_line(timeout).map_err(|e| {
            WorkerFailure(match e {
                LineError::Timeout => format!(
                    "worker {slot} gave no answer within {:.1}s",
                    timeout.as_secs_f64()
                ),
                LineError::Closed => format!("worker {slot} died during a run"),
                LineError::Io(e) => format!("cannot read worker {slot}'s answer: {e}"),
            })
        })?;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let reply: WireReply = serde_json::from_str(&text)
            .map_err(|e| WorkerFailure(format!("worker {slot} sent an unreadable reply: {e}")))?;
        match reply {
            WireReply {
                error: Some(error), ..
            } => Err(WorkerFailure(format!(
                "worker {slot} failed the run: {error}"
            ))),
            WireReply {
                id: Some(got),
                outcome: Some(outcome),
                output,
                ..
            } if got == id => Ok(RunReport {
                outcome,
                output,
                elapsed_ms,
            }),
            WireReply { id: got, .. } => Err(WorkerFailure(format!(
                "worker {slot} answered run {got:?}, not {id}"
            ))),
        }
    }

    /// Closes the worker's input: its server cleans up and exits on its own.
    pub(crate) fn close_input(&mut self) {
        drop(self.stdin.take());
    }

    /// Waits until the worker has exited or `deadline` passes.
    pub(crate) fn wait_exit(&mut self, deadline: Instant) {
        while Instant::now() < deadline {
            if !matches!(self.child.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Kills the worker and its fork-server; the kernel then kills its namespace.
    pub(crate) fn kill(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.0.kill();
        if let Some(server) = &self.server {
            // SAFETY: a pidfd we own; a null siginfo is allowed.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    server.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<u8>(),
                    0,
                );
            }
        }
        let _ = self.child.0.wait();
        if let Some(server) = self.server.take() {
            let mut fds = libc::pollfd {
                fd: server.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; a pidfd turns readable once the process is gone.
            unsafe { libc::poll(&mut fds, 1, 2000) };
        }
        // The server removes its run directories on a clean exit; not when killed.
        if let Some(base) = self.hello.scratch_base.take() {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The worker's command line. A cleared environment: nothing of ours (tokens, keys)
/// reaches task code, and PYTHONHASHSEED makes set and dict-of-str orders reproducible.
fn worker_command(python: &Path, args: &WorkerArgs) -> Result<Command, String> {
    let args = serde_json::to_string(args).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(python);
    let len = WORKER_SOURCE.len().to_string();
    cmd.args(["-S", "-B", "-c", BOOT, &args, &len])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // Every symbol bound at start-up: a lazily bound one is written into the
        // interpreter's GOT on first use, a page each run child would copy again.
        .env("LD_BIND_NOW", "1")
        .current_dir("/")
        .process_group(0);
    Ok(cmd)
}

/// Without namespaces, the last clean-up of a pool: kill whatever still runs as one of
/// `uids` and remove their files in the host's temp dirs and their IPC objects (the
/// worker's own clean-up does this too, unless the worker was killed first).
pub(crate) fn sweep_uids(python: &Path, uids: Vec<u32>) {
    let args = WorkerArgs {
        isolation: Isolation::None,
        uid: 0,
        sweep: uids,
    };
    let Ok(mut cmd) = worker_command(python, &args) else {
        return;
    };
    let spawned = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Ok(mut child) = spawned {
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(WORKER_SOURCE.as_bytes());
        }
        let _ = child.wait();
    }
}

/// A stable handle on the fork-server so killing it can never hit a reused pid.
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: plain syscall; a non-negative result is a new fd that we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: just returned by the kernel, owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}
