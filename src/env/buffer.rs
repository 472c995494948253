//! The editor buffer: the program as a list of lines, the edits the DSL applies to
//! it, and its `L<n> <content>` rendering (DESIGN §2.1).
//!
//! Lines are stored exactly as written (indentation included, no line break).
//! CRLF is normalised to LF on load, and a lone CR also ends a line (as it does for
//! Python), so no stored line holds a `\r`; a final newline does not make an extra
//! line. Hence `from_code(to_code(b)) == b` for every loaded buffer.

use super::command::Command;

/// Why a well-formed command cannot be applied to the current buffer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error(
        "line {line} is out of range: {keyword} takes a line from 1 to {max} (the code has {len} lines)"
    )]
    LineOutOfRange {
        keyword: &'static str,
        line: usize,
        max: usize,
        len: usize,
    },
    #[error("REPW: {old:?} does not occur in line {line}")]
    OldTextNotFound { line: usize, old: String },
    #[error("REPW: the text to replace is empty")]
    EmptyOldText,
    #[error("EXIT does not edit the code")]
    NotAnEdit,
    #[error("the text holds a line break; one command edits one line")]
    Multiline,
}

/// What an applied edit changed, for marking the last edit in the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditMark {
    /// Line n (1-based, after the edit) was inserted or changed.
    Changed(usize),
    /// A line was deleted; n is the line that now stands in its place (may be len+1).
    Deleted(usize),
}

/// The program being repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buffer {
    lines: Vec<String>,
}

impl Buffer {
    /// Splits code into lines: CRLF and lone CR → LF, split on `\n`, no extra line for a final newline.
    pub fn from_code(code: &str) -> Self {
        let code = code.replace("\r\n", "\n").replace('\r', "\n");
        let body = code.strip_suffix('\n').unwrap_or(&code);
        let lines = if code.is_empty() {
            Vec::new()
        } else {
            body.split('\n').map(str::to_owned).collect()
        };
        Buffer { lines }
    }

    /// The program text: lines joined by `\n`, with a final newline when non-empty.
    pub fn to_code(&self) -> String {
        let mut out = self.lines.join("\n");
        if !self.lines.is_empty() {
            out.push('\n');
        }
        out
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// `L<n> <content>` per line; an empty line renders as `L<n>`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push('L');
            out.push_str(&(i + 1).to_string());
            if !line.is_empty() {
                out.push(' ');
                out.push_str(line);
            }
        }
        out
    }

    /// Applies an edit command. On error the buffer is unchanged.
    pub fn apply(&mut self, cmd: &Command) -> Result<EditMark, ApplyError> {
        let len = self.lines.len();
        let check = |keyword: &'static str, line: usize, max: usize| {
            if line >= 1 && line <= max {
                Ok(line - 1)
            } else {
                Err(ApplyError::LineOutOfRange {
                    keyword,
                    line,
                    max,
                    len,
                })
            }
        };
        match cmd {
            Command::Dell { line } => {
                let i = check("DELL", *line, len)?;
                self.lines.remove(i);
                Ok(EditMark::Deleted(*line))
            }
            Command::Addl { line, text } => {
                let i = check("ADDL", *line, len + 1)?;
                no_newline(text)?;
                self.lines.insert(i, text.clone());
                Ok(EditMark::Changed(*line))
            }
            Command::Repl { line, text } => {
                let i = check("REPL", *line, len)?;
                no_newline(text)?;
                self.lines[i] = text.clone();
                Ok(EditMark::Changed(*line))
            }
            Command::Repw { line, old, new } => {
                let i = check("REPW", *line, len)?;
                if old.is_empty() {
                    return Err(ApplyError::EmptyOldText);
                }
                no_newline(new)?;
                if !self.lines[i].contains(old.as_str()) {
                    return Err(ApplyError::OldTextNotFound {
                        line: *line,
                        old: old.clone(),
                    });
                }
                self.lines[i] = self.lines[i].replace(old.as_str(), new);
                Ok(EditMark::Changed(*line))
            }
            Command::Exit => Err(ApplyError::NotAnEdit),
        }
    }
}

fn no_newline(text: &str) -> Result<(), ApplyError> {
    if text.contains(['\n', '\r']) {
        Err(ApplyError::Multiline)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rules() {
        assert_eq!(Buffer::from_code("").len(), 0);
        assert_eq!(Buffer::from_code("a\n").lines(), ["a"]);
        assert_eq!(Buffer::from_code("a\r\nb").lines(), ["a", "b"]);
        assert_eq!(Buffer::from_code("a\n\n").lines(), ["a", ""]);
        assert_eq!(Buffer::from_code("\n").lines(), [""]);
        assert_eq!(Buffer::from_code("a\r\r\nb").lines(), ["a", "", "b"]);
    }

    #[test]
    fn render_empty_line_has_no_space() {
        let b = Buffer::from_code("def f():\n\n    return 1\n");
        assert_eq!(b.render(), "L1 def f():\nL2\nL3     return 1");
    }

    #[test]
    fn code_round_trips() {
        for code in ["", "x = 1\n", "a\n\nb\n", "\n", "  \n"] {
            let b = Buffer::from_code(code);
            assert_eq!(Buffer::from_code(&b.to_code()), b, "{code:?}");
        }
    }

    #[test]
    fn edits_apply_and_errors_leave_buffer_unchanged() {
        let mut b = Buffer::from_code("a = 1\nb = 2\n");
        b.apply(&Command::Addl {
            line: 3,
            text: "c = 3".into(),
        })
        .unwrap();
        b.apply(&Command::Repw {
            line: 1,
            old: "1".into(),
            new: "10".into(),
        })
        .unwrap();
        b.apply(&Command::Dell { line: 2 }).unwrap();
        b.apply(&Command::Repl {
            line: 2,
            text: "    d".into(),
        })
        .unwrap();
        assert_eq!(b.to_code(), "a = 10\n    d\n");
        let before = b.clone();
        let err = b.apply(&Command::Dell { line: 3 }).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 3 is out of range: DELL takes a line from 1 to 2 (the code has 2 lines)"
        );
        assert!(
            b.apply(&Command::Repw {
                line: 1,
                old: "zz".into(),
                new: "y".into()
            })
            .is_err()
        );
        assert!(
            b.apply(&Command::Addl {
                line: 0,
                text: String::new()
            })
            .is_err()
        );
        assert_eq!(b, before);
    }
}
