//! A person typing commands, one per line, on any `BufRead` (stdin for
//! `coe step`). The `### ` prefix is optional for a person.
use super::interface::{Policy, PolicyError, Query};
use crate::protocol::Proposal;
use std::io::BufRead;

pub struct HumanPolicy<R: BufRead> {
    input: R,
}

impl<R: BufRead> HumanPolicy<R> {
    pub fn new(input: R) -> Self {
        HumanPolicy { input }
    }
}

impl<R: BufRead> Policy for HumanPolicy<R> {
    fn name(&self) -> String {
        "human".into()
    }

    fn propose(&mut self, queries: &[Query<'_>]) -> Result<Vec<Proposal>, PolicyError> {
        let mut out = Vec::with_capacity(queries.len());
        for _ in queries {
            let mut line = String::new();
            let n = self
                .input
                .read_line(&mut line)
                .map_err(|e| PolicyError::Other(format!("cannot read a command: {e}")))?;
            if n == 0 {
                return Err(PolicyError::InputClosed);
            }
            let text = line.trim_end_matches(['\n', '\r']).to_string();
            out.push(Proposal {
                text,
                person: true,
                failed: None,
                ..Proposal::default()
            });
        }
        Ok(out)
    }
}
