//! SFT examples: demonstration files turned into the exact token sequences the model sees
//! and produces at rollout time, with the assistant's tokens (the commands and their
//! end-of-turn marker) marked as the only targets.
//!
//! A Chain-of-Edits demonstration stores its turns' states but not the first observation,
//! so every demonstration is replayed in the environment (its tests run in the sandbox):
//! that yields the first user message exactly as an episode renders it, and checks the
//! record — a demonstration whose replay does not reproduce its states is left out and
//! counted, because training on a conversation the environment would never show teaches the
//! wrong thing. Direct-answer and CoT records (`{task, answer}`, `{task, reasoning, answer}`)
//! use the baselines' prompt formats from `eval::answer`. Replays run in parallel and are
//! cached per data file (`replay_cache`), so only the first start pays for them.
use std::path::{Path, PathBuf};

use super::replay_cache::{Conversation, ReplayCache};
use super::tokens::Sequence;
use crate::config::EnvSection;
use crate::data::jsonl::{self, JsonlError};
use crate::env::episode::{Episode, Runner, Source};
use crate::model::chat::{ChatFormat, Message, Role, encode_conversation};
use crate::model::tokenizer::{CoeTokenizer, TokenizerError};
use crate::protocol::run::Limits;
use crate::task::{CotDemo, Demonstration, DirectDemo};
use crate::util::parallel_map;

/// What kind of demonstrations a file holds, told by its first record's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoKind {
    Coe,
    Direct,
    Cot,
}

/// One training conversation.
#[derive(Debug, Clone)]
pub struct Example {
    pub id: String,
    pub seq: Sequence,
}

/// What loading kept and dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    pub records: usize,
    pub kept: usize,
    /// Replay did not reproduce the recorded states (or the sandbox failed).
    pub replay_mismatch: usize,
    /// Longer than the context.
    pub too_long: usize,
    pub kind: Option<&'static str>,
    /// The replays came from the cache (Chain-of-Edits files only).
    pub cached: bool,
    /// Why the replays could not be cached, if they could not.
    pub cache_error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExampleError {
    #[error(transparent)]
    Jsonl(#[from] JsonlError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("{0}: the file holds no records")]
    Empty(PathBuf),
    #[error(
        "{path}:{line}: a {found} record in a file of {expected} records; give each kind its own file"
    )]
    Mixed {
        path: PathBuf,
        line: usize,
        expected: &'static str,
        found: &'static str,
    },
    #[error(
        "{path}:{line}: not a demonstration: expected a `turns` (Chain-of-Edits), `reasoning` and `answer` (CoT) or `answer` (direct) field"
    )]
    Unknown { path: PathBuf, line: usize },
}

impl DemoKind {
    pub fn name(self) -> &'static str {
        match self {
            DemoKind::Coe => "coe",
            DemoKind::Direct => "direct",
            DemoKind::Cot => "cot",
        }
    }

    fn of(v: &serde_json::Value) -> Option<DemoKind> {
        if v.get("turns").is_some() {
            Some(DemoKind::Coe)
        } else if v.get("reasoning").is_some() {
            Some(DemoKind::Cot)
        } else if v.get("answer").is_some() {
            Some(DemoKind::Direct)
        } else {
            None
        }
    }
}

/// Everything needed to turn records into sequences.
pub struct ExampleContext<'a> {
    pub tokenizer: &'a CoeTokenizer,
    pub chat: &'a ChatFormat,
    pub runner: &'a dyn Runner,
    pub env: &'a EnvSection,
    pub limits: &'a Limits,
    /// Longest sequence kept (the training context).
    pub max_tokens: usize,
    pub threads: usize,
    /// Read and write the replay cache beside each data file.
    pub cache: bool,
}

