//! Where one-shot answers come from: a model sampling whole replies, or the oracle writing
//! the reference solution in the method's reply format (which checks the scoring path, not a
//! model: it must score 100% on a valid file).
//!
//! The model answerer decodes every request of a call in consecutive micro-batches bounded by
//! a token budget (rows × (longest prompt + reply budget), since prefill and the KV cache grow
//! with both) and hands each finished micro-batch to a sink at once, so the caller can run its
//! tests while the next one decodes. A reply runs until an end-of-turn token or its budget:
//! unlike a CoE command it spans many lines. Each row draws its sampling stream from one
//! seeded generator in request order, so a run is reproducible and a reply does not depend on
//! how the requests were split into micro-batches. Prompts are tokenised template piece by
//! template piece, as `chat::encode_conversation` does for SFT, so evaluation sees the tokens
//! training saw.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::format::{AnswerFormat, cot_reply, direct_reply, messages};
use crate::data::rationale::rationale;
use crate::model::chat::{ChatFormat, Message};
use crate::model::generate::{FinishReason, GenParams, GenerateError, generate};
use crate::model::loader::LoadedModel;
use crate::model::sampling::SamplingParams;
use crate::model::tokenizer::{CoeTokenizer, TokenizerError};
use crate::task::Task;

/// Rows × (longest prompt + reply budget) per micro-batch.
pub const DEFAULT_MAX_BATCH_TOKENS: usize = 16_384;
/// A prompt that leaves fewer tokens than this for the reply is not sent to the model.
pub const MIN_REPLY_TOKENS: usize = 64;

/// One conversation to answer: the task supplies the prompt (and, for the oracle, the answer).
#[derive(Debug, Clone, Copy)]
pub struct AnswerRequest<'a> {
    pub task: &'a Task,
    pub format: AnswerFormat,
}

/// A reply as produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reply {
    /// The reply text, without the end-of-turn token.
    pub text: String,
    /// The sampled ids, the stop token included (empty for the oracle).
    pub token_ids: Vec<u32>,
    /// Prompt length in tokens (0 for the oracle).
    pub prompt_tokens: usize,
    /// The reply ran out of budget before ending its turn.
    pub truncated: bool,
    /// The prompt left no room for a reply within the context, so none was sampled.
    pub over_context: bool,
    /// No reply came (a remote answerer's servers all failed): scored as an infra error.
    pub failed: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error("task {task:?}: {message}")]
    Task { task: String, message: String },
    #[error("context of {context_tokens} tokens: {message}")]
    Settings {
        context_tokens: usize,
        message: String,
    },
}

/// Something that answers one-shot requests, batched.
pub trait Answerer {
    /// Shown in tables and provenance: `oracle` or the model path.
    fn name(&self) -> String;
    /// Answers every request in order, handing each finished run of replies to `sink` with
    /// the index of its first request.
    fn answer(
        &mut self,
        requests: &[AnswerRequest<'_>],
        sink: &mut dyn FnMut(usize, Vec<Reply>),
    ) -> Result<(), AnswerError>;
    /// What went wrong on the way, for the summary (a remote answerer's lost requests).
    fn report(&self) -> Option<String> {
        None
    }
}

/// Writes the reference solution in the request's format (CoT with the synthesised rationale).
#[derive(Debug, Default)]
pub struct OracleAnswerer;

impl Answerer for OracleAnswerer {
    fn name(&self) -> String {
        "oracle".into()
    }

