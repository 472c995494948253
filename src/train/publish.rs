//! RL with remote sampling (DESIGN §6): training stays on the local model, rollouts come
//! from OpenAI-compatible servers. Before each step's rollout the current adapter is written
//! in PEFT format to a directory the servers can read (`model.remote.adapter_dir`, else
//! `runs/<name>/served/`) and published with `/v1/load_lora_adapter` under a new name per
//! step (`<run>-step-<n>`); the rollout samples from that name and the previous adapter is
//! unloaded. A server running other weights is caught by the update's check that sampled
//! and trained log-probabilities agree.
use std::path::PathBuf;

use super::error::{TrainError, TrainResult};
use crate::config::{Config, RemoteSection};
use crate::model::safetensors_io::save_adapter;
use crate::policy::{ModelPolicy, ModelPolicyConfig, Policy, RemotePolicy};

pub struct Publisher {
    pub remote: RemotePolicy,
    dir: PathBuf,
    run: String,
    last_dir: Option<PathBuf>,
    /// Adapters published so far.
    pub published: u64,
}

impl Publisher {
    /// A remote policy sampling like `local` (same tokenizer, chat format and context).
    pub fn new(
        cfg: &Config,
        section: &RemoteSection,
        run_root: &std::path::Path,
        local: &ModelPolicy,
        settings: &ModelPolicyConfig,
    ) -> TrainResult<Self> {
        let loaded = local.loaded();
        let remote = RemotePolicy::new(
            section,
            loaded.tokenizer.clone(),
            loaded.chat.clone(),
            settings,
        )?;
        let dir = section
            .adapter_dir
            .as_ref()
            .map_or_else(|| run_root.join("served"), PathBuf::from);
        Ok(Publisher {
            remote,
            dir,
            run: cfg.name.clone(),
            last_dir: None,
            published: 0,
        })
    }

    /// Writes the local adapter as it is after `step` updates and makes the servers sample
    /// from it; returns the name it was published under.
    pub fn publish(&mut self, local: &ModelPolicy, step: u64) -> TrainResult<String> {
        let name = format!("{}-step-{step}", self.run);
        let dir = self.dir.join(&name);
        let loaded = local.loaded();
        save_adapter(&loaded.model, &dir, &loaded.path)?;
        let abs = std::fs::canonicalize(&dir)?;
        self.remote
            .publish_adapter(&name, &abs.to_string_lossy())
            .map_err(|e| TrainError::Invalid(format!("publishing the step-{step} adapter: {e}")))?;
        // The servers hold the previous adapter in memory until unloaded; its files can go.
        if let Some(old) = self.last_dir.replace(dir) {
            let _ = std::fs::remove_dir_all(old);
        }
        self.published += 1;
        Ok(name)
    }

    pub fn policy(&mut self) -> &mut dyn Policy {
        &mut self.remote
    }
}
