//! The plots pane: one metric of every followed run, switchable with the
//! `cycle_plot` key, against step or trained tokens (`toggle_x_axis`). One run
//! shows its train and eval lines; several show one line each (train, else
//! eval), one colour per run from the theme's `series` and a legend row of run
//! names under the chart — ratatui's own legend hides itself in a small pane,
//! and at 80×24 the names are what tells CoE from CoT. Axis bounds come from
//! the data with a little head-room so a flat line is still visible.
use super::frame::pane_block;
use crate::tui::state::followed::{FollowedRun, XAxis};
use crate::tui::state::run_view::{PlotKind, RunState};
use crate::tui::style::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, LegendPosition, Paragraph, Widget};
use std::borrow::Cow;

/// What the pane draws: the runs, which one the other panes show, and how.
pub struct PlotPane<'a> {
    pub runs: &'a [FollowedRun],
    pub current: usize,
    pub kind: PlotKind,
    pub x_axis: XAxis,
    pub theme: &'a Theme,
}

/// One line to draw.
pub struct PlotLine<'a> {
    pub name: String,
    pub color: Color,
    pub points: Cow<'a, [(f64, f64)]>,
}

/// Compact axis labels: 1234 → "1234", 0.01234 → "0.0123", 12345678 → "1.2e7".
/// One line of a chart: Braille dots joined by lines in `color`.
pub fn line_dataset<'a>(name: &str, color: Color, points: &'a [(f64, f64)]) -> Dataset<'a> {
    Dataset::default()
        .name(name.to_string())
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(Style::new().fg(color))
        .data(points)
}

/// A chart axis over `bounds`, labelled at both ends.
pub fn chart_axis<'a>(t: &Theme, bounds: [f64; 2]) -> Axis<'a> {
    Axis::default()
        .style(t.muted())
        .bounds(bounds)
        .labels([fmt_num(bounds[0]), fmt_num(bounds[1])])
}

pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn widen(b: [f64; 2]) -> [f64; 2] {
    if b[1] > b[0] {
        let pad = (b[1] - b[0]) * 0.05;
        [b[0] - pad, b[1] + pad]
    } else {
        let pad = if b[0] == 0.0 { 1.0 } else { b[0].abs() * 0.1 };
        [b[0] - pad, b[1] + pad]
    }
}

/// `points` with x mapped from step to trained tokens (points before any count are dropped).
fn by_tokens<'a>(run: &RunState, points: &'a [(f64, f64)], x_axis: XAxis) -> Cow<'a, [(f64, f64)]> {
    match x_axis {
        XAxis::Step => Cow::Borrowed(points),
        XAxis::Tokens => Cow::Owned(
            points
                .iter()
                .filter_map(|&(s, y)| run.tokens_at(s).map(|t| (t, y)))
                .collect(),
        ),
    }
}

/// The lines of `kind` for these runs: train and eval of a lone run, else one per run.
pub fn plot_lines<'a>(
    runs: &'a [FollowedRun],
    kind: PlotKind,
    x_axis: XAxis,
    theme: &Theme,
) -> Vec<PlotLine<'a>> {
    let mut out = Vec::new();
    if let [only] = runs {
        let Some(lines) = only.run.plots.get(kind) else {
            return out;
        };
        for (s, (name, color)) in lines
            .iter()
            .zip([("train", theme.plot_train), ("eval", theme.plot_eval)])
        {
            let points = by_tokens(&only.run, s.points(), x_axis);
            if !points.is_empty() {
                out.push(PlotLine {
                    name: name.into(),
                    color,
                    points,
                });
            }
        }
        return out;
    }
    for (i, r) in runs.iter().enumerate() {
        let Some([train, eval]) = r.run.plots.get(kind) else {
            continue;
        };
        let s = if train.points().is_empty() {
            eval
        } else {
            train
        };
        out.push(PlotLine {
            name: r.name(),
            color: theme.series_color(i),
            points: by_tokens(&r.run, s.points(), x_axis),
        });
    }
    out
}

/// (x, y) bounds over every line, or `None` when there is no point.
pub fn bounds(lines: &[PlotLine]) -> Option<([f64; 2], [f64; 2])> {
    let mut b: Option<([f64; 2], [f64; 2])> = None;
    for &(x, y) in lines.iter().flat_map(|l| l.points.iter()) {
        b = Some(match b {
            None => ([x, x], [y, y]),
            Some((xb, yb)) => ([xb[0].min(x), xb[1].max(x)], [yb[0].min(y), yb[1].max(y)]),
        });
    }
    b.map(|(xb, yb)| {
        let xb = if xb[1] > xb[0] {
            xb
        } else {
            [xb[0], xb[0] + 1.0]
        };
        (xb, widen(yb))
    })
}

/// The legend row: a coloured mark and the name of each line; the run shown is bold.
fn legend<'a>(lines: &[PlotLine], current: Option<&str>, theme: &Theme) -> Line<'a> {
    let mut spans = Vec::new();
    for l in lines {
        let mut name = Style::new().fg(theme.fg);
        if current == Some(l.name.as_str()) {
            name = name.add_modifier(Modifier::BOLD);
        }
        spans.push(Span::styled("━ ", Style::new().fg(l.color)));
        spans.push(Span::styled(format!("{}  ", l.name), name));
    }
    Line::from(spans)
}

impl Widget for PlotPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let title = format!("plot · {} vs {}", self.kind.label(), self.x_axis.label());
        let block = pane_block(t, title, false);
        let lines = plot_lines(self.runs, self.kind, self.x_axis, t);
        let several = self.runs.len() > 1;
        let inner = block.inner(area);
        block.render(area, buf);
        let Some((xb, yb)) = bounds(&lines) else {
            let text = match self.x_axis {
                XAxis::Step => format!("(no {} yet; p switches metric)", self.kind.label()),
                XAxis::Tokens => format!(
                    "(no {} by trained tokens yet; x: by step)",
                    self.kind.label()
                ),
            };
            Paragraph::new(Line::styled(text, t.muted())).render(inner, buf);
            return;
        };
        let (chart_area, legend_area) = if several && inner.height > 3 {
            let [c, l] = Layout::vertical([Constraint::Min(2), Constraint::Length(1)]).areas(inner);
            (c, Some(l))
        } else {
            (inner, None)
        };
        if let Some(l) = legend_area {
            let current = self.runs.get(self.current).map(FollowedRun::name);
            Paragraph::new(legend(&lines, current.as_deref(), t)).render(l, buf);
        }
        let datasets: Vec<Dataset> = lines
            .iter()
            .filter(|l| !l.points.is_empty())
            .map(|l| line_dataset(&l.name, l.color, &l.points))
            .collect();
        let mut chart = Chart::new(datasets)
            .style(t.base())
            .x_axis(chart_axis(t, xb))
            .y_axis(chart_axis(t, yb));
        if several {
            chart = chart.legend_position(None);
        } else {
            chart = chart.legend_position(Some(LegendPosition::TopRight));
        }
        chart.render(chart_area, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::fmt_num;

    #[test]
    fn numbers_stay_short() {
        assert_eq!(fmt_num(1234.0), "1234");
        assert_eq!(fmt_num(0.5), "0.500");
        assert_eq!(fmt_num(12_345_678.0), "1.2e7");
        assert_eq!(fmt_num(0.0), "0");
    }
}
