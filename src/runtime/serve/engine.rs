//! The model thread of `coe serve`: it owns the model (tch tensors never leave it) and
//! serves [`EngineRequest`]s from a channel. Completions that arrive within a short window
//! are decoded together: requests with the same model and sampling settings become one
//! `generate_each_cached` batch, so N concurrent clients cost about one batch of N rows.
//!
//! Each row samples from its own ChaCha stream seeded with the request's seed (the choice
//! index added for `n > 1`), exactly as the in-process model policy seeds a row from its
//! generator — so a client that sends the seeds the local policy would have drawn gets the
//! local policy's replies (the remote backend does; tested).
//!
//! Finished rows leave their keys and values in a prefix cache (per served model, least
//! recently used evicted past a byte budget): an episode's next turn extends its last
//! prompt and reply, so only the appended tokens are prefilled — the role of vLLM's prefix
//! caching. Adapters loaded at run time are kept as tensors and swapped into the model's
//! LoRA slots when a batch names them; one whose shape differs from the model's rebuilds
//! the model with that shape.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::model::generate::RowSeeds;
use crate::util::batches::micro_batches;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

use super::prefix::PrefixCache;
use crate::model::generate::{GenParams, Generated, generate_each_cached};
use crate::model::kv_cache::SeqKv;
use crate::model::loader::{LoadedModel, load_model};
use crate::model::lora::LoraConfig;
use crate::model::safetensors_io::{read_adapter_config, read_adapter_tensors};
use crate::model::sampling::SamplingParams;

/// How one completion samples; requests with equal settings share a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub max_tokens: usize,
    pub temperature: f64,
    pub top_p: f64,
    /// A token whose text contains one of these ends the row (kept in its ids).
    pub stop: Vec<String>,
    /// Ids that end a row besides the model's end-of-turn ids.
    pub stop_ids: Vec<u32>,
}

/// One completion request: rows of prompt ids, one seed per row.
pub struct GenJob {
    pub model: String,
    pub prompts: Vec<Vec<u32>>,
    pub seeds: Vec<u64>,
    pub sampling: Sampling,
    pub reply: Sender<Result<Vec<Generated>, EngineError>>,
}

pub enum EngineRequest {
    Generate(GenJob),
    LoadAdapter {
        name: String,
        path: String,
        /// Replace an adapter already loaded under `name` (vLLM's `load_inplace`).
        inplace: bool,
        reply: Sender<Result<(), EngineError>>,
    },
    UnloadAdapter {
        name: String,
        reply: Sender<Result<(), EngineError>>,
    },
    /// (name, the base it sits on for an adapter) of every servable model.
    Models {
        reply: Sender<Vec<(String, Option<String>)>>,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("The model `{0}` does not exist.")]
    UnknownModel(String),
    #[error("The lora adapter `{0}` has already been loaded.")]
    AdapterExists(String),
    #[error("cannot load the adapter `{name}` from {path}: {reason}")]
    BadAdapter {
        name: String,
        path: String,
        reason: String,
    },
    #[error("generation failed: {0}")]
    Generate(String),
}

/// Batching and memory settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The name the configured model (and its adapter, if any) is served under.
    pub served_model: String,
    /// How long the first request of a batch waits for others.
    pub batch_window: Duration,
    /// Most rows decoded together.
    pub max_batch_rows: usize,
    /// Rows × longest prompt per prefill (`model.decode_batch_tokens`).
    pub max_batch_tokens: usize,
    /// Bytes of keys and values kept for prefixes (`model.kv_cache_mb`).
    pub kv_cache_bytes: usize,
    /// Fold the active adapter into the weights while decoding a batch.
    pub fold_adapter: bool,
}

struct Adapter {
    cfg: LoraConfig,
    tensors: Vec<(String, Tensor)>,
}

pub struct Engine {
    loaded: LoadedModel,
    cfg: EngineConfig,
    /// Servable names: `None` is the base model, `Some` an adapter on it.
    models: BTreeMap<String, Option<Adapter>>,
    /// Which entry of `models` the weights hold now.
    active: Option<String>,
    vocab_text: Arc<Vec<String>>,
    cache: PrefixCache,
}

