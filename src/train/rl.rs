//! `coe train rl`: the paper's GRPO variant (DESIGN §5). Each step samples G episodes for each
//! of a batch of tasks from the current policy (all episodes decoded together; their tests run
//! in the sandbox pool), computes per-turn returns and group-normalised advantages, and takes
//! `ppo_epochs` clipped-surrogate steps with a KL penalty to the adapter-disabled reference,
//! on the command tokens only. Only the adapters change.
//!
//! Each turn is trained on the prompt the policy saw and the very ids it sampled: the prompt is
//! rebuilt by the same function, and before every update the ids spliced into the rebuilt
//! prompts and the replies are checked against the sampled ones (`rl_samples`, which also
//! merges an episode's turns into one pass over its conversation). Infra-error episodes, and
//! tasks already solved before any edit, are left out of the update.
use super::error::{TrainError, TrainResult, ensure};
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::adamw::{clip_grad_norm, zero_grads};
use super::evaluate::{run_logged, run_logged_with, summarise};
use super::grpo::loss_sums;
use super::periodic::Periodic;
use super::publish::Publisher;
pub use super::rl_samples::{TurnSample, turn_samples};
use super::setup::{self, held_out, lora_of, resolve_adapter};
use super::tokens::target_logprobs;
use super::{JobEnv, JobOutcome, step_seed};
use crate::config::{Config, ReferencePolicy};
use crate::data::loaders::load_tasks;
use crate::model::llama::Llama;
use crate::model::sampling::SamplingParams;
use crate::policy::ModelPolicyConfig;
use crate::protocol::{JobKind, Metric, RunEvent};
use crate::util::batches::micro_batches;

const PURPOSE_TASKS: u64 = 11;
const PURPOSE_SAMPLING: u64 = 12;

/// Runs (or resumes) an RL job.
pub fn run(cfg: &Config, env: &mut JobEnv<'_>) -> TrainResult<JobOutcome> {
    let r = &cfg.rl;
    let tasks_file = r.tasks.as_deref().ok_or_else(|| {
        TrainError::Invalid("rl.tasks is not set: name a task file to roll out on".into())
    })?;
    let tasks = load_tasks(std::path::Path::new(tasks_file))?;
    ensure!(!tasks.is_empty(), "{tasks_file}: the file holds no tasks");
    let init = r.init_adapter.as_deref().map(resolve_adapter).transpose()?;
    let total = r.steps as u64;
    let mut prep = setup::prepare(
        cfg,
        JobKind::Rl,
        &lora_of(&cfg.sft.lora),
        init.as_deref(),
        0.0,
        total,
        env,
    )?;
    let valid = held_out(r.valid.as_deref(), r.eval_tasks)?;
    let sampling = SamplingParams::with_temperature(r.temperature);
    prep.policy.set_sampling(sampling.clone())?;
    // With `model.remote`, rollouts are sampled by the servers from each step's adapter.
    let mut remote = match &cfg.model.remote {
        Some(section) => {
            let settings = ModelPolicyConfig::from_config(cfg, r.temperature, 1.0);
            let mut p = Publisher::new(cfg, section, &env.run.root, &prep.policy, &settings)?;
            p.remote.set_sampling(&sampling);
            Some(p)
        }
        None => None,
    };
    let periodic = Periodic {
        kind: JobKind::Rl,
        total,
        eval_every: r.eval_every,
        checkpoint_every: r.checkpoint_every,
        keep_last: r.keep_last,
        batch_stride: 2,
    };
    let started = Instant::now();
    let job = env.emit.job();
    let mut step = prep.start_step;
    let mut last_eval = None;
    while step < total {
        if env.cancelled() {
            return periodic.cancelled(cfg, step, &prep, env, last_eval);
        }
        let t0 = Instant::now();
        let batch = pick_tasks(tasks.len(), r.tasks_per_step, cfg.seed, step);
        let batch: Vec<_> = batch
            .iter()
            .filter_map(|&i| tasks.get(i).cloned())
            .collect();
        let seed = step_seed(cfg.seed, step, PURPOSE_SAMPLING);
        let phase = ("rollout", 2 * step + 1);
        let results = match remote.as_mut() {
            Some(publisher) => {
                let name = publisher.publish(&prep.policy, step)?;
                env.emit
                    .log("info", format!("rollout: sampling from adapter {name}"))?;
                publisher.remote.reseed(seed);
                let policy = publisher.policy();
                run_logged_with(&batch, r.group_size, policy, env.pool, cfg, env.emit, phase)?
            }
            None => {
                prep.policy.reseed(seed);
                let policy = &mut prep.policy;
                run_logged(&batch, r.group_size, policy, env.pool, cfg, env.emit, phase)?
            }
        };
        let rollout = summarise(&results);
        let samples = turn_samples(
            &prep.policy,
            &results,
            r.group_size,
            r.advantage,
            r.whole_episode,
        )?;
        let (loss, kl, tokens, grad_norm) = update(&mut prep, &samples, cfg)?;
        step += 1;
        env.emit.run(RunEvent::Metric(Metric {
            job,
            step,
            phase: "train".into(),
            loss: Some(loss),
            lr: Some(r.lr),
            grad_norm: Some(grad_norm),
            reward: Some(rollout.mean_return),
            solve_rate: Some(rollout.solve_rate),
            kl: Some(kl),
            tokens_per_s: Some(tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9)),
            // Not counted across a resume; the workbench estimates from tokens_per_s.
            tokens: None,
            elapsed_s: Some(started.elapsed().as_secs_f64()),
        }))?;
        periodic.after_step(cfg, step, &valid, &mut prep, env, &mut last_eval)?;
    }
    periodic.finished(step, &prep, env, last_eval)
}

