//! The editor commands of the Chain-of-Edits DSL (DESIGN §2.2) as plain data.
//!
//! Parsing lives in `dsl`; applying in `buffer`. `Display` renders the canonical
//! command text without the `### ` turn prefix, and parsing that text gives the
//! same command back (round trip), as long as the texts hold no newline and a
//! `REPW` old text holds no ` >>>`.

use std::fmt;

/// One editor command. Line numbers are 1-based, as the model sees them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    /// `DELL <n>`: delete line n.
    Dell { line: usize },
    /// `ADDL <n> >>><text>`: insert text so that it becomes line n.
    Addl { line: usize, text: String },
    /// `REPL <n> >>><text>`: replace line n.
    Repl { line: usize, text: String },
    /// `REPW <n> >>><old> >>><new>`: replace every `old` in line n by `new`.
    Repw {
        line: usize,
        old: String,
        new: String,
    },
    /// `EXIT`: declare the code fixed.
    Exit,
}

impl Command {
    /// The keyword, e.g. `"REPW"`.
    pub fn keyword(&self) -> &'static str {
        match self {
            Command::Dell { .. } => "DELL",
            Command::Addl { .. } => "ADDL",
            Command::Repl { .. } => "REPL",
            Command::Repw { .. } => "REPW",
            Command::Exit => "EXIT",
        }
    }

    /// The line the command addresses, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            Command::Dell { line }
            | Command::Addl { line, .. }
            | Command::Repl { line, .. }
            | Command::Repw { line, .. } => Some(*line),
            Command::Exit => None,
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Dell { line } => write!(f, "DELL {line}"),
            Command::Addl { line, text } => write!(f, "ADDL {line} >>>{text}"),
            Command::Repl { line, text } => write!(f, "REPL {line} >>>{text}"),
            Command::Repw { line, old, new } => write!(f, "REPW {line} >>>{old} >>>{new}"),
            Command::Exit => write!(f, "EXIT"),
        }
    }
}
