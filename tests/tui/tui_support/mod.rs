//! Shared fixtures for the workbench tests: a state with the small task file,
//! key presses from chord text, and a small run's events (a model that fixes
//! gcd on its second turn, with metrics over 20 steps).
#![allow(dead_code)]
use coe::config::DEFAULT_RON;
use coe::data::loaders::load_tasks;
use coe::protocol::{EpisodeEvent, Event, JobKind, Metric, RunEvent, RunStarted, TurnRecord};
use coe::tui::keymap::{KeyChord, Keymap};
use coe::tui::msg::{Effect, EnvSnapshot, FollowMsg, Msg, RunFollowMsg};
use coe::tui::state::AppState;
use coe::tui::style::color::ColorMode;
use coe::tui::style::theme::Theme;
use coe::tui::update::update;
use crossterm::event::{KeyEvent, KeyModifiers};
use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh state on the embedded default config and dark theme, tasks from tasks_small.jsonl.
pub fn state() -> AppState {
    let theme = Theme::embedded("dark", ColorMode::TrueColor).unwrap();
    let mut s = AppState::new(
        Keymap::defaults(),
        theme,
        PathBuf::from("configs/default.ron"),
        DEFAULT_RON,
    );
    s.step.tasks = load_tasks(&root().join("tests/fixtures/tasks_small.jsonl")).unwrap();
    s.step.tasks_origin = "tests/fixtures/tasks_small.jsonl (3 tasks)".into();
    s
}

/// What the environment worker reports about `task` at `turn` (observation `obs <turn>`).
pub fn snapshot(task: &str, state: &str, turn: u32) -> Box<EnvSnapshot> {
    Box::new(EnvSnapshot {
        task_id: task.into(),
        state: state.into(),
        observation: format!("obs {turn}"),
        tests: vec!["assert gcd(35, 21) == 7".into()],
        report: None,
        turn,
        done: false,
        solved: state.ends_with("All tests passed."),
        ret: 0.0,
        code: String::new(),
    })
}

/// A key press from chord text (`"j"`, `"enter"`, `"ctrl-s"`).
pub fn key(chord: &str) -> Msg {
    let c = KeyChord::parse(chord).unwrap();
    let mut mods = c.mods;
    if let crossterm::event::KeyCode::Char(ch) = c.code
        && ch.is_ascii_uppercase()
    {
        mods |= KeyModifiers::SHIFT;
    }
    Msg::Key(KeyEvent::new(c.code, mods))
}

/// Feeds keys one by one, collecting the effects.
pub fn press(state: &mut AppState, chords: &[&str]) -> Vec<Effect> {
    chords.iter().flat_map(|c| update(state, key(c))).collect()
}

/// Types text character by character.
pub fn type_text(state: &mut AppState, text: &str) -> Vec<Effect> {
    text.chars()
        .flat_map(|ch| {
            update(
                state,
                Msg::Key(KeyEvent::new(
                    crossterm::event::KeyCode::Char(ch),
                    KeyModifiers::NONE,
                )),
            )
        })
        .collect()
}

pub const GCD_BUGGY: &str = "L1 def gcd(a, b):\nL2     if b == 0:\nL3         return a\nL4     else:\nL5         return gcd(a % b, b)\n***\nTest 1 failed: assert gcd(35, 21) == 7\nRecursionError: maximum recursion depth exceeded (L5)\nTest 3 failed: assert gcd(7, 13) == 1\nRecursionError: maximum recursion depth exceeded (L5)";
pub const GCD_INVALID: &str = "L1 def gcd(a, b):\nL2     if b == 0:\nL3         return a\nL4     else:\nL5         return gcd(a % b, b)\n***\nInvalid command: line 9 is out of range (the code has 5 lines)";
pub const GCD_FIXED: &str = "L1 def gcd(a, b):\nL2     if b == 0:\nL3         return a\nL4     else:\nL5         return gcd(b, a % b)\n***\nAll tests passed.";

pub fn started(start_step: u64) -> Event {
    Event::Run(RunEvent::RunStarted(RunStarted {
        schema: 1,
        job: 0,
        run: "smoke-rl".into(),
        kind: JobKind::Rl,
        start_step,
        total_steps: 40,
        model: "default".into(),
        model_sha256: None,
        device: "cpu".into(),
        seed: 0,
        commit: "abc1234".into(),
        config: "()".into(),
        unix_time: 1_795_000_000.0,
    }))
}

pub fn metric(step: u64, phase: &str) -> Event {
    let s = step as f64;
    let train = phase == "train";
    Event::Run(RunEvent::Metric(Metric {
        job: 0,
        step,
        phase: phase.into(),
        loss: train.then_some(2.0 / (1.0 + s * 0.2)),
        reward: Some(-0.5 + s * 0.05),
        solve_rate: (!train).then_some((s / 20.0).min(1.0)),
        kl: train.then_some(0.01 * s),
        tokens_per_s: train.then_some(800.0 + s),
        elapsed_s: train.then_some(10.0 * s),
        ..Metric::default()
    }))
}

