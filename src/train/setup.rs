//! What SFT and RL jobs share at start: the model with its adapters (fresh, from an initial
//! adapter, or from the run's latest checkpoint on `--resume`), the optimizer state, the
//! held-out tasks and the `run_started` event.
use super::error::{TrainError, TrainResult, ensure};
use std::path::{Path, PathBuf};

use super::JobEnv;
use super::adamw::AdamW;
use super::checkpoint::{self, CheckpointState};
use crate::config::{Config, LoraSection, ReferencePolicy};
use crate::data::loaders::load_tasks;
use crate::eval::results::build_commit;
use crate::model::loader::{kind_of, load_model, parse_device, set_threads};
use crate::model::lora::LoraConfig;
use crate::model::safetensors_io::{load_adapter, read_adapter_config};
use crate::policy::{ModelPolicy, ModelPolicyConfig};
use crate::protocol::{EVENTS_SCHEMA, JobKind, RunEvent, RunStarted};
use crate::task::Task;

/// A model and optimizer ready to train.
pub struct Prepared {
    pub policy: ModelPolicy,
    pub opt: AdamW,
    /// Optimizer steps already done (non-zero when resuming).
    pub start_step: u64,
    /// The adapter weights the run started from (its initial adapter, or the fresh
    /// initialisation), in `lora_parameters` order, whether or not the run was resumed: RL's
    /// reference policy with `rl.reference: start`; empty for every other job.
    pub start_adapter: Vec<tch::Tensor>,
}

/// The LoRA shape of a config section.
pub fn lora_of(s: &LoraSection) -> LoraConfig {
    LoraConfig {
        r: s.rank,
        alpha: s.alpha,
        dropout: s.dropout,
        targets: s.targets.clone(),
    }
}

/// An adapter directory from what a user may name: an adapter directory, a checkpoint
/// directory (the same layout), or a run directory (its final `adapter/`, else its latest
/// checkpoint).
pub fn resolve_adapter(spec: &str) -> TrainResult<PathBuf> {
    let path = PathBuf::from(spec);
    let has_adapter = |p: &Path| {
        p.join(crate::model::safetensors_io::ADAPTER_CONFIG)
            .is_file()
    };
    if has_adapter(&path) {
        return Ok(path);
    }
    if has_adapter(&path.join("adapter")) {
        return Ok(path.join("adapter"));
    }
    if let Some((_, latest)) = checkpoint::list(&path.join("checkpoints"))?.pop() {
        return Ok(latest);
    }
    Err(TrainError::Invalid(format!(
        "adapter {spec:?}: not an adapter directory (no adapter_config.json), nor a run directory with adapter/ or checkpoints/"
    )))
}

