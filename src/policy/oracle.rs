//! The oracle policy: proposes the next command of the shortest repair from the
//! current code to the reference solution. It checks the environment, not a
//! model: on a valid task it must always solve, from any state it is asked about.
use super::interface::{Policy, PolicyError, Query};
use crate::data::trace::repair_trace;
use crate::env::buffer::Buffer;
use crate::protocol::Proposal;

#[derive(Debug, Default)]
pub struct OraclePolicy;

impl Policy for OraclePolicy {
    fn name(&self) -> String {
        "oracle".into()
    }

    fn propose(&mut self, queries: &[Query<'_>]) -> Result<Vec<Proposal>, PolicyError> {
        queries
            .iter()
            .map(|q| {
                let solution = q
                    .task
                    .solution
                    .as_deref()
                    .ok_or_else(|| PolicyError::Task {
                        task: q.task.id.clone(),
                        message: "has no `solution`; the oracle needs the reference program".into(),
                    })?;
                let fixed = Buffer::from_code(solution).to_code();
                let trace = repair_trace(&q.buffer.to_code(), &fixed);
                let first = trace.first().ok_or_else(|| PolicyError::Task {
                    task: q.task.id.clone(),
                    message: "the repair trace is empty".into(),
                })?;
                Ok(Proposal {
                    text: format!("### {first}"),
                    ..Proposal::default()
                })
            })
            .collect()
    }
}