/// The tasks of a step: consecutive slices of a seeded permutation per pass over the file.
pub fn pick_tasks(n: usize, per_step: usize, seed: u64, step: u64) -> Vec<usize> {
    let mut out = Vec::with_capacity(per_step);
    let n = n.max(1);
    for k in (step as usize * per_step)..((step as usize + 1) * per_step) {
        let pass = (k / n) as u64;
        let mut perm: Vec<usize> = (0..n).collect();
        perm.shuffle(&mut ChaCha8Rng::seed_from_u64(step_seed(
            seed,
            pass,
            PURPOSE_TASKS,
        )));
        out.push(perm.get(k % n).copied().unwrap_or(0));
    }
    out
}

/// The policy-gradient update; returns (mean token loss, mean token KL, tokens, grad norm).
/// Largest tolerated gap between a sampled token's log-probability and the same token scored
/// by the training pass before any update (f32 noise is ~1e-5; bf16 ~1e-2).
pub const MAX_DRIFT: f64 = 0.1;

fn update(
    prep: &mut setup::Prepared,
    samples: &[TurnSample],
    cfg: &Config,
) -> TrainResult<(f64, f64, usize, f64)> {
    let r = &cfg.rl;
    let n_tokens: usize = samples.iter().map(|s| s.old.len()).sum();
    let lens: Vec<usize> = samples.iter().map(|s| s.seq.ids.len()).collect();
    let tokens: usize = lens.iter().sum();
    if n_tokens == 0 {
        return Ok((0.0, 0.0, tokens, 0.0));
    }
    let batches = micro_batches(&lens, 64, r.max_batch_tokens);
    let opt = &mut prep.opt;
    let model = &mut prep.policy.loaded_mut().model;
    model.set_training(false); // no dropout: the ratio must compare like with like
    // The reference policy's log-probabilities: the starting adapter, or adapters off.
    let score_all = |model: &mut Llama| -> TrainResult<Vec<Tensor>> {
        let _guard = tch::no_grad_guard();
        batches
            .iter()
            .map(|range| {
                let seqs: Vec<_> = samples
                    .get(range.clone())
                    .unwrap_or_default()
                    .iter()
                    .map(|s| &s.seq)
                    .collect();
                Ok(target_logprobs(model, &seqs)?)
            })
            .collect()
    };
    let reference = match r.reference {
        ReferencePolicy::Start => with_adapter_weights(model, &prep.start_adapter, score_all)?,
        ReferencePolicy::Base => {
            model.set_lora_enabled(false)?;
            let res = score_all(model);
            model.set_lora_enabled(true)?;
            res?
        }
    };
    let (mut loss_total, mut kl_total, mut grad_norm, mut drift) = (0.0, 0.0, 0.0, 0.0f64);
    for epoch in 0..r.ppo_epochs {
        let (mut loss_epoch, mut kl_epoch) = (0.0, 0.0);
        for (range, refr) in batches.iter().zip(&reference) {
            let part = samples.get(range.clone()).unwrap_or_default();
            let seqs: Vec<_> = part.iter().map(|s| &s.seq).collect();
            let new = target_logprobs(model, &seqs)?;
            let old: Vec<f32> = part.iter().flat_map(|s| s.old.iter().copied()).collect();
            let adv: Vec<f32> = part
                .iter()
                .flat_map(|s| s.advantages.iter().copied())
                .collect();
            ensure!(
                new.size() == [old.len() as i64],
                "the update scores {:?} tokens but {} were sampled: the trained ids are not the sampled ids",
                new.size(),
                old.len()
            );
            let device = new.device();
            let old = Tensor::from_slice(&old).to_device(device);
            let adv = Tensor::from_slice(&adv).to_device(device);
            if epoch == 0 {
                // Before any update the policy is the one that sampled: the log-probabilities
                // must agree up to float noise, or the trained context differs from the sampled.
                let d = (&new - &old).abs().max().double_value(&[]);
                drift = drift.max(d);
            }
            let (loss, kl) = loss_sums(&new, &old, refr, &adv, r.clip_eps, r.kl_beta);
            let loss = loss / n_tokens as f64;
            loss.backward();
            loss_epoch += loss.double_value(&[]);
            kl_epoch += kl.to_kind(Kind::Double).double_value(&[]) / n_tokens as f64;
        }
        grad_norm = clip_grad_norm(
            &model.lora_parameters().map(|(_, t)| t).collect::<Vec<_>>(),
            r.clip_norm,
        );
        opt.step(model.lora_parameters(), r.lr);
        zero_grads(model.lora_parameters().map(|(_, t)| t));
        if epoch == 0 {
            (loss_total, kl_total) = (loss_epoch, kl_epoch);
        }
    }
    ensure!(
        drift <= MAX_DRIFT,
        "a sampled token's log-probability differs by {drift:.4} when scored for training: the trained context is not the sampled one"
    );
    Ok((loss_total, kl_total, tokens, grad_norm))
}

