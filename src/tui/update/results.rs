//! The results view: pick a task of the browsed results file, step through its
//! saved episodes (samples) and scrub their turns in the code / commands /
//! tests panes, as monitor mode does for a followed run's episodes.
use crate::tui::keymap::Action;
use crate::tui::state::results::LoadedResults;
use crate::tui::state::{AppState, Level};

/// Stand-in for turn 0: `episodes.jsonl` keeps each turn's state, not the one before.
pub const NO_INITIAL_STATE: &str =
    "***\n(the state before the first turn is not saved; l shows turn 1)";

/// Adds loaded results files to the view (the first one added is browsed).
pub fn add_files(state: &mut AppState, files: Vec<(LoadedResults, usize)>) {
    if state.results.files.is_empty() {
        // Open on the first episode's outcome, as monitor mode opens on the newest turn.
        state.results.turn = usize::MAX;
    }
    for (f, bad) in files {
        if bad > 0 {
            state.log(
                Level::Warn,
                format!(
                    "{}: {bad} episode lines could not be read",
                    f.episodes_path
                        .as_deref()
                        .unwrap_or(f.path.as_path())
                        .display()
                ),
            );
        }
        state.results.files.push(f);
    }
    refresh_code(state);
}

/// Points the code pane at the episode and turn shown.
pub fn refresh_code(state: &mut AppState) {
    let r = &state.results;
    let Some(ep) = r.current_episode() else {
        state.results.turn = 0;
        state.results.code.clear();
        return;
    };
    let turn = r.turn.min(ep.records.len());
    let (text, edited) = match turn.checked_sub(1).and_then(|i| ep.records.get(i)) {
        Some(rec) => (rec.state.clone(), rec.edited_line),
        None => (NO_INITIAL_STATE.to_string(), None),
    };
    state.results.turn = turn;
    state.results.code.set(&text, edited);
}

fn task_count(state: &AppState) -> usize {
    state
        .results
        .current()
        .map_or(0, |f| f.summary.per_task.len())
}

fn sample_count(state: &AppState) -> usize {
    let r = &state.results;
    match (r.current(), r.current_task()) {
        (Some(f), Some(t)) => f.episodes_of(&t.id).len(),
        _ => 0,
    }
}

/// Shows task `i` of the browsed file, its first saved episode at its last turn.
fn select_task(state: &mut AppState, i: usize) {
    let n = task_count(state);
    state.results.task = i.min(n.saturating_sub(1));
    state.results.sample = 0;
    state.results.turn = usize::MAX;
    refresh_code(state);
}

fn select_sample(state: &mut AppState, delta: isize) {
    let n = sample_count(state);
    if n == 0 {
        state.log(Level::Info, "no saved episodes for this task");
        return;
    }
    let cur = state.results.sample as isize;
    state.results.sample = (cur + delta).rem_euclid(n as isize) as usize;
    state.results.turn = usize::MAX;
    refresh_code(state);
}

pub fn handle_action(state: &mut AppState, action: Action) {
    let task = state.results.task;
    match action {
        Action::Up => select_task(state, task.saturating_sub(1)),
        Action::Down => select_task(state, task + 1),
        Action::PageUp => select_task(state, task.saturating_sub(10)),
        Action::PageDown => select_task(state, task + 10),
        Action::Top => select_task(state, 0),
        Action::Bottom => select_task(state, usize::MAX),
        Action::Left => {
            state.results.turn = state.results.turn.saturating_sub(1);
            refresh_code(state);
        }
        Action::Right => {
            state.results.turn = state.results.turn.saturating_add(1);
            refresh_code(state);
        }
        Action::PrevSample => select_sample(state, -1),
        Action::NextSample => select_sample(state, 1),
        Action::NextResults => {
            let n = state.results.files.len();
            if n > 1 {
                state.results.file = (state.results.file + 1) % n;
                select_task(state, 0);
            }
        }
        _ => {}
    }
}