impl Engine {
    /// The configured model, served as `cfg.served_model` (with its adapter if it has one).
    pub fn new(loaded: LoadedModel, cfg: EngineConfig, vocab_text: Arc<Vec<String>>) -> Self {
        let startup = loaded.model.lora_config().cloned().map(|lora| Adapter {
            cfg: lora,
            tensors: loaded
                .model
                .lora_parameters()
                .map(|(n, t)| (n.to_string(), t.copy()))
                .collect(),
        });
        let mut models = BTreeMap::new();
        models.insert(cfg.served_model.clone(), startup);
        Engine {
            active: Some(cfg.served_model.clone()),
            cache: PrefixCache::new(cfg.kv_cache_bytes),
            loaded,
            cfg,
            models,
            vocab_text,
        }
    }

    /// Serves requests until every sender is gone.
    pub fn run(mut self, rx: &Receiver<EngineRequest>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = Vec::new();
            self.take(first, &mut jobs);
            let deadline = Instant::now() + self.cfg.batch_window;
            while jobs.iter().map(|j| j.prompts.len()).sum::<usize>() < self.cfg.max_batch_rows {
                match rx.recv_deadline(deadline) {
                    Ok(r) => self.take(r, &mut jobs),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
            self.decode(jobs);
        }
    }

    /// Control requests are answered at once; completions for a known model are queued.
    fn take(&mut self, req: EngineRequest, jobs: &mut Vec<GenJob>) {
        match req {
            EngineRequest::Generate(job) => {
                if self.models.contains_key(&job.model) {
                    jobs.push(job);
                } else {
                    let _ = job.reply.send(Err(EngineError::UnknownModel(job.model)));
                }
            }
            EngineRequest::LoadAdapter {
                name,
                path,
                inplace,
                reply,
            } => {
                let _ = reply.send(self.load_adapter(&name, &path, inplace));
            }
            EngineRequest::UnloadAdapter { name, reply } => {
                let known = self.models.get(&name).is_some_and(Option::is_some);
                let res = if known && name != self.cfg.served_model {
                    self.models.remove(&name);
                    self.cache.forget_model(&name);
                    if self.active.as_deref() == Some(name.as_str()) {
                        self.active = None;
                    }
                    Ok(())
                } else {
                    Err(EngineError::UnknownModel(name))
                };
                let _ = reply.send(res);
            }
            EngineRequest::Models { reply } => {
                let base = &self.cfg.served_model;
                let list = self
                    .models
                    .keys()
                    .map(|n| (n.clone(), (n != base).then(|| base.clone())))
                    .collect();
                let _ = reply.send(list);
            }
        }
    }

    /// Loads the adapter in `path` as `name`; with `inplace` it replaces one already loaded
    /// under that name (never the configured model), which stays as it was if the new one fails.
    fn load_adapter(&mut self, name: &str, path: &str, inplace: bool) -> Result<(), EngineError> {
        let replaceable = inplace && name != self.cfg.served_model;
        if self.models.contains_key(name) && !replaceable {
            return Err(EngineError::AdapterExists(name.into()));
        }
        let bad = |reason: String| EngineError::BadAdapter {
            name: name.into(),
            path: path.into(),
            reason,
        };
        let dir = std::path::Path::new(path);
        let cfg = read_adapter_config(dir).map_err(|e| bad(e.to_string()))?;
        let tensors = read_adapter_tensors(dir).map_err(|e| bad(e.to_string()))?;
        let old = self
            .models
            .insert(name.into(), Some(Adapter { cfg, tensors }));
        if self.active.as_deref() == Some(name) {
            self.active = None; // its weights are the old ones
        }
        // Swapping it in now checks its names and shapes, so a bad adapter fails its load.
        if let Err(e) = self.activate(name) {
            match old {
                Some(previous) => self.models.insert(name.into(), previous),
                None => self.models.remove(name),
            };
            self.active = None;
            return Err(bad(e));
        }
        Ok(())
    }

    /// Puts `name`'s weights into the model.
    fn activate(&mut self, name: &str) -> Result<(), String> {
        if self.active.as_deref() == Some(name) {
            return Ok(());
        }
        self.active = None;
        let Some(entry) = self.models.get(name) else {
            return Err(format!("unknown model {name}"));
        };
        let model = &mut self.loaded.model;
        match entry {
            None => {
                if model.lora_config().is_some() {
                    model.set_lora_enabled(false).map_err(|e| e.to_string())?;
                }
            }
            Some(adapter) => {
                let fits = model.lora_config().is_some_and(|own| {
                    own.r == adapter.cfg.r
                        && own.alpha == adapter.cfg.alpha
                        && own.resolved_targets().ok() == adapter.cfg.resolved_targets().ok()
                });
                if !fits {
                    let l = &self.loaded;
                    let rebuilt = load_model(&l.path, l.device, l.model.kind(), Some(&adapter.cfg))
                        .map_err(|e| e.to_string())?;
                    self.loaded.model = rebuilt.model;
                    self.loaded.vs = rebuilt.vs;
                }
                let model = &mut self.loaded.model;
                let tensors = adapter
                    .tensors
                    .iter()
                    .map(|(n, t)| (n.clone(), t.shallow_clone()));
                model
                    .load_lora_tensors(tensors)
                    .map_err(|e| e.to_string())?;
                model.set_lora_enabled(true).map_err(|e| e.to_string())?;
            }
        }
        self.active = Some(name.into());
        Ok(())
    }

    /// Decodes the queued jobs, one batch per (model, sampling) group, and answers each.
    fn decode(&mut self, jobs: Vec<GenJob>) {
        let mut groups: Vec<Vec<GenJob>> = Vec::new();
        for job in jobs {
            match groups
                .iter_mut()
                .find(|g| g[0].model == job.model && g[0].sampling == job.sampling)
            {
                Some(g) => g.push(job),
                None => groups.push(vec![job]),
            }
        }
        for group in groups {
            let model = group[0].model.clone();
            if let Err(e) = self.activate(&model) {
                for job in group {
                    let _ = job.reply.send(Err(EngineError::Generate(e.clone())));
                }
                continue;
            }
            // Each request is answered as soon as its rows are done, not when the whole batch
            // is: a client (an episode) can run its tests while the others still decode.
            let mut answers = Answers::new(&group);
            if let Err(e) = self.decode_group(&group, &mut |row, g| answers.row(row, g)) {
                answers.fail(&e);
            }
        }
    }

    /// Every row of the group, numbered in job then row order, handed to `on_row` as it ends.
    fn decode_group(
        &mut self,
        group: &[GenJob],
        on_row: &mut dyn FnMut(usize, Generated),
    ) -> Result<(), EngineError> {
        let s = &group[0].sampling;
        let model_name = group[0].model.clone();
        let prompts: Vec<Vec<u32>> = group.iter().flat_map(|j| j.prompts.clone()).collect();
        let seeds: Vec<u64> = group.iter().flat_map(|j| j.seeds.clone()).collect();
        let mut stop_ids = self.loaded.tokenizer.eot_ids.clone();
        stop_ids.extend_from_slice(&s.stop_ids);
        let texts = Arc::clone(&self.vocab_text);
        let stop = s.stop.clone();
        let params = GenParams {
            max_new_tokens: s.max_tokens,
            sampling: SamplingParams {
                temperature: s.temperature,
                top_k: 0,
                top_p: s.top_p,
            },
            stop_ids,
            stop_rule: (!stop.is_empty()).then(|| {
                Arc::new(move |id: u32| {
                    texts
                        .get(id as usize)
                        .is_some_and(|t| stop.iter().any(|s| t.contains(s.as_str())))
                }) as Arc<dyn crate::model::generate::StopRule + Send + Sync>
            }),
        };
        let Engine {
            loaded, cfg, cache, ..
        } = self;
        let max_tokens = cfg.max_batch_tokens;
        let fold = cfg.fold_adapter;
        let mut run = |m: &crate::model::llama::Llama| {
            decode_rows(
                m,
                &prompts,
                &seeds,
                &params,
                max_tokens,
                cache,
                &model_name,
                on_row,
            )
        };
        let res = if fold {
            loaded
                .model
                .with_folded_lora(&mut run)
                .map_err(|e| EngineError::Generate(e.to_string()))?
        } else {
            run(&loaded.model)
        };
        res.map_err(|e| EngineError::Generate(e.to_string()))
    }
}

/// Decodes `prompts` in micro-batches of at most `max_tokens` rows × width, each row seeded
/// from `seeds`, reusing and refilling the prefix cache; each row goes to `on_row` as it ends.
#[allow(clippy::too_many_arguments)]
fn decode_rows(
    model: &crate::model::llama::Llama,
    prompts: &[Vec<u32>],
    seeds: &[u64],
    params: &GenParams,
    max_tokens: usize,
    cache: &mut PrefixCache,
    model_name: &str,
    on_row: &mut dyn FnMut(usize, Generated),
) -> Result<(), crate::model::generate::GenerateError> {
    let lens: Vec<usize> = prompts
        .iter()
        .map(|p| p.len() + params.max_new_tokens)
        .collect();
    for range in micro_batches(&lens, usize::MAX, max_tokens) {
        let (start, end) = (range.start, range.end);
        let chunk = &prompts[start..end];
        let taken: Vec<Option<SeqKv>> = chunk.iter().map(|p| cache.take(model_name, p)).collect();
        let prefixes: Vec<Option<&SeqKv>> = taken.iter().map(Option::as_ref).collect();
        let mut kept: HashMap<usize, SeqKv> = HashMap::new();
        let mut rng = RowSeeds(seeds[start..end].iter());
        generate_each_cached(
            model,
            chunk,
            &prefixes,
            params,
            &mut rng,
            cache.enabled(),
            &mut |i, g, kv| {
                if let Some(kv) = kv {
                    kept.insert(i, kv);
                }
                on_row(start + i, g);
            },
        )?;
        for (_, kv) in kept {
            cache.insert(model_name, kv);
        }
    }
    Ok(())
}

/// The replies of one decoded group: rows gather per request, and a request is answered
/// when its last row arrives; what is left unanswered when decoding fails gets the error.
struct Answers<'a> {
    group: &'a [GenJob],
    /// (request, row within it) of each row of the group.
    owner: Vec<(usize, usize)>,
    rows: Vec<Vec<Option<Generated>>>,
    answered: Vec<bool>,
}

