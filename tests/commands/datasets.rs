//! The shipped problem set: at least 200 problems, each with a 3–25-line reference
//! and at least 3 asserts, and every reference passes its tests in the sandbox.
use coe::data::loaders::load_problems;
use coe::data::validate::validate_file;
use coe::sandbox::{SandboxConfig, SandboxPool};
use std::path::Path;

#[test]
fn every_shipped_reference_passes_in_the_sandbox() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/problems.jsonl");
    let problems = load_problems(&path).unwrap();
    assert!(problems.len() >= 200, "{} problems", problems.len());
    for p in &problems {
        let lines = p.solution.lines().count();
        assert!((3..=25).contains(&lines), "{}: {lines} lines", p.id);
        assert!(p.tests.len() >= 3, "{}: {} tests", p.id, p.tests.len());
    }
    let cfg = SandboxConfig::default();
    let pool = SandboxPool::new(&cfg).unwrap();
    let (records, findings) = validate_file(&path, &pool, &cfg.limits, pool.workers()).unwrap();
    assert_eq!(records, problems.len());
    assert!(findings.is_empty(), "{findings:#?}");
}
