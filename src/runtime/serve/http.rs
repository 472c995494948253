//! Routing of `coe serve`: each request (read and bounded by `wire`) goes to its route, and
//! every failure is answered with the OpenAI error object — a bad request never reaches the
//! model thread, and no request can crash the server.
use std::time::Duration;

use crossbeam_channel::bounded;

use super::complete::{ApiError, Frontend, bad};
use super::engine::EngineRequest;
use super::wire::HttpRequest;
use crate::protocol::openai::{
    ErrorBody, LoadLoraRequest, ModelCard, ModelList, UnloadLoraRequest,
};

/// Answers one request: the status and the JSON body.
pub fn handle(front: &Frontend, req: &HttpRequest) -> (u16, String) {
    match route(front, req) {
        Ok(json) => (200, json),
        Err(e) => (
            e.status,
            serde_json::to_string(&ErrorBody::new(e.status, e.message)).unwrap_or_default(),
        ),
    }
}

fn route(front: &Frontend, req: &HttpRequest) -> Result<String, ApiError> {
    let json = |v: &dyn erased::Json| v.to_json();
    let body = &req.body;
    match (req.method.as_str(), req.path.trim_end_matches('/')) {
        ("GET", "/v1/models") => json(&models(front)?),
        ("GET", "/health") => Ok("{}".into()),
        ("POST", "/v1/completions") => json(&front.complete(body)?),
        ("POST", "/v1/load_lora_adapter") => {
            let r: LoadLoraRequest =
                serde_json::from_slice(body).map_err(|e| bad(format!("invalid request: {e}")))?;
            if r.lora_name.is_empty() || r.lora_path.is_empty() {
                return Err(bad("lora_name and lora_path must not be empty"));
            }
            let name = r.lora_name.clone();
            control(front, |reply| EngineRequest::LoadAdapter {
                name: r.lora_name,
                path: r.lora_path,
                inplace: r.load_inplace,
                reply,
            })?;
            Ok(format!(
                "\"Success: LoRA adapter '{name}' added successfully.\""
            ))
        }
        ("POST", "/v1/unload_lora_adapter") => {
            let r: UnloadLoraRequest =
                serde_json::from_slice(body).map_err(|e| bad(format!("invalid request: {e}")))?;
            let name = r.lora_name.clone();
            control(front, |reply| EngineRequest::UnloadAdapter {
                name: r.lora_name,
                reply,
            })?;
            Ok(format!(
                "\"Success: LoRA adapter '{name}' removed successfully.\""
            ))
        }
        (m, p) => Err(ApiError {
            status: 404,
            message: format!("no route {m} {p}"),
        }),
    }
}

/// Serialising any response type without naming it at each route.
mod erased {
    pub trait Json {
        fn to_json(&self) -> Result<String, super::ApiError>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Result<String, super::ApiError> {
            serde_json::to_string(self).map_err(|e| super::ApiError {
                status: 500,
                message: e.to_string(),
            })
        }
    }
}

/// Sends a control request to the model thread and waits for its answer.
fn control(
    front: &Frontend,
    make: impl FnOnce(
        crossbeam_channel::Sender<Result<(), super::engine::EngineError>>,
    ) -> EngineRequest,
) -> Result<(), ApiError> {
    let (tx, rx) = bounded(1);
    let gone = || ApiError {
        status: 503,
        message: "the model thread is not answering".into(),
    };
    front.engine.send(make(tx)).map_err(|_| gone())?;
    rx.recv_timeout(front.limits.timeout)
        .map_err(|_| gone())??;
    Ok(())
}

fn models(front: &Frontend) -> Result<ModelList, ApiError> {
    let (tx, rx) = bounded(1);
    let gone = ApiError {
        status: 503,
        message: "the model thread is not answering".into(),
    };
    front
        .engine
        .send(EngineRequest::Models { reply: tx })
        .map_err(|_| gone.clone())?;
    let list = rx.recv_timeout(Duration::from_secs(60)).map_err(|_| gone)?;
    Ok(ModelList {
        object: "list".into(),
        data: list
            .into_iter()
            .map(|(id, parent)| ModelCard {
                id,
                object: "model".into(),
                created: 0,
                owned_by: "coe".into(),
                parent,
            })
            .collect(),
    })
}