impl<'a> Answers<'a> {
    fn new(group: &'a [GenJob]) -> Self {
        let owner = group
            .iter()
            .enumerate()
            .flat_map(|(j, job)| (0..job.prompts.len()).map(move |r| (j, r)))
            .collect();
        Answers {
            group,
            owner,
            rows: group.iter().map(|j| vec![None; j.prompts.len()]).collect(),
            answered: vec![false; group.len()],
        }
    }

    fn row(&mut self, row: usize, g: Generated) {
        let Some(&(j, r)) = self.owner.get(row) else {
            return;
        };
        let (Some(rows), Some(job)) = (self.rows.get_mut(j), self.group.get(j)) else {
            return;
        };
        if let Some(slot) = rows.get_mut(r) {
            *slot = Some(g);
        }
        if !self.answered[j] && rows.iter().all(Option::is_some) {
            self.answered[j] = true;
            let done = std::mem::take(rows).into_iter().flatten().collect();
            let _ = job.reply.send(Ok(done));
        }
    }

    fn fail(&mut self, e: &EngineError) {
        for (job, answered) in self.group.iter().zip(&mut self.answered) {
            if !*answered {
                *answered = true;
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

/// The seed of a request without one: drawn from the server's own stream.
pub fn fresh_seed(rng: &mut ChaCha8Rng) -> u64 {
    rng.next_u64()
}

/// A generator for unseeded requests.
pub fn seed_source() -> ChaCha8Rng {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    ChaCha8Rng::seed_from_u64(t)
}
