//! Step mode: open a task, apply commands (the model's or typed), undo, rerun
//! the tests. The environment and the model run on their own threads; this
//! module only sends requests and applies replies tagged with the open episode,
//! dropping any for an episode or turn that is no longer current.
//!
//! Step mode costs nothing until it is shown: its workers start on first entry
//! (`on_enter`), and proposals are sampled only for the task on screen while step
//! mode is shown — leaving it, or opening another task, cancels the queued ones.
use crate::policy::Proposal;
use crate::tui::keymap::Action;
use crate::tui::msg::{Effect, EnvReply, EnvRequest, EnvSnapshot, ModelReply, ProposeRequest};
use crate::tui::state::editor::{Edit, LineInput};
use crate::tui::state::{AppState, Level, Mode, ModelStatus, Popup};
use crossterm::event::{KeyCode, KeyEvent};

/// Step mode is shown: start its workers the first time (the model loads in the
/// background), open the first task if none is open, or ask again for the
/// proposals that leaving step mode cancelled.
pub fn on_enter(state: &mut AppState, fx: &mut Vec<Effect>) {
    let s = &mut state.step;
    if !s.workers_started {
        s.workers_started = true;
        if let Some(spec) = &s.model_spec {
            s.model = ModelStatus::Loading(spec.clone());
        }
        fx.push(Effect::StartStepWorkers {
            model: s.model_spec.is_some(),
        });
    }
    if s.episode == 0 {
        if !s.tasks.is_empty() {
            open_task(state, 0, fx);
        }
    } else if !s.proposing && s.proposals.is_empty() {
        request_proposals(state, fx);
    }
}

/// Step mode's model uses `adapter` from now on: the model worker, if running,
/// is replaced by one that loads it (the old one's replies are dropped by id).
pub fn use_adapter(state: &mut AppState, adapter: std::path::PathBuf, fx: &mut Vec<Effect>) {
    let s = &mut state.step;
    s.adapter = Some(adapter.display().to_string());
    let restart = match (&s.model_spec, s.workers_started) {
        (Some(spec), true) => {
            s.model_worker += 1;
            s.model = ModelStatus::Loading(spec.clone());
            s.proposing = false;
            s.proposals.clear();
            s.selected = 0;
            Some(s.model_worker)
        }
        _ => None,
    };
    let off = s.model_spec.is_none();
    state.log(
        Level::Info,
        format!("step mode will use adapter {}", adapter.display()),
    );
    if off {
        state.log(Level::Warn, "the model is off (--no-model): no proposals");
    }
    fx.push(Effect::UseAdapter { adapter, restart });
}

/// Step mode is hidden: nobody is looking at proposals, so stop asking for them.
pub fn on_leave(state: &mut AppState, fx: &mut Vec<Effect>) {
    if state.step.proposing {
        state.step.proposing = false;
        fx.push(Effect::CancelProposals);
    }
}

/// Opens task `index` (clamped) as a fresh episode.
pub fn open_task(state: &mut AppState, index: usize, fx: &mut Vec<Effect>) {
    let s = &mut state.step;
    let Some(task) = s
        .tasks
        .get(index.min(s.tasks.len().saturating_sub(1)))
        .cloned()
    else {
        state.log(Level::Warn, "no tasks to open");
        return;
    };
    if s.proposing {
        fx.push(Effect::CancelProposals);
    }
    s.task_index = index.min(s.tasks.len() - 1);
    s.episode = s.next_episode;
    s.next_episode += 1;
    s.snapshot = None;
    s.turns.clear();
    s.history.clear();
    s.pending_reply = None;
    s.proposals.clear();
    s.selected = 0;
    s.proposing = false;
    s.input = None;
    s.code.clear();
    s.busy = Some(format!("opening {} (running its tests)", task.id));
    fx.push(Effect::Env(EnvRequest::Open {
        episode: s.episode,
        task: Box::new(task),
    }));
}

fn show(state: &mut AppState, snapshot: EnvSnapshot, edited: Option<usize>) {
    state.step.code.set(&snapshot.state, edited);
    state.step.snapshot = Some(snapshot);
    state.step.busy = None;
    state.step.proposals.clear();
    state.step.selected = 0;
}

