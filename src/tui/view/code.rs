//! The code pane: highlighted buffer lines with the state's `L<n>` numbers in
//! the gutter and the last edited line marked (`▶` and a background). The view
//! scrolls so the edited line stays on screen in long programs.
use super::frame::pane_block;
use crate::tui::state::code_view::CodeView;
use crate::tui::style::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

pub struct CodePane<'a> {
    view: &'a CodeView,
    theme: &'a Theme,
    title: String,
}

impl<'a> CodePane<'a> {
    pub fn new(view: &'a CodeView, theme: &'a Theme, title: String) -> Self {
        CodePane { view, theme, title }
    }
}

/// First line to show so that `target` (0-based) sits in view, a third from the top.
pub fn scroll_for(target: Option<usize>, total: usize, height: usize) -> usize {
    match target {
        Some(t) if total > height && t >= height.saturating_sub(1) => {
            t.saturating_sub(height / 3).min(total - height)
        }
        _ => 0,
    }
}

impl Widget for CodePane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let block = pane_block(t, self.title, false);
        let inner = block.inner(area);
        block.render(area, buf);
        let v = self.view;
        if v.styled.is_empty() {
            Paragraph::new(Line::styled("(nothing to show yet)", t.muted())).render(inner, buf);
            return;
        }
        let width = v.numbers.iter().max().map_or(1, |n| n.to_string().len());
        let edited_idx = v
            .edited
            .and_then(|e| v.numbers.iter().position(|&n| n == e));
        let skip = scroll_for(edited_idx, v.styled.len(), usize::from(inner.height));
        let lines: Vec<Line> = v
            .styled
            .iter()
            .enumerate()
            .skip(skip)
            .take(usize::from(inner.height))
            .map(|(i, spans)| {
                let num = v.numbers.get(i).copied().unwrap_or(0);
                let edited = Some(i) == edited_idx;
                let gutter = if num == 0 {
                    format!("{:>width$} ", "?")
                } else {
                    format!("{num:>width$} ")
                };
                let marker = if edited { "▶" } else { " " };
                let mut out = vec![
                    Span::styled(gutter, t.muted()),
                    Span::styled(marker, t.warn()),
                ];
                out.extend(spans.iter().cloned());
                let line = Line::from(out);
                if edited {
                    line.style(Style::new().bg(t.edited_bg))
                } else {
                    line
                }
            })
            .collect();
        Paragraph::new(lines).render(inner, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::scroll_for;

    #[test]
    fn scrolls_only_when_the_target_would_be_hidden() {
        assert_eq!(scroll_for(Some(3), 10, 20), 0);
        assert_eq!(scroll_for(Some(3), 30, 10), 0);
        assert_eq!(scroll_for(Some(25), 30, 10), 20);
        assert_eq!(scroll_for(Some(15), 30, 10), 12);
        assert_eq!(scroll_for(None, 30, 10), 0);
    }
}
