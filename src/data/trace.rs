//! Repair traces (DESIGN §3): the shortest line diff from a buggy program to its fix, written
//! as DSL commands that end in `EXIT`, and a replayer that checks them.
//!
//! The diff is an edit-distance alignment of lines in which replacing a line costs one command,
//! like inserting or deleting one. Plain LCS (fewest insertions + deletions) can split one
//! changed line into a delete and an insert in different places (`[a, b]` → `[b, b]` gives
//! `DELL 1` + `ADDL 2` where `REPL 1` suffices), so the alignment minimises commands directly
//! and breaks ties first by keeping the most lines in place (so a moved line is one `DELL` and
//! one `ADDL`, as LCS would have it, not two `REPL`s), then by the preference REPW, REPL, ADDL,
//! DELL. Commands are emitted from the
//! bottom of the file up, so every line number in a trace is the number of that line in the
//! buggy listing the model first sees: no edit shifts a line that a later command addresses.

use crate::env::buffer::{ApplyError, Buffer};
use crate::env::command::Command;

/// A trace that does not apply to the program it was meant for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("command {step} `{command}` cannot be applied: {source}")]
    Apply {
        /// 1-based position of the command in the trace.
        step: usize,
        command: String,
        #[source]
        source: ApplyError,
    },
}

/// One line-level difference, numbered as in the buggy program (1-based), top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineEdit {
    /// Buggy line `line` should read `new`.
    Change {
        line: usize,
        old: String,
        new: String,
    },
    /// `text` is missing before buggy line `line` (one past the end: at the end).
    Insert { line: usize, text: String },
    /// Buggy line `line` should go.
    Delete { line: usize, old: String },
}

/// Above this many alignment cells (about a 1000 × 1000-line middle section) lines are paired
/// by position instead: still a valid repair, no longer the shortest.
const MAX_CELLS: usize = 1 << 20;
/// Lines longer than this are replaced whole: the REPW search is cubic in the line length.
const MAX_REPW_LINE: usize = 400;

/// An alignment cost: (commands, lines not kept in place, preference weight), compared in order.
type Cost = (u64, u64, u64);
const KEEP: Cost = (0, 0, 0);
const SUB_SIMILAR: Cost = (1, 2, 1);
const SUB: Cost = (1, 2, 2);
const INS: Cost = (1, 1, 3);
const DEL: Cost = (1, 1, 4);

fn add(x: Cost, y: Cost) -> Cost {
    (x.0 + y.0, x.1 + y.1, x.2 + y.2)
}

fn times(k: usize, c: Cost) -> Cost {
    let k = k as u64;
    (k * c.0, k * c.1, k * c.2)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Move {
    Keep,
    Sub,
    Ins,
    Del,
}

/// The fewest commands that turn `buggy` into `fixed` (both read as `Buffer::from_code` does),
/// ending with `Exit`. They run from the bottom of the file up, so each line number is the one
/// in the buggy listing; applying them in order with `Buffer::apply` gives
/// `Buffer::from_code(fixed)`.
pub fn repair_trace(buggy: &str, fixed: &str) -> Vec<Command> {
    let (a, b) = (Buffer::from_code(buggy), Buffer::from_code(fixed));
    let mut out: Vec<Command> = line_edits(a.lines(), b.lines())
        .into_iter()
        .rev()
        .map(|edit| match edit {
            LineEdit::Change { line, old, new } => change_command(line, &old, new),
            LineEdit::Insert { line, text } => Command::Addl { line, text },
            LineEdit::Delete { line, .. } => Command::Dell { line },
        })
        .collect();
    out.push(Command::Exit);
    out
}

/// Applies the edits of `commands` up to the first `Exit` and returns the code.
pub fn replay(buggy: &str, commands: &[Command]) -> Result<String, ReplayError> {
    let mut buffer = Buffer::from_code(buggy);
    for (i, command) in commands
        .iter()
        .take_while(|c| **c != Command::Exit)
        .enumerate()
    {
        buffer.apply(command).map_err(|source| ReplayError::Apply {
            step: i + 1,
            command: command.to_string(),
            source,
        })?;
    }
    Ok(buffer.to_code())
}

/// The cheapest alignment of `a` onto `b` as line edits, top to bottom.
pub(crate) fn line_edits(a: &[String], b: &[String]) -> Vec<LineEdit> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a_mid, b_mid) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let moves = if (a_mid.len() + 1).saturating_mul(b_mid.len() + 1) > MAX_CELLS {
        positional(a_mid.len(), b_mid.len())
    } else {
        align(a_mid, b_mid)
    };
    let (mut i, mut j) = (0, 0);
    let mut edits = Vec::new();
    for mv in moves {
        let line = prefix + i + 1;
        match mv {
            Move::Keep => {}
            Move::Sub if a_mid[i] == b_mid[j] => {}
            Move::Sub => edits.push(LineEdit::Change {
                line,
                old: a_mid[i].clone(),
                new: b_mid[j].clone(),
            }),
            Move::Ins => edits.push(LineEdit::Insert {
                line,
                text: b_mid[j].clone(),
            }),
            Move::Del => edits.push(LineEdit::Delete {
                line,
                old: a_mid[i].clone(),
            }),
        }
        i += usize::from(mv != Move::Ins);
        j += usize::from(mv != Move::Del);
    }
    edits
}

