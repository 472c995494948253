//! The plots pane: one metric against step, train and eval lines together,
//! switchable with the `cycle_plot` key. Axis bounds come from the data with a
//! little head-room so a flat line is still visible.
use super::frame::pane_block;
use crate::tui::state::run_view::{PlotKind, Plots};
use crate::tui::style::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Widget};

pub struct PlotPane<'a> {
    plots: &'a Plots,
    kind: PlotKind,
    theme: &'a Theme,
}

impl<'a> PlotPane<'a> {
    pub fn new(plots: &'a Plots, kind: PlotKind, theme: &'a Theme) -> Self {
        PlotPane { plots, kind, theme }
    }
}

/// Compact axis labels: 1234 → "1234", 0.01234 → "0.0123", 12345678 → "1.2e7".
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

impl Widget for PlotPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let title = format!("plot · {} vs step", self.kind.label());
        let block = pane_block(t, title, false);
        let Some(lines) = self.plots.get(self.kind) else {
            block.render(area, buf);
            return;
        };
        let mut bounds: Option<([f64; 2], [f64; 2])> = None;
        for (xb, yb) in lines.iter().filter_map(|s| s.bounds()) {
            bounds = Some(match bounds {
                None => (xb, yb),
                Some((x, y)) => (
                    [x[0].min(xb[0]), x[1].max(xb[1])],
                    [y[0].min(yb[0]), y[1].max(yb[1])],
                ),
            });
        }
        let Some((xb, yb)) = bounds else {
            let inner = block.inner(area);
            block.render(area, buf);
            Paragraph::new(Line::styled(
                format!("(no {} yet; p switches metric)", self.kind.label()),
                t.muted(),
            ))
            .render(inner, buf);
            return;
        };
        let (xb, yb) = (
            if xb[1] > xb[0] {
                xb
            } else {
                [xb[0], xb[0] + 1.0]
            },
            widen(yb),
        );
        let names = ["train", "eval"];
        let colours = [t.plot_train, t.plot_eval];
        let datasets: Vec<Dataset> = lines
            .iter()
            .zip(names.iter().zip(colours))
            .filter(|(s, _)| !s.points().is_empty())
            .map(|(s, (name, colour))| {
                Dataset::default()
                    .name(*name)
                    .marker(Marker::Braille)
                    .graph_type(GraphType::Line)
                    .style(Style::new().fg(colour))
                    .data(s.points())
            })
            .collect();
        let axis = |b: [f64; 2]| {
            Axis::default()
                .style(t.muted())
                .bounds(b)
                .labels([fmt_num(b[0]), fmt_num(b[1])])
        };
        Chart::new(datasets)
            .block(block)
            .style(t.base())
            .x_axis(axis(xb))
            .y_axis(axis(yb))
            .render(area, buf);
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
