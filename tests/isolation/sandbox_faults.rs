//! Fault injection through the whole episode path: sandbox workers are SIGKILLed in the
//! middle of a run while `run_episodes` drives the oracle policy. A worker killed once
//! is replaced and the run retried, so the episode goes on and is scored; killed again
//! on the retry, the turn is an infrastructure error: the episode ends with
//! `infra_error`, earns nothing for it and is left out of the metrics (DESIGN §2.3).
//! A test binary of its own: it kills this process's children, so no other pool may
//! live beside the one under test.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::procs::{children_of, descendants};
use coe::config::Config;
use coe::env::episode::Runner;
use coe::eval::results::{EvalSpec, Provenance, summarise};
use coe::eval::rollout::{RolloutOptions, run_episodes};
use coe::policy::OraclePolicy;
use coe::protocol::EpisodeEvent;
use coe::protocol::run::{Limits, RunReport, RunRequest};
use coe::sandbox::{SandboxConfig, SandboxPool};
use coe::task::{Origin, Task};

/// Kills the pool's workers during the runs whose code contains a marker.
struct Saboteur {
    pool: SandboxPool,
    /// (marker in the code, workers to kill during that run)
    plan: Vec<(&'static str, usize)>,
    /// (marker, workers actually killed)
    done: Mutex<Vec<(&'static str, usize)>>,
}

impl Runner for Saboteur {
    fn run(&self, req: &RunRequest) -> Result<RunReport, String> {
        let Some(&(marker, kills)) = self.plan.iter().find(|(m, _)| req.code.contains(m)) else {
            return self.pool.run(req).map_err(|e| e.to_string());
        };
        let finished = AtomicBool::new(false);
        let (result, killed) = std::thread::scope(|s| {
            let killer = s.spawn(|| kill_workers(kills, &finished));
            let result = self.pool.run(req).map_err(|e| e.to_string());
            finished.store(true, Ordering::Relaxed);
            (result, killer.join().unwrap())
        });
        self.done.lock().unwrap().push((marker, killed));
        result
    }
}

/// SIGKILLs up to `n` distinct worker processes, each once it has lived 150 ms (its
/// run sleeps longer than that in its setup), until the run in flight finishes.
fn kill_workers(n: usize, finished: &AtomicBool) -> usize {
    let me = std::process::id();
    let mut seen: Vec<(u32, Instant)> = Vec::new();
    let mut killed = Vec::new();
    while killed.len() < n && !finished.load(Ordering::Relaxed) {
        for pid in children_of(me) {
            if !seen.iter().any(|(p, _)| *p == pid) {
                seen.push((pid, Instant::now()));
            }
        }
        let due = seen
            .iter()
            .find(|(pid, at)| !killed.contains(pid) && at.elapsed() > Duration::from_millis(150));
        if let Some(&(pid, _)) = due {
            // SAFETY: kill(2) on a child of this process, just read from /proc.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            killed.push(pid);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    killed.len()
}

fn task(id: &str, marker: &str) -> Task {
    Task {
        id: id.into(),
        prompt: "Return x plus one.".into(),
        solution: Some(format!("def f(x):\n    # {marker}\n    return x + 1\n")),
        tests: vec!["assert f(1) == 2".into(), "assert f(-1) == 0".into()],
        // Every run takes a while, so a kill lands in the middle of it.
        setup: Some("import time\ntime.sleep(0.5)".into()),
        entry_point: Some("f".into()),
        buggy: format!("def f(x):\n    # {marker}\n    return x - 1\n"),
        origin: Origin::Human,
        problem_id: id.into(),
        corruptions: None,
        extra: Default::default(),
    }
}

#[test]
fn killed_workers_retry_once_then_give_unscored_infra_errors() {
    let _one = crate::attacks_support::one_pool();
    assert!(descendants().is_empty(), "another pool is alive");
    let limits = Limits {
        test_timeout_s: 3.0,
        run_timeout_s: 5.0,
        memory_mb: 256,
        ..Limits::default()
    };
    let cfg = SandboxConfig {
        workers: 1,
        unprivileged_uid_base: 62300,
        limits: limits.clone(),
        ..Default::default()
    };
    // `fine` is never touched; `flaky` loses one worker on its fixing run (retried);
    // `doomed` loses the worker and its replacement on its fixing run.
    let tasks = [
        task("fine", "fine"),
        task("flaky", "flaky"),
        task("doomed", "doomed"),
    ];
    let fixed = |m: &str| format!("# {m}\n    return x + 1");
    let (flaky_fix, doomed_fix) = (fixed("flaky"), fixed("doomed"));
    let runner = Saboteur {
        pool: SandboxPool::new(&cfg).unwrap(),
        plan: vec![(leak(flaky_fix), 1), (leak(doomed_fix), 2)],
        done: Mutex::new(Vec::new()),
    };
    let opts = RolloutOptions {
        env: Config::embedded_default().env,
        limits,
        batch: 1,
        threads: 1,
        job: 7,
    };
    let mut events = Vec::new();
    let results = run_episodes(&tasks, 1, &mut OraclePolicy, &runner, &opts, &mut |e| {
        events.push(e)
    })
    .unwrap();
    let killed = runner.done.lock().unwrap().clone();
    assert_eq!(
        killed.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        vec![1, 2],
        "the sabotage happened as planned: {killed:?}"
    );
    let by_id = |id: &str| results.iter().find(|r| r.task_id == id).unwrap();
    let (fine, flaky, doomed) = (by_id("fine"), by_id("flaky"), by_id("doomed"));
    assert!(fine.solved && !fine.infra_error, "{fine:?}");
    assert!(
        flaky.solved && !flaky.infra_error,
        "retried once: {flaky:?}"
    );
    assert_eq!(
        flaky.rewards.first(),
        Some(&1.0),
        "the retried turn is scored"
    );
    assert!(doomed.infra_error && !doomed.solved, "{doomed:?}");
    assert_eq!(doomed.rewards, vec![0.0], "the infra turn earns nothing");
    let finished_infra: Vec<bool> = events
        .iter()
        .filter_map(|e| match e {
            EpisodeEvent::EpisodeFinished { infra_error, .. } => Some(*infra_error),
            _ => None,
        })
        .collect();
    assert_eq!(
        finished_infra.iter().filter(|&&b| b).count(),
        1,
        "{finished_infra:?}"
    );
    let spec = EvalSpec {
        method: "coe".into(),
        tasks_file: "faults".into(),
        task_ids: tasks.iter().map(|t| t.id.clone()).collect(),
        samples: 1,
        ks: vec![1],
        max_turns: opts.env.max_turns,
    };
    let provenance = Provenance {
        commit: "test".into(),
        model_sha256: None,
        adapter: None,
        seed: 0,
        config: "default".into(),
        policy: "oracle".into(),
    };
    let summary = summarise(&spec, &results, provenance);
    assert_eq!(summary.infra_errors, 1);
    assert_eq!(
        summary.pass_at.get("1"),
        Some(&1.0),
        "the infra episode is not scored"
    );
    assert!(
        summary
            .per_task
            .iter()
            .any(|t| t.id == "doomed" && t.solved.is_empty())
    );
    // The pool serves runs again after losing two workers in a row.
    let again = runner.pool.run(&RunRequest {
        setup: String::new(),
        code: "def f(x):\n    return x + 1\n".into(),
        tests: vec!["assert f(1) == 2".into()],
        limits: opts.limits.clone(),
    });
    assert!(again.unwrap().all_passed());
    drop(runner);
    assert_eq!(
        descendants(),
        Vec::new(),
        "processes left after the pool was dropped"
    );
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}
