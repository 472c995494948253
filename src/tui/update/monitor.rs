//! Monitor mode: ingest the followed runs' events, pick an episode of the run
//! shown, scrub its turns; switch which run the episode panes show.
//!
//! With `follow_latest` on (the default) the newest episode and its newest turn
//! are shown as they arrive; any manual choice turns it off until `f` turns it
//! back on, so scrubbing is never yanked away by a busy run. Events of the runs
//! not shown only feed their plot lines and counters.
use crate::tui::keymap::Action;
use crate::tui::msg::{Effect, FollowMsg, RunFollowMsg};
use crate::tui::state::followed::{FollowedRun, MAX_RUNS, XAxis};
use crate::tui::state::run_view::{EpisodeView, PlotKind, RunState};
use crate::tui::state::{AppState, Level, Popup};
use std::path::PathBuf;

fn reset_scrub(state: &mut AppState) {
    let m = &mut state.monitor;
    m.selected = None;
    m.follow_latest = true;
    m.turn = 0;
    m.code.clear();
}

/// Forgets every run followed and starts following `dir` alone; returns its id
/// (the caller asks the runtime to follow it under that id).
pub fn begin_follow(state: &mut AppState, dir: PathBuf) -> u64 {
    state.monitor.runs.clear();
    add_run(state, dir).unwrap_or_default()
}

/// Adds `dir` to the followed runs and shows it; returns its id, or `None` when
/// it is followed already or `MAX_RUNS` are.
pub fn add_run(state: &mut AppState, dir: PathBuf) -> Option<u64> {
    let m = &mut state.monitor;
    if m.runs.iter().any(|r| r.dir == dir) || m.runs.len() >= MAX_RUNS {
        return None;
    }
    let id = m.next_run;
    m.next_run += 1;
    m.runs.push(FollowedRun::new(id, dir));
    m.current = m.runs.len() - 1;
    reset_scrub(state);
    Some(id)
}

/// Follows `dir` too (as `add_run`), asking the runtime for a tail reader.
pub fn follow_also(state: &mut AppState, dir: PathBuf, fx: &mut Vec<Effect>) {
    if let Some(run) = add_run(state, dir.clone()) {
        fx.push(Effect::Follow { run, dir });
    }
}

/// Stops following the run with id `run`.
pub fn unfollow(state: &mut AppState, run: u64, fx: &mut Vec<Effect>) {
    let m = &mut state.monitor;
    let Some(i) = m.runs.iter().position(|r| r.id == run) else {
        return;
    };
    m.runs.remove(i);
    fx.push(Effect::Unfollow(run));
    if m.current >= i && m.current > 0 {
        m.current -= 1;
    }
    reset_scrub(state);
    refresh_code(state);
}

pub fn handle_follow(state: &mut AppState, tagged: RunFollowMsg) {
    let RunFollowMsg { run, msg } = tagged;
    let Some(i) = state.monitor.runs.iter().position(|r| r.id == run) else {
        // A reader stopped (or replaced) after it queued this: not ours any more.
        return;
    };
    let shown = i == state.monitor.current;
    let Some(fr) = state.monitor.runs.get_mut(i) else {
        return;
    };
    let name = fr.name();
    match msg {
        FollowMsg::Waiting { path } => fr.status = format!("waiting for {}", path.display()),
        FollowMsg::Opened { path } => fr.status = format!("following {}", path.display()),
        FollowMsg::Events(events) => {
            let mut lines = Vec::new();
            for e in events {
                if let Some(line) = fr.run.ingest(e) {
                    lines.push(line);
                }
            }
            let several = state.monitor.runs.len() > 1;
            for line in lines {
                let line = if several {
                    format!("{name}: {line}")
                } else {
                    line
                };
                state.log(Level::Info, line);
            }
            if shown {
                if state.monitor.follow_latest {
                    jump_to_latest(state);
                }
                refresh_code(state);
            }
        }
        FollowMsg::BadLine { line, error } => {
            state.log(
                Level::Warn,
                format!("{name}: events.jsonl line {line}: {error}"),
            );
        }
        FollowMsg::Restarted => {
            fr.run = RunState::default();
            if shown {
                state.monitor.code.clear();
            }
            state.log(
                Level::Warn,
                format!("{name}: events.jsonl shrank or was replaced; reading it again"),
            );
        }
        FollowMsg::Failed(message) => {
            fr.status = format!("stopped: {message}");
            state.log(Level::Error, format!("{name}: {message}"));
        }
    }
}

/// Asks for the run picker's list: `runs/*/` and every folder followed.
pub fn scan_runs(state: &AppState) -> Effect {
    Effect::ScanRuns(state.monitor.runs.iter().map(|r| r.dir.clone()).collect())
}

