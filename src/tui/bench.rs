//! `coe bench tui`: is the workbench responsive while it follows busy runs?
//!
//! `RUNS` runs are followed at once, overlaid in the plots pane. Each starts
//! with `PREFILL` metrics (every plotted metric), so every plot line holds close
//! to its cap of 4,096 points while the frames are timed. Then a writer thread
//! appends 1,000 events per second in total, spread over the runs (episodes of
//! ten turns with realistic states, and metrics) for ~10 s, while the real
//! event loop (`tui::event_loop`) follows them through the real tail readers
//! and draws monitor mode on a 120×36 `TestBackend` at `ui.max_fps`.
//! Every 100 ms a key press (switch plot) is injected to measure input
//! latency. Reported: draw time per frame (median, p99), frames drawn, events
//! ingested per second and how far behind the writer the UI ended, key
//! latency, and resident memory before, half-way and after (bounded by the
//! ring buffers: the newest 256 episodes, 4,096 points per plot line).
//!
//! And what following costs the machine the run is on: the workbench's CPU
//! time per second of wall time (`getrusage`, % of one core) while it follows
//! the 1,000 events/s (the writer thread's own CPU time subtracted), then for
//! `IDLE_SECONDS` more with no events arriving.
use crate::config::DEFAULT_RON;
use crate::protocol::{EpisodeEvent, Event, JobKind, Metric, RunEvent, RunStarted, TurnRecord};
use crate::tui::effects::EffectRunner;
use crate::tui::event_loop::EventLoop;
use crate::tui::keymap::Keymap;
use crate::tui::msg::Msg;
use crate::tui::state::run_view::PlotKind;
use crate::tui::state::{AppState, Mode};
use crate::tui::style::color::ColorMode;
use crate::tui::style::theme::Theme;
use crate::tui::update::monitor::add_run;
use crate::util::stats::median_p99;
use crossbeam_channel::bounded;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant};

const RATE: u64 = 1000;
const SECONDS: u64 = 10;
const IDLE_SECONDS: u64 = 5;
/// Runs followed at once.
const RUNS: u64 = 4;
/// Metrics each run starts with: the live ones then take its lines just under the cap.
const PREFILL: u64 = 3968;

