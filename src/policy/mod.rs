//! The one interface everything that runs episodes goes through (DESIGN §6):
//! batched — observations in, command texts with their token ids and
//! log-probabilities out. Backends: the oracle (replays the reference repair),
//! a person on stdin, and the in-process model; an OpenAI-compatible HTTP
//! endpoint fits the same trait (it returns texts, token ids when the server
//! reports them).
pub mod conversation;
mod human;
pub mod model;
mod oracle;

pub use human::HumanPolicy;
pub use model::{ModelPolicy, ModelPolicyConfig};
pub use oracle::OraclePolicy;

use crate::data::task::Task;
use crate::env::buffer::Buffer;
use crate::env::episode::Source;

/// What a policy is asked for one episode this turn.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub episode: u64,
    pub task: &'a Task,
    /// The code as it stands (the oracle plans from it; models read `history`).
    pub buffer: &'a Buffer,
    /// Earlier turns: the user message and the policy's reply, oldest first.
    pub history: &'a [(String, Proposal)],
    /// The user message of this turn (the whole first message on turn 1).
    pub observation: &'a str,
}

/// One reply. For a model, `token_ids` are exactly the sampled ids (stop token
/// included) and `logprobs` their log-probabilities; training uses these, never a
/// re-tokenisation of `text`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Proposal {
    pub text: String,
    pub token_ids: Vec<u32>,
    pub logprobs: Vec<f32>,
    /// Typed by a person (the `### ` prefix is optional) or produced by a policy.
    pub person: bool,
}

impl Proposal {
    pub fn source(&self) -> Source {
        if self.person {
            Source::Person
        } else {
            Source::Model
        }
    }

    /// Sum of the token log-probabilities, when there are any.
    pub fn logprob(&self) -> Option<f64> {
        if self.logprobs.is_empty() {
            None
        } else {
            Some(self.logprobs.iter().map(|&x| f64::from(x)).sum())
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("task {task}: {message}")]
    Task { task: String, message: String },
    #[error("input closed")]
    InputClosed,
    #[error("{0}")]
    Other(String),
}

/// A batched policy.
pub trait Policy {
    /// Shown in tables and provenance, e.g. `oracle` or the model path.
    fn name(&self) -> String;
    /// One proposal per query, in order.
    fn propose(&mut self, queries: &[Query<'_>]) -> Result<Vec<Proposal>, PolicyError>;

    /// As [`Policy::propose`], but hands each proposal to `ready(index, proposal)` as soon
    /// as it exists, so the caller can step that episode (run its tests) while the rest are
    /// still being produced. Every index is handed over exactly once, in any order. The
    /// default produces them all first; the model policy streams rows as they finish.
    fn propose_each(
        &mut self,
        queries: &[Query<'_>],
        ready: &mut dyn FnMut(usize, Proposal),
    ) -> Result<(), PolicyError> {
        for (i, p) in self.propose(queries)?.into_iter().enumerate() {
            ready(i, p);
        }
        Ok(())
    }
}
