//! Where each token operator can apply, as spans of a line and the texts they may become.
use std::collections::BTreeSet;

use super::operator::Operator;
use super::pytok::{BUILTINS, KEYWORDS, Kind, Program, Tok, depths, ends_operand, indent_of};

/// One place a token operator can edit: bytes `start..end` of a line and the texts it may become.
pub(super) struct Site {
    pub(super) line: usize,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) choices: Vec<String>,
}

pub(super) fn token_sites(op: Operator, p: &Program) -> Vec<Site> {
    let mut sites = Vec::new();
    if op == Operator::WrongVariable {
        return variable_sites(p);
    }
    for (l, (line, toks)) in p.lines.iter().zip(&p.toks).enumerate() {
        let mut push = |start: usize, end: usize, choices: Vec<String>| {
            if !choices.is_empty() {
                sites.push(Site {
                    line: l,
                    start,
                    end,
                    choices,
                });
            }
        };
        let owned = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match op {
            Operator::DropReturn => {
                if let [first, second, ..] = toks.as_slice()
                    && first.kind == Kind::Name
                    && first.text(line) == "return"
                {
                    push(first.start, second.start, vec![String::new()]);
                }
            }
            Operator::NegateCondition => negate_site(line, toks, &mut push),
            Operator::WrongIndex => index_sites(line, toks, &mut push),
            _ => {
                for (k, t) in toks.iter().enumerate() {
                    let binary = ends_operand(line, k.checked_sub(1).and_then(|j| toks.get(j)));
                    let choices: Vec<String> = match (op, t.kind, t.text(line)) {
                        (Operator::SwapComparison, Kind::Op, text) => owned(match text {
                            "<" => &["<=", ">"],
                            "<=" => &["<"],
                            ">" => &[">=", "<"],
                            ">=" => &[">"],
                            "==" => &["!="],
                            "!=" => &["=="],
                            _ => &[],
                        }),
                        (Operator::SwapArithmetic, Kind::Op, text) => owned(match text {
                            "+" if binary => &["-"],
                            "-" if binary => &["+"],
                            "*" if binary => &["//", "/"],
                            "/" if binary => &["*", "//"],
                            "//" if binary => &["*", "/", "%"],
                            "%" if binary => &["//"],
                            "+=" => &["-="],
                            "-=" => &["+="],
                            "*=" => &["//="],
                            "//=" => &["*="],
                            _ => &[],
                        }),
                        (Operator::SwapBoolean, Kind::Name, text) => owned(match text {
                            "and" => &["or"],
                            "or" => &["and"],
                            "True" => &["False"],
                            "False" => &["True"],
                            _ => &[],
                        }),
                        (Operator::OffByOne, Kind::Number, text) => number_choices(text),
                        _ => Vec::new(),
                    };
                    push(t.start, t.end, choices);
                }
            }
        }
    }
    sites
}

