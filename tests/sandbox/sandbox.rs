//! The sandbox against real Python: per-test outcomes, and containment of hostile
//! code, each followed by a check that the same pool still serves a normal run.
//! Pools in this file use distinct uid bases so their process limits never mix.
use std::collections::BTreeSet;
use std::sync::OnceLock;

use coe::protocol::run::{Limits, RunOutcome, RunReport, RunRequest, TestError, TestOutcome};
use coe::sandbox::{Isolation, SandboxConfig, SandboxPool};

const SECRET: &str = "s3cr3t-coe-sandbox-test-value";

fn limits() -> Limits {
    Limits {
        test_timeout_s: 0.5,
        run_timeout_s: 5.0,
        cpu_s: 5,
        memory_mb: 256,
        max_procs: 32,
        max_open_files: 64,
        max_file_mb: 4,
        output_bytes: 4096,
    }
}

fn req(code: &str, tests: &[&str]) -> RunRequest {
    RunRequest {
        setup: String::new(),
        code: code.to_string(),
        tests: tests.iter().map(|t| t.to_string()).collect(),
        limits: limits(),
    }
}

fn config(workers: usize, uid_base: u32) -> SandboxConfig {
    SandboxConfig {
        workers,
        unprivileged_uid_base: uid_base,
        limits: limits(),
        ..Default::default()
    }
}

/// A pool of one worker, so consecutive runs share it.
fn one_worker_pool(isolation: Isolation, uid_base: u32) -> SandboxPool {
    SandboxPool::new(&SandboxConfig {
        isolation,
        ..config(1, uid_base)
    })
    .unwrap()
}

/// One pool for most tests; the secret is set before it starts.
fn pool() -> &'static SandboxPool {
    static POOL: OnceLock<SandboxPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // SAFETY: std serialises its own environment access (Command snapshots the
        // environment under the same lock) and no test here calls C getenv.
        unsafe { std::env::set_var("COE_SANDBOX_TEST_SECRET", SECRET) };
        SandboxPool::new(&config(2, 61000)).unwrap()
    })
}

fn tests_of(report: &RunReport) -> Vec<TestOutcome> {
    match &report.outcome {
        RunOutcome::Tests { tests } => tests.clone(),
        other => panic!("expected test outcomes, got {other:?}"),
    }
}

fn failed(exc_type: &str, message: &str, line: Option<usize>) -> TestOutcome {
    TestOutcome::Failed {
        error: TestError {
            exc_type: exc_type.into(),
            message: message.into(),
            line,
        },
    }
}

fn crashed(reason: &str) -> TestOutcome {
    TestOutcome::Crashed {
        reason: reason.into(),
    }
}

/// After any hostile run: the pool still gives exact results on a normal one.
fn assert_pool_healthy(pool: &SandboxPool) {
    let r = pool.run(&req(
        "def add(a, b):\n    return a + b\n",
        &["assert add(1, 2) == 3", "assert add(1, 1) == 3"],
    ));
    assert_eq!(
        tests_of(&r.unwrap()),
        vec![TestOutcome::Passed, failed("AssertionError", "", None)]
    );
}

#[test]
fn pool_is_shareable_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SandboxPool>();
}

#[test]
fn per_test_outcomes_with_lines() {
    let code = "def gcd(a, b):\n    if b == 0:\n        return a\n    else:\n        return gcd(a % b, b)\n";
    let r = pool().run(&req(
        code,
        &[
            "assert gcd(35, 21) == 7",
            "assert gcd(10, 0) == 10",
            "assert gcd(7, 0) == 8",
        ],
    ));
    let t = tests_of(&r.unwrap());
    let TestOutcome::Failed { error } = &t[0] else {
        panic!("{t:?}")
    };
    assert_eq!(
        (error.exc_type.as_str(), error.line),
        ("RecursionError", Some(5))
    );
    assert!(
        error
            .message
            .starts_with("maximum recursion depth exceeded"),
        "{error:?}"
    );
    assert_eq!(
        t[1..],
        [TestOutcome::Passed, failed("AssertionError", "", None)]
    );
}

#[test]
fn all_passing_and_setup_runs_first() {
    let mut r = req(
        "def root(x):\n    return math.isqrt(x)\n",
        &["assert root(16) == 4", "assert root(17) == 4"],
    );
    r.setup = "import math".into();
    let report = pool().run(&r).unwrap();
    assert!(report.all_passed(), "{report:?}");
    assert!(report.elapsed_ms > 0.0);
}

