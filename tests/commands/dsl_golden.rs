//! Golden tests for the DSL parser's error diagnostics (STYLE 12): one file per error
//! case under `tests/golden/dsl/`, so the exact text a person or a model reads is
//! reviewed as text, and a wording change shows up as a diff.
//!
//! File format: header lines `mode: command|model`, `input: <JSON string>` (JSON so
//! tabs, `\r` and `\n` survive editors), `kind: <ParseErrorKind>`, then a `---` line,
//! then the rendered diagnostic. `UPDATE_GOLDEN=1 cargo test --test dsl_golden`
//! rewrites the kind and the diagnostic from the current parser.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use coe::env::dsl::{ParseError, ParseErrorKind, parse_command, parse_model_turn};

fn golden_dir() -> PathBuf {
    // `file!()` is absolute when the test is compiled from another crate (scratch builds)
    // and relative to the package root, the test's working directory, otherwise.
    let beside = Path::new(file!()).with_file_name("golden").join("dsl");
    if beside.is_dir() {
        beside
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/dsl")
    }
}

struct Case {
    mode: String,
    input: String,
}

fn parse_header(text: &str, path: &Path) -> Case {
    let (header, _) = text
        .split_once("\n---\n")
        .unwrap_or_else(|| panic!("{}: no `---` line after the header", path.display()));
    let mut mode = None;
    let mut input = None;
    for line in header.lines() {
        if let Some(m) = line.strip_prefix("mode: ") {
            mode = Some(m.to_owned());
        } else if let Some(raw) = line.strip_prefix("input: ") {
            let parsed: String = serde_json::from_str(raw)
                .unwrap_or_else(|e| panic!("{}: input is not a JSON string: {e}", path.display()));
            input = Some(parsed);
        }
    }
    Case {
        mode: mode.unwrap_or_else(|| panic!("{}: missing `mode:`", path.display())),
        input: input.unwrap_or_else(|| panic!("{}: missing `input:`", path.display())),
    }
}

fn run(case: &Case) -> Result<ParseError, String> {
    let result = match case.mode.as_str() {
        "command" => parse_command(&case.input),
        "model" => parse_model_turn(&case.input),
        other => return Err(format!("unknown mode {other:?}")),
    };
    match result {
        Ok(parsed) => Err(format!("parsed without error: {:?}", parsed.command)),
        Err(e) => Ok(e),
    }
}

fn render_file(case: &Case, error: &ParseError) -> String {
    let input = serde_json::to_string(&case.input).expect("a String always serialises");
    format!(
        "mode: {}\ninput: {input}\nkind: {:?}\n---\n{}\n",
        case.mode,
        error.kind,
        error.render(&case.input)
    )
}

#[test]
fn error_diagnostics_match_golden_files() {
    let dir = golden_dir();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no golden files in {}", dir.display());

    let mut seen = HashSet::new();
    let mut failures = Vec::new();
    for path in &paths {
        let text = fs::read_to_string(path).unwrap().replace("\r\n", "\n");
        let case = parse_header(&text, path);
        let error = match run(&case) {
            Ok(error) => error,
            Err(why) => {
                failures.push(format!("{}: {why}", path.display()));
                continue;
            }
        };
        seen.insert(error.kind);
        let actual = render_file(&case, &error);
        if actual == text {
            continue;
        }
        if update {
            fs::write(path, &actual).unwrap();
        } else {
            failures.push(format!(
                "{}:\n--- expected\n{text}--- actual\n{actual}",
                path.display()
            ));
        }
    }
    let missing: Vec<_> = ParseErrorKind::ALL
        .iter()
        .filter(|k| !seen.contains(k))
        .collect();
    assert!(missing.is_empty(), "no golden file for {missing:?}");
    assert!(
        failures.is_empty(),
        "{} golden file(s) differ (rerun with UPDATE_GOLDEN=1 to accept):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
