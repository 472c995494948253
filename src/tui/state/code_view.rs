//! The code pane's model: a state text (`L<n> …`, `***`, feedback) split into
//! numbered lines and feedback, highlighted once and cached. Update code marks
//! the cache stale with [`CodeView::set`]; the runtime calls [`CodeView::prepare`]
//! before drawing, so a burst of events re-highlights once per frame at most.
use crate::tui::style::color::ColorMode;
use crate::tui::style::highlight::highlight_python;
use ratatui::text::Span;

/// Splits a state into (line number, text) pairs and the feedback after `***`.
/// Lines that do not start with `L<n>` are kept with number 0 (never produced by
/// the environment, but a hand-edited events file must not break the pane).
pub fn split_state(state: &str) -> (Vec<(usize, String)>, String) {
    let mut lines = Vec::new();
    let mut rest = state;
    let mut feedback = String::new();
    while !rest.is_empty() {
        let (line, tail) = rest.split_once('\n').unwrap_or((rest, ""));
        rest = tail;
        if line == "***" {
            feedback = tail.to_string();
            break;
        }
        lines.push(parse_numbered(line));
    }
    (lines, feedback)
}

fn parse_numbered(line: &str) -> (usize, String) {
    let Some(body) = line.strip_prefix('L') else {
        return (0, line.to_string());
    };
    let digits = body.chars().take_while(char::is_ascii_digit).count();
    let (num, text) = body.split_at(digits);
    match num.parse::<usize>() {
        Ok(n) if text.is_empty() => (n, String::new()),
        Ok(n) if text.starts_with(' ') => (n, text[1..].to_string()),
        _ => (0, line.to_string()),
    }
}

/// A highlighted state, rebuilt only when its input changes.
#[derive(Debug, Clone, Default)]
pub struct CodeView {
    state: String,
    pub edited: Option<usize>,
    stale: bool,
    pub numbers: Vec<usize>,
    pub styled: Vec<Vec<Span<'static>>>,
    pub feedback: String,
}

impl CodeView {
    /// Shows `state` with `edited` marked; cheap when nothing changed.
    pub fn set(&mut self, state: &str, edited: Option<usize>) {
        if self.state != state {
            self.state = state.to_string();
            self.stale = true;
        }
        self.edited = edited;
    }

    pub fn clear(&mut self) {
        *self = CodeView::default();
    }

    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// Re-highlights if the state changed since the last call.
    pub fn prepare(&mut self, syntax_theme: &str, mode: ColorMode) {
        if !self.stale {
            return;
        }
        self.stale = false;
        let (lines, feedback) = split_state(&self.state);
        let texts: Vec<String> = lines.iter().map(|(_, t)| t.clone()).collect();
        self.numbers = lines.iter().map(|(n, _)| *n).collect();
        self.styled = highlight_python(&texts, syntax_theme, mode);
        self.feedback = feedback;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_split_into_numbered_lines_and_feedback() {
        let state = "L1 def f(a):\nL2\nL3     return a\n***\nTest 1 failed: assert f(1) == 2\nAssertionError";
        let (lines, fb) = split_state(state);
        assert_eq!(
            lines,
            vec![
                (1, "def f(a):".to_string()),
                (2, String::new()),
                (3, "    return a".to_string())
            ]
        );
        assert_eq!(fb, "Test 1 failed: assert f(1) == 2\nAssertionError");
        let (lines, fb) = split_state("garbage\nL7x");
        assert_eq!(lines, vec![(0, "garbage".into()), (0, "L7x".into())]);
        assert!(fb.is_empty());
    }

    #[test]
    fn prepare_only_rebuilds_on_change() {
        let mut v = CodeView::default();
        v.set("L1 x = 1\n***\nAll tests passed.", Some(1));
        v.prepare("base16-ocean.dark", ColorMode::Ansi256);
        assert_eq!(v.numbers, vec![1]);
        assert_eq!(v.feedback, "All tests passed.");
        v.styled.clear();
        v.set("L1 x = 1\n***\nAll tests passed.", None);
        v.prepare("base16-ocean.dark", ColorMode::Ansi256);
        assert!(v.styled.is_empty(), "unchanged state must not re-highlight");
        assert_eq!(v.edited, None);
    }
}
