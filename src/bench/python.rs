//! Runs a benchmark's Python baseline (`scripts/*.py`) and reads the one JSON object it
//! prints. The interpreter is `$COE_BENCH_PYTHON` when set (on the GPU host: the system's
//! PyTorch venv, see GPU.md), else the checkout's `.venv/bin/python`.
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context as _;
use serde_json::Value;

use crate::model::loader::find_in_checkout;

/// The environment variable naming the baseline's Python interpreter.
pub const PYTHON_VAR: &str = "COE_BENCH_PYTHON";

/// A file of the checkout, or an error saying how to get it.
pub fn locate(rel: &str) -> anyhow::Result<PathBuf> {
    find_in_checkout(rel.as_ref())
        .map_err(|_| anyhow::anyhow!("{rel} not found; run scripts/setup.sh"))
}

/// Runs `scripts/<script>` with `args`; its stderr (progress) passes through to ours.
pub fn run_script(script: &str, args: &[OsString]) -> anyhow::Result<Value> {
    let python = match std::env::var_os(PYTHON_VAR) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => locate(".venv/bin/python")?,
    };
    let script = locate(&format!("scripts/{script}"))?;
    let output = Command::new(&python)
        .arg(&script)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "{} failed ({}); its error is printed above",
        script.display(),
        output.status
    );
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("{} printed no JSON result", script.display()))
}

/// A fresh directory for files handed to a baseline, removed by the caller.
pub fn scratch_dir(bench: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("coe-bench-{bench}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// The dtype name the baselines take for one of ours.
pub fn torch_dtype(dtype: crate::config::Dtype) -> &'static str {
    match dtype {
        crate::config::Dtype::F32 => "float32",
        crate::config::Dtype::Bf16 => "bfloat16",
        crate::config::Dtype::F16 => "float16",
    }
}

/// `cuda` for any CUDA device spec, else `cpu`.
pub fn torch_device(device: &str) -> &'static str {
    if device.starts_with("cuda") {
        "cuda"
    } else {
        "cpu"
    }
}
