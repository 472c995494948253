//! What the workbench knows about a followed run, built from `events.jsonl`
//! lines one at a time (monitor mode). Everything is bounded: the newest
//! [`MAX_EPISODES`] episodes with their turns, decimated plot series, and
//! counters for what was dropped, so following a long run keeps memory flat.
//!
//! A `run_started` with a non-zero `start_step` after the first one means the
//! run was resumed from a checkpoint: points past that step are dropped from the
//! plots because the resumed run writes them again (docs/events.md).
//!
//! Trained tokens (the plots' other x-axis) come from a train metric's `tokens`
//! when the trainer writes it, else are estimated by summing
//! `tokens_per_s × Δelapsed_s` over train metrics; `tokens` maps step to tokens.
use crate::protocol::{EpisodeEvent, Event, Metric, RunEvent, RunStarted, RunStatus, TurnRecord};
use crate::tui::state::ring::{Ring, Series};

/// Episodes kept for scrubbing; older ones are forgotten.
pub const MAX_EPISODES: usize = 256;
/// Points per plot line before it is halved.
pub const MAX_POINTS: usize = 4096;

/// One episode as the monitor shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeView {
    pub job: u64,
    pub episode: u64,
    pub task_id: String,
    /// The state before the first turn.
    pub initial_state: String,
    pub turns: Vec<TurnRecord>,
    pub finished: Option<EpisodeEnd>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodeEnd {
    pub solved: bool,
    pub ret: f64,
    pub infra_error: bool,
}

impl EpisodeView {
    /// The state after `turn` turns (0 = the initial state), clamped to the last turn.
    pub fn state_at(&self, turn: usize) -> &str {
        match turn.checked_sub(1) {
            None => &self.initial_state,
            Some(i) => self
                .turns
                .get(i)
                .or(self.turns.last())
                .map_or(&self.initial_state, |t| &t.state),
        }
    }
}

/// The metrics a plot can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotKind {
    Loss,
    Reward,
    SolveRate,
    Kl,
    TokensPerS,
}

impl PlotKind {
    pub const ALL: [PlotKind; 5] = [
        PlotKind::Loss,
        PlotKind::Reward,
        PlotKind::SolveRate,
        PlotKind::Kl,
        PlotKind::TokensPerS,
    ];

    pub fn label(self) -> &'static str {
        match self {
            PlotKind::Loss => "loss",
            PlotKind::Reward => "mean reward",
            PlotKind::SolveRate => "solve rate",
            PlotKind::Kl => "KL",
            PlotKind::TokensPerS => "tokens/s",
        }
    }

    /// The metric's name in a file name (`solve-rate`).
    pub fn slug(self) -> &'static str {
        match self {
            PlotKind::Loss => "loss",
            PlotKind::Reward => "reward",
            PlotKind::SolveRate => "solve-rate",
            PlotKind::Kl => "kl",
            PlotKind::TokensPerS => "tokens-per-s",
        }
    }

    pub fn next(self) -> PlotKind {
        let i = PlotKind::ALL.iter().position(|&k| k == self).unwrap_or(0);
        PlotKind::ALL
            .get((i + 1) % PlotKind::ALL.len())
            .copied()
            .unwrap_or(PlotKind::Loss)
    }

    fn index(self) -> usize {
        PlotKind::ALL.iter().position(|&k| k == self).unwrap_or(0)
    }

    fn value(self, m: &Metric) -> Option<f64> {
        match self {
            PlotKind::Loss => m.loss,
            PlotKind::Reward => m.reward,
            PlotKind::SolveRate => m.solve_rate,
            PlotKind::Kl => m.kl,
            PlotKind::TokensPerS => m.tokens_per_s,
        }
    }
}

/// Plot lines by metric and phase (`train`, then everything else as `eval`).
#[derive(Debug, Clone)]
pub struct Plots {
    series: Vec<[Series; 2]>,
}

impl Default for Plots {
    fn default() -> Self {
        Plots {
            series: PlotKind::ALL
                .iter()
                .map(|_| [Series::new(MAX_POINTS), Series::new(MAX_POINTS)])
                .collect(),
        }
    }
}

impl Plots {
    /// (train, eval) lines of a metric.
    pub fn get(&self, kind: PlotKind) -> Option<&[Series; 2]> {
        self.series.get(kind.index())
    }

    fn push(&mut self, m: &Metric) {
        let phase = usize::from(m.phase != "train");
        for kind in PlotKind::ALL {
            if let (Some(v), Some(lines)) = (kind.value(m), self.series.get_mut(kind.index()))
                && let Some(line) = lines.get_mut(phase)
            {
                line.push(m.step as f64, v);
            }
        }
    }

    fn truncate_after(&mut self, step: u64) {
        for lines in &mut self.series {
            for line in lines.iter_mut() {
                line.truncate_after(step as f64);
            }
        }
    }
}

/// A run as read from its events.
#[derive(Debug, Clone)]
pub struct RunState {
    pub started: Option<RunStarted>,
    /// How many times the run was resumed.
    pub resumes: u32,
    pub episodes: Ring<EpisodeView>,
    pub plots: Plots,
    /// The newest `train` metric (throughput and elapsed time for the status bar).
    pub last_train: Option<Metric>,
    pub step: u64,
    pub finished: Option<(RunStatus, Option<String>)>,
    /// Lines ingested, of any type.
    pub events: u64,
    /// Lines of a type this version does not know.
    pub unknown: u64,
    /// Turns or ends of episodes no longer (or never) held.
    pub orphans: u64,
    /// (step, trained tokens so far), one point per train metric.
    pub tokens: Series,
    /// The newest train metric's `elapsed_s`, for the next estimate.
    last_elapsed: Option<f64>,
}

