//! The `?` popup: every binding of every layer with its description, straight
//! from the keymap (so a user's overrides show), plus the fixed keys of text
//! fields. Scrolls with the motion keys when it does not fit. The current
//! mode's layer comes first, so the keys that matter now are on the first screen.
use super::frame::{centered, pane_block};
use crate::tui::keymap::Layer;
use crate::tui::state::AppState;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

/// Keys handled by text fields themselves (not rebindable).
const TEXT_KEYS: &[(&str, &str)] = &[
    ("ctrl-c", "Quit, from anywhere (even a text field)"),
    ("enter", "Command line: apply the command; editor: new line"),
    ("esc", "Leave the command line or the editor"),
    ("ctrl-s", "Editor: save"),
    ("arrows home end", "Move the cursor"),
    ("backspace delete", "Delete a character"),
];

pub fn help_lines(state: &AppState) -> Vec<Line<'static>> {
    let t = &state.theme;
    let mut lines = Vec::new();
    let own = crate::tui::update::layer_of(state.mode);
    let order = std::iter::once(own).chain(Layer::ALL.into_iter().filter(|&l| l != own));
    for layer in order {
        let bindings = state.keymap.bindings(layer);
        if bindings.is_empty() {
            continue;
        }
        lines.push(Line::styled(format!("{} keys", layer.name()), t.title()));
        for b in bindings {
            let keys = b
                .keys
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ");
            lines.push(Line::from(vec![
                Span::styled(format!("  {keys:<16}"), t.warn()),
                Span::raw(b.desc.clone()),
            ]));
        }
    }
    lines.push(Line::styled("text fields".to_string(), t.title()));
    for (k, d) in TEXT_KEYS {
        lines.push(Line::from(vec![
            Span::styled(format!("  {k:<16}"), t.warn()),
            Span::raw(*d),
        ]));
    }
    lines
}

pub fn render(frame: &mut Frame, area: Rect, state: &AppState, scroll: usize) {
    let lines = help_lines(state);
    let rect = centered(area, 78, area.height.saturating_sub(2));
    let visible = usize::from(rect.height.saturating_sub(2));
    let scroll = scroll.min(lines.len().saturating_sub(visible));
    let title = format!("help · {} bindings · j/k scroll · esc closes", lines.len());
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .block(pane_block(&state.theme, title, true))
            .scroll((u16::try_from(scroll).unwrap_or(u16::MAX), 0)),
        rect,
    );
}
