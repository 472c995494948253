//! Monitor mode: ingest a followed run's events, pick an episode, scrub its turns.
//!
//! With `follow_latest` on (the default) the newest episode and its newest turn
//! are shown as they arrive; any manual choice turns it off until `f` turns it
//! back on, so scrubbing is never yanked away by a busy run.
use crate::tui::keymap::Action;
use crate::tui::msg::FollowMsg;
use crate::tui::state::run_view::{EpisodeView, PlotKind, RunState};
use crate::tui::state::{AppState, Level, Popup};
use std::path::PathBuf;

/// Forgets the run shown and starts showing `dir` (its events arrive as `FollowMsg`).
pub fn begin_follow(state: &mut AppState, dir: PathBuf) {
    let m = &mut state.monitor;
    m.run = RunState::default();
    m.follow_status = format!("opening {}", dir.join("events.jsonl").display());
    m.dir = Some(dir);
    m.selected = None;
    m.follow_latest = true;
    m.turn = 0;
    m.code.clear();
}

pub fn handle_follow(state: &mut AppState, msg: FollowMsg) {
    match msg {
        FollowMsg::Waiting { path } => {
            state.monitor.follow_status = format!("waiting for {}", path.display());
        }
        FollowMsg::Opened { path } => {
            state.monitor.follow_status = format!("following {}", path.display());
        }
        FollowMsg::Events(events) => {
            for e in events {
                if let Some(line) = state.monitor.run.ingest(e) {
                    state.log(Level::Info, line);
                }
            }
            if state.monitor.follow_latest {
                jump_to_latest(state);
            }
            refresh_code(state);
        }
        FollowMsg::BadLine { line, error } => {
            state.log(Level::Warn, format!("events.jsonl line {line}: {error}"));
        }
        FollowMsg::Restarted => {
            state.monitor.run = RunState::default();
            state.monitor.code.clear();
            state.log(
                Level::Warn,
                "events.jsonl shrank or was replaced; reading it again",
            );
        }
        FollowMsg::Failed(message) => {
            state.monitor.follow_status = format!("stopped: {message}");
            state.log(Level::Error, message);
        }
    }
}

/// Index of the episode shown, if any.
pub fn current_index(state: &AppState) -> Option<usize> {
    let eps = &state.monitor.run.episodes;
    match state.monitor.selected {
        Some((job, ep)) => eps
            .rposition(|e| e.job == job && e.episode == ep)
            .or_else(|| eps.len().checked_sub(1)),
        None => eps.len().checked_sub(1),
    }
}

pub fn current_episode(state: &AppState) -> Option<&EpisodeView> {
    current_index(state).and_then(|i| state.monitor.run.episodes.get(i))
}

fn jump_to_latest(state: &mut AppState) {
    let m = &mut state.monitor;
    if let Some(ep) = m.run.episodes.back() {
        m.selected = Some((ep.job, ep.episode));
        m.turn = ep.turns.len();
    }
}

/// Shows episode `i` (of those held) from its first state.
pub fn select_index(state: &mut AppState, i: usize) {
    let len = state.monitor.run.episodes.len();
    let i = i.min(len.saturating_sub(1));
    if let Some(ep) = state.monitor.run.episodes.get(i) {
        state.monitor.selected = Some((ep.job, ep.episode));
        state.monitor.turn = ep.turns.len();
        state.monitor.follow_latest = false;
    }
    refresh_code(state);
}

/// Points the code pane at the shown episode and turn.
pub fn refresh_code(state: &mut AppState) {
    let Some(ep) = current_episode(state) else {
        state.monitor.code.clear();
        return;
    };
    let turn = state.monitor.turn.min(ep.turns.len());
    let edited = turn
        .checked_sub(1)
        .and_then(|i| ep.turns.get(i))
        .and_then(|t| t.edited_line);
    let text = ep.state_at(turn).to_string();
    state.monitor.turn = turn;
    state.monitor.code.set(&text, edited);
}

pub fn handle_action(state: &mut AppState, action: Action) {
    let len = state.monitor.run.episodes.len();
    let cur = current_index(state);
    let pick =
        |delta: isize| cur.map(|c| c.saturating_add_signed(delta).min(len.saturating_sub(1)));
    match action {
        Action::Up => {
            if let Some(i) = pick(-1) {
                select_index(state, i);
            }
        }
        Action::Down => {
            if let Some(i) = pick(1) {
                select_index(state, i);
            }
        }
        Action::PageUp => {
            if let Some(i) = pick(-10) {
                select_index(state, i);
            }
        }
        Action::PageDown => {
            if let Some(i) = pick(10) {
                select_index(state, i);
            }
        }
        Action::Top if len > 0 => select_index(state, 0),
        Action::Bottom if len > 0 => select_index(state, len - 1),
        Action::Left => {
            state.monitor.follow_latest = false;
            state.monitor.turn = state.monitor.turn.saturating_sub(1);
            refresh_code(state);
        }
        Action::Right => {
            state.monitor.follow_latest = false;
            state.monitor.turn += 1;
            refresh_code(state);
        }
        Action::PickEpisode => {
            if let Some(selected) = cur {
                state.popup = Some(Popup::Episodes { selected });
            } else {
                state.log(Level::Info, "no episodes yet");
            }
        }
        Action::FollowLatest => {
            state.monitor.follow_latest = !state.monitor.follow_latest;
            if state.monitor.follow_latest {
                jump_to_latest(state);
                refresh_code(state);
            }
        }
        Action::CyclePlot => {
            let next = state.monitor.plot.unwrap_or(PlotKind::Loss).next();
            state.monitor.plot = Some(next);
        }
        _ => {}
    }
}