pub fn turn(
    episode: u64,
    n: u32,
    text: &str,
    valid: bool,
    state: &str,
    reward: f64,
    solved: bool,
) -> Event {
    let command = text.strip_prefix("### ").map(str::to_string);
    Event::Episode(EpisodeEvent::Turn {
        job: 0,
        episode,
        record: TurnRecord {
            turn: n,
            text: text.into(),
            command: if valid { command } else { None },
            valid,
            error: (!valid).then(|| "line 9 is out of range (the code has 5 lines)".to_string()),
            reward,
            logprob: Some(-2.5 * f64::from(n)),
            state: state.into(),
            solved,
            edited_line: valid.then_some(5),
        },
    })
}

/// One episode: an invalid command, the fix, EXIT.
pub fn episode(id: u64) -> Vec<Event> {
    vec![
        Event::Episode(EpisodeEvent::EpisodeStarted {
            job: 0,
            episode: id,
            task_id: format!("coe/gcd#{id}"),
            state: GCD_BUGGY.into(),
        }),
        turn(id, 1, "### DELL 9", false, GCD_INVALID, -0.5, false),
        turn(
            id,
            2,
            "### REPW 5 >>>a % b, b >>>b, a % b",
            true,
            GCD_FIXED,
            1.0,
            true,
        ),
        turn(id, 3, "### EXIT", true, GCD_FIXED, 0.0, true),
        Event::Episode(EpisodeEvent::EpisodeFinished {
            job: 0,
            episode: id,
            solved: true,
            turns: 3,
            ret: 0.5,
            infra_error: false,
        }),
    ]
}

/// A run: started, 20 steps of train and eval metrics, two episodes, a checkpoint.
pub fn run_events() -> Vec<Event> {
    let mut out = vec![started(0)];
    for step in 1..=20 {
        out.push(metric(step, "train"));
        if step % 5 == 0 {
            out.push(metric(step, "eval"));
        }
    }
    out.extend(episode(1));
    out.extend(episode(2));
    out.push(Event::Run(RunEvent::Checkpoint {
        job: 0,
        step: 20,
        path: "runs/smoke-rl/checkpoints/step-000020".into(),
    }));
    out
}

/// A message of run `run`'s tail reader.
pub fn follow_msg(run: u64, msg: FollowMsg) -> Msg {
    Msg::Follow(RunFollowMsg { run, msg })
}

/// The id of the run shown, following runs/smoke-rl first when no run is followed.
pub fn shown_run(state: &mut AppState) -> u64 {
    if let Some(r) = state.monitor.current_run() {
        return r.id;
    }
    coe::tui::update::monitor::add_run(state, PathBuf::from("runs/smoke-rl")).unwrap()
}

/// Feeds events to run `run` as its tail reader would.
pub fn ingest_run(state: &mut AppState, run: u64, events: Vec<Event>) {
    let dir = state
        .monitor
        .runs
        .iter()
        .find(|r| r.id == run)
        .map(|r| r.dir.clone())
        .unwrap_or_default();
    update(
        state,
        follow_msg(
            run,
            FollowMsg::Opened {
                path: dir.join("events.jsonl"),
            },
        ),
    );
    update(state, follow_msg(run, FollowMsg::Events(events)));
}

/// Feeds events to the run shown (runs/smoke-rl when none is followed yet).
pub fn ingest(state: &mut AppState, events: Vec<Event>) {
    let run = shown_run(state);
    ingest_run(state, run, events);
}

/// Events of a run named `name` with `steps` train metrics whose loss is offset by `offset`.
pub fn named_run(name: &str, steps: u64, offset: f64) -> Vec<Event> {
    let mut out = vec![started(0)];
    if let Some(Event::Run(RunEvent::RunStarted(s))) = out.first_mut() {
        s.run = name.into();
    }
    for step in 1..=steps {
        if let Event::Run(RunEvent::Metric(mut m)) = metric(step, "train") {
            m.loss = m.loss.map(|l| l + offset);
            m.tokens_per_s = Some(100.0 * (1.0 + offset));
            m.elapsed_s = Some(step as f64);
            out.push(Event::Run(RunEvent::Metric(m)));
        }
    }
    out
}

/// The results fixtures: CoE with saved episodes (browsed), CoT without.
pub fn results_state() -> AppState {
    let mut s = state();
    s.mode = coe::tui::state::Mode::Results;
    let files = ["coe-sft", "cot-sft"]
        .iter()
        .map(|d| {
            coe::tui::results_io::load_results(
                &root()
                    .join("tests/fixtures/results")
                    .join(d)
                    .join("results.json"),
            )
            .unwrap()
        })
        .collect();
    coe::tui::update::results::add_files(&mut s, files);
    s
}
