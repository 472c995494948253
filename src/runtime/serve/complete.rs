//! `/v1/completions` on the HTTP side: checks a request against the server's limits, turns
//! it into an engine job (prompt ids, per-row seeds, sampling) and the engine's rows into the
//! OpenAI response. Runs on the HTTP handler threads, so tokenising text prompts and
//! decoding replies never hold up the model thread.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::Sender;
use rand_chacha::ChaCha8Rng;

use super::engine::{EngineError, EngineRequest, GenJob, Sampling, fresh_seed};
use crate::model::generate::{FinishReason, Generated};
use crate::model::tokenizer::CoeTokenizer;
use crate::protocol::openai::{
    ChoiceLogprobs, CompletionChoice, CompletionRequest, CompletionResponse, PromptInput, Usage,
    token_as_id,
};

/// What one request may ask for.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Largest `max_tokens`.
    pub max_tokens: usize,
    /// Prompt plus `max_tokens` of one row.
    pub max_model_len: usize,
    /// Largest `n`.
    pub max_n: usize,
    /// Prompts × `n` of one request.
    pub max_rows: usize,
    /// How long a request waits for the model before it is answered 503.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 << 20,
            max_tokens: 2048,
            max_model_len: 4096,
            max_n: 16,
            max_rows: 256,
            timeout: Duration::from_secs(600),
        }
    }
}

/// An answer other than 200: the status and the message of the error object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

