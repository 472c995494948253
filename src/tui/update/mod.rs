//! `update(&mut AppState, Msg) -> Vec<Effect>`: all of the workbench's logic,
//! free of I/O and terminals so it is tested by feeding messages (STYLE 5).
//! Keys resolve in order: an active text field, then a popup, then the mode's
//! layer, then the global layer; what a shared motion means is up to the mode.
pub mod config;
pub mod data;
pub mod monitor;
pub mod results;
pub mod step;

use crate::tui::keymap::{Action, KeyChord, Layer};
use crate::tui::msg::{Effect, Msg};
use crate::tui::state::{AppState, Mode, Popup};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Applies one message; returns the work it asks for.
pub fn update(state: &mut AppState, msg: Msg) -> Vec<Effect> {
    let mut fx = Vec::new();
    match msg {
        Msg::Key(key) => handle_key(state, &key, &mut fx),
        Msg::Resize => {}
        Msg::Tick { unix } => {
            state.now = unix;
            // The picker refreshes as runs appear.
            if matches!(state.popup, Some(Popup::Runs { .. })) {
                fx.push(monitor::scan_runs(state));
            }
        }
        Msg::Runs(list) => state.monitor.picker = list,
        Msg::Follow(m) => monitor::handle_follow(state, m),
        Msg::Env(r) => step::handle_env(state, r, &mut fx),
        Msg::Model(r) => step::handle_model(state, r, &mut fx),
        Msg::ModelOf { worker, reply } => {
            if worker == state.step.model_worker {
                step::handle_model(state, reply, &mut fx);
            }
        }
        Msg::Job(j) => config::handle_job(state, j),
        Msg::Data(d) => data::handle_data(state, d),
        Msg::ConfigSaved(r) => config::handle_saved(state, r),
    }
    // Every message changes something on screen (if only the clock); drawing is rate-limited.
    state.dirty = true;
    fx
}

/// The key layer of a mode.
pub fn layer_of(mode: Mode) -> Layer {
    match mode {
        Mode::Monitor => Layer::Monitor,
        Mode::Step => Layer::Step,
        Mode::Config => Layer::Config,
        Mode::Data => Layer::Data,
        Mode::Results => Layer::Results,
    }
}

fn handle_key(state: &mut AppState, key: &KeyEvent, fx: &mut Vec<Effect>) {
    if key.kind == KeyEventKind::Release {
        return;
    }
    // Ctrl-C always leaves, even from a text field: the one key that must never be rebound away.
    if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
        state.quit = true;
        return;
    }
    if state.mode == Mode::Step && state.step.input.is_some() {
        step::handle_input_key(state, key, fx);
        return;
    }
    if state.mode == Mode::Config && state.config.editing {
        config::handle_edit_key(state, key, fx);
        return;
    }
    let chord = KeyChord::from_event(key);
    if state.popup.is_some() {
        let action = state
            .keymap
            .lookup(Layer::Popup, &chord)
            .or_else(|| state.keymap.lookup(Layer::Global, &chord));
        if let Some(a) = action {
            handle_popup(state, a, fx);
        }
        return;
    }
    let layer = layer_of(state.mode);
    if let Some(a) = state.keymap.lookup(layer, &chord) {
        handle_mode_action(state, a, fx);
    } else if let Some(a) = state.keymap.lookup(Layer::Global, &chord)
        && !handle_global(state, a, fx)
    {
        handle_mode_action(state, a, fx);
    }
}

fn handle_mode_action(state: &mut AppState, action: Action, fx: &mut Vec<Effect>) {
    match state.mode {
        Mode::Monitor => monitor::handle_action(state, action, fx),
        Mode::Step => step::handle_action(state, action, fx),
        Mode::Config => config::handle_action(state, action, fx),
        Mode::Data => data::handle_action(state, action, fx),
        Mode::Results => results::handle_action(state, action),
    }
}

/// Mode switches, help and quit; false for motions the mode interprets.
fn handle_global(state: &mut AppState, action: Action, fx: &mut Vec<Effect>) -> bool {
    let idx = Mode::ALL.iter().position(|&m| m == state.mode).unwrap_or(0);
    let n = Mode::ALL.len();
    let target = match action {
        Action::Quit => {
            state.quit = true;
            return true;
        }
        Action::Help => {
            state.popup = Some(Popup::Help { scroll: 0 });
            return true;
        }
        Action::ModeMonitor => Mode::Monitor,
        Action::ModeStep => Mode::Step,
        Action::ModeConfig => Mode::Config,
        Action::ModeData => Mode::Data,
        Action::ModeResults => Mode::Results,
        Action::NextMode => Mode::ALL
            .get((idx + 1) % n)
            .copied()
            .unwrap_or(Mode::Monitor),
        Action::PrevMode => Mode::ALL
            .get((idx + n - 1) % n)
            .copied()
            .unwrap_or(Mode::Monitor),
        _ => return false,
    };
    switch_mode(state, target, fx);
    true
}

pub fn switch_mode(state: &mut AppState, mode: Mode, fx: &mut Vec<Effect>) {
    let from = state.mode;
    state.mode = mode;
    if from == Mode::Step && mode != Mode::Step {
        step::on_leave(state, fx);
    }
    if mode == Mode::Step && from != Mode::Step {
        step::on_enter(state, fx);
    }
    if mode == Mode::Data {
        data::on_enter(state, fx);
    }
}

fn handle_popup(state: &mut AppState, action: Action, fx: &mut Vec<Effect>) {
    let Some(popup) = state.popup.clone() else {
        return;
    };
    let len = match &popup {
        Popup::Help { .. } => usize::MAX,
        Popup::Episodes { .. } => monitor::current_run(state).map_or(0, |r| r.episodes.len()),
        Popup::Tasks { .. } => state.step.tasks.len(),
        Popup::Runs { .. } => state.monitor.picker.len(),
    };
    let pos = match &popup {
        Popup::Help { scroll } => *scroll,
        Popup::Episodes { selected } | Popup::Tasks { selected } | Popup::Runs { selected } => {
            *selected
        }
    };
    let moved = match action {
        Action::Close | Action::Quit | Action::Help => {
            state.popup = None;
            return;
        }
        Action::UseAdapter if matches!(popup, Popup::Runs { .. }) => {
            monitor::use_picked_adapter(state, pos, fx);
            return;
        }
        Action::Select if matches!(popup, Popup::Runs { .. }) => {
            // The picker stays open: several runs are chosen one after another.
            monitor::toggle_picked(state, pos, fx);
            return;
        }
        Action::Select => {
            state.popup = None;
            match popup {
                Popup::Help { .. } => {}
                Popup::Episodes { selected } => monitor::select_index(state, selected),
                Popup::Tasks { selected } => step::open_task(state, selected, fx),
                Popup::Runs { .. } => {}
            }
            return;
        }
        Action::Up => pos.saturating_sub(1),
        Action::Down => pos.saturating_add(1),
        Action::PageUp => pos.saturating_sub(10),
        Action::PageDown => pos.saturating_add(10),
        Action::Top => 0,
        Action::Bottom => len.saturating_sub(1).min(10_000),
        _ => return,
    };
    let moved = moved.min(len.saturating_sub(1));
    state.popup = Some(match popup {
        Popup::Help { .. } => Popup::Help { scroll: moved },
        Popup::Episodes { .. } => Popup::Episodes { selected: moved },
        Popup::Tasks { .. } => Popup::Tasks { selected: moved },
        Popup::Runs { .. } => Popup::Runs { selected: moved },
    });
}
