//! The attack suite: task code from `tests/fixtures/attacks.jsonl` that tries to escape
//! or hurt the host (loops, bombs, kills, file and network access, harness patching...).
//!
//! Each attack runs through a real pool while benign runs go on beside it on the same
//! pool; every test of every attack must end as its fixture expects, the benign runs must
//! keep giving exact results, and afterwards the host must show no trace: no connection
//! reached its listeners, no file appeared or vanished, no SysV IPC object and no process
//! of the run uids remains. The fixture is data so a new attack is one line; `needs`
//! says which attacks only namespaces contain (see README, "The sandbox").
//! The tests inspect this process's descendants, so they take a lock to run one at a time.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::attacks_support::host::{AttackHost, SECRET_ENV_VALUE};
use crate::support::procs::{descendants, processes_with_uid_in, sysv_objects_of};
use coe::protocol::run::{Limits, RunOutcome, RunRequest, TestOutcome};
use coe::sandbox::{Isolation, SandboxConfig, SandboxPool};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Attack {
    name: String,
    #[serde(default)]
    note: String,
    /// `any`, `namespaces` (only contained with them) or `root` (only meaningful as root).
    needs: String,
    code: String,
    tests: Vec<String>,
    expect: Vec<String>,
    /// Expectations without namespaces, where they differ.
    expect_fallback: Option<Vec<String>>,
    /// Fields of `Limits` to override for this attack.
    limits: Option<serde_json::Map<String, serde_json::Value>>,
}

fn base_limits() -> Limits {
    Limits {
        test_timeout_s: 0.5,
        run_timeout_s: 6.0,
        cpu_s: 5,
        memory_mb: 256,
        max_procs: 32,
        max_open_files: 64,
        max_file_mb: 8,
        output_bytes: 4096,
    }
}

fn load_attacks() -> Vec<Attack> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/attacks.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn request(attack: &Attack, host: &AttackHost) -> RunRequest {
    let mut limits = serde_json::to_value(base_limits()).unwrap();
    if let (Some(over), Some(obj)) = (&attack.limits, limits.as_object_mut()) {
        obj.extend(over.clone());
    }
    RunRequest {
        setup: String::new(),
        code: host.fill(&attack.code),
        tests: attack.tests.iter().map(|t| host.fill(t)).collect(),
        limits: serde_json::from_value(limits).unwrap(),
    }
}

fn matches(outcome: &TestOutcome, want: &str) -> bool {
    match (want.split_once(':'), outcome) {
        (Some(("failed", exc)), TestOutcome::Failed { error }) => error.exc_type == exc,
        (Some(_), _) => false,
        (None, _) => match want {
            "any" => true,
            "not_passed" => !outcome.passed(),
            "passed" => outcome.passed(),
            "failed" => matches!(outcome, TestOutcome::Failed { .. }),
            "timed_out" => matches!(outcome, TestOutcome::TimedOut { .. }),
            "crashed" => matches!(outcome, TestOutcome::Crashed { .. }),
            other => panic!("unknown expectation {other:?}"),
        },
    }
}

/// Runs one attack; returns a line per surprise (empty when contained as expected).
fn check_attack(pool: &SandboxPool, attack: &Attack, host: &AttackHost) -> Vec<String> {
    let namespaces = pool.protection().namespaces;
    let want = match (&attack.expect_fallback, namespaces) {
        (Some(fallback), false) => fallback,
        _ => &attack.expect,
    };
    let report = match pool.run(&request(attack, host)) {
        Ok(r) => r,
        Err(e) => return vec![format!("{}: the pool failed: {e}", attack.name)],
    };
    let mut problems = Vec::new();
    let tests = match &report.outcome {
        RunOutcome::Tests { tests } => tests.clone(),
        other => {
            return vec![format!(
                "{}: expected test outcomes, got {other:?}",
                attack.name
            )];
        }
    };
    println!("{:<22} {}", attack.name, summary(&tests));
    if tests.len() != want.len() {
        problems.push(format!(
            "{}: {} outcomes for {} expectations",
            attack.name,
            tests.len(),
            want.len()
        ));
    }
    for (k, (got, want)) in tests.iter().zip(want).enumerate() {
        if !matches(got, want) {
            problems.push(format!(
                "{} test {k} ({:?}): expected {want}, got {got:?} [{}]",
                attack.name,
                attack.tests[k].lines().next().unwrap_or(""),
                attack.note
            ));
        }
    }
    for secret in [
        SECRET_ENV_VALUE,
        host.secret_file_text.as_str(),
        "[package]",
    ] {
        if report.output.contains(secret) {
            problems.push(format!("{}: output leaks {secret:?}", attack.name));
        }
    }
    if report.output.len() > request(attack, host).limits.output_bytes {
        problems.push(format!(
            "{}: output of {} bytes exceeds the cap",
            attack.name,
            report.output.len()
        ));
    }
    problems
}

fn summary(tests: &[TestOutcome]) -> String {
    let word = |t: &TestOutcome| match t {
        TestOutcome::Passed => "passed".to_string(),
        TestOutcome::Failed { error } => format!("failed({})", error.exc_type),
        TestOutcome::TimedOut { .. } => "timed_out".to_string(),
        TestOutcome::Crashed { reason } => format!("crashed({reason})"),
    };
    tests.iter().map(word).collect::<Vec<_>>().join(", ")
}