pub fn bad(message: impl Into<String>) -> ApiError {
    ApiError {
        status: 400,
        message: message.into(),
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = match e {
            EngineError::UnknownModel(_) => 404,
            EngineError::AdapterExists(_) | EngineError::BadAdapter { .. } => 400,
            EngineError::Generate(_) => 500,
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

/// What the handler threads share.
pub struct Frontend {
    pub tok: CoeTokenizer,
    pub vocab_text: Arc<Vec<String>>,
    pub limits: Limits,
    pub engine: Sender<EngineRequest>,
    pub served_model: String,
    pub seeds: Mutex<ChaCha8Rng>,
    pub next_id: AtomicU64,
}

impl Frontend {
    /// Answers a completion request body.
    pub fn complete(&self, body: &[u8]) -> Result<CompletionResponse, ApiError> {
        let req: CompletionRequest =
            serde_json::from_slice(body).map_err(|e| bad(format!("invalid request: {e}")))?;
        let prompts = self.prompts(&req)?;
        let n = req.n.unwrap_or(1);
        let l = &self.limits;
        if n == 0 || n > l.max_n {
            return Err(bad(format!("n = {n}: must be between 1 and {}", l.max_n)));
        }
        if prompts.len() * n > l.max_rows {
            return Err(bad(format!(
                "{} prompts × n = {n} is over the limit of {} completions per request",
                prompts.len(),
                l.max_rows
            )));
        }
        let max_tokens = req.max_tokens.unwrap_or(16);
        if max_tokens == 0 || max_tokens > l.max_tokens {
            return Err(bad(format!(
                "max_tokens = {max_tokens}: must be between 1 and {}",
                l.max_tokens
            )));
        }
        if let Some(p) = prompts
            .iter()
            .find(|p| p.len() + max_tokens > l.max_model_len)
        {
            return Err(bad(format!(
                "This model's maximum context length is {} tokens; the prompt has {} and max_tokens is {max_tokens}",
                l.max_model_len,
                p.len()
            )));
        }
        let temperature = req.temperature.unwrap_or(1.0);
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(bad(format!(
                "temperature = {temperature}: must be 0 or more"
            )));
        }
        let top_p = req.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(bad(format!("top_p = {top_p}: must be in (0, 1]")));
        }
        if req.logprobs.is_some_and(|k| k > 20) {
            return Err(bad("logprobs: at most 20"));
        }
        let stop = req.stop.as_ref().map(|s| s.strings()).unwrap_or_default();
        if stop.len() > 8 || stop.iter().any(String::is_empty) {
            return Err(bad("stop: up to 8 non-empty strings"));
        }
        let vocab = self.vocab_text.len();
        let stop_ids = req.stop_token_ids.clone().unwrap_or_default();
        if let Some(id) = stop_ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(bad(format!(
                "stop_token_ids: {id} is outside the vocabulary of {vocab}"
            )));
        }
        let model = req
            .model
            .clone()
            .unwrap_or_else(|| self.served_model.clone());
        // Row (prompt p, choice j) is p * n + j, seeded with seed + j.
        let mut rows = Vec::with_capacity(prompts.len() * n);
        let mut seeds = Vec::with_capacity(prompts.len() * n);
        for p in &prompts {
            let seed = match req.seed {
                Some(s) => s as u64,
                None => self.seeds.lock().map_or(0, |mut r| fresh_seed(&mut r)),
            };
            for j in 0..n {
                rows.push(p.clone());
                seeds.push(seed.wrapping_add(j as u64));
            }
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job = GenJob {
            model: model.clone(),
            prompts: rows.clone(),
            seeds,
            sampling: Sampling {
                max_tokens,
                temperature,
                top_p,
                stop: stop.clone(),
                stop_ids,
            },
            reply: tx,
        };
        let unavailable = |m: &str| ApiError {
            status: 503,
            message: m.into(),
        };
        self.engine
            .send(EngineRequest::Generate(job))
            .map_err(|_| unavailable("the model thread has stopped"))?;
        let outs = rx
            .recv_timeout(l.timeout)
            .map_err(|_| unavailable("timed out waiting for the model"))??;
        Ok(self.response(&req, model, &rows, outs, &stop))
    }

    /// The request's prompts as ids, each checked against the vocabulary.
    fn prompts(&self, req: &CompletionRequest) -> Result<Vec<Vec<u32>>, ApiError> {
        let encode = |t: &str| {
            self.tok
                .encode(t, true)
                .map_err(|e| bad(format!("cannot tokenise the prompt: {e}")))
        };
        let prompts = match &req.prompt {
            None => return Err(bad("prompt is required")),
            Some(PromptInput::Text(t)) => vec![encode(t)?],
            Some(PromptInput::Ids(ids)) => vec![ids.clone()],
            Some(PromptInput::Texts(ts)) => {
                ts.iter().map(|t| encode(t)).collect::<Result<_, _>>()?
            }
            Some(PromptInput::IdLists(ls)) => ls.clone(),
        };
        if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
            return Err(bad("prompt: every prompt needs at least one token"));
        }
        let vocab = self.vocab_text.len();
        if let Some(id) = prompts.iter().flatten().find(|&&id| id as usize >= vocab) {
            return Err(bad(format!(
                "prompt: token id {id} is outside the vocabulary of {vocab}"
            )));
        }
        Ok(prompts)
    }

    fn response(
        &self,
        req: &CompletionRequest,
        model: String,
        rows: &[Vec<u32>],
        outs: Vec<Generated>,
        stop: &[String],
    ) -> CompletionResponse {
        let with_ids = req.return_token_ids == Some(true);
        let as_ids = req.return_tokens_as_token_ids == Some(true);
        let mut usage = Usage::default();
        let mut choices = Vec::with_capacity(outs.len());
        for (index, (prompt, g)) in rows.iter().zip(outs).enumerate() {
            usage.prompt_tokens += prompt.len();
            usage.completion_tokens += g.ids.len();
            let logprobs = req.logprobs.map(|_| self.logprobs(&g, as_ids));
            choices.push(CompletionChoice {
                index,
                text: self.text(&g, stop),
                logprobs,
                finish_reason: Some(
                    match g.finished_by {
                        FinishReason::Stop => "stop",
                        FinishReason::Length => "length",
                    }
                    .into(),
                ),
                token_ids: with_ids.then(|| g.ids.clone()),
                prompt_token_ids: with_ids.then(|| prompt.clone()),
            });
        }
        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        CompletionResponse {
            id: format!("cmpl-coe-{id}"),
            object: "text_completion".into(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            model,
            choices,
            prompt_token_ids: with_ids.then(|| rows.first().cloned().unwrap_or_default()),
            usage: Some(usage),
        }
    }

    /// The reply's text: end-of-turn ids left out, cut before the first stop string.
    fn text(&self, g: &Generated, stop: &[String]) -> String {
        let ids: Vec<u32> = g
            .ids
            .iter()
            .copied()
            .filter(|&id| !self.tok.is_end_of_turn(id))
            .collect();
        let mut text = self.tok.decode(&ids).unwrap_or_default();
        if let Some(cut) = stop.iter().filter_map(|s| text.find(s.as_str())).min() {
            text.truncate(cut);
        }
        text
    }

    /// Each sampled token with its log-probability; `top_logprobs` holds the sampled token
    /// only (the engine does not keep alternatives).
    fn logprobs(&self, g: &Generated, as_ids: bool) -> ChoiceLogprobs {
        let mut lp = ChoiceLogprobs::default();
        let mut offset = 0;
        for (&id, &p) in g.ids.iter().zip(&g.logprobs) {
            let text = self
                .vocab_text
                .get(id as usize)
                .cloned()
                .unwrap_or_default();
            let token = if as_ids {
                token_as_id(id)
            } else {
                text.clone()
            };
            lp.top_logprobs
                .push(Some(std::iter::once((token.clone(), p)).collect()));
            lp.tokens.push(token);
            lp.token_logprobs.push(Some(p));
            lp.text_offset.push(offset);
            offset += text.len();
        }
        lp
    }
}
