//! Caret diagnostics for parse errors: the offending line (windowed when long)
//! with carets under the span.
use super::syntax::ParseError;

impl ParseError {
    /// The message with the offending line and carets under the span. Long lines are
    /// shown as a window around the span; tabs and control characters are drawn as one
    /// space each so the carets line up (wide characters may still shift them).
    pub fn render(&self, input: &str) -> String {
        const WIDTH: usize = 80;
        let start = floor_boundary(input, self.span.start);
        let line_start = input[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = input[start..].find('\n').map_or(input.len(), |i| start + i);
        let end = floor_boundary(input, self.span.end.clamp(start, line_end));
        let line: Vec<char> = input[line_start..line_end].chars().collect();
        let col = input[line_start..start].chars().count();
        let span_chars = input[start..end].chars().count();

        let w0 = col
            .saturating_sub(WIDTH / 3)
            .min(line.len().saturating_sub(WIDTH));
        let w1 = (w0 + WIDTH).min(line.len());
        let mut shown: String = line[w0..w1]
            .iter()
            .map(|&c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut caret_col = col - w0;
        if w0 > 0 {
            shown.insert(0, '…');
            caret_col += 1;
        }
        if w1 < line.len() {
            shown.push('…');
        }
        let carets = span_chars.min(w1.saturating_sub(col)).max(1);
        // No trailing spaces: golden files and terminals both lose them.
        let source = format!("  | {}", shown.trim_end());
        format!(
            "error: {}\n{}\n  | {}{}",
            self.message,
            source.trim_end(),
            " ".repeat(caret_col),
            "^".repeat(carets)
        )
    }
}

/// The largest char boundary ≤ `pos`, so spans from any source can slice `text`.
pub(super) fn floor_boundary(text: &str, pos: usize) -> usize {
    let mut pos = pos.min(text.len());
    while !text.is_char_boundary(pos) {
        pos -= 1;
    }
    pos
}