/// `n ± 1` for a plain decimal integer literal; nothing for floats, hex, `1_000`, `007`.
pub(super) fn number_choices(text: &str) -> Vec<String> {
    let plain = text.bytes().all(|c| c.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    match text.parse::<u64>() {
        Ok(n) if plain && n < u64::MAX => {
            let mut out = vec![(n + 1).to_string()];
            out.extend(n.checked_sub(1).map(|m| m.to_string()));
            out
        }
        _ => Vec::new(),
    }
}

/// `if c:` / `elif c:` / `while c:` → `… not c:` (parenthesised unless `c` is one primary);
/// a leading `not` is removed instead.
pub(super) fn negate_site(
    line: &str,
    toks: &[Tok],
    push: &mut impl FnMut(usize, usize, Vec<String>),
) {
    let Some(first) = toks.first() else { return };
    if first.kind != Kind::Name || !["if", "elif", "while"].contains(&first.text(line)) {
        return;
    }
    let d = depths(line, toks);
    let Some(colon) = (1..toks.len()).find(|&k| d[k] == 0 && toks[k].text(line) == ":") else {
        return;
    };
    let cond = &toks[1..colon];
    let (Some(a), Some(z)) = (cond.first(), cond.last()) else {
        return;
    };
    if cond
        .iter()
        .any(|t| t.kind == Kind::Name && t.text(line) == "lambda")
    {
        return;
    }
    if a.kind == Kind::Name && a.text(line) == "not" {
        if let Some(next) = cond.get(1) {
            push(a.start, next.start, vec![String::new()]);
        }
        return;
    }
    let primary = cond.iter().zip(&d[1..colon]).all(|(t, &depth)| {
        depth > 0
            || match t.kind {
                Kind::Name => {
                    !KEYWORDS.contains(&t.text(line))
                        || ["True", "False", "None"].contains(&t.text(line))
                }
                Kind::Number | Kind::Str => true,
                Kind::Op => matches!(t.text(line), "." | "(" | ")" | "[" | "]" | "{" | "}"),
            }
    });
    let text = &line[a.start..z.end];
    push(
        a.start,
        z.end,
        vec![if primary {
            format!("not {text}")
        } else {
            format!("not ({text})")
        }],
    );
}

/// Subscripts `x[…]` closed on the same line: an index or slice bound moved by one, an empty
/// slice bound filled in, `[0]` ↔ `[-1]`.
pub(super) fn index_sites(
    line: &str,
    toks: &[Tok],
    push: &mut impl FnMut(usize, usize, Vec<String>),
) {
    let d = depths(line, toks);
    for (k, t) in toks.iter().enumerate() {
        if t.kind != Kind::Op
            || t.text(line) != "["
            || !ends_operand(line, k.checked_sub(1).and_then(|j| toks.get(j)))
        {
            continue;
        }
        let Some(close) = (k + 1..toks.len()).find(|&m| d[m] == d[k] && toks[m].text(line) == "]")
        else {
            continue;
        };
        let inner = k + 1..close;
        let top = |text: &str| {
            inner
                .clone()
                .filter(|&m| d[m] == d[k] + 1 && toks[m].text(line) == text)
                .collect::<Vec<_>>()
        };
        let colons = top(":");
        if colons.is_empty() {
            if top(",").is_empty() && !inner.is_empty() {
                bound_site(line, &toks[inner], push);
            }
            continue;
        }
        let upper_end = colons.get(1).copied().unwrap_or(close);
        for (range, empty_at, fill) in [
            (k + 1..colons[0], toks[colons[0]].start, "1"),
            (colons[0] + 1..upper_end, toks[colons[0]].end, "-1"),
        ] {
            if range.is_empty() {
                push(empty_at, empty_at, vec![fill.to_owned()]);
            } else {
                bound_site(line, &toks[range], push);
            }
        }
    }
}

pub(super) fn bound_site(
    line: &str,
    part: &[Tok],
    push: &mut impl FnMut(usize, usize, Vec<String>),
) {
    let (Some(a), Some(z)) = (part.first(), part.last()) else {
        return;
    };
    let text = &line[a.start..z.end];
    let texts: Vec<&str> = part.iter().map(|t| t.text(line)).collect();
    let choices = match texts.as_slice() {
        [n] if part[0].kind == Kind::Number && !number_choices(n).is_empty() => {
            let mut out = number_choices(n);
            if *n == "0" {
                out.push("-1".to_owned());
            }
            out
        }
        ["-", n] if part[1].kind == Kind::Number => match n.parse::<u64>() {
            Ok(m) if m < u64::MAX => {
                let closer = if m == 1 {
                    Some("0".to_owned())
                } else {
                    m.checked_sub(1).map(|k| format!("-{k}"))
                };
                std::iter::once(format!("-{}", m + 1))
                    .chain(closer)
                    .collect()
            }
            _ => Vec::new(),
        },
        [.., _, "+" | "-", "1"] => vec![line[a.start..part[part.len() - 3].end].to_owned()],
        _ => vec![format!("{text} + 1"), format!("{text} - 1")],
    };
    push(a.start, z.end, choices);
}

/// Lines grouped into scopes: each `def`/`class` opens one that lasts while lines are indented
/// deeper than its header; everything else belongs to the module scope 0.
pub(super) struct Scopes {
    pub(super) of_line: Vec<usize>,
    pub(super) header: Vec<bool>,
    /// The name each scope was defined with (empty for the module).
    pub(super) names: Vec<String>,
}

pub(super) fn scopes(p: &Program) -> Scopes {
    let mut s = Scopes {
        of_line: Vec::new(),
        header: Vec::new(),
        names: vec![String::new()],
    };
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for (l, (line, toks)) in p.lines.iter().zip(&p.toks).enumerate() {
        let mut header = false;
        if !p.in_string[l] && !toks.is_empty() {
            let indent = indent_of(line).len();
            while stack.last().is_some_and(|&(i, _)| i >= indent) {
                stack.pop();
            }
            let texts: Vec<&str> = toks.iter().take(3).map(|t| t.text(line)).collect();
            let name = match texts.as_slice() {
                ["def" | "class", name, ..] | ["async", "def", name] => Some(name.to_string()),
                _ => None,
            };
            if let Some(name) = name {
                stack.push((indent, s.names.len()));
                s.names.push(name);
                header = true;
            }
        }
        s.of_line.push(stack.last().map_or(0, |&(_, id)| id));
        s.header.push(header);
    }
    s
}

pub(super) fn is_local_candidate(text: &str) -> bool {
    !KEYWORDS.contains(&text) && !BUILTINS.contains(&text)
}

/// Occurrences of a scope's local names (parameters and assignment, `for`, `as` and `:=`
/// targets), each of which may become any other local of the same scope.
pub(super) fn variable_sites(p: &Program) -> Vec<Site> {
    let s = scopes(p);
    let mut locals: Vec<BTreeSet<String>> = vec![BTreeSet::new(); s.names.len()];
    let assign = [
        "=", "+=", "-=", "*=", "/=", "//=", "%=", "**=", "&=", "|=", "^=", ">>=", "<<=", "@=",
    ];
    for (l, (line, toks)) in p.lines.iter().zip(&p.toks).enumerate() {
        let d = depths(line, toks);
        let text = |k: usize| toks.get(k).map_or("", |t| t.text(line));
        let first_assign = (0..toks.len()).find(|&k| d[k] == 0 && assign.contains(&text(k)));
        let mut in_for = false;
        for (k, t) in toks.iter().enumerate() {
            let prev = k.checked_sub(1).map_or("", text);
            in_for = (in_for || text(k) == "for") && text(k) != "in";
            let target = if s.header[l] {
                d[k] == 1 && ["(", ",", "*", "**"].contains(&prev)
            } else {
                first_assign.is_some_and(|a| k < a) || in_for || prev == "as" || text(k + 1) == ":="
            };
            if t.kind == Kind::Name && target && prev != "." && is_local_candidate(t.text(line)) {
                locals[s.of_line[l]].insert(t.text(line).to_owned());
            }
        }
    }
    let mut sites = Vec::new();
    for (l, (line, toks)) in p.lines.iter().zip(&p.toks).enumerate() {
        let scope = s.of_line[l];
        if s.header[l] {
            continue;
        }
        let d = depths(line, toks);
        for (k, t) in toks.iter().enumerate() {
            let name = t.text(line);
            let prev = k
                .checked_sub(1)
                .and_then(|j| toks.get(j))
                .map_or("", |t| t.text(line));
            let kwarg = d[k] > 0 && toks.get(k + 1).is_some_and(|n| n.text(line) == "=");
            if t.kind != Kind::Name
                || prev == "."
                || kwarg
                || name == s.names[scope]
                || !locals[scope].contains(name)
            {
                continue;
            }
            let choices: Vec<String> = locals[scope]
                .iter()
                .filter(|n| *n != name && **n != s.names[scope])
                .cloned()
                .collect();
            if !choices.is_empty() {
                sites.push(Site {
                    line: l,
                    start: t.start,
                    end: t.end,
                    choices,
                });
            }
        }
    }
    sites
}
