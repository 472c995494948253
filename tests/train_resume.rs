//! `coe train sft` survives `kill -9` and resumes the same run: a run killed after a
//! checkpoint and resumed ends with the same adapter as an uninterrupted run (same data order,
//! optimizer and RNG state); a half-written checkpoint is never taken as the latest; a corrupt
//! or missing checkpoint is a clear error. Uses the tiny fixture model, so it takes seconds.
use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn coe(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("coe").unwrap();
    c.current_dir(dir);
    c
}

/// A working directory with smoke demonstrations and a config for `name`.
fn setup(dir: &Path, name: &str, steps: usize) -> PathBuf {
    if !dir.join("data/train.demos.jsonl").exists() {
        coe(dir)
            .args([
                "data",
                "gen",
                "--out",
                "data",
                "--operators",
                "swap_arithmetic",
                "--max-ops",
                "1",
            ])
            .args(["--per-problem", "1", "--problems"])
            .arg(Path::new(ROOT).join("datasets/smoke/problems.jsonl"))
            .assert()
            .success();
    }
    let model = Path::new(ROOT).join("tests/fixtures/gguf/tiny_llama.gguf");
    let cfg = format!(
        r#"(name: "{name}", seed: 3,
            model: (path: "{}", threads: 1),
            env: (max_turns: 4),
            sft: (train: ["data/train.demos.jsonl"],
                  lora: (rank: 4, alpha: 8.0, dropout: 0.1, targets: ["all-linear"]),
                  lr: 1e-2, warmup_steps: 2, steps: {steps}, batch_size: 2,
                  checkpoint_every: 2, keep_last: 2))"#,
        model.display()
    );
    let path = dir.join(format!("{name}.ron"));
    std::fs::write(&path, cfg).unwrap();
    path
}

/// Starts `coe train sft` in the background.
fn spawn_train(dir: &Path, cfg: &Path) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("coe"))
        .current_dir(dir)
        .args(["train", "sft", "--config"])
        .arg(cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until `events` contains `needle` (the child must still be running).
fn wait_for(child: &mut std::process::Child, events: &Path, needle: &str) {
    let started = Instant::now();
    while !std::fs::read_to_string(events)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no {needle} after 300 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before {needle}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn adapter_bytes(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("adapter/adapter_model.safetensors")).unwrap()
}

#[test]
fn kill_9_then_resume_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The uninterrupted run.
    let cfg = setup(d, "straight", 8);
    coe(d)
        .args(["train", "sft", "--config"])
        .arg(&cfg)
        .assert()
        .success();

    // The same run, killed with SIGKILL once a checkpoint exists, then resumed.
    let cfg = setup(d, "killed", 8);
    let mut child = spawn_train(d, &cfg);
    let events = d.join("runs/killed/events.jsonl");
    wait_for(&mut child, &events, "\"type\":\"checkpoint\"");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    coe(d)
        .args(["train", "sft", "--resume", "--config"])
        .arg(&cfg)
        .assert()
        .success();

    let text = std::fs::read_to_string(&events).unwrap();
    let starts: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"run_started\""))
        .collect();
    assert_eq!(starts.len(), 2, "{text}");
    assert!(
        !starts[1].contains("\"start_step\":0,"),
        "the resume started over: {}",
        starts[1]
    );
    assert!(
        text.contains("\"status\":\"completed\",\"step\":8"),
        "{text}"
    );
    assert!(
        adapter_bytes(&d.join("runs/straight")) == adapter_bytes(&d.join("runs/killed")),
        "the resumed run must end exactly where the uninterrupted one did"
    );
    let leftovers: Vec<_> = std::fs::read_dir(d.join("runs/killed/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn partial_corrupt_and_missing_checkpoints_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = setup(d, "run", 4);
    coe(d)
        .args(["train", "sft", "--config"])
        .arg(&cfg)
        .assert()
        .success();
    let ck = d.join("runs/run/checkpoints");
    // A half-written checkpoint of a later step is swept, never resumed from.
    std::fs::create_dir_all(ck.join(".step-00000099.tmp")).unwrap();
    std::fs::write(
        ck.join(".step-00000099.tmp/adapter_model.safetensors"),
        b"half",
    )
    .unwrap();
    let out = coe(d)
        .args(["train", "sft", "--resume", "--config"])
        .arg(&cfg)
        .assert()
        .success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("removed 1 incomplete checkpoint"), "{err}");
    assert!(err.contains("step-00000004 (step 4)"), "{err}");
    assert!(!ck.join(".step-00000099.tmp").exists());

    // A damaged latest checkpoint is refused, naming it and the file.
    let latest = ck.join("step-00000004");
    let weights = latest.join("adapter_model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&weights, bytes).unwrap();
    coe(d)
        .args(["train", "sft", "--resume", "--config"])
        .arg(&cfg)
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "step-00000004 is corrupt: adapter_model.safetensors does not match its sha256",
        ));

    // No checkpoint at all.
    std::fs::remove_dir_all(&ck).unwrap();
    std::fs::create_dir_all(&ck).unwrap();
    coe(d)
        .args(["train", "sft", "--resume", "--config"])
        .arg(&cfg)
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "holds no checkpoint to resume from",
        ));
}

#[test]
fn sigterm_checkpoints_and_stops_at_a_step_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = setup(d, "term", 400);
    let mut child = spawn_train(d, &cfg);
    let events = d.join("runs/term/events.jsonl");
    wait_for(&mut child, &events, "\"phase\":\"train\"");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "a cancelled run exits 130");
    let text = std::fs::read_to_string(&events).unwrap();
    let last = text.lines().last().unwrap();
    assert!(last.contains("\"status\":\"cancelled\""), "{last}");
    let step: u64 = serde_json::from_str::<serde_json::Value>(last).unwrap()["step"]
        .as_u64()
        .unwrap();
    assert!(step > 0 && step < 400, "{last}");
    let ck = d.join(format!("runs/term/checkpoints/step-{step:08}"));
    assert!(
        ck.join("state.json").is_file(),
        "no checkpoint at the step it stopped: {}",
        ck.display()
    );
}