/// Runs `f` with the adapter weights replaced by `weights` (in `lora_parameters` order), then
/// puts the trained weights back, whatever `f` returned.
fn with_adapter_weights<T>(
    model: &mut Llama,
    weights: &[Tensor],
    f: impl FnOnce(&mut Llama) -> TrainResult<T>,
) -> TrainResult<T> {
    let _guard = tch::no_grad_guard();
    let params: Vec<Tensor> = model
        .lora_parameters()
        .map(|(_, t)| t.shallow_clone())
        .collect();
    ensure!(
        params.len() == weights.len(),
        "the reference adapter holds {} tensors, the model {}",
        weights.len(),
        params.len()
    );
    let trained: Vec<Tensor> = params.iter().map(Tensor::copy).collect();
    for (mut p, w) in params.iter().map(Tensor::shallow_clone).zip(weights) {
        p.copy_(w);
    }
    let res = f(model);
    for (mut p, w) in params.into_iter().zip(&trained) {
        p.copy_(w);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_batches_cover_the_file_once_per_pass() {
        let mut seen: Vec<usize> = (0..3).flat_map(|s| pick_tasks(6, 2, 9, s)).collect();
        seen.sort();
        assert_eq!(seen, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(pick_tasks(6, 2, 9, 1), pick_tasks(6, 2, 9, 1));
    }
}
