//! Reducer tests: `update(&mut AppState, Msg)` driven with key presses and
//! worker replies, no terminal and no threads; effects are checked as data.

use crate::tui_support::*;
use coe::policy::Proposal;
use coe::tui::msg::{Effect, EnvReply, EnvRequest, ModelReply, Msg};
use coe::tui::state::run_view::PlotKind;
use coe::tui::state::{Mode, ModelStatus, Popup};
use coe::tui::update::update;

#[test]
fn following_shows_the_newest_turn_and_scrubbing_stops_following() {
    let mut s = state();
    s.mode = Mode::Monitor;
    ingest(&mut s, run_events());
    assert_eq!(s.monitor.current_run().unwrap().run.episodes.len(), 2);
    assert_eq!(s.monitor.selected, Some((0, 2)));
    assert_eq!(s.monitor.turn, 3);
    s.prepare_frame();
    assert_eq!(s.monitor.code.feedback, "All tests passed.");
    assert_eq!(s.monitor.code.edited, Some(5));

    press(&mut s, &["h", "h"]);
    assert!(!s.monitor.follow_latest);
    assert_eq!(s.monitor.turn, 1);
    s.prepare_frame();
    assert!(
        s.monitor.code.feedback.starts_with("Invalid command"),
        "{}",
        s.monitor.code.feedback
    );
    assert_eq!(s.monitor.code.edited, None);

    // New events do not move a scrubbed view …
    ingest(&mut s, episode(3));
    assert_eq!(s.monitor.selected, Some((0, 2)));
    // … until following is switched back on.
    press(&mut s, &["f"]);
    assert_eq!(s.monitor.selected, Some((0, 3)));
    press(&mut s, &["k"]);
    assert_eq!(s.monitor.selected, Some((0, 2)));
    press(&mut s, &["g"]);
    assert_eq!(s.monitor.selected, Some((0, 1)));
    press(&mut s, &["e"]);
    assert_eq!(s.popup, Some(Popup::Episodes { selected: 0 }));
    press(&mut s, &["j", "enter"]);
    assert_eq!((s.popup.clone(), s.monitor.selected), (None, Some((0, 2))));
    assert!(
        s.log
            .iter()
            .any(|l| l.text.contains("checkpoint at step 20"))
    );
}

