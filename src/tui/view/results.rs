//! The results view: every loaded `results.json` side by side in a table
//! (method, task set, pass@k, invalid rate, mean turns), their turn-budget
//! curves overlaid in one chart (one colour per file, as runs are in monitor
//! mode), the browsed file's per-task outcomes (solved in how many turns, or
//! why not), and the selected task's saved episode in the code / commands /
//! tests panes. At 80×24 the table keeps its columns and the chart shrinks.
use super::code::CodePane;
use super::commands::CommandsPane;
use super::frame::pane_block;
use super::plots::{chart_axis, line_dataset};
use super::test_pane::{TestsPane, rows_from_feedback};
use crate::tui::state::AppState;
use crate::tui::state::results::{LoadedResults, ResultsState};
use crate::tui::style::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Cell, Chart, Dataset, List, ListItem, ListState, Paragraph, Row, Table, Wrap,
};
use std::path::Path;

/// The k of every pass@k any file reports, ascending.
fn ks(files: &[LoadedResults]) -> Vec<String> {
    let mut ks: Vec<(u64, String)> = files
        .iter()
        .flat_map(|f| f.summary.pass_at.keys())
        .map(|k| (k.parse().unwrap_or(u64::MAX), k.clone()))
        .collect();
    ks.sort();
    ks.dedup();
    ks.into_iter().map(|(_, k)| k).collect()
}

/// `datasets/smoke/tasks.jsonl` → `smoke/tasks`: the folder says which set.
fn set_name(tasks_file: &str) -> String {
    let p = Path::new(tasks_file);
    let stem = p.file_stem().map_or_else(
        || tasks_file.to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    match p.parent().and_then(|d| d.file_name()) {
        Some(d) => format!("{}/{stem}", d.to_string_lossy()),
        None => stem,
    }
}

fn render_table(frame: &mut Frame, area: Rect, r: &ResultsState, t: &Theme) {
    let ks = ks(&r.files);
    let mut header = vec![Cell::from(""), Cell::from("method"), Cell::from("set")];
    header.extend(ks.iter().map(|k| Cell::from(format!("pass@{k}"))));
    header.extend([Cell::from("invalid"), Cell::from("turns")]);
    let rows: Vec<Row> = r
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let s = &f.summary;
            let mark = if i == r.file { "▸" } else { " " };
            let method = s.method.clone();
            let mut cells = vec![
                Cell::from(Span::styled(mark, Style::new().fg(t.series_color(i)))),
                Cell::from(Span::styled(method, Style::new().fg(t.series_color(i)))),
                Cell::from(set_name(&s.tasks_file)),
            ];
            cells.extend(ks.iter().map(|k| {
                Cell::from(
                    s.pass_at
                        .get(k)
                        .map_or("–".to_string(), |v| format!("{v:.3}")),
                )
            }));
            cells.push(Cell::from(format!("{:.3}", s.invalid_rate)));
            cells.push(Cell::from(format!("{:.1}", s.mean_turns)));
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(1),
        Constraint::Length(6),
        Constraint::Min(6),
    ];
    widths.extend(ks.iter().map(|_| Constraint::Length(7)));
    widths.extend([Constraint::Length(7), Constraint::Length(5)]);
    let title = if r.files.len() > 1 {
        "results · n browses the next file"
    } else {
        "results"
    };
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(t.title()))
            .column_spacing(1)
            .block(pane_block(t, title, false)),
        area,
    );
}

/// A file's turn-budget curve: its method, colour and (turns, solve rate) points.
type CurveLine = (String, ratatui::style::Color, Vec<(f64, f64)>);

fn render_turn_curve(frame: &mut Frame, area: Rect, r: &ResultsState, t: &Theme) {
    let block = pane_block(t, "solved within t turns", false);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let lines: Vec<CurveLine> = r
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut pts: Vec<(f64, f64)> = f
                .summary
                .turn_curve
                .iter()
                .filter_map(|(k, v)| k.parse::<f64>().ok().map(|x| (x, *v)))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (f.summary.method.clone(), t.series_color(i), pts)
        })
        .collect();
    let max_t = lines
        .iter()
        .flat_map(|l| l.2.iter().map(|p| p.0))
        .fold(0.0_f64, f64::max);
    if max_t <= 0.0 {
        frame.render_widget(
            Paragraph::new(Line::styled("(no turn curve: one-shot methods)", t.muted()))
                .wrap(Wrap { trim: false }),
            inner,
        );
        return;
    }
    let (chart_area, legend_area) = if inner.height > 3 {
        let [c, l] = Layout::vertical([Constraint::Min(2), Constraint::Length(1)]).areas(inner);
        (c, Some(l))
    } else {
        (inner, None)
    };
    if let Some(l) = legend_area {
        let spans: Vec<Span> = lines
            .iter()
            .filter(|l| !l.2.is_empty())
            .flat_map(|(name, c, _)| {
                [
                    Span::styled("━ ", Style::new().fg(*c)),
                    Span::styled(format!("{name}  "), Style::new().fg(t.fg)),
                ]
            })
            .collect();
        frame.render_widget(Paragraph::new(Line::from(spans)), l);
    }
    let datasets: Vec<Dataset> = lines
        .iter()
        .filter(|l| !l.2.is_empty())
        .map(|(name, c, pts)| line_dataset(name, *c, pts))
        .collect();
    frame.render_widget(
        Chart::new(datasets)
            .style(t.base())
            .legend_position(None)
            .x_axis(chart_axis(t, [1.0, max_t.max(2.0)]))
            .y_axis(chart_axis(t, [0.0, 1.0])),
        chart_area,
    );
}

