//! The policy interface: what a policy is asked per episode ([`Query`]), the batched
//! [`Policy`] trait and its error. Apart from `mod.rs` so the backends import it without a
//! cycle through the module that re-exports them.
use crate::env::buffer::Buffer;
use crate::protocol::Proposal;
use crate::task::Task;

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

    /// The episode ended: state kept for it (a model's cached keys and values) can go.
    fn end_episode(&mut self, _episode: u64) {}

    /// A line on what went wrong along the way that the results do not show (e.g. remote
    /// requests retried on another server or lost), for the command to print.
    fn report(&self) -> Option<String> {
        None
    }
}

/// [`Policy::propose`] for a policy whose natural form is [`Policy::propose_each`]: the
/// proposals handed over, put back in query order.
pub fn propose_via_each<P: Policy + ?Sized>(
    policy: &mut P,
    queries: &[Query<'_>],
) -> Result<Vec<Proposal>, PolicyError> {
    let mut out: Vec<Option<Proposal>> = vec![None; queries.len()];
    policy.propose_each(queries, &mut |i, p| out[i] = Some(p))?;
    Ok(out.into_iter().flatten().collect())
}
