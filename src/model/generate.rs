//! Batched, KV-cached generation for a set of prompts.
//!
//! Prompts are left-padded into one batch and prefilled together (only the last
//! column is projected to the vocabulary); each decode step then feeds one token
//! per live row. A row that hits a stop token or its budget leaves the batch — the
//! cache drops its row — so finished episodes cost nothing while others continue,
//! and [`generate_each`] hands it to the caller at once (who may run its tests meanwhile).
//! Each row samples from its own ChaCha stream seeded from the caller's generator,
//! which makes a row's output independent of its batch mates.
//!
//! A prompt may come with the keys and values of a prefix of it ([`SeqKv`], what the same
//! episode's previous turn left): then only the tokens after the prefix are prefilled, and
//! a finished row can hand its own keys and values back for the next turn
//! ([`generate_each_cached`]). The rows' outputs are the same either way, up to float
//! rounding (tested).
//!
//! Stopping is decided on token ids through [`StopRule`], so this module needs no
//! tokenizer: the caller turns "stop at newline" into the set of ids whose text
//! contains '\n' (or any predicate) and decides what to keep of the last token.

use std::fmt;
use std::sync::Arc;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::model::kv_cache::{KvCache, SeqKv};
use crate::model::llama::{Llama, ModelError};
use crate::model::lora::Mode;
use crate::model::sampling::{SamplingError, SamplingParams, sample};

/// Decides whether a sampled token ends its sequence (it is kept in the output).
pub trait StopRule {
    fn is_stop(&self, id: u32) -> bool;
}

impl<F: Fn(u32) -> bool> StopRule for F {
    fn is_stop(&self, id: u32) -> bool {
        self(id)
    }
}

#[derive(Clone)]
pub struct GenParams {
    pub max_new_tokens: usize,
    pub sampling: SamplingParams,
    /// Ids that end a sequence, e.g. end-of-turn and EOS.
    pub stop_ids: Vec<u32>,
    /// A further rule, e.g. "the token's text contains a newline".
    pub stop_rule: Option<Arc<dyn StopRule + Send + Sync>>,
}

impl fmt::Debug for GenParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenParams")
            .field("max_new_tokens", &self.max_new_tokens)
            .field("sampling", &self.sampling)
            .field("stop_ids", &self.stop_ids)
            .field("stop_rule", &self.stop_rule.as_ref().map(|_| "<rule>"))
            .finish()
    }
}

