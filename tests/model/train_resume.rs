//! `coe train sft` and `coe train rl` survive `kill -9` and resume the same run: a run killed
//! after a checkpoint and resumed ends with the same adapter as an uninterrupted run (same data
//! order, optimizer and RNG state); a half-written checkpoint is never taken as the latest; a
//! corrupt or missing checkpoint is a clear error; a disk that fills up while a checkpoint is
//! written leaves the previous checkpoint as the latest, and the run resumes from it once
//! there is room. Uses the tiny fixture model, so it takes seconds.
use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn coe(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("coe").unwrap();
    c.current_dir(dir);
    c
}

/// `coe train <kind> --config <cfg>` (plus `extra` flags), run to completion.
fn train(dir: &Path, kind: &str, cfg: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    coe(dir)
        .args(["train", kind])
        .args(extra)
        .arg("--config")
        .arg(cfg)
        .assert()
}

/// A working directory with smoke demonstrations and tasks, and a config for run `name` of
/// `kind` (`sft`, or `rl` from the adapter of the SFT run `init`) that checkpoints every 2
/// steps.
fn setup(dir: &Path, name: &str, kind: &str, steps: usize) -> PathBuf {
    if !dir.join("data/train.demos.jsonl").exists() {
        crate::support::smoke::smoke_data(dir, "data", "1");
    }
    // The tiny fixture model, or a `coe model tiny` model when the test made one (it learns
    // the command format within a few dozen steps; the fixture does not).
    let model = match dir.join("models/tiny") {
        made if made.is_dir() => made,
        _ => Path::new(ROOT).join("tests/fixtures/gguf/tiny_llama.gguf"),
    };
    let lora = r#"lora: (rank: 4, alpha: 8.0, dropout: 0.1, targets: ["all-linear"])"#;
    let section = match kind {
        "sft" => format!(
            r#"sft: (train: ["data/train.demos.jsonl"], {lora},
                  lr: 1e-2, warmup_steps: 2, steps: {steps}, batch_size: 2,
                  checkpoint_every: 2, keep_last: 2)"#
        ),
        _ => format!(
            r#"sft: ({lora}),
               rl: (tasks: Some("data/train.tasks.jsonl"), init_adapter: Some("runs/init"),
                  group_size: 2, tasks_per_step: 2,
                  lr: 1e-4, steps: {steps}, temperature: 1.0, checkpoint_every: 2,
                  keep_last: 2, eval_every: 1000)"#
        ),
    };
    let cfg = format!(
        r#"(name: "{name}", seed: 3,
            model: (path: "{}", threads: 1),
            env: (max_turns: 4),
            {section})"#,
        model.display()
    );
    let path = dir.join(format!("{name}.ron"));
    std::fs::write(&path, cfg).unwrap();
    path
}

/// Starts `coe train <kind>` in the background.
fn spawn_train(dir: &Path, kind: &str, cfg: &Path) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("coe"))
        .current_dir(dir)
        .args(["train", kind, "--config"])
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

