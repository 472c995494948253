//! The sandbox: runs untrusted, model-written Python against a task's tests and
//! reports every test separately (DESIGN §2.4).
//!
//! A pool of warm Python fork-servers (`worker/*.py`) sits behind [`SandboxPool`]:
//! namespaces, mounts and imports are paid once per worker, so a run costs one
//! `fork` plus the tests. The Rust side only speaks JSON lines to the workers,
//! enforces an outer deadline, and replaces a worker that dies or hangs. Its settings
//! (`crate::config::sandbox`) and the run request/report types (`crate::protocol::run`)
//! sit below it, since the config and the event stream carry them too.
mod error;
mod line_reader;
mod pool;
mod protection;
mod protocol;
mod worker;

pub use crate::config::sandbox::{Isolation, SandboxConfig, validate_limits};
pub use error::SandboxError;
pub use pool::SandboxPool;
pub use protection::Protection;
