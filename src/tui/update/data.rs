//! Data mode: browse the records of task and demonstration files. Files load
//! on a background thread (`Effect::LoadData`), one at a time.
use crate::tui::keymap::Action;
use crate::tui::msg::{DataMsg, DataRecord, Effect};
use crate::tui::state::AppState;

/// Loads the current file the first time the mode is shown.
pub fn on_enter(state: &mut AppState, fx: &mut Vec<Effect>) {
    if state.data.records.is_empty() && state.data.status.is_empty() {
        load_current(state, fx);
    }
}

fn load_current(state: &mut AppState, fx: &mut Vec<Effect>) {
    match state.data.files.get(state.data.file) {
        Some(path) => {
            state.data.status = format!("loading {}", path.display());
            state.data.records.clear();
            state.data.code.clear();
            fx.push(Effect::LoadData(path.clone()));
        }
        None => {
            state.data.status = "no data files (datasets/, eval.tasks, sft.train, --tasks)".into()
        }
    }
}

pub fn handle_data(state: &mut AppState, msg: DataMsg) {
    let current = state.data.files.get(state.data.file).cloned();
    match msg {
        DataMsg::Loaded { path, records } if Some(&path) == current.as_ref() => {
            state.data.status = format!("{}: {} records", path.display(), records.len());
            state.data.records = records;
            state.data.selected = 0;
            refresh(state);
        }
        DataMsg::Failed { path, message } if Some(&path) == current.as_ref() => {
            state.data.status = message;
        }
        _ => {}
    }
}

/// Shows the selected record's buggy code in the code view.
pub fn refresh(state: &mut AppState) {
    let task = match state.data.records.get(state.data.selected) {
        Some(DataRecord::Task(t)) => Some(t.as_ref()),
        Some(DataRecord::Demo(d)) => Some(&d.task),
        _ => None,
    };
    match task {
        Some(t) => {
            let state_text = crate::env::buffer::Buffer::from_code(&t.buggy).render();
            state.data.code.set(&state_text, None);
        }
        None => state.data.code.clear(),
    }
}

pub fn handle_action(state: &mut AppState, action: Action, fx: &mut Vec<Effect>) {
    let n_files = state.data.files.len();
    let n = state.data.records.len();
    let sel = state.data.selected;
    let moved = match action {
        Action::PrevFile | Action::Left if n_files > 0 => {
            state.data.file = (state.data.file + n_files - 1) % n_files;
            load_current(state, fx);
            return;
        }
        Action::NextFile | Action::Right if n_files > 0 => {
            state.data.file = (state.data.file + 1) % n_files;
            load_current(state, fx);
            return;
        }
        Action::Up => sel.saturating_sub(1),
        Action::Down => sel + 1,
        Action::PageUp => sel.saturating_sub(10),
        Action::PageDown => sel + 10,
        Action::Top => 0,
        Action::Bottom => n.saturating_sub(1),
        _ => return,
    };
    state.data.selected = moved.min(n.saturating_sub(1));
    refresh(state);
}
