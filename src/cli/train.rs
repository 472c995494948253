//! `coe train sft|rl`: starts the job on the runtime's model worker and prints its progress on
//! stderr (step, loss or reward, tokens/s, ETA) until it ends; the job's per-round `progress`
//! logs (an RL rollout, an evaluation) share one line, rewritten in place on a terminal.
//! Ctrl-C or SIGTERM asks the job to checkpoint and stop at the next step boundary; a second
//! Ctrl-C exits at once (the last complete checkpoint stays the latest). SIGTERM never does:
//! `timeout(1)` sends it twice (to the command, then to its process group), and that must still
//! end with a checkpoint (`util::interrupt`).
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::context::Ctx;
use crate::protocol::{Event, JobKind, Metric, RunEvent, RunStatus};
use crate::runtime::{JobSpec, Runtime};
use crate::train::evaluate::PROGRESS_LEVEL;
use crate::util::progress::{ProgressLine, clock};
use std::io::Stderr;

pub fn run(ctx: &Ctx, kind: JobKind, resume: bool) -> anyhow::Result<ExitCode> {
    let (mut runtime, rx) = Runtime::new();
    let job = runtime.start(JobSpec {
        kind,
        config: ctx.config.clone(),
        resume,
        runs_dir: Path::new("runs").to_path_buf(),
    })?;
    crate::util::interrupt::install(
        "\ncoe: stopping after this step (writing a checkpoint); Ctrl-C again to quit now\n",
    );
    let mut progress = Progress::new();
    let mut asked = false;
    let mut status = None;
    loop {
        if crate::util::interrupt::interrupted() && !asked {
            asked = true;
            runtime.cancel(job);
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(event) => {
                if let Some(s) = progress.show(&event) {
                    status = Some(s);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        if status.is_some() {
            break;
        }
    }
    let outcome = runtime.wait(job);
    Ok(match (status, outcome) {
        (_, Err(e)) => {
            eprintln!("coe: error: {e}");
            ExitCode::from(1)
        }
        (Some(RunStatus::Cancelled), Ok(_)) => ExitCode::from(130),
        (_, Ok(_)) => ExitCode::SUCCESS,
    })
}

/// Turns events into progress lines.
struct Progress {
    total: u64,
    start_step: u64,
    started: Option<Instant>,
    /// The latest per-round line, until an ordinary line takes its place.
    round: ProgressLine<Stderr>,
}

impl Progress {
    fn new() -> Self {
        Progress {
            total: 0,
            start_step: 0,
            started: None,
            round: ProgressLine::stderr(),
        }
    }

    fn show(&mut self, event: &Event) -> Option<RunStatus> {
        let Event::Run(run) = event else {
            return None;
        };
        if let RunEvent::Log { level, message, .. } = run
            && level == PROGRESS_LEVEL
        {
            self.round.show(&format!("  {message}"));
            return None;
        }
        self.round.clear();
        match run {
            RunEvent::RunStarted(s) => {
                self.total = s.total_steps;
                self.start_step = s.start_step;
                self.started = Some(Instant::now());
                eprintln!(
                    "coe: {} run {:?}: {} steps from step {} on {} ({})",
                    crate::train::setup::kind_name(s.kind),
                    s.run,
                    s.total_steps,
                    s.start_step,
                    s.device,
                    s.model
                );
            }
            RunEvent::Metric(m) if m.phase == "eval" => eprintln!(
                "  eval @ step {}: solved {:.1}%, mean return {:.3}",
                m.step,
                100.0 * m.solve_rate.unwrap_or(0.0),
                m.reward.unwrap_or(0.0)
            ),
            RunEvent::Metric(m) => eprintln!("  {}", self.line(m)),
            RunEvent::Checkpoint { step, path, .. } => {
                eprintln!("  checkpoint @ step {step}: {path}")
            }
            RunEvent::Log { level, message, .. } => eprintln!("  [{level}] {message}"),
            RunEvent::RunFinished {
                status,
                step,
                error,
                ..
            } => {
                match (status, error) {
                    (RunStatus::Failed, Some(e)) => eprintln!("coe: run failed: {e}"),
                    _ => eprintln!("coe: run {status:?} at step {step}"),
                }
                return Some(*status);
            }
        }
        None
    }

    fn line(&self, m: &Metric) -> String {
        let mut parts = vec![format!("step {}/{}", m.step, self.total)];
        if let Some(l) = m.loss {
            parts.push(format!("loss {l:.4}"));
        }
        if let Some(r) = m.reward {
            parts.push(format!("reward {r:.3}"));
        }
        if let Some(s) = m.solve_rate {
            parts.push(format!("solved {:.0}%", 100.0 * s));
        }
        if let Some(k) = m.kl {
            parts.push(format!("kl {k:.4}"));
        }
        if let Some(lr) = m.lr {
            parts.push(format!("lr {lr:.2e}"));
        }
        if let Some(t) = m.tokens_per_s {
            parts.push(format!("{t:.0} tok/s"));
        }
        if let Some(started) = self.started {
            let done = m.step.saturating_sub(self.start_step).max(1) as f64;
            let left = self.total.saturating_sub(m.step) as f64;
            let elapsed = started.elapsed().as_secs_f64();
            parts.push(format!("elapsed {}", clock(elapsed)));
            parts.push(format!("ETA {}", clock(elapsed / done * left)));
        }
        parts.join("  ")
    }
}
