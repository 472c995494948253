//! Python syntax highlighting with syntect, turned into ratatui spans.
//!
//! The syntax and theme sets take tens of milliseconds to load, so they load
//! once per process (the app warms them on a background thread at start-up)
//! and highlighted code is cached in the pane state, not recomputed per frame.
//! Only foreground colours and font styles are taken from the syntect theme;
//! the background stays the workbench theme's.
use crate::tui::style::color::ColorMode;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use std::sync::OnceLock;
use syntect::easy::HighlightLines;
use syntect::highlighting::{FontStyle, ThemeSet};
use syntect::parsing::SyntaxSet;

struct Sets {
    syntaxes: SyntaxSet,
    themes: ThemeSet,
}

static SETS: OnceLock<Sets> = OnceLock::new();

fn sets() -> &'static Sets {
    SETS.get_or_init(|| Sets {
        syntaxes: SyntaxSet::load_defaults_newlines(),
        themes: ThemeSet::load_defaults(),
    })
}

/// Loads the syntect sets now (call from a background thread to hide the cost).
pub fn warm_up() {
    sets();
}

/// One styled line per input line. Lines are highlighted in order, so a string
/// or bracket opened on one line colours the next ones as Python would read them.
pub fn highlight_python(
    lines: &[String],
    syntax_theme: &str,
    mode: ColorMode,
) -> Vec<Vec<Span<'static>>> {
    let s = sets();
    let (Some(syntax), Some(theme)) = (
        s.syntaxes.find_syntax_by_extension("py"),
        s.themes.themes.get(syntax_theme),
    ) else {
        return plain(lines);
    };
    let mut h = HighlightLines::new(syntax, theme);
    let mut out = Vec::with_capacity(lines.len());
    for line in lines {
        let with_nl = format!("{line}\n");
        match h.highlight_line(&with_nl, &s.syntaxes) {
            Ok(ranges) => out.push(
                ranges
                    .into_iter()
                    .filter_map(|(style, text)| {
                        let text = text.trim_end_matches('\n');
                        (!text.is_empty())
                            .then(|| Span::styled(text.to_string(), convert(style, mode)))
                    })
                    .collect(),
            ),
            Err(_) => out.push(vec![Span::raw(line.clone())]),
        }
    }
    out
}

fn plain(lines: &[String]) -> Vec<Vec<Span<'static>>> {
    lines.iter().map(|l| vec![Span::raw(l.clone())]).collect()
}

fn convert(style: syntect::highlighting::Style, mode: ColorMode) -> Style {
    let c = style.foreground;
    let fg: Color = mode.rgb(c.r, c.g, c.b);
    let mut out = Style::new().fg(fg);
    if style.font_style.contains(FontStyle::BOLD) {
        out = out.add_modifier(Modifier::BOLD);
    }
    if style.font_style.contains(FontStyle::ITALIC) {
        out = out.add_modifier(Modifier::ITALIC);
    }
    if style.font_style.contains(FontStyle::UNDERLINE) {
        out = out.add_modifier(Modifier::UNDERLINED);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_get_a_colour_and_text_is_kept() {
        let lines = vec!["def f(x):".to_string(), "    return 'a'".to_string()];
        let out = highlight_python(&lines, "base16-ocean.dark", ColorMode::TrueColor);
        assert_eq!(out.len(), 2);
        let text: Vec<String> = out
            .iter()
            .map(|l| l.iter().map(|s| s.content.as_ref()).collect())
            .collect();
        assert_eq!(text, lines);
        assert!(out[0].len() > 1, "def should be a span of its own");
        let plain = highlight_python(&lines, "no such theme", ColorMode::TrueColor);
        assert_eq!(plain[0].len(), 1);
    }
}
