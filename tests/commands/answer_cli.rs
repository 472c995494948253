//! `coe eval --method direct|cot` and `coe data sample-bugs` through the real binary: the
//! oracle scores 100% through the reply format, and the model paths run end to end on the
//! tiny random GGUF fixture, whose untrained replies hold no program — so eval counts them
//! invalid and sample-bugs keeps none of them.
use assert_cmd::Command;
use predicates::prelude::*;
use std::path::Path;

const TINY: &str = "tests/fixtures/gguf/tiny_llama.gguf";
const TASKS: &str = "tests/fixtures/tasks_small.jsonl";

fn coe() -> Command {
    let mut c = Command::cargo_bin("coe").unwrap();
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// The tiny model runs on one libtorch thread: its ops are too small to split, and
/// several threads per test process under a parallel test run cost 5–10× in contention.
fn tiny() -> [&'static str; 4] {
    ["--model", TINY, "--threads", "1"]
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn read_lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn oracle_direct_and_cot_solve_every_valid_task() {
    for method in ["direct", "cot"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("results.json");
        coe()
            .args([
                "eval", "--tasks", TASKS, "--policy", "oracle", "--method", method,
            ])
            .args(["--samples", "2", "--k", "1,2"])
            .arg("--out")
            .arg(&out)
            .arg("--save-episodes")
            .arg(dir.path().join("eps"))
            .assert()
            .success()
            .stdout(predicate::str::contains(format!("method {method}")))
            .stdout(predicate::str::contains("pass@1   100.00%"))
            .stdout(predicate::str::contains("mean turns 1.00"));
        let r = read_json(&out);
        assert_eq!(r["schema"], 1);
        assert_eq!(r["method"], method);
        assert_eq!(
            (r["tasks"].as_u64(), r["samples"].as_u64()),
            (Some(3), Some(2))
        );
        assert_eq!(r["pass_at"], serde_json::json!({"1": 1.0, "2": 1.0}));
        assert_eq!(
            (r["mean_turns"].as_f64(), r["invalid_rate"].as_f64()),
            (Some(1.0), Some(0.0))
        );
        assert_eq!(r["turn_curve"], serde_json::json!({}));
        assert_eq!(r["per_task"][2]["id"], "count_vowels");
        assert_eq!(r["per_task"][2]["solved"], serde_json::json!([true, true]));
        assert_eq!(r["per_task"][2]["turns"], serde_json::json!([1, 1]));
        assert_eq!(r["provenance"]["policy"], "oracle");
        let eps = read_lines(&dir.path().join("eps/episodes.jsonl"));
        assert_eq!(eps.len(), 6);
        assert!(eps.iter().all(|e| e["verdict"] == "passed"));
        if method == "cot" {
            // The reply carries the synthesised reasoning before the program.
            let reply = eps[0]["reply"].as_str().unwrap();
            assert!(reply.starts_with("Let me go through the code"), "{reply}");
        }
    }
}

#[test]
fn oracle_direct_fails_a_task_whose_reference_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = dir.path().join("tasks.jsonl");
    let bad = serde_json::json!({
        "id": "add", "prompt": "Return a plus b.", "solution": "def add(a, b):\n    return a * b\n",
        "tests": ["assert add(1, 2) == 3"], "buggy": "def add(a, b):\n    return a - b\n",
        "origin": "human", "problem_id": "add"
    });
    std::fs::write(&tasks, format!("{bad}\n")).unwrap();
    let out = dir.path().join("r.json");
    coe()
        .args([
            "eval",
            "--policy",
            "oracle",
            "--method",
            "direct",
            "--samples",
            "1",
            "--k",
            "1",
        ])
        .arg("--tasks")
        .arg(&tasks)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("pass@1     0.00%"));
    assert_eq!(
        read_json(&out)["per_task"][0]["solved"],
        serde_json::json!([false])
    );
}

#[test]
fn tiny_model_direct_and_cot_eval_runs_end_to_end() {
    for method in ["direct", "cot"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("results.json");
        coe()
            .args(["eval", "--tasks", TASKS, "--method", method])
            .args(tiny())
            .args(["--samples", "2", "--k", "1,2", "--temperature", "1.0"])
            .arg("--out")
            .arg(&out)
            .arg("--save-episodes")
            .arg(dir.path().join("eps"))
            .assert()
            .success()
            .stdout(predicate::str::contains(format!("method {method}")));
        let r = read_json(&out);
        assert_eq!(r["method"], method);
        assert_eq!(r["mean_turns"], 1.0);
        assert!(r["provenance"]["model_sha256"].as_str().unwrap().len() == 64);
        let eps = read_lines(&dir.path().join("eps/episodes.jsonl"));
        assert_eq!(eps.len(), 6);
        let no_program = eps.iter().filter(|e| e["program"].is_null()).count();
        assert_eq!(r["invalid_rate"].as_f64().unwrap(), no_program as f64 / 6.0);
        for e in &eps {
            let n = e["token_ids"].as_array().unwrap().len();
            let budget = if method == "direct" { 512 } else { 768 };
            assert!(n > 0 && n <= budget, "{n} tokens");
            assert_eq!(e["solved"], e["verdict"] == "passed");
        }
    }
}

#[test]
fn tiny_model_sample_bugs_keeps_no_reply_without_a_program() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bugs.jsonl");
    let assert = coe()
        .args(["data", "sample-bugs", "--problems", TASKS])
        .args(tiny())
        .args(["--samples", "2", "--temperature", "1.0", "--seed", "5"])
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains("6/6 sampled"));
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.contains("problems 3  skipped 0  samples 6"),
        "{stdout}"
    );
    // Garbage replies hold no program: none is kept, and the file is still written.
    assert!(
        stdout.contains("kept 0  (failing 0, duplicates 0)"),
        "{stdout}"
    );
    assert!(stdout.contains("no program 6"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    coe()
        .args(["data", "validate"])
        .arg(&out)
        .assert()
        .success();
}

#[test]
fn sample_bugs_refuses_bad_flags_clearly() {
    coe()
        .args(["data", "sample-bugs", "--problems", TASKS, "--model", TINY])
        .args(["--out", "/dev/null", "--samples", "0"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--samples 0"));
    coe()
        .args([
            "data",
            "sample-bugs",
            "--problems",
            "no/such.jsonl",
            "--model",
            TINY,
        ])
        .args(["--out", "/dev/null"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no/such.jsonl"));
}
