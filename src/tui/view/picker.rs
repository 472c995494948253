//! The run picker popup (monitor mode, `o`): `runs/*/` and the followed
//! folders, one row each — followed mark, name, kind, status, step, the latest
//! loss / reward / solve rate and how long ago the run last wrote; `R` marks a
//! run with results, `A` one with an adapter step mode can use (`a`).
use super::popups::render_list;
use super::status::fmt_elapsed;
use crate::tui::state::AppState;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::ListItem;

fn num(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{x:.3}"))
}

pub fn render_runs(frame: &mut Frame, area: Rect, state: &AppState, selected: usize) {
    let t = &state.theme;
    let m = &state.monitor;
    let mut items: Vec<ListItem> = vec![ListItem::new(Line::styled(
        "  run              kind status      step   loss reward solve age",
        t.title(),
    ))];
    items.extend(m.picker.iter().map(|r| {
        let followed = m.runs.iter().position(|f| f.dir == r.dir);
        let mark = match followed {
            Some(i) => Span::styled("● ", ratatui::style::Style::new().fg(t.series_color(i))),
            None => Span::raw("  "),
        };
        let status_style = match r.status.as_str() {
            "completed" => t.ok(),
            "failed" => t.bad(),
            "interrupted" => t.warn(),
            _ => t.base(),
        };
        let age = if r.modified_unix > 0.0 && state.now > 0.0 {
            fmt_elapsed(state.now - r.modified_unix)
        } else {
            "–".into()
        };
        let results = if r.has_results { " R" } else { "" };
        let adapter = if r.adapter.is_some() { " A" } else { "" };
        ListItem::new(Line::from(vec![
            mark,
            Span::raw(format!("{:<16.16} {:<4} ", r.name, r.kind)),
            Span::styled(format!("{:<11}", r.status), status_style),
            Span::raw(format!(
                "{:>5} {:>6} {:>6} {:>5} {age}{results}{adapter}",
                r.step,
                num(r.loss),
                num(r.reward),
                num(r.solve_rate)
            )),
        ]))
    }));
    if m.picker.is_empty() {
        items.push(ListItem::new(Line::styled(
            "  (no runs/*/events.jsonl found yet; the list refreshes every second)",
            t.muted(),
        )));
    }
    let title = "runs · enter follows / unfollows · a: its adapter in step mode";
    // Row 0 is the header: the selection sits one below its index in the list.
    render_list(frame, area, state, title.into(), items, selected + 1);
}