impl Default for RunState {
    fn default() -> Self {
        RunState {
            started: None,
            resumes: 0,
            episodes: Ring::new(MAX_EPISODES),
            plots: Plots::default(),
            last_train: None,
            step: 0,
            finished: None,
            events: 0,
            unknown: 0,
            orphans: 0,
            tokens: Series::new(MAX_POINTS),
            last_elapsed: None,
        }
    }
}

impl RunState {
    /// Applies one event; returns a line for the log pane when the event is worth one.
    pub fn ingest(&mut self, event: Event) -> Option<String> {
        self.events += 1;
        match event {
            Event::Episode(e) => {
                self.ingest_episode(e);
                None
            }
            Event::Run(e) => self.ingest_run(e),
            Event::Unknown(_) => {
                self.unknown += 1;
                None
            }
        }
    }

    fn find(&self, job: u64, episode: u64) -> Option<usize> {
        self.episodes
            .rposition(|e| e.job == job && e.episode == episode)
    }

    fn ingest_episode(&mut self, e: EpisodeEvent) {
        match e {
            EpisodeEvent::EpisodeStarted {
                job,
                episode,
                task_id,
                state,
            } => self.episodes.push(EpisodeView {
                job,
                episode,
                task_id,
                initial_state: state,
                turns: Vec::new(),
                finished: None,
            }),
            EpisodeEvent::Turn {
                job,
                episode,
                record,
            } => match self
                .find(job, episode)
                .and_then(|i| self.episodes.get_mut(i))
            {
                Some(ep) => ep.turns.push(record),
                None => self.orphans += 1,
            },
            EpisodeEvent::EpisodeFinished {
                job,
                episode,
                solved,
                ret,
                infra_error,
                ..
            } => match self
                .find(job, episode)
                .and_then(|i| self.episodes.get_mut(i))
            {
                Some(ep) => {
                    ep.finished = Some(EpisodeEnd {
                        solved,
                        ret,
                        infra_error,
                    })
                }
                None => self.orphans += 1,
            },
        }
    }

    fn count_tokens(&mut self, m: &Metric) {
        let before = self.tokens.last().map_or(0.0, |p| p.1);
        let total = match (m.tokens, m.tokens_per_s, m.elapsed_s) {
            (Some(t), _, _) => t as f64,
            (None, Some(tps), Some(el)) => {
                let dt = match self.last_elapsed {
                    Some(prev) if el >= prev => el - prev,
                    _ => el,
                };
                before + tps * dt
            }
            _ => before,
        };
        self.last_elapsed = m.elapsed_s.or(self.last_elapsed);
        self.tokens.push(m.step as f64, total);
    }

    /// Trained tokens at `step`, interpolated between the train metrics around it.
    pub fn tokens_at(&self, step: f64) -> Option<f64> {
        let pts = self.tokens.points();
        let i = pts.partition_point(|p| p.0 < step);
        match (i.checked_sub(1).and_then(|j| pts.get(j)), pts.get(i)) {
            (_, Some(b)) if b.0 == step => Some(b.1),
            (Some(a), Some(b)) => Some(a.1 + (b.1 - a.1) * (step - a.0) / (b.0 - a.0)),
            (None, Some(b)) => Some(b.1 * step / b.0.max(1.0)),
            (Some(a), None) => Some(a.1),
            (None, None) => None,
        }
    }

    fn ingest_run(&mut self, e: RunEvent) -> Option<String> {
        match e {
            RunEvent::RunStarted(s) => {
                let line = if self.started.is_some() && s.start_step > 0 {
                    self.resumes += 1;
                    self.plots.truncate_after(s.start_step);
                    self.tokens.truncate_after(s.start_step as f64);
                    // The resumed run's clock starts again at zero.
                    self.last_elapsed = None;
                    format!("run {} resumed at step {}", s.run, s.start_step)
                } else {
                    format!(
                        "run {} started: {:?} on {}, {} steps",
                        s.run, s.kind, s.device, s.total_steps
                    )
                };
                self.step = s.start_step;
                self.finished = None;
                self.started = Some(s);
                Some(line)
            }
            RunEvent::Metric(m) => {
                self.step = self.step.max(m.step);
                self.plots.push(&m);
                if m.phase == "train" {
                    self.count_tokens(&m);
                    self.last_train = Some(m);
                }
                None
            }
            RunEvent::Checkpoint { step, path, .. } => {
                Some(format!("checkpoint at step {step}: {path}"))
            }
            RunEvent::Log { level, message, .. } => Some(format!("[{level}] {message}")),
            RunEvent::RunFinished {
                status,
                step,
                error,
                ..
            } => {
                self.step = self.step.max(step);
                let line = match &error {
                    Some(e) => format!("run finished: {status:?} at step {step}: {e}"),
                    None => format!("run finished: {status:?} at step {step}"),
                };
                self.finished = Some((status, error));
                Some(line)
            }
        }
    }
}