#[test]
fn a_resume_drops_plot_points_past_its_start_step() {
    let mut s = state();
    let mut events = vec![started(0)];
    events.extend((1..=10).map(|i| metric(i, "train")));
    events.push(started(5));
    events.push(metric(6, "train"));
    ingest(&mut s, events);
    let run = &s.monitor.current_run().unwrap().run;
    assert_eq!(run.resumes, 1);
    let loss = &run.plots.get(PlotKind::Loss).unwrap()[0];
    let steps: Vec<f64> = loss.points().iter().map(|p| p.0).collect();
    assert_eq!(steps, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert!(
        s.log
            .iter()
            .any(|l| l.text == "run smoke-rl resumed at step 5")
    );
    s.mode = Mode::Monitor;
    press(&mut s, &["p"]);
    assert_eq!(s.monitor.plot, Some(PlotKind::Reward));
}

#[test]
fn a_typed_command_goes_to_the_environment_and_stale_replies_are_dropped() {
    let mut s = state();
    assert_eq!(s.mode, Mode::Step);
    let fx = press(&mut s, &["]"]);
    let [Effect::Env(EnvRequest::Open { episode: ep, task })] = fx.as_slice() else {
        panic!("{fx:?}");
    };
    assert_eq!((task.id.as_str(), *ep), ("add", 1));
    let fx = press(&mut s, &["["]);
    assert!(matches!(
        fx.as_slice(),
        [Effect::Env(EnvRequest::Open { episode: 2, .. })]
    ));
    // The reply to the first open is stale now.
    update(
        &mut s,
        Msg::Env(EnvReply::Opened {
            episode: 1,
            snapshot: snapshot("add", "L1 x\n***\nx", 0),
        }),
    );
    assert!(s.step.snapshot.is_none());
    update(
        &mut s,
        Msg::Env(EnvReply::Opened {
            episode: 2,
            snapshot: snapshot("gcd", GCD_BUGGY, 0),
        }),
    );
    assert_eq!(
        s.step.snapshot.as_ref().map(|x| x.task_id.as_str()),
        Some("gcd")
    );

    press(&mut s, &["i"]);
    type_text(&mut s, "REPW 5 >>>a % b, b >>>b, a % b");
    assert_eq!(s.step.input.as_ref().map(|i| i.text.len()), Some(30));
    let fx = press(&mut s, &["enter"]);
    let [
        Effect::Env(EnvRequest::Apply {
            episode: 2,
            text,
            person: true,
            logprob: None,
        }),
    ] = fx.as_slice()
    else {
        panic!("{fx:?}");
    };
    assert_eq!(text, "REPW 5 >>>a % b, b >>>b, a % b");
    assert!(s.step.input.is_none());
    assert!(s.step.busy.is_some());
    // A second command while busy is refused, not queued.
    press(&mut s, &["i"]);
    type_text(&mut s, "EXIT");
    assert!(press(&mut s, &["enter"]).is_empty());

    let Some(coe::protocol::Event::Episode(coe::protocol::EpisodeEvent::Turn { record, .. })) =
        episode(2).into_iter().nth(2)
    else {
        panic!()
    };
    update(
        &mut s,
        Msg::Env(EnvReply::Stepped {
            episode: 2,
            record: Box::new(record),
            snapshot: snapshot("gcd", GCD_FIXED, 1),
        }),
    );
    assert_eq!(s.step.turns.len(), 1);
    assert_eq!(s.step.history.len(), 1);
    assert_eq!(s.step.history[0].0, "obs 0");
    assert_eq!(
        s.step.history[0].1.text,
        "### REPW 5 >>>a % b, b >>>b, a % b"
    );
    assert!(s.step.busy.is_none());
    let fx = press(&mut s, &["u"]);
    assert!(matches!(
        fx.as_slice(),
        [Effect::Env(EnvRequest::Undo { episode: 2 })]
    ));
}

#[test]
fn proposals_are_requested_ranked_and_accepted() {
    let mut s = state();
    update(
        &mut s,
        Msg::Model(ModelReply::Loading {
            spec: "default".into(),
        }),
    );
    assert_eq!(s.step.model, ModelStatus::Loading("default".into()));
    // No proposals while loading: the open goes through alone.
    let fx = press(&mut s, &["]"]);
    assert_eq!(fx.len(), 1);
    update(
        &mut s,
        Msg::Env(EnvReply::Opened {
            episode: 1,
            snapshot: snapshot("add", GCD_BUGGY, 0),
        }),
    );
    let fx = update(
        &mut s,
        Msg::Model(ModelReply::Ready {
            name: "m".into(),
            device: "cpu".into(),
            load_s: 1.0,
        }),
    );
    let [Effect::Model(req)] = fx.as_slice() else {
        panic!("{fx:?}")
    };
    assert_eq!(
        (req.episode, req.turn, req.n, req.task.id.as_str()),
        (1, 0, 3, "add")
    );
    let p = |text: &str, lp: f32| Proposal {
        text: text.into(),
        token_ids: vec![1],
        logprobs: vec![lp],
        person: false,
        failed: None,
    };
    let props = vec![
        p("### DELL 1", -1.0),
        p("### EXIT", -0.5),
        p("### DELL 1", -1.0),
    ];
    // Stale turn: dropped.
    update(
        &mut s,
        Msg::Model(ModelReply::Proposals {
            episode: 1,
            turn: 4,
            proposals: props.clone(),
            elapsed_s: 0.1,
        }),
    );
    assert!(s.step.proposals.is_empty());
    update(
        &mut s,
        Msg::Model(ModelReply::Proposals {
            episode: 1,
            turn: 0,
            proposals: props,
            elapsed_s: 0.1,
        }),
    );
    let shown: Vec<(&str, usize)> = s
        .step
        .proposals
        .iter()
        .map(|(p, n)| (p.text.as_str(), *n))
        .collect();
    assert_eq!(shown, vec![("### DELL 1", 2), ("### EXIT", 1)]);
    let fx = press(&mut s, &["j", "enter"]);
    let [
        Effect::Env(EnvRequest::Apply {
            text,
            person: false,
            logprob: Some(lp),
            ..
        }),
    ] = fx.as_slice()
    else {
        panic!("{fx:?}");
    };
    assert_eq!((text.as_str(), *lp), ("### EXIT", -0.5));
    // `e` puts the selected proposal on the command line without the prefix.
    s.step.busy = None;
    press(&mut s, &["e"]);
    assert_eq!(s.step.input.as_ref().map(|i| i.text.as_str()), Some("EXIT"));
}

#[test]
fn config_edits_are_validated_at_their_line_and_bad_text_is_not_saved() {
    let mut s = state();
    press(&mut s, &["3"]);
    assert_eq!(s.mode, Mode::Config);
    assert!(s.config.error.is_none(), "{:?}", s.config.error);
    let row = s
        .config
        .editor
        .lines
        .iter()
        .position(|l| l.contains("max_turns"))
        .unwrap();
    s.config.editor.goto_row(row);
    press(&mut s, &["i", "end", "backspace", "backspace", "backspace"]);
    type_text(&mut s, "0,");
    let (line, msg) = s
        .config
        .error
        .clone()
        .expect("max_turns: 0 must be an error");
    assert_eq!(line, Some(row + 1));
    assert!(
        msg.contains("env.max_turns = 0: must lie in 1..=100"),
        "{msg}"
    );
    assert!(
        press(&mut s, &["ctrl-s"]).is_empty(),
        "an invalid config must not be saved"
    );
    press(&mut s, &["backspace", "backspace"]);
    type_text(&mut s, "12,");
    assert!(s.config.error.is_none());
    let fx = press(&mut s, &["ctrl-s"]);
    assert!(
        matches!(&fx[..], [Effect::SaveConfig { text, .. }] if text.contains("max_turns: 12,"))
    );
    press(&mut s, &["esc"]);
    let fx = press(&mut s, &["S"]);
    let [Effect::StartJob { run_dir, .. }] = fx.as_slice() else {
        panic!("{fx:?}")
    };
    assert_eq!(run_dir, &std::path::PathBuf::from("runs/default"));
    assert_eq!(s.mode, Mode::Monitor);
    assert_eq!(s.monitor.dir(), Some(std::path::Path::new("runs/default")));
    assert!(s.job.as_ref().is_some_and(|j| j.running));
    press(&mut s, &["3"]);
    assert!(press(&mut s, &["S"]).is_empty(), "one job at a time");
    assert!(matches!(
        press(&mut s, &["X"]).as_slice(),
        [Effect::CancelJob]
    ));
}

#[test]
fn help_opens_and_closes_without_quitting_and_q_quits() {
    let mut s = state();
    press(&mut s, &["?"]);
    assert_eq!(s.popup, Some(Popup::Help { scroll: 0 }));
    press(&mut s, &["j", "j"]);
    assert_eq!(s.popup, Some(Popup::Help { scroll: 2 }));
    press(&mut s, &["q"]);
    assert_eq!((s.popup.clone(), s.quit), (None, false));
    // Typing `q` on the command line is text, not quit.
    press(&mut s, &["i", "q"]);
    assert!(!s.quit);
    press(&mut s, &["esc", "q"]);
    assert!(s.quit);
}

#[test]
fn mode_keys_cycle_and_data_mode_loads_its_first_file() {
    let mut s = state();
    s.data.files = vec![root().join("tests/fixtures/tasks_small.jsonl")];
    let fx = press(&mut s, &["tab", "tab"]);
    assert_eq!(s.mode, Mode::Data);
    assert!(matches!(fx.as_slice(), [Effect::LoadData(_)]));
    press(&mut s, &["backtab"]);
    assert_eq!(s.mode, Mode::Config);
}

#[test]
fn several_runs_are_overlaid_and_a_dropped_run_is_ignored() {
    use coe::tui::state::followed::XAxis;
    use coe::tui::update::monitor::{add_run, unfollow};
    let mut s = state();
    s.mode = Mode::Monitor;
    let a = add_run(&mut s, "runs/coe".into()).unwrap();
    let b = add_run(&mut s, "runs/cot".into()).unwrap();
    assert_eq!(add_run(&mut s, "runs/coe".into()), None, "followed already");
    ingest_run(&mut s, a, named_run("coe", 10, 0.0));
    ingest_run(&mut s, b, named_run("cot", 10, 1.0));
    ingest_run(&mut s, b, episode(7));
    // The run added last is shown; `[` and `]` switch the episode panes.
    assert_eq!(s.monitor.current_run().unwrap().name(), "cot");
    assert_eq!(s.monitor.selected, Some((0, 7)));
    press(&mut s, &["]"]);
    assert_eq!(s.monitor.current_run().unwrap().name(), "coe");
    assert_eq!(s.monitor.selected, None, "coe has no episodes");
    press(&mut s, &["["]);
    assert_eq!(s.monitor.selected, Some((0, 7)));
    // Trained tokens are estimated from tokens_per_s × Δelapsed: 100 and 200 tokens a second.
    let coe_run = &s.monitor.runs[0].run;
    assert_eq!(coe_run.tokens_at(10.0), Some(1000.0));
    assert_eq!(coe_run.tokens_at(2.5), Some(250.0));
    assert_eq!(s.monitor.runs[1].run.tokens_at(10.0), Some(2000.0));
    press(&mut s, &["x"]);
    assert_eq!(s.monitor.x_axis, XAxis::Tokens);
    // Messages of a run no longer followed are dropped.
    let mut fx = Vec::new();
    unfollow(&mut s, b, &mut fx);
    assert!(matches!(fx.as_slice(), [Effect::Unfollow(r)] if *r == b));
    ingest_run(&mut s, b, episode(8));
    assert_eq!(s.monitor.runs.len(), 1);
    assert_eq!(s.monitor.current_run().unwrap().run.episodes.len(), 0);
}

#[test]
fn a_trainer_written_token_count_wins_over_the_estimate() {
    let mut s = state();
    let mut events = named_run("sft", 2, 0.0);
    if let Some(coe::protocol::Event::Run(coe::protocol::RunEvent::Metric(m))) = events.last_mut() {
        m.tokens = Some(5000);
    }
    ingest(&mut s, events);
    let run = &s.monitor.current_run().unwrap().run;
    assert_eq!(run.tokens_at(1.0), Some(100.0));
    assert_eq!(run.tokens_at(2.0), Some(5000.0));
}

#[test]
fn the_results_view_browses_tasks_and_scrubs_saved_episodes() {
    let mut s = results_state();
    let r = &s.results;
    assert_eq!(r.files.len(), 2);
    assert_eq!(r.files[0].episodes.len(), 4);
    assert!(r.files[1].episodes.is_empty());
    // The first task's first saved episode, at its last turn.
    assert_eq!(r.current_task().unwrap().id, "gcd");
    assert_eq!(r.turn, 3);
    s.prepare_frame();
    assert_eq!(s.results.code.feedback, "All tests passed.");
    press(&mut s, &["h", "h"]);
    assert_eq!(s.results.turn, 1);
    s.prepare_frame();
    assert!(s.results.code.feedback.starts_with("Invalid command"));
    press(&mut s, &["h"]);
    s.prepare_frame();
    assert!(s.results.code.feedback.contains("not saved"));
    // The next sample failed on an invalid command.
    press(&mut s, &["]"]);
    let ep = s.results.current_episode().unwrap();
    assert_eq!((ep.sample, ep.solved), (1, false));
    assert_eq!(ep.why_not(), "invalid command");
    press(&mut s, &["j"]);
    assert_eq!(s.results.current_task().unwrap().id, "lcm");
    assert_eq!(s.results.sample, 0);
    press(&mut s, &["n"]);
    assert_eq!(s.results.file, 1);
    assert!(s.results.current_episode().is_none());
    press(&mut s, &["]"]);
    assert!(
        s.log
            .iter()
            .any(|l| l.text == "no saved episodes for this task")
    );
}

#[test]
fn a_bad_results_file_says_which_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("results.json");
    std::fs::write(&p, "{\"method\": 3}").unwrap();
    let err = coe::tui::results_io::load_results(&p).unwrap_err();
    assert!(
        err.starts_with(&format!("{}: not a results.json: ", p.display())),
        "{err}"
    );
    std::fs::write(&p, "{\"method\": \"coe\"}").unwrap();
    std::fs::write(
        dir.path().join("episodes.jsonl"),
        "{\"task_id\": \"a\"}\nnot json\n",
    )
    .unwrap();
    let (f, bad) = coe::tui::results_io::load_results(&p).unwrap();
    assert_eq!((f.episodes.len(), bad), (1, 1));
}

