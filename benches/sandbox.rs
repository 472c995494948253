//! Criterion benchmarks of the two costs an RL step pays per turn: an
//! environment step without tests (parse, apply, render), and a 5-assert run
//! through the warm sandbox pool. `coe bench sandbox` adds the spawn-per-run
//! baseline and p99; this gives criterion's statistics for regressions.
use coe::env::buffer::Buffer;
use coe::env::dsl::parse_model_turn;
use coe::env::feedback::render_state;
use coe::protocol::run::RunRequest;
use coe::sandbox::{SandboxConfig, SandboxPool};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn env_step(c: &mut Criterion) {
    let code: String = (0..20)
        .map(|i| format!("    total = total + values[{i}] * {i}\n"))
        .collect();
    let mut buf = Buffer::from_code(&format!(
        "def f(values):\n    total = 0\n{code}    return total\n"
    ));
    let turns = ["### REPW 5 >>>* 2 >>>* 3", "### REPW 5 >>>* 3 >>>* 2"];
    let mut i = 0;
    c.bench_function("parse+apply+render (24 lines)", |b| {
        b.iter(|| {
            i += 1;
            let cmd = parse_model_turn(black_box(turns[i % 2]))
                .expect("valid")
                .command;
            buf.apply(&cmd).expect("applies");
            black_box(render_state(
                &buf,
                "Test 1 failed: assert f([1]) == 1\nAssertionError",
            ))
        })
    });
}

fn sandbox_run(c: &mut Criterion) {
    let cfg = SandboxConfig {
        workers: 1,
        ..SandboxConfig::default()
    };
    let pool = SandboxPool::new(&cfg).expect("sandbox starts");
    let req = RunRequest {
        setup: String::new(),
        code: "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a\n".into(),
        tests: [
            "assert gcd(35, 21) == 7",
            "assert gcd(10, 0) == 10",
            "assert gcd(0, 9) == 9",
            "assert gcd(17, 5) == 1",
            "assert gcd(48, 180) == 12",
        ]
        .map(String::from)
        .to_vec(),
        limits: cfg.limits.clone(),
    };
    c.bench_function("sandbox run, 5 asserts, 1 worker", |b| {
        b.iter(|| black_box(pool.run(&req).expect("runs")))
    });
}

criterion_group!(benches, env_step, sandbox_run);
criterion_main!(benches);
