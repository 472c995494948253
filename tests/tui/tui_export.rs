//! `P` in monitor mode writes the plots pane's chart as SVG next to the first
//! followed run: update asks for it (no I/O there), the effect runner draws and
//! writes it, and a directory it cannot write to is a log line naming the path.
use crate::tui_support::*;
use coe::tui::effects::EffectRunner;
use coe::tui::msg::Effect;
use coe::tui::state::{AppState, Level, Mode};
use coe::tui::update::monitor::add_run;
use std::path::{Path, PathBuf};

/// Monitor mode following `coe-sft` in `first` and `cot-sft` in `second`.
fn two_runs(first: &Path, second: &Path) -> AppState {
    let mut s = state();
    s.mode = Mode::Monitor;
    let a = add_run(&mut s, first.to_path_buf()).unwrap();
    let b = add_run(&mut s, second.to_path_buf()).unwrap();
    ingest_run(&mut s, a, named_run("coe-sft", 20, 0.0));
    ingest_run(&mut s, b, named_run("cot-sft", 20, 0.5));
    s
}

/// Presses `P` and carries out what it asks for; returns where the plot was to go.
fn export(s: &mut AppState) -> PathBuf {
    let fx = press(s, &["P"]);
    let [Effect::ExportPlot(path)] = fx.as_slice() else {
        panic!("{fx:?}")
    };
    let path = path.clone();
    let mut rt = EffectRunner::new();
    for e in fx {
        assert!(rt.perform(s, e).is_none());
    }
    path
}

#[test]
fn p_writes_every_followed_runs_line_as_svg_next_to_the_first_run() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("coe-sft"), root.path().join("cot-sft"));
    std::fs::create_dir_all(&a).unwrap();
    let mut s = two_runs(&a, &b);
    let path = export(&mut s);
    assert_eq!(path, a.join("plot-loss-step.svg"));
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    for name in ["coe-sft", "cot-sft", "loss vs step"] {
        assert!(svg.contains(name), "{name} missing from the SVG");
    }
    let said = format!("plot written to {}", path.display());
    assert!(
        s.log.iter().any(|l| l.text == said),
        "{:?}",
        s.log.iter().last()
    );

    // The file is named after the metric and the x-axis shown.
    press(&mut s, &["p", "p", "x"]);
    assert_eq!(export(&mut s), a.join("plot-solve-rate-tokens.svg"));
}

#[test]
fn a_lone_runs_train_line_is_named_after_the_run() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("coe-sft");
    std::fs::create_dir_all(&dir).unwrap();
    let mut s = state();
    s.mode = Mode::Monitor;
    let id = add_run(&mut s, dir.clone()).unwrap();
    ingest_run(&mut s, id, named_run("coe-sft", 5, 0.0));
    let svg = std::fs::read_to_string(export(&mut s)).unwrap();
    assert!(svg.contains("coe-sft train"));
}

#[test]
fn a_directory_that_cannot_be_written_is_a_log_line_naming_the_path() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("no-such-run");
    let mut s = two_runs(&missing, &root.path().join("other"));
    let path = export(&mut s);
    assert!(!path.exists());
    let err = s
        .log
        .iter()
        .find(|l| l.level == Level::Error)
        .expect("an error line");
    assert!(
        err.text.contains(&path.display().to_string()),
        "{}",
        err.text
    );

    // With no points yet there is nothing to draw: said, not written.
    let mut s = state();
    s.mode = Mode::Monitor;
    add_run(&mut s, root.path().to_path_buf()).unwrap();
    let path = export(&mut s);
    assert!(!path.exists());
    assert!(s.log.iter().any(|l| l.text.contains("no loss points")));
    // And with no run followed, P says so and asks for nothing.
    let mut s = state();
    s.mode = Mode::Monitor;
    assert!(press(&mut s, &["P"]).is_empty());
}
