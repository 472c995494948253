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

use crate::util::find_in_checkout;

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

/// A baseline killed at its `--baseline-timeout` (the error [`run_script`] returns then).
#[derive(Debug, thiserror::Error)]
#[error("{script} timed out after {secs:.0} s (--baseline-timeout) and was killed{tail}")]
pub struct TimedOut {
    pub script: String,
    pub secs: f64,
    /// The end of its stderr, as "; the end of its stderr:\n…", or empty.
    pub tail: String,
}

/// A file of the checkout, or an error saying how to get it.
pub fn locate(rel: &str) -> anyhow::Result<PathBuf> {
    find_in_checkout(rel.as_ref())
        .map_err(|_| anyhow::anyhow!("{rel} not found; run scripts/setup.sh"))
}

/// Runs `scripts/<script>` with `args`; its stderr (progress) passes through to ours, and its
/// last lines are part of the error when it fails. With a
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
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0) // its test subprocesses die with it on a timeout
        .spawn()
        .with_context(|| format!("cannot run {}", python.display()))?;
    let mut stdout = child.stdout.take().context("no stdout pipe")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).map(|_| buf)
    });
    // Its stderr passes through to ours, and its last lines go into any error.
    let stderr = child.stderr.take().context("no stderr pipe")?;
    let tail = std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut last = std::collections::VecDeque::new();
        for line in std::io::BufReader::new(stderr)
            .split(b'\n')
            .map_while(Result::ok)
        {
            let line = String::from_utf8_lossy(&line).into_owned();
            eprintln!("{line}");
            // Progress bars redraw with \r: keep what the line ended as.
            let shown = line
                .rsplit('\r')
                .find(|p| !p.trim().is_empty())
                .unwrap_or("");
            if !shown.trim().is_empty() {
                last.push_back(shown.to_string());
                if last.len() > STDERR_TAIL {
                    last.pop_front();
                }
            }
        }
        Vec::from(last).join("\n")
    });
    let last_lines = move || -> String {
        match tail.join() {
            Ok(t) if !t.is_empty() => format!("; the end of its stderr:\n{t}"),
            _ => String::new(),
        }
    };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            // SAFETY: kill(2) on the process group the child leads; no memory is touched.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            return Err(TimedOut {
                script: script.display().to_string(),
                secs: started.elapsed().as_secs_f64(),
                tail: last_lines(),
            }
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader of {} panicked", script.display()))?
        .with_context(|| format!("cannot read the output of {}", script.display()))?;
    anyhow::ensure!(
        status.success(),
        "{} failed ({status}){}",
        script.display(),
        last_lines()
    );
    serde_json::from_slice(&out)
        .with_context(|| format!("{} printed no JSON result", script.display()))
}

/// Lines of a failed baseline's stderr kept in its error.
const STDERR_TAIL: usize = 12;

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
        assert!(err.downcast_ref::<TimedOut>().is_some(), "{err:#}");
        assert!(started.elapsed() < Duration::from_secs(20));
        let pid: i32 = std::fs::read_to_string(&marker).unwrap().parse().unwrap();
        // The grandchild `sleep` is gone too (reaped by init, or a zombie at worst).
        std::thread::sleep(Duration::from_millis(300));
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(state.is_empty() || state.contains(") Z "), "{state}");
    }

    #[test]
    fn a_failing_script_s_error_carries_the_end_of_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fails.py");
        std::fs::write(
            &path,
            "import sys\nprint('loading', file=sys.stderr)\n\
             raise RuntimeError('CUDA out of memory')\n",
        )
        .unwrap();
        let err = run_python("python3".as_ref(), &path, &[], None).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("failed (exit status: 1)"), "{text}");
        assert!(text.contains("RuntimeError: CUDA out of memory"), "{text}");
        assert!(text.contains("loading"), "{text}");
        assert!(
            err.downcast_ref::<TimedOut>().is_none(),
            "a failure is not a timeout"
        );
    }
}
