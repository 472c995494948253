//! The command-line contract (DESIGN §8), driven through the real binary:
//! version and help, config errors, `step` line mode, oracle `eval`, `data
//! validate` findings and `data gen` → oracle round trips on shipped fixtures.
use assert_cmd::Command;
use predicates::prelude::*;
use std::path::Path;

fn coe() -> Command {
    let mut c = Command::cargo_bin("coe").unwrap();
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn version_reports_libtorch_and_cuda() {
    coe()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains("libtorch 2.11.0"))
        .stdout(predicate::str::contains("CUDA available: "));
}

#[test]
fn help_lists_every_subcommand() {
    let out = coe()
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    for sub in ["tui", "data", "train", "eval", "step", "model", "bench"] {
        assert!(
            text.contains(&format!("  {sub} ")),
            "--help lacks {sub}:\n{text}"
        );
    }
    let data = coe()
        .args(["data", "--help"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let data = String::from_utf8(data).unwrap();
    for sub in ["gen", "validate", "sample-bugs"] {
        assert!(data.contains(sub), "{data}");
    }
}

#[test]
fn malformed_config_names_the_line_without_panicking() {
    coe()
        .args(["--config", "tests/fixtures/config/wrong_type.ron"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "wrong_type.ron:3:19: Expected integer",
        ))
        .stderr(predicate::str::contains("panicked").not());
}

#[test]
fn train_without_data_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut c = Command::cargo_bin("coe").unwrap();
        c.current_dir(dir.path()).args(args).assert()
    };
    run(&["train", "rl", "--resume"])
        .code(1)
        .stderr(predicate::str::contains(
            "holds no checkpoint to resume from",
        ));
    for _ in 0..2 {
        // A failed attempt leaves no run behind that would block the next one.
        run(&["train", "sft"])
            .code(1)
            .stderr(predicate::str::contains("sft.train is empty"))
            .stderr(predicate::str::contains("panicked").not());
    }
}

#[test]
fn step_line_mode_repairs_a_task_from_stdin() {
    let out = coe()
        .args([
            "step",
            "--tasks",
            "tests/fixtures/tasks_small.jsonl",
            "--task",
            "gcd",
        ])
        .write_stdin("DELL 99\nREPW 5 >>>a % b, b >>>b, a % b\n### EXIT\n")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("L5         return gcd(a % b, b)\n***\nTest 1 failed: assert gcd(35, 21) == 7\nRecursionError"), "{text}");
    assert!(
        text.contains("reward -0.5 solved false done false\n"),
        "{text}"
    );
    assert!(
        text.contains("Invalid command: line 99 is out of range"),
        "{text}"
    );
    assert!(text.contains("reward 1 solved true done false\n"), "{text}");
    assert!(text.contains("***\nAll tests passed.\n---\n"), "{text}");
    assert!(text.ends_with("reward 0 solved true done true\n"), "{text}");
    assert_eq!(text.matches("\n---\n").count(), 3, "{text}");
}

#[test]
fn step_with_a_model_proposes_each_command_and_an_empty_line_accepts_it() {
    let out = coe()
        .args([
            "step",
            "--tasks",
            "tests/fixtures/tasks_small.jsonl",
            "--task",
            "gcd",
            "--model",
            "tests/fixtures/gguf/tiny_llama.gguf",
            "--threads",
            "1",
        ])
        // Accept the (random) model's first proposal, then type the fix and EXIT.
        .write_stdin("\nREPW 5 >>>a % b, b >>>b, a % b\nEXIT\n")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    // One proposal after each of the three observations, right after its `---`.
    assert_eq!(text.matches("\n---\nproposal ").count(), 3, "{text}");
    // An untrained model's reply is rarely a valid command; whatever it was, it was
    // applied as a model turn and answered with a reward line.
    let after_first = text.split("\n---\nproposal ").nth(1).unwrap();
    let reward = after_first.lines().nth(1).unwrap();
    assert!(reward.starts_with("reward "), "{text}");
    assert!(text.contains("reward 1 solved true done false\n"), "{text}");
    assert!(text.ends_with("reward 0 solved true done true\n"), "{text}");
}

