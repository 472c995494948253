//! The Llama stack on tiny random models (CPU, f32 unless stated): batching and
//! caching invariants, LoRA semantics, adapter files, training, generation, and a
//! parity check against `transformers` + PEFT on a committed fixture
//! (`scripts/make_tiny_reference.py`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use coe::model::config::LlamaConfig;
use coe::model::generate::{FinishReason, GenParams, generate, generate_each};
use coe::model::gguf::names::RawTensor;
use coe::model::kv_cache::KvCache;
use coe::model::llama::{AttentionKernel, Llama, ModelError};
use coe::model::lora::LoraConfig;
use coe::model::safetensors_io::{
    load_adapter, load_hf_weights, read_adapter_config, read_safetensors, save_adapter,
};
use coe::model::sampling::SamplingParams;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

const VOCAB: usize = 64;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_llama")
}

/// Base weights drawn from a seeded ChaCha stream: norms near 1, the rest ±0.35.
fn random_raw(model: &Llama, seed: u64) -> Vec<RawTensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    model
        .base_parameters()
        .map(|(name, t)| {
            let shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
            let norm = name.ends_with("norm.weight");
            let data = (0..shape.iter().product::<usize>())
                .map(|_| {
                    let u: f32 = rng.random_range(-1.0..1.0);
                    if norm { 1.0 + 0.2 * u } else { 0.35 * u }
                })
                .collect();
            RawTensor {
                name: name.to_string(),
                shape,
                data,
            }
        })
        .collect()
}

fn build(
    cfg: &LlamaConfig,
    lora: Option<&LoraConfig>,
    kind: Kind,
    seed: u64,
) -> (nn::VarStore, Llama) {
    let mut vs = nn::VarStore::new(Device::Cpu);
    vs.set_kind(kind);
    let mut model = Llama::new(&vs.root(), cfg, lora).unwrap();
    let raw = random_raw(&model, seed);
    model.load_raw(&raw).unwrap();
    (vs, model)
}

fn tiny() -> (nn::VarStore, Llama) {
    build(&LlamaConfig::tiny(VOCAB), None, Kind::Float, 7)
}

fn lora_cfg(targets: &[&str]) -> LoraConfig {
    LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: targets.iter().map(|s| s.to_string()).collect(),
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Float) - b.to_kind(Kind::Float))
        .abs()
        .max()
        .double_value(&[])
}

fn ids_tensor(ids: &[u32]) -> Tensor {
    Tensor::from_slice(&ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>())
        .view([1, ids.len() as i64])
}

/// Logits `[T, V]` of one sequence run alone, no cache.
fn alone(model: &Llama, ids: &[u32]) -> Tensor {
    let n = ids.len() as i64;
    let pos = Tensor::arange(n, (Kind::Int64, Device::Cpu)).view([1, n]);
    tch::no_grad(|| {
        model
            .forward(&ids_tensor(ids), &pos, None, None)
            .unwrap()
            .squeeze_dim(0)
    })
}

/// Left-padded ids, mask and positions `[B, W]` for `seqs`.
fn left_pad(seqs: &[Vec<u32>]) -> (Tensor, Tensor, Tensor) {
    let w = seqs.iter().map(Vec::len).max().unwrap();
    let (mut ids, mut mask, mut pos) = (vec![], vec![], vec![]);
    for s in seqs {
        let pad = w - s.len();
        ids.extend(
            (0..pad)
                .map(|_| 0i64)
                .chain(s.iter().map(|&i| i64::from(i))),
        );
        mask.extend((0..w).map(|j| i64::from(j >= pad)));
        pos.extend((0..w).map(|j| j.saturating_sub(pad) as i64));
    }
    let shape = [seqs.len() as i64, w as i64];
    (
        Tensor::from_slice(&ids).view(shape),
        Tensor::from_slice(&mask).view(shape),
        Tensor::from_slice(&pos).view(shape),
    )
}

fn sequences() -> Vec<Vec<u32>> {
    vec![
        vec![1, 5, 9, 14, 3],
        vec![1, 40],
        vec![1, 22, 8, 61, 7, 30, 2],
    ]
}

