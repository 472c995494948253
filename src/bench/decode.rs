//! `coe bench decode`: prefill and decode throughput of our generation loop against
//! `transformers`' `generate`, measured in the same run on the same machine.
//!
//! Both sides load the same GGUF on the config's `model.device` in its `model.dtype` (f32 on
//! the CPU by default) with the same thread count, get the same
//! prompt ids (a Python source text cut to `prompt_tokens`) repeated per row, decode greedily
//! with stopping disabled, and are timed the same way: t(1) = one new token (prefill plus
//! one sample), t(N) = N new tokens; prefill rate = rows × prompt / t(1), decode rate =
//! rows × (N − 1) / (t(N) − t(1)), each timing the best of two after a warm-up on the full
//! prompt. The Python side is `scripts/bench_decode_hf.py` (interpreter: see `python`).
//! Peak RSS is each process's own high-water mark (`VmHWM`). The machine's load is recorded
//! before and after, because a shared CPU makes every figure noisy.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tch::Device;

use super::python::{baseline_model, run_script, scratch_dir, torch_device, torch_dtype};
use crate::config::ModelSection;
use crate::model::generate::{GenParams, generate};
use crate::model::llama::Llama;
use crate::model::loader::{kind_of, load_model, parse_device, set_threads};
use crate::model::sampling::SamplingParams;
use crate::util::machine::load_average;

/// Timings per measurement, after one warm-up on the full prompt; the best is kept.
const REPEATS: usize = 2;

const PROMPT_SOURCE: &str = "def merge_sorted(left, right):\n    \"\"\"Merge two sorted lists into one sorted list.\"\"\"\n    result = []\n    i = j = 0\n    while i < len(left) and j < len(right):\n        if left[i] <= right[j]:\n            result.append(left[i])\n            i += 1\n        else:\n            result.append(right[j])\n            j += 1\n    result.extend(left[i:])\n    result.extend(right[j:])\n    return result\n\n\n";

/// Measures our decoder and `transformers` at each batch size on the config's model
/// device and dtype; returns the JSON report.
pub fn run(
    section: &ModelSection,
    batch_sizes: &[usize],
    prompt_tokens: usize,
    new_tokens: usize,
    baseline: bool,
    timeout: Option<Duration>,
) -> anyhow::Result<Value> {
    anyhow::ensure!(
        new_tokens >= 2,
        "new_tokens must be at least 2 to time decoding"
    );
    anyhow::ensure!(prompt_tokens >= 8, "prompt_tokens must be at least 8");
    anyhow::ensure!(
        !batch_sizes.is_empty() && !batch_sizes.contains(&0),
        "batch sizes must be positive"
    );
    let load_before = load_average();
    let threads = section.threads;
    set_threads(threads);
    let device = parse_device(&section.device)?;
    let started = Instant::now();
    let loaded = load_model(&section.path, device, kind_of(section.dtype), None)?;
    let load_s = started.elapsed().as_secs_f64();
    let prompt = prompt_ids(&loaded.tokenizer, prompt_tokens)?;
    time_generate(&loaded.model, std::slice::from_ref(&prompt), 2)?; // warm-up
    let mut ours = Vec::new();
    for &b in batch_sizes {
        let rows = vec![prompt.clone(); b];
        let t_first = best_of(&loaded.model, &rows, 1)?;
        let t_all = best_of(&loaded.model, &rows, new_tokens)?;
        ours.push(rates(b, prompt_tokens, new_tokens, t_first, t_all));
    }
    let our_rss = peak_rss_mib();
    let hf = if baseline {
        run_transformers(
            &loaded.path,
            section,
            batch_sizes,
            &prompt,
            new_tokens,
            timeout,
        )
    } else {
        Err(anyhow::anyhow!("skipped: --no-baseline"))
    };
    let ratios = match &hf {
        Ok(theirs) => ratio_rows(&ours, &theirs["per_batch"]),
        Err(_) => Vec::new(),
    };
    for r in &ratios {
        eprintln!(
            "bench decode: batch {:>3}: prefill {:.2}x, decode {:.2}x (ours / transformers)",
            r["batch"], r["prefill"], r["decode"]
        );
    }
    Ok(json!({
        "bench": "decode",
        "model": loaded.path,
        "model_sha256": loaded.sha256,
        "device": section.device,
        "cuda_device": cuda_name(device),
        "dtype": torch_dtype(section.dtype),
        "threads": threads,
        "prompt_tokens": prompt_tokens,
        "new_tokens": new_tokens,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "ours": {"load_s": load_s, "peak_rss_mib": our_rss, "per_batch": ours},
        "transformers": hf.unwrap_or_else(|e| json!({"error": format!("{e:#}")})),
        "ratio_ours_over_transformers": ratios,
    }))
}

