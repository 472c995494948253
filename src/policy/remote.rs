//! The `remote` policy backend (DESIGN §6): replies sampled by OpenAI-compatible servers —
//! vLLM, SGLang or `coe serve` — for models and fleets bigger than this process.
//!
//! Prompts are built here exactly as the in-process policy builds them (`prompt_ids`, earlier
//! replies spliced in as their sampled ids) and sent as token ids; the servers send back the
//! sampled ids and their log-probabilities, never text to re-tokenise, so RL trains on what
//! was sampled. Each query gets the seed the in-process policy would have drawn for it, and
//! `coe serve` seeds a row with it the same way: with the same seed, remote and local replies
//! agree (tested).
//!
//! Each episode sticks to one server (a hash of its id) so that server's prefix cache holds
//! its earlier turns; the requests of a round run concurrently over all servers. A request
//! that fails in any way (refused, timed out, dropped, an error status, a body that is not a
//! completion) is retried on the next server, at most `retries` times; then the reply comes
//! back `failed` and the rollout ends that episode as an infra error, unscored. A server
//! that failed is tried last until it answers again, and the episode moves to the server
//! that answered. Nothing waits longer than the timeouts, and every query is answered.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::conversation::{PromptIds, prompt_ids};
use super::interface::{Policy, PolicyError, Query, propose_via_each};
use super::model::{ModelPolicyConfig, reply};
use super::remote_http::{Ask, CallError, Sampled, agent, parse, post, request};
use crate::config::RemoteSection;
use crate::model::chat::ChatFormat;
use crate::model::generate::{FinishReason, Generated};
use crate::model::sampling::SamplingParams;
use crate::model::tokenizer::{CoeTokenizer, TokenizerError};
use crate::protocol::Proposal;
use crate::protocol::openai::{LoadLoraRequest, UnloadLoraRequest};

/// What happened to the requests so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteStats {
    pub requests: u64,
    /// Requests answered by another server after their first one failed.
    pub failed_over: u64,
    /// Requests that failed on every try: their episodes ended as infra errors.
    pub lost: u64,
    /// The first failure seen, for the report.
    pub first_failure: Option<String>,
}

pub struct RemotePolicy {
    servers: Vec<String>,
    /// The served model's own name (adapters published by RL come and go on top).
    base_model: String,
    ask: Ask,
    tok: CoeTokenizer,
    chat: ChatFormat,
    /// Prompt budget: context minus room for the reply.
    budget: usize,
    rng: ChaCha8Rng,
    agent: ureq::Agent,
    retries: usize,
    max_in_flight: usize,
    home: HashMap<u64, usize>,
    down: Vec<AtomicBool>,
    stats: RemoteStats,
}

/// The calls of one round share these (read-only apart from the `down` flags).
struct Caller<'a> {
    servers: &'a [String],
    ask: &'a Ask,
    agent: &'a ureq::Agent,
    retries: usize,
    down: &'a [AtomicBool],
    vocab: usize,
}

/// How one query's call went: the answer, the server that gave it, the failed tries.
struct Outcome {
    result: Result<Sampled, CallError>,
    server: usize,
    failures: Vec<CallError>,
}

impl Caller<'_> {
    fn call(&self, prompt: &[u32], seed: u64, home: usize) -> Outcome {
        let n = self.servers.len();
        // Home first, then the others in ring order; servers that failed lately go last.
        let ring: Vec<usize> = (0..n).map(|k| (home + k) % n).collect();
        let (mut order, late): (Vec<usize>, Vec<usize>) = ring
            .into_iter()
            .partition(|&s| !self.down[s].load(Ordering::Relaxed));
        order.extend(late);
        let body = serde_json::to_string(&request(self.ask, prompt, seed)).unwrap_or_default();
        let mut failures = Vec::new();
        for attempt in 0..=self.retries {
            let server = order[attempt % n];
            let url = &self.servers[server];
            let result = post(self.agent, url, "/completions", &body)
                .and_then(|text| parse(url, &text, self.vocab));
            match result {
                Ok(s) => {
                    self.down[server].store(false, Ordering::Relaxed);
                    return Outcome {
                        result: Ok(s),
                        server,
                        failures,
                    };
                }
                Err(e) => {
                    self.down[server].store(true, Ordering::Relaxed);
                    failures.push(e);
                }
            }
        }
        let last = failures.pop().unwrap_or(CallError::Transport {
            url: String::new(),
            reason: "no server".into(),
        });
        Outcome {
            result: Err(last),
            server: home,
            failures,
        }
    }
}

/// A fixed spread of episode ids over servers (splitmix64's finaliser).
fn server_of(episode: u64, n: usize) -> usize {
    let mut z = episode.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % n.max(1) as u64) as usize
}

