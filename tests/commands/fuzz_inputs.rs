//! Fuzzing the text inputs a user hands to `coe`: the JSONL loaders (problems in every
//! supported schema, tasks, demonstrations) and RON configs. Whatever the bytes, the
//! loaders must return (no panic, no hang) and an error must be a clear one: it names
//! the file, and for a bad line the line number. Seeds are the project's own files,
//! mutated at the byte level and at the JSON-value level; cases are few enough that
//! the whole file runs in a few seconds.

use std::path::Path;

use crate::support::fuzz::{bounded, cases, edit, mutate, scratch_file};
use coe::config::{Config, ConfigError};
use coe::data::jsonl::{self, JsonlError};
use coe::data::loaders::{load_problems, load_tasks};
use coe::task::{CotDemo, Demonstration, DirectDemo};
use proptest::prelude::*;
use serde_json::{Value, json};

fn repo(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// One valid file per schema the loaders accept.
fn jsonl_seeds() -> Vec<String> {
    let tasks = repo("tests/fixtures/tasks_small.jsonl");
    let task: Value = serde_json::from_str(tasks.lines().next().unwrap()).unwrap();
    let demo = json!({"task": task, "turns": [
        {"command": "REPW 5 >>>gcd(a % b, b) >>>gcd(b, a % b)", "state": "L1 def gcd(a, b):", "reward": 1.0},
        {"command": "EXIT", "state": "L1 def gcd(a, b):", "reward": 0.0}]});
    let direct = json!({"task": task, "answer": "def gcd(a, b):\n    return a\n"});
    let cot = json!({"task": task, "reasoning": "b and a % b", "answer": "def gcd(a, b):\n    return a\n"});
    let humaneval = json!({"task_id": "HumanEval/0", "prompt": "def f(x):\n", "canonical_solution": "    return x\n",
        "test": "def check(candidate):\n    assert candidate(1) == 1\n    assert candidate(2) == 2\n", "entry_point": "f"});
    let problems: String = repo("datasets/problems.jsonl")
        .lines()
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    vec![
        tasks,
        problems,
        repo("tests/fixtures/mbpp_sample.jsonl"),
        format!(
            "{humaneval}\n{}\n",
            humaneval.to_string().replace("HumanEval/0", "HumanEval/1")
        ),
        format!("{demo}\n{demo}\n"),
        format!("{direct}\n"),
        format!("{cot}\n"),
    ]
}

/// Replacement values that break a field's type, range or nesting.
fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(true)),
        Just(json!(-1)),
        Just(json!(1e308)),
        Just(json!(u64::MAX)),
        Just(json!("")),
        Just(json!([])),
        Just(json!({})),
        Just(json!(["assert True", 3, null])),
        Just(json!("\u{0}\u{feff}\u{10ffff}")),
        any::<String>().prop_map(Value::String),
        (1usize..300).prop_map(|depth| { (0..depth).fold(json!(0), |inner, _| json!([inner])) }),
    ]
}

/// Replaces the node at pre-order position `at` (modulo the count) with `new`.
fn replace_node(v: &mut Value, at: usize, new: Value) {
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Array(a) => a.iter().map(count).sum(),
            Value::Object(o) => o.values().map(count).sum(),
            _ => 0,
        }
    }
    fn walk(v: &mut Value, at: &mut usize, new: &mut Option<Value>) {
        if *at == 0 {
            if let Some(n) = new.take() {
                *v = n;
            }
            return;
        }
        *at -= 1;
        match v {
            Value::Array(a) => a.iter_mut().for_each(|c| walk(c, at, new)),
            Value::Object(o) => o.values_mut().for_each(|c| walk(c, at, new)),
            _ => {}
        }
    }
    let mut at = at % count(v);
    walk(v, &mut at, &mut Some(new));
}

/// An error must name the file, and a line error a line that exists.
fn check_jsonl_error(path: &Path, lines: usize, e: &JsonlError) {
    let text = e.to_string();
    assert!(
        text.starts_with(&path.display().to_string()),
        "error does not name the file: {text}"
    );
    if let JsonlError::Line { line, message, .. } = e {
        assert!(
            *line >= 1 && *line <= lines.max(1),
            "line {line} of {lines}: {text}"
        );
        assert!(!message.is_empty(), "{text}");
    }
}