pub fn handle_env(state: &mut AppState, reply: EnvReply, fx: &mut Vec<Effect>) {
    let current = state.step.episode;
    match reply {
        EnvReply::Ready {
            workers,
            protection,
        } => {
            state.step.sandbox = Some(format!("{workers} workers, {protection}"));
            state.log(
                Level::Info,
                format!("sandbox ready: {workers} workers ({protection})"),
            );
        }
        EnvReply::Opened { episode, snapshot } if episode == current => {
            state.log(Level::Info, format!("opened {}", snapshot.task_id));
            show(state, *snapshot, None);
            request_proposals(state, fx);
        }
        EnvReply::Stepped {
            episode,
            record,
            snapshot,
        } if episode == current => {
            let before = state.step.snapshot.as_ref().map(|s| s.observation.clone());
            let reply = state.step.pending_reply.take().unwrap_or_else(|| Proposal {
                text: record.text.clone(),
                person: true,
                failed: None,
                ..Proposal::default()
            });
            if let Some(obs) = before {
                state.step.history.push((obs, reply));
            }
            let verdict = if !record.valid {
                format!("invalid: {}", record.error.as_deref().unwrap_or("?"))
            } else if record.solved {
                "solved".into()
            } else {
                "applied".into()
            };
            state.log(
                if record.valid {
                    Level::Info
                } else {
                    Level::Warn
                },
                format!(
                    "turn {}: {} — {verdict}, reward {:+}",
                    record.turn, record.text, record.reward
                ),
            );
            let edited = record.edited_line;
            state.step.turns.push(*record);
            let done = snapshot.done;
            show(state, *snapshot, edited);
            if done {
                state.log(
                    Level::Info,
                    "episode over (u undoes the last turn, t picks another task)",
                );
            } else {
                request_proposals(state, fx);
            }
        }
        EnvReply::Undone { episode, snapshot } if episode == current => {
            state.step.turns.pop();
            state.step.history.pop();
            let edited = state.step.turns.last().and_then(|t| t.edited_line);
            show(state, *snapshot, edited);
            state.log(Level::Info, "undid the last turn");
            request_proposals(state, fx);
        }
        EnvReply::Tested { episode, report } if episode == current => {
            state.step.busy = None;
            let line = match &report.outcome {
                crate::protocol::run::RunOutcome::SyntaxError { line, message } => {
                    format!("tests: syntax error at L{line}: {message}")
                }
                crate::protocol::run::RunOutcome::Tests { tests } => format!(
                    "tests: {}/{} passed in {:.0} ms",
                    tests.iter().filter(|t| t.passed()).count(),
                    tests.len(),
                    report.elapsed_ms
                ),
            };
            if let Some(s) = state.step.snapshot.as_mut() {
                s.report = Some(report);
            }
            state.log(Level::Info, line);
        }
        EnvReply::Failed { episode, message } if episode == current || episode == 0 => {
            state.step.busy = None;
            state.step.pending_reply = None;
            state.log(Level::Error, message);
        }
        // A reply about an episode that is no longer open.
        _ => {}
    }
}

/// Asks the model for the next command, when it is loaded, the episode is live
/// and step mode is on screen (sampling for a hidden task only takes CPU from a run).
pub fn request_proposals(state: &mut AppState, fx: &mut Vec<Effect>) {
    if state.mode != Mode::Step {
        return;
    }
    let s = &mut state.step;
    let (ModelStatus::Ready { .. }, Some(snap)) = (&s.model, &s.snapshot) else {
        return;
    };
    if snap.done {
        return;
    }
    let Some(task) = s.tasks.iter().find(|t| t.id == snap.task_id).cloned() else {
        return;
    };
    s.proposing = true;
    s.proposals.clear();
    fx.push(Effect::Model(ProposeRequest {
        episode: s.episode,
        turn: snap.turn,
        task: Box::new(task),
        code: snap.code.clone(),
        history: s.history.clone(),
        observation: snap.observation.clone(),
        n: s.samples,
    }));
}

pub fn handle_model(state: &mut AppState, reply: ModelReply, fx: &mut Vec<Effect>) {
    match reply {
        ModelReply::Loading { spec } => {
            state.log(
                Level::Info,
                format!("loading model {spec} in the background"),
            );
            state.step.model = ModelStatus::Loading(spec);
        }
        ModelReply::Ready {
            name,
            device,
            load_s,
        } => {
            state.log(
                Level::Info,
                format!("model {name} ready on {device} ({load_s:.1} s)"),
            );
            state.device = device.clone();
            state.step.model = ModelStatus::Ready { name, device };
            request_proposals(state, fx);
        }
        ModelReply::Unavailable { reason } => {
            state.log(Level::Warn, format!("no model proposals: {reason}"));
            state.step.model = ModelStatus::Unavailable(reason);
        }
        ModelReply::Proposals {
            episode,
            turn,
            proposals,
            elapsed_s,
        } => {
            let live = state.step.snapshot.as_ref().map(|s| s.turn);
            if episode != state.step.episode || live != Some(turn) {
                return;
            }
            state.step.proposing = false;
            state.step.proposals = rank(proposals);
            state.step.selected = 0;
            state.log(
                Level::Info,
                format!(
                    "{} proposal(s) in {elapsed_s:.1} s",
                    state.step.proposals.len()
                ),
            );
        }
        ModelReply::Failed {
            episode,
            turn: _,
            message,
        } => {
            if episode == state.step.episode {
                state.step.proposing = false;
            }
            state.log(Level::Error, format!("model: {message}"));
        }
    }
}

