//! Sandbox worker lifecycle: dead and hung workers are replaced with the run
//! retried, and dropping a pool leaves no process and no temp file behind.
//! A test binary of its own: it inspects every descendant of this process, so no
//! other pool may be alive meanwhile; the tests take a lock to run one at a time.
use std::collections::BTreeSet;
use std::time::Duration;

use coe::protocol::run::{Limits, RunRequest, TestOutcome};
use coe::sandbox::{SandboxConfig, SandboxPool};

use crate::support::procs;
use procs::{children_of, descendants};

fn config(workers: usize, uid_base: u32) -> SandboxConfig {
    let limits = Limits {
        test_timeout_s: 3.0,
        run_timeout_s: 5.0,
        memory_mb: 256,
        ..Limits::default()
    };
    SandboxConfig {
        workers,
        unprivileged_uid_base: uid_base,
        limits,
        ..Default::default()
    }
}

fn req(code: &str, tests: &[&str], limits: &Limits) -> RunRequest {
    RunRequest {
        setup: String::new(),
        code: code.into(),
        tests: tests.iter().map(|t| t.to_string()).collect(),
        limits: limits.clone(),
    }
}

fn our_tmp_entries() -> BTreeSet<String> {
    std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.starts_with("coe-sandbox-")
                || n.starts_with("run-")
                || n == "coe_probe"
                || n == "left"
        })
        .collect()
}

#[test]
fn thousand_runs_then_drop_leaves_nothing() {
    let _one = crate::attacks_support::one_pool();
    let tmp_before = our_tmp_entries();
    let pool = SandboxPool::new(&config(2, 61500)).unwrap();
    let limits = config(2, 61500).limits;
    let code = "def f(x):\n    return x + 1\n";
    std::thread::scope(|s| {
        for half in 0..2u32 {
            let (pool, limits) = (&pool, &limits);
            s.spawn(move || {
                for i in 0..500u32 {
                    // Every 50th run leaves a detached sleeper and files behind.
                    let mess = if i % 50 == 0 {
                        "import subprocess\nsubprocess.Popen(['sleep', '30'], start_new_session=True)\nopen('/tmp/left', 'w').write('x')"
                    } else {
                        "open('here.txt', 'w').write('x')"
                    };
                    let want = format!("assert f({i}) == {}", i + 1 + half);
                    let r = pool.run(&req(code, &[mess, &want], limits)).unwrap();
                    let t = match r.outcome {
                        coe::protocol::run::RunOutcome::Tests { tests } => tests,
                        other => panic!("{other:?}"),
                    };
                    assert_eq!(t[0], TestOutcome::Passed);
                    assert_eq!(t[1].passed(), half == 0, "{t:?}");
                }
            });
        }
    });
    assert!(
        !descendants().is_empty(),
        "the workers are our descendants while the pool lives"
    );
    drop(pool);
    assert_eq!(
        descendants(),
        Vec::new(),
        "processes left after the pool was dropped"
    );
    assert_eq!(
        our_tmp_entries(),
        tmp_before,
        "temp files left in the host's /tmp"
    );
}

#[test]
fn killed_worker_is_replaced_and_the_run_retried() {
    let _one = crate::attacks_support::one_pool();
    let pool = SandboxPool::new(&config(1, 61600)).unwrap();
    let limits = config(1, 61600).limits;
    let slow = req(
        "import time\ndef f():\n    return 2\n",
        &["time.sleep(0.6)", "assert f() == 2"],
        &limits,
    );
    // The worker's own process, then (on each replacement) its server, PID 1 of the
    // worker's namespaces, then the zygote the server has fork the run children.
    for depth in 0..3 {
        std::thread::scope(|s| {
            let run = s.spawn(|| pool.run(&slow));
            std::thread::sleep(Duration::from_millis(300));
            let workers = children_of(std::process::id());
            assert_eq!(workers.len(), 1, "{workers:?}");
            let mut victim = workers[0];
            for _ in 0..depth {
                let below = children_of(victim);
                assert_eq!(below.len(), 1, "depth {depth}: {below:?}");
                victim = below[0];
            }
            // SAFETY: plain kill(2) on a pid we just read as our own descendant.
            assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
            let report = run.join().unwrap().unwrap();
            assert!(report.all_passed(), "{report:?}");
        });
    }
    let quick = req("def f():\n    return 2\n", &["assert f() == 2"], &limits);
    assert!(pool.run(&quick).unwrap().all_passed());
}

#[test]
fn hung_worker_is_replaced_after_the_reply_deadline() {
    let _one = crate::attacks_support::one_pool();
    let pool = SandboxPool::new(&config(1, 61700)).unwrap();
    let limits = Limits {
        test_timeout_s: 0.3,
        run_timeout_s: 0.6,
        memory_mb: 256,
        ..Limits::default()
    };
    let r = req("def f():\n    return 2\n", &["assert f() == 2"], &limits);
    // The server, then (on the replacement) its zygote, which it waits on between runs.
    for depth in 1..3 {
        assert!(pool.run(&r).unwrap().all_passed());
        let mut victim = children_of(std::process::id())[0];
        for _ in 0..depth {
            let below = children_of(victim);
            assert_eq!(below.len(), 1, "depth {depth}: {below:?}");
            victim = below[0];
        }
        // SAFETY: kill(2) on our own descendant; a stopped server never answers.
        assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGSTOP) }, 0);
        let report = pool.run(&r).unwrap();
        assert!(report.all_passed(), "{report:?}");
        assert!(
            report.elapsed_ms < 3000.0,
            "the retry's own time is reported: {report:?}"
        );
    }
}
