//! A short `coe bench soak`: the scripted policy (oracle plus invalid and hostile
//! edits) on the project's problems for a few seconds, through the real pool. The long
//! run is `COE_SOAK_SECS=600 coe bench soak` (results/reliability.md); this one checks
//! that the soak itself works and that even a short stretch leaks nothing.
use std::path::PathBuf;
use std::time::Duration;

use coe::bench::soak::{SoakOptions, run_with};
use coe::config::Config;

#[test]
fn a_short_soak_runs_episodes_and_leaks_nothing() {
    // It counts every process under this one as a leak: no other pool may be alive.
    let _one = crate::attacks_support::one_pool();
    let mut cfg = Config::embedded_default();
    cfg.sandbox.workers = 2;
    cfg.sandbox.unprivileged_uid_base = 62400;
    let opts = SoakOptions {
        limit: Duration::from_secs(3),
        episodes: 400,
        problems: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets/problems.jsonl"),
        seed: 3,
    };
    let out = run_with(&cfg, &opts).unwrap();
    let num = |k: &str| out[k].as_f64().unwrap_or(f64::NAN);
    assert!(num("episodes") >= 1.0, "{out}");
    assert!(num("turns") >= num("episodes"), "{out}");
    assert!(num("invalid_turns") >= 0.0, "{out}");
    assert_eq!(num("infra_errors"), 0.0, "{out}");
    assert_eq!(out["leaked_processes"], serde_json::json!([]), "{out}");
    assert_eq!(out["leaked_temp_files"], serde_json::json!([]), "{out}");
    let minutes = out["per_minute"].as_array().unwrap();
    assert!(
        !minutes.is_empty() && minutes[0]["sample"]["rss_mb"].as_f64().unwrap() > 0.0,
        "{out}"
    );
    // Every episode the soak counted finished and was tallied in some minute.
    let tallied: f64 = minutes
        .iter()
        .map(|m| m["episodes"].as_f64().unwrap())
        .sum();
    assert_eq!(tallied, num("episodes"), "{out}");
}

#[test]
fn bad_settings_are_named() {
    // Holding the lock, no other test of this binary spawns a process meanwhile.
    let _one = crate::attacks_support::one_pool();
    // SAFETY: the other tests read the environment only when they spawn, under the lock.
    unsafe { std::env::set_var("COE_SOAK_SECS", "ten") };
    let err = SoakOptions::from_env().unwrap_err().to_string();
    unsafe { std::env::remove_var("COE_SOAK_SECS") };
    assert_eq!(err, "COE_SOAK_SECS=\"ten\" is not a valid number");
}
