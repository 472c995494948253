//! The one interface everything that runs episodes goes through (DESIGN §6):
//! batched — observations in, command texts with their token ids and
//! log-probabilities out. Backends: the oracle (replays the reference repair),
//! a person on stdin, and the in-process model; an OpenAI-compatible HTTP
//! endpoint fits the same trait (it returns texts, token ids when the server
//! reports them).
pub mod conversation;
mod human;
mod interface;
pub mod model;
mod oracle;

pub use human::HumanPolicy;
pub use model::{ModelPolicy, ModelPolicyConfig};
pub use oracle::OraclePolicy;

pub use crate::protocol::Proposal;
pub use interface::{Policy, PolicyError, Query};
