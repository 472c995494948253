//! `insta` snapshots of every pane and mode, drawn on ratatui's `TestBackend`
//! at 80×24 (the smallest supported size) and a few at 120×36. The frames are
//! text only; colours are covered by the theme tests.

use crate::tui_support::*;
use coe::policy::Proposal;
use coe::protocol::run::{RunOutcome, RunReport, TestError, TestOutcome};
use coe::tui::msg::{DataRecord, EnvSnapshot, Msg};
use coe::tui::state::{AppState, Mode, ModelStatus, Popup};
use coe::tui::update::{data, update};
use coe::tui::view::render;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn draw(state: &mut AppState, w: u16, h: u16) -> String {
    state.prepare_frame();
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| render(f, state)).unwrap();
    t.backend().to_string()
}

fn monitor_state() -> AppState {
    let mut s = state();
    s.mode = Mode::Monitor;
    ingest(&mut s, run_events());
    s
}

#[test]
fn monitor_80x24() {
    insta::assert_snapshot!(draw(&mut monitor_state(), 80, 24));
}

#[test]
fn monitor_120x36_scrubbed_to_the_invalid_turn_plotting_reward() {
    let mut s = monitor_state();
    press(&mut s, &["h", "h", "p"]);
    insta::assert_snapshot!(draw(&mut s, 120, 36));
}

#[test]
fn monitor_waiting_for_a_run() {
    let mut s = state();
    s.mode = Mode::Monitor;
    let run = coe::tui::update::monitor::add_run(&mut s, "runs/x".into()).unwrap();
    update(
        &mut s,
        follow_msg(
            run,
            coe::tui::msg::FollowMsg::Waiting {
                path: "runs/x/events.jsonl".into(),
            },
        ),
    );
    insta::assert_snapshot!(draw(&mut s, 80, 24));
}

#[test]
fn episode_picker() {
    let mut s = monitor_state();
    s.popup = Some(Popup::Episodes { selected: 1 });
    insta::assert_snapshot!(draw(&mut s, 80, 24));
}

fn step_state() -> AppState {
    let mut s = state();
    s.step.episode = 1;
    s.step.sandbox = Some("1 workers, namespaces on".into());
    let failed = |msg: &str| TestOutcome::Failed {
        error: TestError {
            exc_type: "RecursionError".into(),
            message: msg.into(),
            line: Some(5),
        },
    };
    s.step.snapshot = Some(EnvSnapshot {
        task_id: "gcd".into(),
        state: GCD_BUGGY.into(),
        observation: String::new(),
        tests: vec![
            "assert gcd(35, 21) == 7".into(),
            "assert gcd(10, 0) == 10".into(),
            "assert gcd(7, 13) == 1".into(),
        ],
        report: Some(RunReport {
            outcome: RunOutcome::Tests {
                tests: vec![
                    failed("maximum recursion depth exceeded"),
                    TestOutcome::Passed,
                    failed("maximum recursion depth exceeded"),
                ],
            },
            output: String::new(),
            elapsed_ms: 12.0,
        }),
        turn: 0,
        done: false,
        solved: false,
        ret: 0.0,
        code: String::new(),
    });
    s.step.code.set(GCD_BUGGY, None);
    s.step.model = ModelStatus::Ready {
        name: "models/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
        device: "cpu".into(),
    };
    let p = |t: &str, lp: f32| Proposal {
        text: t.into(),
        token_ids: vec![1],
        logprobs: vec![lp],
        person: false,
        failed: None,
    };
    s.step.proposals = vec![
        (p("### REPW 5 >>>a % b, b >>>b, a % b", -3.2), 2),
        (p("### EXIT", -6.0), 1),
    ];
    s
}

#[test]
fn step_80x24_with_proposals() {
    insta::assert_snapshot!(draw(&mut step_state(), 80, 24));
}

#[test]
fn step_120x36_typing_a_command_after_a_turn() {
    let mut s = step_state();
    if let Some(coe::protocol::Event::Episode(coe::protocol::EpisodeEvent::Turn {
        record, ..
    })) = episode(1).into_iter().nth(1)
    {
        s.step.turns.push(record);
    }
    press(&mut s, &["i"]);
    type_text(&mut s, "REPL 5 >>>        return gcd(b, a % b)");
    insta::assert_snapshot!(draw(&mut s, 120, 36));
}

#[test]
fn step_model_loading_and_task_picker() {
    let mut s = step_state();
    s.step.proposals.clear();
    s.step.model = ModelStatus::Loading("default".into());
    insta::assert_snapshot!("step_model_loading", draw(&mut s, 80, 24));
    press(&mut s, &["t"]);
    insta::assert_snapshot!("task_picker", draw(&mut s, 80, 24));
}

