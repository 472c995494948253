//! The cross-turn KV cache of the model policy: each episode's keys and values from its
//! last turn are reused, so only appended tokens are prefilled. With a fixed seed, episodes
//! must be the same with the cache on and off — sampled ids, texts, rewards — and the
//! log-probabilities agree within 1e-4 (f32): on the tiny model through the whole rollout
//! loop with the sandbox, with a context small enough that old turns are dropped (the
//! cache is rebuilt), with a budget so small that every entry is evicted, and on the
//! default model for a short episode.
use std::path::Path;

use crate::common::{add_task, tiny_gguf};
use coe::config::Config;
use coe::eval::rollout::{EpisodeResult, RolloutOptions, run_episodes};
use coe::model::loader::load_model;
use coe::policy::model::ModelPolicyConfig;
use coe::policy::{ModelPolicy, Policy, Proposal};
use coe::sandbox::{SandboxConfig, SandboxPool};
use coe::task::Task;
use tch::{Device, Kind};

fn tiny_policy(seed: u64, context: usize, kv_bytes: usize) -> ModelPolicy {
    let path = tiny_gguf();
    let loaded = load_model(path.to_str().unwrap(), Device::Cpu, Kind::Float, None).unwrap();
    let mut cfg = ModelPolicyConfig::new(1.0, 1.0, context, seed);
    cfg.max_new_tokens = 24;
    cfg.kv_cache_bytes = kv_bytes;
    ModelPolicy::new(loaded, cfg).unwrap()
}

fn task(id: &str, delta: i32) -> Task {
    add_task(id, &format!("return a + b + {delta}"))
}

/// `turns` rounds of `episodes` episodes with made-up observations, each reply fed back.
fn converse(p: &mut ModelPolicy, episodes: usize, turns: usize) -> Vec<Vec<(String, Proposal)>> {
    crate::common::converse(p, &task("t", 1), episodes, turns, |turn, e| {
        format!("L1 def add(a, b):\nL2     return a + b + {turn}\n***\nTest {e} failed")
    })
}

fn assert_same_replies(a: &[(String, Proposal)], b: &[(String, Proposal)]) {
    assert_eq!(a.len(), b.len());
    for ((ua, ra), (ub, rb)) in a.iter().zip(b) {
        assert_eq!((ua, &ra.text, &ra.token_ids), (ub, &rb.text, &rb.token_ids));
        for (x, y) in ra.logprobs.iter().zip(&rb.logprobs) {
            assert!((x - y).abs() < 1e-4, "log-probabilities {x} vs {y}");
        }
    }
}

#[test]
fn replies_are_the_same_with_the_cache_on_and_off() {
    let off = converse(&mut tiny_policy(5, 2048, 0), 5, 6);
    let mut on_policy = tiny_policy(5, 2048, 1 << 30);
    let on = converse(&mut on_policy, 5, 6);
    for (a, b) in off.iter().zip(&on) {
        assert_same_replies(a, b);
    }
    let stats = on_policy.kv_cache_stats();
    assert_eq!(stats.episodes, 5, "one cached sequence per live episode");
    assert!(stats.bytes > 0);
    // Turns 2..6 of 5 episodes reused at least their first prompt each.
    let first_prompt = on_policy.prompt_from(&[], &off[0][0].0).unwrap().ids.len() as u64;
    assert!(stats.reused_tokens >= 25 * first_prompt, "{stats:?}");
    for e in 0..5 {
        on_policy.end_episode(e);
    }
    let stats = on_policy.kv_cache_stats();
    assert_eq!(
        (stats.bytes, stats.episodes),
        (0, 0),
        "ended episodes free their entry"
    );
}

#[test]
fn dropped_turns_and_evictions_rebuild_the_cache_without_changing_replies() {
    // A context this small drops old turns from the third turn on: prompts then no longer
    // extend the cached sequence, which must be rebuilt, not reused.
    let off = converse(&mut tiny_policy(9, 420, 0), 4, 6);
    let small_context = converse(&mut tiny_policy(9, 420, 1 << 30), 4, 6);
    // A budget of one byte evicts every entry after each micro-batch.
    let starved = converse(&mut tiny_policy(9, 420, 1), 4, 6);
    for ((a, b), c) in off.iter().zip(&small_context).zip(&starved) {
        assert_same_replies(a, b);
        assert_same_replies(a, c);
    }
}

fn sandbox_rollout(kv_bytes: usize) -> Vec<EpisodeResult> {
    let cfg = SandboxConfig {
        workers: 2,
        unprivileged_uid_base: 62500,
        ..Default::default()
    };
    let pool = SandboxPool::new(&cfg).unwrap();
    let mut env = Config::embedded_default().env;
    env.max_turns = 4;
    let opts = RolloutOptions {
        env,
        limits: cfg.limits.clone(),
        batch: 8,
        threads: 2,
        job: 1,
    };
    let tasks = [task("a", 1), task("b", 2), task("c", 3)];
    let mut policy = tiny_policy(21, 2048, kv_bytes);
    run_episodes(&tasks, 2, &mut policy, &pool, &opts, &mut |_| {}).unwrap()
}

#[test]
fn episodes_through_the_rollout_loop_are_the_same_with_the_cache_on_and_off() {
    let off = sandbox_rollout(0);
    let on = sandbox_rollout(1 << 30);
    assert_eq!(off.len(), on.len());
    for (a, b) in off.iter().zip(&on) {
        assert_eq!(
            (a.turns, a.solved, &a.rewards),
            (b.turns, b.solved, &b.rewards)
        );
        assert_same_replies(&a.history, &b.history);
    }
    assert!(
        off.iter().map(|r| r.turns).sum::<u32>() > 6,
        "the episodes had several turns"
    );
}

#[test]
fn the_default_model_gives_the_same_short_episode_with_the_cache_on_and_off() {
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let what = format!("{} (run scripts/setup.sh)", model.display());
    if !crate::support::prereq::require(&what, model.exists()) {
        return;
    }
    tch::set_num_threads(1);
    let run = |kv_bytes: usize| {
        let loaded = load_model("default", Device::Cpu, Kind::Float, None).unwrap();
        let mut cfg = ModelPolicyConfig::new(1.0, 1.0, 2048, 3);
        cfg.max_new_tokens = 12;
        cfg.kv_cache_bytes = kv_bytes;
        converse(&mut ModelPolicy::new(loaded, cfg).unwrap(), 2, 3)
    };
    let (off, on) = (run(0), run(1 << 30));
    for (a, b) in off.iter().zip(&on) {
        assert_same_replies(a, b);
    }
}
