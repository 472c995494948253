//! Helpers the model tests share: the tiny GGUF fixture (also with non-zero LoRA adapters),
//! an "add two numbers" task, and a multi-turn conversation driven through a policy with
//! made-up observations.
use std::path::{Path, PathBuf};

use coe::env::buffer::Buffer;
use coe::model::llama::Llama;
use coe::model::loader::{LoadedModel, load_model};
use coe::model::lora::LoraConfig;
use coe::policy::{Policy, Proposal, Query};
use coe::task::{Origin, Task};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

/// The tiny random Llama in GGUF form (ChatML tokenizer, 272 ids).
pub fn tiny_gguf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf/tiny_llama.gguf")
}

/// The tiny fixture with rank-4 adapters on every linear layer, their weights uniform in
/// ±`scale` from `seed` (non-zero, so the adapters change the model and get gradients).
pub fn tiny_with_adapters(seed: u64, scale: f64) -> LoadedModel {
    let lora = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: vec!["all-linear".into()],
    };
    let path = tiny_gguf();
    let loaded = load_model(
        path.to_str().unwrap(),
        Device::Cpu,
        Kind::Float,
        Some(&lora),
    )
    .unwrap();
    randomise_adapters(&loaded.model, seed, scale);
    loaded
}

/// Adapter weights uniform in ±`scale` from a seeded stream of the test's own (the global
/// torch generator is shared with tests running beside it).
pub fn randomise_adapters(m: &Llama, seed: u64, scale: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let _guard = tch::no_grad_guard();
    for (_, p) in m.lora_parameters() {
        let v: Vec<f32> = (0..p.numel())
            .map(|_| (rng.random::<f64>() * 2.0 - 1.0) as f32 * scale as f32)
            .collect();
        p.shallow_clone()
            .copy_(&Tensor::from_slice(&v).view(p.size().as_slice()));
    }
}

/// `add(a, b)` with `buggy` as its body's return line.
pub fn add_task(id: &str, buggy_return: &str) -> Task {
    Task {
        id: id.into(),
        prompt: "Add two numbers.".into(),
        solution: Some("def add(a, b):\n    return a + b\n".into()),
        tests: vec![
            "assert add(1, 2) == 3".into(),
            "assert add(2, 2) == 4".into(),
        ],
        setup: None,
        entry_point: None,
        buggy: format!("def add(a, b):\n    {buggy_return}\n"),
        origin: Origin::Synthetic,
        problem_id: id.into(),
        corruptions: None,
        extra: Default::default(),
    }
}

/// `turns` rounds of `episodes` parallel episodes (ids 0..episodes) on `task`, each turn's
/// observation from `observe(turn, episode)`, each reply fed back as history.
pub fn converse(
    p: &mut dyn Policy,
    task: &Task,
    episodes: usize,
    turns: usize,
    observe: impl Fn(usize, usize) -> String,
) -> Vec<Vec<(String, Proposal)>> {
    let buffer = Buffer::from_code(&task.buggy);
    let mut histories: Vec<Vec<(String, Proposal)>> = vec![Vec::new(); episodes];
    for turn in 0..turns {
        let obs: Vec<String> = (0..episodes).map(|e| observe(turn, e)).collect();
        let queries: Vec<Query<'_>> = histories
            .iter()
            .zip(&obs)
            .enumerate()
            .map(|(e, (h, o))| Query {
                episode: e as u64,
                task,
                buffer: &buffer,
                history: h,
                observation: o,
            })
            .collect();
        let replies = p.propose(&queries).unwrap();
        assert_eq!(replies.len(), episodes);
        for ((h, o), r) in histories.iter_mut().zip(obs).zip(replies) {
            h.push((o, r));
        }
    }
    histories
}
