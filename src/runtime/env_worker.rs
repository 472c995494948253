//! The environment worker of step mode: owns the sandbox pool and the open
//! episode, so test runs (milliseconds to seconds) never block the UI thread.
//! Requests arrive in order on a bounded channel; every reply names the episode
//! it is about, and failures travel back as `EnvReply::Failed`.
use crate::config::EnvSection;
use crate::env::episode::{Episode, Source};
use crate::env::prompt::first_user_message;
use crate::protocol::run::{Limits, RunRequest};
use crate::protocol::workbench::{EnvReply, EnvRequest, EnvSnapshot};
use crate::sandbox::{SandboxConfig, SandboxPool};
use crossbeam_channel::{Receiver, Sender};
use std::thread::JoinHandle;

/// Starts the worker; it exits when the request channel closes.
pub fn spawn<M: From<EnvReply> + Send + 'static>(
    sandbox: SandboxConfig,
    env: EnvSection,
    rx: Receiver<EnvRequest>,
    tx: Sender<M>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("coe-env".into())
        .spawn(move || run(&sandbox, &env, &rx, &tx))
}

fn episode_of(req: &EnvRequest) -> u64 {
    match req {
        EnvRequest::Open { episode, .. }
        | EnvRequest::Apply { episode, .. }
        | EnvRequest::Undo { episode }
        | EnvRequest::RunTests { episode } => *episode,
    }
}

fn snapshot(ep: &Episode<'_>) -> Box<EnvSnapshot> {
    let state = ep.state();
    let observation = if ep.turn() == 0 {
        first_user_message(ep.task(), &state)
    } else {
        state.clone()
    };
    Box::new(EnvSnapshot {
        task_id: ep.task().id.clone(),
        state,
        observation,
        tests: ep.task().tests.clone(),
        report: ep.report().cloned(),
        turn: ep.turn(),
        done: ep.done(),
        solved: ep.solved_now(),
        // `+ 0.0` turns the empty sum's -0.0 into 0.0, so no "-0.0" is shown.
        ret: ep.rewards().iter().sum::<f64>() + 0.0,
        code: ep.buffer().to_code(),
    })
}

fn run<M: From<EnvReply> + Send + 'static>(
    sandbox: &SandboxConfig,
    env: &EnvSection,
    rx: &Receiver<EnvRequest>,
    tx: &Sender<M>,
) {
    let send = |r: EnvReply| tx.send(M::from(r)).is_ok();
    // One episode at a time needs few workers; the rest of the machine stays free.
    let cfg = SandboxConfig {
        workers: sandbox.workers.clamp(1, 2),
        ..sandbox.clone()
    };
    let pool = match SandboxPool::new(&cfg) {
        Ok(p) => p,
        Err(e) => {
            let message = format!("cannot start the Python sandbox: {e}");
            send(EnvReply::Failed {
                episode: 0,
                message: message.clone(),
            });
            for req in rx.iter() {
                if !send(EnvReply::Failed {
                    episode: episode_of(&req),
                    message: message.clone(),
                }) {
                    return;
                }
            }
            return;
        }
    };
    let p = pool.protection();
    let protection = if p.namespaces {
        "namespaces on".to_string()
    } else {
        "namespaces OFF".to_string()
    };
    if !send(EnvReply::Ready {
        workers: pool.workers(),
        protection,
    }) {
        return;
    }
    let limits: Limits = cfg.limits.clone();
    let mut open: Option<(u64, Episode<'_>)> = None;
    for req in rx.iter() {
        let id = episode_of(&req);
        let reply = match req {
            EnvRequest::Open { episode, task } => {
                match Episode::reset(*task, &pool, env, &limits, (0, episode)) {
                    Ok((ep, _)) => {
                        let snapshot = snapshot(&ep);
                        open = Some((episode, ep));
                        EnvReply::Opened { episode, snapshot }
                    }
                    Err(e) => EnvReply::Failed {
                        episode,
                        message: e.to_string(),
                    },
                }
            }
            other => match open.as_mut() {
                Some((cur, ep)) if *cur == id => apply(ep, other, &pool, &limits),
                _ => EnvReply::Failed {
                    episode: id,
                    message: "that episode is no longer open".into(),
                },
            },
        };
        if !send(reply) {
            return;
        }
    }
}

fn apply(ep: &mut Episode<'_>, req: EnvRequest, pool: &SandboxPool, limits: &Limits) -> EnvReply {
    let episode = ep.id();
    match req {
        EnvRequest::Apply {
            text,
            person,
            logprob,
            ..
        } => {
            let source = if person {
                Source::Person
            } else {
                Source::Model
            };
            match ep.step(&text, source) {
                Ok(out) => {
                    let mut record = out.record;
                    record.logprob = logprob;
                    ep.take_events();
                    EnvReply::Stepped {
                        episode,
                        record: Box::new(record),
                        snapshot: snapshot(ep),
                    }
                }
                Err(e) => EnvReply::Failed {
                    episode,
                    message: e.to_string(),
                },
            }
        }
        EnvRequest::Undo { .. } => {
            if ep.undo() {
                EnvReply::Undone {
                    episode,
                    snapshot: snapshot(ep),
                }
            } else {
                EnvReply::Failed {
                    episode,
                    message: "nothing to undo".into(),
                }
            }
        }
        EnvRequest::RunTests { .. } => {
            let req = RunRequest {
                setup: ep.task().setup_code().to_string(),
                code: ep.buffer().to_code(),
                tests: ep.task().tests.clone(),
                limits: limits.clone(),
            };
            match pool.run(&req) {
                Ok(report) => EnvReply::Tested { episode, report },
                Err(e) => EnvReply::Failed {
                    episode,
                    message: format!("test run failed: {e}"),
                },
            }
        }
        EnvRequest::Open { .. } => EnvReply::Failed {
            episode,
            message: "internal: open handled by the caller".into(),
        },
    }
}