/// Kills a `kind` run with SIGKILL after its first checkpoint, resumes it, and compares the
/// result with an uninterrupted run of the same config.
fn kill_9_then_resume(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    if kind == "rl" {
        // From a random model every episode is all invalid commands, with equal returns and
        // so no advantage: start from a briefly fine-tuned adapter instead, whose sampled
        // episodes differ.
        coe(d)
            .args(["model", "tiny", "--out", "models/tiny"])
            .assert()
            .success();
        let init = setup(d, "init", "sft", 40);
        train(d, "sft", &init, &[]).success();
    }
    // The uninterrupted run.
    let cfg = setup(d, "straight", kind, 8);
    train(d, kind, &cfg, &[]).success();
    let straight = std::fs::read_to_string(d.join("runs/straight/events.jsonl")).unwrap();
    let updates = straight
        .lines()
        .filter(|l| l.contains("\"phase\":\"train\""))
        .filter(|l| {
            let m: serde_json::Value = serde_json::from_str(l).unwrap();
            m["grad_norm"].as_f64().unwrap_or(0.0) > 0.0
        })
        .count();
    assert!(
        updates >= 2,
        "too few steps changed the adapter: {straight}"
    );

    // The same run, killed with SIGKILL once a checkpoint exists, then resumed.
    let cfg = setup(d, "killed", kind, 8);
    let mut child = spawn_train(d, kind, &cfg);
    let events = d.join("runs/killed/events.jsonl");
    wait_for(&mut child, &events, "\"type\":\"checkpoint\"");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    train(d, kind, &cfg, &["--resume"]).success();

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
        "the resumed {kind} run must end exactly where the uninterrupted one did"
    );
    let leftovers: Vec<_> = std::fs::read_dir(d.join("runs/killed/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn sft_kill_9_then_resume_matches_an_uninterrupted_run() {
    kill_9_then_resume("sft");
}

#[test]
fn rl_kill_9_then_resume_matches_an_uninterrupted_run() {
    kill_9_then_resume("rl");
}

#[test]
fn partial_corrupt_and_missing_checkpoints_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = setup(d, "run", "sft", 4);
    train(d, "sft", &cfg, &[]).success();
    let ck = d.join("runs/run/checkpoints");
    // A half-written checkpoint of a later step is swept, never resumed from.
    std::fs::create_dir_all(ck.join(".step-00000099.tmp")).unwrap();
    std::fs::write(
        ck.join(".step-00000099.tmp/adapter_model.safetensors"),
        b"half",
    )
    .unwrap();
    let out = train(d, "sft", &cfg, &["--resume"]).success();
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
    train(d, "sft", &cfg, &["--resume"])
        .code(1)
        .stderr(predicates::str::contains(
            "step-00000004 is corrupt: adapter_model.safetensors does not match its sha256",
        ));

    // No checkpoint at all.
    std::fs::remove_dir_all(&ck).unwrap();
    std::fs::create_dir_all(&ck).unwrap();
    train(d, "sft", &cfg, &["--resume"])
        .code(1)
        .stderr(predicates::str::contains(
            "holds no checkpoint to resume from",
        ));
}

#[test]
fn sigterm_checkpoints_and_stops_at_a_step_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = setup(d, "term", "sft", 400);
    let mut child = spawn_train(d, "sft", &cfg);
    let events = d.join("runs/term/events.jsonl");
    wait_for(&mut child, &events, "\"phase\":\"train\"");
    // Twice, as `timeout(1)` does (the command, then its process group): still a clean stop.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
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

/// A size-limited tmpfs mounted for the test's lifetime (needs root, as in CI); unmounted on
/// drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, bytes: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }

    fn resize(&self, bytes: u64) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "could not resize the tmpfs at {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Bytes a directory's files occupy on a tmpfs (whole pages).
fn pages_used(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len().div_ceil(4096) * 4096)
        .sum()
}

#[test]
fn disk_full_while_checkpointing_keeps_the_previous_checkpoint_as_latest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // How much one checkpoint takes.
    let probe = setup(d, "probe", "sft", 2);
    train(d, "sft", &probe, &[]).success();
    let one = pages_used(&d.join("runs/probe/checkpoints/step-00000002"));

    // Room for one checkpoint and a half: the second write runs out of space.
    let cfg = setup(d, "full", "sft", 8);
    let ck = d.join("runs/full/checkpoints");
    let Some(disk) = Tmpfs::mount(&ck, one + one / 2 + 4096) else {
        assert!(
            std::env::var_os("COE_REQUIRE_FAULT_TESTS").is_none(),
            "COE_REQUIRE_FAULT_TESTS is set but a tmpfs cannot be mounted (run as root)"
        );
        crate::support::prereq::require(
            "a tmpfs mount for the disk-full test (run as root)",
            false,
        );
        return;
    };
    let out = train(d, "sft", &cfg, &[]).failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("No space left on device") && err.contains(".step-00000004.tmp"),
        "the error must say what failed and where: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let mut left: Vec<String> = std::fs::read_dir(&ck)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec!["step-00000002"],
        "only the last whole checkpoint may remain"
    );
    let events = std::fs::read_to_string(d.join("runs/full/events.jsonl")).unwrap();
    assert!(events.contains("\"status\":\"failed\""), "{events}");

    // With room again, the run resumes from step 2 and finishes.
    disk.resize(8 * one + (1 << 20));
    let out = train(d, "sft", &cfg, &["--resume"]).success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("step-00000002 (step 2)"), "{err}");
    let events = std::fs::read_to_string(d.join("runs/full/events.jsonl")).unwrap();
    assert!(
        events.contains("\"status\":\"completed\",\"step\":8"),
        "{events}"
    );
    drop(disk);
}