/// Every loader on one file: each returns, and each error is a clear one.
fn load_everything(bytes: &[u8]) {
    let path = scratch_file("fuzz-jsonl-", bytes);
    let lines = bytes.split(|b| *b == b'\n').count();
    bounded("loading a JSONL file", || {
        let results = [
            load_problems(&path).err(),
            load_tasks(&path).err(),
            jsonl::read::<Demonstration>(&path).err(),
            jsonl::read::<DirectDemo>(&path).err(),
            jsonl::read::<CotDemo>(&path).err(),
            jsonl::read_lines(&path).err(),
        ];
        for e in results.iter().flatten() {
            check_jsonl_error(&path, lines, e);
        }
        if let Ok(all) = jsonl::read_lines(&path) {
            for (_, line) in all {
                if let Err(e) = line {
                    check_jsonl_error(&path, lines, &e);
                }
            }
        }
    });
}

fn check_config(text: &str) {
    let result = bounded("parsing a RON config", || {
        Config::from_ron(text, "fuzz.ron")
    });
    let Err(e) = result else {
        return;
    };
    let shown = e.to_string();
    assert!(
        shown.starts_with("fuzz.ron"),
        "error does not name the file: {shown}"
    );
    if let ConfigError::Parse { line, .. } = e {
        assert!(
            line >= 1 && line <= text.lines().count().max(1) + 1,
            "{shown}"
        );
    }
}

fn ron_seeds() -> Vec<String> {
    let mut seeds = vec![repo("configs/default.ron")];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    seeds.extend(
        names
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "ron"))
            .map(|p| std::fs::read_to_string(p).unwrap()),
    );
    seeds
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn jsonl_byte_mutations(seed in 0usize..7, edits in proptest::collection::vec(edit(), 1..6)) {
        let seeds = jsonl_seeds();
        load_everything(&mutate(seeds[seed % seeds.len()].as_bytes(), &edits));
    }

    #[test]
    fn jsonl_value_mutations(seed in 0usize..7, line in 0usize..3, at in any::<usize>(), new in odd_value()) {
        let seeds = jsonl_seeds();
        let text = &seeds[seed % seeds.len()];
        let lines: Vec<&str> = text.lines().collect();
        let which = line % lines.len();
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            if i == which {
                let mut v: Value = serde_json::from_str(l).unwrap();
                replace_node(&mut v, at, new.clone());
                out.push_str(&v.to_string());
            } else {
                out.push_str(l);
            }
            out.push('\n');
        }
        load_everything(out.as_bytes());
    }

    #[test]
    fn jsonl_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        load_everything(&bytes);
    }

    #[test]
    fn ron_byte_mutations(seed in 0usize..8, edits in proptest::collection::vec(edit(), 1..6)) {
        let seeds = ron_seeds();
        let bytes = mutate(seeds[seed % seeds.len()].as_bytes(), &edits);
        check_config(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn ron_arbitrary_text(text in any::<String>()) {
        check_config(&text);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep_json = format!("{}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    load_everything(deep_json.as_bytes());
    let deep_ron = format!("(env: {}{})", "(".repeat(100_000), ")".repeat(100_000));
    check_config(&deep_ron);
    let deep_value = format!("{{\"id\": {}1{}}}\n", "[".repeat(5000), "]".repeat(5000));
    load_everything(deep_value.as_bytes());
}

#[test]
fn a_huge_line_is_read_without_trouble() {
    let line = format!("{{\"id\": \"{}\"}}\n", "x".repeat(8 << 20));
    load_everything(line.as_bytes());
}

#[test]
fn seeds_load_cleanly() {
    // The mutations above start from valid files; make sure they are.
    let seeds = jsonl_seeds();
    assert!(load_tasks(&scratch_file("seed-", seeds[0].as_bytes())).is_ok());
    assert!(load_problems(&scratch_file("seed-", seeds[1].as_bytes())).is_ok());
    assert!(load_problems(&scratch_file("seed-", seeds[2].as_bytes())).is_ok());
    assert!(load_problems(&scratch_file("seed-", seeds[3].as_bytes())).is_ok());
    assert!(jsonl::read::<Demonstration>(&scratch_file("seed-", seeds[4].as_bytes())).is_ok());
    assert!(jsonl::read::<DirectDemo>(&scratch_file("seed-", seeds[5].as_bytes())).is_ok());
    assert!(jsonl::read::<CotDemo>(&scratch_file("seed-", seeds[6].as_bytes())).is_ok());
    assert!(Config::from_ron(&ron_seeds()[0], "default.ron").is_ok());
}
