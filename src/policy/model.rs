//! The in-process model policy: a Llama on libtorch proposes one command per live episode,
//! all episodes of a round decoded together.
//!
//! Each query's prompt is built by [`prompt_ids`] (earlier replies spliced in as their
//! sampled ids, old turns dropped whole past the context budget). Generation stops at an
//! end-of-turn token or at the first token whose text contains a newline — a command is one
//! line — and the reply keeps every sampled id, the stop token included, with its
//! log-probability, because RL trains on exactly those ids. Sampling is seeded: the same
//! seed and the same sequence of queries give the same replies, and a row's reply does not
//! depend on which other rows share its batch (see `model::generate`).
//!
//! Prompts are decoded in consecutive micro-batches bounded by a token budget, since a
//! batch's prefill memory grows with rows × longest prompt; the per-row random streams are
//! drawn in query order, so the split does not change any reply.
//!
//! Across turns, each live episode keeps the keys and values of its conversation so far
//! (prompt and reply): a turn's prompt is the last one plus the reply and the new
//! observation, so only those appended tokens are prefilled. A cached prefix is used only
//! when the new prompt really starts with its ids (else — old turns dropped past the
//! context, another reply chosen — that episode is prefilled whole once), the cache is
//! dropped whenever the weights may change (`loaded_mut`), an episode's entry is freed when
//! it ends ([`Policy::end_episode`]), and the whole cache keeps within
//! `kv_cache_bytes`, evicting the least recently used episodes (they are rebuilt on
//! demand). Replies are the same with the cache on or off (tested). Prompts with no cached
//! episode (first turns) share their start — the template's system prompt and the DSL
//! instructions: that common prefix is prefilled once and reused for each of them.

use std::collections::HashMap;
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::conversation::{PromptIds, prompt_ids};
use super::interface::{Policy, PolicyError, Query, propose_via_each};
use crate::model::generate::{
    FinishReason, GenParams, GenerateError, Generated, generate_each_cached, prefix_kv,
};
use crate::model::kv_cache::SeqKv;
use crate::model::llama::Llama;
use crate::model::loader::LoadedModel;
use crate::model::sampling::SamplingParams;
use crate::model::tokenizer::{CoeTokenizer, TokenizerError};
use crate::protocol::Proposal;
use crate::util::batches::micro_batches;

/// Replies longer than this many tokens are cut: a DSL command is one line, and 64 tokens
/// cover a long source line with room to spare.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 64;
/// Rows × longest prompt per prefill: bounds the attention scores' memory on the CPU.
pub const DEFAULT_MAX_BATCH_TOKENS: usize = 16_384;
/// Memory for the keys and values kept across turns (`model.kv_cache_mb`).
pub const DEFAULT_KV_CACHE_MB: usize = 4096;

/// How the policy samples.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPolicyConfig {
    pub sampling: SamplingParams,
    pub max_new_tokens: usize,
    /// The model's context for one turn: prompt plus reply (`env.context_tokens`).
    pub context_tokens: usize,
    pub max_batch_tokens: usize,
    pub seed: u64,
    /// Bytes of keys and values kept across turns; 0 turns the cross-turn cache off.
    pub kv_cache_bytes: usize,
    /// Fold enabled adapters into the weights while sampling (restored exactly after).
    pub fold_adapter: bool,
}

impl ModelPolicyConfig {
    /// Sampling at `temperature` / `top_p` with the config's context, decode batch size
    /// (`model.decode_batch_tokens`) and seed.
    pub fn from_config(cfg: &crate::config::Config, temperature: f64, top_p: f64) -> Self {
        ModelPolicyConfig {
            max_batch_tokens: cfg.model.decode_batch_tokens,
            kv_cache_bytes: cfg.model.kv_cache_mb << 20,
            ..ModelPolicyConfig::new(temperature, top_p, cfg.env.context_tokens, cfg.seed)
        }
    }

    /// Sampling as the config's evaluation does (`eval.temperature`, `eval.top_p`).
    pub fn for_eval(cfg: &crate::config::Config) -> Self {
        Self::from_config(cfg, cfg.eval.temperature, cfg.eval.top_p)
    }

