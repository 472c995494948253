//! Training (DESIGN §5): LoRA SFT on demonstrations and the paper's multi-turn GRPO, each a
//! job run by the model worker thread (`runtime`), which owns the model, the optimizer and
//! the tokenizer for the whole job. Jobs report through an [`run_dir::Emitter`]: every event
//! goes to `runs/<name>/events.jsonl` and to whoever watches.
//!
//! The maths (schedule, AdamW, GRPO) are small pure modules with tests on hand-computed
//! numbers; `sft` and `rl` are the loops; `checkpoint` the atomic on-disk state that makes
//! `--resume` continue the same run.
pub mod adamw;
pub mod checkpoint;
pub mod error;
pub mod evaluate;
pub mod examples;
pub mod grpo;
pub mod memory;
pub mod periodic;
pub mod publish;
pub mod replay_cache;
pub mod rl;
pub mod rl_samples;
pub mod run_dir;
pub mod schedule;
pub mod setup;
pub mod sft;
pub mod tokens;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::sandbox::SandboxPool;

/// What a job runs with, besides its config.
pub struct JobEnv<'a> {
    pub run: &'a run_dir::RunDir,
    pub emit: &'a mut run_dir::Emitter,
    /// Set by the runtime (Ctrl-C, SIGTERM, the workbench): the job checkpoints and stops at
    /// the next step boundary.
    pub cancel: &'a AtomicBool,
    pub pool: &'a SandboxPool,
    pub resume: bool,
}

impl JobEnv<'_> {
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    pub step: u64,
    pub cancelled: bool,
    /// The final held-out evaluation, when there was one.
    pub last_eval: Option<evaluate::EvalSummary>,
}

/// A stream seed for `(seed, step, purpose)`: every random choice of a step derives from it,
/// so a resumed run makes the same choices as the uninterrupted one.
pub fn step_seed(seed: u64, step: u64, purpose: u64) -> u64 {
    // SplitMix64 finaliser over the three inputs: cheap and well mixed.
    let mut z = seed
        ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ purpose.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
