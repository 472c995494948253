//! The model policy on the tiny random GGUF fixture (ChatML tokenizer, 272 ids): prompts
//! carry earlier replies' sampled ids verbatim, old turns go whole, replies keep their stop
//! token, and sampling is reproducible under a seed and independent of micro-batching.

use std::path::Path;

use crate::common::converse;
use coe::env::buffer::Buffer;
use coe::model::loader::load_model;
use coe::policy::model::ModelPolicyConfig;
use coe::policy::{ModelPolicy, Proposal, Query};
use coe::task::{Origin, Task};
use tch::{Device, Kind};

const MAX_NEW: usize = 48;

fn policy(seed: u64, context_tokens: usize, max_batch_tokens: usize) -> ModelPolicy {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf/tiny_llama.gguf");
    let loaded = load_model(path.to_str().unwrap(), Device::Cpu, Kind::Float, None).unwrap();
    let mut cfg = ModelPolicyConfig::new(1.0, 1.0, context_tokens, seed);
    cfg.max_new_tokens = MAX_NEW;
    cfg.max_batch_tokens = max_batch_tokens;
    ModelPolicy::new(loaded, cfg).unwrap()
}

fn task() -> Task {
    Task {
        id: "t1".into(),
        prompt: "Add two numbers.".into(),
        solution: Some("def add(a, b):\n    return a + b\n".into()),
        tests: vec!["assert add(1, 2) == 3".into()],
        setup: None,
        entry_point: None,
        buggy: "def add(a, b):\n    return a - b\n".into(),
        origin: Origin::Synthetic,
        problem_id: "p1".into(),
        corruptions: None,
        extra: Default::default(),
    }
}

const OBSERVATIONS: [&str; 3] = [
    "Fix the code.\nL1 def add(a, b):\nL2     return a - b\n***\nTest 1 failed",
    "L1 def add(a, b):\nL2     return a * b\n***\nTest 1 failed",
    "L1 def add(a, b):\nL2     return a + b\n***\nAll tests passed.",
];

/// Runs `turns` rounds of `episodes` parallel episodes, feeding each reply back as history.
fn rollout(p: &mut ModelPolicy, episodes: usize, turns: usize) -> Vec<Vec<(String, Proposal)>> {
    converse(p, &task(), episodes, turns, |turn, e| {
        format!("{} (episode {e})", OBSERVATIONS[turn % 3])
    })
}

#[test]
fn replies_keep_their_stop_token_and_cut_text_at_the_newline() {
    let mut p = policy(3, 2048, 16_384);
    let histories = rollout(&mut p, 8, 2);
    let tok = &p.loaded().tokenizer;
    let mut stopped = 0;
    for (_, r) in histories.iter().flatten() {
        assert!(!r.person);
        assert_eq!(r.logprobs.len(), r.token_ids.len());
        assert!(r.logprobs.iter().all(|l| l.is_finite() && *l <= 0.0));
        assert!(!r.token_ids.is_empty() && r.token_ids.len() <= MAX_NEW);
        assert!(!r.text.contains('\n'), "{:?}", r.text);
        let last = *r.token_ids.last().unwrap();
        let last_text = tok.decode(&[last]).unwrap();
        let stop = tok.is_end_of_turn(last) || last_text.contains('\n');
        // Only the last id may be a stop token.
        for &id in &r.token_ids[..r.token_ids.len() - 1] {
            assert!(!tok.is_end_of_turn(id) && !tok.decode(&[id]).unwrap().contains('\n'));
        }
        let shown = if tok.is_end_of_turn(last) {
            &r.token_ids[..r.token_ids.len() - 1]
        } else {
            &r.token_ids[..]
        };
        let decoded = tok.decode(shown).unwrap();
        assert_eq!(r.text, decoded.split('\n').next().unwrap());
        stopped += usize::from(stop);
    }
    assert!(
        stopped > 0,
        "no reply hit a stop token; the test says nothing"
    );
}

#[test]
fn prompts_contain_earlier_replies_verbatim() {
    let mut p = policy(5, 2048, 16_384);
    let histories = rollout(&mut p, 3, 3);
    let task = task();
    let buffer = Buffer::from_code(&task.buggy);
    for h in &histories {
        let q = Query {
            episode: 0,
            task: &task,
            buffer: &buffer,
            history: h,
            observation: "the next state",
        };
        let prompt = p.prompt_for(&q).unwrap();
        assert_eq!(prompt.dropped_pairs, 0);
        assert_eq!(prompt.replies.len(), h.len());
        for (k, range) in &prompt.replies {
            assert_eq!(&prompt.ids[range.clone()], h[*k].1.token_ids.as_slice());
        }
    }
}

#[test]
fn a_small_context_drops_old_turns_whole() {
    let mut p = policy(5, 2048, 16_384);
    let histories = rollout(&mut p, 1, 3);
    let h = &histories[0];
    let task = task();
    let buffer = Buffer::from_code(&task.buggy);
    let q = Query {
        episode: 0,
        task: &task,
        buffer: &buffer,
        history: h,
        observation: "now",
    };
    let full = p.prompt_for(&q).unwrap();
    // A context one token short of prompt + reply room forces exactly one pair out.
    let small = policy(5, full.ids.len() + MAX_NEW - 1, 16_384);
    let trimmed = small.prompt_for(&q).unwrap();
    assert_eq!(trimmed.dropped_pairs, 1);
    assert!(trimmed.ids.len() < full.ids.len());
    assert_eq!(
        trimmed.replies.iter().map(|r| r.0).collect::<Vec<_>>(),
        [1, 2]
    );
    for (k, range) in &trimmed.replies {
        assert_eq!(&trimmed.ids[range.clone()], h[*k].1.token_ids.as_slice());
    }
}

#[test]
fn sampling_is_seeded_and_independent_of_micro_batches() {
    let run = |seed, max_batch_tokens| rollout(&mut policy(seed, 2048, max_batch_tokens), 4, 2);
    let a = run(11, 16_384);
    assert_eq!(a, run(11, 16_384));
    // One prompt per prefill gives the same replies as all prompts together (the
    // log-probabilities only up to float rounding: padding changes the summation order).
    let b = run(11, 1);
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert_eq!(
            (&x.0, &x.1.text, &x.1.token_ids),
            (&y.0, &y.1.text, &y.1.token_ids)
        );
        for (p, q) in x.1.logprobs.iter().zip(&y.1.logprobs) {
            assert!((p - q).abs() < 1e-3, "{p} vs {q}");
        }
    }
    assert_ne!(a, run(12, 16_384));
}
