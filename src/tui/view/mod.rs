//! Drawing: one `render(frame, &AppState)` that splits the screen into named
//! areas and hands each to a pane widget. Views read state only (STYLE 5);
//! anything costly (syntax highlighting) was prepared beforehand by
//! `AppState::prepare_frame`. Layouts are sized to stay legible at 80×24.
mod code;
mod commands;
mod config;
mod data;
mod frame;
mod help;
mod log;
mod picker;
mod plots;
mod popups;
mod results;
mod status;
mod test_pane;

pub use code::CodePane;
pub use commands::CommandsPane;
pub use frame::{centered, pane_block};
pub use log::LogPane;
pub use plots::{PlotLine, PlotPane, bounds as plot_bounds, plot_lines};
pub use status::StatusBar;
pub use test_pane::{TestRow, TestsPane};

use crate::tui::state::{AppState, Mode, Popup};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

/// Rows of the log pane, borders included.
const LOG_ROWS: u16 = 5;

/// Draws the whole screen.
pub fn render(frame: &mut Frame, state: &AppState) {
    let area = frame.area();
    frame.render_widget(Block::new().style(state.theme.base()), area);
    let [header, body, log_area, status_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(6),
        Constraint::Length(LOG_ROWS),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(header_line(state), header);
    match state.mode {
        Mode::Monitor => render_monitor(frame, body, state),
        Mode::Step => render_step(frame, body, state),
        Mode::Config => config::render(frame, body, state),
        Mode::Data => data::render(frame, body, state),
        Mode::Results => results::render(frame, body, state),
    }
    frame.render_widget(LogPane::new(&state.log, &state.theme), log_area);
    frame.render_widget(StatusBar::new(state), status_area);
    match &state.popup {
        Some(Popup::Help { scroll }) => help::render(frame, area, state, *scroll),
        Some(Popup::Episodes { selected }) => {
            popups::render_episodes(frame, area, state, *selected)
        }
        Some(Popup::Tasks { selected }) => popups::render_tasks(frame, area, state, *selected),
        Some(Popup::Runs { selected }) => picker::render_runs(frame, area, state, *selected),
        None => {}
    }
}

fn header_line(state: &AppState) -> Paragraph<'static> {
    let t = &state.theme;
    let mut spans = vec![Span::styled(" coe ", t.title())];
    for (i, m) in Mode::ALL.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, m.name());
        let style = if *m == state.mode {
            t.selected()
        } else {
            t.muted()
        };
        spans.push(Span::styled(label, style));
    }
    spans.push(Span::styled("  ? help  q quit", t.muted()));
    Paragraph::new(Line::from(spans))
}

fn render_monitor(frame: &mut Frame, area: Rect, state: &AppState) {
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
    let [code_area, cmd_area] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);
    let [tests_area, plot_area] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(bottom);
    let m = &state.monitor;
    let ep = crate::tui::update::monitor::current_episode(state);
    let code_title = match ep {
        Some(e) => format!(
            "code · {} · turn {}/{}",
            e.task_id,
            m.turn.min(e.turns.len()),
            e.turns.len()
        ),
        None => "code".into(),
    };
    frame.render_widget(CodePane::new(&m.code, &state.theme, code_title), code_area);
    let turns = ep.map_or(&[][..], |e| e.turns.as_slice());
    let cmd_title = match ep {
        Some(e) => {
            let end = match e.finished {
                Some(f) if f.infra_error => " · infra error".to_string(),
                Some(f) => format!(
                    " · {} · return {:+.1}",
                    if f.solved { "solved" } else { "unsolved" },
                    f.ret
                ),
                None => " · running".to_string(),
            };
            let follow = if m.follow_latest { " · following" } else { "" };
            format!("commands · episode {}{end}{follow}", e.episode)
        }
        None => "commands".into(),
    };
    let selected = m.turn.checked_sub(1);
    frame.render_widget(
        CommandsPane::new(turns, selected, &state.theme, cmd_title),
        cmd_area,
    );
    let rows = test_pane::rows_from_feedback(&m.code.feedback);
    frame.render_widget(
        TestsPane::new(rows, &m.code.feedback, &state.theme, "tests".into()),
        tests_area,
    );
    let kind = m
        .plot
        .unwrap_or(crate::tui::state::run_view::PlotKind::Loss);
    frame.render_widget(
        PlotPane {
            runs: &m.runs,
            current: m.current,
            kind,
            x_axis: m.x_axis,
            theme: &state.theme,
        },
        plot_area,
    );
}