#[test]
fn syntax_errors_give_the_buffer_line() {
    let r = pool()
        .run(&req("def f(x):\n    return x +\n", &["assert f(1) == 2"]))
        .unwrap();
    assert_eq!(
        r.outcome,
        RunOutcome::SyntaxError {
            line: 2,
            message: "invalid syntax".into()
        }
    );
    let r = pool()
        .run(&req("def f():\nreturn 1\n", &["assert f() == 1"]))
        .unwrap();
    let msg = "expected an indented block after function definition on line 1";
    assert_eq!(
        r.outcome,
        RunOutcome::SyntaxError {
            line: 2,
            message: msg.into()
        }
    );
    let r = pool()
        .run(&req("x = 1\nprint('early')\ny = (1,\n", &[]))
        .unwrap();
    assert_eq!(
        r.outcome,
        RunOutcome::SyntaxError {
            line: 3,
            message: "'(' was never closed".into()
        }
    );
    assert_eq!(r.output, "", "nothing runs when the code does not compile");
}

#[test]
fn exec_time_error_fails_every_test_with_its_line() {
    let r = pool()
        .run(&req(
            "def f():\n    return 1\nx = [1][2]\n",
            &["assert f() == 1", "assert True"],
        ))
        .unwrap();
    let e = failed("IndexError", "list index out of range", Some(3));
    assert_eq!(tests_of(&r), vec![e.clone(), e]);
}

#[test]
fn output_is_captured_and_capped() {
    let r = pool()
        .run(&req(
            "print('top')\ndef f():\n    print('in f')\n    return 1\n",
            &["assert f() == 1"],
        ))
        .unwrap();
    assert_eq!(
        (tests_of(&r), r.output.as_str()),
        (vec![TestOutcome::Passed], "top\nin f\n")
    );
    let mut capped = req(
        "import sys\nprint('x' * 1000)\nsys.stderr.write('err')\n",
        &["assert True"],
    );
    capped.limits.output_bytes = 10;
    let r = pool().run(&capped).unwrap();
    assert_eq!(
        (tests_of(&r), r.output.as_str()),
        (vec![TestOutcome::Passed], "xxxxxxxxxx")
    );
}

#[test]
fn hash_order_is_reproducible() {
    let r = req(
        "print(list({'apple', 'banana', 'cherry', 'date', 'elder'}))\n",
        &[],
    );
    let outputs: BTreeSet<String> = (0..4).map(|_| pool().run(&r).unwrap().output).collect();
    assert_eq!(outputs.len(), 1, "{outputs:?}");
}

#[test]
fn infinite_loop_times_out_and_later_tests_still_run() {
    let tests = [
        "assert f(1) == 2",
        "while True:\n    pass",
        "assert f(2) == 3",
        "assert f(2) == 4",
    ];
    let r = pool()
        .run(&req("def f(x):\n    return x + 1\n", &tests))
        .unwrap();
    assert_eq!(
        tests_of(&r),
        vec![
            TestOutcome::Passed,
            TestOutcome::TimedOut { seconds: 0.5 },
            TestOutcome::Passed,
            failed("AssertionError", "", None)
        ]
    );
    assert_pool_healthy(pool());
}

#[test]
fn run_budget_spent_times_out_the_rest() {
    let mut r = req(
        "import time\n",
        &[
            "time.sleep(1)",
            "time.sleep(1)",
            "time.sleep(1)",
            "assert True",
        ],
    );
    r.limits.run_timeout_s = 1.2;
    r.limits.test_timeout_s = 0.4;
    let t = tests_of(&pool().run(&r).unwrap());
    assert_eq!(t[0], TestOutcome::TimedOut { seconds: 0.4 });
    assert_eq!(t[3], TestOutcome::TimedOut { seconds: 1.2 }, "{t:?}");
}

#[test]
fn memory_bomb_is_contained() {
    let bombs = [
        "x = bytearray(10 ** 10)",
        "a = []\nwhile True:\n    a.append(bytearray(10 ** 7))",
        "assert True",
    ];
    let t = tests_of(&pool().run(&req("", &bombs)).unwrap());
    assert!(!t[0].passed() && !t[1].passed(), "{t:?}");
    assert_eq!(t[2], TestOutcome::Passed);
    let deep = tests_of(
        &pool()
            .run(&req("def f(n):\n    return f(n + 1)\n", &["f(0)"]))
            .unwrap(),
    );
    assert!(
        matches!(&deep[0], TestOutcome::Failed { error } if error.exc_type == "RecursionError" && error.line == Some(2))
    );
    assert_pool_healthy(pool());
}

