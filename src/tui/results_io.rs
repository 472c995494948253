//! Reading an eval's `results.json` and the trajectories `coe eval
//! --save-episodes DIR` wrote (`DIR/episodes.jsonl`) for the results view.
//!
//! `results.json` does not say where its episodes went, so they are looked for
//! next to it: `episodes.jsonl` in the same folder, else in an `episodes/`
//! sub-folder (`coe eval --out R/results.json --save-episodes R` or `R/episodes`).
//! A bad episode line is skipped and counted, never fatal: the summary is what
//! the view is for.
use crate::tui::state::results::{LoadedResults, ResultsSummary, SavedEpisode};
use std::path::{Path, PathBuf};

/// Where the saved episodes of `results` would be, if present.
pub fn episodes_file(results: &Path) -> Option<PathBuf> {
    let dir = results.parent().unwrap_or(Path::new("."));
    [
        dir.join("episodes.jsonl"),
        dir.join("episodes").join("episodes.jsonl"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Loads a results file and its saved episodes; `Err` quotes the file and the problem.
/// The second value counts episode lines that could not be read.
pub fn load_results(path: &Path) -> Result<(LoadedResults, usize), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the results: {e}", path.display()))?;
    let summary: ResultsSummary = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a results.json: {e}", path.display()))?;
    let mut episodes = Vec::new();
    let mut bad = 0;
    let episodes_path = episodes_file(path);
    if let Some(ep) = &episodes_path {
        let text = std::fs::read_to_string(ep)
            .map_err(|e| format!("{}: cannot read the episodes: {e}", ep.display()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<SavedEpisode>(line) {
                Ok(e) => episodes.push(e),
                Err(_) => bad += 1,
            }
        }
    }
    Ok((
        LoadedResults {
            path: path.to_path_buf(),
            summary,
            episodes_path,
            episodes,
        },
        bad,
    ))
}
