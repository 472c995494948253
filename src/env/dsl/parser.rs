//! The hand-written recursive-descent body of the DSL parser: keyword, line
//! number, `>>>` separators and the REPW split, each failure with a byte span
//! and a message a person can act on.
use super::syntax::{KEYWORDS, ParseError, ParseErrorKind, ParsedCommand, Span};
use crate::env::command::Command;

pub(super) fn err(kind: ParseErrorKind, span: Span, message: String) -> ParseError {
    ParseError {
        kind,
        span,
        message,
    }
}

pub(super) fn keyword_list() -> String {
    KEYWORDS.join(", ")
}

pub(super) fn usage(keyword: &str) -> &'static str {
    match keyword {
        "DELL" => "DELL <n>",
        "ADDL" => "ADDL <n> >>><text>",
        "REPL" => "REPL <n> >>><text>",
        "REPW" => "REPW <n> >>><old> >>><new>",
        _ => "EXIT",
    }
}

/// Quotes user text for a message, shortened so one long line cannot flood the feedback.
pub(super) fn quote(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    match text.char_indices().nth(MAX_CHARS) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
    }
}

pub(super) fn first_word(text: &str) -> &str {
    let text = text.trim_start();
    text.split(char::is_whitespace).next().unwrap_or(text)
}

pub(super) fn leading_ws_len(text: &str) -> usize {
    text.len() - text.trim_start().len()
}

/// Where the command text ends: drops one final `\n`, rejects any other, drops one `\r`.
pub(super) fn content_end(input: &str) -> Result<usize, ParseError> {
    let mut end = input.strip_suffix('\n').map_or(input.len(), str::len);
    if let Some(pos) = input[..end].find('\n') {
        return Err(err(
            ParseErrorKind::Multiline,
            Span::new(pos, pos + 1),
            format!(
                "a command must fit on one line, but a line break follows {}; send one command per turn",
                quote(&input[..pos])
            ),
        ));
    }
    if input[..end].ends_with('\r') {
        end -= 1;
    }
    Ok(end)
}

/// Finds the `###` prefix: `Ok(None)` when the line does not start with `#`, else the
/// offset after `### ` (or after a bare `###` followed only by whitespace, so the body
/// parser reports the line as empty).
pub(super) fn strip_prefix(input: &str, end: usize) -> Result<Option<usize>, ParseError> {
    let line = &input[..end];
    let hashes = line.bytes().take_while(|&b| b == b'#').count();
    if hashes == 0 {
        return Ok(None);
    }
    if hashes != 3 {
        return Err(err(
            ParseErrorKind::BadPrefix,
            Span::new(0, hashes),
            format!(
                "the prefix must be exactly \"### \" (three \"#\" and one space), found {}",
                quote(&line[..hashes])
            ),
        ));
    }
    let rest = &line[3..];
    if rest.trim().is_empty() {
        return Ok(Some(3));
    }
    if !rest.starts_with(' ') {
        return Err(err(
            ParseErrorKind::BadPrefix,
            Span::at(3),
            format!(
                "put one space after \"###\", e.g. \"### DELL 3\"; found {}",
                quote(first_word(line))
            ),
        ));
    }
    Ok(Some(4))
}