/// Loads one demonstration file.
pub fn load_file(
    path: &Path,
    cx: &ExampleContext<'_>,
) -> Result<(Vec<Example>, LoadReport), ExampleError> {
    let values = jsonl::read_values(path)?;
    let kind = {
        let (line, first) = values
            .first()
            .ok_or_else(|| ExampleError::Empty(path.to_path_buf()))?;
        DemoKind::of(first).ok_or(ExampleError::Unknown {
            path: path.to_path_buf(),
            line: *line,
        })?
    };
    let mut conversations: Vec<Conversation> = Vec::with_capacity(values.len());
    let mut demos = Vec::new();
    for (line, v) in values {
        let found = DemoKind::of(&v).ok_or(ExampleError::Unknown {
            path: path.to_path_buf(),
            line,
        })?;
        if found != kind {
            return Err(ExampleError::Mixed {
                path: path.to_path_buf(),
                line,
                expected: kind.name(),
                found: found.name(),
            });
        }
        match kind {
            DemoKind::Coe => demos.push(jsonl::from_value::<Demonstration>(path, line, v)?),
            DemoKind::Direct => {
                let d: DirectDemo = jsonl::from_value(path, line, v)?;
                let mut msgs = crate::eval::answer::direct_messages(&d.task);
                msgs.push(Message::new(
                    Role::Assistant,
                    crate::eval::answer::direct_reply(&d.answer),
                ));
                conversations.push(Some((d.task.id, msgs)));
            }
            DemoKind::Cot => {
                let d: CotDemo = jsonl::from_value(path, line, v)?;
                let mut msgs = crate::eval::answer::cot_messages(&d.task);
                msgs.push(Message::new(
                    Role::Assistant,
                    crate::eval::answer::cot_reply(&d.reasoning, &d.answer),
                ));
                conversations.push(Some((d.task.id, msgs)));
            }
        }
    }
    let mut report = LoadReport {
        kind: Some(kind.name()),
        ..LoadReport::default()
    };
    if kind == DemoKind::Coe {
        conversations = replay_all(path, &demos, cx, &mut report);
    }
    report.records = conversations.len();
    let mut out = Vec::with_capacity(conversations.len());
    for conv in conversations {
        let Some((id, msgs)) = conv else {
            report.replay_mismatch += 1;
            continue;
        };
        let (ids, trained) = encode_conversation(cx.tokenizer, cx.chat, &msgs)?;
        if ids.len() > cx.max_tokens {
            report.too_long += 1;
            continue;
        }
        out.push(Example {
            id,
            seq: Sequence { ids, trained },
        });
    }
    report.kept = out.len();
    Ok((out, report))
}

/// The replayed conversations of `demos` (the records of `path`), from the cache when it
/// holds them, else replayed in parallel and cached.
fn replay_all(
    path: &Path,
    demos: &[Demonstration],
    cx: &ExampleContext<'_>,
    report: &mut LoadReport,
) -> Vec<Conversation> {
    let cache = cx
        .cache
        .then(|| ReplayCache::for_file(path, cx.env, cx.limits))
        .transpose();
    let cache = match cache {
        Ok(c) => c,
        Err(e) => {
            report.cache_error = Some(e.to_string());
            None
        }
    };
    if let Some(hit) = cache.as_ref().and_then(ReplayCache::load)
        && hit.len() == demos.len()
    {
        report.cached = true;
        return hit;
    }
    let conversations = parallel_map(demos, cx.threads, |_, d| replay(d, cx));
    if let Some(c) = &cache
        && let Err(e) = c.store(&conversations)
    {
        report.cache_error = Some(format!("{}: {e}", c.path().display()));
    }
    conversations
}

/// The conversation of a Chain-of-Edits demonstration, replayed: `None` when the replay does
/// not reproduce a recorded state or the sandbox fails.
fn replay(demo: &Demonstration, cx: &ExampleContext<'_>) -> Conversation {
    let (mut ep, first) =
        Episode::reset(demo.task.clone(), cx.runner, cx.env, cx.limits, (0, 0)).ok()?;
    let mut msgs = vec![Message::new(Role::User, first.text)];
    for (i, turn) in demo.turns.iter().enumerate() {
        let text = format!("### {}", turn.command);
        let out = ep.step(&text, Source::Model).ok()?;
        if out.infra_error || out.observation.state != turn.state {
            return None;
        }
        msgs.push(Message::new(Role::Assistant, text));
        if i + 1 < demo.turns.len() {
            msgs.push(Message::new(Role::User, out.observation.text));
        } else if !out.done || !out.solved {
            return None;
        }
    }
    Some((demo.task.id.clone(), msgs))
}
