//! Plain text editing for the config editor (many lines) and the step-mode
//! command line (one line). Cursor positions count characters, not bytes, so
//! non-ASCII text never splits a character; every operation clamps instead of
//! panicking.
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key did to the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    Changed,
    Moved,
    /// The editor does not handle this key.
    Ignored,
}

fn byte_at(s: &str, char_idx: usize) -> usize {
    s.char_indices().nth(char_idx).map_or(s.len(), |(b, _)| b)
}

/// A single line with a cursor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineInput {
    pub text: String,
    pub cursor: usize,
}

impl LineInput {
    pub fn with_text(text: &str) -> Self {
        LineInput {
            text: text.to_string(),
            cursor: text.chars().count(),
        }
    }

    /// Handles editing keys; Enter and Esc are the caller's.
    pub fn handle_key(&mut self, key: &KeyEvent) -> Edit {
        let len = self.text.chars().count();
        self.cursor = self.cursor.min(len);
        match key.code {
            KeyCode::Char(c)
                if !key
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
            {
                self.text.insert(byte_at(&self.text, self.cursor), c);
                self.cursor += 1;
                Edit::Changed
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                self.text.remove(byte_at(&self.text, self.cursor));
                Edit::Changed
            }
            KeyCode::Delete if self.cursor < len => {
                self.text.remove(byte_at(&self.text, self.cursor));
                Edit::Changed
            }
            KeyCode::Left => {
                self.cursor = self.cursor.saturating_sub(1);
                Edit::Moved
            }
            KeyCode::Right => {
                self.cursor = (self.cursor + 1).min(len);
                Edit::Moved
            }
            KeyCode::Home => {
                self.cursor = 0;
                Edit::Moved
            }
            KeyCode::End => {
                self.cursor = len;
                Edit::Moved
            }
            _ => Edit::Ignored,
        }
    }
}

/// Many lines with a cursor (row, column in characters).
#[derive(Debug, Clone, PartialEq)]
pub struct TextEditor {
    pub lines: Vec<String>,
    pub row: usize,
    pub col: usize,
}

impl TextEditor {
    pub fn new(text: &str) -> Self {
        let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
        if lines.is_empty() {
            lines.push(String::new());
        }
        TextEditor {
            lines,
            row: 0,
            col: 0,
        }
    }

    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    fn line_len(&self, row: usize) -> usize {
        self.lines.get(row).map_or(0, |l| l.chars().count())
    }

    /// Moves the cursor by whole lines (clamping the column).
    pub fn move_rows(&mut self, delta: isize) {
        let max = self.lines.len().saturating_sub(1);
        self.row = self.row.saturating_add_signed(delta).min(max);
        self.col = self.col.min(self.line_len(self.row));
    }

    pub fn goto_row(&mut self, row: usize) {
        self.row = row.min(self.lines.len().saturating_sub(1));
        self.col = self.col.min(self.line_len(self.row));
    }

    /// Handles an editing key (typing, Enter, Backspace, Delete, arrows, Home/End, Tab).
    pub fn handle_key(&mut self, key: &KeyEvent) -> Edit {
        self.goto_row(self.row);
        let len = self.line_len(self.row);
        let Some(line) = self.lines.get_mut(self.row) else {
            return Edit::Ignored;
        };
        match key.code {
            KeyCode::Char(c)
                if !key
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
            {
                line.insert(byte_at(line, self.col), c);
                self.col += 1;
                Edit::Changed
            }
            KeyCode::Tab => {
                line.insert_str(byte_at(line, self.col), "    ");
                self.col += 4;
                Edit::Changed
            }
            KeyCode::Enter => {
                let tail = line.split_off(byte_at(line, self.col));
                let indent: String = line.chars().take_while(|c| *c == ' ').collect();
                self.col = indent.chars().count();
                self.lines.insert(self.row + 1, indent + &tail);
                self.row += 1;
                Edit::Changed
            }
            KeyCode::Backspace if self.col > 0 => {
                self.col -= 1;
                line.remove(byte_at(line, self.col));
                Edit::Changed
            }
            KeyCode::Backspace if self.row > 0 => {
                let tail = self.lines.remove(self.row);
                self.row -= 1;
                self.col = self.line_len(self.row);
                if let Some(prev) = self.lines.get_mut(self.row) {
                    prev.push_str(&tail);
                }
                Edit::Changed
            }
            KeyCode::Delete if self.col < len => {
                line.remove(byte_at(line, self.col));
                Edit::Changed
            }
            KeyCode::Delete if self.row + 1 < self.lines.len() => {
                let next = self.lines.remove(self.row + 1);
                if let Some(l) = self.lines.get_mut(self.row) {
                    l.push_str(&next);
                }
                Edit::Changed
            }
            KeyCode::Left if self.col > 0 => {
                self.col -= 1;
                Edit::Moved
            }
            KeyCode::Left if self.row > 0 => {
                self.row -= 1;
                self.col = self.line_len(self.row);
                Edit::Moved
            }
            KeyCode::Right if self.col < len => {
                self.col += 1;
                Edit::Moved
            }
            KeyCode::Right if self.row + 1 < self.lines.len() => {
                self.row += 1;
                self.col = 0;
                Edit::Moved
            }
            KeyCode::Up => {
                self.move_rows(-1);
                Edit::Moved
            }
            KeyCode::Down => {
                self.move_rows(1);
                Edit::Moved
            }
            KeyCode::PageUp => {
                self.move_rows(-10);
                Edit::Moved
            }
            KeyCode::PageDown => {
                self.move_rows(10);
                Edit::Moved
            }
            KeyCode::Home => {
                self.col = 0;
                Edit::Moved
            }
            KeyCode::End => {
                self.col = len;
                Edit::Moved
            }
            _ => Edit::Ignored,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn line_input_edits_by_character() {
        let mut l = LineInput::with_text("aé");
        assert_eq!(l.handle_key(&key(KeyCode::Backspace)), Edit::Changed);
        assert_eq!(l.text, "a");
        l.handle_key(&key(KeyCode::Home));
        l.handle_key(&key(KeyCode::Char('ü')));
        assert_eq!(l.text, "üa");
        l.handle_key(&key(KeyCode::Delete));
        assert_eq!(l.text, "ü");
        assert_eq!(l.handle_key(&key(KeyCode::Esc)), Edit::Ignored);
    }

    #[test]
    fn editor_splits_and_joins_lines_keeping_indent() {
        let mut e = TextEditor::new("(\n    a: 1,\n)");
        e.goto_row(1);
        e.handle_key(&key(KeyCode::End));
        e.handle_key(&key(KeyCode::Enter));
        for c in "b: 2,".chars() {
            e.handle_key(&key(KeyCode::Char(c)));
        }
        assert_eq!(e.text(), "(\n    a: 1,\n    b: 2,\n)");
        e.handle_key(&key(KeyCode::Home));
        // Backspace at the start of a line joins it to the previous one.
        e.handle_key(&key(KeyCode::Backspace));
        assert_eq!(e.text(), "(\n    a: 1,    b: 2,\n)");
        assert_eq!((e.row, e.col), (1, 9));
        e.handle_key(&key(KeyCode::Delete));
        assert_eq!(e.text(), "(\n    a: 1,   b: 2,\n)");
        e.move_rows(100);
        assert_eq!(e.row, 2);
    }
}
