//! The model layer's error: bad configs, checkpoints that do not fit the model, bad
//! inputs, LoRA misuse and torch failures. Its own file so the blocks, cache, RoPE and
//! weight code below `llama` can return it without importing `llama`, and the LoRA
//! error beside it.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid model config: {field} = {value} ({reason})")]
    InvalidConfig {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("unsupported rope_scaling type {rope_type:?} (supported: default, linear, llama3)")]
    UnsupportedRope { rope_type: String },
    #[error("tensor {name}: checkpoint has shape {found:?} but the model expects {expected:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<i64>,
        found: Vec<i64>,
    },
    #[error("{what} lacks {} tensor(s) the model needs, first {:?}", names.len(), names.first())]
    MissingTensors {
        what: &'static str,
        names: Vec<String>,
    },
    #[error("{what} tensor {name:?} has no counterpart in the model")]
    UnexpectedTensor { what: &'static str, name: String },
    #[error("tensor {name}: {len} values cannot fill shape {shape:?}")]
    BadRawTensor {
        name: String,
        len: usize,
        shape: Vec<usize>,
    },
    #[error("{what}: expected {expected}, got {found:?}")]
    BadInput {
        what: &'static str,
        expected: String,
        found: Vec<i64>,
    },
    #[error("the LoRA adapters are merged into the base weights; unmerge them first")]
    LoraMerged,
    #[error("the model was built without LoRA adapters")]
    NoLora,
    #[error(transparent)]
    Lora(#[from] LoraError),
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

/// A LoRA configuration that cannot build adapters.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LoraError {
    #[error("LoRA rank r must be at least 1, got {0}")]
    ZeroRank(usize),
    #[error("LoRA alpha must be a positive number, got {0}")]
    BadAlpha(f64),
    #[error("LoRA dropout must be in [0, 1), got {0}")]
    BadDropout(f64),
    #[error(
        "LoRA target {name:?} is not a Llama linear layer (expected \"all-linear\" or some of {known})"
    )]
    UnknownTarget { name: String, known: String },
    #[error("LoRA needs at least one target module")]
    NoTargets,
}
