//! `coe eval --method coe` shows signs of life and keeps what is finished: with stderr not a
//! terminal, one plain progress line after every round (the tiny random model never ends an
//! episode early, so every episode runs to the turn cap and only rounds can report), and
//! Ctrl-C writes the finished episodes as a partial `results.json` and exits 130.
use assert_cmd::Command;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

const TINY: &str = "tests/fixtures/gguf/tiny_llama.gguf";
const TASKS: &str = "tests/fixtures/tasks_small.jsonl";

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn an_editor_eval_prints_a_progress_line_after_every_round() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    let assert = Command::cargo_bin("coe")
        .unwrap()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["eval", "--tasks", TASKS, "--model", TINY, "--threads", "1"])
        .args([
            "--method",
            "coe",
            "--samples",
            "1",
            "--k",
            "1",
            "--max-turns",
            "3",
        ])
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    // Not a terminal: whole lines, nothing rewritten in place.
    assert!(!stderr.contains('\r'), "{stderr:?}");
    let rounds: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("eval: turn "))
        .collect();
    assert_eq!(rounds.len(), 3, "{stderr}");
    for (i, line) in rounds.iter().enumerate() {
        let turn = i + 1;
        assert!(
            line.starts_with(&format!("eval: turn {turn}/3  ")),
            "{line}"
        );
        for part in [
            "  live ",
            "  finished ",
            "/3  solved ",
            " tok/s  ",
            "  elapsed ",
            "  ETA ",
        ] {
            assert!(line.contains(part), "{part:?} missing from {line:?}");
        }
    }
    // Every episode ran to the cap: all live until the last round, all finished after it.
    assert!(
        rounds[1].contains("  live 3  finished 0/3  "),
        "{}",
        rounds[1]
    );
    assert!(
        rounds[2].contains("  live 0  finished 3/3  "),
        "{}",
        rounds[2]
    );
    assert!(rounds[2].ends_with("ETA 0m00s"), "{}", rounds[2]);
    let r = read_json(&out);
    assert!(r.get("partial").is_none(), "{r}");
    assert!(r.get("episodes").is_none(), "{r}");
}

#[test]
fn ctrl_c_writes_the_finished_episodes_as_partial_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    let config = dir.path().join("one_at_a_time.ron");
    // One episode live at a time: 12 waves of 3 rounds, so a stop leaves most unfinished.
    std::fs::write(&config, "(eval: (batch: 1))").unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("coe"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--config")
        .arg(&config)
        .args(["eval", "--tasks", TASKS, "--model", TINY, "--threads", "1"])
        .args([
            "--method",
            "coe",
            "--samples",
            "4",
            "--k",
            "1",
            "--max-turns",
            "3",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let first_done = line.contains("finished 1/12");
        seen.push(line);
        if first_done {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("finished 1/12")),
        "{seen:#?}"
    );
    // SAFETY: a plain kill(2) of the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    seen.extend(lines.map(Result::unwrap));
    let status = child.wait().unwrap();
    let stderr = seen.join("\n");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("eval: stopping after this round"),
        "{stderr}"
    );
    assert!(stderr.contains("is partial: it covers the "), "{stderr}");
    let r = read_json(&out);
    assert_eq!(r["partial"], true, "{r}");
    let n = r["episodes"].as_u64().unwrap();
    assert!((1..12).contains(&n), "{r}");
    // The summary covers exactly those episodes.
    let covered: usize = r["per_task"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["solved"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        covered as u64 + r["infra_errors"].as_u64().unwrap(),
        n,
        "{r}"
    );
}
