//! The bookkeeping SFT and RL share around their optimizer steps: held-out evaluation and
//! checkpoints at fixed intervals (and at the last step), a checkpoint when cancelled, and
//! the final adapter when done.
use super::error::TrainResult;
use super::evaluate::{EvalSummary, evaluate};
use super::setup::{self, Prepared};
use super::{JobEnv, JobOutcome};
use crate::config::Config;
use crate::protocol::JobKind;
use crate::protocol::{Metric, RunEvent};
use crate::task::Task;

/// When a job evaluates and checkpoints.
pub struct Periodic {
    pub kind: JobKind,
    pub total: u64,
    pub eval_every: usize,
    pub checkpoint_every: usize,
    pub keep_last: usize,
    /// Episode batches of step `n` are numbered `stride · n` (see `evaluate::EPISODE_STRIDE`).
    pub batch_stride: u64,
}

impl Periodic {
    /// After optimizer step `step` (1-based): evaluate on `valid` and checkpoint when due.
    pub fn after_step(
        &self,
        cfg: &Config,
        step: u64,
        valid: &[Task],
        prep: &mut Prepared,
        env: &mut JobEnv<'_>,
        last_eval: &mut Option<EvalSummary>,
    ) -> TrainResult<()> {
        let due = |every: usize| step.is_multiple_of(every.max(1) as u64) || step == self.total;
        if !valid.is_empty() && due(self.eval_every) {
            let batch = self.batch_stride * step;
            let s = evaluate(valid, &mut prep.policy, env.pool, cfg, env.emit, batch)?;
            emit_eval(env, step, &s)?;
            *last_eval = Some(s);
        }
        if due(self.checkpoint_every) {
            setup::save_checkpoint(cfg, self.kind, step, self.keep_last, prep, env)?;
        }
        Ok(())
    }

    /// Checkpoints at `step` and reports the job as cancelled.
    pub fn cancelled(
        &self,
        cfg: &Config,
        step: u64,
        prep: &Prepared,
        env: &mut JobEnv<'_>,
        last_eval: Option<EvalSummary>,
    ) -> TrainResult<JobOutcome> {
        setup::save_checkpoint(cfg, self.kind, step, self.keep_last, prep, env)?;
        Ok(JobOutcome {
            step,
            cancelled: true,
            last_eval,
        })
    }

    /// Writes the final adapter and reports the job as completed.
    pub fn finished(
        &self,
        step: u64,
        prep: &Prepared,
        env: &JobEnv<'_>,
        last_eval: Option<EvalSummary>,
    ) -> TrainResult<JobOutcome> {
        setup::save_final_adapter(prep, env)?;
        Ok(JobOutcome {
            step,
            cancelled: false,
            last_eval,
        })
    }
}

/// Reports a held-out evaluation.
fn emit_eval(env: &mut JobEnv<'_>, step: u64, s: &EvalSummary) -> TrainResult<()> {
    let job = env.emit.job();
    env.emit.run(RunEvent::Metric(Metric {
        job,
        step,
        phase: "eval".into(),
        reward: Some(s.mean_return),
        solve_rate: Some(s.solve_rate),
        ..Metric::default()
    }))?;
    Ok(())
}
