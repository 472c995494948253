//! The model worker of step mode, an actor (STYLE 3): it loads the model in the
//! background (the UI opens at once and says "loading"), then owns it — the
//! VarStore and tensors never leave this thread — and answers proposal
//! requests with sampled replies. When several requests queued up while it was
//! busy, only the newest is answered: the others are about states already gone;
//! a newest `Cancel` answers none. It is spawned only when step mode is first
//! opened, so a workbench that only follows runs never loads a model. With `model.remote`
//! set it loads only the tokenizer and the servers sample (the remote backend).
//!
//! Replies go through `reply`, which says whether anyone still listens: the
//! workbench tags them with the worker's id there, so that when a worker is
//! replaced (another adapter chosen) the old one's late replies are dropped.
use crate::config::Config;
use crate::env::buffer::Buffer;
use crate::model::loader::load_for_inference;
use crate::policy::{ModelPolicy, ModelPolicyConfig, Policy, PolicyError, Query, RemotePolicy};
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

/// The remote backend when `model.remote` is set (the model spec gives its tokenizer),
/// else the model itself.
fn load_policy(cfg: &Config) -> Result<Box<dyn Policy>, String> {
    let settings = ModelPolicyConfig::for_eval(cfg);
    let spec = &cfg.model.path;
    if let Some(remote) = &cfg.model.remote {
        let policy = RemotePolicy::from_config(remote, spec, &settings)
            .map_err(|e: PolicyError| e.to_string())?;
        return Ok(Box::new(policy));
    }
    let loaded =
        load_for_inference(&cfg.model, None).map_err(|e| format!("cannot load {spec}: {e}"))?;
    let policy = ModelPolicy::new(loaded, settings).map_err(|e| e.to_string())?;
    Ok(Box::new(policy))
}

fn run(cfg: &Config, rx: &Receiver<ModelRequest>, send: &dyn Fn(ModelReply) -> bool) {
    let spec = cfg.model.path.clone();
    if !send(ModelReply::Loading { spec: spec.clone() }) {
        return;
    }
    let start = Instant::now();
    let mut policy = match load_policy(cfg) {
        Ok(p) => p,
        Err(reason) => {
            send(ModelReply::Unavailable { reason });
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
            // A remote backend whose servers all failed answers with failed proposals.
            Ok(proposals) if proposals.iter().any(|p| p.failed.is_some()) => ModelReply::Failed {
                episode: req.episode,
                turn: req.turn,
                message: proposals
                    .iter()
                    .find_map(|p| p.failed.clone())
                    .unwrap_or_default(),
            },
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

#[cfg(test)]
mod tests {
    use super::spawn_to;
    use crate::config::{Config, RemoteSection};
    use crate::model::loader::load_for_inference;
    use crate::protocol::workbench::{ModelReply, ModelRequest, ProposeRequest};
    use crate::runtime::serve::{EngineConfig, Limits, ServeOptions, Server};
    use std::time::Duration;

    const TINY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gguf/tiny_llama.gguf"
    );

    fn config(remote: Option<&str>) -> Config {
        let mut cfg = Config::default();
        cfg.model.path = TINY.into();
        cfg.model.threads = 1;
        cfg.eval.temperature = 0.0;
        cfg.model.remote = remote.map(|url| RemoteSection {
            urls: vec![url.into()],
            timeout_s: 20.0,
            retries: 0,
            ..RemoteSection::default()
        });
        cfg
    }

    /// Opens a worker on `cfg`, asks for two proposals; (the name it reports, the reply).
    fn ask(cfg: Config) -> (String, ModelReply) {
        let (req_tx, req_rx) = crossbeam_channel::bounded(4);
        let (tx, rx) = crossbeam_channel::bounded::<ModelReply>(16);
        let worker = spawn_to(cfg, req_rx, tx).unwrap();
        let wait = Duration::from_secs(60);
        assert!(matches!(
            rx.recv_timeout(wait),
            Ok(ModelReply::Loading { .. })
        ));
        let name = match rx.recv_timeout(wait) {
            Ok(ModelReply::Ready { name, .. }) => name,
            other => panic!("not ready: {other:?}"),
        };
        let tasks = crate::data::loaders::load_tasks(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/tasks_small.jsonl"
            )
            .as_ref(),
        )
        .unwrap();
        let task = tasks[0].clone();
        req_tx
            .send(ModelRequest::Propose(ProposeRequest {
                episode: 7,
                turn: 0,
                code: task.buggy.clone(),
                task: Box::new(task),
                history: Vec::new(),
                observation: "Fix the function.".into(),
                n: 2,
            }))
            .unwrap();
        let reply = rx.recv_timeout(wait).unwrap();
        drop(req_tx);
        worker.join().unwrap();
        (name, reply)
    }

    #[test]
    fn step_mode_with_a_remote_config_samples_on_the_server() {
        let section = crate::config::ModelSection {
            path: TINY.into(),
            threads: 1,
            ..crate::config::ModelSection::default()
        };
        let server = Server::start(
            move || load_for_inference(&section, None).map_err(|e| e.to_string()),
            ServeOptions {
                addr: "127.0.0.1:0".into(),
                engine: EngineConfig {
                    served_model: "coe".into(),
                    batch_window: Duration::from_millis(2),
                    max_batch_rows: 8,
                    max_batch_tokens: 16_384,
                    kv_cache_bytes: 0,
                    fold_adapter: true,
                },
                limits: Limits::default(),
                max_connections: 8,
                idle_timeout: Duration::from_secs(30),
            },
        )
        .unwrap();
        let url = server.url();
        let (local_name, local) = ask(config(None));
        let (name, remote) = ask(config(Some(&url)));
        assert!(
            name.starts_with("remote coe @ http://127.0.0.1:"),
            "{name} vs {local_name}"
        );
        let ids = |r: &ModelReply| match r {
            ModelReply::Proposals { proposals, .. } => proposals
                .iter()
                .map(|p| p.token_ids.clone())
                .collect::<Vec<_>>(),
            other => panic!("no proposals: {other:?}"),
        };
        assert_eq!(ids(&remote).len(), 2);
        assert!(ids(&remote).iter().all(|p| !p.is_empty()));
        assert_eq!(
            ids(&remote),
            ids(&local),
            "greedy: the server's replies are the local model's"
        );
        // The server gone: the worker reports the failure instead of empty proposals.
        server.stop();
        let (_, gone) = ask(config(Some(&url)));
        assert!(matches!(gone, ModelReply::Failed { .. }), "{gone:?}");
    }
}
