//! Problem-set loaders, auto-detected by the fields of the first record:
//! the project's Problem schema, HumanEval (`canonical_solution`, `test`) and
//! MBPP's public schema (`text`, `code`, `test_list`). Plain or gzip.
use super::jsonl::{self, JsonlError};
use crate::task::{Problem, Task};
use serde::Deserialize;
use std::path::Path;

/// The schema a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Problem,
    Task,
    HumanEval,
    Mbpp,
}

fn detect(obj: &serde_json::Value) -> Option<Format> {
    let has = |k: &str| obj.get(k).is_some();
    if has("buggy") {
        Some(Format::Task)
    } else if has("canonical_solution") && has("test") {
        Some(Format::HumanEval)
    } else if has("text") && has("code") && has("test_list") {
        Some(Format::Mbpp)
    } else if has("solution") && has("tests") {
        Some(Format::Problem)
    } else {
        None
    }
}

fn unknown_schema(path: &Path, line: usize) -> JsonlError {
    JsonlError::Line {
        path: path.to_path_buf(),
        line,
        field: None,
        message: "unknown schema: expected a Problem (solution, tests), a Task (buggy), \
                  HumanEval (canonical_solution, test) or MBPP (text, code, test_list) record"
            .into(),
    }
}

/// Reads problems from any supported problem schema (a Task file gives its tasks'
/// problems, which needs a `solution` on each).
pub fn load_problems(path: &Path) -> Result<Vec<Problem>, JsonlError> {
    let values = jsonl::read_values(path)?;
    let Some((first_line, first)) = values.first() else {
        return Ok(Vec::new());
    };
    let format = detect(first).ok_or_else(|| unknown_schema(path, *first_line))?;
    let mut out = Vec::with_capacity(values.len());
    for (line, v) in values {
        let p = match format {
            Format::Problem => jsonl::from_value(path, line, v)?,
            Format::HumanEval => humaneval(jsonl::from_value(path, line, v)?),
            Format::Mbpp => mbpp(jsonl::from_value(path, line, v)?),
            Format::Task => {
                let t: Task = jsonl::from_value(path, line, v)?;
                let solution = t.solution.clone().ok_or_else(|| JsonlError::Line {
                    path: path.to_path_buf(),
                    line,
                    field: Some("solution".into()),
                    message: "missing (needed to use a task as a problem)".into(),
                })?;
                Problem {
                    id: t.problem_id,
                    prompt: t.prompt,
                    solution,
                    tests: t.tests,
                    setup: t.setup,
                    entry_point: t.entry_point,
                    extra: Default::default(),
                }
            }
        };
        out.push(p);
    }
    check_unique(path, out.iter().map(|p| p.id.as_str()))?;
    Ok(out)
}

/// Reads a Task file; ids must be unique.
pub fn load_tasks(path: &Path) -> Result<Vec<Task>, JsonlError> {
    let tasks: Vec<Task> = jsonl::read(path)?;
    check_unique(path, tasks.iter().map(|t| t.id.as_str()))?;
    Ok(tasks)
}