fn render_tasks(frame: &mut Frame, area: Rect, r: &ResultsState, t: &Theme) {
    let Some(f) = r.current() else {
        return;
    };
    let items: Vec<ListItem> = f
        .summary
        .per_task
        .iter()
        .map(|task| {
            let n = task.solved.len();
            let k = task.solved.iter().filter(|s| **s).count();
            let solved_turns = task
                .solved
                .iter()
                .zip(&task.turns)
                .filter(|(s, _)| **s)
                .map(|(_, t)| *t)
                .min();
            let (mark, style, what) = match solved_turns {
                Some(turns) => ("✓", t.ok(), format!("{k}/{n} · {turns}t")),
                None => {
                    let why = f
                        .episodes_of(&task.id)
                        .first()
                        .map(|e| e.why_not())
                        .unwrap_or_else(|| {
                            let turns = task.turns.iter().max().copied().unwrap_or(0);
                            format!("{turns}t")
                        });
                    ("✗", t.bad(), format!("0/{n} · {why}"))
                }
            };
            ListItem::new(Line::from(vec![
                Span::styled(format!("{mark} "), style),
                Span::raw(format!("{} ", task.id)),
                Span::styled(what, t.muted()),
            ]))
        })
        .collect();
    let title = format!("tasks · {}", f.summary.method);
    let list = List::new(items)
        .block(pane_block(t, title, true))
        .highlight_style(t.selected());
    let mut ls = ListState::default().with_selected(Some(r.task));
    frame.render_stateful_widget(list, area, &mut ls);
}

pub fn render(frame: &mut Frame, area: Rect, state: &AppState) {
    let t = &state.theme;
    let r = &state.results;
    if r.files.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled(
                "no results loaded (coe tui --results runs/<name>/results.json; --results may repeat)",
                t.muted(),
            ))
            .wrap(Wrap { trim: false })
            .block(pane_block(t, "results", false)),
            area,
        );
        return;
    }
    let top_rows = (r.files.len() as u16 + 3).clamp(7, 10);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(top_rows), Constraint::Min(4)]).areas(area);
    let [table_area, curve_area] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(top);
    render_table(frame, table_area, r, t);
    render_turn_curve(frame, curve_area, r, t);
    let [tasks_area, code_area, right] = Layout::horizontal([
        Constraint::Percentage(32),
        Constraint::Percentage(38),
        Constraint::Percentage(30),
    ])
    .areas(bottom);
    render_tasks(frame, tasks_area, r, t);
    let ep = r.current_episode();
    let samples = match (r.current(), r.current_task()) {
        (Some(f), Some(task)) => f.episodes_of(&task.id).len(),
        _ => 0,
    };
    let code_title = match ep {
        Some(e) => format!(
            "code · sample {}/{samples} · turn {}/{}",
            r.sample + 1,
            r.turn,
            e.records.len()
        ),
        None if r.current().is_some_and(|f| f.episodes.is_empty()) => {
            "code · no saved episodes (coe eval --save-episodes)".into()
        }
        None => "code".into(),
    };
    frame.render_widget(CodePane::new(&r.code, t, code_title), code_area);
    let [cmd_area, tests_area] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(right);
    let records = ep.map_or(&[][..], |e| e.records.as_slice());
    let cmd_title = match ep {
        Some(e) if e.solved => "commands · solved".to_string(),
        Some(e) => format!("commands · {}", e.why_not()),
        None => "commands".into(),
    };
    frame.render_widget(
        CommandsPane::new(records, r.turn.checked_sub(1), t, cmd_title),
        cmd_area,
    );
    let rows = rows_from_feedback(&r.code.feedback);
    frame.render_widget(
        TestsPane::new(rows, &r.code.feedback, t, "tests".into()),
        tests_area,
    );
}