fn positional(n: usize, m: usize) -> Vec<Move> {
    let extra = if n > m { Move::Del } else { Move::Ins };
    std::iter::repeat_n(Move::Sub, n.min(m))
        .chain(std::iter::repeat_n(extra, n.abs_diff(m)))
        .collect()
}

/// Suffix-cost dynamic programme: `cost[i][j]` is the cheapest way to turn `a[i..]` into `b[j..]`.
/// Only two rows of costs are kept; the chosen moves are kept whole for the walk back. Ties go to
/// the earlier move in Keep, Sub, Ins, Del order.
fn align(a: &[String], b: &[String]) -> Vec<Move> {
    let (n, m) = (a.len(), b.len());
    let width = m + 1;
    let mut moves = vec![Move::Keep; (n + 1) * width];
    let mut below: Vec<Cost> = (0..=m).map(|j| times(m - j, INS)).collect();
    for j in 0..m {
        moves[n * width + j] = Move::Ins;
    }
    for i in (0..n).rev() {
        let mut row = vec![KEEP; width];
        row[m] = times(n - i, DEL);
        moves[i * width + m] = Move::Del;
        for j in (0..m).rev() {
            let mut best = if a[i] == b[j] {
                (below[j + 1], Move::Keep)
            } else {
                let sub = if similar(&a[i], &b[j]) {
                    SUB_SIMILAR
                } else {
                    SUB
                };
                (add(below[j + 1], sub), Move::Sub)
            };
            for candidate in [
                (add(row[j + 1], INS), Move::Ins),
                (add(below[j], DEL), Move::Del),
            ] {
                if candidate.0 < best.0 {
                    best = candidate;
                }
            }
            row[j] = best.0;
            moves[i * width + j] = best.1;
        }
        below = row;
    }
    let (mut i, mut j) = (0, 0);
    let mut path = Vec::with_capacity(n + m);
    while i < n || j < m {
        let mv = moves[i * width + j];
        path.push(mv);
        i += usize::from(mv != Move::Ins);
        j += usize::from(mv != Move::Del);
    }
    path
}

/// Whether two lines share most of their text, so that a REPW can likely express the change.
fn similar(a: &str, b: &str) -> bool {
    let (p, s) = common_ends(a, b);
    2 * (p + s) >= a.len().max(b.len())
}

/// Byte lengths of the common prefix and the common suffix (not overlapping it in either line),
/// both on char boundaries.
fn common_ends(a: &str, b: &str) -> (usize, usize) {
    let p = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i);
    let room = a.len().min(b.len()) - p;
    let s = a
        .chars()
        .rev()
        .zip(b.chars().rev())
        .take_while(|(x, y)| x == y)
        .map(|(c, _)| c.len_utf8())
        .scan(0, |acc, len| {
            *acc += len;
            Some(*acc)
        });
    (p, s.take_while(|&len| len <= room).last().unwrap_or(0))
}

/// REPW when a single substitution expresses the change in a shorter command, else REPL.
fn change_command(line: usize, old_line: &str, new_line: String) -> Command {
    match repw_parts(old_line, &new_line) {
        Some((old, new)) if old.len() + " >>>".len() + new.len() < new_line.len() => {
            Command::Repw { line, old, new }
        }
        _ => Command::Repl {
            line,
            text: new_line,
        },
    }
}

