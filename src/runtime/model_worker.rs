//! The model worker of step mode, an actor (STYLE 3): it loads the model in the
//! background (the UI opens at once and says "loading"), then owns it — the
//! VarStore and tensors never leave this thread — and answers proposal
//! requests with sampled replies. When several requests queued up while it was
//! busy, only the newest is answered: the others are about states already gone;
//! a newest `Cancel` answers none. It is spawned only when step mode is first
//! opened, so a workbench that only follows runs never loads a model.
//!
//! Replies go through `reply`, which says whether anyone still listens: the
//! workbench tags them with the worker's id there, so that when a worker is
//! replaced (another adapter chosen) the old one's late replies are dropped.
use crate::config::Config;
use crate::env::buffer::Buffer;
use crate::model::loader::load_for_inference;
use crate::policy::{ModelPolicy, ModelPolicyConfig, Policy, Query};
use crate::protocol::workbench::{ModelReply, ModelRequest};
use crossbeam_channel::{Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Instant;

/// Starts loading `cfg.model` (with `cfg.model.adapter`, if set) and serving
/// requests; exits when the request channel closes or `reply` returns false.
pub fn spawn<F>(
    cfg: Config,
    rx: Receiver<ModelRequest>,
    reply: F,
) -> std::io::Result<JoinHandle<()>>
where
    F: Fn(ModelReply) -> bool + Send + 'static,
{
    std::thread::Builder::new()
        .name("coe-model".into())
        .spawn(move || run(&cfg, &rx, &reply))
}

/// `spawn` with every reply sent as `M` on `tx`.
pub fn spawn_to<M: From<ModelReply> + Send + 'static>(
    cfg: Config,
    rx: Receiver<ModelRequest>,
    tx: Sender<M>,
) -> std::io::Result<JoinHandle<()>> {
    spawn(cfg, rx, move |r| tx.send(M::from(r)).is_ok())
}

fn run(cfg: &Config, rx: &Receiver<ModelRequest>, send: &dyn Fn(ModelReply) -> bool) {
    let spec = cfg.model.path.clone();
    if !send(ModelReply::Loading { spec: spec.clone() }) {
        return;
    }
    let start = Instant::now();
    let loaded = match load_for_inference(&cfg.model, None) {
        Ok(l) => l,
        Err(e) => {
            send(ModelReply::Unavailable {
                reason: format!("cannot load {spec}: {e}"),
            });
            return;
        }
    };
    let mut policy = match ModelPolicy::new(loaded, ModelPolicyConfig::for_eval(cfg)) {
        Ok(p) => p,
        Err(e) => {
            send(ModelReply::Unavailable {
                reason: e.to_string(),
            });
            return;
        }
    };
    if !send(ModelReply::Ready {
        name: policy.name(),
        device: cfg.model.device.clone(),
        load_s: start.elapsed().as_secs_f64(),
    }) {
        return;
    }
    while let Ok(mut newest) = rx.recv() {
        while let Ok(newer) = rx.try_recv() {
            newest = newer;
        }
        let ModelRequest::Propose(req) = newest else {
            continue;
        };
        let t = Instant::now();
        let buffer = Buffer::from_code(&req.code);
        let query = Query {
            episode: req.episode,
            task: &req.task,
            buffer: &buffer,
            history: &req.history,
            observation: &req.observation,
        };
        let queries = vec![query; req.n.max(1)];
        let reply = match policy.propose(&queries) {
            Ok(proposals) => ModelReply::Proposals {
                episode: req.episode,
                turn: req.turn,
                proposals,
                elapsed_s: t.elapsed().as_secs_f64(),
            },
            Err(e) => ModelReply::Failed {
                episode: req.episode,
                turn: req.turn,
                message: e.to_string(),
            },
        };
        if !send(reply) {
            return;
        }
    }
}
