//! Token sequences with a mask of the tokens that are trained, and the log-probabilities the
//! model gives those tokens — the one forward pass SFT and RL share.
//!
//! Sequences are right-padded into one batch and run WITHOUT a padding mask: a real token
//! only attends to the tokens before it, which are all real, so the causal mask alone is
//! exact for every position that is read, and attention takes torch's fused causal kernel
//! (flash on CPU and CUDA) instead of the unfused path that materialises [T, T] scores per
//! head. (The pad positions see real keys and produce garbage that nothing reads.) Only the
//! positions whose next token is trained are projected to the vocabulary, and SFT projects
//! them `HEAD_CHUNK` rows at a time, finishing each chunk's backward before the next, so
//! full-vocabulary f32 logits of a whole batch never exist.
use tch::{Device, Kind, Tensor};

use crate::model::llama::{Llama, ModelError};

/// Rows of the vocabulary projection alive at once in [`backward_nll`]: 512 rows of a
/// 49,152-token vocabulary are 100 MB of f32 logits (and as much again for their softmax).
pub const HEAD_CHUNK: i64 = 512;

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

/// A right-padded batch: inputs, and where its targets are.
struct Packed {
    input: Tensor,     // [B, T] i64
    positions: Tensor, // [B, T]
    real: Tensor,      // [B, T] 1 = real token, 0 = padding
    rows: Tensor,      // [N] flat index of the position predicting each target
    targets: Tensor,   // [N]
}