#[test]
fn shapes_and_parameter_names() {
    // The model worker thread owns the model: it must be movable there.
    fn assert_send<T: Send>() {}
    assert_send::<Llama>();
    assert_send::<KvCache>();
    let (vs, model) = build(
        &LlamaConfig::tiny(VOCAB),
        Some(&lora_cfg(&["q_proj", "down_proj"])),
        Kind::Float,
        1,
    );
    let logits = alone(&model, &[1, 2, 3]);
    assert_eq!(logits.size(), [3, VOCAB as i64]);
    let mut registered: Vec<String> = model
        .base_parameters()
        .chain(model.lora_parameters())
        .map(|(n, _)| n.to_string())
        .collect();
    registered.sort();
    let mut in_store: Vec<String> = vs.variables().into_keys().collect();
    in_store.sort();
    assert_eq!(registered, in_store);
    assert!(in_store.contains(&"model.layers.1.mlp.down_proj.lora_B.weight".to_string()));
    assert!(in_store.contains(&"model.layers.0.self_attn.k_proj.weight".to_string()));
    assert!(
        !in_store.iter().any(|n| n.starts_with("lm_head")),
        "tiny() ties the embeddings"
    );
    assert_eq!(
        vs.trainable_variables().len(),
        model.lora_parameters().count()
    );
    assert_eq!(model.lora_parameters().count(), 2 * 2 * 2);
}

#[test]
fn padded_batch_equals_individual_runs_for_both_kernels() {
    let (_vs, mut model) = tiny();
    let seqs = sequences();
    let (ids, mask, pos) = left_pad(&seqs);
    let w = ids.size()[1];
    for kernel in [
        AttentionKernel::Grouped,
        AttentionKernel::Sdpa,
        AttentionKernel::Auto,
    ] {
        model.set_attention_kernel(kernel);
        let batch = tch::no_grad(|| model.forward(&ids, &pos, Some(&mask), None).unwrap());
        for (r, s) in seqs.iter().enumerate() {
            let n = s.len() as i64;
            let row = batch.get(r as i64).narrow(0, w - n, n);
            let d = max_diff(&row, &alone(&model, s));
            assert!(d <= 1e-4, "{kernel:?} row {r}: max diff {d}");
        }
    }
}

#[test]
fn cached_decode_equals_full_forward() {
    let (_vs, model) = tiny();
    let seq: Vec<u32> = vec![1, 9, 17, 4, 33, 50, 12, 8, 27];
    let full = alone(&model, &seq);
    // Capacity 2 forces the buffers to grow twice.
    let mut cache = KvCache::new(model.config(), 1, 2, Kind::Float, Device::Cpu);
    let chunks = [0..4, 4..6, 6..7, 7..8, 8..9]; // a prefill, a two-token chunk, then single steps
    let _guard = tch::no_grad_guard();
    for c in chunks {
        let ids = ids_tensor(&seq[c.clone()]);
        let pos = Tensor::arange_start(c.start as i64, c.end as i64, (Kind::Int64, Device::Cpu))
            .view([1, -1]);
        let out = model
            .forward(&ids, &pos, None, Some(&mut cache))
            .unwrap()
            .squeeze_dim(0);
        let d = max_diff(&out, &full.narrow(0, c.start as i64, c.len() as i64));
        assert!(d <= 1e-4, "chunk {c:?}: max diff {d}");
    }
    assert_eq!(cache.len(), seq.len());
}

#[test]
fn padded_cached_decode_with_dropped_rows_matches_individual_runs() {
    let (_vs, model) = tiny();
    let seqs = sequences();
    let continuation: [u32; 3] = [11, 12, 13];
    let (ids, mask, pos) = left_pad(&seqs);
    let _guard = tch::no_grad_guard();
    let mut cache = KvCache::new(model.config(), 3, 16, Kind::Float, Device::Cpu);
    let _ = model
        .forward(&ids, &pos, Some(&mask), Some(&mut cache))
        .unwrap();
    // Drop row 1 and swap the others: rows are now (2, 0).
    cache.select_rows(&[2, 0]).unwrap();
    let kept = [2usize, 0];
    for (step, &tok) in continuation.iter().enumerate() {
        let ids = Tensor::from_slice(&[i64::from(tok); 2]).view([2, 1]);
        let pos: Vec<i64> = kept
            .iter()
            .map(|&r| (seqs[r].len() + step) as i64)
            .collect();
        let out = model
            .forward(
                &ids,
                &Tensor::from_slice(&pos).view([2, 1]),
                None,
                Some(&mut cache),
            )
            .unwrap();
        for (slot, &r) in kept.iter().enumerate() {
            let mut whole = seqs[r].clone();
            whole.extend(&continuation[..=step]);
            let want = alone(&model, &whole).get(whole.len() as i64 - 1);
            let d = max_diff(&out.get(slot as i64).get(0), &want);
            assert!(d <= 1e-4, "step {step} row {r}: max diff {d}");
        }
    }
    assert!(
        cache
            .select_rows(&[5])
            .unwrap_err()
            .to_string()
            .contains("KV cache row")
    );
}