    /// Sampling at `temperature` / `top_p` with the default lengths.
    pub fn new(temperature: f64, top_p: f64, context_tokens: usize, seed: u64) -> Self {
        ModelPolicyConfig {
            sampling: SamplingParams {
                temperature,
                top_k: 0,
                top_p,
            },
            max_new_tokens: DEFAULT_MAX_NEW_TOKENS,
            context_tokens,
            max_batch_tokens: DEFAULT_MAX_BATCH_TOKENS,
            seed,
            kv_cache_bytes: DEFAULT_KV_CACHE_MB << 20,
            fold_adapter: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelPolicyError {
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error(
        "max_new_tokens {max_new_tokens} leaves no room for a prompt in a context of {context_tokens} tokens"
    )]
    NoRoom {
        max_new_tokens: usize,
        context_tokens: usize,
    },
}

impl From<ModelPolicyError> for PolicyError {
    fn from(e: ModelPolicyError) -> Self {
        PolicyError::Other(format!("model policy: {e}"))
    }
}

pub struct ModelPolicy {
    loaded: LoadedModel,
    cfg: ModelPolicyConfig,
    rng: ChaCha8Rng,
    params: GenParams,
    kv: EpisodeKv,
}

/// The keys and values each live episode left after its last turn.
#[derive(Debug, Default)]
struct EpisodeKv {
    entries: HashMap<u64, (SeqKv, u64)>, // episode -> (its sequence, last use)
    bytes: usize,
    clock: u64,
    /// Prompt tokens whose keys and values came from the cache instead of a prefill.
    reused_tokens: u64,
    /// The last prefix shared by first-turn prompts (the system prompt and instructions).
    shared: Option<SeqKv>,
}

/// Shorter common starts are not worth a separate prefill.
const MIN_SHARED_PREFIX: usize = 32;

/// The longest common start of `prompts`, cut one short of the shortest (a prompt must keep
/// a token to prefill).
fn common_prefix<'a>(prompts: impl IntoIterator<Item = &'a [u32]>) -> &'a [u32] {
    let mut it = prompts.into_iter();
    let Some(first) = it.next() else {
        return &[];
    };
    let mut n = first.len().saturating_sub(1);
    for p in it {
        n = n.min(p.len().saturating_sub(1));
        n = first[..n].iter().zip(p).take_while(|(a, b)| a == b).count();
    }
    &first[..n]
}

/// What the cross-turn cache holds and has saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvCacheStats {
    pub bytes: usize,
    pub episodes: usize,
    /// Prompt tokens not prefilled because their keys and values were cached.
    pub reused_tokens: u64,
}

impl EpisodeKv {
    fn get(&self, episode: u64) -> Option<&SeqKv> {
        self.entries.get(&episode).map(|(s, _)| s)
    }

    fn insert(&mut self, episode: u64, seq: SeqKv) {
        self.clock += 1;
        self.bytes += seq.bytes();
        if let Some((old, _)) = self.entries.insert(episode, (seq, self.clock)) {
            self.bytes -= old.bytes();
        }
    }

    fn remove(&mut self, episode: u64) {
        if let Some((old, _)) = self.entries.remove(&episode) {
            self.bytes -= old.bytes();
        }
    }

    /// Evicts the least recently used entries until at most `budget` bytes remain.
    fn shrink_to(&mut self, budget: usize) {
        while self.bytes > budget {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(e, _)| *e)
            else {
                break;
            };
            self.remove(oldest);
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
        self.shared = None;
    }

    /// A prefix the prompts of `rows` (those without an episode entry) all extend: the one
    /// kept from before if it fits, else their common start, prefilled now. `None` when
    /// fewer than two rows need one or they share too little.
    fn shared_for(
        &mut self,
        model: &Llama,
        rows: &[&[u32]],
    ) -> Result<Option<&SeqKv>, GenerateError> {
        if rows.len() < 2 {
            return Ok(None);
        }
        let fits = |s: &SeqKv| rows.iter().all(|p| s.extends_to(p));
        if !self.shared.as_ref().is_some_and(fits) {
            let common = common_prefix(rows.iter().copied());
            self.shared = if common.len() >= MIN_SHARED_PREFIX {
                Some(prefix_kv(model, common)?)
            } else {
                None
            };
        }
        Ok(self.shared.as_ref())
    }
}

impl ModelPolicy {
    pub fn new(loaded: LoadedModel, cfg: ModelPolicyConfig) -> Result<Self, ModelPolicyError> {
        cfg.sampling
            .validate()
            .map_err(|e| ModelPolicyError::Generate(e.into()))?;
        if cfg.max_new_tokens == 0 || cfg.max_new_tokens >= cfg.context_tokens {
            return Err(ModelPolicyError::NoRoom {
                max_new_tokens: cfg.max_new_tokens,
                context_tokens: cfg.context_tokens,
            });
        }
        let tok = &loaded.tokenizer;
        // Ids whose text holds a newline end a command; precomputed once over the vocabulary.
        let mut newline = vec![false; loaded.model.config().vocab_size];
        for (id, slot) in (0u32..).zip(newline.iter_mut()) {
            *slot = tok.decode(&[id])?.contains('\n');
        }
        let newline = Arc::new(newline);
        let params = GenParams {
            max_new_tokens: cfg.max_new_tokens,
            sampling: cfg.sampling.clone(),
            stop_ids: tok.eot_ids.clone(),
            stop_rule: Some(Arc::new(move |id: u32| {
                newline.get(id as usize).copied().unwrap_or(false)
            })),
        };
        Ok(ModelPolicy {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            loaded,
            cfg,
            params,
            kv: EpisodeKv::default(),
        })
    }

