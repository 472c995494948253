//! Checkpoints (DESIGN §5): the adapter (PEFT layout, usable directly as `--adapter`), the
//! optimizer's moments and a `state.json` with the step, seed, config and a sha256 of every
//! other file.
//!
//! A checkpoint is written into a hidden temporary directory and renamed into place only
//! when complete, so `step-<n>` directories are whole by construction; an interrupted write
//! (kill -9, disk full) leaves a `.step-<n>.tmp` that is never taken as the latest and is
//! swept on the next start. Loading re-hashes every file, so a checkpoint damaged after the
//! fact is refused with the file named rather than trained on.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::Tensor;

use super::adamw::AdamW;
use crate::model::llama::Llama;
use crate::model::safetensors_io::{
    ADAPTER_CONFIG, ADAPTER_WEIGHTS, SafetensorsError, read_safetensors, save_adapter,
    write_safetensors,
};

pub const STATE_FILE: &str = "state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const PREFIX: &str = "step-";

/// What `state.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub schema: u32,
    /// `sft` or `rl`.
    pub kind: String,
    /// Optimizer steps completed; the run resumes at this step.
    pub step: u64,
    /// The run's seed; every random stream of step `n` is derived from (seed, n).
    pub seed: u64,
    /// The configuration of the run, as RON.
    pub config: String,
    /// sha256 of each other file in the directory.
    pub files: std::collections::BTreeMap<String, String>,
    /// Updates the optimizer has made (its bias correction counts them). It trails `step`
    /// when some steps had nothing to learn from (an RL batch with no advantage); absent in
    /// older checkpoints, where it equals `step`.
    #[serde(default)]
    pub optimizer_steps: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Safetensors(#[from] SafetensorsError),
    #[error("no checkpoint in {0}; start the run without --resume")]
    Missing(PathBuf),
    #[error(
        "checkpoint {path} is corrupt: {reason}; delete that directory to resume from the one before it"
    )]
    Corrupt { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directory name of step `n`.
pub fn dir_name(step: u64) -> String {
    format!("{PREFIX}{step:08}")
}

/// Completed checkpoints in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(step) = name
            .strip_prefix(PREFIX)
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((step, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Removes temporary directories left by interrupted writes.
pub fn sweep_partial(dir: &Path) -> Result<usize, CheckpointError> {
    let mut removed = 0;
    if !dir.is_dir() {
        return Ok(0);
    }
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            std::fs::remove_dir_all(entry.path()).map_err(io(&entry.path()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Writes the checkpoint of `step` into `dir` and deletes all but the newest `keep_last`.
pub fn write(
    dir: &Path,
    model: &Llama,
    base_model: &str,
    opt: &AdamW,
    mut state: CheckpointState,
    keep_last: usize,
) -> Result<PathBuf, CheckpointError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = dir_name(state.step);
    let tmp = dir.join(format!(".{name}.tmp"));
    let dest = dir.join(&name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    let result = (|| {
        save_adapter(model, &tmp, base_model)?;
        write_safetensors(&tmp.join(OPTIMIZER_FILE), &opt.state_tensors())?;
        for file in [ADAPTER_WEIGHTS, ADAPTER_CONFIG, OPTIMIZER_FILE] {
            state
                .files
                .insert(file.to_string(), sha256(&tmp.join(file))?);
        }
        let json =
            serde_json::to_vec_pretty(&state).map_err(|e| io(&tmp)(std::io::Error::other(e)))?;
        let path = tmp.join(STATE_FILE);
        crate::util::write_atomic(&path, &json).map_err(io(&path))?;
        sync_dir(&tmp)?;
        if dest.exists() {
            // Rewriting a step (a resumed run reached it again): replace it whole.
            std::fs::remove_dir_all(&dest).map_err(io(&dest))?;
        }
        std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result?;
    let all = list(dir)?;
    let excess = all.len().saturating_sub(keep_last.max(1));
    for (_, old) in all.into_iter().take(excess) {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(dest)
}

/// A checkpoint read back and verified.
#[derive(Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub state: CheckpointState,
    pub optimizer: Vec<(String, Tensor)>,
}

/// The newest checkpoint in `dir`, verified; `Missing` when there is none.
pub fn load_latest(dir: &Path) -> Result<Loaded, CheckpointError> {
    let (_, path) = list(dir)?
        .pop()
        .ok_or_else(|| CheckpointError::Missing(dir.to_path_buf()))?;
    load(&path)
}

/// Reads and verifies one checkpoint directory (the adapter is loaded by the caller from
/// `path`, after this check).
pub fn load(path: &Path) -> Result<Loaded, CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let state_path = path.join(STATE_FILE);
    let bytes = std::fs::read(&state_path).map_err(|e| corrupt(format!("{STATE_FILE}: {e}")))?;
    let state: CheckpointState =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("{STATE_FILE}: {e}")))?;
    for file in [ADAPTER_WEIGHTS, ADAPTER_CONFIG, OPTIMIZER_FILE] {
        let want = state
            .files
            .get(file)
            .ok_or_else(|| corrupt(format!("{STATE_FILE} lists no sha256 for {file}")))?;
        let got = sha256(&path.join(file)).map_err(|e| corrupt(e.to_string()))?;
        if &got != want {
            return Err(corrupt(format!("{file} does not match its sha256")));
        }
    }
    let optimizer = read_safetensors(&path.join(OPTIMIZER_FILE))?;
    Ok(Loaded {
        path: path.to_path_buf(),
        state,
        optimizer,
    })
}

fn sha256(path: &Path) -> Result<String, CheckpointError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(dir))
}
