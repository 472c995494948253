//! The subset of the OpenAI-compatible HTTP API that `coe serve` answers and the remote
//! policy speaks (DESIGN §8), as serde types. Field names follow vLLM's
//! `/v1/completions` (its `return_token_ids` and `return_tokens_as_token_ids` extensions
//! included), so one client talks to vLLM, SGLang and `coe serve` alike. Plain data below
//! both the server (`runtime::serve`) and the client (`policy::remote`).
//!
//! Unknown request fields are ignored, as vLLM does, so other tools' clients work; what a
//! field holds is checked by the server, which answers bad values with [`ErrorBody`].
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `prompt`: text, a list of token ids, or a list of either (one completion per prompt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PromptInput {
    Text(String),
    Ids(Vec<u32>),
    Texts(Vec<String>),
    IdLists(Vec<Vec<u32>>),
}

/// `stop`: one string or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StopInput {
    One(String),
    Many(Vec<String>),
}

impl StopInput {
    pub fn strings(&self) -> Vec<String> {
        match self {
            StopInput::One(s) => vec![s.clone()],
            StopInput::Many(v) => v.clone(),
        }
    }
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CompletionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub prompt: Option<PromptInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// int64, as vLLM takes it; rows are seeded with its low 63 bits.
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopInput>,
    /// vLLM's extension: ids that end a completion besides the model's end-of-sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_token_ids: Option<Vec<u32>>,
    /// Number of alternatives per position; `Some(0)` asks for the sampled tokens' own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_token_ids: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_tokens_as_token_ids: Option<bool>,
}

/// Per-token log-probabilities of one choice (the legacy completions format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ChoiceLogprobs {
    #[serde(default)]
    pub tokens: Vec<String>,
    #[serde(default)]
    pub token_logprobs: Vec<Option<f32>>,
    #[serde(default)]
    pub top_logprobs: Vec<Option<BTreeMap<String, f32>>>,
    #[serde(default)]
    pub text_offset: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CompletionChoice {
    pub index: usize,
    pub text: String,
    #[serde(default)]
    pub logprobs: Option<ChoiceLogprobs>,
    /// `stop` or `length`.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// The sampled ids (with `return_token_ids`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ids: Option<Vec<u32>>,
    /// This choice's prompt ids (with `return_token_ids`; vLLM puts them here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_token_ids: Option<Vec<u32>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}

/// Read leniently (every field defaults): a client needs only the choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CompletionResponse {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    /// The first prompt's ids (with `return_token_ids`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_token_ids: Option<Vec<u32>>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// `POST /v1/load_lora_adapter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadLoraRequest {
    pub lora_name: String,
    pub lora_path: String,
    /// vLLM's flag: replace an adapter already loaded under this name instead of refusing.
    #[serde(default)]
    pub load_inplace: bool,
}

/// `POST /v1/unload_lora_adapter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnloadLoraRequest {
    pub lora_name: String,
}

/// One entry of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub owned_by: String,
    /// The base model an adapter sits on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<ModelCard>,
}

/// The OpenAI error object: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: u16,
}

impl ErrorBody {
    /// `kind` from the status as OpenAI names them.
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        let kind = match code {
            400 => "BadRequestError",
            404 => "NotFoundError",
            413 => "BadRequestError",
            503 => "ServiceUnavailableError",
            _ => "InternalServerError",
        };
        ErrorBody {
            error: ErrorDetail {
                message: message.into(),
                kind: kind.into(),
                param: None,
                code,
            },
        }
    }
}

/// A token id written as a token, as vLLM's `return_tokens_as_token_ids` does.
pub fn token_as_id(id: u32) -> String {
    format!("token_id:{id}")
}

/// The id in a `token_id:<n>` token, if it is one.
pub fn id_of_token(token: &str) -> Option<u32> {
    token.strip_prefix("token_id:")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_of_every_shape_parse() {
        let parse = |s: &str| serde_json::from_str::<CompletionRequest>(s).unwrap().prompt;
        assert_eq!(
            parse(r#"{"prompt": "hi"}"#),
            Some(PromptInput::Text("hi".into()))
        );
        assert_eq!(
            parse(r#"{"prompt": [1, 2]}"#),
            Some(PromptInput::Ids(vec![1, 2]))
        );
        assert_eq!(
            parse(r#"{"prompt": [[1], [2, 3]]}"#),
            Some(PromptInput::IdLists(vec![vec![1], vec![2, 3]]))
        );
        assert_eq!(
            parse(r#"{"prompt": ["a", "b"], "unknown_field": 1}"#),
            Some(PromptInput::Texts(vec!["a".into(), "b".into()]))
        );
        assert!(serde_json::from_str::<CompletionRequest>(r#"{"prompt": [-1]}"#).is_err());
    }

    #[test]
    fn token_ids_round_trip_as_tokens() {
        assert_eq!(id_of_token(&token_as_id(42)), Some(42));
        assert_eq!(id_of_token("42"), None);
    }
}