#[test]
fn fork_bomb_is_contained_and_cleaned_up() {
    // A pool of its own, so no other test's run is alive under its uid.
    let pool = SandboxPool::new(&config(1, 61050)).unwrap();
    let (uid, _) = pool.protection().run_uids.expect("root drops to a run uid");
    let t = tests_of(
        &pool
            .run(&req(
                "import os\n",
                &["while True:\n    os.fork()", "assert True"],
            ))
            .unwrap(),
    );
    assert!(!t[0].passed(), "{t:?}");
    assert_eq!(t[1], TestOutcome::Passed);
    assert_pool_healthy(&pool);
    drop(pool);
    assert_eq!(
        crate::support::procs::processes_with_uid_in(uid..uid + 1),
        Vec::<String>::new()
    );
}

#[test]
fn huge_output_is_drained_and_capped() {
    let mut r = req(
        "",
        &[
            "for _ in range(100):\n    print('x' * 1_000_000)",
            "assert True",
        ],
    );
    r.limits.test_timeout_s = 5.0;
    let report = pool().run(&r).unwrap();
    assert_eq!(
        tests_of(&report),
        vec![TestOutcome::Passed, TestOutcome::Passed]
    );
    assert_eq!(report.output.len(), 4096);
    assert_pool_healthy(pool());
}

#[test]
fn writes_outside_the_run_never_reach_the_host() {
    let tests = [
        "open('/etc/coe_probe', 'w').write('x')",
        "open('/tmp/coe_probe', 'w').write('x')",
        "open('here', 'w').write('x')",
    ];
    let t = tests_of(&pool().run(&req("", &tests)).unwrap());
    assert!(!t[0].passed(), "{t:?}");
    assert_eq!(
        t[2],
        TestOutcome::Passed,
        "the working directory is writable"
    );
    assert!(!std::path::Path::new("/etc/coe_probe").exists());
    assert!(!std::path::Path::new("/tmp/coe_probe").exists());
    if pool().protection().private_tmp {
        assert_eq!(t[1], TestOutcome::Passed);
        let next = pool().run(&req(
            "import os\n",
            &["assert not os.path.exists('/tmp/coe_probe')"],
        ));
        assert_eq!(
            tests_of(&next.unwrap()),
            vec![TestOutcome::Passed],
            "a run's /tmp is wiped after it"
        );
    }
    assert_pool_healthy(pool());
}

#[test]
fn killing_parent_or_everyone_harms_nothing() {
    for attack in [
        "os.kill(os.getppid(), 9)",
        "os.kill(-1, 9)",
        "os.kill(1, 9)",
    ] {
        let t = tests_of(
            &pool()
                .run(&req("import os\n", &[attack, "assert True"]))
                .unwrap(),
        );
        assert_eq!(t[1], TestOutcome::Passed, "{attack}: {t:?}");
        assert_pool_healthy(pool());
    }
}

#[test]
fn parent_environment_is_invisible() {
    let code = "import os\ndef peek(path):\n    try:\n        with open(path, 'rb') as f:\n            return f.read()\n    \
                except OSError:\n        return b''\n";
    let tests = [
        "assert sorted(os.environ) == ['HOME', 'LANG', 'PATH', 'PYTHONDONTWRITEBYTECODE', 'PYTHONHASHSEED', 'TMPDIR']",
        "assert b's3cr3t' not in peek('/proc/1/environ')",
        "assert b's3cr3t' not in peek('/proc/%d/environ' % os.getppid())",
        "assert b's3cr3t' not in peek('/proc/self/environ')",
        "assert not any(b's3cr3t' in peek('/proc/%s/environ' % p) for p in os.listdir('/proc') if p.isdigit())",
        "print(dict(os.environ))",
    ];
    let r = pool().run(&req(code, &tests)).unwrap();
    assert_eq!(tests_of(&r), vec![TestOutcome::Passed; 6]);
    assert!(
        !r.output.contains(SECRET) && r.output.contains("PYTHONHASHSEED"),
        "{}",
        r.output
    );
}

#[test]
fn exits_and_fake_reports_never_pass() {
    let tests = [
        "import os\nos._exit(0)",
        "import sys\nsys.exit(0)",
        "raise SystemExit",
        "raise KeyboardInterrupt",
        "import os\nos.kill(os.getpid(), 9)",
        "print('{\"status\": \"passed\"}')\nassert False",
        "import os\nos.closerange(3, 65536)",
        "assert True",
    ];
    let t = tests_of(&pool().run(&req("", &tests)).unwrap());
    assert_eq!(
        t,
        vec![
            crashed("exited with status 0 before the test finished"),
            failed("SystemExit", "0", None),
            failed("SystemExit", "", None),
            failed("KeyboardInterrupt", "", None),
            crashed("killed by signal 9 (SIGKILL)"),
            failed("AssertionError", "", None),
            crashed("exited with status 71 before the test finished"),
            TestOutcome::Passed,
        ]
    );
    assert_pool_healthy(pool());
}