/// The picker's `enter`: follow the chosen run too, or stop following it.
pub fn toggle_picked(state: &mut AppState, selected: usize, fx: &mut Vec<Effect>) {
    let Some(dir) = state.monitor.picker.get(selected).map(|r| r.dir.clone()) else {
        return;
    };
    match state
        .monitor
        .runs
        .iter()
        .find(|r| r.dir == dir)
        .map(|r| r.id)
    {
        Some(id) => unfollow(state, id, fx),
        None if state.monitor.runs.len() >= MAX_RUNS => {
            state.log(
                Level::Warn,
                format!("at most {MAX_RUNS} runs are followed at once"),
            );
        }
        None => follow_also(state, dir, fx),
    }
}

/// The picker's `a`: step mode's model uses the chosen run's adapter (the picker
/// closes); a run without one says so and the picker stays open.
pub fn use_picked_adapter(state: &mut AppState, selected: usize, fx: &mut Vec<Effect>) {
    let Some(r) = state.monitor.picker.get(selected) else {
        return;
    };
    match r.adapter.clone() {
        Some(dir) => {
            state.popup = None;
            super::step::use_adapter(state, dir, fx);
        }
        None => {
            let text = format!(
                "{}: no adapter yet (neither adapter/ nor a checkpoint in {})",
                r.name,
                r.dir.display()
            );
            state.log(Level::Warn, text);
        }
    }
}

/// Where `P` writes the plot: next to the first followed run, named after the
/// metric and the x-axis (`plot-loss-step.svg`).
pub fn export_path(state: &AppState) -> Option<PathBuf> {
    let m = &state.monitor;
    let dir = m.runs.first()?.dir.clone();
    let metric = m.plot.unwrap_or(PlotKind::Loss).slug();
    let x = match m.x_axis {
        XAxis::Step => "step",
        XAxis::Tokens => "tokens",
    };
    Some(dir.join(format!("plot-{metric}-{x}.svg")))
}

/// The run shown's state, if any run is followed.
pub fn current_run(state: &AppState) -> Option<&RunState> {
    state.monitor.current_run().map(|r| &r.run)
}

fn episode_count(state: &AppState) -> usize {
    current_run(state).map_or(0, |r| r.episodes.len())
}

/// Index of the episode shown, if any.
pub fn current_index(state: &AppState) -> Option<usize> {
    let eps = &current_run(state)?.episodes;
    match state.monitor.selected {
        Some((job, ep)) => eps
            .rposition(|e| e.job == job && e.episode == ep)
            .or_else(|| eps.len().checked_sub(1)),
        None => eps.len().checked_sub(1),
    }
}

pub fn current_episode(state: &AppState) -> Option<&EpisodeView> {
    let i = current_index(state)?;
    current_run(state)?.episodes.get(i)
}

fn jump_to_latest(state: &mut AppState) {
    let latest = current_run(state)
        .and_then(|r| r.episodes.back())
        .map(|ep| ((ep.job, ep.episode), ep.turns.len()));
    if let Some((sel, turn)) = latest {
        state.monitor.selected = Some(sel);
        state.monitor.turn = turn;
    }
}

/// Shows episode `i` (of those held) from its first state.
pub fn select_index(state: &mut AppState, i: usize) {
    let len = episode_count(state);
    let i = i.min(len.saturating_sub(1));
    let picked = current_run(state)
        .and_then(|r| r.episodes.get(i))
        .map(|ep| ((ep.job, ep.episode), ep.turns.len()));
    if let Some((sel, turn)) = picked {
        state.monitor.selected = Some(sel);
        state.monitor.turn = turn;
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

/// Shows the episodes of the run `delta` places on (wrapping).
fn cycle_run(state: &mut AppState, delta: isize) {
    let n = state.monitor.runs.len();
    if n < 2 {
        return;
    }
    let cur = state.monitor.current as isize;
    state.monitor.current = (cur + delta).rem_euclid(n as isize) as usize;
    reset_scrub(state);
    jump_to_latest(state);
    refresh_code(state);
}

pub fn handle_action(state: &mut AppState, action: Action, fx: &mut Vec<Effect>) {
    let len = episode_count(state);
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
        Action::NextRun => cycle_run(state, 1),
        Action::PrevRun => cycle_run(state, -1),
        Action::PickRuns => {
            state.popup = Some(Popup::Runs { selected: 0 });
            fx.push(scan_runs(state));
        }
        Action::ToggleXAxis => state.monitor.x_axis = state.monitor.x_axis.toggled(),
        Action::ExportPlot => match export_path(state) {
            Some(path) => fx.push(Effect::ExportPlot(path)),
            None => state.log(Level::Info, "no run followed: nothing to export"),
        },
        _ => {}
    }
}
