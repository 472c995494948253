//! The sandbox: runs untrusted, model-written Python against a task's tests and
//! reports every test separately (DESIGN §2.4).
//!
//! A pool of warm Python fork-servers (`worker/*.py`) sits behind [`SandboxPool`]:
//! namespaces, mounts and imports are paid once per worker, so a run costs one
//! `fork` plus the tests. The Rust side only speaks JSON lines to the workers,
//! enforces an outer deadline, and replaces a worker that dies or hangs.
pub mod types;

mod config;
mod error;
mod line_reader;
mod pool;
mod protection;
mod protocol;
mod worker;

pub use config::{Isolation, SandboxConfig, validate_limits};
pub use error::SandboxError;
pub use pool::SandboxPool;
pub use protection::Protection;
