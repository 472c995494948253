//! The UI thread's loop (STYLE 1, 4): wait for any message, drain a bounded
//! batch from each channel, apply them with `update`, perform the effects, and
//! redraw only when something changed and no sooner than `1 / ui.max_fps`
//! after the previous frame. Generic over the ratatui backend so tests and the
//! benchmark drive the very same loop on a `TestBackend`.
//!
//! A frame whose only news is a followed run's events waits longer, up to
//! `1 / FOLLOW_FPS`: a run's progress is read, not watched frame by frame, and
//! each frame re-highlights the newest turn — at 1,000 events/s, drawing them
//! at 30 fps took ~5 % of a core from the machine the run is on (results/tui.md).
//! Keys and worker replies still draw at `ui.max_fps`. When nothing arrives the
//! loop wakes once a second, for the clock.
use crate::tui::effects::EffectRunner;
use crate::tui::msg::Msg;
use crate::tui::state::AppState;
use crate::tui::update::update;
use crate::tui::view::render;
use crossbeam_channel::{Receiver, select};
use ratatui::Terminal;
use ratatui::backend::Backend;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Messages taken from one channel per loop turn before drawing.
pub const DRAIN_INPUT: usize = 64;
pub const DRAIN_FOLLOW: usize = 8;
pub const DRAIN_WORKER: usize = 64;
const TICK: Duration = Duration::from_secs(1);
/// The most frames a second drawn for a followed run's events alone.
pub const FOLLOW_FPS: u32 = 10;

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Loop state besides the app state: pacing and the input channel.
pub struct EventLoop {
    pub input_rx: Receiver<Msg>,
    frame_gap: Duration,
    /// The gap when only follow events changed the state since the last frame.
    follow_gap: Duration,
    /// A key, worker reply or tick changed the state since the last frame.
    prompt: bool,
    last_draw: Option<Instant>,
    last_tick: Instant,
    /// Draw durations in seconds, for the benchmark (empty unless `record_frames`).
    pub frame_times: Vec<f64>,
    pub record_frames: bool,
}

impl EventLoop {
    pub fn new(input_rx: Receiver<Msg>, max_fps: u32) -> Self {
        let frame_gap = Duration::from_secs_f64(1.0 / f64::from(max_fps.max(1)));
        EventLoop {
            input_rx,
            frame_gap,
            follow_gap: frame_gap.max(Duration::from_secs_f64(1.0 / f64::from(FOLLOW_FPS))),
            prompt: true,
            last_draw: None,
            last_tick: Instant::now(),
            frame_times: Vec::new(),
            record_frames: false,
        }
    }

    fn apply(state: &mut AppState, rt: &mut EffectRunner, msg: Msg) {
        let mut queue = vec![msg];
        while let Some(m) = queue.pop() {
            for fx in update(state, m) {
                if let Some(back) = rt.perform(state, fx) {
                    queue.push(back);
                }
            }
        }
    }

    /// The least time between the last frame and the next.
    fn gap(&self) -> Duration {
        if self.prompt {
            self.frame_gap
        } else {
            self.follow_gap
        }
    }

    /// Draws if the state is dirty and the frame budget allows; returns whether it drew.
    pub fn maybe_draw<B: Backend>(
        &mut self,
        terminal: &mut Terminal<B>,
        state: &mut AppState,
    ) -> Result<bool, B::Error> {
        let due = self.last_draw.is_none_or(|t| t.elapsed() >= self.gap());
        if !(state.dirty && due) {
            return Ok(false);
        }
        let start = Instant::now();
        state.prepare_frame();
        terminal.draw(|f| render(f, state))?;
        if self.record_frames {
            self.frame_times.push(start.elapsed().as_secs_f64());
        }
        state.dirty = false;
        self.prompt = false;
        self.last_draw = Some(Instant::now());
        Ok(true)
    }

    /// One turn: draw if due, wait at most until the next frame or tick, drain, update.
    pub fn turn<B: Backend>(
        &mut self,
        terminal: &mut Terminal<B>,
        state: &mut AppState,
        rt: &mut EffectRunner,
    ) -> Result<(), B::Error> {
        self.maybe_draw(terminal, state)?;
        let gap = self.gap();
        let until_frame = self
            .last_draw
            .map_or(Duration::ZERO, |t| gap.saturating_sub(t.elapsed()));
        let until_tick = TICK.saturating_sub(self.last_tick.elapsed());
        let timeout = if state.dirty {
            until_frame.min(until_tick)
        } else {
            until_tick
        };
        let first = select! {
            recv(self.input_rx) -> m => m.ok().map(|m| (m, true)),
            recv(rt.follow_rx) -> m => m.ok().map(|m| (m, false)),
            recv(rt.worker_rx) -> m => m.ok().map(|m| (m, true)),
            default(timeout) => None,
        };
        if let Some((m, prompt)) = first {
            self.prompt |= prompt;
            Self::apply(state, rt, m);
        }
        for _ in 0..DRAIN_INPUT {
            match self.input_rx.try_recv() {
                Ok(m) => {
                    self.prompt = true;
                    Self::apply(state, rt, m);
                }
                Err(_) => break,
            }
        }
        for _ in 0..DRAIN_FOLLOW {
            match rt.follow_rx.try_recv() {
                Ok(m) => Self::apply(state, rt, m),
                Err(_) => break,
            }
        }
        for _ in 0..DRAIN_WORKER {
            match rt.worker_rx.try_recv() {
                Ok(m) => {
                    self.prompt = true;
                    Self::apply(state, rt, m);
                }
                Err(_) => break,
            }
        }
        if self.last_tick.elapsed() >= TICK {
            self.last_tick = Instant::now();
            self.prompt = true;
            Self::apply(state, rt, Msg::Tick { unix: unix_now() });
        }
        Ok(())
    }

    /// Runs until the state asks to quit; draws a last frame first.
    pub fn run<B: Backend>(
        &mut self,
        terminal: &mut Terminal<B>,
        state: &mut AppState,
        rt: &mut EffectRunner,
    ) -> Result<(), B::Error> {
        state.now = unix_now();
        while !state.quit {
            self.turn(terminal, state, rt)?;
        }
        Ok(())
    }
}