#[test]
fn step_fails_clearly_when_stdin_ends_early() {
    coe()
        .args([
            "step",
            "--tasks",
            "tests/fixtures/tasks_small.jsonl",
            "--task",
            "add",
        ])
        .write_stdin("")
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "stdin closed before the episode ended",
        ));
    coe()
        .args([
            "step",
            "--tasks",
            "tests/fixtures/tasks_small.jsonl",
            "--task",
            "nope",
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no task with id \"nope\""));
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn oracle_eval_solves_every_valid_task_and_writes_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.json");
    coe()
        .args([
            "eval",
            "--tasks",
            "tests/fixtures/tasks_small.jsonl",
            "--policy",
            "oracle",
            "--samples",
            "2",
            "--k",
            "1,2",
        ])
        .arg("--out")
        .arg(&out)
        .arg("--save-episodes")
        .arg(dir.path().join("eps"))
        .assert()
        .success()
        .stdout(predicate::str::contains("pass@1   100.00%"));
    let r = read_json(&out);
    assert_eq!(r["schema"], 1);
    assert_eq!(r["method"], "coe");
    assert_eq!(r["tasks"], 3);
    assert_eq!(r["samples"], 2);
    assert_eq!(r["pass_at"]["1"], 1.0);
    assert_eq!(r["pass_at"]["2"], 1.0);
    assert_eq!(r["invalid_rate"], 0.0);
    assert_eq!(r["turn_curve"]["10"], 1.0);
    assert_eq!(r["per_task"][0]["solved"], serde_json::json!([true, true]));
    assert_eq!(r["provenance"]["policy"], "oracle");
    assert!(r["provenance"]["commit"].as_str().unwrap().len() >= 7);
    let eps = std::fs::read_to_string(dir.path().join("eps/episodes.jsonl")).unwrap();
    assert_eq!(eps.lines().count(), 6);
}

#[test]
fn validate_names_each_bad_line_task_and_test() {
    let assert = coe()
        .args(["data", "validate", "tests/fixtures/tasks_bad.jsonl"])
        .assert()
        .code(1);
    let err = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(err.contains("tasks_bad.jsonl:2: task \"ref_fails\": the reference solution fails: test 1 (assert add(1, 2) == 3): AssertionError"), "{err}");
    assert!(
        err.contains("tasks_bad.jsonl:3: task \"buggy_passes\": the buggy code passes every test"),
        "{err}"
    );
    assert!(
        err.contains("tasks_bad.jsonl:4: field `tests`: invalid type: string"),
        "{err}"
    );
    assert!(err.contains("tasks_bad.jsonl:5: not valid JSON"), "{err}");
    assert!(!err.contains(":1:"), "the good line was flagged: {err}");
    coe()
        .args(["data", "validate", "tests/fixtures/tasks_small.jsonl"])
        .assert()
        .success()
        .stdout(predicate::str::contains("3 records, 0 bad, 3 ok"));
}

/// `data gen` then the oracle on every split: 100% solved, and every demonstration
/// replays (gen exits 1 when one does not).
fn gen_then_oracle(problems: &str, per_problem: &str) {
    let dir = tempfile::tempdir().unwrap();
    coe()
        .args([
            "data",
            "gen",
            "--problems",
            problems,
            "--per-problem",
            per_problem,
            "--seed",
            "3",
        ])
        .arg("--out")
        .arg(dir.path())
        .assert()
        .success()
        .stderr(predicate::str::contains("REPLAY FAILURES").not());
    let mut total = 0;
    for split in ["train", "valid", "test"] {
        let tasks = dir.path().join(format!("{split}.tasks.jsonl"));
        let n = std::fs::read_to_string(&tasks).unwrap().lines().count();
        for kind in ["demos", "direct", "cot"] {
            let f =
                std::fs::read_to_string(dir.path().join(format!("{split}.{kind}.jsonl"))).unwrap();
            assert_eq!(f.lines().count(), n, "{split}.{kind}");
        }
        total += n;
        if n == 0 {
            continue;
        }
        let out = dir.path().join(format!("{split}.results.json"));
        coe()
            .args(["eval", "--policy", "oracle", "--samples", "1", "--k", "1"])
            .arg("--tasks")
            .arg(&tasks)
            .arg("--out")
            .arg(&out)
            .assert()
            .success();
        assert_eq!(read_json(&out)["pass_at"]["1"], 1.0, "{problems} {split}");
    }
    assert!(total > 0);
}

#[test]
fn gen_on_the_mbpp_fixture_round_trips_through_the_oracle() {
    gen_then_oracle("tests/fixtures/mbpp_sample.jsonl", "3");
}

#[test]
fn gen_on_humaneval_round_trips_through_the_oracle() {
    let he = "datasets/external/HumanEval.jsonl.gz";
    let present = Path::new(env!("CARGO_MANIFEST_DIR")).join(he).exists();
    if !crate::support::prereq::require(&format!("{he} (run scripts/setup.sh)"), present) {
        return;
    }
    gen_then_oracle(he, "1");
}

