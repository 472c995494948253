//! One completion over HTTP for the remote backends: the request it sends (token-id prompt,
//! seed, stop at the asked strings or an end-of-turn id, the sampled tokens' log-probabilities and
//! ids asked back) and the checks on the answer. Everything that can go wrong — refused
//! connection, timeout, dropped connection, an error status, a body that is not a valid
//! completion — is one [`CallError`], so the caller retries elsewhere whatever it was.
use std::time::Duration;

use crate::model::generate::row_seed;
use crate::protocol::openai::{
    CompletionRequest, CompletionResponse, PromptInput, StopInput, id_of_token,
};

#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: not a valid completion: {reason}")]
    Garbage { url: String, reason: String },
}

/// What one reply asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    pub model: String,
    pub max_tokens: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub stop_ids: Vec<u32>,
    /// Stop strings: a CoE command stops at `\n`; a one-shot answer at end-of-turn only.
    pub stop: Vec<String>,
}

/// The sampled ids and their log-probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    pub ids: Vec<u32>,
    pub logprobs: Vec<f32>,
}

/// The body for one prompt.
pub fn request(ask: &Ask, prompt: &[u32], seed: u64) -> CompletionRequest {
    CompletionRequest {
        model: Some(ask.model.clone()),
        prompt: Some(PromptInput::Ids(prompt.to_vec())),
        max_tokens: Some(ask.max_tokens),
        temperature: Some(ask.temperature),
        top_p: Some(ask.top_p),
        n: Some(1),
        seed: Some(row_seed(seed) as i64),
        stop: (!ask.stop.is_empty()).then(|| StopInput::Many(ask.stop.clone())),
        stop_token_ids: Some(ask.stop_ids.clone()),
        logprobs: Some(0),
        return_token_ids: Some(true),
        return_tokens_as_token_ids: Some(true),
    }
}

/// Reads the sampled ids (from `token_ids`, else the `token_id:<n>` tokens) and their
/// log-probabilities out of a response, checking they agree and fit the vocabulary.
pub fn parse(url: &str, body: &str, vocab: usize) -> Result<Sampled, CallError> {
    let garbage = |reason: String| CallError::Garbage {
        url: url.into(),
        reason,
    };
    let resp: CompletionResponse =
        serde_json::from_str(body).map_err(|e| garbage(e.to_string()))?;
    let choice = resp
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| garbage("no choices".into()))?;
    let lp = choice
        .logprobs
        .ok_or_else(|| garbage("no logprobs".into()))?;
    let ids = match choice.token_ids {
        Some(ids) => ids,
        None => lp
            .tokens
            .iter()
            .map(|t| id_of_token(t))
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| garbage("no token_ids, and tokens are not token_id:<n>".into()))?,
    };
    let logprobs = lp
        .token_logprobs
        .iter()
        .map(|p| p.filter(|p| p.is_finite()))
        .collect::<Option<Vec<f32>>>()
        .ok_or_else(|| garbage("a sampled token has no finite log-probability".into()))?;
    if ids.is_empty() || ids.len() != logprobs.len() {
        return Err(garbage(format!(
            "{} token ids with {} log-probabilities",
            ids.len(),
            logprobs.len()
        )));
    }
    if let Some(id) = ids.iter().find(|&&id| id as usize >= vocab) {
        return Err(garbage(format!("token id {id} is outside the vocabulary")));
    }
    Ok(Sampled { ids, logprobs })
}

/// A client with the backend's timeouts.
pub fn agent(timeout: Duration, connect: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(connect)
        .timeout(timeout)
        .build()
}

/// POSTs `body` to `base` + `path` and returns the answer's text on 200.
pub fn post(agent: &ureq::Agent, base: &str, path: &str, body: &str) -> Result<String, CallError> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let result = agent
        .post(&url)
        .set("Content-Type", "application/json")
        .send_string(body);
    match result {
        Ok(resp) => resp.into_string().map_err(|e| CallError::Transport {
            url,
            reason: e.to_string(),
        }),
        Err(ureq::Error::Status(status, resp)) => {
            let mut body = resp.into_string().unwrap_or_default();
            body.truncate(500);
            Err(CallError::Status { url, status, body })
        }
        Err(e) => Err(CallError::Transport {
            url,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn seeds_are_sent_within_int64_as_vllm_takes_them() {
        assert_eq!(row_seed(u64::MAX), i64::MAX as u64);
        assert_eq!(row_seed(5), 5);
        let ask = Ask {
            model: "m".into(),
            max_tokens: 4,
            temperature: 1.0,
            top_p: 1.0,
            stop: vec![],
            stop_ids: vec![],
        };
        let body = serde_json::to_value(request(&ask, &[1, 2], u64::MAX)).unwrap();
        assert_eq!(body["seed"], serde_json::json!(i64::MAX));
    }

    use super::*;

    #[test]
    fn ids_come_from_token_ids_or_the_tokens_and_must_agree() {
        let ok = r#"{"choices":[{"index":0,"text":"x","token_ids":[5,7],
            "logprobs":{"tokens":["a","b"],"token_logprobs":[-0.5,-1.0]}}]}"#;
        let s = parse("u", ok, 10).unwrap();
        assert_eq!((s.ids, s.logprobs), (vec![5, 7], vec![-0.5, -1.0]));
        let by_tokens = r#"{"choices":[{"index":0,"text":"x",
            "logprobs":{"tokens":["token_id:3"],"token_logprobs":[-0.25]}}]}"#;
        assert_eq!(parse("u", by_tokens, 10).unwrap().ids, vec![3]);
        for bad in [
            "not json",
            r#"{"choices":[]}"#,
            r#"{"choices":[{"index":0,"text":"x","token_ids":[5]}]}"#,
            r#"{"choices":[{"index":0,"text":"x","token_ids":[5,6],"logprobs":{"tokens":[],"token_logprobs":[-1.0]}}]}"#,
            r#"{"choices":[{"index":0,"text":"x","token_ids":[50],"logprobs":{"tokens":[],"token_logprobs":[-1.0]}}]}"#,
            r#"{"choices":[{"index":0,"text":"x","token_ids":[5],"logprobs":{"tokens":[],"token_logprobs":[null]}}]}"#,
        ] {
            assert!(
                matches!(parse("u", bad, 10), Err(CallError::Garbage { .. })),
                "{bad}"
            );
        }
    }
}
