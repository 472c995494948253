//! The log pane: the newest lines of the workbench's log (worker errors, job
//! output, run log events), coloured by level.
use super::frame::pane_block;
use crate::tui::state::ring::Ring;
use crate::tui::state::{Level, LogLine};
use crate::tui::style::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget};

pub struct LogPane<'a> {
    log: &'a Ring<LogLine>,
    theme: &'a Theme,
}

impl<'a> LogPane<'a> {
    pub fn new(log: &'a Ring<LogLine>, theme: &'a Theme) -> Self {
        LogPane { log, theme }
    }
}

impl Widget for LogPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let block = pane_block(t, "log", false);
        let inner = block.inner(area);
        block.render(area, buf);
        let rows = usize::from(inner.height);
        let skip = self.log.len().saturating_sub(rows);
        let lines: Vec<Line> = self
            .log
            .iter()
            .skip(skip)
            .map(|l| {
                let style = match l.level {
                    Level::Info => t.base(),
                    Level::Warn => t.warn(),
                    Level::Error => t.bad(),
                };
                Line::styled(l.text.clone(), style)
            })
            .collect();
        Paragraph::new(lines).render(inner, buf);
    }
}
