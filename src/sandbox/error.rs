//! Sandbox errors. A failing test is never an error (it is data in the report);
//! these are the cases where the sandbox itself could not do its job.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SandboxError {
    #[error(transparent)]
    Setting(#[from] crate::config::sandbox::SandboxSettingError),
    #[error(
        "cannot start the sandbox's Python `{python}`: {source} (install Python 3 or set sandbox.python)"
    )]
    Spawn {
        python: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{python}` is not a usable Python (3.9 or newer needed): {detail}")]
    Interpreter { python: String, detail: String },
    #[error("sandbox worker {slot} could not start: {message}")]
    Setup { slot: usize, message: String },
    /// A worker died or hung on the same run twice; the caller marks the turn `infra_error`.
    #[error("sandbox infrastructure failure: {0}")]
    Infra(String),
}
