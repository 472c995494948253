//! The terminal workbench (DESIGN §7): monitor a run (live or followed from its
//! `events.jsonl`), step through a task with the model's proposals, edit and
//! validate the run config and start a job from it, browse data.
//!
//! Shape (DESIGN §6, STYLE 1–5): one UI thread owns the terminal and the
//! [`state::AppState`]; an input thread, a tail reader, an environment worker
//! (sandbox pool + episode) and a model worker (owns the model) talk to it over
//! bounded channels with the messages of [`msg`]. [`update::update`] holds all
//! logic and returns effects for [`effects::EffectRunner`] to carry out; [`view`]
//! draws, once per frame at most (`ui.max_fps`).
pub mod app;
pub mod bench;
pub mod effects;
pub mod event_loop;
pub mod export;
pub mod keymap;
pub mod msg;
pub mod results_io;
pub mod sources;
pub mod state;
pub mod style;
pub mod update;
pub mod view;

pub use app::{TuiOptions, run};
