//! Config mode's view: the RON text with line numbers, the cursor, the line
//! the first error points at marked, and the error itself below.
use super::code::scroll_for;
use super::frame::pane_block;
use crate::tui::state::AppState;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

pub fn render(frame: &mut Frame, area: Rect, state: &AppState) {
    let t = &state.theme;
    let c = &state.config;
    // Rows the message takes once wrapped to the pane, plus borders.
    let inner_w = usize::from(area.width.saturating_sub(2)).max(1);
    let err_rows = c.error.as_ref().map_or(3, |(_, e)| {
        let rows: usize = e
            .lines()
            .map(|l| l.chars().count().div_ceil(inner_w).max(1))
            .sum();
        u16::try_from(rows + 2).unwrap_or(u16::MAX).clamp(3, 9)
    });
    let [edit_area, err_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(err_rows)]).areas(area);
    let modified = if crate::tui::update::config::is_modified(state) {
        " · modified"
    } else {
        ""
    };
    let mode = if c.editing {
        "editing (esc stops)"
    } else {
        "i edits · s saves · S starts a job"
    };
    let title = format!("config · {}{modified} · {mode}", c.path.display());
    let block = pane_block(t, title, c.editing);
    let inner = block.inner(edit_area);
    frame.render_widget(block, edit_area);
    let err_line = c.error.as_ref().and_then(|(l, _)| *l);
    let width = c.editor.lines.len().to_string().len();
    let rows = usize::from(inner.height);
    let skip = scroll_for(Some(c.editor.row), c.editor.lines.len(), rows);
    let lines: Vec<Line> = c
        .editor
        .lines
        .iter()
        .enumerate()
        .skip(skip)
        .take(rows)
        .map(|(i, text)| {
            let num = i + 1;
            let bad = err_line == Some(num);
            let gutter = Span::styled(
                format!("{num:>width$}{}", if bad { "!" } else { " " }),
                if bad { t.bad() } else { t.muted() },
            );
            let mut spans = vec![gutter];
            if i == c.editor.row {
                let at = text
                    .char_indices()
                    .nth(c.editor.col)
                    .map_or(text.len(), |(b, _)| b);
                let (before, after) = text.split_at(at);
                let mut rest = after.chars();
                let under = rest.next().map_or(" ".to_string(), |ch| ch.to_string());
                spans.push(Span::raw(before.to_string()));
                spans.push(Span::styled(
                    under,
                    if c.editing {
                        t.selected()
                    } else {
                        Style::new().fg(t.focus)
                    },
                ));
                spans.push(Span::raw(rest.collect::<String>()));
            } else {
                spans.push(Span::raw(text.clone()));
            }
            let line = Line::from(spans);
            if bad {
                line.style(Style::new().bg(t.edited_bg))
            } else {
                line
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
    let (title, body, style) = match &c.error {
        Some((_, e)) => ("error", e.clone(), t.bad()),
        None => (
            "valid",
            format!(
                "run runs/{}/ · S saves and starts `coe train sft --config {}`",
                c.run_name.as_deref().unwrap_or("?"),
                c.path.display()
            ),
            t.ok(),
        ),
    };
    frame.render_widget(
        Paragraph::new(body)
            .style(style)
            .wrap(Wrap { trim: false })
            .block(pane_block(t, title, false)),
        err_area,
    );
}
