//! One-shot answers (direct, CoT, and `coe data sample-bugs`' programs) sampled by
//! OpenAI-compatible servers — the remote backend of DESIGN §6 for the methods that reply
//! once. It lives here rather than beside the remote policy because an [`Answerer`] is an
//! evaluation type (eval sits above policy); the HTTP request and the checks on the answer
//! are the policy's (`policy::remote_http`).
//!
//! Prompts are built exactly as [`ModelAnswerer`](super::ModelAnswerer) builds them and sent
//! as token ids with the method's reply budget, stopping at end-of-turn only (a program spans
//! many lines). Each request gets the seed the in-process answerer would have drawn for its
//! row, in request order, so greedy replies are the local model's and `coe serve` samples
//! the same replies too. Requests run concurrently over the servers (request i starts on
//! server i mod n); a failed one moves to the next server, at most `retries` times, then its
//! reply is `failed` and scores as an infra error. Nothing waits longer than the timeouts.
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::format::messages;
use super::sampler::{
    AnswerError, AnswerRequest, Answerer, ModelAnswerConfig, Reply, decode_reply, prompt_ids,
    reply_budget,
};
use crate::config::RemoteSection;
use crate::model::chat::ChatFormat;
use crate::model::generate::FinishReason;
use crate::model::tokenizer::CoeTokenizer;
use crate::policy::remote_http::{Ask, CallError, Sampled, agent, parse, post, request};

/// Answers sampled by remote servers.
pub struct RemoteAnswerer {
    servers: Vec<String>,
    ask: Ask,
    tok: CoeTokenizer,
    chat: ChatFormat,
    cfg: ModelAnswerConfig,
    rng: ChaCha8Rng,
    agent: ureq::Agent,
    retries: usize,
    max_in_flight: usize,
    lost: AtomicU64,
}

impl RemoteAnswerer {
    /// Samples as `cfg` says from the servers of `section`; `tok` and `chat` are the served
    /// model's.
    pub fn new(
        section: &RemoteSection,
        tok: CoeTokenizer,
        chat: ChatFormat,
        cfg: ModelAnswerConfig,
    ) -> Result<Self, AnswerError> {
        let settings = |message: String| AnswerError::Settings {
            context_tokens: cfg.context_tokens,
            message,
        };
        if section.urls.is_empty() {
            return Err(settings("remote: no server URLs".into()));
        }
        cfg.sampling
            .validate()
            .map_err(|e| AnswerError::Generate(e.into()))?;
        let secs = |s: f64| Duration::from_secs_f64(s.max(0.001));
        Ok(RemoteAnswerer {
            servers: section.urls.clone(),
            ask: Ask {
                model: section.served_model.clone(),
                max_tokens: 1,
                temperature: cfg.sampling.temperature,
                top_p: cfg.sampling.top_p,
                stop_ids: tok.eot_ids.clone(),
                stop: Vec::new(),
            },
            tok,
            chat,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            cfg,
            agent: agent(secs(section.timeout_s), secs(section.connect_timeout_s)),
            retries: section.retries,
            max_in_flight: section.max_in_flight.max(1),
            lost: AtomicU64::new(0),
        })
    }

    /// The answerer a config's `model.remote` names, prompting with the tokenizer and chat
    /// format of `spec` (the model the servers run).
    pub fn from_config(
        section: &RemoteSection,
        spec: &str,
        cfg: ModelAnswerConfig,
    ) -> Result<Self, AnswerError> {
        let (tok, chat) =
            crate::model::loader::load_tokenizer(spec).map_err(|e| AnswerError::Task {
                task: String::new(),
                message: format!("remote: tokenizer of {spec}: {e}"),
            })?;
        Self::new(section, tok, chat, cfg)
    }

    /// Requests that failed on every server (their replies scored as infra errors).
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// One request, from server `first` on, until one answers or the tries run out.
    fn call(
        &self,
        prompt: &[u32],
        seed: u64,
        budget: usize,
        first: usize,
    ) -> Result<Sampled, CallError> {
        let ask = Ask {
            max_tokens: budget,
            ..self.ask.clone()
        };
        let body = serde_json::to_string(&request(&ask, prompt, seed)).unwrap_or_default();
        let n = self.servers.len();
        let mut last = None;
        for attempt in 0..=self.retries {
            let url = &self.servers[(first + attempt) % n];
            match post(&self.agent, url, "/completions", &body)
                .and_then(|text| parse(url, &text, self.tok.vocab_size()))
            {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(CallError::Transport {
            url: String::new(),
            reason: "no server".into(),
        }))
    }
}

impl Answerer for RemoteAnswerer {
    fn name(&self) -> String {
        format!("remote {} @ {}", self.ask.model, self.servers.join(", "))
    }

    fn answer(
        &mut self,
        requests: &[AnswerRequest<'_>],
        sink: &mut dyn FnMut(usize, Vec<Reply>),
    ) -> Result<(), AnswerError> {
        let mut rows = Vec::with_capacity(requests.len());
        for r in requests {
            let ids = prompt_ids(&self.tok, &self.chat, &messages(r.format, r.task))?;
            let budget = reply_budget(&self.cfg, r.format, ids.len());
            // Drawn for every row, as the in-process answerer draws them.
            rows.push((ids, budget, self.rng.next_u64()));
        }
        let queue = Mutex::new(0..rows.len());
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Reply)>();
        let this = &*self;
        std::thread::scope(|s| {
            for _ in 0..this.max_in_flight.min(rows.len()) {
                let (queue, tx, rows) = (&queue, tx.clone(), &rows);
                s.spawn(move || {
                    loop {
                        let next = queue.lock().ok().and_then(|mut q| q.next());
                        let Some(i) = next else { break };
                        let (ids, budget, seed) = &rows[i];
                        let reply = this.reply(ids, *budget, *seed, i);
                        if tx.send((i, reply)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for (i, reply) in rx {
                sink(i, vec![reply]);
            }
        });
        Ok(())
    }

    fn report(&self) -> Option<String> {
        let lost = self.lost();
        (lost > 0).then(|| {
            format!("remote: {lost} requests lost on every server (their replies are infra errors)")
        })
    }
}

impl RemoteAnswerer {
    fn reply(&self, prompt: &[u32], budget: usize, seed: u64, i: usize) -> Reply {
        let base = Reply {
            prompt_tokens: prompt.len(),
            ..Reply::default()
        };
        if budget == 0 {
            return Reply {
                over_context: true,
                ..base
            };
        }
        let failed = |reason: String| {
            self.lost.fetch_add(1, Ordering::Relaxed);
            Reply {
                failed: Some(reason),
                ..base.clone()
            }
        };
        match self.call(prompt, seed, budget, i % self.servers.len()) {
            Ok(s) => {
                let stopped = s.ids.last().is_some_and(|&id| self.tok.is_end_of_turn(id));
                let finished = if stopped {
                    FinishReason::Stop
                } else {
                    FinishReason::Length
                };
                decode_reply(&self.tok, s.ids, finished, prompt.len())
                    .unwrap_or_else(|e| failed(e.to_string()))
            }
            Err(e) => failed(e.to_string()),
        }
    }
}
