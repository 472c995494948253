//! A test that cannot run must not pass (STYLE 17). Tests that need something outside the
//! repository — the default model and HumanEval that set-up fetches, tmux, root, user and
//! network namespaces — ask [`require`] first. Where `COE_REQUIRE_PREREQUISITES` or `CI` is
//! set (`.ci/run` sets the first), a missing prerequisite fails the test; elsewhere the test
//! prints why it skipped and returns.

/// Whether a test whose prerequisite is missing must fail rather than skip.
pub fn required() -> bool {
    ["COE_REQUIRE_PREREQUISITES", "CI"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty() && x != "0" && x != "false"))
}

/// True when `present`; otherwise fails the test under CI, or prints a skip notice and
/// returns false so the caller can return.
pub fn require(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    assert!(
        !required(),
        "prerequisite missing: {what} (COE_REQUIRE_PREREQUISITES or CI is set, so this test may not skip)"
    );
    eprintln!("SKIPPED: prerequisite missing: {what}");
    false
}

/// True when `tmux` runs here.
pub fn have_tmux() -> bool {
    std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}
