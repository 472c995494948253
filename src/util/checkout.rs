//! Finding files the project ships (the default model, datasets, themes, scripts) from
//! wherever `coe` runs: a neutral home, so theme and task-source code need not import the
//! model loader.
use std::path::{Path, PathBuf};

/// `rel` under the working directory, else under the first ancestor of the running
/// executable that has it (the checkout a `target/*/coe` binary was built in).
pub fn find_in_checkout(rel: &Path) -> Result<PathBuf, Vec<PathBuf>> {
    let mut searched = vec![rel.to_path_buf()];
    if rel.exists() {
        return Ok(rel.to_path_buf());
    }
    let exe = std::env::current_exe().ok();
    for dir in exe.iter().flat_map(|e| e.ancestors().skip(1)) {
        let candidate = dir.join(rel);
        if candidate.exists() {
            return Ok(candidate);
        }
        searched.push(candidate);
    }
    Err(searched)
}
