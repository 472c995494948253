//! A small Python tokenizer: just enough to find token boundaries, strings and comments.
pub(super) fn indent_of(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Name,
    Number,
    Str,
    Op,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Tok {
    pub(super) kind: Kind,
    pub(super) start: usize,
    pub(super) end: usize,
}

impl Tok {
    pub(super) fn text<'a>(&self, line: &'a str) -> &'a str {
        line.get(self.start..self.end).unwrap_or("")
    }
}

pub(super) const OPS3: [&str; 5] = ["**=", "//=", ">>=", "<<=", "..."];
pub(super) const OPS2: [&str; 19] = [
    "!=", "==", "<=", ">=", "->", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@=", "**", "//",
    "<<", ">>", ":=",
];

/// Scans a string body from `k` to just past `delim`; `false` when the line ends first.
pub(super) fn scan_string(b: &[u8], mut k: usize, delim: &'static [u8]) -> (usize, bool) {
    while let Some(&c) = b.get(k) {
        if c == b'\\' {
            k += 2;
        } else if b[k..].starts_with(delim) {
            return (k + delim.len(), true);
        } else {
            k += 1;
        }
    }
    (b.len(), false)
}

/// Tokenizes one physical line, dropping comments. `open` carries the delimiter of a
/// triple-quoted string left open by an earlier line. Every boundary is at an ASCII byte or the
/// line's end, hence on a char boundary.
pub(super) fn tokenize(line: &str, open: &mut Option<&'static [u8]>) -> Vec<Tok> {
    let b = line.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    if let Some(delim) = *open {
        let (end, closed) = scan_string(b, 0, delim);
        toks.push(Tok {
            kind: Kind::Str,
            start: 0,
            end,
        });
        if !closed {
            return toks;
        }
        *open = None;
        i = end;
    }
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
    while let Some(&c) = b.get(i) {
        let start = i;
        let quote_at = if word(c) && !c.is_ascii_digit() {
            while b.get(i).is_some_and(|&c| word(c)) {
                i += 1;
            }
            let prefix = i - start <= 2 && b[start..i].iter().all(|c| b"rRbBfFuU".contains(c));
            if prefix && matches!(b.get(i), Some(b'\'' | b'"')) {
                Some(i)
            } else {
                None
            }
        } else if c == b'\'' || c == b'"' {
            Some(i)
        } else {
            None
        };
        let kind = if let Some(q) = quote_at {
            let delim: &'static [u8] = match &b[q..] {
                [b'\'', b'\'', b'\'', ..] => b"'''",
                [b'"', b'"', b'"', ..] => b"\"\"\"",
                [b'\'', ..] => b"'",
                _ => b"\"",
            };
            let (end, closed) = scan_string(b, q + delim.len(), delim);
            if !closed && delim.len() == 3 {
                *open = Some(delim);
            }
            i = end;
            Kind::Str
        } else if i > start {
            Kind::Name
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            i += 1;
            while let Some(&d) = b.get(i) {
                let sign = matches!(d, b'+' | b'-') && matches!(b[i - 1], b'e' | b'E');
                if !(word(d) || d == b'.' || (sign && !b[start..i].contains(&b'x'))) {
                    break;
                }
                i += 1;
            }
            Kind::Number
        } else if c == b'#' {
            break;
        } else if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else {
            let rest = &line[i..];
            let len = OPS3
                .iter()
                .chain(&OPS2)
                .find(|op| rest.starts_with(*op))
                .map_or(1, |op| op.len());
            i += len;
            Kind::Op
        };
        toks.push(Tok {
            kind,
            start,
            end: i,
        });
    }
    toks
}

/// The code tokens of one line with their byte offsets (strings whole, comments dropped), for
/// explaining edits.
pub(crate) fn code_tokens(line: &str) -> Vec<(usize, &str)> {
    tokenize(line, &mut None)
        .iter()
        .map(|t| (t.start, t.text(line)))
        .collect()
}

pub(super) const KEYWORDS: [&str; 35] = [
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];
pub(super) const BUILTINS: [&str; 40] = [
    "abs",
    "all",
    "any",
    "bin",
    "bool",
    "chr",
    "dict",
    "divmod",
    "enumerate",
    "filter",
    "float",
    "format",
    "hash",
    "hex",
    "int",
    "isinstance",
    "iter",
    "len",
    "list",
    "map",
    "max",
    "min",
    "next",
    "object",
    "oct",
    "open",
    "ord",
    "pow",
    "print",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "sorted",
    "str",
    "sum",
    "tuple",
    "zip",
    "self",
];

/// A program with its tokens, line by line.
pub(super) struct Program {
    pub(super) lines: Vec<String>,
    pub(super) toks: Vec<Vec<Tok>>,
    /// Whether the line starts inside a triple-quoted string (its indentation means nothing).
    pub(super) in_string: Vec<bool>,
}

impl Program {
    pub(super) fn new(lines: &[String]) -> Self {
        let mut open = None;
        let mut in_string = Vec::new();
        let toks = lines
            .iter()
            .map(|l| {
                in_string.push(open.is_some());
                tokenize(l, &mut open)
            })
            .collect();
        Program {
            lines: lines.to_vec(),
            toks,
            in_string,
        }
    }
}

/// Depth of bracket nesting before each token.
pub(super) fn depths(line: &str, toks: &[Tok]) -> Vec<usize> {
    let mut depth = 0usize;
    toks.iter()
        .map(|t| match t.text(line) {
            "(" | "[" | "{" if t.kind == Kind::Op => {
                depth += 1;
                depth - 1
            }
            ")" | "]" | "}" if t.kind == Kind::Op => {
                depth = depth.saturating_sub(1);
                depth
            }
            _ => depth,
        })
        .collect()
}

/// Whether a token ends an operand, so that an operator after it is binary (not unary `-x`,
/// `*args`) and a `[` after it is a subscript (not a list display).
pub(super) fn ends_operand(line: &str, tok: Option<&Tok>) -> bool {
    tok.is_some_and(|t| match t.kind {
        Kind::Number | Kind::Str => true,
        Kind::Name => {
            !KEYWORDS.contains(&t.text(line)) || ["True", "False", "None"].contains(&t.text(line))
        }
        Kind::Op => matches!(t.text(line), ")" | "]" | "}"),
    })
}
