//! It learns: with the smoke configs, a tiny model created by the run goes from solving none
//! of a narrow bug family's held-out tasks (a swapped arithmetic operator) to at least half
//! after LoRA SFT, and GRPO from that adapter then raises the mean episode reward of sampled
//! (temperature 1) episodes on the tasks it trains on. The whole pipeline runs
//! through the real binary exactly as the README tells a user to: `coe model tiny`,
//! `coe data gen`, `coe eval`, `coe train sft`, `coe train rl` — and RL again sampling through
//! a `coe serve` of the same tiny model, which must raise the reward too. A few CPU minutes.
use assert_cmd::Command;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn coe(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("coe").unwrap();
    c.current_dir(dir);
    c
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `coe eval` of the tiny model (with `adapter`, if any) on the held-out tasks with
/// `samples` episodes per task at `temperature`; returns its results.json.
fn eval(
    dir: &Path,
    adapter: Option<&str>,
    samples: &str,
    temperature: &str,
    out: &str,
) -> serde_json::Value {
    eval_on(
        dir,
        "runs/smoke-data/valid.tasks.jsonl",
        adapter,
        samples,
        temperature,
        out,
    )
}

/// As [`eval`], on the tasks of `tasks`.
fn eval_on(
    dir: &Path,
    tasks: &str,
    adapter: Option<&str>,
    samples: &str,
    temperature: &str,
    out: &str,
) -> serde_json::Value {
    let mut c = coe(dir);
    c.args(["eval", "--model", "models/tiny"]);
    if let Some(a) = adapter {
        c.args(["--adapter", a]);
    }
    c.args(["--tasks", tasks, "--samples", samples])
        .args(["--k", "1", "--temperature", temperature, "--max-turns", "4"])
        .args(["--threads", "1", "--out", out])
        .assert()
        .success();
    json(&dir.join(out))
}

/// Mean episode return of 8 sampled (temperature 1) episodes per held-out task.
/// The mean return of 8 sampled (temperature 1) episodes per task on the tasks RL trains on:
/// the quantity GRPO raises. 165 tasks × 8 keep its standard error near 0.025; the 18
/// held-out tasks (SE ~0.07) made a 12-step run's gain a coin flip.
fn sampled_return(dir: &Path, adapter: &str, out: &str) -> f64 {
    let tasks = "runs/smoke-data/train.tasks.jsonl";
    eval_on(dir, tasks, Some(adapter), "8", "1", out)["mean_return"]
        .as_f64()
        .unwrap()
}

#[test]
fn sft_learns_a_narrow_bug_family_and_rl_raises_the_reward() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    coe(d)
        .args(["model", "tiny", "--out", "models/tiny"])
        .assert()
        .success();
    crate::support::smoke::smoke_data(d, "runs/smoke-data", "2");
    // Before training: the random model solves (almost) nothing.
    let before = eval(d, None, "1", "0", "before.json")["pass_at"]["1"]
        .as_f64()
        .unwrap();
    assert!(before <= 0.1, "the untrained model already solves {before}");

    let sft = Path::new(ROOT).join("configs/smoke-sft.ron");
    coe(d)
        .args(["train", "sft", "--config"])
        .arg(&sft)
        .assert()
        .success();
    let after = json(&d.join("runs/smoke-sft/results.json"));
    let solved = after["eval"]["solve_rate"].as_f64().unwrap();
    assert!(solved >= 0.5, "SFT reached only {solved} held-out: {after}");
    // The same adapter through `coe eval`, as a user would check it.
    let eval_after =
        eval(d, Some("runs/smoke-sft/adapter"), "1", "0", "after.json")["pass_at"]["1"]
            .as_f64()
            .unwrap();
    assert!(
        (eval_after - solved).abs() < 1e-9,
        "coe eval {eval_after} vs the run's own eval {solved}"
    );

    let sft_return = sampled_return(d, "runs/smoke-sft/adapter", "sft-sampled.json");

    let rl = Path::new(ROOT).join("configs/smoke-rl.ron");
    coe(d)
        .args(["train", "rl", "--config"])
        .arg(&rl)
        .assert()
        .success();
    let events = std::fs::read_to_string(d.join("runs/smoke-rl/events.jsonl")).unwrap();
    let metrics: Vec<serde_json::Value> = events
        .lines()
        .filter(|l| l.contains("\"type\":\"metric\"") && l.contains("\"phase\":\"train\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(metrics.len(), 12, "{events}");
    // The reference is the SFT adapter the run starts from: no divergence before an update.
    let kl0 = metrics[0]["kl"].as_f64().unwrap();
    assert!(kl0.abs() < 1e-3, "KL at the first step {kl0}");
    assert!(events.contains("\"status\":\"completed\""));
    // A run directory names its final adapter, as the README's commands use it.
    let rl_return = sampled_return(d, "runs/smoke-rl", "rl-sampled.json");
    assert!(
        rl_return > sft_return,
        "RL did not raise the mean episode reward: {sft_return:.3} after SFT, {rl_return:.3} after RL"
    );
    eprintln!("mean sampled return: {sft_return:.3} after SFT, {rl_return:.3} after RL");

    // The same run sampling through `coe serve` (issue 20): the trainer publishes its
    // adapter to the server each step and samples from it, and the reward rises as well.
    let server = crate::support::served::Served::start_in(d, "models/tiny");
    let local = std::fs::read_to_string(&rl).unwrap();
    let model_line = r#"model: (path: "models/tiny", device: "cpu", dtype: f32, threads: 1)"#;
    assert!(
        local.contains(model_line),
        "configs/smoke-rl.ron changed its model line"
    );
    let remote = local
        .replace(r#"name: "smoke-rl""#, r#"name: "smoke-rl-remote""#)
        .replace(
            model_line,
            &format!(
                r#"model: (path: "models/tiny", device: "cpu", dtype: f32, threads: 1,
                remote: Some((urls: ["{}"], served_model: "coe", timeout_s: 120.0)))"#,
                server.url
            ),
        );
    let remote_cfg = d.join("smoke-rl-remote.ron");
    std::fs::write(&remote_cfg, remote).unwrap();
    coe(d)
        .args(["train", "rl", "--config"])
        .arg(&remote_cfg)
        .assert()
        .success();
    let events = std::fs::read_to_string(d.join("runs/smoke-rl-remote/events.jsonl")).unwrap();
    assert!(events.contains("\"status\":\"completed\""));
    for step in 0..12 {
        assert!(
            events.contains(&format!(
                "sampling from adapter smoke-rl-remote-step-{step}\""
            )),
            "step {step} was not published to the server"
        );
    }
    let remote_return = sampled_return(d, "runs/smoke-rl-remote", "rl-remote-sampled.json");
    assert!(
        remote_return > sft_return,
        "RL through coe serve did not raise the mean episode reward: {sft_return:.3} after SFT, \
         {remote_return:.3} after RL"
    );
    eprintln!("mean sampled return through coe serve: {remote_return:.3} after RL");
}
