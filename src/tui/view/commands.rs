//! The commands pane: the episode's DSL stream, one turn per row with its
//! validity, reward and log-probability (blank when a person typed it). The
//! selected turn (the one the code pane shows) is highlighted and kept in view.
use super::code::scroll_for;
use super::frame::pane_block;
use crate::protocol::TurnRecord;
use crate::tui::style::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

pub struct CommandsPane<'a> {
    turns: &'a [TurnRecord],
    selected: Option<usize>,
    theme: &'a Theme,
    title: String,
}

impl<'a> CommandsPane<'a> {
    pub fn new(
        turns: &'a [TurnRecord],
        selected: Option<usize>,
        theme: &'a Theme,
        title: String,
    ) -> Self {
        CommandsPane {
            turns,
            selected,
            theme,
            title,
        }
    }
}

impl Widget for CommandsPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.theme;
        let block = pane_block(t, self.title, false);
        let inner = block.inner(area);
        block.render(area, buf);
        if self.turns.is_empty() {
            Paragraph::new(Line::styled("(no turns yet)", t.muted())).render(inner, buf);
            return;
        }
        let rows = usize::from(inner.height.saturating_sub(1));
        let skip = scroll_for(self.selected, self.turns.len(), rows);
        let mut lines = vec![Line::styled(" t  ok reward  logp  command", t.muted())];
        for (i, turn) in self.turns.iter().enumerate().skip(skip).take(rows) {
            let (mark, mark_style) = if !turn.valid {
                ("✗", t.bad())
            } else if turn.solved {
                ("✓", t.ok())
            } else {
                ("·", t.muted())
            };
            let logp = turn
                .logprob
                .map_or("     ".to_string(), |l| format!("{l:>5.1}"));
            let shown = turn.command.as_deref().unwrap_or(&turn.text);
            let mut spans = vec![
                Span::raw(format!("{:>2}  ", turn.turn)),
                Span::styled(mark, mark_style),
                Span::raw(format!(" {:>+6.1} {logp}  ", turn.reward)),
                Span::raw(shown.to_string()),
            ];
            if let Some(e) = &turn.error {
                spans.push(Span::styled(format!("  ({e})"), t.bad()));
            }
            let line = Line::from(spans);
            lines.push(if Some(i) == self.selected {
                line.style(t.selected())
            } else {
                line
            });
        }
        Paragraph::new(lines).render(inner, buf);
    }
}