impl RemotePolicy {
    /// Samples as `cfg` says (temperature, top-p, lengths, seed) from the servers of
    /// `section`; `tok` and `chat` are the served model's.
    pub fn new(
        section: &RemoteSection,
        tok: CoeTokenizer,
        chat: ChatFormat,
        cfg: &ModelPolicyConfig,
    ) -> Result<Self, PolicyError> {
        if section.urls.is_empty() {
            return Err(PolicyError::Other("remote: no server URLs".into()));
        }
        if cfg.max_new_tokens == 0 || cfg.max_new_tokens >= cfg.context_tokens {
            return Err(PolicyError::Other(format!(
                "remote: max_new_tokens {} leaves no room for a prompt in {} tokens",
                cfg.max_new_tokens, cfg.context_tokens
            )));
        }
        let secs = |s: f64| Duration::from_secs_f64(s.max(0.001));
        Ok(RemotePolicy {
            servers: section.urls.clone(),
            base_model: section.served_model.clone(),
            ask: Ask {
                model: section.served_model.clone(),
                max_tokens: cfg.max_new_tokens,
                temperature: cfg.sampling.temperature,
                top_p: cfg.sampling.top_p,
                stop_ids: tok.eot_ids.clone(),
                // A command is one line: stop at the first token whose text holds a newline.
                stop: vec!["\n".into()],
            },
            budget: cfg.context_tokens - cfg.max_new_tokens,
            tok,
            chat,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            agent: agent(secs(section.timeout_s), secs(section.connect_timeout_s)),
            retries: section.retries,
            max_in_flight: section.max_in_flight.max(1),
            home: HashMap::new(),
            down: section
                .urls
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
            stats: RemoteStats::default(),
        })
    }

    /// The backend a config's `model.remote` names, prompting with the tokenizer and chat
    /// format of `spec` (the model the servers run: `default`, a `.gguf`, a HF directory).
    pub fn from_config(
        section: &RemoteSection,
        spec: &str,
        cfg: &ModelPolicyConfig,
    ) -> Result<Self, PolicyError> {
        let (tok, chat) = crate::model::loader::load_tokenizer(spec)
            .map_err(|e| PolicyError::Other(format!("remote: tokenizer of {spec}: {e}")))?;
        Self::new(section, tok, chat, cfg)
    }

    pub fn stats(&self) -> &RemoteStats {
        &self.stats
    }

    pub fn tokenizer(&self) -> &CoeTokenizer {
        &self.tok
    }

    /// The prompt for the turn after `history` whose user message is `observation`.
    pub fn prompt_from(
        &self,
        history: &[(String, Proposal)],
        observation: &str,
    ) -> Result<PromptIds, TokenizerError> {
        prompt_ids(&self.tok, &self.chat, history, observation, self.budget)
    }

    /// Switches sampling (top-k is not sent: the API subset has none).
    pub fn set_sampling(&mut self, sampling: &SamplingParams) {
        self.ask.temperature = sampling.temperature;
        self.ask.top_p = sampling.top_p;
    }

    /// Restarts the seed stream, as the in-process policy's `reseed`.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    /// The model name requests ask for now.
    pub fn model(&self) -> &str {
        &self.ask.model
    }

    /// Publishes the adapter in `dir` (PEFT format, readable by every server) under `name`
    /// on every server, samples from it from now on, and unloads the one published before.
    /// Fails only when no server took it; a server that refused is marked down.
    pub fn publish_adapter(&mut self, name: &str, dir: &str) -> Result<(), PolicyError> {
        // In place: publishing a name again (a retried publish, a resumed run) replaces it.
        let body = serde_json::to_string(&LoadLoraRequest {
            lora_name: name.into(),
            lora_path: dir.into(),
            load_inplace: true,
        })
        .unwrap_or_default();
        let mut errors = Vec::new();
        for (i, url) in self.servers.iter().enumerate() {
            match post(&self.agent, url, "/load_lora_adapter", &body) {
                Ok(_) => self.down[i].store(false, Ordering::Relaxed),
                Err(e) => {
                    self.down[i].store(true, Ordering::Relaxed);
                    errors.push(e.to_string());
                }
            }
        }
        if errors.len() == self.servers.len() {
            return Err(PolicyError::Other(format!(
                "remote: no server loaded adapter {name} from {dir}: {}",
                errors.join("; ")
            )));
        }
        let previous = std::mem::replace(&mut self.ask.model, name.into());
        if previous != self.base_model && previous != name {
            let body = serde_json::to_string(&UnloadLoraRequest {
                lora_name: previous,
            })
            .unwrap_or_default();
            for url in &self.servers {
                // An unload that fails only leaves memory in use on that server.
                let _ = post(&self.agent, url, "/unload_lora_adapter", &body);
            }
        }
        Ok(())
    }