    fn answer(
        &mut self,
        requests: &[AnswerRequest<'_>],
        sink: &mut dyn FnMut(usize, Vec<Reply>),
    ) -> Result<(), AnswerError> {
        for (i, r) in requests.iter().enumerate() {
            let solution = r
                .task
                .solution
                .as_deref()
                .ok_or_else(|| AnswerError::Task {
                    task: r.task.id.clone(),
                    message: "has no `solution`; the oracle needs the reference program".into(),
                })?;
            let text = match r.format {
                AnswerFormat::Direct | AnswerFormat::Write => direct_reply(solution),
                AnswerFormat::Cot => {
                    let ops: Vec<&str> = r
                        .task
                        .corruptions
                        .iter()
                        .flatten()
                        .map(|s| s.as_str())
                        .collect();
                    cot_reply(&rationale(&r.task.buggy, solution, &ops), solution)
                }
            };
            sink(
                i,
                vec![Reply {
                    text,
                    ..Reply::default()
                }],
            );
        }
        Ok(())
    }
}

/// How the model answerer samples.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelAnswerConfig {
    pub sampling: SamplingParams,
    /// Prompt plus reply, in tokens (`env.context_tokens`).
    pub context_tokens: usize,
    pub max_batch_tokens: usize,
    /// Overrides the format's reply budget (tests use short replies).
    pub max_new_tokens: Option<usize>,
    pub seed: u64,
}

impl ModelAnswerConfig {
    /// Sampling at `temperature` with `seed`, and the rest from the config: `eval.top_p`,
    /// `eval.answer_tokens`, `env.context_tokens` and `model.decode_batch_tokens`.
    pub fn from_config(cfg: &crate::config::Config, temperature: f64, seed: u64) -> Self {
        ModelAnswerConfig {
            max_new_tokens: cfg.eval.answer_tokens,
            max_batch_tokens: cfg.model.decode_batch_tokens,
            ..ModelAnswerConfig::new(temperature, cfg.eval.top_p, cfg.env.context_tokens, seed)
        }
    }

    /// Sampling at `temperature` / `top_p` with the formats' reply budgets.
    pub fn new(temperature: f64, top_p: f64, context_tokens: usize, seed: u64) -> Self {
        ModelAnswerConfig {
            sampling: SamplingParams {
                temperature,
                top_k: 0,
                top_p,
            },
            context_tokens,
            max_batch_tokens: DEFAULT_MAX_BATCH_TOKENS,
            max_new_tokens: None,
            seed,
        }
    }
}

/// A model sampling whole replies.
pub struct ModelAnswerer {
    loaded: LoadedModel,
    cfg: ModelAnswerConfig,
    rng: ChaCha8Rng,
}

impl ModelAnswerer {
    pub fn new(loaded: LoadedModel, cfg: ModelAnswerConfig) -> Result<Self, AnswerError> {
        cfg.sampling
            .validate()
            .map_err(|e| AnswerError::Generate(e.into()))?;
        if cfg.context_tokens <= MIN_REPLY_TOKENS {
            return Err(AnswerError::Settings {
                context_tokens: cfg.context_tokens,
                message: format!("leaves no room for a prompt and a reply of {MIN_REPLY_TOKENS}"),
            });
        }
        Ok(ModelAnswerer {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            loaded,
            cfg,
        })
    }

    pub fn loaded(&self) -> &LoadedModel {
        &self.loaded
    }

    /// The prompt ids of a conversation with the generation prompt opened.
    pub fn prompt_ids(&self, msgs: &[Message]) -> Result<Vec<u32>, TokenizerError> {
        prompt_ids(&self.loaded.tokenizer, &self.loaded.chat, msgs)
    }

    /// The reply budget of one prompt: the format's, cut to what the context leaves; 0 when
    /// that is under [`MIN_REPLY_TOKENS`].
    fn budget(&self, format: AnswerFormat, prompt_len: usize) -> usize {
        reply_budget(&self.cfg, format, prompt_len)
    }

    fn reply(
        &self,
        ids: Vec<u32>,
        finished: FinishReason,
        prompt_tokens: usize,
    ) -> Result<Reply, TokenizerError> {
        decode_reply(&self.loaded.tokenizer, ids, finished, prompt_tokens)
    }
}

impl Answerer for ModelAnswerer {
    fn name(&self) -> String {
        match &self.loaded.adapter {
            Some(a) => format!("{} + {a}", self.loaded.path),
            None => self.loaded.path.clone(),
        }
    }

