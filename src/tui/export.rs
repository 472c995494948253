//! `P` in monitor mode: the plots pane's chart as an SVG file, for people who
//! would rather paste a picture than a terminal. The lines are the pane's own
//! (`view::plots::plot_lines`: same metric, x-axis, series and run names), drawn
//! with plotters' SVG backend into a string first and written in one go, so a
//! bad directory is one error naming the path, never a half-written file.
//!
//! Colours come from a fixed palette for a white page, not the terminal theme
//! (whose colours are picked for a dark or light terminal, or are ANSI indices).
use crate::tui::state::AppState;
use crate::tui::state::run_view::PlotKind;
use crate::tui::view::{PlotLine, plot_bounds as bounds, plot_lines};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// The picture's size in pixels.
pub const SIZE: (u32, u32) = (960, 540);

/// Tableau 10: distinct on white, and in the order the runs were followed.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no {0} points to plot yet")]
    Empty(String),
    #[error("cannot draw the plot: {0}")]
    Draw(String),
    #[error("cannot write the plot to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn draw_err<E: std::fmt::Display>(e: E) -> ExportError {
    ExportError::Draw(e.to_string())
}

/// The chart of `lines` as an SVG document.
pub fn render_svg(lines: &[PlotLine], title: &str, x_label: &str) -> Result<String, ExportError> {
    let Some((xb, yb)) = bounds(lines) else {
        return Err(ExportError::Empty(title.to_string()));
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(xb[0]..xb[1], yb[0]..yb[1])
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(draw_err)?;
        for (i, l) in lines
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.points.is_empty())
        {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    l.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(draw_err)?
                .label(l.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Writes monitor mode's current chart to `path`.
pub fn write_plot(state: &AppState, path: &Path) -> Result<(), ExportError> {
    let m = &state.monitor;
    let kind = m.plot.unwrap_or(PlotKind::Loss);
    let mut lines = plot_lines(&m.runs, kind, m.x_axis, &state.theme);
    // A lone run's lines are `train` and `eval`: say whose they are in the legend.
    if let [only] = m.runs.as_slice() {
        let name = only.name();
        for l in &mut lines {
            l.name = format!("{name} {}", l.name);
        }
    }
    if bounds(&lines).is_none() {
        return Err(ExportError::Empty(kind.label().to_string()));
    }
    let title = format!("{} vs {}", kind.label(), m.x_axis.label());
    let svg = render_svg(&lines, &title, m.x_axis.label())?;
    crate::util::write_atomic(path, svg.as_bytes()).map_err(|source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    })
}
