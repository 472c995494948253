//! Data mode's view: the records of the current file on the left; on the right
//! the selected task (prompt, highlighted buggy code, tests) or demonstration
//! (its task's code, then every turn's command and reward).
use super::code::CodePane;
use super::frame::pane_block;
use crate::tui::msg::DataRecord;
use crate::tui::state::AppState;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{List, ListItem, ListState, Paragraph, Wrap};

pub fn render(frame: &mut Frame, area: Rect, state: &AppState) {
    let t = &state.theme;
    let d = &state.data;
    let [list_area, detail_area] =
        Layout::horizontal([Constraint::Percentage(35), Constraint::Percentage(65)]).areas(area);
    let file = d
        .files
        .get(d.file)
        .map_or("no file".to_string(), |p| p.display().to_string());
    let title = format!("{file} ({}/{}) · [ ] files", d.file + 1, d.files.len());
    let items: Vec<ListItem> = d
        .records
        .iter()
        .map(|r| {
            let kind = match r {
                DataRecord::Task(_) => "task",
                DataRecord::Demo(_) => "demo",
                DataRecord::Other { .. } => "rec ",
            };
            ListItem::new(format!("{kind} {}", r.id()))
        })
        .collect();
    if items.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled(d.status.clone(), t.muted()))
                .wrap(Wrap { trim: false })
                .block(pane_block(t, title, true)),
            list_area,
        );
    } else {
        let mut ls = ListState::default().with_selected(Some(d.selected));
        frame.render_stateful_widget(
            List::new(items)
                .block(pane_block(t, title, true))
                .highlight_style(t.selected()),
            list_area,
            &mut ls,
        );
    }
    let Some(rec) = d.records.get(d.selected) else {
        frame.render_widget(pane_block(t, "record", false), detail_area);
        return;
    };
    let task = match rec {
        DataRecord::Task(task) => Some(task.as_ref()),
        DataRecord::Demo(demo) => Some(&demo.task),
        DataRecord::Other { json, id } => {
            frame.render_widget(
                Paragraph::new(json.clone())
                    .wrap(Wrap { trim: false })
                    .block(pane_block(t, id.clone(), false)),
                detail_area,
            );
            None
        }
    };
    let Some(task) = task else { return };
    let [prompt_area, code_area, extra_area] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Percentage(55),
        Constraint::Min(3),
    ])
    .areas(detail_area);
    frame.render_widget(
        Paragraph::new(task.prompt.clone())
            .wrap(Wrap { trim: true })
            .block(pane_block(
                t,
                format!("{} · {:?}", task.id, task.origin).to_lowercase(),
                false,
            )),
        prompt_area,
    );
    frame.render_widget(CodePane::new(&d.code, t, "buggy code".into()), code_area);
    let (title, lines): (&str, Vec<String>) = match rec {
        DataRecord::Demo(demo) => (
            "demonstration",
            demo.turns
                .iter()
                .enumerate()
                .map(|(i, turn)| format!("{:>2} {:+.1}  {}", i + 1, turn.reward, turn.command))
                .collect(),
        ),
        _ => ("tests", task.tests.clone()),
    };
    frame.render_widget(
        Paragraph::new(lines.into_iter().map(Line::from).collect::<Vec<_>>())
            .block(pane_block(t, title, false)),
        extra_area,
    );
}