    fn answer(
        &mut self,
        requests: &[AnswerRequest<'_>],
        sink: &mut dyn FnMut(usize, Vec<Reply>),
    ) -> Result<(), AnswerError> {
        let mut rows = Vec::with_capacity(requests.len());
        for r in requests {
            let ids = self.prompt_ids(&messages(r.format, r.task))?;
            let budget = self.budget(r.format, ids.len());
            rows.push((ids, budget));
        }
        let mut start = 0;
        while let Some((first, budget)) = rows.get(start) {
            let budget = *budget;
            if budget == 0 {
                // Keep the generator in step, so later rows sample as if this one had.
                self.rng.next_u64();
                let reply = Reply {
                    prompt_tokens: first.len(),
                    over_context: true,
                    ..Reply::default()
                };
                sink(start, vec![reply]);
                start += 1;
                continue;
            }
            let mut end = start + 1;
            let mut width = first.len();
            while let Some((next, b)) = rows.get(end) {
                let w = width.max(next.len());
                if *b != budget || (w + budget) * (end + 1 - start) > self.cfg.max_batch_tokens {
                    break;
                }
                width = w;
                end += 1;
            }
            let prompts: Vec<Vec<u32>> = rows
                .get(start..end)
                .unwrap_or_default()
                .iter()
                .map(|(ids, _)| ids.clone())
                .collect();
            let params = GenParams {
                max_new_tokens: budget,
                sampling: self.cfg.sampling.clone(),
                stop_ids: self.loaded.tokenizer.eot_ids.clone(),
                stop_rule: None,
            };
            // A fixed adapter: folded into the weights while sampling, restored exactly.
            let rng = &mut self.rng;
            let generated = self
                .loaded
                .model
                .with_folded_lora(|m| generate(m, &prompts, &params, rng))
                .map_err(GenerateError::from)??;
            let mut replies = Vec::with_capacity(generated.len());
            for (g, p) in generated.into_iter().zip(&prompts) {
                replies.push(self.reply(g.ids, g.finished_by, p.len())?);
            }
            sink(start, replies);
            start = end;
        }
        Ok(())
    }
}

/// A reply from its sampled ids: the text without a final end-of-turn token, the ids whole.
pub fn decode_reply(
    tok: &CoeTokenizer,
    ids: Vec<u32>,
    finished: FinishReason,
    prompt_tokens: usize,
) -> Result<Reply, TokenizerError> {
    let shown = match ids.split_last() {
        Some((&last, rest)) if finished == FinishReason::Stop && tok.is_end_of_turn(last) => rest,
        _ => ids.as_slice(),
    };
    Ok(Reply {
        text: tok.decode(shown)?,
        truncated: finished == FinishReason::Length,
        token_ids: ids,
        prompt_tokens,
        over_context: false,
        failed: None,
    })
}

/// The reply budget of one prompt: the format's (or the configured override), cut to what
/// the context leaves; 0 when that is under [`MIN_REPLY_TOKENS`].
pub fn reply_budget(cfg: &ModelAnswerConfig, format: AnswerFormat, prompt_len: usize) -> usize {
    let want = cfg.max_new_tokens.unwrap_or(format.max_new_tokens());
    let room = cfg.context_tokens.saturating_sub(prompt_len);
    if room < MIN_REPLY_TOKENS.min(want) {
        0
    } else {
        want.min(room)
    }
}

/// A conversation's prompt ids with the assistant turn opened, one template piece at a time.
pub fn prompt_ids(
    tok: &CoeTokenizer,
    fmt: &ChatFormat,
    msgs: &[Message],
) -> Result<Vec<u32>, TokenizerError> {
    let mut ids = Vec::new();
    for piece in fmt.pieces(msgs, true) {
        ids.extend(tok.encode(&piece.text, false)?);
    }
    Ok(ids)
}
