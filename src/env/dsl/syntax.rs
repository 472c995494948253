//! What the parser produces: the parsed command with the spans of its parts, and the
//! error with its kind, span and message.
use crate::env::command::Command;

/// The keywords in the order messages list them.
pub const KEYWORDS: [&str; 5] = ["DELL", "ADDL", "REPL", "REPW", "EXIT"];

/// A byte range `start..end` into the parsed input; empty spans mark a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// An empty span at `pos`, for "something is missing here".
    pub fn at(pos: usize) -> Self {
        Span::new(pos, pos)
    }
}

/// A command with where its parts came from, for highlighting in the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCommand {
    pub command: Command,
    /// The line number as written.
    pub line_span: Option<Span>,
    /// REPW's old text.
    pub old_span: Option<Span>,
    /// ADDL/REPL's text, REPW's new text.
    pub text_span: Option<Span>,
    /// The command without the `### ` prefix, trailing whitespace and line terminator.
    pub span: Span,
}

/// Why a line is not a command. `Display` is the message alone; `render` adds carets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub span: Span,
    pub message: String,
}

/// What went wrong, for code that reacts to errors (tests, metrics) without reading text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseErrorKind {
    /// A model turn that does not start with `### `.
    MissingPrefix,
    /// A `#` prefix that is not exactly `### `.
    BadPrefix,
    /// Nothing but whitespace (after the prefix).
    Empty,
    UnknownKeyword,
    LowercaseKeyword,
    MissingLineNumber,
    /// Not a run of ASCII digits (sign, letters, non-ASCII digits…).
    BadLineNumber,
    ZeroLineNumber,
    /// Digits that overflow `usize`.
    LineNumberTooLarge,
    /// Something other than ` >>>` where it is expected.
    MissingSeparator,
    /// Missing, doubled or non-space whitespace between parts.
    BadSpacing,
    /// ADDL/REPL/REPW with nothing after the line number.
    MissingNewText,
    EmptyOldText,
    TrailingText,
    Multiline,
}

impl ParseErrorKind {
    pub const ALL: [ParseErrorKind; 15] = [
        ParseErrorKind::MissingPrefix,
        ParseErrorKind::BadPrefix,
        ParseErrorKind::Empty,
        ParseErrorKind::UnknownKeyword,
        ParseErrorKind::LowercaseKeyword,
        ParseErrorKind::MissingLineNumber,
        ParseErrorKind::BadLineNumber,
        ParseErrorKind::ZeroLineNumber,
        ParseErrorKind::LineNumberTooLarge,
        ParseErrorKind::MissingSeparator,
        ParseErrorKind::BadSpacing,
        ParseErrorKind::MissingNewText,
        ParseErrorKind::EmptyOldText,
        ParseErrorKind::TrailingText,
        ParseErrorKind::Multiline,
    ];
}
