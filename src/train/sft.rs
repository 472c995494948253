//! `coe train sft`: LoRA supervised fine-tuning on demonstrations (DESIGN §5). Loss on the
//! assistant's tokens only (the commands and their end-of-turn marker), token-weighted over
//! the whole optimizer step; AdamW with warm-up and cosine decay; gradient accumulation and
//! clipping; periodic greedy evaluation episodes on held-out tasks; atomic checkpoints.
//!
//! The data order is a seeded permutation per epoch and every random stream of a step is
//! derived from (seed, step), so `--resume` from step n replays steps n.. exactly as the
//! uninterrupted run would have (a test holds it to that).
use super::error::{TrainResult, ensure};
use std::path::Path;
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tch::Kind;

use super::adamw::{clip_grad_norm, zero_grads};
use super::examples::{Example, ExampleContext, load_file};
use super::periodic::Periodic;
use super::schedule::Schedule;
use super::setup::{self, Prepared, held_out, lora_of};
use super::tokens::{Sequence, micro_batches, target_logprobs};
use super::{JobEnv, JobOutcome, step_seed};
use crate::config::Config;
use crate::model::llama::{Llama, ModelError};
use crate::protocol::{JobKind, Metric, RunEvent};

const PURPOSE_ORDER: u64 = 1;
const PURPOSE_DROPOUT: u64 = 2;

/// Which example each draw of the run takes: a fresh seeded permutation per epoch.
pub struct DataOrder {
    n: usize,
    seed: u64,
    epoch: Option<(u64, Vec<usize>)>,
}

impl DataOrder {
    pub fn new(n: usize, seed: u64) -> Self {
        DataOrder {
            n,
            seed,
            epoch: None,
        }
    }

    /// The example of draw number `k` (0-based over the whole run).
    pub fn index(&mut self, k: u64) -> usize {
        let n = self.n.max(1) as u64;
        let epoch = k / n;
        if self.epoch.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut perm: Vec<usize> = (0..self.n).collect();
            perm.shuffle(&mut ChaCha8Rng::seed_from_u64(step_seed(
                self.seed,
                epoch,
                PURPOSE_ORDER,
            )));
            self.epoch = Some((epoch, perm));
        }
        let pos = (k % n) as usize;
        self.epoch
            .as_ref()
            .and_then(|(_, p)| p.get(pos).copied())
            .unwrap_or(0)
    }
}

/// Runs (or resumes) an SFT job.
pub fn run(cfg: &Config, env: &mut JobEnv<'_>) -> TrainResult<JobOutcome> {
    let s = &cfg.sft;
    ensure!(
        !s.train.is_empty(),
        "sft.train is empty: name at least one demonstration file (made by `coe data gen`)"
    );
    let total = s.steps as u64;
    let mut prep = setup::prepare(
        cfg,
        JobKind::Sft,
        &lora_of(&s.lora),
        None,
        s.weight_decay,
        total,
        env,
    )?;
    let examples = load_examples(cfg, &prep, env)?;
    let valid = held_out(s.valid.as_deref(), s.eval_tasks)?;
    let schedule = Schedule::new(s.lr, s.warmup_steps, s.steps);
    let mut order = DataOrder::new(examples.len(), cfg.seed);
    let periodic = Periodic {
        kind: JobKind::Sft,
        total,
        eval_every: s.eval_every,
        checkpoint_every: s.checkpoint_every,
        keep_last: s.keep_last,
        batch_stride: 1,
    };
    let per_step = (s.batch_size * s.grad_accum) as u64;
    let started = Instant::now();
    let mut last_eval = None;
    let mut step = prep.start_step;
    let job = env.emit.job();
    // Tokens trained so far: on resume, recounted from the (deterministic) data order.
    let mut seen: u64 = (0..step * per_step)
        .filter_map(|k| examples.get(order.index(k)))
        .map(|e| e.seq.ids.len() as u64)
        .sum();
    while step < total && s.token_budget.is_none_or(|b| seen < b) {
        if env.cancelled() {
            return periodic.cancelled(cfg, step, &prep, env, last_eval);
        }
        let t0 = Instant::now();
        let picked: Vec<&Example> = (0..per_step)
            .filter_map(|k| examples.get(order.index(step * per_step + k)))
            .collect();
        let lr = schedule.lr(step as usize);
        let (loss, tokens) = train_step(&mut prep, &picked, cfg, step)?;
        seen += tokens as u64;
        let grad_norm = {
            let model = &prep.policy.loaded().model;
            let norm = clip_grad_norm(
                &model.lora_parameters().map(|(_, t)| t).collect::<Vec<_>>(),
                s.clip_norm,
            );
            prep.opt.step(model.lora_parameters(), lr);
            zero_grads(model.lora_parameters().map(|(_, t)| t));
            norm
        };
        step += 1;
        env.emit.run(RunEvent::Metric(Metric {
            job,
            step,
            phase: "train".into(),
            loss: Some(loss),
            lr: Some(lr),
            grad_norm: Some(grad_norm),
            tokens_per_s: Some(tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9)),
            tokens: Some(seen),
            elapsed_s: Some(started.elapsed().as_secs_f64()),
            ..Metric::default()
        }))?;
        periodic.after_step(cfg, step, &valid, &mut prep, env, &mut last_eval)?;
    }
    if step < total {
        env.emit.log(
            "info",
            format!("token budget of {seen} tokens reached at step {step} of {total}"),
        )?;
    }
    periodic.finished(step, &prep, env, last_eval)
}