/// `n` ids of the prompt source, repeated as needed, without special tokens.
fn prompt_ids(tok: &crate::model::tokenizer::CoeTokenizer, n: usize) -> anyhow::Result<Vec<u32>> {
    let once = tok.encode(PROMPT_SOURCE, false)?;
    anyhow::ensure!(
        !once.is_empty(),
        "the benchmark prompt encodes to no tokens"
    );
    Ok(once.iter().copied().cycle().take(n).collect())
}

/// The fastest of [`REPEATS`] timings: on a shared machine the minimum is the least noisy.
fn best_of(model: &Llama, rows: &[Vec<u32>], new_tokens: usize) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..REPEATS {
        best = best.min(time_generate(model, rows, new_tokens)?);
    }
    Ok(best)
}

/// Seconds for a greedy, stop-free generation of `new_tokens` per row.
fn time_generate(model: &Llama, rows: &[Vec<u32>], new_tokens: usize) -> anyhow::Result<f64> {
    let params = GenParams {
        max_new_tokens: new_tokens,
        sampling: SamplingParams::greedy(),
        stop_ids: Vec::new(),
        stop_rule: None,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let started = Instant::now();
    let out = generate(model, rows, &params, &mut rng)?;
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.iter().all(|g| g.ids.len() == new_tokens),
        "a row stopped early"
    );
    Ok(elapsed)
}

fn rates(batch: usize, prompt: usize, new_tokens: usize, t_first: f64, t_all: f64) -> Value {
    json!({
        "batch": batch,
        "prefill_s": t_first,
        "generate_s": t_all,
        "prefill_tok_s": (batch * prompt) as f64 / t_first,
        "decode_tok_s": (batch * (new_tokens - 1)) as f64 / (t_all - t_first).max(1e-9),
    })
}

fn ratio_rows(ours: &[Value], theirs: &Value) -> Vec<Value> {
    let theirs = theirs.as_array().map(Vec::as_slice).unwrap_or_default();
    ours.iter()
        .filter_map(|o| {
            let t = theirs.iter().find(|t| t["batch"] == o["batch"])?;
            let ratio = |k: &str| Some(o[k].as_f64()? / t[k].as_f64()?);
            Some(json!({
                "batch": o["batch"],
                "prefill": ratio("prefill_tok_s")?,
                "decode": ratio("decode_tok_s")?,
            }))
        })
        .collect()
}

fn run_transformers(
    gguf: &str,
    section: &ModelSection,
    batch_sizes: &[usize],
    prompt: &[u32],
    new_tokens: usize,
    timeout: Option<Duration>,
) -> anyhow::Result<Value> {
    let gguf = &baseline_model(gguf);
    let dir = scratch_dir("decode")?;
    let ids_path = dir.join("prompt_ids.json");
    std::fs::write(&ids_path, serde_json::to_vec(prompt)?)
        .with_context(|| format!("cannot write {}", ids_path.display()))?;
    let sizes: Vec<String> = batch_sizes.iter().map(usize::to_string).collect();
    let args: Vec<std::ffi::OsString> = [
        "--gguf",
        gguf,
        "--threads",
        &section.threads.max(1).to_string(),
        "--batch-sizes",
        &sizes.join(","),
        "--new-tokens",
        &new_tokens.to_string(),
        "--device",
        torch_device(&section.device),
        "--dtype",
        torch_dtype(section.dtype),
        "--prompt-ids",
    ]
    .iter()
    .map(Into::into)
    .chain([ids_path.into_os_string()])
    .collect();
    let result = run_script("bench_decode_hf.py", &args, timeout);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The CUDA card's name for the report, when the model runs on one.
pub(crate) fn cuda_name(device: Device) -> Option<String> {
    match device {
        Device::Cuda(_) => std::process::Command::new("nvidia-smi")
            .args(["--query-gpu=name", "--format=csv,noheader"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(|l| l.trim().to_string())),
        _ => None,
    }
}
