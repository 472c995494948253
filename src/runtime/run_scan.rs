//! The run picker's reader: lists `runs/*/` (and folders named on the command
//! line) with what each `events.jsonl` says — name, kind, status, step, the
//! latest loss, reward and solve rate. Only the first line and the newest
//! `TAIL_BYTES` are read, so a run of millions of events is listed at once; it
//! runs on a thread of its own and answers with one message. Each run's adapter
//! (final `adapter/`, else latest checkpoint) is found here too, so the picker's
//! "use this adapter" key needs no I/O on the UI thread.
use crate::protocol::workbench::RunSummary;
use crate::protocol::{Event, RunEvent, RunStatus};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// How much of a file's end is read for its latest metrics.
pub const TAIL_BYTES: u64 = 256 * 1024;
/// A run silent for longer than this, without `run_finished`, is listed as interrupted.
pub const SILENT_S: f64 = 600.0;

/// The folders under `root` that hold an `events.jsonl`, plus `extra`, deduplicated, by name.
pub fn run_dirs(root: &Path, extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("events.jsonl").is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    for d in extra {
        if !dirs.contains(d) {
            dirs.push(d.clone());
        }
    }
    dirs
}

fn apply(s: &mut RunSummary, line: &str) {
    let Ok(Event::Run(e)) = Event::from_json_line(line) else {
        return;
    };
    match e {
        RunEvent::RunStarted(r) => {
            s.name = r.run;
            s.kind = format!("{:?}", r.kind).to_lowercase();
            s.status = "running".into();
            s.step = s.step.max(r.start_step);
        }
        RunEvent::Metric(m) => {
            s.step = s.step.max(m.step);
            s.loss = m.loss.or(s.loss);
            s.reward = m.reward.or(s.reward);
            s.solve_rate = m.solve_rate.or(s.solve_rate);
        }
        RunEvent::RunFinished { status, step, .. } => {
            s.step = s.step.max(step);
            s.status = match status {
                RunStatus::Completed => "completed",
                RunStatus::Failed => "failed",
                RunStatus::Cancelled => "interrupted",
            }
            .into();
        }
        _ => {}
    }
}

/// Summarises one run folder; `now` decides whether a silent run is still running.
pub fn summarise(dir: &Path, now: f64) -> RunSummary {
    let mut s = RunSummary {
        dir: dir.to_path_buf(),
        name: dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        kind: "?".into(),
        status: "waiting".into(),
        has_results: dir.join("results.json").is_file(),
        adapter: crate::train::setup::resolve_adapter(&dir.display().to_string()).ok(),
        ..RunSummary::default()
    };
    let path = dir.join("events.jsonl");
    let Ok(mut f) = std::fs::File::open(&path) else {
        return s;
    };
    let meta = f.metadata().ok();
    s.modified_unix = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    let len = meta.map_or(0, |m| m.len());
    let mut first = String::new();
    if BufReader::new(&mut f).read_line(&mut first).is_ok() {
        apply(&mut s, first.trim_end());
    }
    if len > first.len() as u64 {
        let from = len.saturating_sub(TAIL_BYTES).max(first.len() as u64);
        let mut tail = Vec::new();
        if f.seek(SeekFrom::Start(from)).is_ok() && f.read_to_end(&mut tail).is_ok() {
            let text = String::from_utf8_lossy(&tail);
            // The first line of a tail read mid-file is partial; a bad line is skipped anyway.
            for line in text.lines() {
                apply(&mut s, line);
            }
        }
    }
    if s.status == "running" && now - s.modified_unix > SILENT_S {
        s.status = "interrupted".into();
    }
    s
}

/// Every run under `root` and in `extra`, summarised.
pub fn scan(root: &Path, extra: &[PathBuf], now: f64) -> Vec<RunSummary> {
    run_dirs(root, extra)
        .iter()
        .map(|d| summarise(d, now))
        .collect()
}
