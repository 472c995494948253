//! Routing of `coe serve`: one handler thread per in-flight request (a fixed pool, so a
//! flood queues instead of spawning), bodies read up to the limit, every failure answered
//! with the OpenAI error object — a bad request never reaches the model thread, and no
//! request can crash the server.
use std::io::Read;
use std::time::Duration;

use crossbeam_channel::bounded;
use tiny_http::{Header, Method, Request, Response};

use super::complete::{ApiError, Frontend, bad};
use super::engine::EngineRequest;
use crate::protocol::openai::{
    ErrorBody, LoadLoraRequest, ModelCard, ModelList, UnloadLoraRequest,
};

/// Answers one request.
pub fn handle(front: &Frontend, mut req: Request) {
    let (status, body) = match route(front, &mut req) {
        Ok(json) => (200, json),
        Err(e) => (
            e.status,
            serde_json::to_string(&ErrorBody::new(e.status, e.message)).unwrap_or_default(),
        ),
    };
    let mut resp = Response::from_string(body).with_status_code(status);
    if let Ok(h) = Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..]) {
        resp.add_header(h);
    }
    // A client gone before its answer is not the server's failure.
    let _ = req.respond(resp);
}

fn route(front: &Frontend, req: &mut Request) -> Result<String, ApiError> {
    let path = req.url().split('?').next().unwrap_or_default().to_string();
    let method = req.method().clone();
    let json = |v: &dyn erased::Json| v.to_json();
    match (method, path.trim_end_matches('/')) {
        (Method::Get, "/v1/models") => json(&models(front)?),
        (Method::Get, "/health") => Ok("{}".into()),
        (Method::Post, "/v1/completions") => {
            let body = read_body(front, req)?;
            json(&front.complete(&body)?)
        }
        (Method::Post, "/v1/load_lora_adapter") => {
            let body = read_body(front, req)?;
            let r: LoadLoraRequest =
                serde_json::from_slice(&body).map_err(|e| bad(format!("invalid request: {e}")))?;
            if r.lora_name.is_empty() || r.lora_path.is_empty() {
                return Err(bad("lora_name and lora_path must not be empty"));
            }
            let name = r.lora_name.clone();
            control(front, |reply| EngineRequest::LoadAdapter {
                name: r.lora_name,
                path: r.lora_path,
                reply,
            })?;
            Ok(format!(
                "\"Success: LoRA adapter '{name}' added successfully.\""
            ))
        }
        (Method::Post, "/v1/unload_lora_adapter") => {
            let body = read_body(front, req)?;
            let r: UnloadLoraRequest =
                serde_json::from_slice(&body).map_err(|e| bad(format!("invalid request: {e}")))?;
            let name = r.lora_name.clone();
            control(front, |reply| EngineRequest::UnloadAdapter {
                name: r.lora_name,
                reply,
            })?;
            Ok(format!(
                "\"Success: LoRA adapter '{name}' removed successfully.\""
            ))
        }
        (_, p) => Err(ApiError {
            status: 404,
            message: format!("no route {} {p}", req.method()),
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

/// The body, refused past the limit (by its declared length or as it is read).
fn read_body(front: &Frontend, req: &mut Request) -> Result<Vec<u8>, ApiError> {
    let limit = front.limits.max_body_bytes;
    let too_big = |n: usize| {
        bad(format!(
            "request body of {n} bytes or more is over the limit of {limit} bytes"
        ))
    };
    if let Some(n) = req.body_length()
        && n > limit
    {
        return Err(too_big(n));
    }
    let mut body = Vec::new();
    req.as_reader()
        .take(limit as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| bad(format!("cannot read the request body: {e}")))?;
    if body.len() > limit {
        return Err(too_big(body.len()));
    }
    Ok(body)
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