/// Loads the model for a job of `kind`: adapters of shape `lora` (or the initial adapter's
/// shape), the latest checkpoint when resuming, and emits `run_started`.
pub fn prepare(
    cfg: &Config,
    kind: JobKind,
    lora: &LoraConfig,
    init_adapter: Option<&Path>,
    weight_decay: f64,
    total_steps: u64,
    env: &mut JobEnv<'_>,
) -> TrainResult<Prepared> {
    let device = parse_device(&cfg.model.device)?;
    set_threads(cfg.model.threads);
    let lora = match init_adapter {
        Some(dir) => read_adapter_config(dir)?,
        None => lora.clone(),
    };
    // Fresh adapters draw LoRA A from torch's generator: seed it so a run is reproducible.
    tch::manual_seed(super::step_seed(cfg.seed, 0, 0) as i64);
    let mut loaded = load_model(
        &cfg.model.path,
        device,
        kind_of(cfg.model.dtype),
        Some(&lora),
    )?;
    if let Some(dir) = init_adapter {
        load_adapter(&mut loaded.model, dir)?;
        loaded.adapter = Some(dir.display().to_string());
    }
    // Only RL with `reference: start` needs it; taken before a resume loads newer weights.
    let start_adapter: Vec<tch::Tensor> =
        if kind == JobKind::Rl && cfg.rl.reference == ReferencePolicy::Start {
            loaded
                .model
                .lora_parameters()
                .map(|(_, t)| t.detach().copy())
                .collect()
        } else {
            Vec::new()
        };
    let mut opt = AdamW::new(weight_decay);
    let ck_dir = env.run.checkpoints();
    let swept = checkpoint::sweep_partial(&ck_dir)?;
    if swept > 0 {
        env.emit.log(
            "warn",
            format!("removed {swept} incomplete checkpoint(s) left by an interrupted write"),
        )?;
    }
    let mut start_step = 0;
    if env.resume {
        let ck = checkpoint::load_latest(&ck_dir)?;
        let want = kind_name(kind);
        ensure!(
            ck.state.kind == want,
            "checkpoint {} is from a {} run, not {want}",
            ck.path.display(),
            ck.state.kind
        );
        load_adapter(&mut loaded.model, &ck.path).map_err(|e| {
            TrainError::context(format!("loading the adapter of {}", ck.path.display()), e)
        })?;
        let opt_steps = ck.state.optimizer_steps.unwrap_or(ck.state.step);
        opt.load_state(opt_steps, ck.optimizer, loaded.model.lora_parameters())
            .map_err(|e| {
                let file = ck.path.join(checkpoint::OPTIMIZER_FILE);
                TrainError::context(file.display().to_string(), e)
            })?;
        start_step = ck.state.step;
        env.emit.log(
            "info",
            format!("resumed from {} (step {start_step})", ck.path.display()),
        )?;
    }
    let started = RunStarted {
        schema: EVENTS_SCHEMA,
        job: env.emit.job(),
        run: cfg.name.clone(),
        kind,
        start_step,
        total_steps,
        model: loaded.path.clone(),
        model_sha256: loaded.sha256.clone(),
        device: cfg.model.device.clone(),
        seed: cfg.seed,
        commit: build_commit().to_string(),
        config: cfg.to_ron(),
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
    };
    env.emit.run(RunEvent::RunStarted(started))?;
    let settings = ModelPolicyConfig::from_config(cfg, 1.0, 1.0);
    Ok(Prepared {
        policy: ModelPolicy::new(loaded, settings)?,
        opt,
        start_step,
        start_adapter,
    })
}

pub fn kind_name(kind: JobKind) -> &'static str {
    match kind {
        JobKind::Sft => "sft",
        JobKind::Rl => "rl",
        JobKind::Eval => "eval",
    }
}

/// The first `limit` tasks of an optional file.
pub fn held_out(path: Option<&str>, limit: usize) -> TrainResult<Vec<Task>> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let mut tasks = load_tasks(Path::new(path))?;
    tasks.truncate(limit);
    Ok(tasks)
}

/// Writes a checkpoint of the job at `step` and reports it.
pub fn save_checkpoint(
    cfg: &Config,
    kind: JobKind,
    step: u64,
    keep_last: usize,
    prepared: &Prepared,
    env: &mut JobEnv<'_>,
) -> TrainResult<PathBuf> {
    let loaded = prepared.policy.loaded();
    let state = CheckpointState {
        schema: 1,
        kind: kind_name(kind).into(),
        step,
        seed: cfg.seed,
        config: cfg.to_ron(),
        files: Default::default(),
        optimizer_steps: Some(prepared.opt.steps),
    };
    let path = checkpoint::write(
        &env.run.checkpoints(),
        &loaded.model,
        &loaded.path,
        &prepared.opt,
        state,
        keep_last,
    )?;
    let job = env.emit.job();
    env.emit.run(RunEvent::Checkpoint {
        job,
        step,
        path: path.display().to_string(),
    })?;
    Ok(path)
}

/// Writes the finished run's adapter to `runs/<name>/adapter/` (whole or not at all).
pub fn save_final_adapter(prepared: &Prepared, env: &JobEnv<'_>) -> TrainResult<PathBuf> {
    let loaded = prepared.policy.loaded();
    let dest = env.run.adapter();
    let tmp = env.run.root.join(".adapter.tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    crate::model::safetensors_io::save_adapter(&loaded.model, &tmp, &loaded.path)?;
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    std::fs::rename(&tmp, &dest)?;
    Ok(dest)
}