#[test]
fn tied_and_untied_heads() {
    let tied_cfg = LlamaConfig::tiny(VOCAB);
    let untied_cfg = LlamaConfig {
        tie_word_embeddings: false,
        ..tied_cfg.clone()
    };
    let (_a, tied) = build(&tied_cfg, None, Kind::Float, 3);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut untied = Llama::new(&vs.root(), &untied_cfg, None).unwrap();
    let mut raw = random_raw(&tied, 3);
    let embed = raw
        .iter()
        .find(|r| r.name == "model.embed_tokens.weight")
        .unwrap()
        .clone();
    raw.push(RawTensor {
        name: "lm_head.weight".into(),
        ..embed
    });
    untied.load_raw(&raw).unwrap();
    let seq = [1, 2, 3, 4];
    assert!(max_diff(&alone(&tied, &seq), &alone(&untied, &seq)) <= 1e-6);
    // A tied model ignores a checkpoint's lm_head.weight, as transformers does.
    let mut tied2 = Llama::new(&vs.root().sub("again"), &tied_cfg, None).unwrap();
    tied2.load_raw(&raw).unwrap();
    assert!(max_diff(&alone(&tied, &seq), &alone(&tied2, &seq)) <= 1e-6);
    // The untied head is its own weight: changing it changes the logits.
    let (_, head) = untied
        .base_parameters()
        .find(|(n, _)| *n == "lm_head.weight")
        .unwrap();
    let _ = head.shallow_clone().fill_(0.01);
    assert!(max_diff(&alone(&tied, &seq), &alone(&untied, &seq)) > 1e-3);
}

#[test]
fn load_errors_name_the_tensor() {
    let (_vs, mut model) = tiny();
    let mut raw = random_raw(&model, 1);
    let i = raw
        .iter()
        .position(|r| r.name == "model.layers.0.self_attn.k_proj.weight")
        .unwrap();
    let good = raw[i].clone();
    raw[i] = RawTensor {
        shape: vec![32, 16],
        ..good.clone()
    };
    let err = model.load_raw(&raw).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tensor model.layers.0.self_attn.k_proj.weight: checkpoint has shape [32, 16] but the model expects [16, 32]"
    );
    raw[i] = RawTensor {
        data: vec![0.0; 3],
        ..good.clone()
    };
    assert!(matches!(
        model.load_raw(&raw),
        Err(ModelError::BadRawTensor { len: 3, .. })
    ));
    raw.remove(i);
    let err = model.load_raw(&raw).unwrap_err();
    assert!(
        err.to_string()
            .contains("model.layers.0.self_attn.k_proj.weight"),
        "{err}"
    );
    raw.push(good);
    raw.push(RawTensor {
        name: "model.layers.9.mlp.up_proj.weight".into(),
        shape: vec![1],
        data: vec![0.0],
    });
    let err = model.load_raw(&raw).unwrap_err();
    assert_eq!(
        err.to_string(),
        "checkpoint tensor \"model.layers.9.mlp.up_proj.weight\" has no counterpart in the model"
    );
    let bad_ids = Tensor::from_slice(&[1i64, VOCAB as i64]).view([1, 2]);
    let pos = Tensor::from_slice(&[0i64, 1]).view([1, 2]);
    assert!(matches!(
        model.forward(&bad_ids, &pos, None, None),
        Err(ModelError::Torch(_))
    ));
    let err = model
        .forward(&bad_ids, &pos.view([2, 1]), None, None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "positions shape: expected [1, 2], got [2, 1]"
    );
}