fn render_step(frame: &mut Frame, area: Rect, state: &AppState) {
    let s = &state.step;
    let [main, input_area] =
        Layout::vertical([Constraint::Min(4), Constraint::Length(1)]).areas(area);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(main);
    let [code_area, tests_area] =
        Layout::vertical([Constraint::Percentage(62), Constraint::Percentage(38)]).areas(left);
    let prop_rows = (s.samples as u16).clamp(1, 5) + 2;
    let [cmd_area, prop_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(prop_rows)]).areas(right);
    let code_title = match &s.snapshot {
        Some(snap) => {
            let verdict = if snap.solved { "solved" } else { "failing" };
            let done = if snap.done { " · over" } else { "" };
            format!(
                "code · {} ({}/{}) · turn {} · {verdict}{done}",
                snap.task_id,
                s.task_index + 1,
                s.tasks.len(),
                snap.turn
            )
        }
        None => "code".into(),
    };
    frame.render_widget(CodePane::new(&s.code, &state.theme, code_title), code_area);
    let rows = match &s.snapshot {
        Some(snap) => test_pane::rows_from_report(&snap.tests, snap.report.as_ref()),
        None => Vec::new(),
    };
    let tests_title = match &s.busy {
        Some(b) => format!("tests · {b}…"),
        None => "tests".to_string(),
    };
    frame.render_widget(
        TestsPane::new(rows, &s.code.feedback, &state.theme, tests_title),
        tests_area,
    );
    let ret = s.snapshot.as_ref().map_or(0.0, |x| x.ret);
    frame.render_widget(
        CommandsPane::new(
            &s.turns,
            s.turns.len().checked_sub(1),
            &state.theme,
            format!("commands · return {ret:+.1}"),
        ),
        cmd_area,
    );
    popups::render_proposals(frame, prop_area, state);
    frame.render_widget(input_line(state), input_area);
}

fn input_line(state: &AppState) -> Paragraph<'static> {
    let t = &state.theme;
    match &state.step.input {
        Some(input) => {
            let (before, after) = split_at_char(&input.text, input.cursor);
            let mut rest = after.chars();
            let under = rest.next().map_or(" ".to_string(), |c| c.to_string());
            Paragraph::new(Line::from(vec![
                Span::styled("command> ", t.title()),
                Span::raw(before.to_string()),
                Span::styled(under, t.selected()),
                Span::raw(rest.collect::<String>()),
                Span::styled("   (enter applies, esc cancels)", t.muted()),
            ]))
        }
        None => {
            let k = |a| state.keymap.keys_of(crate::tui::keymap::Layer::Step, a);
            use crate::tui::keymap::Action as A;
            Paragraph::new(Line::styled(
                format!(
                    " {} type · {} accept · {} edit · {} undo · {} tests · {} tasks",
                    k(A::TypeCommand),
                    k(A::AcceptProposal),
                    k(A::EditProposal),
                    k(A::Undo),
                    k(A::RunTests),
                    k(A::PickTask)
                ),
                Style::new().fg(t.muted),
            ))
        }
    }
}

fn split_at_char(s: &str, idx: usize) -> (&str, &str) {
    let at = s.char_indices().nth(idx).map_or(s.len(), |(b, _)| b);
    s.split_at(at)
}
