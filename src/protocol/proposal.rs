//! One policy reply as it crosses threads and processes: the command text with the
//! exact sampled token ids and their log-probabilities, and who typed it. Plain data
//! below `env` and `policy`, which both speak it.

/// Who typed the command: a model turn must carry the `### ` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Model,
    Person,
}

/// One reply. For a model, `token_ids` are exactly the sampled ids (stop token
/// included) and `logprobs` their log-probabilities; training uses these, never a
/// re-tokenisation of `text`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Proposal {
    pub text: String,
    pub token_ids: Vec<u32>,
    pub logprobs: Vec<f32>,
    /// Typed by a person (the `### ` prefix is optional) or produced by a policy.
    pub person: bool,
    /// The policy could not produce this reply (e.g. every remote server it tried failed):
    /// the episode ends as an infrastructure error, unscored, instead of being stepped.
    pub failed: Option<String>,
}

impl Proposal {
    pub fn source(&self) -> Source {
        if self.person {
            Source::Person
        } else {
            Source::Model
        }
    }

    /// Sum of the token log-probabilities, when there are any.
    pub fn logprob(&self) -> Option<f64> {
        if self.logprobs.is_empty() {
            None
        } else {
            Some(self.logprobs.iter().map(|&x| f64::from(x)).sum())
        }
    }
}