/// Copies random values into every lora_B so the adapters do something.
fn randomise_lora_b(model: &mut Llama, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tensors: Vec<(String, Tensor)> = model
        .lora_parameters()
        .map(|(n, t)| {
            let v = if n.contains("lora_B") {
                let data: Vec<f32> = (0..t.numel())
                    .map(|_| rng.random_range(-0.5..0.5))
                    .collect();
                Tensor::from_slice(&data).view(&t.size()[..])
            } else {
                t.detach().copy()
            };
            (n.to_string(), v)
        })
        .collect();
    model.load_lora_tensors(tensors).unwrap();
}

#[test]
fn lora_switch_and_merge() {
    let cfg = LlamaConfig::tiny(VOCAB);
    let (_b, base) = build(&cfg, None, Kind::Float, 5);
    let (_l, mut model) = build(&cfg, Some(&lora_cfg(&["all-linear"])), Kind::Float, 5);
    let seq = [1, 7, 3, 9, 12];
    let base_logits = alone(&base, &seq);
    assert_eq!(
        max_diff(&alone(&model, &seq), &base_logits),
        0.0,
        "B = 0 leaves the model unchanged"
    );
    randomise_lora_b(&mut model, 9);
    let adapted = alone(&model, &seq);
    assert!(max_diff(&adapted, &base_logits) > 1e-2);
    model.set_lora_enabled(false).unwrap();
    assert_eq!(
        max_diff(&alone(&model, &seq), &base_logits),
        0.0,
        "disabled = base"
    );
    model.set_lora_enabled(true).unwrap();
    assert_eq!(max_diff(&alone(&model, &seq), &adapted), 0.0);
    model.merge_lora().unwrap();
    let d = max_diff(&alone(&model, &seq), &adapted);
    assert!(d <= 1e-4, "merged vs unmerged: {d}");
    assert!(matches!(
        model.set_lora_enabled(false),
        Err(ModelError::LoraMerged)
    ));
    model.unmerge_lora().unwrap();
    model.set_lora_enabled(false).unwrap();
    let d = max_diff(&alone(&model, &seq), &base_logits);
    assert!(d <= 1e-5, "unmerged and disabled vs base: {d}");
}

#[test]
fn adapter_files_round_trip() {
    let cfg = LlamaConfig::tiny(VOCAB);
    let lora = lora_cfg(&["q_proj", "v_proj", "gate_proj"]);
    let (_a, mut model) = build(&cfg, Some(&lora), Kind::Float, 11);
    randomise_lora_b(&mut model, 12);
    let dir = tempfile::tempdir().unwrap();
    save_adapter(&model, dir.path(), "HuggingFaceTB/SmolLM2-135M-Instruct").unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(json["peft_type"], "LORA");
    assert_eq!(json["task_type"], "CAUSAL_LM");
    assert_eq!(json["r"], 4);
    assert_eq!(json["lora_alpha"], 8.0);
    assert_eq!(json["bias"], "none");
    assert_eq!(
        json["target_modules"],
        serde_json::json!(["gate_proj", "q_proj", "v_proj"])
    );
    assert_eq!(
        json["base_model_name_or_path"],
        "HuggingFaceTB/SmolLM2-135M-Instruct"
    );
    let names: Vec<String> = read_safetensors(&dir.path().join("adapter_model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        names.contains(
            &"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight".to_string()
        )
    );
    assert_eq!(names.len(), 2 * 3 * 2);

    let read = read_adapter_config(dir.path()).unwrap();
    let (_b, mut fresh) = build(&cfg, Some(&read), Kind::Float, 11);
    load_adapter(&mut fresh, dir.path()).unwrap();
    let seq = [1, 30, 2, 44];
    assert_eq!(max_diff(&alone(&fresh, &seq), &alone(&model, &seq)), 0.0);

    let (_c, mut other) = build(&cfg, Some(&LoraConfig { r: 2, ..lora }), Kind::Float, 11);
    let err = load_adapter(&mut other, dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the adapter's r is 4 but the model's LoRA has 2"
    );
}

