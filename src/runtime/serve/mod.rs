//! `coe serve` (DESIGN §8): this project's model behind the OpenAI-compatible API subset
//! that vLLM answers — `GET /v1/models`, `POST /v1/completions`, `/v1/load_lora_adapter`,
//! `/v1/unload_lora_adapter` — so the remote policy backend, and other tools, sample from a
//! trained adapter over HTTP.
//!
//! Threads: a pool of HTTP handlers (`http`, `complete`) parse and check requests and build
//! responses; one model thread (`engine`) owns the model and decodes the completions that
//! arrive together as one batch. [`Server::start`] runs both in-process (tests use it; `coe
//! serve` is this plus waiting; `coe bench serve` starts `coe serve` children, since the
//! benchmarks sit below `runtime`).
mod complete;
mod engine;
mod http;
mod prefix;

pub use complete::Limits;
pub use engine::EngineConfig;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use complete::Frontend;
use engine::{Engine, seed_source};

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
    /// HTTP handler threads: requests in flight at once (more wait in the queue).
    pub handlers: usize,
}

/// A running server; dropping it (or [`Server::stop`]) stops it.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
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
        let http = tiny_http::Server::http(&opts.addr).map_err(|e| ServeError::Bind {
            addr: opts.addr.clone(),
            reason: e.to_string(),
        })?;
        let addr = http.server_addr().to_ip().ok_or_else(|| ServeError::Bind {
            addr: opts.addr.clone(),
            reason: "not an IP address".into(),
        })?;
        let front = Arc::new(Frontend {
            tok,
            vocab_text,
            limits: opts.limits.clone(),
            engine: req_tx,
            served_model: opts.engine.served_model.clone(),
            seeds: std::sync::Mutex::new(seed_source()),
            next_id: AtomicU64::new(0),
        });
        let http = Arc::new(http);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = vec![model_thread];
        for i in 0..opts.handlers.max(1) {
            let (http, front, stop) = (Arc::clone(&http), Arc::clone(&front), Arc::clone(&stop));
            threads.push(
                std::thread::Builder::new()
                    .name(format!("coe-serve-http-{i}"))
                    .spawn(move || {
                        while !stop.load(Ordering::SeqCst) {
                            if let Ok(Some(req)) = http.recv_timeout(Duration::from_millis(100)) {
                                http::handle(&front, req);
                            }
                        }
                    })?,
            );
        }
        Ok(Server {
            addr,
            stop,
            threads,
        })
    }

    /// The address it listens on (the port chosen when 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL clients use, `http://host:port/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Runs until the process is ended.
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Stops listening, lets the requests in flight finish, ends the model thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Handlers first (they hold the model thread's channel), then the model thread.
        let mut threads: Vec<_> = self.threads.drain(..).collect();
        let model = if threads.is_empty() {
            None
        } else {
            Some(threads.remove(0))
        };
        for t in threads {
            let _ = t.join();
        }
        if let Some(t) = model {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}