pub(super) fn parse_body(
    input: &str,
    start: usize,
    end: usize,
) -> Result<ParsedCommand, ParseError> {
    let line = &input[..end];
    let body = &line[start..];
    if body.trim().is_empty() {
        return Err(err(
            ParseErrorKind::Empty,
            Span::new(start, end),
            format!("empty command: expected one of {}", keyword_list()),
        ));
    }
    let ws = leading_ws_len(body);
    if ws > 0 {
        return Err(err(
            ParseErrorKind::BadSpacing,
            Span::new(start, start + ws),
            format!(
                "remove the whitespace before the command; found {}",
                quote(&body[..ws])
            ),
        ));
    }
    let keyword = parse_keyword(line, start)?;
    let after_kw = start + keyword.len();
    let done = |command, line_span, old_span, text_span, cmd_end| {
        Ok(ParsedCommand {
            command,
            line_span,
            old_span,
            text_span,
            span: Span::new(start, cmd_end),
        })
    };
    if keyword == "EXIT" {
        expect_only_whitespace(line, after_kw, "EXIT")?;
        return done(Command::Exit, None, None, None, after_kw);
    }
    let (n, n_span) = parse_line_number(line, keyword, after_kw)?;
    let n_text = &line[start..n_span.end];
    match keyword {
        "DELL" => {
            expect_only_whitespace(line, n_span.end, n_text)?;
            done(
                Command::Dell { line: n },
                Some(n_span),
                None,
                None,
                n_span.end,
            )
        }
        "ADDL" | "REPL" => {
            let text_start = expect_arrow(line, keyword, n_span.end)?;
            let text = line[text_start..].to_owned();
            let command = if keyword == "ADDL" {
                Command::Addl { line: n, text }
            } else {
                Command::Repl { line: n, text }
            };
            done(
                command,
                Some(n_span),
                None,
                Some(Span::new(text_start, end)),
                end,
            )
        }
        _ => {
            let old_start = expect_arrow(line, keyword, n_span.end)?;
            let (old_span, new_start) = split_repw(line, old_start)?;
            let command = Command::Repw {
                line: n,
                old: line[old_span.start..old_span.end].to_owned(),
                new: line[new_start..].to_owned(),
            };
            done(
                command,
                Some(n_span),
                Some(old_span),
                Some(Span::new(new_start, end)),
                end,
            )
        }
    }
}

/// Reads the keyword at `start`. A keyword glued to a non-letter (`DELL3`, `ADDL>>>x`)
/// counts as that keyword so the next step can say what belongs after it.
pub(super) fn parse_keyword(line: &str, start: usize) -> Result<&'static str, ParseError> {
    let rest = &line[start..];
    let word = first_word(rest);
    for keyword in KEYWORDS {
        let Some(head) = word.get(..keyword.len()) else {
            continue;
        };
        let glued_to_letter = word[keyword.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_');
        if !head.eq_ignore_ascii_case(keyword) || glued_to_letter {
            continue;
        }
        if head != keyword {
            return Err(err(
                ParseErrorKind::LowercaseKeyword,
                Span::new(start, start + keyword.len()),
                format!("{} must be upper case: {keyword}", quote(head)),
            ));
        }
        return Ok(keyword);
    }
    Err(err(
        ParseErrorKind::UnknownKeyword,
        Span::new(start, start + word.len()),
        format!(
            "unknown command {}: expected one of {}",
            quote(word),
            keyword_list()
        ),
    ))
}

pub(super) fn expect_only_whitespace(line: &str, pos: usize, what: &str) -> Result<(), ParseError> {
    let rest = &line[pos..];
    if rest.trim().is_empty() {
        return Ok(());
    }
    let start = pos + leading_ws_len(rest);
    let end = pos + rest.trim_end().len();
    let keyword = what.get(..4).unwrap_or(what);
    let takes = if keyword == "EXIT" {
        "EXIT takes nothing after it".to_owned()
    } else {
        format!("{keyword} takes only a line number: {}", usage(keyword))
    };
    Err(err(
        ParseErrorKind::TrailingText,
        Span::new(start, end),
        format!(
            "unexpected text after {}: {}; {takes}",
            quote(what),
            quote(&line[start..end])
        ),
    ))
}