impl GenParams {
    fn stops(&self, id: u32) -> bool {
        self.stop_ids.contains(&id) || self.stop_rule.as_ref().is_some_and(|r| r.is_stop(id))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FinishReason {
    /// The last id satisfied a stop condition.
    Stop,
    /// `max_new_tokens` were generated without a stop.
    #[default]
    Length,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Generated {
    /// Sampled ids, including the stop token when there is one.
    pub ids: Vec<u32>,
    /// Per id, log-probability at temperature 1 without truncation (see `sampling`).
    pub logprobs: Vec<f32>,
    pub finished_by: FinishReason,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("prompt {index} is empty; generation needs at least one token")]
    EmptyPrompt { index: usize },
    #[error("prompt {index} holds token id {id}, outside the model's vocabulary of {vocab}")]
    TokenOutOfRange { index: usize, id: u32, vocab: usize },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Sampling(#[from] SamplingError),
}

/// A generator that hands [`generate_each_cached`] the given per-row seeds: it seeds row i's
/// stream with its i-th `next_u64`, in prompt order, so a caller that fixes each row's seed
/// (a server honouring a request's `seed`) gets that row's stream whatever its batch mates.
pub struct RowSeeds<'a>(pub std::slice::Iter<'a, u64>);

/// The seed of a row's sampling stream from a 64-bit draw: its low 63 bits, the range an
/// OpenAI-compatible server takes as `seed` (vLLM checks int64), so a row sampled here and
/// the same row sampled by a server from the seed sent to it draw the same stream.
pub fn row_seed(draw: u64) -> u64 {
    draw & i64::MAX as u64
}

impl RngCore for RowSeeds<'_> {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next().copied().unwrap_or(0)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// One live row of the decode batch.
struct Row {
    index: usize, // into `prompts`
    next_pos: i64,
    rng: ChaCha8Rng,
}

/// Generates a continuation for every prompt (with adapters as currently
/// enabled, never with dropout), under `no_grad`.
pub fn generate<R: RngCore>(
    model: &Llama,
    prompts: &[Vec<u32>],
    params: &GenParams,
    rng: &mut R,
) -> Result<Vec<Generated>, GenerateError> {
    let mut out: Vec<Option<Generated>> = vec![None; prompts.len()];
    generate_each(model, prompts, params, rng, &mut |i, g| out[i] = Some(g))?;
    Ok(out.into_iter().flatten().collect())
}

/// As [`generate`], but hands each row to `done(index, generated)` the moment it
/// finishes, while the other rows go on decoding — so a caller can act on early
/// replies (run their tests) during the rest of the decode. Every index is
/// handed over exactly once, in the order rows finish (ties in index order).
pub fn generate_each<R: RngCore>(
    model: &Llama,
    prompts: &[Vec<u32>],
    params: &GenParams,
    rng: &mut R,
    done: &mut dyn FnMut(usize, Generated),
) -> Result<(), GenerateError> {
    generate_each_cached(model, prompts, &[], params, rng, false, &mut |i, g, _| {
        done(i, g)
    })
}

/// As [`generate_each`], where `prefixes[i]` (if given and the prompt extends it) holds the
/// keys and values of the start of prompt `i`, so only the rest is prefilled. With `keep`,
/// each finished row also hands back its own keys and values (prompt and reply, all but
/// the last sampled token, which was never fed) for the next turn.
pub fn generate_each_cached<R: RngCore>(
    model: &Llama,
    prompts: &[Vec<u32>],
    prefixes: &[Option<&SeqKv>],
    params: &GenParams,
    rng: &mut R,
    keep: bool,
    done: &mut dyn FnMut(usize, Generated, Option<SeqKv>),
) -> Result<(), GenerateError> {
    params.sampling.validate()?;
    let vocab = model.config().vocab_size;
    for (index, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(GenerateError::EmptyPrompt { index });
        }
        if let Some(&id) = p.iter().find(|&&id| id as usize >= vocab) {
            return Err(GenerateError::TokenOutOfRange { index, id, vocab });
        }
    }
    // A prefix the prompt does not extend is ignored: that row is prefilled whole.
    let prefixes: Vec<Option<&SeqKv>> = (0..prompts.len())
        .map(|i| {
            prefixes
                .get(i)
                .copied()
                .flatten()
                .filter(|p| !p.is_empty() && p.extends_to(&prompts[i]))
        })
        .collect();
    let mut out: Vec<Generated> = vec![Generated::default(); prompts.len()];
    let mut rows: Vec<Row> = prompts
        .iter()
        .enumerate()
        .map(|(index, p)| Row {
            index,
            next_pos: p.len() as i64,
            rng: ChaCha8Rng::seed_from_u64(row_seed(rng.next_u64())),
        })
        .collect();
    if prompts.is_empty() || params.max_new_tokens == 0 {
        for (i, g) in out.into_iter().enumerate() {
            done(i, g, None);
        }
        return Ok(());
    }
    let _guard = tch::no_grad_guard();
    let mode = Mode {
        lora: model.lora_enabled() && !model.lora_merged(),
        train: false,
    };
    let (mut cache, mut logits) = if prefixes.iter().any(Option::is_some) {
        let starts: Vec<usize> = prefixes.iter().map(|p| p.map_or(0, SeqKv::len)).collect();
        let suffix = prompts.iter().zip(&starts).map(|(p, s)| p.len() - s).max();
        let extra = suffix.unwrap_or(0) + params.max_new_tokens;
        let mut cache = KvCache::with_prefixes(
            model.config(),
            &prefixes,
            extra,
            model.kind(),
            model.device(),
        )?;
        let logits = prefill_after(model, prompts, &starts, &mut cache, mode)?;
        (cache, logits)
    } else {
        let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let mut cache = KvCache::new(
            model.config(),
            prompts.len(),
            width + params.max_new_tokens,
            model.kind(),
            model.device(),
        );
        let logits = prefill(model, prompts, width, &mut cache, mode)?; // [B, V]
        (cache, logits)
    };
    // Hands row `slot` (prompt `i`) over, with its keys and values when asked.
    let mut hand_over = |i: usize, slot: usize, out: &mut [Generated], cache: &KvCache| {
        let g = std::mem::take(&mut out[i]);
        let kv = keep
            .then(|| {
                let fed = g.ids.len().saturating_sub(1);
                let mut ids = prompts[i].clone();
                ids.extend_from_slice(&g.ids[..fed]);
                cache.row_seq(slot, ids)
            })
            .transpose()?;
        done(i, g, kv);
        Ok::<(), ModelError>(())
    };
    for step in 0..params.max_new_tokens {
        let mut rngs: Vec<&mut ChaCha8Rng> = rows.iter_mut().map(|r| &mut r.rng).collect();
        let picked = sample(&logits, &params.sampling, &mut rngs)?;
        let mut keep_rows = Vec::with_capacity(rows.len());
        let last = step + 1 == params.max_new_tokens;
        for (slot, (row, s)) in rows.iter().zip(&picked).enumerate() {
            let g = &mut out[row.index];
            g.ids.push(s.id);
            g.logprobs.push(s.logprob);
            if params.stops(s.id) {
                g.finished_by = FinishReason::Stop;
                hand_over(row.index, slot, &mut out, &cache)?;
            } else if last {
                hand_over(row.index, slot, &mut out, &cache)?;
            } else {
                keep_rows.push(slot);
            }
        }
        if keep_rows.is_empty() {
            break;
        }
        let ids: Vec<i64> = keep_rows.iter().map(|&s| i64::from(picked[s].id)).collect();
        if keep_rows.len() < rows.len() {
            cache.select_rows(&keep_rows)?;
            rows = rows
                .into_iter()
                .enumerate()
                .filter_map(|(slot, r)| keep_rows.contains(&slot).then_some(r))
                .collect();
        }
        let pos: Vec<i64> = rows.iter().map(|r| r.next_pos).collect();
        rows.iter_mut().for_each(|r| r.next_pos += 1);
        let n = rows.len() as i64;
        let device = model.device();
        let input = Tensor::from_slice(&ids).to_device(device).view([n, 1]);
        let positions = Tensor::from_slice(&pos).to_device(device).view([n, 1]);
        let hidden = model.run(&input, &positions, None, Some(&mut cache), mode)?; // [n, 1, D]
        logits = model.logits(&hidden.squeeze_dim(1)); // [n, V]
    }
    Ok(())
}

/// The keys and values of `ids` alone (batch of one): a prefix many prompts share, computed
/// once and handed to [`generate_each_cached`] for each of them.
pub fn prefix_kv(model: &Llama, ids: &[u32]) -> Result<SeqKv, GenerateError> {
    let vocab = model.config().vocab_size;
    if let Some(&id) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(GenerateError::TokenOutOfRange {
            index: 0,
            id,
            vocab,
        });
    }
    let _guard = tch::no_grad_guard();
    let mode = Mode {
        lora: model.lora_enabled() && !model.lora_merged(),
        train: false,
    };
    let n = ids.len() as i64;
    let mut cache = KvCache::new(model.config(), 1, ids.len(), model.kind(), model.device());
    let device = model.device();
    let input: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
    let input = Tensor::from_slice(&input).to_device(device).view([1, n]);
    let positions = Tensor::arange(n, (Kind::Int64, device)).view([1, n]);
    let _hidden = model.run(&input, &positions, None, Some(&mut cache), mode)?;
    Ok(cache.row_seq(0, ids.to_vec())?)
}

