//! The parser of the Chain-of-Edits command language (DESIGN §2.2), with byte spans
//! and caret diagnostics.
//!
//! It is hand-written rather than generated because the language is one line long and
//! what matters is the error path: a person (or a model, through `Invalid command:`
//! feedback) must learn from the message what to type instead. Every error carries a
//! [`ParseErrorKind`], a byte [`Span`] into the input as given, and a message that
//! quotes the offending text; [`ParseError::render`] draws it under the line.
//!
//! # Grammar
//!
//! ```text
//! turn     = "### " command              model turns (parse_model_turn); optional when typed
//! command  = "DELL" SP n WS*
//!          | "ADDL" SP n SP ">>>" text
//!          | "REPL" SP n SP ">>>" text
//!          | "REPW" SP n SP ">>>" old " >>>" new
//!          | "EXIT" WS*
//! n        = ASCII-DIGIT+                 value 1..=usize::MAX (leading zeros allowed)
//! text     = any chars, verbatim          may be empty (an empty line); leading spaces kept
//! old      = any chars, non-empty         ends at the first " >>>" after the first ">>>"
//! new      = any chars, verbatim          may be empty
//! SP       = exactly one ' '              WS = any Unicode whitespace
//! ```
//!
//! Line rules, applied before the grammar: one final `\n` is a line terminator and is
//! dropped; any other `\n` is a [`ParseErrorKind::Multiline`] error (callers cut model
//! turns at the first newline, so one left over means the input really holds two
//! lines); then a single trailing `\r` is dropped. Keywords are upper case. The parser
//! is total: every input, any Unicode, gives `Ok` or `Err`, never a panic, and all
//! spans lie on char boundaries.

use parser::{content_end, err, first_word, keyword_list, parse_body, quote, strip_prefix};

mod diagnostic;
mod parser;
mod syntax;

pub use syntax::{KEYWORDS, ParseError, ParseErrorKind, ParsedCommand, Span};
#[cfg(test)]
mod tests;

/// Parses a command typed by a person or read from stdin; the `### ` prefix is optional.
pub fn parse_command(input: &str) -> Result<ParsedCommand, ParseError> {
    let end = content_end(input)?;
    let start = strip_prefix(input, end)?.unwrap_or(0);
    parse_body(input, start, end)
}

/// Parses a model's assistant message, which must be exactly `### <command>`.
pub fn parse_model_turn(input: &str) -> Result<ParsedCommand, ParseError> {
    let end = content_end(input)?;
    if input[..end].trim().is_empty() {
        return Err(err(
            ParseErrorKind::Empty,
            Span::new(0, end),
            format!(
                "empty turn: expected \"### \" and a command, e.g. \"### DELL 3\"; commands are {}",
                keyword_list()
            ),
        ));
    }
    match strip_prefix(input, end)? {
        Some(start) => parse_body(input, start, end),
        None => Err(err(
            ParseErrorKind::MissingPrefix,
            Span::at(0),
            format!(
                "a model turn must start with \"### \" and then the command, e.g. \"### DELL 3\"; found {}",
                quote(first_word(&input[..end]))
            ),
        )),
    }
}
