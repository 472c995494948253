//! End to end in a real terminal: the `coe` binary runs inside tmux on the
//! small task file without a model; the test types a fix by hand, watches the
//! code and tests panes change, opens the help popup, quits, and checks the
//! terminal was given back (alternate screen left, shell output visible). A second
//! test follows a training run in the workbench, kills the workbench with SIGKILL and
//! checks the run finishes untouched. A third follows a live run for 10 s with a loadable
//! model configured and checks, in the process table, that no model worker thread and no
//! sandbox process exist until step mode is opened, and that both do then. Skipped, with
//! a notice, when tmux is not installed.
use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// A tmux server of its own (`socket`) running `cmd` in a 100×30 session `e2e`.
    pub fn start(socket: String, cmd: &str) -> Tmux {
        let tmux = Tmux { socket };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "e2e",
            "-x",
            "100",
            "-y",
            "30",
            cmd,
        ]);
        tmux
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "e2e"])
    }

    /// Waits until the screen contains every needle; panics with the screen after 30 s.
    pub fn wait_for(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.screen();
            if needles.iter().all(|n| s.contains(n)) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needles:?}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "e2e"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    pub fn literal(&self, text: &str) {
        self.run(&["send-keys", "-t", "e2e", "-l", text]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

#[test]
fn step_mode_fixes_a_task_by_hand_in_a_real_terminal() {
    if !crate::support::prereq::require("tmux", crate::support::prereq::have_tmux()) {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_coe");
    let root = env!("CARGO_MANIFEST_DIR");
    let cmd = format!(
        "cd {root} && {bin} tui --no-model --tasks tests/fixtures/tasks_small.jsonl; echo WORKBENCH-EXITED $?; sleep 30"
    );
    let tmux = Tmux::start(format!("coe-e2e-{}", std::process::id()), &cmd);
    let s = tmux.wait_for(&["code · gcd (1/3)", "1/3 passed", "return gcd(a % b, b)"]);
    assert!(s.contains("✗ fail  1 assert gcd(35, 21) == 7"), "{s}");

    tmux.keys(&["i"]);
    tmux.wait_for(&["command>"]);
    tmux.literal("REPW 5 >>>a % b, b >>>b, a % b");
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for(&["return gcd(b, a % b)", "3/3 passed", "All tests passed."]);
    assert!(s.contains("solved"), "{s}");
    assert!(
        !s.contains("return gcd(a % b, b)"),
        "the code pane still shows the old line:\n{s}"
    );

    tmux.keys(&["?"]);
    tmux.wait_for(&["help ·", "Quit the workbench", "Type a command"]);
    tmux.keys(&["Escape"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux.screen().contains("help ·") {
        assert!(Instant::now() < deadline, "help did not close");
        std::thread::sleep(Duration::from_millis(100));
    }
    tmux.keys(&["q"]);
    let s = tmux.wait_for(&["WORKBENCH-EXITED 0"]);
    assert!(
        !s.contains("Quit the workbench"),
        "the workbench is still on screen:\n{s}"
    );
    let alt = tmux.run(&["display-message", "-p", "-t", "e2e", "#{alternate_on}"]);
    assert_eq!(alt.trim(), "0", "the alternate screen was not left");
}

#[test]
fn killing_the_workbench_while_it_follows_a_run_leaves_the_run_unaffected() {
    if !crate::support::prereq::require("tmux", crate::support::prereq::have_tmux()) {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_coe");
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::support::smoke::smoke_data(d, "data", "1");
    let cfg = d.join("follow.ron");
    std::fs::write(
        &cfg,
        format!(
            r#"(name: "follow", seed: 1,
                model: (path: "{root}/tests/fixtures/gguf/tiny_llama.gguf", threads: 1),
                sft: (train: ["data/train.demos.jsonl"],
                      lora: (rank: 4, alpha: 8.0, dropout: 0.0, targets: ["all-linear"]),
                      lr: 1e-2, warmup_steps: 2, steps: 60, batch_size: 2,
                      checkpoint_every: 20, keep_last: 2))"#
        ),
    )
    .unwrap();
    let mut train = Command::new(bin)
        .current_dir(d)
        .args(["train", "sft", "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let cmd = format!(
        "cd {} && exec {bin} tui --no-model --follow runs/follow",
        d.display()
    );
    let tmux = Tmux::start(format!("coe-e2e-follow-{}", std::process::id()), &cmd);
    tmux.wait_for(&["job follow sft", "step "]);
    let pid = tmux.run(&["display-message", "-p", "-t", "e2e", "#{pane_pid}"]);
    let pid: i32 = pid.trim().parse().expect("the workbench's pid");
    assert!(
        train.try_wait().unwrap().is_none(),
        "the run finished before the workbench could be killed; make it longer"
    );
    unsafe { libc::kill(pid, libc::SIGKILL) };

    let status = train.wait().unwrap();
    assert!(status.success(), "the followed run failed: {status:?}");
    let events = std::fs::read_to_string(d.join("runs/follow/events.jsonl")).unwrap();
    for (i, line) in events.lines().enumerate() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "events.jsonl line {} is not JSON: {line}",
            i + 1
        );
    }
    assert!(
        events.contains("\"status\":\"completed\",\"step\":60"),
        "{events}"
    );
    assert!(
        d.join("runs/follow/adapter/adapter_model.safetensors")
            .is_file()
    );
}

/// The names of `pid`'s threads (`coe-model`, `coe-env`, …).
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|c| c.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn following_a_run_loads_no_model_and_starts_no_sandbox_until_step_mode_is_opened() {
    if !crate::support::prereq::require("tmux", crate::support::prereq::have_tmux()) {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_coe");
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A model that loads in well under a second, so a load would not go unnoticed.
    std::fs::copy(
        format!("{root}/tests/fixtures/gguf/tiny_llama.gguf"),
        d.join("tiny.gguf"),
    )
    .unwrap();
    std::fs::write(
        d.join("watch.ron"),
        r#"(name: "watch", seed: 1, model: (path: "tiny.gguf", threads: 1))"#,
    )
    .unwrap();
    let run = d.join("runs/smoke-rl");
    std::fs::create_dir_all(&run).unwrap();
    let mut text = String::new();
    for e in crate::tui_support::run_events() {
        text.push_str(&e.to_json_line());
        text.push('\n');
    }
    std::fs::write(run.join("events.jsonl"), text).unwrap();
    // The run goes on: a train metric every 100 ms while the workbench watches.
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (stop, path) = (stop.clone(), run.join("events.jsonl"));
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            let mut step = 21;
            while !stop.load(Ordering::Relaxed) {
                let line = crate::tui_support::metric(step, "train").to_json_line();
                writeln!(f, "{line}").unwrap();
                step += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let cmd = format!(
        "cd {} && exec {bin} tui --config watch.ron --tasks {root}/tests/fixtures/tasks_small.jsonl --follow runs/smoke-rl",
        d.display()
    );
    let tmux = Tmux::start(format!("coe-e2e-idle-{}", std::process::id()), &cmd);
    tmux.wait_for(&["job smoke-rl rl (running)"]);
    let pid = tmux.run(&["display-message", "-p", "-t", "e2e", "#{pane_pid}"]);
    let pid: u32 = pid.trim().parse().expect("the workbench's pid");
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(10) {
        let threads = thread_names(pid);
        assert!(
            !threads.iter().any(|t| t == "coe-model" || t == "coe-env"),
            "a step-mode worker runs while only following: {threads:?}"
        );
        let children = crate::support::procs::descendants_of(pid);
        assert!(
            children.is_empty(),
            "the workbench started processes while only following: {children:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let s = tmux.screen();
    assert!(s.contains("job smoke-rl rl (running)"), "{s}");
    for word in ["loading model", "tiny.gguf", "proposal(s)", "sandbox ready"] {
        assert!(
            !s.contains(word),
            "{word:?} on screen while only following:\n{s}"
        );
    }

    // Step mode: now the model loads (in the background, said in the status bar) and the sandbox starts.
    tmux.keys(&["2"]);
    tmux.wait_for(&["│ model tiny.gguf │", " workers, ", "code · gcd (1/3)"]);
    let threads = thread_names(pid);
    assert!(
        threads.iter().any(|t| t == "coe-model") && threads.iter().any(|t| t == "coe-env"),
        "{threads:?}"
    );
    let children = crate::support::procs::descendants_of(pid);
    assert!(
        children.iter().any(|(_, c)| c.contains("python")),
        "no sandbox worker after opening step mode: {children:?}"
    );
    tmux.keys(&["q"]);
    stop.store(true, Ordering::Relaxed);
    appender.join().unwrap();
}