/// Runs the part of each prompt after its cached prefix (`starts[r]` tokens) through the
/// model, in one chunk appended after the longest prefix: row r's tokens are its first
/// columns there (right-padded), at positions `starts[r]..`. Returns the logits of each
/// row's last token, `[B, V]`.
fn prefill_after(
    model: &Llama,
    prompts: &[Vec<u32>],
    starts: &[usize],
    cache: &mut KvCache,
    mode: Mode,
) -> Result<Tensor, ModelError> {
    let b = prompts.len();
    let lens: Vec<usize> = prompts
        .iter()
        .zip(starts)
        .map(|(p, s)| p.len() - s)
        .collect();
    let width = lens.iter().copied().max().unwrap_or(1).max(1);
    let mut ids = vec![0i64; b * width];
    let mut mask = vec![0i64; b * width];
    let mut pos = vec![0i64; b * width];
    for (r, (p, &s)) in prompts.iter().zip(starts).enumerate() {
        for (j, &id) in p[s..].iter().enumerate() {
            let at = r * width + j;
            ids[at] = i64::from(id);
            mask[at] = 1;
            pos[at] = (s + j) as i64;
        }
    }
    let device = model.device();
    let shape = [b as i64, width as i64];
    let to_dev = |v: &[i64]| Tensor::from_slice(v).to_device(device).view(shape);
    let mask = to_dev(&mask).to_kind(Kind::Bool);
    let hidden = model.run(&to_dev(&ids), &to_dev(&pos), Some(&mask), Some(cache), mode)?; // [B, W, D]
    let d = hidden.size()[2];
    let last: Vec<i64> = lens.iter().map(|&l| l as i64 - 1).collect();
    let idx = Tensor::from_slice(&last)
        .to_device(device)
        .view([b as i64, 1, 1])
        .expand([b as i64, 1, d], false);
    Ok(model.logits(&hidden.f_gather(1, &idx, false)?.squeeze_dim(1))) // [B, V]
}

/// Runs the left-padded prompts through the model and returns the logits of each
/// row's last token, `[B, V]`.
fn prefill(
    model: &Llama,
    prompts: &[Vec<u32>],
    width: usize,
    cache: &mut KvCache,
    mode: Mode,
) -> Result<Tensor, ModelError> {
    let b = prompts.len();
    let mut ids = vec![0i64; b * width];
    let mut mask = vec![0i64; b * width];
    let mut pos = vec![0i64; b * width];
    for (r, p) in prompts.iter().enumerate() {
        let pad = width - p.len();
        for (j, &id) in p.iter().enumerate() {
            let at = r * width + pad + j;
            ids[at] = i64::from(id);
            mask[at] = 1;
            pos[at] = j as i64;
        }
    }
    let padded = prompts.iter().any(|p| p.len() != width);
    let device = model.device();
    let shape = [b as i64, width as i64];
    let to_dev = |v: &[i64]| Tensor::from_slice(v).to_device(device).view(shape);
    let mask = padded.then(|| to_dev(&mask).to_kind(Kind::Bool));
    let hidden = model.run(
        &to_dev(&ids),
        &to_dev(&pos),
        mask.as_ref(),
        Some(cache),
        mode,
    )?; // [B, W, D]
    Ok(model.logits(&hidden.select(1, width as i64 - 1))) // [B, V]
}
