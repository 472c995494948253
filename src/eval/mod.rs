//! Running episodes in bulk and scoring them: the rollout loop shared by
//! evaluation and RL with its per-round progress, pass@k and the turn curve, and
//! `results.json`.
pub mod answer;
pub mod metrics;
pub mod progress;
pub mod results;
pub mod rollout;
#[cfg(test)]
mod rollout_tests;
