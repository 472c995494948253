//! The sandbox pool as the episode's test runner.
use super::episode::Runner;
use crate::protocol::run::{RunReport, RunRequest};
use crate::sandbox::SandboxPool;

impl Runner for SandboxPool {
    fn run(&self, req: &RunRequest) -> Result<RunReport, String> {
        SandboxPool::run(self, req).map_err(|e| e.to_string())
    }
}
