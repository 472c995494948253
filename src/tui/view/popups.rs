//! List popups (pick an episode, pick a task) and the step-mode proposals list.
use super::frame::{centered, pane_block};
use crate::tui::state::{AppState, ModelStatus};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, List, ListItem, ListState, Paragraph};

pub(super) fn render_list(
    frame: &mut Frame,
    area: Rect,
    state: &AppState,
    title: String,
    items: Vec<ListItem>,
    selected: usize,
) {
    let rect = centered(area, 72, area.height.saturating_sub(4));
    frame.render_widget(Clear, rect);
    let list = List::new(items)
        .block(pane_block(&state.theme, title, true))
        .highlight_style(state.theme.selected());
    let mut ls = ListState::default().with_selected(Some(selected));
    frame.render_stateful_widget(list, rect, &mut ls);
}

pub fn render_episodes(frame: &mut Frame, area: Rect, state: &AppState, selected: usize) {
    let t = &state.theme;
    let items: Vec<ListItem> = crate::tui::update::monitor::current_run(state)
        .into_iter()
        .flat_map(|r| r.episodes.iter())
        .map(|e| {
            let (mark, style) = match e.finished {
                Some(f) if f.infra_error => ("!", t.warn()),
                Some(f) if f.solved => ("✓", t.ok()),
                Some(_) => ("✗", t.bad()),
                None => ("…", t.muted()),
            };
            let ret = e
                .finished
                .map_or(String::new(), |f| format!("{:+.1}", f.ret));
            ListItem::new(Line::from(vec![
                Span::styled(format!("{mark} "), style),
                Span::raw(format!(
                    "ep {:<6} {:<28} {:>2} turns {ret}",
                    e.episode,
                    e.task_id,
                    e.turns.len()
                )),
            ]))
        })
        .collect();
    let title = format!("episodes ({} held) · enter shows · esc closes", items.len());
    render_list(frame, area, state, title, items, selected);
}

pub fn render_tasks(frame: &mut Frame, area: Rect, state: &AppState, selected: usize) {
    let items: Vec<ListItem> = state
        .step
        .tasks
        .iter()
        .map(|t| {
            let lines = t.buggy.lines().count();
            ListItem::new(format!(
                "{:<36} {lines:>3} lines  {} tests",
                t.id,
                t.tests.len()
            ))
        })
        .collect();
    let title = format!(
        "tasks · {} · enter opens · esc closes",
        state.step.tasks_origin
    );
    render_list(frame, area, state, title, items, selected);
}

/// The model's proposals for the next turn, best first.
pub fn render_proposals(frame: &mut Frame, area: Rect, state: &AppState) {
    let t = &state.theme;
    let s = &state.step;
    let (title, placeholder) = match &s.model {
        ModelStatus::Off => ("proposals", "model off: i types a command".to_string()),
        ModelStatus::Loading(spec) => ("proposals", format!("loading {spec}…")),
        ModelStatus::Unavailable(r) => ("proposals", format!("no model: {r}")),
        ModelStatus::Ready { .. } if s.proposing => ("proposals", "sampling…".to_string()),
        ModelStatus::Ready { .. } => ("proposals · model", "(none: m samples again)".to_string()),
    };
    let block = pane_block(t, format!("{title} · enter accepts · e edits"), false);
    if s.proposals.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled(placeholder, t.muted())).block(block),
            area,
        );
        return;
    }
    let items: Vec<ListItem> = s
        .proposals
        .iter()
        .map(|(p, n)| {
            let lp = p.logprob().map_or(String::new(), |l| format!("{l:>6.1} "));
            ListItem::new(format!("{lp}×{n} {}", p.text))
        })
        .collect();
    let mut ls = ListState::default().with_selected(Some(s.selected));
    frame.render_stateful_widget(
        List::new(items).block(block).highlight_style(t.selected()),
        area,
        &mut ls,
    );
}