    pub fn loaded(&self) -> &LoadedModel {
        &self.loaded
    }

    /// For switching adapters or loading new LoRA weights between rounds (RL). The
    /// episodes' cached keys and values are dropped: they may not match the new weights.
    pub fn loaded_mut(&mut self) -> &mut LoadedModel {
        self.kv.clear();
        &mut self.loaded
    }

    /// What the cross-turn cache holds now and has saved so far.
    pub fn kv_cache_stats(&self) -> KvCacheStats {
        KvCacheStats {
            bytes: self.kv.bytes,
            episodes: self.kv.entries.len(),
            reused_tokens: self.kv.reused_tokens,
        }
    }

    pub fn into_loaded(self) -> LoadedModel {
        self.loaded
    }

    pub fn config(&self) -> &ModelPolicyConfig {
        &self.cfg
    }

    /// The prompt the model sees for `q`.
    pub fn prompt_for(&self, q: &Query<'_>) -> Result<PromptIds, ModelPolicyError> {
        self.prompt_from(q.history, q.observation)
    }

    /// Every query's prompt ids, a failure naming its task.
    fn prompts(&self, queries: &[Query<'_>]) -> Result<Vec<Vec<u32>>, PolicyError> {
        queries
            .iter()
            .map(|q| {
                self.prompt_for(q)
                    .map(|p| p.ids)
                    .map_err(|e| PolicyError::Task {
                        task: q.task.id.clone(),
                        message: e.to_string(),
                    })
            })
            .collect()
    }

    /// The prompt for the turn after `history` whose user message is `observation` — what
    /// [`ModelPolicy::prompt_for`] built when that turn was sampled (RL rebuilds it to train).
    pub fn prompt_from(
        &self,
        history: &[(String, Proposal)],
        observation: &str,
    ) -> Result<PromptIds, ModelPolicyError> {
        let budget = self.cfg.context_tokens - self.cfg.max_new_tokens;
        Ok(prompt_ids(
            &self.loaded.tokenizer,
            &self.loaded.chat,
            history,
            observation,
            budget,
        )?)
    }

    /// Switches sampling (greedy for evaluation, a temperature for rollouts).
    pub fn set_sampling(&mut self, sampling: SamplingParams) -> Result<(), ModelPolicyError> {
        sampling
            .validate()
            .map_err(|e| ModelPolicyError::Generate(e.into()))?;
        self.params.sampling = sampling.clone();
        self.cfg.sampling = sampling;
        Ok(())
    }

    /// Restarts the random stream, e.g. from (seed, step) so a resumed run samples as the
    /// uninterrupted one would have.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    /// Samples one reply per prompt.
    pub fn generate_replies(
        &mut self,
        prompts: &[Vec<u32>],
    ) -> Result<Vec<Proposal>, ModelPolicyError> {
        let mut out: Vec<Option<Proposal>> = vec![None; prompts.len()];
        self.generate_replies_each(prompts, None, &mut |i, p| out[i] = Some(p))?;
        Ok(out.into_iter().flatten().collect())
    }

    /// Samples one reply per prompt and hands each to `ready(index, reply)` as soon as its
    /// row finishes decoding (see [`generate_each_cached`]). With `episodes` (one id per
    /// prompt), each episode's keys and values from its last turn are reused and its new
    /// ones kept for the next.
    pub fn generate_replies_each(
        &mut self,
        prompts: &[Vec<u32>],
        episodes: Option<&[u64]>,
        ready: &mut dyn FnMut(usize, Proposal),
    ) -> Result<(), ModelPolicyError> {
        let ModelPolicy {
            loaded,
            cfg,
            rng,
            params,
            kv,
        } = self;
        let mut sampler = Sampler {
            tok: &loaded.tokenizer,
            cfg,
            params,
            rng,
            kv,
        };
        if cfg.fold_adapter {
            // A fixed adapter for the whole call: fold it into the weights so every decode
            // step runs the base model's kernels; the weights are restored bit for bit.
            let model = &mut loaded.model;
            model
                .with_folded_lora(|m| sampler.run(m, prompts, episodes, ready))
                .map_err(|e| ModelPolicyError::Generate(e.into()))?
        } else {
            sampler.run(&loaded.model, prompts, episodes, ready)
        }
    }
}

/// What one call of [`ModelPolicy::generate_replies_each`] samples with.
struct Sampler<'a> {
    tok: &'a CoeTokenizer,
    cfg: &'a ModelPolicyConfig,
    params: &'a GenParams,
    rng: &'a mut ChaCha8Rng,
    kv: &'a mut EpisodeKv,
}

