//! Sampling from a fixed adapter folds it into the weights (W + s·BA) so a decode step runs
//! the base model's kernels: the same greedy ids as the adapter path, logits within 1e-4
//! (f32) on the default model, and every weight bit-identical after the restore.
use std::path::Path;

use coe::model::generate::{GenParams, generate};
use coe::model::llama::Llama;
use coe::model::loader::load_model;
use coe::model::lora::LoraConfig;
use coe::model::sampling::SamplingParams;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

fn adapted_model() -> Llama {
    crate::common::tiny_with_adapters(3, 0.03).model
}

fn snapshot(m: &Llama) -> Vec<(String, Tensor)> {
    m.base_parameters()
        .chain(m.lora_parameters())
        .map(|(n, t)| (n.to_string(), t.copy()))
        .collect()
}

fn logits(m: &Llama, ids: &[i64]) -> Tensor {
    let _guard = tch::no_grad_guard();
    let n = ids.len() as i64;
    let input = Tensor::from_slice(ids).view([1, n]);
    let positions = Tensor::arange(n, (Kind::Int64, Device::Cpu)).view([1, n]);
    m.forward(&input, &positions, None, None).unwrap()
}

fn greedy(m: &Llama, prompts: &[Vec<u32>]) -> Vec<Vec<u32>> {
    let params = GenParams {
        max_new_tokens: 24,
        sampling: SamplingParams::greedy(),
        stop_ids: vec![],
        stop_rule: None,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    generate(m, prompts, &params, &mut rng)
        .unwrap()
        .into_iter()
        .map(|g| g.ids)
        .collect()
}

#[test]
fn folded_sampling_matches_the_adapter_path_and_restores_every_weight() {
    let mut m = adapted_model();
    let before = snapshot(&m);
    let prompt: Vec<i64> = (1..40).map(|i| (i * 7) % 200 + 3).collect();
    let prompts: Vec<Vec<u32>> = vec![
        prompt.iter().map(|&i| i as u32).collect(),
        prompt[..17].iter().map(|&i| i as u32).collect(),
    ];
    let (adapter_logits, adapter_ids) = (logits(&m, &prompt), greedy(&m, &prompts));
    let (folded_logits, folded_ids) = m
        .with_folded_lora(|f| {
            assert!(f.lora_merged(), "the adapter is folded while sampling");
            (logits(f, &prompt), greedy(f, &prompts))
        })
        .unwrap();
    assert!(!m.lora_merged());
    // This random model amplifies rounding (its logits reach ~30, and adapters compute in
    // f32 whatever the base dtype): the two summation orders differ by a few 1e-4 in its
    // logits. The default model, below, holds them within 1e-4.
    let diff = (&adapter_logits - &folded_logits)
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 2e-3, "logits differ by {diff}");
    assert_eq!(adapter_ids, folded_ids);
    // Folding changed the weights (the adapter is not a no-op) …
    m.set_lora_enabled(false).unwrap();
    let base_off = logits(&m, &prompt);
    m.set_lora_enabled(true).unwrap();
    assert!((&base_off - &adapter_logits).abs().max().double_value(&[]) > 1e-3);
    // … and the restore puts every weight back bit for bit.
    for ((name, was), (_, now)) in before.iter().zip(snapshot(&m)) {
        assert!(was.equal(&now), "{name} changed");
    }
}

#[test]
fn the_default_model_folded_gives_logits_within_1e_4() {
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let what = format!("{} (run scripts/setup.sh)", model.display());
    if !crate::support::prereq::require(&what, model.exists()) {
        return;
    }
    let lora = LoraConfig {
        r: 16,
        alpha: 32.0,
        dropout: 0.0,
        targets: vec!["all-linear".into()],
    };
    let mut m = load_model("default", Device::Cpu, Kind::Float, Some(&lora))
        .unwrap()
        .model;
    crate::common::randomise_adapters(&m, 5, 0.01);
    let before = snapshot(&m);
    let prompt: Vec<i64> = (1..64).map(|i| (i * 131) % 40_000 + 17).collect();
    let prompts = vec![prompt.iter().map(|&i| i as u32).collect::<Vec<u32>>()];
    let (adapter, adapter_ids) = (logits(&m, &prompt), greedy(&m, &prompts));
    let (folded, folded_ids) = m
        .with_folded_lora(|f| (logits(f, &prompt), greedy(f, &prompts)))
        .unwrap();
    let diff = (&adapter - &folded).abs().max().double_value(&[]);
    eprintln!("default model: folded logits differ by {diff}");
    assert!(diff < 1e-4, "logits differ by {diff}");
    assert_eq!(adapter_ids, folded_ids);
    for ((name, was), (_, now)) in before.iter().zip(snapshot(&m)) {
        assert!(was.equal(&now), "{name} changed");
    }
}