fn check_unique<'a>(path: &Path, ids: impl Iterator<Item = &'a str>) -> Result<(), JsonlError> {
    let mut seen = std::collections::HashMap::new();
    for (i, id) in ids.enumerate() {
        if let Some(first) = seen.insert(id, i + 1) {
            return Err(JsonlError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                field: Some("id".into()),
                message: format!("{id:?} already used by record {first}; ids must be unique"),
            });
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct HumanEvalRecord {
    task_id: String,
    prompt: String,
    canonical_solution: String,
    test: String,
    entry_point: String,
}

/// HumanEval: the solution is prompt + canonical body; `check(candidate)` becomes
/// single asserts when its body is plain asserts, else one `check(<entry>)` test
/// with the test module as setup.
fn humaneval(r: HumanEvalRecord) -> Problem {
    let solution = format!("{}{}", r.prompt, r.canonical_solution);
    let (setup, tests) = match split_check(&r.test, &r.entry_point) {
        Some((preamble, asserts)) => (preamble, asserts),
        None => (r.test.clone(), vec![format!("check({})", r.entry_point)]),
    };
    Problem {
        id: r.task_id,
        prompt: r.prompt,
        solution,
        tests,
        setup: if setup.trim().is_empty() {
            None
        } else {
            Some(setup)
        },
        entry_point: Some(r.entry_point),
        extra: Default::default(),
    }
}

/// Splits `def check(candidate):` into (module code outside check, one assert per
/// statement with `candidate` renamed), or None when the body is not plain asserts.
fn split_check(test: &str, entry: &str) -> Option<(String, Vec<String>)> {
    let mut preamble = String::new();
    let mut body: Vec<&str> = Vec::new();
    let mut in_check = false;
    for line in test.lines() {
        if line.starts_with("def check(") {
            in_check = true;
            continue;
        }
        if in_check && !line.trim().is_empty() && !line.starts_with([' ', '\t']) {
            in_check = false;
        }
        if in_check {
            body.push(line);
        } else {
            preamble.push_str(line);
            preamble.push('\n');
        }
    }
    let mut asserts = Vec::new();
    let mut current = String::new();
    let mut depth: i32 = 0;
    for line in body {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(t);
        depth += bracket_delta(t);
        if depth <= 0 && !t.ends_with('\\') {
            if !current.starts_with("assert ") && !current.starts_with("assert(") {
                return None;
            }
            asserts.push(rename_word(&current, "candidate", entry));
            current.clear();
            depth = 0;
        }
    }
    if !current.is_empty() || asserts.is_empty() {
        return None;
    }
    Some((preamble, asserts))
}

/// Net bracket depth of a line, ignoring brackets inside string literals.
fn bracket_delta(line: &str) -> i32 {
    let mut d = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in line.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '#' => break,
            '(' | '[' | '{' => d += 1,
            ')' | ']' | '}' => d -= 1,
            _ => {}
        }
    }
    d
}

/// Replaces whole-word occurrences of `from` by `to`.
fn rename_word(s: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    while let Some(pos) = rest.find(from) {
        let before = rest[..pos].chars().next_back();
        let after = rest[pos + from.len()..].chars().next();
        out.push_str(&rest[..pos]);
        if before.is_some_and(is_ident) || after.is_some_and(is_ident) {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = &rest[pos + from.len()..];
    }
    out.push_str(rest);
    out
}

#[derive(Deserialize)]
struct MbppRecord {
    task_id: serde_json::Value,
    text: String,
    code: String,
    test_list: Vec<String>,
    #[serde(default)]
    test_setup_code: String,
}

fn mbpp(r: MbppRecord) -> Problem {
    let solution = {
        let s = r.code.replace("\r\n", "\n");
        if s.ends_with('\n') { s } else { s + "\n" }
    };
    let entry_point = solution.lines().find_map(|l| {
        l.strip_prefix("def ")
            .and_then(|rest| rest.split('(').next())
            .map(|n| n.trim().to_string())
    });
    let id = match &r.task_id {
        serde_json::Value::String(s) => format!("mbpp/{s}"),
        other => format!("mbpp/{other}"),
    };
    Problem {
        id,
        prompt: r.text,
        solution,
        tests: r.test_list,
        setup: if r.test_setup_code.trim().is_empty() {
            None
        } else {
            Some(r.test_setup_code)
        },
        entry_point,
        extra: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_bodies_of_plain_asserts_are_split() {
        let test = "\n\nMETADATA = {}\n\n\ndef check(candidate):\n    assert candidate([1, 2]) == 3\n    # comment\n    assert candidate([\n        4]) == 4, \"msg (x\"\n    assert candidate_x(1)\n\n";
        let (pre, asserts) = split_check(test, "f").unwrap();
        assert!(pre.contains("METADATA = {}"));
        assert_eq!(
            asserts,
            [
                "assert f([1, 2]) == 3",
                "assert f([ 4]) == 4, \"msg (x\"",
                "assert candidate_x(1)"
            ]
        );
    }

    #[test]
    fn check_bodies_with_other_statements_are_kept_whole() {
        let test = "def check(candidate):\n    for x in range(3):\n        assert candidate(x)\n";
        assert!(split_check(test, "f").is_none());
    }

    #[test]
    fn detects_schemas() {
        let v = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(
            detect(&v(r#"{"solution":"","tests":[]}"#)),
            Some(Format::Problem)
        );
        assert_eq!(detect(&v(r#"{"buggy":"","tests":[]}"#)), Some(Format::Task));
        assert_eq!(
            detect(&v(r#"{"canonical_solution":"","test":""}"#)),
            Some(Format::HumanEval)
        );
        assert_eq!(
            detect(&v(r#"{"text":"","code":"","test_list":[]}"#)),
            Some(Format::Mbpp)
        );
        assert_eq!(detect(&v(r#"{"x":1}"#)), None);
    }
}
