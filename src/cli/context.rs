//! What most subcommands share: the resolved config (file + flag overrides) and
//! a sandbox pool built from it.
use crate::config::{Config, ModelSection};
use crate::sandbox::SandboxPool;
use anyhow::Context as _;
use std::path::{Path, PathBuf};

pub struct Ctx {
    pub config: Config,
    pub origin: String,
}

impl Ctx {
    /// Loads `--config` (or the default) and applies `--device`/`--threads`.
    pub fn load(
        config: Option<&Path>,
        device: &Option<String>,
        threads: Option<usize>,
    ) -> anyhow::Result<Ctx> {
        let (mut config, origin) = super::workbench::load_config(config)?;
        if let Some(d) = device {
            config.model.device = d.clone();
        }
        if let Some(t) = threads {
            config.model.threads = t;
        }
        let problems = config.validate();
        if let Some(p) = problems.first() {
            anyhow::bail!("{origin}: {} = {}: {}", p.field, p.value, p.message);
        }
        Ok(Ctx { config, origin })
    }

    /// Starts the sandbox workers.
    pub fn sandbox(&self) -> anyhow::Result<SandboxPool> {
        SandboxPool::new(&self.config.sandbox).context("cannot start the Python sandbox")
    }

    /// Threads for parallel episode steps: one per sandbox worker.
    pub fn step_threads(&self, pool: &SandboxPool) -> usize {
        pool.workers().max(1)
    }

    /// The config's model section with `model` as its path, and `--adapter` resolved: an
    /// adapter directory, or a run or checkpoint directory holding one.
    pub fn model_and_adapter(
        &self,
        model: &str,
        adapter: Option<&Path>,
    ) -> anyhow::Result<(ModelSection, Option<PathBuf>)> {
        let section = ModelSection {
            path: model.to_string(),
            ..self.config.model.clone()
        };
        let adapter = adapter
            .map(|a| crate::train::setup::resolve_adapter(&a.to_string_lossy()))
            .transpose()?;
        Ok((section, adapter))
    }
}
