//! Token sequences with a mask of the tokens that are trained, and the log-probabilities the
//! model gives those tokens — the one forward pass SFT and RL share.
//!
//! Sequences are right-padded into one batch; only the positions whose next token is trained
//! are projected to the vocabulary (a command is a few tokens of a long prompt, so this saves
//! most of the logits' memory and time).
use tch::{Kind, Tensor};

use crate::model::llama::{Llama, ModelError};

/// A training sequence: `trained[i]` says whether token `i` is a target (assistant output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub ids: Vec<u32>,
    pub trained: Vec<bool>,
}

impl Sequence {
    /// Targets that have a preceding token to predict them from.
    pub fn n_targets(&self) -> usize {
        self.trained.iter().skip(1).filter(|&&t| t).count()
    }
}

/// Log-probabilities `[N]` (f32) of every trained token of `seqs`, in order (sequence by
/// sequence, left to right); differentiable with respect to the adapters when grad is on.
pub fn target_logprobs(model: &Llama, seqs: &[&Sequence]) -> Result<Tensor, ModelError> {
    let device = model.device();
    let b = seqs.len() as i64;
    let t = seqs.iter().map(|s| s.ids.len()).max().unwrap_or(0) as i64;
    let mut ids = vec![0i64; (b * t) as usize];
    let mut mask = vec![0i64; (b * t) as usize];
    let mut rows = Vec::new(); // flat index of the position predicting each target
    let mut targets = Vec::new();
    for (r, s) in seqs.iter().enumerate() {
        let base = r * t as usize;
        for (i, &id) in s.ids.iter().enumerate() {
            if let (Some(slot), Some(m)) = (ids.get_mut(base + i), mask.get_mut(base + i)) {
                *slot = i64::from(id);
                *m = 1;
            }
            if i > 0 && s.trained.get(i).copied().unwrap_or(false) {
                rows.push((base + i - 1) as i64);
                targets.push(i64::from(id));
            }
        }
    }
    if rows.is_empty() || t == 0 {
        return Ok(Tensor::zeros([0], (Kind::Float, device)));
    }
    let input = Tensor::from_slice(&ids).view([b, t]).to_device(device);
    let positions = Tensor::arange(t, (Kind::Int64, device))
        .unsqueeze(0)
        .repeat([b, 1]);
    let padded = seqs.iter().any(|s| s.ids.len() as i64 != t);
    let mask = padded.then(|| Tensor::from_slice(&mask).view([b, t]).to_device(device));
    let hidden = model.forward_hidden(&input, &positions, mask.as_ref(), None)?; // [B, T, D]
    let d = hidden.size().last().copied().unwrap_or(0);
    let picked = hidden
        .view([b * t, d])
        .index_select(0, &Tensor::from_slice(&rows).to_device(device)); // [N, D]
    let logp = model
        .logits(&picked)
        .to_kind(Kind::Float)
        .log_softmax(-1, Kind::Float); // [N, V]
    let targets = Tensor::from_slice(&targets).to_device(device).unsqueeze(1); // [N, 1]
    Ok(logp.gather(1, &targets, false).squeeze_dim(1))
}

/// Splits sequences into consecutive micro-batches of at most `max_rows` rows and
/// `max_tokens` padded tokens (rows × longest), at least one sequence each.
pub fn micro_batches(
    lens: &[usize],
    max_rows: usize,
    max_tokens: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < lens.len() {
        let mut end = start + 1;
        let mut width = lens.get(start).copied().unwrap_or(0);
        while let Some(&next) = lens.get(end) {
            let w = width.max(next);
            if end - start >= max_rows || w * (end + 1 - start) > max_tokens {
                break;
            }
            width = w;
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_batches_respect_rows_and_tokens() {
        assert_eq!(micro_batches(&[10, 10, 10, 10], 2, 1000), vec![0..2, 2..4]);
        assert_eq!(micro_batches(&[10, 30, 10], 8, 60), vec![0..2, 2..3]);
        assert_eq!(
            micro_batches(&[100], 8, 10),
            vec![0..1],
            "an oversize row goes alone"
        );
        assert!(micro_batches(&[], 4, 10).is_empty());
    }

    #[test]
    fn n_targets_skips_the_first_token() {
        let s = Sequence {
            ids: vec![1, 2, 3],
            trained: vec![true, false, true],
        };
        assert_eq!(s.n_targets(), 1);
    }
}