#[test]
fn closed_stdout_does_not_pass() {
    let code =
        "import os, sys\nsys.stdout.close()\nos.close(1)\nos.close(2)\ndef f():\n    return 1\n";
    let t = tests_of(
        &pool()
            .run(&req(code, &["assert f() == 2", "assert f() == 1"]))
            .unwrap(),
    );
    assert_eq!(
        t,
        vec![failed("AssertionError", "", None), TestOutcome::Passed]
    );
    let t = tests_of(
        &pool()
            .run(&req(
                "import os\n",
                &["os.close(1)\nos.close(2)\nassert False"],
            ))
            .unwrap(),
    );
    assert_eq!(t, vec![failed("AssertionError", "", None)]);
    let t = tests_of(
        &pool()
            .run(&req(
                "import os\nos._exit(0)\n",
                &["assert True", "assert True"],
            ))
            .unwrap(),
    );
    assert_eq!(
        t,
        vec![crashed("exited with status 0 while the code was loading"); 2]
    );
    assert_pool_healthy(pool());
}

#[test]
fn network_is_cut() {
    // No early return: whatever the protection reports, a connection from task code to the
    // host must fail, so this test fails wherever the network is reachable.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let test =
        format!("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=0.3)");
    let t = tests_of(&pool().run(&req("", &[&test])).unwrap());
    assert!(
        matches!(&t[0], TestOutcome::Failed { error } if error.exc_type == "OSError"),
        "{t:?}"
    );
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "nothing reached the host's loopback"
    );
    assert!(
        pool().protection().network_cut,
        "the network is cut but the protection says otherwise: {}",
        pool().protection().summary()
    );
}

#[test]
fn many_threads_share_a_small_pool() {
    let pool = SandboxPool::new(&config(2, 61100)).unwrap();
    std::thread::scope(|s| {
        for thread in 0..8u32 {
            let pool = &pool;
            s.spawn(move || {
                for i in 0..50u32 {
                    let k = thread * 100 + i;
                    let code = format!("def f(x):\n    return x * {k}\nprint({k})\n");
                    let (ok, bad) = (
                        format!("assert f(3) == {}", 3 * k),
                        format!("assert f(1) == {}", k + 1),
                    );
                    let r = pool.run(&req(&code, &[&ok, &bad])).unwrap();
                    assert_eq!(
                        tests_of(&r),
                        vec![TestOutcome::Passed, failed("AssertionError", "", None)]
                    );
                    assert_eq!(r.output, format!("{k}\n"));
                }
            });
        }
    });
}

/// Pools without namespaces make run directories in the host's /tmp, which the test
/// below compares before and after; such pools take this lock.
static FALLBACK_TMP: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn without_namespaces_uid_drop_and_cleanup_still_hold() {
    let _tmp = FALLBACK_TMP.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = SandboxConfig {
        isolation: Isolation::None,
        ..config(1, 61200)
    };
    let fallback_dirs_before = fallback_dirs();
    let pool = SandboxPool::new(&cfg).unwrap();
    assert!(!pool.protection().namespaces);
    assert!(
        pool.protection()
            .notes
            .iter()
            .any(|n| n.contains("disabled by configuration"))
    );
    let (uid, _) = pool.protection().run_uids.expect("root drops to a run uid");
    assert!((61200..61200 + 16384).contains(&uid), "{uid}");
    let escape = "if os.fork() == 0:\n    os.setsid()\n    time.sleep(30)";
    let uid_check = format!("assert os.getuid() == {uid}");
    let t = tests_of(
        &pool
            .run(&req(
                "import os, time\n",
                &[escape, &uid_check, "os.kill(-1, 9)"],
            ))
            .unwrap(),
    );
    assert_eq!(t[..2], [TestOutcome::Passed, TestOutcome::Passed], "{t:?}");
    assert_pool_healthy(&pool);
    drop(pool);
    assert_eq!(
        crate::support::procs::processes_with_uid_in(uid..uid + 1),
        Vec::<String>::new()
    );
    // Without a private /tmp the run directory lives in the host's; it goes with the pool.
    assert_eq!(
        fallback_dirs(),
        fallback_dirs_before,
        "run directories left in /tmp"
    );
}

