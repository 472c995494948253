//! Next-token choice from logits: greedy, temperature, top-k and top-p, per row.
//!
//! Randomness comes from generators the caller owns (one per row, e.g. ChaCha), never
//! from torch's global RNG: each row draws one uniform number per step and the token
//! is found by inverting that row's CDF on the device. A row's samples therefore
//! depend only on its own seed and logits — not on which other rows share the batch —
//! and only the chosen ids and log-probabilities come back to the host.
//!
//! Two log-probabilities are returned: `logprob`, under the untruncated softmax at
//! temperature 1 (what policy-gradient training compares against the model it
//! trains), and `sampling_logprob`, under the distribution actually sampled from
//! (after temperature, top-k and top-p; 0 for greedy, whose choice is certain).

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingParams {
    /// 0 picks the most likely token (greedy); otherwise logits are divided by it.
    #[serde(default)]
    pub temperature: f64,
    /// Keep only the `top_k` most likely tokens; 0 turns the filter off. Tokens tied
    /// with the k-th are kept too.
    #[serde(default)]
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose mass reaches `top_p`; 1 = off.
    #[serde(default = "one")]
    pub top_p: f64,
}

fn one() -> f64 {
    1.0
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams::greedy()
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        }
    }

    /// Plain sampling from the softmax at `temperature`.
    pub fn with_temperature(temperature: f64) -> Self {
        SamplingParams {
            temperature,
            ..SamplingParams::greedy()
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0 || self.top_k == 1
    }

    pub fn validate(&self) -> Result<(), SamplingError> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(SamplingError::BadTemperature(self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(SamplingError::BadTopP(self.top_p));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampled {
    pub id: u32,
    /// log π(id) under softmax(logits), temperature 1, no truncation.
    pub logprob: f32,
    /// log-probability under the distribution sampled from (0 for greedy).
    pub sampling_logprob: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum SamplingError {
    #[error("temperature must be a finite number >= 0, got {0}")]
    BadTemperature(f64),
    #[error("top_p must be in (0, 1], got {0}")]
    BadTopP(f64),
    #[error("logits must be shaped [batch, vocab], got {0:?}")]
    BadLogits(Vec<i64>),
    #[error("{rngs} random generators given for {rows} rows")]
    RngCount { rngs: usize, rows: usize },
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

/// Chooses one token per row of `logits` `[B, V]`; `rngs[i]` drives row `i`
/// (unused, and may be empty, for greedy decoding).
pub fn sample<R: RngCore>(
    logits: &Tensor,
    params: &SamplingParams,
    rngs: &mut [R],
) -> Result<Vec<Sampled>, SamplingError> {
    params.validate()?;
    let rows = match logits.size()[..] {
        [b, _] => b as usize,
        _ => return Err(SamplingError::BadLogits(logits.size())),
    };
    if params.is_greedy() {
        return sample_with_uniforms(logits, params, &[]);
    }
    if rngs.len() != rows {
        return Err(SamplingError::RngCount {
            rngs: rngs.len(),
            rows,
        });
    }
    let uniforms: Vec<f32> = rngs.iter_mut().map(|r| r.random::<f32>()).collect();
    sample_with_uniforms(logits, params, &uniforms)
}

/// The deterministic core of [`sample`]: `uniforms[i]` in [0, 1) picks row `i`'s
/// token by inverse CDF (ignored when greedy).
pub fn sample_with_uniforms(
    logits: &Tensor,
    params: &SamplingParams,
    uniforms: &[f32],
) -> Result<Vec<Sampled>, SamplingError> {
    params.validate()?;
    let (b, v) = match logits.size()[..] {
        [b, v] if v > 0 => (b, v),
        _ => return Err(SamplingError::BadLogits(logits.size())),
    };
    let _guard = tch::no_grad_guard();
    let logits = logits.to_kind(Kind::Float); // [B, V]
    let (ids, sampling_logprob) = if params.is_greedy() {
        (
            logits.argmax(-1, false),
            Tensor::zeros([b], (Kind::Float, logits.device())),
        )
    } else {
        if uniforms.len() != b as usize {
            return Err(SamplingError::RngCount {
                rngs: uniforms.len(),
                rows: b as usize,
            });
        }
        let probs = truncated_probs(&logits, params, v)?; // [B, V]
        let cdf = probs.cumsum(-1, Kind::Float);
        let u = Tensor::from_slice(uniforms)
            .to_device(logits.device())
            .view([b, 1]);
        let target = u * cdf.narrow(1, v - 1, 1); // [B, 1], scaled in case the mass is not exactly 1
        let idx = target
            .f_searchsorted(&cdf, false, true, "right", None::<Tensor>)?
            .view([b]);
        // Rounding can push the target onto the final plateau of zero-probability
        // tokens; clamp to the last token that has any mass.
        let ramp = Tensor::arange(v, (Kind::Int64, logits.device())).view([1, v]);
        let last = (probs.gt(0.0).to_kind(Kind::Int64) * ramp).amax(-1, false); // [B]
        let ids = idx.minimum(&last);
        let p = probs.gather(-1, &ids.unsqueeze(-1), false).squeeze_dim(-1);
        (ids, p.log())
    };
    let logprob = logits
        .log_softmax(-1, Kind::Float)
        .gather(-1, &ids.unsqueeze(-1), false)
        .squeeze_dim(-1);
    // One transfer for all three: [3, B] f64 holds ids exactly.
    let packed = Tensor::stack(
        &[
            ids.to_kind(Kind::Double),
            logprob.to_kind(Kind::Double),
            sampling_logprob.to_kind(Kind::Double),
        ],
        0,
    )
    .to_device(Device::Cpu)
    .flatten(0, -1);
    let host = Vec::<f64>::try_from(&packed)?;
    let n = b as usize;
    Ok((0..n)
        .map(|i| Sampled {
            id: host[i] as u32,
            logprob: host[n + i] as f32,
            sampling_logprob: host[2 * n + i] as f32,
        })
        .collect())
}

/// softmax(logits / T) with the top-k and top-p filters applied, `[B, V]`.
fn truncated_probs(
    logits: &Tensor,
    params: &SamplingParams,
    v: i64,
) -> Result<Tensor, SamplingError> {
    let mut z = logits / params.temperature;
    if params.top_k > 0 && (params.top_k as i64) < v {
        let k = params.top_k as i64;
        let (top, _) = z.topk(k, -1, true, true);
        let kth = top.narrow(1, k - 1, 1); // [B, 1]
        z = z.f_masked_fill(&z.lt_tensor(&kth), f64::NEG_INFINITY)?;
    }
    if params.top_p < 1.0 {
        let (sorted, order) = z.sort(-1, true);
        let p = sorted.softmax(-1, Kind::Float);
        let mass_before = p.cumsum(-1, Kind::Float) - &p; // the top token always has 0
        let drop_sorted = mass_before.ge(params.top_p);
        let drop = drop_sorted.zeros_like().scatter(-1, &order, &drop_sorted);
        z = z.f_masked_fill(&drop, f64::NEG_INFINITY)?;
    }
    Ok(z.softmax(-1, Kind::Float))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// One row with probabilities 0.1, 0.2, 0.3, 0.4.
    fn logits() -> Tensor {
        Tensor::from_slice(&[0.1f32, 0.2, 0.3, 0.4])
            .log()
            .view([1, 4])
    }

    fn params(temperature: f64, top_k: usize, top_p: f64) -> SamplingParams {
        SamplingParams {
            temperature,
            top_k,
            top_p,
        }
    }

    #[test]
    fn greedy_picks_the_max_with_its_logprob() {
        let s = sample_with_uniforms(&logits(), &SamplingParams::greedy(), &[]).unwrap();
        assert_eq!(s[0].id, 3);
        assert!((s[0].logprob - 0.4f32.ln()).abs() < 1e-6);
        assert_eq!(s[0].sampling_logprob, 0.0);
    }

    #[test]
    fn inverse_cdf_table() {
        // cdf 0.1, 0.3, 0.6, 1.0
        let cases = [
            (0.05f32, 0u32),
            (0.2, 1),
            (0.45, 2),
            (0.61, 3),
            (0.999_999, 3),
        ];
        for (u, want) in cases {
            let s = sample_with_uniforms(&logits(), &params(1.0, 0, 1.0), &[u]).unwrap();
            assert_eq!(s[0].id, want, "u = {u}");
            assert!((s[0].sampling_logprob - s[0].logprob).abs() < 1e-6);
        }
    }

    #[test]
    fn top_k_and_top_p_truncate_and_renormalise() {
        // top-k 2 keeps {2, 3} with mass 3/7 and 4/7.
        let s = sample_with_uniforms(&logits(), &params(1.0, 2, 1.0), &[0.0]).unwrap();
        assert_eq!(s[0].id, 2);
        assert!((s[0].sampling_logprob - (3.0f32 / 7.0).ln()).abs() < 1e-5);
        assert!((s[0].logprob - 0.3f32.ln()).abs() < 1e-5);
        // top-p 0.5: 0.4 < 0.5 so token 2 is needed too; token 1 is cut.
        let s = sample_with_uniforms(&logits(), &params(1.0, 0, 0.5), &[0.0]).unwrap();
        assert_eq!(s[0].id, 2);
        let s = sample_with_uniforms(&logits(), &params(1.0, 0, 0.4), &[0.99]).unwrap();
        assert_eq!(s[0].id, 3, "top-p 0.4 keeps only the top token");
        assert_eq!(s[0].sampling_logprob, 0.0);
    }

    #[test]
    fn temperature_flattens() {
        // At T = 1e6 all four tokens are almost equally likely: u = 0.3 lands on token 1.
        let s = sample_with_uniforms(&logits(), &params(1e6, 0, 1.0), &[0.3]).unwrap();
        assert_eq!(s[0].id, 1);
        assert!((s[0].sampling_logprob - 0.25f32.ln()).abs() < 1e-4);
    }

    #[test]
    fn seeded_rows_are_reproducible_and_follow_the_distribution() {
        let rows = logits().repeat([400, 1]); // [400, 4]
        let mut rngs: Vec<ChaCha8Rng> = (0..400).map(ChaCha8Rng::seed_from_u64).collect();
        let a = sample(&rows, &params(1.0, 0, 1.0), &mut rngs).unwrap();
        let mut rngs: Vec<ChaCha8Rng> = (0..400).map(ChaCha8Rng::seed_from_u64).collect();
        let b = sample(&rows, &params(1.0, 0, 1.0), &mut rngs).unwrap();
        assert_eq!(a, b);
        let threes = a.iter().filter(|s| s.id == 3).count();
        assert!(
            (120..=200).contains(&threes),
            "token 3 drawn {threes}/400 times, expected ~160"
        );
    }

    #[test]
    fn bad_parameters_are_refused() {
        let mut none: [ChaCha8Rng; 0] = [];
        let err = sample(&logits(), &params(1.0, 0, 0.0), &mut none).unwrap_err();
        assert_eq!(err.to_string(), "top_p must be in (0, 1], got 0");
        let err = sample(&logits(), &params(-1.0, 0, 1.0), &mut none).unwrap_err();
        assert_eq!(
            err.to_string(),
            "temperature must be a finite number >= 0, got -1"
        );
        let err = sample(&logits(), &params(1.0, 0, 1.0), &mut none).unwrap_err();
        assert_eq!(err.to_string(), "0 random generators given for 1 rows");
    }
}