/// One optimizer step's forward and backward passes; returns (mean token loss, tokens seen).
fn train_step(
    prep: &mut Prepared,
    picked: &[&Example],
    cfg: &Config,
    step: u64,
) -> TrainResult<(f64, usize)> {
    let model = &mut prep.policy.loaded_mut().model;
    tch::manual_seed(step_seed(cfg.seed, step, PURPOSE_DROPOUT) as i64);
    let seqs: Vec<&Sequence> = picked.iter().map(|e| &e.seq).collect();
    let (loss, tokens) = backward(model, &seqs, cfg.sft.batch_size, cfg.sft.max_batch_tokens)?;
    ensure!(
        loss.is_finite(),
        "the loss is {loss} at step {step}; lower sft.lr"
    );
    Ok((loss, tokens))
}

/// The forward and backward passes of one optimizer step over `seqs`, in micro-batches of
/// at most `max_rows` rows and `max_tokens` padded tokens; gradients accumulate in the
/// adapters. Returns (mean loss per trained token, tokens seen). `coe bench sft` times it.
pub fn backward(
    model: &mut Llama,
    seqs: &[&Sequence],
    max_rows: usize,
    max_tokens: usize,
) -> Result<(f64, usize), ModelError> {
    model.set_training(true);
    let n_targets: usize = seqs.iter().map(|s| s.n_targets()).sum();
    let lens: Vec<usize> = seqs.iter().map(|s| s.ids.len()).collect();
    let mut loss_sum = 0.0;
    for range in micro_batches(&lens, max_rows, max_tokens) {
        let part = seqs.get(range).unwrap_or_default();
        let logp = match target_logprobs(model, part) {
            Ok(l) => l,
            Err(e) => {
                model.set_training(false);
                return Err(e);
            }
        };
        if logp.numel() == 0 {
            continue;
        }
        let loss = -logp.sum(Kind::Float) / n_targets.max(1) as f64;
        loss.backward();
        loss_sum += loss.double_value(&[]);
    }
    model.set_training(false);
    Ok((loss_sum, lens.iter().sum()))
}

fn load_examples(cfg: &Config, prep: &Prepared, env: &mut JobEnv<'_>) -> TrainResult<Vec<Example>> {
    let loaded = prep.policy.loaded();
    let cx = ExampleContext {
        tokenizer: &loaded.tokenizer,
        chat: &loaded.chat,
        runner: env.pool,
        env: &cfg.env,
        limits: &cfg.sandbox.limits,
        max_tokens: cfg.env.context_tokens,
        threads: env.pool.workers().max(1),
    };
    let mut all = Vec::new();
    for file in &cfg.sft.train {
        let (examples, report) = load_file(Path::new(file), &cx)?;
        env.emit.log(
            "info",
            format!(
                "{file}: {} {} demonstrations, {} kept ({} replay mismatches, {} longer than {} tokens)",
                report.records,
                report.kind.unwrap_or("?"),
                report.kept,
                report.replay_mismatch,
                report.too_long,
                cfg.env.context_tokens
            ),
        )?;
        all.extend(examples);
    }
    ensure!(
        !all.is_empty(),
        "no usable demonstrations in {:?}",
        cfg.sft.train
    );
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_order_is_a_permutation_per_epoch_and_reproducible() {
        let mut a = DataOrder::new(5, 7);
        let first: Vec<usize> = (0..5).map(|k| a.index(k)).collect();
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
        let second: Vec<usize> = (5..10).map(|k| a.index(k)).collect();
        assert_ne!(first, second, "each epoch reshuffles");
        let mut b = DataOrder::new(5, 7);
        assert_eq!(b.index(7), second[2], "random access gives the same order");
    }
}
