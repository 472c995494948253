//! End to end in a real terminal: the `coe` binary runs inside tmux on the
//! small task file without a model; the test types a fix by hand, watches the
//! code and tests panes change, opens the help popup, quits, and checks the
//! terminal was given back (alternate screen left, shell output visible).
//! Skipped, with a notice, when tmux is not installed.
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "e2e"])
    }

    /// Waits until the screen contains every needle; panics with the screen after 30 s.
    fn wait_for(&self, needles: &[&str]) -> String {
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

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "e2e"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn literal(&self, text: &str) {
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
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("NOTICE: tmux is not installed; skipping the workbench end-to-end test");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_coe");
    let root = env!("CARGO_MANIFEST_DIR");
    let tmux = Tmux {
        socket: format!("coe-e2e-{}", std::process::id()),
    };
    let cmd = format!(
        "cd {root} && {bin} tui --no-model --tasks tests/fixtures/tasks_small.jsonl; echo WORKBENCH-EXITED $?; sleep 30"
    );
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "e2e",
        "-x",
        "100",
        "-y",
        "30",
        &cmd,
    ]);
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