#[test]
fn adamw_moves_only_the_adapters() {
    let cfg = LlamaConfig::tiny(VOCAB);
    let (vs, mut model) = build(&cfg, Some(&lora_cfg(&["all-linear"])), Kind::Float, 21);
    let base_before: Vec<Tensor> = model.base_parameters().map(|(_, t)| t.copy()).collect();
    let lora_before: Vec<Tensor> = model
        .lora_parameters()
        .map(|(_, t)| t.detach().copy())
        .collect();
    model.set_training(true);
    let seq: Vec<i64> = vec![1, 5, 9, 13, 17, 21, 25, 29];
    let input = Tensor::from_slice(&seq[..7]).view([1, 7]);
    let target = Tensor::from_slice(&seq[1..]);
    let pos = Tensor::arange(7, (Kind::Int64, Device::Cpu)).view([1, 7]);
    let mut opt = nn::AdamW::default().build(&vs, 1e-2).unwrap();
    let mut losses = vec![];
    for _ in 0..15 {
        let logits = model
            .forward(&input, &pos, None, None)
            .unwrap()
            .view([7, VOCAB as i64]);
        let loss = logits.cross_entropy_for_logits(&target);
        losses.push(loss.double_value(&[]));
        opt.backward_step(&loss);
    }
    assert!(
        losses[14] < losses[0] * 0.8,
        "loss did not fall: {losses:?}"
    );
    for ((_, t), before) in model.base_parameters().zip(&base_before) {
        assert!(t.equal(before), "a base weight changed");
    }
    let moved = model
        .lora_parameters()
        .zip(&lora_before)
        .filter(|((_, t), b)| !t.detach().equal(b))
        .count();
    assert_eq!(moved, model.lora_parameters().count());
}

/// Same ids and finish reason; logprobs equal up to float noise (a different batch
/// size may pick different matmul kernels).
fn assert_same(a: &coe::model::generate::Generated, b: &coe::model::generate::Generated) {
    assert_eq!((&a.ids, a.finished_by), (&b.ids, b.finished_by));
    assert_eq!(a.logprobs.len(), b.logprobs.len());
    for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
        assert!((x - y).abs() <= 1e-4, "logprob {x} vs {y}");
    }
}

fn greedy_params(max_new_tokens: usize) -> GenParams {
    GenParams {
        max_new_tokens,
        sampling: SamplingParams::greedy(),
        stop_ids: vec![],
        stop_rule: None,
    }
}

/// Greedy continuation by repeated full forwards, no cache, one prompt at a time.
fn manual_greedy(model: &Llama, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut ids = prompt.to_vec();
    for _ in 0..n {
        let last = alone(model, &ids).get(ids.len() as i64 - 1);
        ids.push(last.argmax(-1, false).int64_value(&[]) as u32);
    }
    ids[prompt.len()..].to_vec()
}

#[test]
fn greedy_generation_matches_manual_decoding() {
    let (_vs, model) = tiny();
    let prompts = sequences();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let out = generate(&model, &prompts, &greedy_params(6), &mut rng).unwrap();
    for (p, g) in prompts.iter().zip(&out) {
        assert_eq!(g.ids, manual_greedy(&model, p, 6));
        assert_eq!(g.finished_by, FinishReason::Length);
        assert_eq!(g.logprobs.len(), 6);
    }
    let again = generate(
        &model,
        &prompts,
        &greedy_params(6),
        &mut ChaCha8Rng::seed_from_u64(99),
    )
    .unwrap();
    assert_eq!(again, out);
}

