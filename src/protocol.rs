//! Every type that crosses a thread or goes to `events.jsonl` (DESIGN §6): plain
//! owned data tagged with job and episode ids — no tensors, no terminal types.
//! Headless commands and the workbench consume the same events; on disk each is
//! one JSON object per line with a `type` field (schema in docs/events.md).
use serde::{Deserialize, Serialize};

/// The version of the on-disk event schema.
pub const EVENTS_SCHEMA: u32 = 1;

/// One turn of an episode, as shown in the commands pane and stored in events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnRecord {
    /// 1-based turn index.
    pub turn: u32,
    /// The text the policy produced (model turns include the `### ` prefix).
    pub text: String,
    /// The parsed command in canonical form, when it parsed.
    pub command: Option<String>,
    /// False when the command did not parse or could not be applied.
    pub valid: bool,
    /// Why it was invalid.
    pub error: Option<String>,
    pub reward: f64,
    /// Sum of the log-probabilities of the sampled tokens, when a model produced it.
    pub logprob: Option<f64>,
    /// The state after the turn (`L<n> …`, `***`, feedback).
    pub state: String,
    /// Whether the state after the turn passes every test.
    pub solved: bool,
    /// 1-based line the edit touched, for marking it.
    pub edited_line: Option<usize>,
}

/// What happens in an episode, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EpisodeEvent {
    EpisodeStarted {
        job: u64,
        episode: u64,
        task_id: String,
        state: String,
    },
    Turn {
        job: u64,
        episode: u64,
        #[serde(flatten)]
        record: TurnRecord,
    },
    EpisodeFinished {
        job: u64,
        episode: u64,
        solved: bool,
        turns: u32,
        #[serde(rename = "return")]
        ret: f64,
        infra_error: bool,
    },
}
