//! Chain-of-thought rationales for the CoT baseline (DESIGN §5). The paper's s1K reasoning data
//! is not available, so each rationale is synthesised from what is known about the bug: the line
//! diff between the buggy and the fixed program (the same alignment the repair trace uses),
//! read token by token to say *what* is wrong on each line and *why* in terms a programmer
//! would use. The operators that made the bug only disambiguate wording (a line replaced by an
//! unrelated one). Output is deterministic prose of 2–8 sentences, each edit one sentence.

use crate::data::corrupt::code_tokens;
use crate::data::trace::{LineEdit, line_edits};
use crate::env::buffer::Buffer;

/// At most this many edits get a sentence of their own; the rest share one.
const MAX_EXPLAINED: usize = 6;

const COMPARISONS: [&str; 6] = ["<", "<=", ">", ">=", "==", "!="];
const ARITHMETIC: [&str; 10] = ["+", "-", "*", "/", "//", "%", "+=", "-=", "*=", "//="];

/// A short step-by-step explanation of how `buggy` differs from `fixed` and why.
pub fn rationale(buggy: &str, fixed: &str, operators: &[&str]) -> String {
    let (a, b) = (Buffer::from_code(buggy), Buffer::from_code(fixed));
    let edits = line_edits(a.lines(), b.lines());
    if edits.is_empty() {
        return "I read the code line by line against the task and every step does what it should. \
                No line needs to change."
            .to_owned();
    }
    let donor_hint = operators.iter().any(|op| op.contains("donor"));
    let mut explained = Vec::new();
    let mut i = 0;
    while let Some(edit) = edits.get(i) {
        if let Some(sentence) = explain_move(edit, edits.get(i + 1)) {
            explained.push(sentence);
            i += 2;
            continue;
        }
        explained.push(match edit {
            LineEdit::Change { line, old, new } => {
                (*line, explain_change(*line, old, new, donor_hint))
            }
            LineEdit::Insert { line, text } => (*line, explain_insert(*line, text, a.len())),
            LineEdit::Delete { line, old } => (*line, explain_delete(*line, old, a.lines())),
        });
        i += 1;
    }
    let mut sentences = vec![
        "Let me go through the code line by line and check each step against the task.".to_owned(),
    ];
    if explained.len() > MAX_EXPLAINED {
        let rest: Vec<String> = explained
            .split_off(MAX_EXPLAINED - 1)
            .iter()
            .map(|(line, _)| line.to_string())
            .collect();
        sentences.extend(explained.into_iter().map(|(_, s)| s));
        sentences.push(format!(
            "Lines {} also differ from what the task needs and must be brought in line with it.",
            join_and(&rest)
        ));
    } else {
        sentences.extend(explained.into_iter().map(|(_, s)| s));
    }
    sentences.push(if edits.len() == 1 {
        "With that one change the code does what the tests expect.".to_owned()
    } else {
        format!(
            "With these {} changes the code does what the tests expect.",
            edits.len()
        )
    });
    sentences.join(" ")
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn indent_width(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Explains one changed line from the tokens that differ between its old and new text.
fn explain_change(n: usize, old: &str, new: &str, donor_hint: bool) -> String {
    let (o, w) = (old.trim(), new.trim());
    if o == w {
        return format!(
            "Line {n}, `{o}`, is indented by {} spaces, which puts it in the wrong block; it belongs at {} spaces.",
            indent_width(old),
            indent_width(new)
        );
    }
    let (ta, tb) = (code_tokens(old), code_tokens(new));
    let k = ta.iter().zip(&tb).take_while(|(x, y)| x.1 == y.1).count();
    let s = ta[k..]
        .iter()
        .rev()
        .zip(tb[k..].iter().rev())
        .take_while(|(x, y)| x.1 == y.1)
        .count();
    let da: Vec<&str> = ta[k..ta.len() - s].iter().map(|t| t.1).collect();
    let db: Vec<&str> = tb[k..tb.len() - s].iter().map(|t| t.1).collect();
    let only = |xs: &[&str], set: &[&str]| xs.len() == 1 && set.contains(&xs[0]);
    if k == 0 && da.is_empty() && db == ["return"] {
        return format!(
            "Line {n} computes `{o}` but throws the value away, so the function returns `None`; it should be `{w}`."
        );
    }
    let negation =
        |xs: &[&str]| xs.contains(&"not") && xs.iter().all(|t| ["not", "(", ")"].contains(t));
    if (da.is_empty() && negation(&db)) || (db.is_empty() && negation(&da)) {
        return format!("Line {n} tests the opposite of what it should: `{o}` must be `{w}`.");
    }
    if let ([x], [y]) = (da.as_slice(), db.as_slice()) {
        if only(&da, &COMPARISONS) && only(&db, &COMPARISONS) {
            let why = match (*x, *y) {
                ("<", "<=") | (">", ">=") => "the boundary value must be included",
                ("<=", "<") | (">=", ">") => "the boundary value must be left out",
                ("==", "!=") | ("!=", "==") => "the equality test is reversed",
                _ => "the comparison points the wrong way",
            };
            return format!("Line {n} compares with `{x}`, but {why}, so it should be `{y}`.");
        }
        if only(&da, &ARITHMETIC) && only(&db, &ARITHMETIC) {
            return format!(
                "Line {n} applies `{x}` where the calculation needs `{y}`, so it computes the wrong value."
            );
        }
        match (*x, *y) {
            ("or", "and") => {
                return format!(
                    "Line {n} joins the conditions with `or`, but both of them have to hold, so it should use `and`."
                );
            }
            ("and", "or") => {
                return format!(
                    "Line {n} joins the conditions with `and`, but either one is enough, so it should use `or`."
                );
            }
            ("True", "False") | ("False", "True") => {
                return format!("Line {n} uses `{x}` where the value must be `{y}`.");
            }
            _ => {}
        }
        if let (Ok(p), Ok(q)) = (x.parse::<i64>(), y.parse::<i64>())
            && p.abs_diff(q) == 1
        {
            return format!(
                "Line {n} uses the constant `{x}`, which is off by one; the right value is `{y}`."
            );
        }
        let ident = |t: &str| {
            t.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
        };
        if ident(x) && ident(y) {
            return format!(
                "Line {n} uses `{x}` where it means `{y}`, so it works on the wrong value."
            );
        }
    }
    let spans = match (
        subscript(old, &ta, k, ta.len() - s),
        subscript(new, &tb, k, tb.len() - s),
    ) {
        (Some(sa), Some(sb)) => Some((sa, sb)),
        _ if k > 0 && da.len().max(db.len()) <= 4 && (da.contains(&"[") || db.contains(&"[")) => {
            diff_span(old, &ta, k, s).zip(diff_span(new, &tb, k, s))
        }
        _ => None,
    };
    if let Some((sa, sb)) = spans {
        return format!("Line {n} reads the wrong position: `{sa}` should be `{sb}`.");
    }
    if donor_hint && 2 * (k + s) < ta.len().max(tb.len()) {
        return format!(
            "Line {n}, `{o}`, has nothing to do with this computation; the step needed there is `{w}`."
        );
    }
    format!("Line {n} reads `{o}`, but to do what the task asks it should read `{w}`.")
}

/// The subscript expression (`name[...]`) that encloses the differing tokens `k..end`.
fn subscript<'a>(line: &'a str, toks: &[(usize, &str)], k: usize, end: usize) -> Option<&'a str> {
    let open = if toks.get(k).is_some_and(|t| t.1 == "[") {
        k
    } else {
        let mut depth = 0i32;
        (0..k.min(toks.len())).rev().find(|&i| {
            match toks[i].1 {
                "]" | ")" | "}" => depth += 1,
                "[" | "(" | "{" => depth -= 1,
                _ => {}
            }
            depth < 0 && toks[i].1 == "["
        })?
    };
    let mut depth = 0i32;
    let close = (open..toks.len()).find(|&i| {
        match toks[i].1 {
            "[" | "(" | "{" => depth += 1,
            "]" | ")" | "}" => depth -= 1,
            _ => {}
        }
        depth == 0
    })?;
    if end > close + 1 {
        return None;
    }
    let start = open.checked_sub(1).map_or(toks[open].0, |i| toks[i].0);
    line.get(start..toks[close].0 + 1)
}

