//! `coe serve` (DESIGN §8): this project's model behind the OpenAI-compatible API subset
//! that vLLM answers — `GET /v1/models`, `POST /v1/completions`, `/v1/load_lora_adapter`,
//! `/v1/unload_lora_adapter` — so the remote policy backend, and other tools, sample from a
//! trained adapter over HTTP.
//!
//! Threads: one per open connection (`wire`) reads its requests, checks them and builds
//! the responses (`http`, `complete`); one model thread (`engine`) owns the model and decodes
//! the completions that arrive together as one batch. [`Server::start`] runs both in-process (tests use it; `coe
//! serve` is this plus waiting; `coe bench serve` starts `coe serve` children, since the
//! benchmarks sit below `runtime`).
mod complete;
mod engine;
mod http;
mod prefix;
mod wire;

pub use complete::Limits;
pub use engine::EngineConfig;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::thread::JoinHandle;
use std::time::Duration;

use complete::Frontend;
use engine::{Engine, seed_source};
use wire::{Wire, WireLimits};

use crate::model::loader::LoadedModel;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
    #[error("cannot start the model: {0}")]
    Model(String),
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Where to listen and how to batch.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `host:port`; port 0 picks a free one (see [`Server::addr`]).
    pub addr: String,
    pub engine: EngineConfig,
    pub limits: Limits,
    /// Connections open at once; one more is answered 503 (a thread each).
    pub max_connections: usize,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
}

/// The defaults of `coe serve`'s connection bounds.
pub const MAX_CONNECTIONS: usize = 256;
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A running server; dropping it (or [`Server::stop`]) stops it.
pub struct Server {
    wire: Option<Wire>,
    model: Option<JoinHandle<()>>,
}

impl Server {
    /// Loads the model on its own thread (tensors stay there), then listens.
    pub fn start<F>(load: F, opts: ServeOptions) -> Result<Server, ServeError>
    where
        F: FnOnce() -> Result<LoadedModel, String> + Send + 'static,
    {
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let (req_tx, req_rx) = crossbeam_channel::bounded(1024);
        let engine_cfg = opts.engine.clone();
        let model_thread = std::thread::Builder::new()
            .name("coe-serve-model".into())
            .spawn(move || {
                let loaded = match load() {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let tok = &loaded.tokenizer;
                let vocab = loaded.model.config().vocab_size;
                let texts: Vec<String> = (0..vocab as u32)
                    .map(|id| tok.decode(&[id]).unwrap_or_default())
                    .collect();
                let texts = Arc::new(texts);
                let _ = ready_tx.send(Ok((tok.clone(), Arc::clone(&texts))));
                Engine::new(loaded, engine_cfg, texts).run(&req_rx);
            })?;
        let (tok, vocab_text) = ready_rx
            .recv()
            .map_err(|_| ServeError::Model("the model thread ended".into()))?
            .map_err(ServeError::Model)?;
        let bind_error = |reason: String| ServeError::Bind {
            addr: opts.addr.clone(),
            reason,
        };
        let listener =
            std::net::TcpListener::bind(&opts.addr).map_err(|e| bind_error(e.to_string()))?;
        let front = Arc::new(Frontend {
            tok,
            vocab_text,
            limits: opts.limits.clone(),
            engine: req_tx,
            served_model: opts.engine.served_model.clone(),
            seeds: std::sync::Mutex::new(seed_source()),
            next_id: AtomicU64::new(0),
        });
        let limits = WireLimits {
            max_connections: opts.max_connections.max(1),
            idle: opts.idle_timeout,
            max_head_bytes: 64 << 10,
            max_body_bytes: opts.limits.max_body_bytes,
        };
        let handler = Arc::new(move |req: &wire::HttpRequest| http::handle(&front, req));
        let wire = Wire::start(listener, limits, handler)?;
        Ok(Server {
            wire: Some(wire),
            model: Some(model_thread),
        })
    }

    /// The address it listens on (the port chosen when 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.wire
            .as_ref()
            .map(Wire::addr)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The base URL clients use, `http://host:port/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr())
    }

    /// Runs until the process is ended.
    pub fn wait(mut self) {
        if let Some(t) = self.model.take() {
            let _ = t.join();
        }
    }

    /// Stops listening, lets the requests in flight finish, ends the model thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Connections first (their handlers hold the model thread's channel), then the model.
        if let Some(mut w) = self.wire.take() {
            w.stop();
        }
        if let Some(t) = self.model.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}
