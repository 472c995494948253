//! `coe serve` and the remote policy backend through the real binary, over loopback only:
//! greedy `coe eval` through a server gives the local model's episodes; a server that dies
//! before or during an evaluation costs retries on the other, not results; bad requests get
//! OpenAI error objects. Each test starts at most two servers on 127.0.0.1 with port 0 and
//! kills them when it ends.
use assert_cmd::Command;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const TINY: &str = "tests/fixtures/gguf/tiny_llama.gguf";
const TASKS: &str = "tests/fixtures/tasks_small.jsonl";

/// A `coe serve` of the tiny fixture model, run from the repository root.
struct Served;

impl Served {
    fn start() -> crate::support::served::Served {
        crate::support::served::Served::start_in(Path::new(env!("CARGO_MANIFEST_DIR")), TINY)
    }
}

/// `coe eval` greedy on the tiny model; returns (results.json, episode texts, stderr).
fn eval(dir: &Path, tag: &str, config: Option<&Path>) -> (serde_json::Value, Vec<String>, String) {
    eval_at(dir, tag, config, "0")
}

/// `coe eval` at `temperature`; returns (results.json, episode texts, stderr).
fn eval_at(
    dir: &Path,
    tag: &str,
    config: Option<&Path>,
    temperature: &str,
) -> (serde_json::Value, Vec<String>, String) {
    let args = ["--samples", "2", "--k", "1", "--max-turns", "3"];
    let (results, episodes, stderr) = run_eval(
        dir,
        tag,
        config,
        &[&args[..], &["--temperature", temperature]].concat(),
    );
    let texts = episodes
        .iter()
        .flat_map(|e| {
            e["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["text"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    (results, texts, stderr)
}

/// `coe eval` of the tiny model on the small task set from the repository root, with `config`
/// and `args`, saving its episodes; returns (results.json, saved episodes, stderr).
fn run_eval(
    dir: &Path,
    tag: &str,
    config: Option<&Path>,
    args: &[&str],
) -> (serde_json::Value, Vec<serde_json::Value>, String) {
    let out = dir.join(format!("{tag}.json"));
    let eps = dir.join(format!("{tag}_eps"));
    let mut c = Command::cargo_bin("coe").unwrap();
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Some(cfg) = config {
        c.arg("--config").arg(cfg);
    }
    let run = c
        .args(["eval", "--tasks", TASKS, "--model", TINY, "--threads", "1"])
        .args(args)
        .arg("--out")
        .arg(&out)
        .arg("--save-episodes")
        .arg(&eps)
        .timeout(Duration::from_secs(120))
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    let results = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let episodes = std::fs::read_to_string(eps.join("episodes.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (results, episodes, stderr)
}

/// POSTs `body` to `url`; (status, body text) whatever the status.
fn post(url: &str, body: &str) -> (u16, String) {
    match ureq::post(url)
        .timeout(Duration::from_secs(20))
        .send_string(body)
    {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn greedy_eval_through_coe_serve_matches_the_local_model() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start();
    let (local, local_texts, _) = eval(dir.path(), "local", None);
    let cfg = config_with(dir.path(), "remote", &[&server.url], "");
    let (remote, remote_texts, _) = eval(dir.path(), "remote", Some(&cfg));
    assert_eq!(local["per_task"], remote["per_task"]);
    assert_eq!(local["invalid_rate"], remote["invalid_rate"]);
    assert!(!local_texts.is_empty());
    assert_eq!(local_texts, remote_texts);
    assert!(
        remote["provenance"]["policy"]
            .as_str()
            .unwrap()
            .starts_with("remote coe @ ")
    );
    // Sampling too: the server seeds each row with the seed the local policy would draw.
    let (_, local_t1, _) = eval_at(dir.path(), "local_t1", None, "1.0");
    let (_, remote_t1, _) = eval_at(dir.path(), "remote_t1", Some(&cfg), "1.0");
    assert_eq!(local_t1, remote_t1);
}

#[test]
fn a_dead_server_costs_retries_on_the_other_not_results() {
    let dir = tempfile::tempdir().unwrap();
    let live = Served::start();
    let mut dead = Served::start();
    let dead_url = dead.url.clone();
    dead.kill();
    let (local, local_texts, _) = eval(dir.path(), "local", None);
    let cfg = config_with(dir.path(), "remote", &[&dead_url, &live.url], "");
    let (remote, remote_texts, stderr) = eval(dir.path(), "remote", Some(&cfg));
    assert_eq!(local["per_task"], remote["per_task"]);
    assert_eq!(local_texts, remote_texts);
    assert!(
        stderr.contains("answered by another server after a failure, 0 lost"),
        "{stderr}"
    );
}

#[test]
fn a_server_killed_mid_evaluation_leaves_the_evaluation_complete() {
    let dir = tempfile::tempdir().unwrap();
    let a = Served::start();
    let mut b = Served::start();
    let cfg = config_with(dir.path(), "remote", &[&a.url, &b.url], "");
    let out = dir.path().join("r.json");
    let eval = std::process::Command::new(env!("CARGO_BIN_EXE_coe"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("--config")
        .arg(&cfg)
        .args(["eval", "--tasks", TASKS, "--model", TINY, "--threads", "1"])
        .args(["--samples", "4", "--k", "1", "--temperature", "1.0"])
        .arg("--out")
        .arg(&out)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    b.kill();
    let done = eval.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let runs: usize = r["per_task"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["solved"].as_array().unwrap().len())
        .sum();
    assert_eq!(runs, 3 * 4, "every episode is accounted for");
    drop(a);
}

#[test]
fn bad_requests_get_openai_error_objects() {
    let server = Served::start();
    let post = |path: &str, body: &str| -> (u16, serde_json::Value) {
        let (code, text) = post(&format!("{}{path}", server.url), body);
        (
            code,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    };
    let cases = [
        ("/completions", "not json".to_string(), 400),
        ("/completions", r#"{"prompt": []}"#.into(), 400),
        (
            "/completions",
            r#"{"prompt": [1], "max_tokens": 100000000}"#.into(),
            400,
        ),
        ("/completions", r#"{"prompt": [99999999]}"#.into(), 400),
        (
            "/completions",
            r#"{"prompt": [1], "temperature": -1}"#.into(),
            400,
        ),
        ("/completions", r#"{"prompt": [1], "n": 1000}"#.into(), 400),
        (
            "/completions",
            r#"{"model": "nope", "prompt": [1]}"#.into(),
            404,
        ),
        (
            "/completions",
            format!(r#"{{"prompt": "{}"}}"#, "a".repeat(5 << 20)),
            400,
        ),
        (
            "/load_lora_adapter",
            r#"{"lora_name": "x", "lora_path": "/nonexistent"}"#.into(),
            400,
        ),
        (
            "/unload_lora_adapter",
            r#"{"lora_name": "never-loaded"}"#.into(),
            404,
        ),
        ("/no_such_route", "{}".into(), 404),
    ];
    for (path, body, want) in &cases {
        let (code, json) = post(path, body);
        assert_eq!(code, *want, "{path} {}", &body[..body.len().min(80)]);
        assert_eq!(json["error"]["code"], *want);
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Still serving after all of that.
    let (code, json) = post(
        "/completions",
        r#"{"model": "coe", "prompt": [1, 2], "max_tokens": 3, "temperature": 0, "logprobs": 0, "return_token_ids": true}"#,
    );
    assert_eq!(code, 200);
    assert_eq!(json["object"], "text_completion");
    assert_eq!(json["choices"][0]["token_ids"].as_array().unwrap().len(), 3);
    assert_eq!(json["prompt_token_ids"], serde_json::json!([1, 2]));
    assert_eq!(json["usage"]["total_tokens"], 5);
}

#[test]
fn rl_sampling_through_coe_serve_publishes_an_adapter_per_step() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start();
    let root = env!("CARGO_MANIFEST_DIR");
    let cfg = dir.path().join("rl.ron");
    let text = format!(
        r#"(name: "remote-rl", seed: 0,
            model: (path: "{root}/{TINY}", threads: 1,
                    remote: Some((urls: ["{}"], served_model: "coe", timeout_s: 30.0))),
            env: (max_turns: 2),
            rl: (tasks: Some("{root}/{TASKS}"), group_size: 2, tasks_per_step: 2, steps: 3,
                 temperature: 1.0, eval_every: 100, checkpoint_every: 100))"#,
        server.url
    );
    std::fs::write(&cfg, text).unwrap();
    Command::cargo_bin("coe")
        .unwrap()
        .current_dir(dir.path())
        .args(["train", "rl", "--config"])
        .arg(&cfg)
        .timeout(Duration::from_secs(180))
        .assert()
        .success();
    let events = std::fs::read_to_string(dir.path().join("runs/remote-rl/events.jsonl")).unwrap();
    for step in 0..3 {
        assert!(
            events.contains(&format!("sampling from adapter remote-rl-step-{step}\"")),
            "step {step} was not published"
        );
    }
    // The servers keep only the newest adapter; its files are the only ones left.
    let models: serde_json::Value = serde_json::from_str(
        &ureq::get(&format!("{}/models", server.url))
            .call()
            .unwrap()
            .into_string()
            .unwrap(),
    )
    .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["coe", "remote-rl-step-2"]);
    let served: Vec<_> = std::fs::read_dir(dir.path().join("runs/remote-rl/served"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(served, ["remote-rl-step-2"]);

    // vLLM's `load_inplace`: a name loaded again is refused unless the request asks to replace
    // it, which the remote backend does (a retried publish or a resumed run repeats a name).
    let adapter = dir.path().join("runs/remote-rl/served/remote-rl-step-2");
    let load = |name: &str, inplace: Option<bool>| -> (u16, String) {
        let mut body = serde_json::json!({"lora_name": name, "lora_path": adapter});
        if let Some(v) = inplace {
            body["load_inplace"] = v.into();
        }
        post(
            &format!("{}/load_lora_adapter", server.url),
            &body.to_string(),
        )
    };
    let (code, text) = load("remote-rl-step-2", None);
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("already been loaded"), "{text}");
    let (code, text) = load("remote-rl-step-2", Some(true));
    assert_eq!(code, 200, "{text}");
    let models = ureq::get(&format!("{}/models", server.url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(
        models.matches("\"remote-rl-step-2\"").count(),
        1,
        "{models}"
    );
    // The configured model itself is never replaced.
    assert_eq!(load("coe", Some(true)).0, 400);
}

/// A config with `extra` sections and, when `urls` is not empty, the remote backend.
fn config_with(dir: &Path, tag: &str, urls: &[&str], extra: &str) -> std::path::PathBuf {
    let list: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    let remote = if urls.is_empty() {
        String::new()
    } else {
        format!(
            "model: (remote: Some((urls: [{}], served_model: \"coe\", timeout_s: 20.0, connect_timeout_s: 2.0, retries: 1))),",
            list.join(", ")
        )
    };
    let path = dir.join(format!("{tag}.ron"));
    std::fs::write(&path, format!("({remote} {extra})")).unwrap();
    path
}

/// `coe eval --method direct` greedy with short replies; (results.json, saved replies, stderr).
fn eval_direct(
    dir: &Path,
    tag: &str,
    config: &Path,
) -> (serde_json::Value, Vec<serde_json::Value>, String) {
    let args = [
        "--method",
        "direct",
        "--samples",
        "2",
        "--k",
        "1",
        "--temperature",
        "0",
    ];
    run_eval(dir, tag, Some(config), &args)
}

#[test]
fn greedy_direct_eval_through_coe_serve_matches_the_local_model() {
    let dir = tempfile::tempdir().unwrap();
    let server = Served::start();
    let short = "eval: (answer_tokens: Some(48))";
    let local_cfg = config_with(dir.path(), "local", &[], short);
    let remote_cfg = config_with(dir.path(), "remote", &[&server.url], short);
    let (local, local_replies, _) = eval_direct(dir.path(), "local", &local_cfg);
    let (remote, remote_replies, _) = eval_direct(dir.path(), "remote", &remote_cfg);
    assert_eq!(local["per_task"], remote["per_task"]);
    assert_eq!(local_replies.len(), 3 * 2);
    let keep = |rs: &[serde_json::Value]| -> Vec<(serde_json::Value, serde_json::Value)> {
        rs.iter()
            .map(|r| (r["reply"].clone(), r["token_ids"].clone()))
            .collect()
    };
    assert!(
        local_replies
            .iter()
            .all(|r| !r["token_ids"].as_array().unwrap().is_empty())
    );
    assert_eq!(keep(&local_replies), keep(&remote_replies));
    assert!(
        remote["provenance"]["policy"]
            .as_str()
            .unwrap()
            .starts_with("remote coe @ ")
    );
}

#[test]
fn every_server_down_makes_each_episode_an_infra_error_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Served::start();
    let mut b = Served::start();
    let urls = [a.url.clone(), b.url.clone()];
    a.kill();
    b.kill();
    let cfg = config_with(dir.path(), "down", &[&urls[0], &urls[1]], "");
    let started = std::time::Instant::now();
    let (results, _, stderr) = eval(dir.path(), "coe", Some(&cfg));
    let eps: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("coe_eps/episodes.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(eps.len(), 3 * 2);
    assert!(eps.iter().all(|e| e["infra_error"] == true), "{eps:?}");
    assert!(
        stderr.contains(", 6 lost (their episodes are infra errors)"),
        "{stderr}"
    );
    let solved: usize = results["per_task"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["solved"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| **s == true)
                .count()
        })
        .sum();
    assert_eq!(solved, 0);
    // One-shot answers too: every reply an infra error, the lost count reported.
    let (_, replies, stderr) = eval_direct(dir.path(), "direct", &cfg);
    assert_eq!(replies.len(), 3 * 2);
    assert!(
        replies.iter().all(|r| r["verdict"] == "infra_error"),
        "{replies:?}"
    );
    assert!(
        stderr.contains("remote: 6 requests lost on every server"),
        "{stderr}"
    );
    // Refused connections fail at once; nothing waited for the 20 s request timeout.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}
