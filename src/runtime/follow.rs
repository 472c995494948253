//! The tail reader behind monitor mode: follows `<run>/events.jsonl` as it
//! grows (the over-SSH case: `coe tui --follow runs/x` beside a headless job).
//!
//! It waits for the file to appear, reads whole lines (a line being written is
//! held back until its newline arrives), parses each with
//! `Event::from_json_line`, and sends them in batches over a bounded channel
//! with a blocking send: if the UI falls behind, the reader waits instead of
//! piling events up (STYLE 4). At end of file it polls; a file that shrinks or
//! is replaced (new inode) is read again from the start.
use crate::protocol::Event;
use crate::protocol::workbench::{FollowMsg, RunFollowMsg};
use crossbeam_channel::Sender;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Lines per message: big enough to keep channel traffic low at thousands of
/// events per second, small enough that the UI drains one between frames.
pub const BATCH: usize = 512;
/// How often end of file and a missing file are checked again.
pub const POLL: Duration = Duration::from_millis(50);

/// A running tail reader; dropping it stops the thread.
pub struct Follower {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Follower {
    /// Follows `dir/events.jsonl`, sending `FollowMsg` tagged with `run` on `tx`.
    pub fn start<M: From<RunFollowMsg> + Send + 'static>(
        dir: &Path,
        run: u64,
        tx: Sender<M>,
    ) -> std::io::Result<Follower> {
        let stop = Arc::new(AtomicBool::new(false));
        let path = dir.join("events.jsonl");
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("coe-follow".into())
            .spawn(move || tail(&path, run, &tx, &flag))?;
        Ok(Follower {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            // The reader checks the flag at least every POLL, or is blocked on a full
            // channel that the UI keeps draining; joining is bounded either way.
            let _ = h.join();
        }
    }
}

fn send<M: From<RunFollowMsg> + Send + 'static>(tx: &Sender<M>, run: u64, msg: FollowMsg) -> bool {
    tx.send(M::from(RunFollowMsg { run, msg })).is_ok()
}

fn open_when_present<M: From<RunFollowMsg> + Send + 'static>(
    path: &Path,
    run: u64,
    tx: &Sender<M>,
    stop: &AtomicBool,
) -> Option<File> {
    let mut announced = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        match File::open(path) {
            Ok(f) => return Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !announced
                    && !send(
                        tx,
                        run,
                        FollowMsg::Waiting {
                            path: path.to_path_buf(),
                        },
                    )
                {
                    return None;
                }
                announced = true;
                std::thread::sleep(POLL);
            }
            Err(e) => {
                send(
                    tx,
                    run,
                    FollowMsg::Failed(format!("cannot open {}: {e}", path.display())),
                );
                return None;
            }
        }
    }
}

/// Whether the file at `path` is no longer the one open (replaced, or shorter than read).
fn rotated(path: &Path, file: &File, offset: u64) -> bool {
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(on_disk), Ok(open)) => on_disk.ino() != open.ino() || on_disk.len() < offset,
        _ => false,
    }
}

fn tail<M: From<RunFollowMsg> + Send + 'static>(
    path: &Path,
    run: u64,
    tx: &Sender<M>,
    stop: &AtomicBool,
) {
    let path: PathBuf = path.to_path_buf();
    'file: loop {
        let Some(file) = open_when_present(&path, run, tx, stop) else {
            return;
        };
        if !send(tx, run, FollowMsg::Opened { path: path.clone() }) {
            return;
        }
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut offset = 0u64;
        let mut line_no = 0u64;
        let mut pending: Vec<u8> = Vec::new();
        let mut batch: Vec<Event> = Vec::new();
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let n = match reader.read_until(b'\n', &mut pending) {
                Ok(n) => n,
                Err(e) => {
                    send(
                        tx,
                        run,
                        FollowMsg::Failed(format!("cannot read {}: {e}", path.display())),
                    );
                    return;
                }
            };
            offset += n as u64;
            if pending.last() == Some(&b'\n') {
                line_no += 1;
                let text = String::from_utf8_lossy(&pending);
                let line = text.trim_end_matches(['\n', '\r']);
                if !line.trim().is_empty() {
                    match Event::from_json_line(line) {
                        Ok(e) => batch.push(e),
                        Err(error) => {
                            if !send(
                                tx,
                                run,
                                FollowMsg::BadLine {
                                    line: line_no,
                                    error,
                                },
                            ) {
                                return;
                            }
                        }
                    }
                }
                pending.clear();
                if batch.len() < BATCH {
                    continue;
                }
            }
            if !batch.is_empty() && !send(tx, run, FollowMsg::Events(std::mem::take(&mut batch))) {
                return;
            }
            if n == 0 {
                if rotated(&path, reader.get_ref(), offset) {
                    if !send(tx, run, FollowMsg::Restarted) {
                        return;
                    }
                    continue 'file;
                }
                std::thread::sleep(POLL);
            }
        }
    }
}