/// The shortest `old` (with its `new`) such that `a.replace(old, new) == b`, widened so that it
/// does not cut a word or an operator in two. `None` when no such pair suits the REPW syntax.
fn repw_parts(a: &str, b: &str) -> Option<(String, String)> {
    if a == b || a.len() > MAX_REPW_LINE {
        return None;
    }
    let (p, s) = common_ends(a, b);
    let (la, lb) = (a.len(), b.len());
    let exact = |x: usize, y: usize| -> Option<(String, String)> {
        let old = a.get(x..y).filter(|o| !o.is_empty())?;
        let new = b.get(x..lb - (la - y))?;
        (a.replace(old, new) == b).then(|| (old.to_owned(), new.to_owned()))
    };
    let mut found = None;
    'search: for e in 0..=la {
        if (la - s - p) + (lb - s - p) + 2 * e + " >>>".len() >= lb {
            break;
        }
        for l in 0..=e {
            let (Some(x), y) = (p.checked_sub(l), la - s + (e - l)) else {
                continue;
            };
            if y <= la
                && a.is_char_boundary(x)
                && a.is_char_boundary(y)
                && let Some(pair) = exact(x, y)
            {
                found = Some((x, y, pair));
                break 'search;
            }
        }
    }
    let (mut x, mut y, pair) = found?;
    let class = |c: u8| {
        if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
            1
        } else if b"<>=!+-*/%&|^@:~".contains(&c) {
            2
        } else {
            0
        }
    };
    let glued = |i: usize| {
        i > 0
            && i < la
            && class(a.as_bytes()[i - 1]) != 0
            && class(a.as_bytes()[i - 1]) == class(a.as_bytes()[i])
    };
    while glued(x) {
        x -= 1;
    }
    while glued(y) {
        y += 1;
    }
    let (old, new) = exact(x, y).unwrap_or(pair);
    (!old.contains(" >>>") && !old.ends_with('\r') && !new.ends_with('\r')).then_some((old, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repw(line: usize, old: &str, new: &str) -> Command {
        Command::Repw {
            line,
            old: old.into(),
            new: new.into(),
        }
    }

    fn repl(line: usize, text: &str) -> Command {
        Command::Repl {
            line,
            text: text.into(),
        }
    }

    fn addl(line: usize, text: &str) -> Command {
        Command::Addl {
            line,
            text: text.into(),
        }
    }

    /// One buggy/fixed pair per kind of bug, with the trace worked out by hand.
    #[test]
    fn table_of_traces() {
        let cases: Vec<(&str, &str, &str, Vec<Command>)> = vec![
            (
                "comparison",
                "if a <= b:\n    pass\n",
                "if a < b:\n    pass\n",
                vec![repw(1, "<=", "<")],
            ),
            (
                "comparison insert",
                "if a < b:\n",
                "if a <= b:\n",
                vec![repw(1, "<", "<=")],
            ),
            (
                "arithmetic",
                "y = a - b\n",
                "y = a + b\n",
                vec![repw(1, "-", "+")],
            ),
            (
                "boolean",
                "ok = a or b\n",
                "ok = a and b\n",
                vec![repw(1, "or", "and")],
            ),
            (
                "off by one",
                "    return n + 2\n",
                "    return n + 1\n",
                vec![repw(1, "2", "1")],
            ),
            (
                "whole number",
                "    limit = 10\n",
                "    limit = 11\n",
                vec![repw(1, "10", "11")],
            ),
            (
                "REPW no shorter",
                "x = 10\n",
                "x = 11\n",
                vec![repl(1, "x = 11")],
            ),
            (
                "wrong variable",
                "    xs = x + x1\n",
                "    xs = x + y1\n",
                vec![repw(1, "x1", "y1")],
            ),
            (
                "drop return",
                "def f(x):\n    x + 1\n",
                "def f(x):\n    return x + 1\n",
                vec![repw(2, "x", "return x")],
            ),
            (
                "negate",
                "while not done:\n",
                "while done:\n",
                vec![repw(1, "not ", "")],
            ),
            (
                "index",
                "    return xs[i + 1] * 2\n",
                "    return xs[i] * 2\n",
                vec![repw(1, " + 1", "")],
            ),
            (
                "last index",
                "    return xs[-1]\n",
                "    return xs[0]\n",
                vec![repw(1, "-1", "0")],
            ),
            (
                "index, REPW no shorter",
                "y = a[i + 1]\n",
                "y = a[i]\n",
                vec![repl(1, "y = a[i]")],
            ),
            (
                "reindent",
                "if x:\ny = 1\n",
                "if x:\n    y = 1\n",
                vec![repl(2, "    y = 1")],
            ),
            (
                "deleted line",
                "a = 1\nc = 3\n",
                "a = 1\nb = 2\nc = 3\n",
                vec![addl(2, "b = 2")],
            ),
            (
                "duplicate",
                "a = 1\na = 1\nb = 2\n",
                "a = 1\nb = 2\n",
                vec![Command::Dell { line: 2 }],
            ),
            (
                "donor inserted",
                "a = 1\nimport os\nb = 2\n",
                "a = 1\nb = 2\n",
                vec![Command::Dell { line: 2 }],
            ),
            (
                "donor replaced",
                "a = 1\nimport os\n",
                "a = 1\nb = 2\n",
                vec![repl(2, "b = 2")],
            ),
            (
                "swap",
                "b = 2\na = 1\n",
                "a = 1\nb = 2\n",
                vec![Command::Dell { line: 2 }, addl(1, "a = 1")],
            ),
            (
                "`>>>` in the texts is fine",
                "s = 'a >>> b'\n",
                "s = 'a >>>> b'\n",
                vec![repw(1, " b", "> b")],
            ),
            (
                "old would hold ` >>>`",
                "a >>> a >>> and a tail that makes REPW pay\n",
                "b >>> a >>> and a tail that makes REPW pay\n",
                vec![repl(1, "b >>> a >>> and a tail that makes REPW pay")],
            ),
            (
                "bottom-up, original numbering",
                "a = 1\nx = 0\nb = 2\nb = 2\nc = 3\n",
                "a = 1\nb = 2\nc = 3\nd = 4\n",
                vec![
                    addl(6, "d = 4"),
                    Command::Dell { line: 4 },
                    Command::Dell { line: 2 },
                ],
            ),
            (
                "one edit, not delete + insert",
                "a\nb\n",
                "b\nb\n",
                vec![repl(1, "b")],
            ),
            ("nothing to do", "x = 1\n", "x = 1\n", vec![]),
        ];
        for (name, buggy, fixed, mut want) in cases {
            want.push(Command::Exit);
            let got = repair_trace(buggy, fixed);
            assert_eq!(got, want, "{name}");
            assert_eq!(replay(buggy, &got).unwrap(), fixed, "{name}");
        }
    }

    #[test]
    fn replay_reports_the_failing_step() {
        let trace = [
            Command::Dell { line: 1 },
            Command::Dell { line: 1 },
            Command::Exit,
        ];
        let err = replay("x = 1\n", &trace).unwrap_err();
        assert_eq!(
            err.to_string(),
            "command 2 `DELL 1` cannot be applied: line 1 is out of range: DELL takes a line from 1 to 0 \
             (the code has 0 lines)"
        );
        let after_exit = [Command::Exit, Command::Dell { line: 5 }];
        assert_eq!(replay("x = 1\n", &after_exit).unwrap(), "x = 1\n");
    }

    #[test]
    fn repw_never_cuts_a_word_and_is_exact() {
        assert_eq!(
            repw_parts("    total", "    return total"),
            Some(("total".into(), "return total".into()))
        );
        assert_eq!(
            repw_parts("n = n + 1", "n = m + 1"),
            Some((" n".into(), " m".into()))
        );
        assert_eq!(repw_parts("", "x"), None);
        assert_eq!(
            repw_parts("    x = 'é'", "    x = 'è'"),
            Some(("é".into(), "è".into()))
        );
    }

    #[test]
    fn big_inputs_fall_back_to_positional_pairs() {
        let a: String = (0..1500).map(|i| format!("a{i}\n")).collect();
        let b: String = (0..1200).map(|i| format!("b{i}\n")).collect();
        let trace = repair_trace(&a, &b);
        assert_eq!(trace.len(), 1501);
        assert_eq!(replay(&a, &trace).unwrap(), b);
    }
}