#[test]
fn the_run_picker_lists_runs_and_enter_follows_or_stops_following() {
    use coe::protocol::workbench::RunSummary;
    let mut s = state();
    s.mode = Mode::Monitor;
    let fx = press(&mut s, &["o"]);
    assert!(matches!(fx.as_slice(), [Effect::ScanRuns(extra)] if extra.is_empty()));
    assert_eq!(s.popup, Some(Popup::Runs { selected: 0 }));
    let run = |name: &str| RunSummary {
        dir: format!("runs/{name}").into(),
        name: name.into(),
        kind: "sft".into(),
        status: "running".into(),
        ..RunSummary::default()
    };
    update(&mut s, Msg::Runs(vec![run("coe"), run("cot")]));
    let fx = press(&mut s, &["enter", "j", "enter"]);
    assert!(
        matches!(
            fx.as_slice(),
            [Effect::Follow { run: 0, .. }, Effect::Follow { run: 1, .. }]
        ),
        "{fx:?}"
    );
    assert_eq!(s.monitor.runs.len(), 2);
    // Ticks refresh the list while the picker is open.
    assert!(matches!(
        update(&mut s, Msg::Tick { unix: 1.0 }).as_slice(),
        [Effect::ScanRuns(extra)] if extra.len() == 2
    ));
    let fx = press(&mut s, &["enter"]);
    assert!(matches!(fx.as_slice(), [Effect::Unfollow(1)]), "{fx:?}");
    assert_eq!(s.monitor.runs.len(), 1);
    press(&mut s, &["esc"]);
    assert!(update(&mut s, Msg::Tick { unix: 2.0 }).is_empty());
}

