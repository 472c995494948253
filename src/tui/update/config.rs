//! Config mode: edit the run's RON in place, validated on every change with the
//! error placed at its line; save; start a training job on it and follow its
//! run directory through the same path as `--follow`; cancel it.
use crate::tui::keymap::Action;
use crate::tui::msg::{Effect, JobMsg};
use crate::tui::state::editor::{Edit, TextEditor};
use crate::tui::state::{AppState, JobState, Level, Mode};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::path::PathBuf;

pub fn is_modified(state: &AppState) -> bool {
    state.config.editor.text() != state.config.saved
}

fn save(state: &mut AppState, fx: &mut Vec<Effect>) {
    if let Some((_, e)) = &state.config.error {
        let first = e.lines().next().unwrap_or_default().to_string();
        state.log(
            Level::Error,
            format!("not saved, the config is invalid: {first}"),
        );
        return;
    }
    fx.push(Effect::SaveConfig {
        path: state.config.path.clone(),
        text: state.config.editor.text(),
    });
}

fn start_job(state: &mut AppState, fx: &mut Vec<Effect>) {
    if state.job.as_ref().is_some_and(|j| j.running) {
        state.log(Level::Warn, "a job is already running (X cancels it)");
        return;
    }
    let (Some(name), None) = (&state.config.run_name, &state.config.error) else {
        state.log(Level::Error, "cannot start a job: the config is invalid");
        return;
    };
    let run_dir = PathBuf::from("runs").join(name);
    state.job = Some(JobState {
        pid: None,
        run_dir: run_dir.clone(),
        log: None,
        running: true,
        status: "starting".into(),
    });
    let run = super::monitor::begin_follow(state, run_dir.clone());
    fx.push(Effect::StartJob {
        path: state.config.path.clone(),
        text: state.config.editor.text(),
        run_dir,
        run,
    });
    super::switch_mode(state, Mode::Monitor, fx);
}

pub fn handle_action(state: &mut AppState, action: Action, fx: &mut Vec<Effect>) {
    let page = 10;
    let ed = &mut state.config.editor;
    match action {
        Action::Edit => state.config.editing = true,
        Action::Save => save(state, fx),
        Action::StartJob => start_job(state, fx),
        Action::CancelJob => match &state.job {
            Some(j) if j.running => {
                fx.push(Effect::CancelJob);
                state.log(Level::Info, "cancelling the job (SIGTERM)");
            }
            _ => state.log(Level::Info, "no job is running"),
        },
        Action::Revert => {
            state.config.editor = TextEditor::new(&state.config.saved);
            state.config.revalidate();
            state.log(Level::Info, "reverted to the saved file");
        }
        Action::Up => ed.move_rows(-1),
        Action::Down => ed.move_rows(1),
        Action::PageUp => ed.move_rows(-page),
        Action::PageDown => ed.move_rows(page),
        Action::Top => ed.goto_row(0),
        Action::Bottom => ed.goto_row(usize::MAX),
        Action::Left => {
            ed.handle_key(&KeyEvent::new(KeyCode::Left, KeyModifiers::NONE));
        }
        Action::Right => {
            ed.handle_key(&KeyEvent::new(KeyCode::Right, KeyModifiers::NONE));
        }
        _ => {}
    }
}

/// Keys while editing: Esc stops, ctrl-s saves, everything else edits.
pub fn handle_edit_key(state: &mut AppState, key: &KeyEvent, fx: &mut Vec<Effect>) {
    if key.code == KeyCode::Esc {
        state.config.editing = false;
        return;
    }
    if key.code == KeyCode::Char('s') && key.modifiers.contains(KeyModifiers::CONTROL) {
        save(state, fx);
        return;
    }
    if state.config.editor.handle_key(key) == Edit::Changed {
        state.config.revalidate();
    }
}

pub fn handle_saved(state: &mut AppState, result: Result<String, String>) {
    match result {
        Ok(path) => {
            state.config.saved = state.config.editor.text();
            state.log(Level::Info, format!("saved {path}"));
        }
        Err(e) => state.log(Level::Error, format!("cannot save: {e}")),
    }
}

pub fn handle_job(state: &mut AppState, msg: JobMsg) {
    match msg {
        JobMsg::Started { pid, run_dir, log } => {
            state.log(
                Level::Info,
                format!(
                    "job started: pid {pid}, log {}, following {}",
                    log.display(),
                    run_dir.display()
                ),
            );
            state.job = Some(JobState {
                pid: Some(pid),
                run_dir,
                log: Some(log),
                running: true,
                status: "running".into(),
            });
        }
        JobMsg::Exited {
            pid,
            status,
            success,
            log_tail,
        } => {
            let level = if success { Level::Info } else { Level::Error };
            state.log(level, format!("job {pid} exited: {status}"));
            for line in log_tail {
                state.log(level, format!("  {line}"));
            }
            if let Some(j) = state.job.as_mut() {
                j.running = false;
                j.status = status;
            }
        }
        JobMsg::Failed(message) => {
            state.log(Level::Error, format!("job: {message}"));
            if let Some(j) = state.job.as_mut() {
                j.running = false;
                j.status = "failed to start".into();
            }
        }
    }
}