/// The text of the differing tokens `k..len - s`, starting one token early to include the
/// expression a bracket attaches to.
fn diff_span<'a>(line: &'a str, toks: &[(usize, &str)], k: usize, s: usize) -> Option<&'a str> {
    let first = toks.get(k.checked_sub(1)?)?;
    let last = if toks.len() - s > k {
        toks.get(toks.len() - s - 1)?
    } else {
        first
    };
    line.get(first.0..last.0 + last.1.len())
}

/// A deleted line inserted again elsewhere (an adjacent Delete/Insert pair with the same text).
fn explain_move(first: &LineEdit, second: Option<&LineEdit>) -> Option<(usize, String)> {
    let (from, text, to) = match (first, second?) {
        (LineEdit::Delete { line, old }, LineEdit::Insert { line: to, text })
        | (LineEdit::Insert { line: to, text }, LineEdit::Delete { line, old })
            if old == text =>
        {
            (*line, text.trim(), *to)
        }
        _ => return None,
    };
    let place = if to > from {
        format!("after line {}", to - 1)
    } else {
        format!("before line {to}")
    };
    Some((
        from,
        format!("Line {from}, `{text}`, is in the wrong place: it has to come {place}."),
    ))
}

fn explain_insert(n: usize, text: &str, len: usize) -> String {
    let t = text.trim();
    let place = if n > len {
        format!("at the end, after line {len}")
    } else {
        format!("before line {n}")
    };
    if t.starts_with("return") {
        format!(
            "The function never hands back its result, so it returns `None`; `{t}` is missing {place}."
        )
    } else {
        format!("A step is missing {place}: the code needs `{t}` there.")
    }
}

