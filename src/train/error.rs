//! The training layer's error: what stops an SFT or RL job. Settings and data that cannot
//! train are `Invalid`, with a message that quotes the value; everything else wraps the
//! error of the layer it came from, so the message a user reads is that layer's.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting, data file or state that cannot train, said for the user.
    #[error("{0}")]
    Invalid(String),
    /// What was being done when `source` failed.
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<TrainError>,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Model(#[from] crate::model::error::ModelError),
    #[error(transparent)]
    Load(#[from] crate::model::loader::LoadError),
    #[error(transparent)]
    Tokenizer(#[from] crate::model::tokenizer::TokenizerError),
    #[error(transparent)]
    Safetensors(#[from] crate::model::safetensors_io::SafetensorsError),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    Checkpoint(#[from] super::checkpoint::CheckpointError),
    #[error(transparent)]
    Data(#[from] crate::data::jsonl::JsonlError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    Episode(#[from] crate::env::episode::EpisodeError),
    #[error(transparent)]
    Rollout(#[from] crate::eval::rollout::RolloutError),
    #[error(transparent)]
    Sampling(#[from] crate::policy::model::ModelPolicyError),
    #[error(transparent)]
    Optimizer(#[from] super::adamw::AdamError),
    #[error(transparent)]
    Examples(#[from] super::examples::ExampleError),
    #[error(transparent)]
    RunDir(#[from] super::run_dir::RunDirError),
    /// Writing events or other files whose path the message already names.
    #[error(transparent)]
    Os(#[from] std::io::Error),
}

pub type TrainResult<T> = Result<T, TrainError>;

impl TrainError {
    /// `source`, said to have happened while doing `context`.
    pub fn context(context: impl Into<String>, source: impl Into<TrainError>) -> TrainError {
        TrainError::Context {
            context: context.into(),
            source: Box::new(source.into()),
        }
    }
}

/// `ensure!(cond, "format", args…)`: returns `TrainError::Invalid` with the message unless
/// `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        let holds: bool = $cond;
        if !holds {
            return Err($crate::train::error::TrainError::Invalid(format!($($fmt)+)));
        }
    };
}
pub(crate) use ensure;