/// `scripts/gpu_experiment.sh --tiny`: the GPU experiment's every step (data, model-written
/// bugs, the three trainings, the evaluations, the three benchmarks) on a tiny model on the
/// CPU, and its report. The Python baselines may be missing (no `transformers` in CI): the
/// benchmarks then carry an error for the reference and the report still gets written.
#[test]
fn gpu_experiment_script_runs_tiny_on_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let (status, _) = run_tiny_experiment(tmp.path(), "exp-test", &[]);
    assert!(
        status.success(),
        "the script failed; logs in {}",
        out.display()
    );
    let report = read_json(&out.join("results.json"));
    let methods = report["methods"].as_array().unwrap();
    let runs: Vec<&str> = methods.iter().map(|m| m["run"].as_str().unwrap()).collect();
    assert_eq!(runs, ["coe-rl", "coe-sft", "direct", "cot"]);
    for m in methods {
        let synthetic = &m["sets"]["synthetic"];
        for k in ["1", "4"] {
            let p = synthetic["pass_at"][k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&p), "{m}");
        }
        assert!(m["train_time_s"].as_f64().unwrap() > 0.0, "{m}");
    }
    assert!(methods[0]["sets"]["synthetic"]["turn_curve"]["4"].is_number());
    let benches = &report["benches"];
    assert!(
        benches["decode"]["ours"]["per_batch"][0]["decode_tok_s"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(benches["sft"]["ours"]["tokens_per_s"].as_f64().unwrap() > 0.0);
    let rollout = &benches["rollout"];
    assert!(rollout["ours"]["episodes_per_min"].as_f64().unwrap() > 0.0);
    assert_eq!(rollout["whole_rounds_sampled_the_same_episodes"], true);
    for b in ["sft", "rollout"] {
        let reference = &benches[b]["reference"];
        assert!(
            reference.get("error").is_some() || reference["seconds"].as_f64().unwrap() > 0.0,
            "{b}: {reference}"
        );
    }
    // Each SFT stopped at the shared token budget, before its step cap.
    for run in ["train_coe_sft", "train_direct", "train_cot"] {
        let log = std::fs::read_to_string(out.join("logs").join(format!("{run}.log"))).unwrap();
        assert!(log.contains("token budget of "), "{run}: {log}");
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("| t | 1 | 2 | 3 | 4 |"), "{md}");
    let table = std::fs::read_to_string(out.join("readme_table.md")).unwrap();
    let sets = methods[0]["sets"].as_object().unwrap().len();
    assert_eq!(table.lines().count(), 2 + 4 * sets, "{table}");
    // Every step ran to its end: none failed, was capped or skipped.
    let steps = report["steps"].as_array().unwrap();
    assert!(steps.len() >= 12, "{steps:?}");
    for s in steps {
        assert_eq!(s["status"], "ok", "{s}");
    }
}

/// Runs `scripts/gpu_experiment.sh --tiny` with its results in `tmp/results` and a tiny model
/// in `tmp/tiny`, and removes its runs; returns the exit status and stderr.
fn run_tiny_experiment(
    tmp: &Path,
    name: &str,
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tag = format!("{name}-{}", std::process::id());
    let output = std::process::Command::new("bash")
        .arg("scripts/gpu_experiment.sh")
        .arg("--tiny")
        .current_dir(root)
        .env("COE", env!("CARGO_BIN_EXE_coe"))
        .env("EXP_OUT", tmp.join("results"))
        .env("EXP_TAG", &tag)
        .env("EXP_MODEL", tmp.join("tiny"))
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::inherit())
        .output()
        .unwrap();
    for run in ["work", "coe-sft", "coe-rl", "direct", "cot"] {
        let _ = std::fs::remove_dir_all(root.join("runs").join(format!("{tag}-{run}")));
    }
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    eprintln!("{stderr}");
    (output.status, stderr)
}

#[test]
fn gpu_experiment_out_of_time_skips_steps_and_still_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    coe()
        .args(["model", "tiny", "--out"])
        .arg(tmp.path().join("tiny"))
        .assert()
        .success();
    // No time for anything.
    let (status, stderr) = run_tiny_experiment(tmp.path(), "exp-late", &[("EXP_SECONDS", "1")]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("data_gen skipped"), "{stderr}");
    let report = read_json(&out.join("results.json"));
    assert_eq!(report["steps"][0]["step"], "data_gen");
    assert_eq!(report["steps"][0]["status"], "skipped");
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("| data_gen | skipped |"), "{md}");
}

#[test]
fn a_tiny_model_takes_its_tokenizer_from_a_hugging_face_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    coe()
        .args(["model", "tiny", "--out"])
        .arg(&a)
        .assert()
        .success();
    coe()
        .args(["model", "tiny", "--layers", "1", "--tokenizer-from"])
        .arg(&a)
        .arg("--out")
        .arg(&b)
        .assert()
        .success();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
    coe()
        .args(["model", "tiny", "--tokenizer-from", "Cargo.toml", "--out"])
        .arg(tmp.path().join("c"))
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "Cargo.toml: the tokenizer source must be a .gguf file or a Hugging Face directory",
        ));
}

#[test]
fn a_missing_file_is_named_once_with_its_reason() {
    let out = coe()
        .args([
            "eval",
            "--policy",
            "oracle",
            "--tasks",
            "no/such/tasks.jsonl",
        ])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "coe: error: no/such/tasks.jsonl: No such file or directory (os error 2)\n"
    );
}
