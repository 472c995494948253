//! The sandbox pool as the episode's test runner.
use super::episode::Runner;
use crate::sandbox::SandboxPool;
use crate::sandbox::types::{RunReport, RunRequest};

impl Runner for SandboxPool {
    fn run(&self, req: &RunRequest) -> Result<RunReport, String> {
        SandboxPool::run(self, req).map_err(|e| e.to_string())
    }
}
