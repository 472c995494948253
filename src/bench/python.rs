//! Runs a benchmark's Python baseline (`scripts/*.py`) and reads the one JSON object it
//! prints. The interpreter is `$COE_BENCH_PYTHON` when set (on the GPU host: the system's
//! PyTorch venv, see GPU.md), else the checkout's `.venv/bin/python`.
use std::ffi::OsString;
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::Value;

use crate::model::loader::find_in_checkout;

/// The environment variable naming the baseline's Python interpreter.
pub const PYTHON_VAR: &str = "COE_BENCH_PYTHON";
/// The environment variable naming where the baselines load the model from instead of our
/// file: the same weights as a Hugging Face directory (`transformers` converts a GGUF in
/// ~20 s on every load; `scripts/gpu_experiment.sh` converts it once).
pub const MODEL_VAR: &str = "COE_BENCH_BASELINE_MODEL";

/// The model path handed to a baseline: `$COE_BENCH_BASELINE_MODEL` when set, else ours.
pub fn baseline_model(ours: &str) -> String {
    match std::env::var(MODEL_VAR) {
        Ok(p) if !p.is_empty() => p,
        _ => ours.to_string(),
    }
}

/// A file of the checkout, or an error saying how to get it.
pub fn locate(rel: &str) -> anyhow::Result<PathBuf> {
    find_in_checkout(rel.as_ref())
        .map_err(|_| anyhow::anyhow!("{rel} not found; run scripts/setup.sh"))
}

/// Runs `scripts/<script>` with `args`; its stderr (progress) passes through to ours. With a
/// `timeout`, the script and everything it started are killed when it runs longer, and the
/// error says so.
pub fn run_script(
    script: &str,
    args: &[OsString],
    timeout: Option<Duration>,
) -> anyhow::Result<Value> {
    let python = match std::env::var_os(PYTHON_VAR) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => locate(".venv/bin/python")?,
    };
    let script = locate(&format!("scripts/{script}"))?;
    run_python(&python, &script, args, timeout)
}

/// [`run_script`] with the interpreter and script given.
fn run_python(
    python: &std::path::Path,
    script: &std::path::Path,
    args: &[OsString],
    timeout: Option<Duration>,
) -> anyhow::Result<Value> {
    let mut child = Command::new(python)
        .arg(&script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0) // its test subprocesses die with it on a timeout
        .spawn()
        .with_context(|| format!("cannot run {}", python.display()))?;
    let mut stdout = child.stdout.take().context("no stdout pipe")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).map(|_| buf)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            // SAFETY: kill(2) on the process group the child leads; no memory is touched.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            anyhow::bail!(
                "{} timed out after {:.0} s (--baseline-timeout) and was killed",
                script.display(),
                started.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader of {} panicked", script.display()))?
        .with_context(|| format!("cannot read the output of {}", script.display()))?;
    anyhow::ensure!(
        status.success(),
        "{} failed ({}); its error is printed above",
        script.display(),
        status
    );
    serde_json::from_slice(&out)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &std::path::Path, body: &str) -> PathBuf {
        let path = dir.join("baseline.py");
        std::fs::write(&path, body).unwrap();
        path
    }

    #[test]
    fn the_json_a_script_prints_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let s = script(
            dir.path(),
            "import json, sys; print(json.dumps({'n': len(sys.argv)}))",
        );
        let v = run_python("python3".as_ref(), &s, &["a".into(), "b".into()], None).unwrap();
        assert_eq!(v["n"], 3);
    }

    #[test]
    fn a_script_past_its_timeout_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-pid");
        let s = script(
            dir.path(),
            &format!(
                "import subprocess, time\n\
                 p = subprocess.Popen(['sleep', '60'])\n\
                 open({marker:?}, 'w').write(str(p.pid))\n\
                 time.sleep(60)\n"
            ),
        );
        let started = Instant::now();
        let err = run_python(
            "python3".as_ref(),
            &s,
            &[],
            Some(Duration::from_millis(1500)),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("timed out after"), "{err:#}");
        assert!(started.elapsed() < Duration::from_secs(20));
        let pid: i32 = std::fs::read_to_string(&marker).unwrap().parse().unwrap();
        // The grandchild `sleep` is gone too (reaped by init, or a zombie at worst).
        std::thread::sleep(Duration::from_millis(300));
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(state.is_empty() || state.contains(") Z "), "{state}");
    }
}
