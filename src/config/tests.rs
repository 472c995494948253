//! Every shipped config parses; each failure-mode fixture gives its exact message
//! (golden files `tests/fixtures/config/<name>.expected`; `UPDATE_GOLDEN=1` rewrites them).
use super::*;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_shipped_config_is_valid() {
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ron") {
            Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 1);
}

#[test]
fn embedded_default_matches_file_and_round_trips() {
    let cfg = Config::embedded_default();
    assert_eq!(
        cfg,
        Config::load(&root().join("configs/default.ron")).unwrap()
    );
    let again = Config::from_ron(&cfg.to_ron(), "round-trip").unwrap();
    assert_eq!(cfg, again);
}

#[test]
fn an_empty_file_gives_all_defaults() {
    assert_eq!(Config::from_ron("()", "x").unwrap(), Config::default());
}

#[test]
fn failure_fixtures_give_their_exact_messages() {
    let dir = root().join("tests/fixtures/config");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "ron") {
            continue;
        }
        let rel = Path::new("tests/fixtures/config").join(path.file_name().unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        let err = Config::from_ron(&text, &rel.display().to_string())
            .expect_err(&format!("{} should be rejected", rel.display()));
        let got = format!("{err}\n");
        let golden = path.with_extension("expected");
        if update {
            std::fs::write(&golden, &got).unwrap();
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_GOLDEN=1", golden.display()));
        assert_eq!(got, want, "{}", rel.display());
        assert!(
            err.line().is_some(),
            "{}: the error names no line",
            rel.display()
        );
        n += 1;
    }
    assert!(n >= 5);
}

#[test]
fn decode_and_eval_batches_must_be_positive() {
    let err = Config::from_ron(
        "(model: (decode_batch_tokens: 0), eval: (batch: 0))",
        "batches.ron",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("model.decode_batch_tokens"), "{err}");
    assert!(err.contains("eval.batch"), "{err}");
    let cfg = Config::from_ron(
        "(model: (decode_batch_tokens: 262144), eval: (batch: 256))",
        "x",
    )
    .unwrap();
    assert_eq!(
        (cfg.model.decode_batch_tokens, cfg.eval.batch),
        (262_144, 256)
    );
}