    fn proposal(&self, s: Sampled) -> Result<Proposal, TokenizerError> {
        let stopped = s.ids.last().is_some_and(|&id| self.tok.is_end_of_turn(id));
        reply(
            &self.tok,
            Generated {
                ids: s.ids,
                logprobs: s.logprobs,
                finished_by: if stopped {
                    FinishReason::Stop
                } else {
                    FinishReason::Length
                },
            },
        )
    }
}

impl Policy for RemotePolicy {
    fn name(&self) -> String {
        format!("remote {} @ {}", self.ask.model, self.servers.join(", "))
    }

    fn propose(&mut self, queries: &[Query<'_>]) -> Result<Vec<Proposal>, PolicyError> {
        propose_via_each(self, queries)
    }

    fn propose_each(
        &mut self,
        queries: &[Query<'_>],
        ready: &mut dyn FnMut(usize, Proposal),
    ) -> Result<(), PolicyError> {
        let prompts = queries
            .iter()
            .map(|q| {
                self.prompt_from(q.history, q.observation)
                    .map(|p| p.ids)
                    .map_err(|e| PolicyError::Task {
                        task: q.task.id.clone(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Drawn in query order, as the in-process policy draws its rows' streams.
        let seeds: Vec<u64> = queries.iter().map(|_| self.rng.next_u64()).collect();
        let n = self.servers.len();
        let homes: Vec<usize> = queries
            .iter()
            .map(|q| {
                *self
                    .home
                    .entry(q.episode)
                    .or_insert(server_of(q.episode, n))
            })
            .collect();
        let caller = Caller {
            servers: &self.servers,
            ask: &self.ask,
            agent: &self.agent,
            retries: self.retries,
            down: &self.down,
            vocab: self.tok.vocab_size(),
        };
        let queue = Mutex::new(0..queries.len());
        let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
        let mut answers = Vec::with_capacity(queries.len());
        std::thread::scope(|s| {
            for _ in 0..self.max_in_flight.min(queries.len()) {
                let (caller, queue, tx) = (&caller, &queue, tx.clone());
                let (prompts, seeds, homes) = (&prompts, &seeds, &homes);
                s.spawn(move || {
                    loop {
                        let next = queue.lock().ok().and_then(|mut q| q.next());
                        let Some(i) = next else { break };
                        let out = caller.call(&prompts[i], seeds[i], homes[i]);
                        if tx.send((i, out)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            // Handed over as each answer comes, so the caller steps those episodes now.
            for (i, out) in rx {
                let p = match out.result {
                    Ok(sampled) => match self.proposal(sampled) {
                        Ok(p) => p,
                        Err(e) => failed(e.to_string()),
                    },
                    Err(e) => failed(e.to_string()),
                };
                answers.push((i, out.server, out.failures, p.failed.is_some()));
                ready(i, p);
            }
        });
        for (i, server, failures, lost) in answers {
            self.stats.requests += 1;
            if let Some(e) = failures.first()
                && self.stats.first_failure.is_none()
            {
                self.stats.first_failure = Some(e.to_string());
            }
            if lost {
                self.stats.lost += 1;
            } else if !failures.is_empty() {
                self.stats.failed_over += 1;
                if let Some(q) = queries.get(i) {
                    self.home.insert(q.episode, server);
                }
            }
        }
        Ok(())
    }

    fn end_episode(&mut self, episode: u64) {
        self.home.remove(&episode);
    }

    fn report(&self) -> Option<String> {
        let s = &self.stats;
        (s.failed_over > 0 || s.lost > 0).then(|| {
            format!(
                "remote: {} requests, {} answered by another server after a failure, {} lost (their episodes are infra errors); first failure: {}",
                s.requests,
                s.failed_over,
                s.lost,
                s.first_failure.as_deref().unwrap_or("-")
            )
        })
    }
}

fn failed(reason: String) -> Proposal {
    Proposal {
        failed: Some(reason),
        ..Proposal::default()
    }
}

#[cfg(test)]
mod tests {
    use super::server_of;

    #[test]
    fn episodes_spread_over_servers_and_stay_put() {
        let counts = (0..1000u64).fold([0usize; 3], |mut c, e| {
            c[server_of(e, 3)] += 1;
            c
        });
        assert!(counts.iter().all(|&c| c > 250), "{counts:?}");
        assert_eq!(server_of(42, 3), server_of(42, 3));
    }
}
