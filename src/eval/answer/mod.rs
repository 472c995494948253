//! The one-shot baselines of DESIGN §5: *direct answer* (the whole fixed program in one
//! reply) and *chain of thought* (prose reasoning, then the program), plus the prompt that
//! asks a model to write a program from scratch (`coe data sample-bugs`).
//!
//! Evaluation and SFT must see byte-identical conversations, so both build them here: the
//! `*_messages` functions give the user turn, the `*_reply` functions the exact assistant
//! text SFT trains on, and [`extract_program`] reads a program back out of whatever a model
//! replied. The prompts are short on purpose: the target models are small and their context
//! is 2,048 tokens, most of which the task, the tests and the program already take. Each
//! conversation is a single user turn without a system message, like the CoE prompt, so a
//! template's default system prompt applies the same way to every method.
//!
//! Programs travel in a Markdown fence tagged `python`; a program that itself holds a run of
//! three backticks gets a longer fence, so no answer can close its own fence early.

mod evaluate;
mod extract;
mod format;
mod remote;
pub mod sample_bugs;
mod sampler;
mod score;

pub use evaluate::{OneShotOptions, OneShotSample, as_episodes, run_one_shot};
pub use extract::{extract_program, fence_for};
pub use format::{
    AnswerFormat, COT_MAX_NEW_TOKENS, DIRECT_MAX_NEW_TOKENS, cot_messages, cot_reply,
    direct_messages, direct_reply, messages, write_messages,
};
pub use remote::RemoteAnswerer;
pub use sampler::{
    AnswerError, AnswerRequest, Answerer, DEFAULT_MAX_BATCH_TOKENS, MIN_REPLY_TOKENS,
    ModelAnswerConfig, ModelAnswerer, OracleAnswerer, Reply, prompt_ids,
};
pub use score::{Scored, Tally, Verdict, answer_and_score, failure_kind, failures_by_kind, score};

#[cfg(test)]
mod tests;
