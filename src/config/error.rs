//! Config errors that name the file, the line and the offending value, with the
//! source line and a caret so a person can fix the file without guessing.
use super::locate::locate_field;

/// One validation failure: a dotted field path, the value as written, and why it is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub field: String,
    pub value: String,
    pub message: String,
}

impl Problem {
    pub fn new(field: &str, value: impl std::fmt::Display, message: impl Into<String>) -> Self {
        Problem {
            field: field.to_string(),
            value: value.to_string(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the config: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{col}: {message}\n{snippet}")]
    Parse {
        origin: String,
        line: usize,
        col: usize,
        message: String,
        snippet: String,
    },
    #[error("{}", render_invalid(.origin, .problems))]
    Invalid {
        origin: String,
        /// (line if found, problem)
        problems: Vec<(Option<usize>, Problem)>,
    },
}

impl ConfigError {
    pub(super) fn parse(origin: &str, text: &str, e: &ron::error::SpannedError) -> Self {
        let line = e.span.start.line.max(1);
        let col = e.span.start.col.max(1);
        ConfigError::Parse {
            origin: origin.to_string(),
            line,
            col,
            message: e.code.to_string(),
            snippet: snippet(text, line, col),
        }
    }

    pub(super) fn invalid(origin: &str, text: &str, problems: Vec<Problem>) -> Self {
        let problems = problems
            .into_iter()
            .map(|p| (locate_field(text, &p.field), p))
            .collect();
        ConfigError::Invalid {
            origin: origin.to_string(),
            problems,
        }
    }

    /// The first line the error points at, for editors that jump to it.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Parse { line, .. } => Some(*line),
            ConfigError::Invalid { problems, .. } => problems.iter().find_map(|(l, _)| *l),
        }
    }
}

fn render_invalid(origin: &str, problems: &[(Option<usize>, Problem)]) -> String {
    let mut out = String::new();
    for (i, (line, p)) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match line {
            Some(l) => out.push_str(&format!("{origin}:{l}: ")),
            None => out.push_str(&format!("{origin}: ")),
        }
        out.push_str(&format!("{} = {}: {}", p.field, p.value, p.message));
    }
    out
}

/// `  12 | text` and a caret under column `col` (1-based, in chars).
fn snippet(text: &str, line: usize, col: usize) -> String {
    let Some(src) = text.lines().nth(line - 1) else {
        return String::new();
    };
    let gutter = line.to_string();
    let pad = " ".repeat(gutter.len());
    let caret_pad = " ".repeat(col.saturating_sub(1).min(src.chars().count()));
    format!("{gutter} | {src}\n{pad} | {caret_pad}^")
}