#[test]
fn config_valid_and_with_an_error_at_its_line() {
    let mut s = state();
    press(&mut s, &["3"]);
    insta::assert_snapshot!("config_valid", draw(&mut s, 80, 24));
    let row = s
        .config
        .editor
        .lines
        .iter()
        .position(|l| l.contains("theme:"))
        .unwrap();
    s.config.editor.goto_row(row);
    press(&mut s, &["i", "end", "backspace", "backspace"]);
    type_text(&mut s, "x\",");
    insta::assert_snapshot!("config_error", draw(&mut s, 80, 24));
}

#[test]
fn data_mode_task_and_demo() {
    let mut s = state();
    s.mode = Mode::Data;
    s.data.files = vec!["tests/fixtures/tasks_small.jsonl".into()];
    let task = s.step.tasks[0].clone();
    let demo = coe::task::Demonstration {
        task: task.clone(),
        turns: vec![
            coe::task::DemoTurn {
                command: "REPW 5 >>>a % b, b >>>b, a % b".into(),
                state: GCD_FIXED.into(),
                reward: 1.0,
            },
            coe::task::DemoTurn {
                command: "EXIT".into(),
                state: GCD_FIXED.into(),
                reward: 0.0,
            },
        ],
    };
    update(
        &mut s,
        Msg::Data(coe::tui::msg::DataMsg::Loaded {
            path: "tests/fixtures/tasks_small.jsonl".into(),
            records: vec![
                DataRecord::Task(Box::new(task)),
                DataRecord::Demo(Box::new(demo)),
            ],
        }),
    );
    insta::assert_snapshot!("data_task", draw(&mut s, 80, 24));
    press(&mut s, &["j"]);
    data::refresh(&mut s);
    insta::assert_snapshot!("data_demo", draw(&mut s, 80, 24));
}

#[test]
fn help_popup_lists_bindings() {
    let mut s = state();
    press(&mut s, &["?"]);
    insta::assert_snapshot!("help_top", draw(&mut s, 80, 24));
    press(&mut s, &["G"]);
    insta::assert_snapshot!("help_bottom", draw(&mut s, 80, 24));
}

fn two_runs() -> AppState {
    use coe::tui::update::monitor::add_run;
    let mut s = state();
    s.mode = Mode::Monitor;
    let a = add_run(&mut s, "runs/coe-sft".into()).unwrap();
    let b = add_run(&mut s, "runs/cot-sft".into()).unwrap();
    ingest_run(&mut s, a, named_run("coe-sft", 20, 0.0));
    ingest_run(&mut s, b, named_run("cot-sft", 20, 0.5));
    ingest_run(&mut s, b, episode(1));
    s
}

#[test]
fn monitor_two_runs_overlaid_80x24() {
    insta::assert_snapshot!(draw(&mut two_runs(), 80, 24));
}

#[test]
fn monitor_two_runs_by_trained_tokens_120x36() {
    let mut s = two_runs();
    press(&mut s, &["x", "]"]);
    insta::assert_snapshot!(draw(&mut s, 120, 36));
}

#[test]
fn results_80x24_two_files_a_saved_episode() {
    insta::assert_snapshot!(draw(&mut results_state(), 80, 24));
}

#[test]
fn results_120x36_scrubbed_to_the_invalid_turn_of_the_second_sample() {
    let mut s = results_state();
    press(&mut s, &["]", "l"]);
    insta::assert_snapshot!(draw(&mut s, 120, 36));
}

#[test]
fn results_without_files() {
    let mut s = state();
    s.mode = Mode::Results;
    insta::assert_snapshot!(draw(&mut s, 80, 24));
}

#[test]
fn run_picker_80x24() {
    use coe::protocol::workbench::RunSummary;
    let mut s = two_runs();
    s.now = 1_795_000_100.0;
    let run = |name: &str, kind: &str, status: &str, step: u64| RunSummary {
        dir: format!("runs/{name}").into(),
        name: name.into(),
        kind: kind.into(),
        status: status.into(),
        step,
        loss: Some(0.5),
        reward: (kind == "rl").then_some(0.25),
        solve_rate: (kind == "rl").then_some(0.4),
        modified_unix: 1_795_000_000.0,
        has_results: status == "completed",
        adapter: None,
    };
    update(
        &mut s,
        Msg::Runs(vec![
            run("coe-sft", "sft", "running", 20),
            run("cot-sft", "sft", "running", 20),
            run("coe-rl", "rl", "completed", 200),
            run("direct-rl", "rl", "failed", 12),
        ]),
    );
    s.popup = Some(Popup::Runs { selected: 2 });
    insta::assert_snapshot!(draw(&mut s, 80, 24));
}
