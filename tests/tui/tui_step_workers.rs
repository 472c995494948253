//! A workbench that only follows a run must cost next to nothing: step mode's
//! workers start the first time step mode is shown, and proposals are asked for
//! only while step mode shows their task. Driven through `update`, effects
//! checked as data (the end-to-end check against real processes is in tui_e2e).
use crate::tui_support::*;
use coe::tui::msg::{Effect, EnvReply, EnvRequest, ModelReply, Msg};
use coe::tui::state::{AppState, Mode, ModelStatus};
use coe::tui::update::update;

/// A workbench opened with `--follow` (monitor mode) that would load `tiny` in step mode.
fn following() -> AppState {
    let mut s = state();
    s.mode = Mode::Monitor;
    s.step.model_spec = Some("tiny".into());
    s
}

fn ready() -> Msg {
    Msg::Model(ModelReply::Ready {
        name: "tiny".into(),
        device: "cpu".into(),
        load_s: 0.1,
    })
}

fn is_propose(fx: &[Effect]) -> bool {
    matches!(fx, [Effect::Model(_)])
}

#[test]
fn following_a_run_starts_no_worker_until_step_mode_is_shown() {
    let mut s = following();
    let mut fx = Vec::new();
    let run = shown_run(&mut s);
    for e in run_events() {
        fx.extend(update(
            &mut s,
            follow_msg(run, coe::tui::msg::FollowMsg::Events(vec![e])),
        ));
    }
    fx.extend(update(&mut s, Msg::Tick { unix: 1.0 }));
    fx.extend(press(&mut s, &["3", "1", "j", "k"]));
    assert!(fx.is_empty(), "monitor and config mode asked for {fx:?}");
    assert!(!s.step.workers_started);
    assert_eq!(s.step.model, ModelStatus::Off);

    let fx = press(&mut s, &["2"]);
    let [
        Effect::StartStepWorkers { model: true },
        Effect::Env(EnvRequest::Open { episode: 1, .. }),
    ] = fx.as_slice()
    else {
        panic!("{fx:?}");
    };
    // The status bar says the model is loading from the first frame in step mode.
    assert_eq!(s.step.model, ModelStatus::Loading("tiny".into()));
    // Leaving and coming back starts nothing twice and reopens nothing.
    assert!(press(&mut s, &["1", "2"]).is_empty());
}

#[test]
fn no_model_still_starts_the_sandbox_lazily_and_never_a_model() {
    let mut s = following();
    s.step.model_spec = None;
    let fx = press(&mut s, &["tab"]);
    assert!(matches!(
        fx.as_slice(),
        [
            Effect::StartStepWorkers { model: false },
            Effect::Env(EnvRequest::Open { .. })
        ]
    ));
    assert_eq!(s.step.model, ModelStatus::Off);
}

#[test]
fn proposals_are_sampled_only_while_step_mode_shows_their_task() {
    let mut s = following();
    press(&mut s, &["2"]);
    let opened = |ep| {
        Msg::Env(EnvReply::Opened {
            episode: ep,
            snapshot: snapshot("gcd", GCD_BUGGY, 0),
        })
    };
    // The task opens, the user goes back to monitor before the model is ready.
    update(&mut s, opened(1));
    assert!(press(&mut s, &["1"]).is_empty());
    assert!(
        update(&mut s, ready()).is_empty(),
        "sampled for a hidden task"
    );
    assert!(!s.step.proposing);

    // Back in step mode: the task on screen gets its proposals.
    assert!(is_propose(&press(&mut s, &["2"])));
    assert!(s.step.proposing);
    // Leaving cancels what is queued; a turn finishing meanwhile asks for nothing.
    assert!(matches!(
        press(&mut s, &["1"]).as_slice(),
        [Effect::CancelProposals]
    ));
    assert!(!s.step.proposing);
    let fx = update(
        &mut s,
        Msg::Env(EnvReply::Undone {
            episode: 1,
            snapshot: snapshot("gcd", GCD_BUGGY, 0),
        }),
    );
    assert!(fx.is_empty(), "{fx:?}");

    // Opening another task while sampling cancels the old task's requests.
    assert!(is_propose(&press(&mut s, &["2"])));
    let fx = press(&mut s, &["]"]);
    assert!(
        matches!(
            fx.as_slice(),
            [
                Effect::CancelProposals,
                Effect::Env(EnvRequest::Open { episode: 2, .. })
            ]
        ),
        "{fx:?}"
    );
}

/// Choosing a run's adapter replaces step mode's model worker: the new worker loads
/// the tiny fixture with the adapter (and names both), tagged with its new id.
#[test]
fn a_chosen_adapter_restarts_the_model_worker_which_loads_it() {
    use coe::model::loader::load_model;
    use coe::model::lora::LoraConfig;
    use coe::tui::effects::EffectRunner;
    use std::time::Duration;
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf/tiny_llama.gguf")
        .display()
        .to_string();
    let lora = LoraConfig {
        r: 2,
        alpha: 4.0,
        dropout: 0.0,
        targets: vec!["all-linear".into()],
    };
    let run = tempfile::tempdir().unwrap();
    let adapter = run.path().join("adapter");
    let trained = load_model(&fixture, tch::Device::Cpu, tch::Kind::Float, Some(&lora)).unwrap();
    coe::model::safetensors_io::save_adapter(&trained.model, &adapter, &fixture).unwrap();
    // The picker's scanner finds it from the run's folder.
    assert_eq!(
        coe::train::setup::resolve_adapter(&run.path().display().to_string()).unwrap(),
        adapter
    );

    let mut cfg = coe::config::Config::default();
    cfg.model.path = fixture.clone();
    cfg.model.device = "cpu".into();
    cfg.model.threads = 1;
    let mut rt = EffectRunner::new();
    rt.step_config = Some(cfg);
    rt.use_adapter(&adapter, Some(3)).unwrap();
    assert_eq!(
        rt.step_config.as_ref().unwrap().model.adapter.as_deref(),
        Some(adapter.display().to_string().as_str())
    );
    let mut replies = Vec::new();
    while let Ok(m) = rt.worker_rx.recv_timeout(Duration::from_secs(120)) {
        let Msg::ModelOf { worker, reply } = m else {
            panic!("{m:?}")
        };
        assert_eq!(worker, 3);
        let done = !matches!(reply, ModelReply::Loading { .. });
        replies.push(reply);
        if done {
            break;
        }
    }
    let [ModelReply::Loading { .. }, ModelReply::Ready { name, .. }] = replies.as_slice() else {
        panic!("{replies:?}")
    };
    assert_eq!(name, &format!("{fixture} + {}", adapter.display()));
}
