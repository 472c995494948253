//! The one interface everything that runs episodes goes through (DESIGN §6):
//! batched — observations in, command texts with their token ids and
//! log-probabilities out. Backends: the oracle (replays the reference repair),
//! a person on stdin, the in-process model, and `remote`: OpenAI-compatible
//! servers (vLLM, SGLang, `coe serve`) that return the sampled token ids and
//! their log-probabilities.
pub mod conversation;
mod human;
mod interface;
pub mod model;
mod oracle;
pub mod remote;
pub mod remote_http;

pub use human::HumanPolicy;
pub use model::{ModelPolicy, ModelPolicyConfig};
pub use oracle::OraclePolicy;
pub use remote::RemotePolicy;

pub use crate::protocol::Proposal;
pub use interface::{Policy, PolicyError, Query};