/// Distinct replies, most often sampled first, then by log-probability.
pub fn rank(proposals: Vec<Proposal>) -> Vec<(Proposal, usize)> {
    let mut out: Vec<(Proposal, usize)> = Vec::new();
    for p in proposals {
        match out.iter_mut().find(|(q, _)| q.text == p.text) {
            Some((_, n)) => *n += 1,
            None => out.push((p, 1)),
        }
    }
    out.sort_by(|(a, na), (b, nb)| {
        nb.cmp(na).then_with(|| {
            let la = a.logprob().unwrap_or(f64::NEG_INFINITY);
            let lb = b.logprob().unwrap_or(f64::NEG_INFINITY);
            lb.total_cmp(&la)
        })
    });
    out
}

/// Sends one turn to the environment, unless it is busy or the episode is over.
fn apply(state: &mut AppState, proposal: Proposal, fx: &mut Vec<Effect>) {
    let s = &mut state.step;
    let live = s.snapshot.as_ref().is_some_and(|snap| !snap.done);
    if s.busy.is_some() || !live {
        let why = if s.busy.is_some() {
            "busy; wait for the current run to finish"
        } else {
            "no live episode (t picks a task; u undoes the last turn)"
        };
        state.log(Level::Warn, format!("not applied: {why}"));
        return;
    }
    s.busy = Some(format!("applying {}", proposal.text));
    let logprob = proposal.logprob();
    let text = proposal.text.clone();
    let person = proposal.person;
    let mut reply = proposal;
    if reply.person && !reply.text.starts_with("### ") {
        // The model reads its own turns as `### <command>`; a typed turn joins its history the same way.
        reply.text = format!("### {}", reply.text.trim_start());
    }
    s.pending_reply = Some(reply);
    fx.push(Effect::Env(EnvRequest::Apply {
        episode: s.episode,
        text,
        person,
        logprob,
    }));
}

pub fn handle_input_key(state: &mut AppState, key: &KeyEvent, fx: &mut Vec<Effect>) {
    let Some(input) = state.step.input.as_mut() else {
        return;
    };
    match key.code {
        KeyCode::Esc => state.step.input = None,
        KeyCode::Enter => {
            let text = input.text.trim_end().to_string();
            state.step.input = None;
            if !text.is_empty() {
                let proposal = Proposal {
                    text,
                    person: true,
                    failed: None,
                    ..Proposal::default()
                };
                apply(state, proposal, fx);
            }
        }
        _ => {
            // Keys a line does not edit (up, tab, …) are simply ignored while typing.
            let _: Edit = input.handle_key(key);
        }
    }
}

pub fn handle_action(state: &mut AppState, action: Action, fx: &mut Vec<Effect>) {
    let n_tasks = state.step.tasks.len();
    let n_props = state.step.proposals.len();
    match action {
        Action::PickTask if n_tasks > 0 => {
            state.popup = Some(Popup::Tasks {
                selected: state.step.task_index,
            });
        }
        Action::PrevTask if n_tasks > 0 => {
            let i = (state.step.task_index + n_tasks - 1) % n_tasks;
            open_task(state, i, fx);
        }
        Action::NextTask if n_tasks > 0 => {
            let i = (state.step.task_index + 1) % n_tasks;
            open_task(state, i, fx);
        }
        Action::TypeCommand => state.step.input = Some(LineInput::default()),
        Action::AcceptProposal => match state.step.proposals.get(state.step.selected) {
            Some((p, _)) => {
                let p = p.clone();
                apply(state, p, fx);
            }
            None => state.log(Level::Info, "no proposal to accept; i types a command"),
        },
        Action::EditProposal => {
            let text = state
                .step
                .proposals
                .get(state.step.selected)
                .map(|(p, _)| p.text.strip_prefix("### ").unwrap_or(&p.text).to_string())
                .unwrap_or_default();
            state.step.input = Some(LineInput::with_text(&text));
        }
        Action::Undo if state.step.busy.is_none() && !state.step.turns.is_empty() => {
            state.step.busy = Some("undoing".into());
            fx.push(Effect::Env(EnvRequest::Undo {
                episode: state.step.episode,
            }));
        }
        Action::RunTests if state.step.busy.is_none() && state.step.snapshot.is_some() => {
            state.step.busy = Some("running the tests".into());
            fx.push(Effect::Env(EnvRequest::RunTests {
                episode: state.step.episode,
            }));
        }
        Action::Propose => match &state.step.model {
            ModelStatus::Ready { .. } => request_proposals(state, fx),
            other => {
                let why = match other {
                    ModelStatus::Loading(spec) => format!("the model {spec} is still loading"),
                    ModelStatus::Unavailable(r) => format!("no model: {r}"),
                    _ => "no model (started with --no-model)".into(),
                };
                state.log(Level::Info, why);
            }
        },
        Action::Up => state.step.selected = state.step.selected.saturating_sub(1),
        Action::Down => {
            state.step.selected = (state.step.selected + 1).min(n_props.saturating_sub(1))
        }
        Action::Top => state.step.selected = 0,
        Action::Bottom => state.step.selected = n_props.saturating_sub(1),
        _ => {}
    }
}
