//! End to end in a real terminal (tmux), for reading an experiment: two live SFT
//! runs (the tiny test model) followed at once with both names in the plots
//! legend; and a results file opened with its saved episodes, scrubbed back from
//! the solving turn to the invalid one and on to a failed sample.
use crate::tui_e2e::Tmux;
use std::process::Command;

fn sft_config(dir: &std::path::Path, name: &str, root: &str) -> std::path::PathBuf {
    let cfg = dir.join(format!("{name}.ron"));
    std::fs::write(
        &cfg,
        format!(
            r#"(name: "{name}", seed: 1,
                model: (path: "{root}/tests/fixtures/gguf/tiny_llama.gguf", threads: 1),
                sft: (train: ["data/train.demos.jsonl"],
                      lora: (rank: 4, alpha: 8.0, dropout: 0.0, targets: ["all-linear"]),
                      lr: 1e-2, warmup_steps: 2, steps: 40, batch_size: 2,
                      checkpoint_every: 20, keep_last: 1))"#
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn two_live_runs_are_followed_with_both_names_in_the_legend() {
    if !crate::support::prereq::require("tmux", crate::support::prereq::have_tmux()) {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_coe");
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::support::smoke::smoke_data(d, "data", "1");
    let mut jobs: Vec<std::process::Child> = ["two-a", "two-b"]
        .iter()
        .map(|name| {
            Command::new(bin)
                .current_dir(d)
                .args(["train", "sft", "--config"])
                .arg(sft_config(d, name, root))
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let cmd = format!(
        "cd {} && exec {bin} tui --no-model --follow runs/two-a --follow runs/two-b",
        d.display()
    );
    let tmux = Tmux::start(format!("coe-e2e-two-{}", std::process::id()), &cmd);
    let s = tmux.wait_for(&["━ two-a", "━ two-b", "plot · loss vs step", "run 1/2"]);
    assert!(s.contains("job two-a sft"), "{s}");
    tmux.keys(&["]", "x"]);
    tmux.wait_for(&["run 2/2", "job two-b sft", "loss vs trained tokens"]);
    tmux.keys(&["q"]);
    for j in &mut jobs {
        assert!(j.wait().unwrap().success());
    }
}

#[test]
fn a_results_file_opens_and_its_saved_episodes_scrub() {
    if !crate::support::prereq::require("tmux", crate::support::prereq::have_tmux()) {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_coe");
    let root = env!("CARGO_MANIFEST_DIR");
    let cmd = format!(
        "cd {root} && {bin} tui --no-model --results tests/fixtures/results/coe-sft/results.json \
         --results tests/fixtures/results/cot-sft/results.json; echo WORKBENCH-EXITED $?; sleep 30"
    );
    let tmux = Tmux::start(format!("coe-e2e-results-{}", std::process::id()), &cmd);
    let s = tmux.wait_for(&[
        "pass@1",
        "solved within t turns",
        "✓ gcd",
        "All tests passed.",
    ]);
    assert!(s.contains("0.250") && s.contains("0.500"), "{s}");
    tmux.keys(&["h", "h"]);
    tmux.wait_for(&["turn 1/3", "Invalid command"]);
    tmux.keys(&["]"]);
    tmux.wait_for(&["sample 2/2", "commands · invalid command"]);
    tmux.keys(&["q"]);
    tmux.wait_for(&["WORKBENCH-EXITED 0"]);
}