/// CPU time (user + system) of this process (`RUSAGE_SELF`) or thread (`RUSAGE_THREAD`), in seconds.
fn cpu_s(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn state_text(turn: u64) -> String {
    let mut s = String::new();
    for i in 1..=14 {
        s.push_str(&format!(
            "L{i}     total = total + values[{i}] * {}\n",
            (i + turn) % 7
        ));
    }
    s.push_str("***\nTest 1 failed: assert weighted([1, 2, 3]) == 14\nAssertionError (L5)");
    s
}

/// A train metric with every plotted value, for run `run` at `step`.
fn metric(run: u64, step: u64) -> Event {
    let s = step as f64;
    Event::Run(RunEvent::Metric(Metric {
        job: 0,
        step,
        phase: "train".into(),
        loss: Some(2.0 / (1.0 + s / 100.0) + run as f64 * 0.1),
        reward: Some((step % 100) as f64 / 100.0),
        solve_rate: Some((s / 5000.0).min(1.0)),
        kl: Some(0.001 * (step % 50) as f64),
        tokens_per_s: Some(900.0 + 100.0 * run as f64),
        elapsed_s: Some(s),
        ..Metric::default()
    }))
}

/// The i-th event of run `run`'s live stream (episodes of 12 events plus a metric every 20).
fn event(run: u64, i: u64) -> Event {
    if i % 20 == 19 {
        return metric(run, PREFILL + i / 20);
    }
    let ep = i / 12;
    match i % 12 {
        0 => Event::Episode(EpisodeEvent::EpisodeStarted {
            job: 0,
            episode: ep,
            task_id: format!("coe/weighted#{}", ep % 50),
            state: state_text(0),
        }),
        11 => Event::Episode(EpisodeEvent::EpisodeFinished {
            job: 0,
            episode: ep,
            solved: ep.is_multiple_of(3),
            turns: 10,
            ret: -0.5,
            infra_error: false,
        }),
        t => Event::Episode(EpisodeEvent::Turn {
            job: 0,
            episode: ep,
            record: TurnRecord {
                turn: t as u32,
                text: format!("### REPW 5 >>>* {t} >>>* {}", t + 1),
                command: Some(format!("REPW 5 >>>* {t} >>>* {}", t + 1)),
                valid: true,
                error: None,
                reward: 0.0,
                logprob: Some(-1.5),
                state: state_text(t),
                solved: false,
                edited_line: Some(5),
            },
        }),
    }
}

fn header(run: u64) -> Event {
    Event::Run(RunEvent::RunStarted(RunStarted {
        schema: 1,
        job: 0,
        run: format!("bench-{run}"),
        kind: JobKind::Rl,
        start_step: 0,
        total_steps: PREFILL + RATE * SECONDS / 20,
        model: "default".into(),
        model_sha256: None,
        device: "cpu".into(),
        seed: 0,
        commit: String::new(),
        config: String::new(),
        unix_time: 0.0,
    }))
}

fn events_in(state: &AppState) -> u64 {
    state.monitor.runs.iter().map(|r| r.run.events).sum()
}

pub fn run() -> anyhow::Result<serde_json::Value> {
    let machine = crate::util::machine::machine();
    let dir = tempfile_dir()?;
    let theme = Theme::embedded("dark", ColorMode::TrueColor)?;
    let mut state = AppState::new(Keymap::defaults(), theme, "bench.ron".into(), DEFAULT_RON);
    state.mode = Mode::Monitor;
    let mut rt = EffectRunner::new();
    let mut paths = Vec::new();
    for r in 0..RUNS {
        let run_dir = dir.join(format!("bench-{r}"));
        std::fs::create_dir_all(&run_dir)?;
        let mut text = header(r).to_json_line();
        text.push('\n');
        for step in 0..PREFILL {
            text.push_str(&metric(r, step).to_json_line());
            text.push('\n');
        }
        let path = run_dir.join("events.jsonl");
        std::fs::write(&path, text)?;
        paths.push(path);
        let id = add_run(&mut state, run_dir.clone())
            .ok_or_else(|| anyhow::anyhow!("cannot follow {}", run_dir.display()))?;
        rt.follow(id, &run_dir).map_err(anyhow::Error::msg)?;
    }
    let (input_tx, input_rx) = bounded(64);
    let mut lp = EventLoop::new(
        input_rx,
        crate::config::Config::embedded_default().ui.max_fps,
    );
    let mut terminal = Terminal::new(TestBackend::new(120, 36))?;
    // Read the prefilled metrics before timing anything.
    let prefilled = RUNS * (1 + PREFILL);
    let deadline = Instant::now() + Duration::from_secs(60);
    while events_in(&state) < prefilled && Instant::now() < deadline {
        lp.turn(&mut terminal, &mut state, &mut rt)?;
    }
    anyhow::ensure!(
        events_in(&state) == prefilled,
        "read {} of {prefilled} prefilled events",
        events_in(&state)
    );
    let points_per_line = state
        .monitor
        .runs
        .iter()
        .filter_map(|r| r.run.plots.get(PlotKind::Loss))
        .map(|l| l[0].points().len())
        .min()
        .unwrap_or(0);
    lp.record_frames = true;
    let rss_before = rss_kib();

    let total = RATE * SECONDS;
    let writer_paths = paths.clone();
    let cpu_start = cpu_s(libc::RUSAGE_SELF);
    let wall_start = Instant::now();
    // Returns (seconds taken, the writer thread's own CPU seconds).
    let writer = std::thread::spawn(move || -> std::io::Result<(f64, f64)> {
        let cpu0 = cpu_s(libc::RUSAGE_THREAD);
        let mut files = Vec::new();
        for p in &writer_paths {
            files.push(std::fs::OpenOptions::new().append(true).open(p)?);
        }
        let start = Instant::now();
        let chunk = RATE / 100;
        let mut i = 0;
        while i < total {
            let mut bufs = vec![String::new(); files.len()];
            for _ in 0..chunk {
                let run = i % RUNS;
                if let Some(buf) = bufs.get_mut(run as usize) {
                    buf.push_str(&event(run, i / RUNS).to_json_line());
                    buf.push('\n');
                }
                i += 1;
            }
            for (f, buf) in files.iter_mut().zip(&bufs) {
                f.write_all(buf.as_bytes())?;
            }
            let due = Duration::from_millis(10 * (i / chunk));
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Ok((
            start.elapsed().as_secs_f64(),
            cpu_s(libc::RUSAGE_THREAD) - cpu0,
        ))
    });

    let start = Instant::now();
    let mut key_latency = Vec::new();
    let mut pending_key: Option<(Instant, Option<PlotKind>)> = None;
    let mut next_key = start;
    let mut writer_done_at: Option<Instant> = None;
    let mut rss_peak = rss_before;
    // Reading /proc costs the UI thread CPU that the workbench does not spend: sample 10 times a second.
    let mut next_rss = start;
    // RSS once half the events are in: with the rings full by then, the second half should add little.
    let mut rss_half: Option<u64> = None;
    let expected = total + prefilled;
    while events_in(&state) < expected {
        if start.elapsed() > Duration::from_secs(SECONDS * 3) {
            break;
        }
        if pending_key.is_none() && Instant::now() >= next_key {
            let before = state.monitor.plot;
            let _ = input_tx.try_send(Msg::Key(KeyEvent::new(
                KeyCode::Char('p'),
                KeyModifiers::NONE,
            )));
            pending_key = Some((Instant::now(), before));
            next_key += Duration::from_millis(100);
        }
        lp.turn(&mut terminal, &mut state, &mut rt)?;
        if let Some((sent, before)) = pending_key
            && state.monitor.plot != before
        {
            key_latency.push(sent.elapsed().as_secs_f64() * 1e3);
            pending_key = None;
        }
        if writer_done_at.is_none() && writer.is_finished() {
            writer_done_at = Some(Instant::now());
        }
        let half = rss_half.is_none() && events_in(&state) >= prefilled + total / 2;
        if half || Instant::now() >= next_rss {
            next_rss = Instant::now() + Duration::from_millis(100);
            let rss = rss_kib();
            rss_peak = rss_peak.max(rss);
            if half {
                rss_half = Some(rss);
            }
        }
    }
    let ingest_s = start.elapsed().as_secs_f64();
    let lag_s = writer_done_at.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let (write_s, writer_cpu_s) = writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    let cpu_following = 100.0 * (cpu_s(libc::RUSAGE_SELF) - cpu_start - writer_cpu_s)
        / wall_start.elapsed().as_secs_f64();

    // Idle: the same loop and tail reader, nothing arriving.
    let idle_cpu_start = cpu_s(libc::RUSAGE_SELF);
    let idle_start = Instant::now();
    while idle_start.elapsed() < Duration::from_secs(IDLE_SECONDS) {
        lp.turn(&mut terminal, &mut state, &mut rt)?;
    }
    let cpu_idle =
        100.0 * (cpu_s(libc::RUSAGE_SELF) - idle_cpu_start) / idle_start.elapsed().as_secs_f64();
    // The last frame, so every event is on screen.
    state.dirty = true;
    lp.maybe_draw(&mut terminal, &mut state)?;
    rt.shutdown(Duration::from_secs(1));
    let rss_after = rss_kib();
    let events = events_in(&state);
    let episodes_held: usize = state
        .monitor
        .runs
        .iter()
        .map(|r| r.run.episodes.len())
        .sum();
    let mut frames_ms: Vec<f64> = lp.frame_times.iter().map(|s| s * 1e3).collect();
    let frames = frames_ms.len();
    let (frame_med, frame_p99) = median_p99(&mut frames_ms);
    let (key_med, key_p99) = median_p99(&mut key_latency);
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(events == expected, "ingested {events} of {expected} events");
    eprintln!(
        "bench tui: {RUNS} runs of {points_per_line}+ points per line; {events} events ({} live) in {ingest_s:.1} s ({:.0} live/s, writer {write_s:.1} s, UI done {lag_s:.2} s after it); \
         frame median {frame_med:.2} ms p99 {frame_p99:.2} ms over {frames} frames; key latency median {key_med:.1} ms p99 {key_p99:.1} ms; \
         RSS {rss_before} → {} (half-way) → {rss_after} KiB (peak {rss_peak}); \
         CPU {cpu_following:.2} % of a core following, {cpu_idle:.2} % idle",
        events - prefilled,
        (events - prefilled) as f64 / ingest_s,
        rss_half.unwrap_or(0)
    );
    Ok(json!({
        "bench": "tui",
        "machine": machine,
        "terminal": "TestBackend 120x36, monitor mode, dark theme",
        "runs": RUNS,
        "points_per_line_at_start": points_per_line,
        "writer_events_per_s": RATE,
        "events": events,
        "writer_s": write_s,
        "ingest_s": ingest_s,
        "ingest_events_per_s": (events - prefilled) as f64 / ingest_s,
        "ui_done_after_writer_s": lag_s,
        "frames": frames,
        "frame_median_ms": frame_med,
        "frame_p99_ms": frame_p99,
        "key_latency_median_ms": key_med,
        "key_latency_p99_ms": key_p99,
        "keys": key_latency.len(),
        "episodes_held": episodes_held,
        "episodes_seen": total / 12,
        "episodes_cap": RUNS as usize * crate::tui::state::run_view::MAX_EPISODES,
        "rss_before_kib": rss_before,
        "rss_half_kib": rss_half.unwrap_or(0),
        "rss_after_kib": rss_after,
        "rss_peak_kib": rss_peak,
        "cpu_percent_following": cpu_following,
        "cpu_percent_idle": cpu_idle,
        "idle_s": IDLE_SECONDS,
    }))
}

/// A fresh directory under the system temp dir (no tempfile crate outside tests).
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("coe-bench-tui-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