impl Sampler<'_> {
    fn run(
        &mut self,
        model: &Llama,
        prompts: &[Vec<u32>],
        episodes: Option<&[u64]>,
        ready: &mut dyn FnMut(usize, Proposal),
    ) -> Result<(), ModelPolicyError> {
        let caching = self.cfg.kv_cache_bytes > 0 && episodes.is_some();
        let mut failed = None;
        let lens: Vec<usize> = prompts.iter().map(Vec::len).collect();
        for range in micro_batches(&lens, usize::MAX, self.cfg.max_batch_tokens) {
            let (start, end) = (range.start, range.end);
            let chunk = prompts.get(start..end).unwrap_or_default();
            let ids = episodes.and_then(|e| e.get(start..end)).unwrap_or_default();
            // Rows without an episode entry start from the prefix they share, if any.
            let fresh: Vec<&[u32]> = chunk
                .iter()
                .zip(ids)
                .filter(|(_, e)| !caching || self.kv.get(**e).is_none())
                .map(|(p, _)| p.as_slice())
                .collect();
            let shared = if caching {
                self.kv.shared_for(model, &fresh)?.map(|s| s.len())
            } else {
                None
            };
            let prefixes: Vec<Option<&SeqKv>> = if caching {
                ids.iter()
                    .map(|&e| self.kv.get(e).or(shared.and(self.kv.shared.as_ref())))
                    .collect()
            } else {
                Vec::new()
            };
            let reused: usize = prefixes
                .iter()
                .zip(chunk)
                .filter_map(|(p, prompt)| p.filter(|p| p.extends_to(prompt)).map(SeqKv::len))
                .sum();
            let tok = self.tok;
            let mut kept: Vec<(u64, SeqKv)> = Vec::new();
            generate_each_cached(
                model,
                chunk,
                &prefixes,
                self.params,
                &mut *self.rng,
                caching,
                &mut |i, g, kv| {
                    if let (Some(kv), Some(&e)) = (kv, ids.get(i)) {
                        kept.push((e, kv));
                    }
                    match reply(tok, g) {
                        Ok(p) if failed.is_none() => ready(start + i, p),
                        Ok(_) => {}
                        Err(e) => {
                            failed.get_or_insert(e);
                        }
                    }
                },
            )?;
            self.kv.reused_tokens += reused as u64;
            for (e, kv) in kept {
                self.kv.insert(e, kv);
            }
            self.kv.shrink_to(self.cfg.kv_cache_bytes);
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        Ok(())
    }
}

/// The command text of a generation: without an end-of-turn stop token, cut at the first
/// newline. The ids and log-probabilities are kept whole.
pub(super) fn reply(tok: &CoeTokenizer, g: Generated) -> Result<Proposal, TokenizerError> {
    let mut shown = g.ids.as_slice();
    if g.finished_by == FinishReason::Stop
        && let Some((&last, rest)) = shown.split_last()
        && tok.is_end_of_turn(last)
    {
        shown = rest;
    }
    let text = tok.decode(shown)?;
    let line = text.split('\n').next().unwrap_or_default().to_string();
    Ok(Proposal {
        text: line,
        token_ids: g.ids,
        logprobs: g.logprobs,
        person: false,
        failed: None,
    })
}

impl Policy for ModelPolicy {
    fn name(&self) -> String {
        match &self.loaded.adapter {
            Some(a) => format!("{} + {a}", self.loaded.path),
            None => self.loaded.path.clone(),
        }
    }

    fn propose(&mut self, queries: &[Query<'_>]) -> Result<Vec<Proposal>, PolicyError> {
        propose_via_each(self, queries)
    }

    fn propose_each(
        &mut self,
        queries: &[Query<'_>],
        ready: &mut dyn FnMut(usize, Proposal),
    ) -> Result<(), PolicyError> {
        let prompts = self.prompts(queries)?;
        let episodes: Vec<u64> = queries.iter().map(|q| q.episode).collect();
        Ok(self.generate_replies_each(&prompts, Some(&episodes), ready)?)
    }

    fn end_episode(&mut self, episode: u64) {
        self.kv.remove(episode);
    }
}
