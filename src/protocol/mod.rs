//! Every type that crosses a thread or goes to `events.jsonl` (DESIGN §6): plain
//! owned data tagged with job and episode ids — no tensors, no terminal types.
//! Headless commands and the workbench consume the same events; on disk each is
//! one JSON object per line with a `type` field (schema in docs/events.md).
pub mod openai;
pub mod proposal;
pub mod run;
pub mod workbench;

pub use proposal::{Proposal, Source};

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

impl EpisodeEvent {
    /// The same event with its episode id moved by `offset` (a job's many rollouts keep
    /// their ids apart this way).
    pub fn with_episode_offset(mut self, offset: u64) -> Self {
        match &mut self {
            EpisodeEvent::EpisodeStarted { episode, .. }
            | EpisodeEvent::Turn { episode, .. }
            | EpisodeEvent::EpisodeFinished { episode, .. } => *episode += offset,
        }
        self
    }
}

/// What kind of job a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Sft,
    Rl,
    Eval,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Completed,
    Cancelled,
    Failed,
}

/// The first line of every `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStarted {
    pub schema: u32,
    pub job: u64,
    pub run: String,
    pub kind: JobKind,
    /// The step the run starts from (non-zero on `--resume`).
    pub start_step: u64,
    pub total_steps: u64,
    pub model: String,
    pub model_sha256: Option<String>,
    pub device: String,
    pub seed: u64,
    pub commit: String,
    /// The whole configuration, as RON.
    pub config: String,
    /// Seconds since the Unix epoch.
    pub unix_time: f64,
}

/// Scalar measurements at one step; absent fields were not measured at that step.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Metric {
    pub job: u64,
    pub step: u64,
    /// `train` (an optimizer step) or `eval` (held-out episodes).
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    /// Mean episode return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solve_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    /// Tokens trained on since the run started (train metrics; optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Seconds since the run (or its resumption) started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_s: Option<f64>,
}

/// Run-level events; together with [`EpisodeEvent`] they make up `events.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    RunStarted(RunStarted),
    Metric(Metric),
    Checkpoint {
        job: u64,
        step: u64,
        path: String,
    },
    Log {
        job: u64,
        level: String,
        message: String,
    },
    RunFinished {
        job: u64,
        status: RunStatus,
        step: u64,
        error: Option<String>,
    },
}

/// One line of `events.jsonl`: an episode event, a run event, or a type this version does
/// not know (kept, so readers of newer files skip it instead of failing).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Episode(EpisodeEvent),
    Run(RunEvent),
    Unknown(String),
}

const EPISODE_TYPES: &[&str] = &["episode_started", "turn", "episode_finished"];

impl Event {
    /// Parses one line; `Err` names what is wrong with it.
    pub fn from_json_line(line: &str) -> Result<Event, String> {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let ty = value
            .get("type")
            .and_then(|t| t.as_str())
            .ok_or("no \"type\" field")?
            .to_string();
        if EPISODE_TYPES.contains(&ty.as_str()) {
            serde_json::from_value(value)
                .map(Event::Episode)
                .map_err(|e| format!("{ty}: {e}"))
        } else {
            match serde_json::from_value::<RunEvent>(value) {
                Ok(ev) => Ok(Event::Run(ev)),
                Err(e) if e.to_string().starts_with("unknown variant") => Ok(Event::Unknown(ty)),
                Err(e) => Err(format!("{ty}: {e}")),
            }
        }
    }

    /// The line written to `events.jsonl` (no trailing newline).
    pub fn to_json_line(&self) -> String {
        let text = match self {
            Event::Episode(e) => serde_json::to_string(e),
            Event::Run(e) => serde_json::to_string(e),
            Event::Unknown(ty) => serde_json::to_string(&serde_json::json!({ "type": ty })),
        };
        // These types hold only strings, numbers and options: serialising cannot fail.
        text.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_unknown_types_are_kept() {
        let events = vec![
            Event::Run(RunEvent::Metric(Metric {
                job: 1,
                step: 3,
                phase: "train".into(),
                loss: Some(0.5),
                ..Metric::default()
            })),
            Event::Episode(EpisodeEvent::EpisodeFinished {
                job: 1,
                episode: 2,
                solved: true,
                turns: 2,
                ret: 1.0,
                infra_error: false,
            }),
            Event::Run(RunEvent::RunFinished {
                job: 1,
                status: RunStatus::Completed,
                step: 3,
                error: None,
            }),
        ];
        for e in events {
            let line = e.to_json_line();
            assert_eq!(Event::from_json_line(&line).unwrap(), e, "{line}");
        }
        let line = r#"{"type":"metric","job":0,"step":1,"phase":"train","loss":2.0}"#;
        assert!(matches!(
            Event::from_json_line(line),
            Ok(Event::Run(RunEvent::Metric(Metric { loss: Some(_), .. })))
        ));
        assert_eq!(
            Event::from_json_line(r#"{"type":"from_the_future","x":1}"#),
            Ok(Event::Unknown("from_the_future".into()))
        );
        let err = Event::from_json_line(r#"{"type":"metric","step":"x"}"#).unwrap_err();
        assert!(err.starts_with("metric:"), "{err}");
        assert!(Event::from_json_line("{}").is_err());
        assert!(Event::from_json_line("nope").is_err());
    }

    #[test]
    fn episode_offset_moves_only_the_episode_id() {
        let e = EpisodeEvent::EpisodeFinished {
            job: 4,
            episode: 2,
            solved: false,
            turns: 3,
            ret: -0.5,
            infra_error: false,
        };
        assert_eq!(
            e.with_episode_offset(1_000_000),
            EpisodeEvent::EpisodeFinished {
                job: 4,
                episode: 1_000_002,
                solved: false,
                turns: 3,
                ret: -0.5,
                infra_error: false,
            }
        );
    }
}
