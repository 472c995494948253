//! A run's directory (DESIGN §5): `runs/<name>/` with `config.ron`, `events.jsonl`,
//! `checkpoints/`, the final `adapter/` and `results.json`; and the [`Emitter`] that appends
//! events to the file and hands the same events to whoever watches (the headless progress
//! printer or the workbench).
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crossbeam_channel::Sender;

use crate::protocol::{EpisodeEvent, Event, RunEvent};

#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0} already holds a run; pass --resume to continue it, or change `name` in the config to start another"
    )]
    Exists(PathBuf),
    #[error("{0} holds no checkpoint to resume from; start the run without --resume")]
    NothingToResume(PathBuf),
}

/// The paths of one run.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    /// Creates (or, with `resume`, reopens) `<runs>/<name>/` and writes `config.ron`. A run
    /// counts as started once it has a complete checkpoint; a directory left by an attempt that
    /// failed before its first checkpoint may be started afresh (its events are kept as
    /// `events.jsonl.prev`).
    pub fn prepare(
        runs: &Path,
        name: &str,
        resume: bool,
        config_ron: &str,
    ) -> Result<RunDir, RunDirError> {
        let run = RunDir {
            root: runs.join(name),
        };
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RunDirError::Io { path, source }
        };
        let started = crate::train::checkpoint::list(&run.checkpoints())
            .map(|l| !l.is_empty())
            .unwrap_or(false);
        match (resume, started) {
            (false, true) => return Err(RunDirError::Exists(run.root)),
            (true, false) => return Err(RunDirError::NothingToResume(run.root)),
            (false, false) if run.events().exists() => {
                let prev = run.root.join("events.jsonl.prev");
                std::fs::rename(run.events(), &prev).map_err(io(&prev))?;
            }
            _ => {}
        }
        std::fs::create_dir_all(run.checkpoints()).map_err(io(&run.checkpoints()))?;
        let cfg = run.root.join("config.ron");
        crate::util::write_atomic(&cfg, config_ron.as_bytes()).map_err(io(&cfg))?;
        Ok(run)
    }

    pub fn events(&self) -> PathBuf {
        self.root.join("events.jsonl")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    /// The adapter of the finished run.
    pub fn adapter(&self) -> PathBuf {
        self.root.join("adapter")
    }
    pub fn results(&self) -> PathBuf {
        self.root.join("results.json")
    }
}

/// Appends events to `events.jsonl` and forwards them to a watcher.
pub struct Emitter {
    file: BufWriter<File>,
    path: PathBuf,
    watcher: Option<Sender<Event>>,
    job: u64,
}

impl Emitter {
    /// Opens `path` for appending; `watcher` gets every event too (blocking send: events are
    /// not dropped; a watcher that went away is forgotten and the run goes on).
    pub fn open(path: &Path, job: u64, watcher: Option<Sender<Event>>) -> std::io::Result<Emitter> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Emitter {
            file: BufWriter::new(file),
            path: path.to_path_buf(),
            watcher,
            job,
        })
    }

    pub fn job(&self) -> u64 {
        self.job
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event; run-level events are flushed at once so a follower sees them.
    pub fn emit(&mut self, event: Event) -> std::io::Result<()> {
        writeln!(self.file, "{}", event.to_json_line())?;
        if matches!(event, Event::Run(_)) {
            self.file.flush()?;
        }
        if let Some(tx) = &self.watcher
            && tx.send(event).is_err()
        {
            self.watcher = None;
        }
        Ok(())
    }

    pub fn run(&mut self, event: RunEvent) -> std::io::Result<()> {
        self.emit(Event::Run(event))
    }

    pub fn episode(&mut self, event: EpisodeEvent) -> std::io::Result<()> {
        self.emit(Event::Episode(event))
    }

    /// A log line for the run (also shown by watchers).
    pub fn log(&mut self, level: &str, message: impl Into<String>) -> std::io::Result<()> {
        let job = self.job;
        self.run(RunEvent::Log {
            job,
            level: level.into(),
            message: message.into(),
        })
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_and_resumed_runs_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::prepare(dir.path(), "a", false, "()").unwrap();
        assert!(run.checkpoints().is_dir());
        // No checkpoint yet: nothing to resume, and a fresh start is still allowed.
        let err = RunDir::prepare(dir.path(), "a", true, "()").unwrap_err();
        assert!(
            err.to_string()
                .contains("holds no checkpoint to resume from"),
            "{err}"
        );
        std::fs::write(run.events(), "{}\n").unwrap();
        RunDir::prepare(dir.path(), "a", false, "()").unwrap();
        assert!(
            run.root.join("events.jsonl.prev").is_file(),
            "the failed attempt's events are kept"
        );
        // With a checkpoint: a fresh start is refused, a resume allowed.
        std::fs::create_dir_all(run.checkpoints().join("step-00000002")).unwrap();
        let err = RunDir::prepare(dir.path(), "a", false, "()").unwrap_err();
        assert!(err.to_string().contains("pass --resume"), "{err}");
        RunDir::prepare(dir.path(), "a", true, "()").unwrap();
    }

    #[test]
    fn emitted_events_reach_the_file_and_the_watcher() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let (tx, rx) = crossbeam_channel::bounded(4);
        let mut em = Emitter::open(&path, 3, Some(tx)).unwrap();
        em.log("info", "hello").unwrap();
        drop(rx);
        em.log("info", "nobody listens").unwrap();
        em.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Event> = text
            .lines()
            .map(|l| Event::from_json_line(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert!(
            matches!(&lines[1], Event::Run(RunEvent::Log { job: 3, message, .. }) if message == "nobody listens")
        );
    }
}
