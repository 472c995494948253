//! The smoke bug family's data, made as the README tells a user to.
use std::path::Path;
use std::process::Command;

/// `coe data gen` of `datasets/smoke/problems.jsonl` (one swapped arithmetic operator) into
/// `dir/out`, `per_problem` bugs per problem.
pub fn smoke_data(dir: &Path, out: &str, per_problem: &str) {
    let problems = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/smoke/problems.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_coe"))
        .current_dir(dir)
        .args([
            "data",
            "gen",
            "--out",
            out,
            "--operators",
            "swap_arithmetic",
        ])
        .args(["--max-ops", "1", "--per-problem", per_problem, "--problems"])
        .arg(problems)
        .status()
        .unwrap();
    assert!(status.success(), "coe data gen of the smoke family failed");
}
