//! `coe bench sft`: SFT throughput (tokens per second through forward, backward and the
//! AdamW update of the LoRA adapters) against `scripts/reference_sft.py`, PyTorch +
//! `transformers` + `peft` training the same adapters on exactly the same batches.
//!
//! The examples are the config's `sft.train` demonstrations, tokenised as `coe train sft`
//! does, drawn in its order: one optimizer step takes `sft.batch_size × sft.grad_accum`
//! of them. Both sides run one untimed warm-up step, then `--steps` timed steps, on
//! `model.device` in `model.dtype`, with `sft.lora` and `sft.lr` (constant: the schedule
//! does not change the work). Tokens are the sequences' real (unpadded) tokens. Our side
//! splits a step into micro-batches of `sft.max_batch_tokens` as training does; the
//! reference runs each step as one batch.

use std::ffi::OsString;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::{Value, json};
use tch::Device;

use super::BenchOptions;
use super::decode::cuda_name;
use super::python::{baseline_model, run_script, scratch_dir, torch_device, torch_dtype};
use crate::config::Config;
use crate::model::loader::{kind_of, load_model, parse_device, set_threads};
use crate::sandbox::SandboxPool;
use crate::train::adamw::{AdamW, clip_grad_norm, zero_grads};
use crate::train::examples::{ExampleContext, load_file};
use crate::train::setup::lora_of;
use crate::train::sft::{DataOrder, backward};
use crate::train::tokens::Sequence;
use crate::util::machine::{load_average, machine};

/// Runs the benchmark; returns the JSON report.
pub fn run(cfg: &Config, opts: &BenchOptions) -> anyhow::Result<Value> {
    let s = &cfg.sft;
    anyhow::ensure!(
        !s.train.is_empty(),
        "bench sft needs demonstrations: set sft.train in the config (files from `coe data gen`)"
    );
    anyhow::ensure!(opts.steps > 0, "--steps must be at least 1");
    let load_before = load_average();
    let machine = machine();
    set_threads(cfg.model.threads);
    let device = parse_device(&cfg.model.device)?;
    let lora = lora_of(&s.lora);
    let mut loaded = load_model(
        &cfg.model.path,
        device,
        kind_of(cfg.model.dtype),
        Some(&lora),
    )?;
    let pool = SandboxPool::new(&cfg.sandbox).context("cannot start the Python sandbox")?;
    let cx = ExampleContext {
        tokenizer: &loaded.tokenizer,
        chat: &loaded.chat,
        runner: &pool,
        env: &cfg.env,
        limits: &cfg.sandbox.limits,
        max_tokens: cfg.env.context_tokens,
        threads: pool.workers().max(1),
        cache: true,
    };
    let mut examples = Vec::new();
    for file in &s.train {
        examples.extend(load_file(Path::new(file), &cx)?.0);
    }
    drop(pool);
    anyhow::ensure!(
        !examples.is_empty(),
        "no usable demonstrations in {:?}",
        s.train
    );
    let per_step = s.batch_size * s.grad_accum;
    let lens = examples.iter().map(|e| e.seq.ids.len()).collect();
    let mut order = DataOrder::new(lens, per_step, cfg.seed);
    let batches: Vec<Vec<&Sequence>> = (0..=opts.steps as u64)
        .map(|step| {
            (0..per_step as u64)
                .filter_map(|k| examples.get(order.index(step * per_step as u64 + k)))
                .map(|e| &e.seq)
                .collect()
        })
        .collect();
    // The baseline first, while our process holds little GPU memory (PyTorch's caching
    // allocator keeps what our steps used until the process ends).
    let reference = if opts.baseline {
        reference(
            cfg,
            &baseline_model(&loaded.path),
            &batches,
            opts.baseline_timeout,
        )
        .unwrap_or_else(|e| json!({"error": format!("{e:#}")}))
    } else {
        json!({"skipped": "--no-baseline"})
    };
    let model = &mut loaded.model;
    let mut opt = AdamW::new(s.weight_decay);
    let mut losses = Vec::new();
    let mut tokens = 0usize;
    let mut started = Instant::now();
    for (i, batch) in batches.iter().enumerate() {
        if i == 1 {
            sync(device);
            started = Instant::now();
            tokens = 0;
        }
        let (loss, n) = backward(model, batch, s.batch_size, s.max_batch_tokens)?;
        let params: Vec<_> = model.lora_parameters().map(|(_, t)| t).collect();
        clip_grad_norm(&params, s.clip_norm);
        opt.step(model.lora_parameters(), s.lr);
        zero_grads(model.lora_parameters().map(|(_, t)| t));
        losses.push(loss);
        tokens += n;
    }
    sync(device);
    let seconds = started.elapsed().as_secs_f64();
    let ours = json!({
        "steps": opts.steps,
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens as f64 / seconds.max(1e-9),
        "loss_first": losses.first(),
        "loss_last": losses.last(),
    });
    eprintln!(
        "bench sft: ours {:.0} tokens/s ({tokens} tokens in {seconds:.2} s)",
        tokens as f64 / seconds.max(1e-9)
    );
    if let Some(t) = reference["tokens_per_s"].as_f64() {
        eprintln!("bench sft: reference {t:.0} tokens/s");
    }
    let ratio = ours["tokens_per_s"]
        .as_f64()
        .zip(reference["tokens_per_s"].as_f64())
        .map(|(a, b)| a / b);
    Ok(json!({
        "bench": "sft",
        "machine": machine,
        "device": cfg.model.device,
        "cuda_device": cuda_name(device),
        "dtype": torch_dtype(cfg.model.dtype),
        "model": loaded.path,
        "examples": examples.len(),
        "sequences_per_step": per_step,
        "lora": {"rank": s.lora.rank, "alpha": s.lora.alpha, "targets": s.lora.targets},
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "ours": ours,
        "reference": reference,
        "ratio_tokens_per_s": ratio,
    }))
}

/// Waits for the GPU's queued work, so a timing covers it.
fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Writes the batches for `scripts/reference_sft.py` and runs it.
fn reference(
    cfg: &Config,
    model: &str,
    batches: &[Vec<&Sequence>],
    timeout: Option<std::time::Duration>,
) -> anyhow::Result<Value> {
    let s = &cfg.sft;
    let dir = scratch_dir("sft")?;
    let path = dir.join("batches.json");
    let rows: Vec<Vec<Value>> = batches
        .iter()
        .map(|b| {
            b.iter()
                .map(|q| {
                    let mask: Vec<u8> = q.trained.iter().map(|&t| u8::from(t)).collect();
                    json!({"ids": q.ids, "loss_mask": mask})
                })
                .collect()
        })
        .collect();
    std::fs::write(&path, serde_json::to_vec(&json!({ "batches": rows }))?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let mut args: Vec<OsString> = vec!["--batches".into(), path.clone().into_os_string()];
    let pairs = [
        ("--model", model.to_string()),
        ("--device", torch_device(&cfg.model.device).into()),
        ("--dtype", torch_dtype(cfg.model.dtype).into()),
        ("--threads", cfg.model.threads.to_string()),
        ("--lora-rank", s.lora.rank.to_string()),
        ("--lora-alpha", s.lora.alpha.to_string()),
        ("--lora-dropout", s.lora.dropout.to_string()),
        ("--lora-targets", s.lora.targets.join(",")),
        ("--lr", s.lr.to_string()),
        ("--warmup-batches", "1".into()),
    ];
    for (k, v) in pairs {
        args.push(k.into());
        args.push(v.into());
    }
    let result = run_script("reference_sft.py", &args, timeout);
    let _ = std::fs::remove_dir_all(&dir);
    result
}