fn pack(seqs: &[&Sequence], device: Device) -> Option<Packed> {
    let b = seqs.len() as i64;
    let t = seqs.iter().map(|s| s.ids.len()).max().unwrap_or(0) as i64;
    let mut ids = vec![0i64; (b * t) as usize];
    let mut real = vec![0i64; (b * t) as usize];
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (r, s) in seqs.iter().enumerate() {
        let base = r * t as usize;
        for (i, &id) in s.ids.iter().enumerate() {
            if let (Some(slot), Some(m)) = (ids.get_mut(base + i), real.get_mut(base + i)) {
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
        return None;
    }
    Some(Packed {
        input: Tensor::from_slice(&ids).view([b, t]).to_device(device),
        positions: Tensor::arange(t, (Kind::Int64, device))
            .unsqueeze(0)
            .repeat([b, 1]),
        real: Tensor::from_slice(&real).view([b, t]).to_device(device),
        rows: Tensor::from_slice(&rows).to_device(device),
        targets: Tensor::from_slice(&targets).to_device(device),
    })
}

/// Final hidden states `[N, D]` of the positions that predict the trained tokens of `seqs`,
/// and those tokens `[N]`, in order; `None` when there is no target.
pub fn target_hidden(
    model: &Llama,
    seqs: &[&Sequence],
) -> Result<Option<(Tensor, Tensor)>, ModelError> {
    target_hidden_with(model, seqs, false)
}

/// [`target_hidden`], optionally with the padding mask (the slow form, kept to test that
/// leaving it out changes nothing).
fn target_hidden_with(
    model: &Llama,
    seqs: &[&Sequence],
    key_mask: bool,
) -> Result<Option<(Tensor, Tensor)>, ModelError> {
    let Some(p) = pack(seqs, model.device()) else {
        return Ok(None);
    };
    let mask = key_mask.then_some(&p.real);
    let hidden = model.forward_hidden(&p.input, &p.positions, mask, None)?; // [B, T, D]
    let (b, t, d) = hidden.size3()?;
    let picked = hidden.view([b * t, d]).index_select(0, &p.rows); // [N, D]
    Ok(Some((picked, p.targets)))
}

/// Log-probabilities `[N]` (f32) of `targets` `[N]` under the head applied to `hidden` `[N, D]`.
fn logprobs_of(model: &Llama, hidden: &Tensor, targets: &Tensor) -> Tensor {
    model
        .logits(hidden)
        .to_kind(Kind::Float)
        .log_softmax(-1, Kind::Float) // [N, V]
        .gather(1, &targets.unsqueeze(1), false)
        .squeeze_dim(1)
}

/// Log-probabilities `[N]` (f32) of every trained token of `seqs`, in order (sequence by
/// sequence, left to right); differentiable with respect to the adapters when grad is on.
pub fn target_logprobs(model: &Llama, seqs: &[&Sequence]) -> Result<Tensor, ModelError> {
    Ok(match target_hidden(model, seqs)? {
        Some((hidden, targets)) => logprobs_of(model, &hidden, &targets),
        None => Tensor::zeros([0], (Kind::Float, model.device())),
    })
}

/// Backpropagates `scale ×` the negative log-likelihood of `targets` given `hidden` (from
/// [`target_hidden`]) into the adapters and returns that loss. The head runs `HEAD_CHUNK`
/// rows at a time on a detached copy of `hidden`, each chunk's backward freeing its logits,
/// and the gradient gathered on the copy then flows through the body in one backward.
pub fn backward_nll(
    model: &Llama,
    hidden: &Tensor,
    targets: &Tensor,
    scale: f64,
) -> Result<f64, ModelError> {
    backward_nll_chunked(model, hidden, targets, scale, HEAD_CHUNK)
}

fn backward_nll_chunked(
    model: &Llama,
    hidden: &Tensor,
    targets: &Tensor,
    scale: f64,
    chunk: i64,
) -> Result<f64, ModelError> {
    let n = hidden.size().first().copied().unwrap_or(0);
    let leaf = hidden.detach().set_requires_grad(true);
    let mut total = 0.0;
    let mut start = 0;
    while start < n {
        let len = chunk.max(1).min(n - start);
        let logp = logprobs_of(
            model,
            &leaf.narrow(0, start, len),
            &targets.narrow(0, start, len),
        );
        let loss = logp.sum(Kind::Float) * -scale;
        total += loss.double_value(&[]);
        loss.f_backward()?;
        start += len;
    }
    if hidden.requires_grad() && n > 0 {
        (hidden * leaf.grad()).sum(Kind::Float).f_backward()?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::LlamaConfig;
    use crate::model::lora::LoraConfig;
    use crate::train::adamw::zero_grads;

    /// A tiny model with random base weights and random (non-zero) adapters.
    fn tiny_lora() -> (tch::nn::VarStore, Llama) {
        tch::manual_seed(11);
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let lora = LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: vec!["all-linear".into()],
        };
        let model = Llama::new(&vs.root(), &LlamaConfig::tiny(64), Some(&lora)).unwrap();
        tch::no_grad(|| {
            for (name, t) in model.base_parameters().chain(model.lora_parameters()) {
                let r = Tensor::randn_like(t) * 0.3;
                let v = if name.ends_with("norm.weight") {
                    r * 0.3 + 1.0
                } else {
                    r
                };
                t.shallow_clone().copy_(&v);
            }
        });
        (vs, model)
    }

    fn seq(len: u32, first_trained: u32) -> Sequence {
        Sequence {
            ids: (0..len).map(|i| (i * 7 + len) % 64).collect(),
            trained: (0..len).map(|i| i >= first_trained).collect(),
        }
    }

    fn rel(a: &Tensor, b: &Tensor) -> f64 {
        let d = (a - b).norm().double_value(&[]);
        d / b.norm().double_value(&[]).max(1e-30)
    }

    #[test]
    fn mask_free_right_padding_gives_the_masked_loss_and_gradients() {
        let (_vs, mut model) = tiny_lora();
        model.set_training(true);
        let seqs = [seq(13, 9), seq(5, 2), seq(9, 4)];
        let refs: Vec<&Sequence> = seqs.iter().collect();
        let n: usize = seqs.iter().map(Sequence::n_targets).sum();
        let grads = |model: &Llama| -> Vec<Tensor> {
            model
                .lora_parameters()
                .map(|(_, p)| p.grad().copy())
                .collect()
        };
        // The reference: the padding mask, all logits at once, one backward.
        let (h, t) = target_hidden_with(&model, &refs, true).unwrap().unwrap();
        let loss = logprobs_of(&model, &h, &t).sum(Kind::Float) * -(1.0 / n as f64);
        loss.backward();
        let (want_loss, want) = (loss.double_value(&[]), grads(&model));
        zero_grads(model.lora_parameters().map(|(_, t)| t));
        // Ours: no mask, the head two rows at a time.
        let (h, t) = target_hidden(&model, &refs).unwrap().unwrap();
        let got_loss = backward_nll_chunked(&model, &h, &t, 1.0 / n as f64, 2).unwrap();
        let got = grads(&model);
        assert!(
            ((got_loss - want_loss) / want_loss).abs() < 1e-5,
            "{got_loss} vs {want_loss}"
        );
        assert!(
            want.iter()
                .any(|g| g.abs().sum(Kind::Float).double_value(&[]) > 0.0)
        );
        for (g, w) in got.iter().zip(&want) {
            assert!(rel(g, w) < 1e-5, "gradient differs by {}", rel(g, w));
        }
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