fn explain_delete(n: usize, old: &str, lines: &[String]) -> String {
    let t = old.trim();
    let repeats = |i: Option<usize>| i.and_then(|i| lines.get(i)).is_some_and(|l| l.trim() == t);
    if repeats(n.checked_sub(2)) || repeats(Some(n)) {
        format!("Line {n} repeats `{t}`, so that step happens twice; the extra copy must go.")
    } else {
        format!(
            "Line {n}, `{t}`, does not belong here and only disturbs the computation, so it should be removed."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::corrupt::Operator;

    const GOOD: &str = "def f(xs, t):\n    n = 0\n    for x in xs:\n        if x < t:\n            n += x\n    return n\n";

    fn explain(buggy: &str) -> String {
        rationale(buggy, GOOD, &[])
    }

    #[test]
    fn table_of_single_line_bugs() {
        let cases: [(&str, &str); 10] = [
            (
                "        if x <= t:",
                "Line 4 compares with `<=`, but the boundary value must be left out, so it should be `<`.",
            ),
            (
                "        if x > t:",
                "Line 4 compares with `>`, but the comparison points the wrong way, so it should be `<`.",
            ),
            (
                "            n -= x",
                "Line 5 applies `-=` where the calculation needs `+=`, so it computes the wrong value.",
            ),
            (
                "            n += t",
                "Line 5 uses `t` where it means `x`, so it works on the wrong value.",
            ),
            (
                "        if not x < t:",
                "Line 4 tests the opposite of what it should: `if not x < t:` must be `if x < t:`.",
            ),
            (
                "    n = 1",
                "Line 2 uses the constant `1`, which is off by one; the right value is `0`.",
            ),
            (
                "    n",
                "Line 6 computes `n` but throws the value away, so the function returns `None`; it should be `return n`.",
            ),
            (
                "        n += x",
                "Line 5, `n += x`, is indented by 8 spaces, which puts it in the wrong block; it belongs at 12 spaces.",
            ),
            (
                "    for x in xs[1:]:",
                "Line 3 reads the wrong position: `xs[1:]` should be `xs`.",
            ),
            (
                "    n = xs",
                "Line 2 reads `n = xs`, but to do what the task asks it should read `n = 0`.",
            ),
        ];
        for (bad, want) in cases {
            let good: Vec<&str> = GOOD.lines().collect();
            let n: usize = want
                .split(' ')
                .nth(1)
                .unwrap()
                .trim_end_matches(',')
                .parse()
                .unwrap();
            let mut lines = good.clone();
            lines[n - 1] = bad;
            let text = explain(&(lines.join("\n") + "\n"));
            assert!(text.contains(want), "{bad:?}: {text}");
        }
    }

    #[test]
    fn subscripts_are_quoted_whole() {
        let text = rationale("y = a[i + 1]\n", "y = a[i]\n", &[]);
        assert!(
            text.contains("Line 1 reads the wrong position: `a[i + 1]` should be `a[i]`."),
            "{text}"
        );
        let text = rationale("y = a[0] + b\n", "y = a[-1] + b\n", &[]);
        assert!(text.contains("`a[0]` should be `a[-1]`."), "{text}");
        let two_bugs = rationale(
            "if i[i] < n and m != 0:\n",
            "if xs[i] < n and m == 0:\n",
            &[],
        );
        assert!(
            two_bugs.contains("Line 1 reads `if i[i] < n and m != 0:`, but"),
            "{two_bugs}"
        );
        let beyond = rationale("y = a[i] + b\n", "y = a[j] - b\n", &[]);
        assert!(
            beyond.contains("Line 1 reads `y = a[i] + b`, but"),
            "{beyond}"
        );
    }

    #[test]
    fn line_level_bugs_and_whole_text() {
        let swapped = "def f(xs, t):\n    n = 0\n    for x in xs:\n        if x < t:\n            n += x\n    return n\n"
            .replace("    n = 0\n    for x in xs:\n", "    for x in xs:\n    n = 0\n");
        assert_eq!(
            explain(&swapped),
            "Let me go through the code line by line and check each step against the task. Line 3, `n = 0`, is \
             in the wrong place: it has to come before line 2. With these 2 changes the code does what the tests \
             expect."
        );
        let duplicated = GOOD.replace("    n = 0\n", "    n = 0\n    n = 0\n");
        assert!(explain(&duplicated).contains(
            "Line 3 repeats `n = 0`, so that step happens twice; the extra copy must go."
        ));
        let missing = GOOD.replace("    return n\n", "");
        assert!(explain(&missing).contains("`return n` is missing at the end, after line 5."));
        let donor = GOOD.replace("    n = 0", "    print(len(s.split()))");
        assert!(
            rationale(&donor, GOOD, &["replace_with_donor_line"])
                .contains("has nothing to do with this computation")
        );
        assert_eq!(rationale(GOOD, GOOD, &[]).matches(". ").count() + 1, 2);
    }

    #[test]
    fn never_names_the_machinery_and_stays_short() {
        let many = GOOD.replace("    ", "  ");
        for buggy in [many.as_str(), "x = 1\n", ""] {
            let text = rationale(buggy, GOOD, &["swap_comparison", "delete_line"]);
            for op in Operator::ALL {
                assert!(!text.contains(op.name()), "{text}");
            }
            assert!(!text.to_lowercase().contains("corrupt"), "{text}");
            assert!(text.ends_with('.'), "{text}");
            let count = text.matches(". ").count() + 1;
            assert!((2..=8).contains(&count), "{count}: {text}");
        }
        assert_eq!(
            rationale("x = 1\n", "x = 2\n", &[]),
            rationale("x = 1\n", "x = 2\n", &[])
        );
    }

    #[test]
    fn many_edits_share_one_sentence() {
        let buggy: String = (0..9).map(|i| format!("v{i} = {i}\n")).collect();
        let fixed: String = (0..9).map(|i| format!("v{i} = {}\n", i + 10)).collect();
        let text = rationale(&buggy, &fixed, &[]);
        assert_eq!(text.matches(". ").count() + 1, 8, "{text}");
        assert!(text.contains("Lines 6, 7, 8 and 9 also differ"), "{text}");
        assert!(
            text.ends_with("With these 9 changes the code does what the tests expect."),
            "{text}"
        );
    }
}
