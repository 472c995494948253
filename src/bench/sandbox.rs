//! `coe bench sandbox`: latency and throughput of a 5-assert run through the warm
//! pool with every limit on, against spawning `python3` per run (the naive way)
//! in the same process, same machine, same code and tests.
//!
//! Latency is measured twice: at rest (5 ms between runs, as when a model decodes
//! between them: the pool has finished its clean-up when the run arrives; the latency
//! of one run) and back to back (each run sent the moment the last one answered, so a
//! worker's clean-up after its run competes with the next run for the CPUs: with as
//! many workers as cores this is bound by the CPU a run costs in all, its throughput).
//! `speedup_median` (back to back) and `speedup_median_at_rest` compare each with
//! spawning `python3` per run.
use crate::protocol::run::RunRequest;
use crate::sandbox::{SandboxConfig, SandboxPool};
use crate::util::parallel_map;
use crate::util::stats::median_p99;
use serde_json::json;
use std::time::{Duration, Instant};

const CODE: &str = "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a\n";
const TESTS: [&str; 5] = [
    "assert gcd(35, 21) == 7",
    "assert gcd(10, 0) == 10",
    "assert gcd(0, 9) == 9",
    "assert gcd(17, 5) == 1",
    "assert gcd(48, 180) == 12",
];

/// The per-run harness of the baseline: exec the code, then each assert.
const SPAWN_HARNESS: &str = "import sys\ng = {}\nexec(compile(sys.argv[1], '<buffer>', 'exec'), g)\n\
for t in sys.argv[2:]:\n    try:\n        exec(t, g)\n        print('ok')\n    except BaseException as e:\n        print('fail', type(e).__name__)\n";

pub fn run(cfg: &SandboxConfig) -> anyhow::Result<serde_json::Value> {
    let machine = crate::util::machine::machine();
    let pool = SandboxPool::new(cfg)?;
    let req = RunRequest {
        setup: String::new(),
        code: CODE.into(),
        tests: TESTS.iter().map(|s| s.to_string()).collect(),
        limits: cfg.limits.clone(),
    };
    for _ in 0..20 {
        anyhow::ensure!(
            pool.run(&req)?.all_passed(),
            "the benchmark task failed in the sandbox"
        );
    }
    // Latency: one run at a time, back to back, then at rest.
    let n = 500;
    let (med, p99) = latency(&pool, &req, n, Duration::ZERO)?;
    let rest_pause = Duration::from_millis(5);
    let (rest_med, rest_p99) = latency(&pool, &req, 300, rest_pause)?;
    // Throughput: every worker busy.
    let m = 1000;
    let t = Instant::now();
    let ok = parallel_map(&vec![(); m], pool.workers(), |_, _| {
        pool.run(&req).is_ok_and(|r| r.all_passed())
    });
    let per_s = m as f64 / t.elapsed().as_secs_f64();
    anyhow::ensure!(ok.iter().all(|&b| b), "a throughput run failed");
    // Baseline: a fresh interpreter per run. Resolve the real executable first:
    // `python3` on PATH may be a shim script (pyenv) that would inflate the baseline.
    let exe = std::process::Command::new(&cfg.python)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()?;
    let exe = String::from_utf8_lossy(&exe.stdout).trim().to_string();
    let k = 60;
    let mut spawn = Vec::with_capacity(k);
    for _ in 0..k {
        let t = Instant::now();
        let out = std::process::Command::new(&exe)
            .arg("-c")
            .arg(SPAWN_HARNESS)
            .arg(CODE)
            .args(TESTS)
            .output()?;
        spawn.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(
            String::from_utf8_lossy(&out.stdout).matches("ok").count() == 5,
            "baseline run failed"
        );
    }
    let (spawn_med, spawn_p99) = median_p99(&mut spawn);
    let (speedup, speedup_at_rest) = (spawn_med / med, spawn_med / rest_med);
    eprintln!(
        "bench sandbox: pool median {med:.2} ms, p99 {p99:.2} ms back to back; at rest median \
         {rest_med:.2} ms, p99 {rest_p99:.2} ms; {per_s:.0} runs/s with {} workers; \
         spawn python3 per run median {spawn_med:.2} ms ({speedup_at_rest:.1}x a run at rest, \
         {speedup:.1}x back to back)",
        pool.workers(),
    );
    Ok(json!({
        "bench": "sandbox",
        "machine": machine,
        "task": "gcd, 5 asserts",
        "workers": pool.workers(),
        "protection": pool.protection().summary(),
        "pool": {"runs": n, "median_ms": med, "p99_ms": p99, "runs_per_s_all_workers": per_s},
        "pool_at_rest": {"runs": 300, "pause_ms": rest_pause.as_millis() as u64, "median_ms": rest_med, "p99_ms": rest_p99},
        "spawn_python_per_run": {"python": exe, "runs": k, "median_ms": spawn_med, "p99_ms": spawn_p99},
        "speedup_median": speedup,
        "speedup_median_at_rest": speedup_at_rest,
    }))
}

/// Median and p99 (ms) of `n` runs, each sent `pause` after the last one answered.
fn latency(
    pool: &SandboxPool,
    req: &RunRequest,
    n: usize,
    pause: Duration,
) -> anyhow::Result<(f64, f64)> {
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        std::thread::sleep(pause);
        let t = Instant::now();
        let report = pool.run(req)?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(report.all_passed(), "a latency run failed: {report:?}");
    }
    Ok(median_p99(&mut lat))
}