/// Six greedy tokens per prompt without stops, and two of their ids to stop on: row 0's
/// third and row 2's second.
fn free_run(model: &Llama) -> (Vec<coe::model::generate::Generated>, u32, u32) {
    let free = generate(
        model,
        &sequences(),
        &greedy_params(6),
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap();
    let stops = (free[0].ids[2], free[2].ids[1]);
    (free, stops.0, stops.1)
}

#[test]
fn stop_rules_end_rows_independently() {
    let (_vs, model) = tiny();
    let prompts = sequences();
    // Stop row 0 at its third token via stop_ids, row 2 at its second via a rule.
    let (free, stop_a, stop_c) = free_run(&model);
    let rule = move |id: u32| id == stop_c;
    let params = GenParams {
        stop_ids: vec![stop_a],
        stop_rule: Some(Arc::new(rule)),
        ..greedy_params(6)
    };
    let out = generate(&model, &prompts, &params, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
    for (g, f) in out.iter().zip(&free) {
        let cut = f.ids.iter().position(|&id| id == stop_a || id == stop_c);
        match cut {
            Some(i) => {
                assert_eq!(g.ids, f.ids[..=i]);
                assert_eq!(g.finished_by, FinishReason::Stop);
            }
            None => assert_same(g, f),
        }
        for (x, y) in g.logprobs.iter().zip(&f.logprobs) {
            assert!((x - y).abs() <= 1e-4, "logprob {x} vs {y}");
        }
    }
    let err = generate(
        &model,
        &[vec![]],
        &params,
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "prompt 0 is empty; generation needs at least one token"
    );
    let err = generate(
        &model,
        &[vec![1, 64]],
        &params,
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "prompt 0 holds token id 64, outside the model's vocabulary of 64"
    );
}

#[test]
fn rows_are_handed_over_as_they_finish() {
    let (_vs, model) = tiny();
    let prompts = sequences();
    // Row 2 stops by its second token, row 0 by its third (others may share those ids).
    let (_, stop_a, stop_c) = free_run(&model);
    let params = GenParams {
        stop_ids: vec![stop_a, stop_c],
        ..greedy_params(6)
    };
    let whole = generate(&model, &prompts, &params, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
    let mut handed = Vec::new();
    generate_each(
        &model,
        &prompts,
        &params,
        &mut ChaCha8Rng::seed_from_u64(0),
        &mut |i, g| handed.push((i, g)),
    )
    .unwrap();
    let order: Vec<usize> = handed.iter().map(|(i, _)| *i).collect();
    let mut by_length: Vec<usize> = (0..prompts.len()).collect();
    by_length.sort_by_key(|&i| (whole[i].ids.len(), i));
    assert_eq!(order, by_length, "handed over in the order rows finished");
    let lengths: std::collections::BTreeSet<usize> = whole.iter().map(|g| g.ids.len()).collect();
    assert!(
        lengths.len() > 1,
        "rows finished at different steps: {lengths:?}"
    );
    for (i, g) in &handed {
        assert_eq!(g, &whole[*i]);
    }
}

#[test]
fn seeded_sampling_is_reproducible_and_reports_true_logprobs() {
    let (_vs, model) = tiny();
    let prompts = sequences();
    let params = GenParams {
        sampling: SamplingParams {
            temperature: 1.3,
            top_k: 20,
            top_p: 0.95,
        },
        ..greedy_params(8)
    };
    let a = generate(&model, &prompts, &params, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
    let b = generate(&model, &prompts, &params, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
    let c = generate(&model, &prompts, &params, &mut ChaCha8Rng::seed_from_u64(6)).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    // A row's sample does not depend on its batch mates: row 1 alone, with the
    // same per-row seed (the second draw from the caller's generator).
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let _ = rng.next_u64();
    let solo = generate(&model, &prompts[1..2], &params, &mut rng).unwrap();
    assert_same(&solo[0], &a[1]);
    // Returned logprobs are log softmax at temperature 1 of the full forward.
    for (p, g) in prompts.iter().zip(&a) {
        let mut whole = p.clone();
        whole.extend(&g.ids);
        let logp = alone(&model, &whole).log_softmax(-1, Kind::Float);
        for (i, (&id, &lp)) in g.ids.iter().zip(&g.logprobs).enumerate() {
            let want = logp.double_value(&[(p.len() + i - 1) as i64, i64::from(id)]);
            assert!(
                (want - f64::from(lp)).abs() <= 1e-4,
                "token {i}: {want} vs {lp}"
            );
        }
    }
}

#[test]
fn bf16_forward_and_generation_run() {
    let cfg = LlamaConfig::tiny(VOCAB);
    let (_a, f32_model) = build(&cfg, None, Kind::Float, 8);
    let (_b, bf16_model) = build(&cfg, Some(&lora_cfg(&["q_proj"])), Kind::BFloat16, 8);
    let seq = [1, 2, 3, 4, 5];
    let logits = alone(&bf16_model, &seq);
    assert_eq!(logits.kind(), Kind::BFloat16);
    let d = max_diff(&logits, &alone(&f32_model, &seq));
    assert!(d < 0.25, "bf16 drifted {d} from f32");
    let out = generate(
        &bf16_model,
        &sequences(),
        &greedy_params(3),
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap();
    assert!(
        out.iter()
            .all(|g| g.ids.len() == 3 && g.logprobs.iter().all(|l| l.is_finite()))
    );
}

/// A bf16 model trains its adapters as SFT does: in f32, with finite gradients, and an
/// AdamW step moves them (what `model.dtype: bf16` does on CUDA, here on the CPU).
#[test]
fn bf16_model_trains_f32_adapters() {
    use coe::train::adamw::{AdamW, zero_grads};
    use coe::train::tokens::Sequence;
    let cfg = LlamaConfig::tiny(VOCAB);
    let (_vs, mut model) = build(
        &cfg,
        Some(&lora_cfg(&["q_proj", "v_proj"])),
        Kind::BFloat16,
        8,
    );
    randomise_lora_b(&mut model, 3);
    let seq = Sequence {
        ids: vec![1, 2, 3, 4, 5, 6],
        trained: vec![false, false, false, true, true, true],
    };
    let (loss, tokens) = coe::train::sft::backward(&mut model, &[&seq], 8, 1024).unwrap();
    assert!(loss.is_finite() && loss > 0.0, "loss {loss}");
    assert_eq!(tokens, 6);
    let before: Vec<Tensor> = model.lora_parameters().map(|(_, t)| t.copy()).collect();
    for (name, t) in model.lora_parameters() {
        assert_eq!(t.kind(), Kind::Float, "{name}");
        let g = t.grad();
        assert!(g.defined(), "{name} has no gradient");
        assert!(g.isfinite().all().int64_value(&[]) == 1, "{name}");
    }
    AdamW::new(0.0).step(model.lora_parameters(), 1e-2);
    zero_grads(model.lora_parameters().map(|(_, t)| t));
    let moved = model
        .lora_parameters()
        .zip(&before)
        .filter(|((_, t), b)| max_diff(t, b) > 0.0)
        .count();
    assert_eq!(moved, before.len(), "every adapter tensor moved");
}

fn fixture_model(lora: Option<&LoraConfig>) -> (nn::VarStore, Llama) {
    let dir = fixture_dir();
    let cfg: LlamaConfig =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let mut model = Llama::new(&vs.root(), &cfg, lora).unwrap();
    model.load_tensors(load_hf_weights(&dir).unwrap()).unwrap();
    (vs, model)
}

#[test]
fn matches_transformers_and_peft_reference() {
    let dir = fixture_dir();
    let expected: std::collections::HashMap<String, Tensor> =
        read_safetensors(&dir.join("expected.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    let ids: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let seq = |k: &str| -> Vec<u32> { serde_json::from_value(ids[k].clone()).unwrap() };
    let (seq_a, seq_b) = (seq("seq_a"), seq("seq_b"));

    let (_vs, model) = fixture_model(None);
    let d = max_diff(&alone(&model, &seq_a), &expected["logits_a"]);
    assert!(d <= 1e-4, "seq_a vs transformers: {d}");
    let (ids_t, mask, pos) = left_pad(&[seq_a.clone(), seq_b.clone()]);
    let batch = tch::no_grad(|| model.forward(&ids_t, &pos, Some(&mask), None).unwrap());
    let d = max_diff(&batch.get(1).narrow(0, 3, 4), &expected["logits_b"]);
    assert!(d <= 1e-4, "padded seq_b vs transformers: {d}");
    let out = generate(
        &model,
        std::slice::from_ref(&seq_a),
        &greedy_params(6),
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap();
    assert_eq!(out[0].ids, seq("greedy_a"));

    let lora = read_adapter_config(&dir.join("adapter")).unwrap();
    assert_eq!((lora.r, lora.alpha), (4, 8.0));
    let (_vs2, mut adapted) = fixture_model(Some(&lora));
    load_adapter(&mut adapted, &dir.join("adapter")).unwrap();
    let d = max_diff(&alone(&adapted, &seq_a), &expected["logits_a_adapter"]);
    assert!(d <= 1e-4, "adapter logits vs PEFT: {d}");
}

#[test]
fn safetensors_errors_are_specific() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_hf_weights(dir.path()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no model.safetensors or model.safetensors.index.json in"),
        "{err}"
    );
    let bytes: Vec<u8> = [7i32, 8].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![2], &bytes).unwrap();
    let file = dir.path().join("model.safetensors");
    std::fs::write(
        &file,
        safetensors::serialize([("ids", view)], None).unwrap(),
    )
    .unwrap();
    let err = load_hf_weights(dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: tensor ids has dtype I32; only F32, F16 and BF16 are supported",
            file.display()
        )
    );
    std::fs::write(&file, b"not a safetensors file").unwrap();
    assert!(
        load_hf_weights(dir.path())
            .unwrap_err()
            .to_string()
            .contains("is not a valid safetensors file")
    );
}