#[test]
fn the_run_scanner_reads_status_and_latest_metrics_from_events() {
    use coe::runtime::run_scan::scan;
    let root = tempfile::tempdir().unwrap();
    let write = |name: &str, events: Vec<coe::protocol::Event>| {
        let d = root.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let text: String = events.iter().map(|e| e.to_json_line() + "\n").collect();
        std::fs::write(d.join("events.jsonl"), text).unwrap();
    };
    write("b-running", named_run("b-running", 5, 0.0));
    let mut done = run_events();
    done.push(coe::protocol::Event::Run(
        coe::protocol::RunEvent::RunFinished {
            job: 0,
            status: coe::protocol::RunStatus::Completed,
            step: 20,
            error: None,
        },
    ));
    write("a-done", done);
    std::fs::create_dir_all(root.path().join("not-a-run")).unwrap();
    let now = coe::tui::event_loop::unix_now();
    let list = scan(root.path(), &[], now);
    let got: Vec<(&str, &str, &str, u64)> = list
        .iter()
        .map(|r| (r.name.as_str(), r.kind.as_str(), r.status.as_str(), r.step))
        .collect();
    assert_eq!(
        got,
        vec![
            ("smoke-rl", "rl", "completed", 20),
            ("b-running", "rl", "running", 5)
        ]
    );
    assert!(list[0].solve_rate.is_some() && list[1].loss.is_some());
    // Silent for longer than SILENT_S without run_finished: interrupted.
    let later = scan(root.path(), &[], now + 3600.0);
    assert_eq!(later[1].status, "interrupted");
}