/// Each worker forks its next child at a background priority (nicer than its own) while
/// it cleans up; the child must get the pool's own priority back with its run, or every
/// test would run slowed down.
#[test]
fn task_code_runs_at_the_pools_priority() {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let nice: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(16)
        .unwrap()
        .parse()
        .unwrap();
    let check = format!(
        "assert os.getpriority(os.PRIO_PROCESS, 0) == {nice}, os.getpriority(os.PRIO_PROCESS, 0)"
    );
    let _tmp = FALLBACK_TMP.lock().unwrap_or_else(|e| e.into_inner());
    for (isolation, uid_base) in [(Isolation::Auto, 61400), (Isolation::None, 61420)] {
        let pool = one_worker_pool(isolation, uid_base);
        // Back to back, and with time for the clean-up to finish before the next run.
        for pause_ms in [0, 0, 100, 100] {
            std::thread::sleep(std::time::Duration::from_millis(pause_ms));
            let t = tests_of(&pool.run(&req("import os\n", &[&check])).unwrap());
            assert_eq!(t, [TestOutcome::Passed], "{isolation:?}");
        }
    }
}

/// What a run leaves in its working directory (files, a subdirectory it locked with
/// mode 0) is gone when the next run on the same worker starts, whether the last run
/// left the directory empty (removed in one call) or not (removed recursively). Each
/// run prints where it ran (the directory's path and device: a replaced worker has
/// another), so a worker that failed its clean-up and was replaced fails the test.
#[test]
fn each_run_starts_in_an_empty_directory() {
    let whereami = "import os\nprint(os.getcwd(), os.stat('.').st_dev)\n";
    let litter = format!(
        "{whereami}open('here', 'w').write('x')\nos.mkdir('sub')\n\
         open('sub/f', 'w').write('x')\nos.chmod('sub', 0)\n"
    );
    let empty = "assert os.listdir('.') == [], os.listdir('.')";
    let _tmp = FALLBACK_TMP.lock().unwrap_or_else(|e| e.into_inner());
    for (isolation, uid_base) in [(Isolation::Auto, 61440), (Isolation::None, 61460)] {
        let pool = one_worker_pool(isolation, uid_base);
        let mut places = BTreeSet::new();
        for code in [whereami, &litter, whereami, whereami] {
            let report = pool.run(&req(code, &[empty])).unwrap();
            places.insert(report.output.clone());
            let t = tests_of(&report);
            if code == litter {
                assert!(
                    matches!(&t[..], [TestOutcome::Failed { .. }]),
                    "{isolation:?}: the littering run should see its own files: {t:?}"
                );
            } else {
                assert_eq!(t, [TestOutcome::Passed], "{isolation:?}");
            }
        }
        assert_eq!(
            places.len(),
            1,
            "{isolation:?}: the worker was replaced: {places:?}"
        );
    }
}

fn fallback_dirs() -> BTreeSet<String> {
    std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("coe-sandbox-"))
        .collect()
}

#[test]
fn invalid_limits_are_rejected_before_running() {
    let mut r = req("", &["assert True"]);
    r.limits.test_timeout_s = -1.0;
    let err = pool().run(&r).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid run limit `test_timeout_s` = -1: must be a positive number of seconds"
    );
}

#[test]
fn missing_python_is_a_clear_error() {
    let cfg = SandboxConfig {
        python: "/nonexistent/python3".into(),
        ..config(1, 61250)
    };
    let err = SandboxPool::new(&cfg)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with("cannot start the sandbox's Python `/nonexistent/python3`: "),
        "{err}"
    );
}

/// `cargo test --test sandbox -- --ignored --nocapture latency`
#[test]
#[ignore]
fn latency_of_a_five_assert_run() {
    let code = "def add(a, b):\n    return a + b\n";
    let tests = [
        "assert add(1, 2) == 3",
        "assert add(0, 0) == 0",
        "assert add(-1, 1) == 0",
        "assert add(2, 2) == 4",
        "assert add(5, 5) == 10",
    ];
    let mut r = req(code, &tests);
    r.limits = Limits::default();
    // Back to back on one worker, each run also waits for the previous run's clean-up
    // and the next child's fork; with a pause between runs (as when a model decodes
    // between them) that work is done while idle.
    for (workers, pause_ms) in [(1, 0), (1, 5), (2, 5)] {
        let pool = SandboxPool::new(&config(workers, 61300)).unwrap();
        for _ in 0..20 {
            assert!(pool.run(&r).unwrap().all_passed());
        }
        let mut ms: Vec<f64> = (0..500)
            .map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(pause_ms));
                pool.run(&r).unwrap().elapsed_ms
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        println!(
            "{workers} worker(s), {pause_ms} ms between runs, 5-assert run x500: \
             p10 {:.2} ms, median {:.2} ms, p99 {:.2} ms",
            ms[50], ms[250], ms[495]
        );
    }
}