/// Reads ` <n>` after the keyword ending at `pos`; returns the number and its span.
pub(super) fn parse_line_number(
    line: &str,
    keyword: &str,
    pos: usize,
) -> Result<(usize, Span), ParseError> {
    let rest = &line[pos..];
    let ws = leading_ws_len(rest);
    let after = &rest[ws..];
    if after.is_empty() || after.starts_with('>') {
        return Err(err(
            ParseErrorKind::MissingLineNumber,
            Span::at(pos + ws),
            format!("{keyword} needs a line number: {}", usage(keyword)),
        ));
    }
    if &rest[..ws] != " " {
        let message = if ws == 0 {
            format!(
                "put one space between {keyword} and the line number: {}",
                usage(keyword)
            )
        } else {
            format!(
                "use exactly one space between {keyword} and the line number, found {}",
                quote(&rest[..ws])
            )
        };
        return Err(err(
            ParseErrorKind::BadSpacing,
            Span::new(pos, pos + ws),
            message,
        ));
    }
    let start = pos + ws;
    let len = after
        .find(|c: char| c.is_whitespace() || c == '>')
        .unwrap_or(after.len());
    let digits = &after[..len];
    let span = Span::new(start, start + len);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(
            ParseErrorKind::BadLineNumber,
            span,
            format!(
                "line number must be a positive integer, found {}",
                quote(digits)
            ),
        ));
    }
    match digits.parse::<usize>() {
        Err(_) => Err(err(
            ParseErrorKind::LineNumberTooLarge,
            span,
            format!("line number {} is too large", quote(digits)),
        )),
        Ok(0) => Err(err(
            ParseErrorKind::ZeroLineNumber,
            span,
            format!("line numbers start at 1, found {}", quote(digits)),
        )),
        Ok(n) => Ok((n, span)),
    }
}

/// Expects ` >>>` right after the line number ending at `pos`; returns where the text starts.
pub(super) fn expect_arrow(line: &str, keyword: &str, pos: usize) -> Result<usize, ParseError> {
    let rest = &line[pos..];
    if rest.trim().is_empty() {
        let what = if keyword == "REPW" {
            "the old and the new text"
        } else {
            "the text"
        };
        return Err(err(
            ParseErrorKind::MissingNewText,
            Span::at(pos),
            format!(
                "{keyword} needs {what} after the line number: {}",
                usage(keyword)
            ),
        ));
    }
    let ws = leading_ws_len(rest);
    let after = &rest[ws..];
    if after.starts_with(">>>") {
        if &rest[..ws] == " " {
            return Ok(pos + ws + 3);
        }
        return Err(err(
            ParseErrorKind::BadSpacing,
            Span::new(pos, pos + ws),
            format!(
                "put exactly one space between the line number and \">>>\": {}",
                usage(keyword)
            ),
        ));
    }
    let found = first_word(after);
    Err(err(
        ParseErrorKind::MissingSeparator,
        Span::new(pos + ws, pos + ws + found.len()),
        format!(
            "expected \" >>>\" after the line number, found {}: {}",
            quote(found),
            usage(keyword)
        ),
    ))
}

/// Splits REPW's `old >>>new` starting at `start`: old's span and where new starts.
pub(super) fn split_repw(line: &str, start: usize) -> Result<(Span, usize), ParseError> {
    let body = &line[start..];
    if let Some(i) = body.find(" >>>") {
        if i == 0 {
            return Err(err(
                ParseErrorKind::EmptyOldText,
                Span::at(start),
                format!(
                    "the old text of REPW is empty; put the text to replace right after the first \">>>\": {}",
                    usage("REPW")
                ),
            ));
        }
        return Ok((Span::new(start, start + i), start + i + 4));
    }
    if let Some(i) = body.find(">>>") {
        return Err(err(
            ParseErrorKind::BadSpacing,
            Span::at(start + i),
            format!(
                "put one space before the second \">>>\" of REPW: {}",
                usage("REPW")
            ),
        ));
    }
    if body.trim().is_empty() {
        return Err(err(
            ParseErrorKind::MissingNewText,
            Span::at(line.len()),
            format!("REPW needs the old and the new text: {}", usage("REPW")),
        ));
    }
    Err(err(
        ParseErrorKind::MissingSeparator,
        Span::at(line.len()),
        format!(
            "missing \" >>>\" between the old and new text of REPW: {}",
            usage("REPW")
        ),
    ))
}