/// The status bar's text, as drawn.
fn status_text(s: &coe::tui::state::AppState) -> String {
    use ratatui::widgets::Widget;
    let area = ratatui::layout::Rect::new(0, 0, 200, 1);
    let mut buf = ratatui::buffer::Buffer::empty(area);
    coe::tui::view::StatusBar::new(s).render(area, &mut buf);
    buf.content().iter().map(|c| c.symbol()).collect()
}

#[test]
fn choosing_a_runs_adapter_in_the_picker_restarts_the_model_worker_with_it() {
    use coe::protocol::workbench::RunSummary;
    use std::path::PathBuf;
    let mut s = state();
    s.mode = Mode::Monitor;
    s.step.model_spec = Some("tiny".into());
    let run = |name: &str, adapter: Option<&str>| RunSummary {
        dir: format!("runs/{name}").into(),
        name: name.into(),
        kind: "sft".into(),
        status: "completed".into(),
        adapter: adapter.map(PathBuf::from),
        ..RunSummary::default()
    };
    let runs = vec![
        run("fresh", None),
        run("coe-sft", Some("runs/coe-sft/adapter")),
        run("coe-rl", Some("runs/coe-rl/checkpoints/step-00000020")),
    ];
    // Before step mode ever ran: the choice waits for its first start (no worker yet).
    press(&mut s, &["o"]);
    update(&mut s, Msg::Runs(runs.clone()));
    let fx = press(&mut s, &["j", "a"]);
    let [
        Effect::UseAdapter {
            adapter,
            restart: None,
        },
    ] = fx.as_slice()
    else {
        panic!("{fx:?}")
    };
    assert_eq!(adapter, &PathBuf::from("runs/coe-sft/adapter"));
    assert_eq!(s.popup, None);
    assert_eq!(s.step.adapter.as_deref(), Some("runs/coe-sft/adapter"));

    // Step mode shown: its first model worker (id 0) loads, with that adapter.
    let fx = press(&mut s, &["2"]);
    assert!(matches!(
        fx.first(),
        Some(Effect::StartStepWorkers { model: true })
    ));
    assert!(status_text(&s).contains("model loading (tiny) · adapter runs/coe-sft/adapter"));
    update(
        &mut s,
        Msg::ModelOf {
            worker: 0,
            reply: ModelReply::Ready {
                name: "tiny + runs/coe-sft/adapter".into(),
                device: "cpu".into(),
                load_s: 0.1,
            },
        },
    );
    assert!(
        status_text(&s).contains("model tiny · adapter runs/coe-sft/adapter"),
        "{}",
        status_text(&s)
    );

    // A run with no adapter: a warning, and the picker stays open.
    press(&mut s, &["1", "o"]);
    update(&mut s, Msg::Runs(runs));
    assert!(press(&mut s, &["a"]).is_empty());
    assert!(matches!(s.popup, Some(Popup::Runs { .. })));
    assert!(
        s.log
            .iter()
            .any(|l| l.text.contains("fresh: no adapter yet"))
    );

    // Another run's checkpoint: the running worker is replaced by worker 1.
    let fx = press(&mut s, &["G", "a"]);
    let [
        Effect::UseAdapter {
            adapter,
            restart: Some(1),
        },
    ] = fx.as_slice()
    else {
        panic!("{fx:?}")
    };
    assert_eq!(
        adapter,
        &PathBuf::from("runs/coe-rl/checkpoints/step-00000020")
    );
    assert_eq!(s.step.model, ModelStatus::Loading("tiny".into()));
    assert!(
        s.log.iter().any(|l| {
            l.text == "step mode will use adapter runs/coe-rl/checkpoints/step-00000020"
        })
    );
    // The replaced worker's late replies are dropped; the new one's are taken.
    let ready = |name: &str| ModelReply::Ready {
        name: name.into(),
        device: "cpu".into(),
        load_s: 0.1,
    };
    update(
        &mut s,
        Msg::ModelOf {
            worker: 0,
            reply: ready("tiny + runs/coe-sft/adapter"),
        },
    );
    assert_eq!(s.step.model, ModelStatus::Loading("tiny".into()));
    update(
        &mut s,
        Msg::ModelOf {
            worker: 1,
            reply: ready("tiny + runs/coe-rl/checkpoints/step-00000020"),
        },
    );
    assert!(matches!(s.step.model, ModelStatus::Ready { .. }));
    press(&mut s, &["2"]);
    assert!(
        status_text(&s).contains("model tiny · adapter runs/coe-rl/checkpoints/step-00000020"),
        "{}",
        status_text(&s)
    );
}