/// A benign run with an answer unique to `k`; panics on any deviation.
fn benign_run(pool: &SandboxPool, k: usize) {
    let code = format!("def f(x):\n    return x * {k}\nprint({k})\n");
    let tests = vec![
        format!("assert f(3) == {}", 3 * k),
        format!("assert f(1) == {}", k + 1),
    ];
    let r = pool
        .run(&RunRequest {
            setup: String::new(),
            code,
            tests,
            limits: base_limits(),
        })
        .unwrap();
    let RunOutcome::Tests { tests } = &r.outcome else {
        panic!("benign run {k}: {r:?}")
    };
    assert!(
        tests[0].passed() && !tests[1].passed(),
        "benign run {k}: {tests:?}"
    );
    assert_eq!(r.output, format!("{k}\n"), "benign run {k}");
}

/// Runs every applicable attack on `pool` from two threads while a third keeps running
/// benign tasks; returns the surprises and how many benign runs completed.
fn run_suite(
    pool: &SandboxPool,
    host: &AttackHost,
    applicable: &[&Attack],
) -> (Vec<String>, usize) {
    let next = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let benign = AtomicUsize::new(0);
    let problems = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                benign_run(pool, benign.fetch_add(1, Ordering::Relaxed) + 1);
            }
        });
        let attackers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    while let Some(a) = applicable.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let found = check_attack(pool, a, host);
                        problems.lock().unwrap().extend(found);
                    }
                })
            })
            .collect();
        for a in attackers {
            a.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    (
        problems.into_inner().unwrap(),
        benign.load(Ordering::Relaxed),
    )
}

fn config(isolation: Isolation, uid_base: u32) -> SandboxConfig {
    SandboxConfig {
        workers: 3,
        isolation,
        unprivileged_uid_base: uid_base,
        limits: base_limits(),
        ..Default::default()
    }
}

fn applies(attack: &Attack, namespaces: bool) -> bool {
    match attack.needs.as_str() {
        "any" => true,
        "namespaces" => namespaces,
        // SAFETY: geteuid has no preconditions.
        "root" => (unsafe { libc::geteuid() }) == 0,
        other => panic!("{}: unknown `needs` {other:?}", attack.name),
    }
}

/// The whole check for one isolation mode.
fn attack_suite(isolation: Isolation, uid_base: u32) {
    let _one = crate::attacks_support::one_pool();
    let host = AttackHost::new();
    let attacks = load_attacks();
    assert!(descendants().is_empty(), "a pool is already alive");
    let pool = SandboxPool::new(&config(isolation, uid_base)).unwrap();
    let namespaces = pool.protection().namespaces;
    if isolation == Isolation::Auto {
        // Without namespaces the suite runs only the attacks the fallback stops; under CI
        // that would be a silent pass of a weaker sandbox.
        let what = format!(
            "user + network namespaces ({})",
            pool.protection().summary()
        );
        crate::support::prereq::require(&what, namespaces);
    }
    let (first, last) = pool.protection().run_uids.unwrap_or((u32::MAX, u32::MAX));
    let applicable: Vec<&Attack> = attacks.iter().filter(|a| applies(a, namespaces)).collect();
    let names: BTreeSet<&str> = applicable.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names.len(), applicable.len(), "attack names must be unique");
    let (mut problems, benign) = run_suite(&pool, &host, &applicable);
    assert!(
        benign >= 5,
        "only {benign} benign runs completed beside the attacks"
    );
    // One more run per worker: each has cleaned up after its last attack by then.
    for k in 0..pool.workers() {
        benign_run(&pool, 10_000 + k);
    }
    problems.extend(host.traces_left(namespaces));
    if first != u32::MAX {
        problems.extend(
            sysv_objects_of(first..last + 1)
                .into_iter()
                .map(|o| format!("SysV IPC object left: {o}")),
        );
    }
    drop(pool);
    problems.extend(
        descendants()
            .into_iter()
            .map(|(pid, cmd)| format!("process left: {pid} {cmd}")),
    );
    if first != u32::MAX {
        problems.extend(
            processes_with_uid_in(first..last + 1)
                .into_iter()
                .map(|p| format!("run-uid process left: {p}")),
        );
    }
    problems.extend(host.tmp_traces());
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn attacks_are_contained_with_namespaces() {
    attack_suite(Isolation::Auto, 62000);
}

#[test]
fn attacks_are_contained_without_namespaces() {
    attack_suite(Isolation::None, 62100);
}

#[test]
fn fixture_is_well_formed() {
    for a in load_attacks() {
        assert_eq!(a.tests.len(), a.expect.len(), "{}", a.name);
        if let Some(f) = &a.expect_fallback {
            assert_eq!(f.len(), a.tests.len(), "{}", a.name);
        }
        for want in a.expect.iter().chain(a.expect_fallback.iter().flatten()) {
            matches(&TestOutcome::Passed, want);
        }
        assert!(applies(&a, true), "{}", a.name);
    }
}
