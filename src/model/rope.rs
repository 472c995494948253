//! Rotary position embeddings in the Hugging Face checkpoint layout.
//!
//! HF Llama rotates the two *halves* of each head (`rotate_half`), not interleaved
//! pairs; checkpoints in HF layout (and GGUF ones after the loader un-permutes Q/K)
//! expect exactly that. The inverse frequencies follow `transformers`' `rope_type`
//! functions ("default", "linear", "llama3"); other types are refused rather than
//! silently run with the wrong frequencies.
//!
//! The cos/sin tables are computed per forward from the position ids (one tiny
//! outer product shared by all layers) instead of being cached for a maximum length:
//! it is the same f32 computation `transformers` does, so parity is exact, and no
//! position can fall off the end of a table.

use tch::{Device, Kind, Tensor};

use crate::model::config::LlamaConfig;
use crate::model::error::ModelError;

/// Per-head inverse frequencies `θ^(-2i/d)`, with the configured scaling applied.
pub fn inverse_frequencies(cfg: &LlamaConfig) -> Result<Vec<f64>, ModelError> {
    let dim = cfg.head_dim();
    let base: Vec<f64> = (0..dim / 2)
        .map(|i| 1.0 / cfg.rope_theta.powf((2 * i) as f64 / dim as f64))
        .collect();
    let Some(scaling) = &cfg.rope_scaling else {
        return Ok(base);
    };
    match scaling.rope_type.as_str() {
        "default" => Ok(base),
        "linear" => Ok(base.iter().map(|f| f / scaling.factor).collect()),
        "llama3" => {
            if scaling.high_freq_factor <= scaling.low_freq_factor {
                return Err(ModelError::InvalidConfig {
                    field: "rope_scaling.high_freq_factor",
                    value: scaling.high_freq_factor.to_string(),
                    reason: "must exceed low_freq_factor",
                });
            }
            Ok(base
                .iter()
                .map(|&f| {
                    llama3_frequency(
                        f,
                        scaling.factor,
                        scaling.low_freq_factor,
                        scaling.high_freq_factor,
                        scaling.original_max_position_embeddings as f64,
                    )
                })
                .collect())
        }
        other => Err(ModelError::UnsupportedRope {
            rope_type: other.to_string(),
        }),
    }
}

/// Llama 3.1's scaling: long wavelengths are divided by `factor`, short ones kept,
/// and the band between is interpolated smoothly.
fn llama3_frequency(inv_freq: f64, factor: f64, low: f64, high: f64, old_ctx: f64) -> f64 {
    let wavelen = 2.0 * std::f64::consts::PI / inv_freq;
    let low_freq_wavelen = old_ctx / low;
    let high_freq_wavelen = old_ctx / high;
    if wavelen < high_freq_wavelen {
        inv_freq
    } else if wavelen > low_freq_wavelen {
        inv_freq / factor
    } else {
        let smooth = (old_ctx / wavelen - low) / (high - low);
        (1.0 - smooth) * inv_freq / factor + smooth * inv_freq
    }
}

/// The inverse frequencies on the model's device, ready to build tables from positions.
#[derive(Debug)]
pub struct Rope {
    inv_freq: Tensor, // [head_dim / 2] f32
}

/// cos/sin for one forward, shaped to broadcast over heads: `[B, 1, T, head_dim]`.
/// `sin` carries the sign of `rotate_half` (first half negated), so applying the
/// rotation is `x * cos + roll(x, d/2) * sin` — four kernels instead of six.
#[derive(Debug)]
pub struct RopeTables {
    cos: Tensor,
    sin: Tensor,
    half: i64,
}

impl Rope {
    pub fn new(cfg: &LlamaConfig, device: Device) -> Result<Self, ModelError> {
        let freqs: Vec<f32> = inverse_frequencies(cfg)?
            .into_iter()
            .map(|f| f as f32)
            .collect();
        Ok(Rope {
            inv_freq: Tensor::from_slice(&freqs).to_device(device),
        })
    }

    /// Tables for integer `positions` `[B, T]`, cast to the activations' `kind`
    /// after computing in f32 (as `transformers` does).
    pub fn tables(&self, positions: &Tensor, kind: Kind) -> RopeTables {
        let half = self.inv_freq.size()[0];
        // [B, T, 1] * [half] -> [B, T, half]
        let freqs = positions.to_kind(Kind::Float).unsqueeze(-1) * &self.inv_freq;
        let (cos, sin) = (freqs.cos(), freqs.sin());
        // [B, T, head_dim] -> [B, 1, T, head_dim]
        let cos = Tensor::cat(&[&cos, &cos], -1).unsqueeze(1).to_kind(kind);
        let sin = Tensor::cat(&[&(-&sin), &sin], -1)
            .unsqueeze(1)
            .to_kind(kind);
        RopeTables { cos, sin, half }
    }
}

impl RopeTables {
    /// Rotates `x` `[B, heads, T, head_dim]`.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        // roll by half swaps the halves: [x1, x2] -> [x2, x1]; with the signed sin
        // this is rotate_half(x) * sin = [-x2, x1] * sin.
        x * &self.cos + x.roll([self.half], [-1]) * &self.sin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::RopeScaling;

    fn cfg_with(scaling: Option<RopeScaling>) -> LlamaConfig {
        let mut cfg = LlamaConfig::tiny(16);
        cfg.hidden_size = 32;
        cfg.num_attention_heads = 4; // head_dim 8 -> frequencies 1, 0.1, 0.01, 0.001
        cfg.rope_scaling = scaling;
        cfg
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-12 * y.abs())
    }

    #[test]
    fn plain_frequencies_follow_theta() {
        let f = inverse_frequencies(&cfg_with(None)).unwrap();
        assert!(close(&f, &[1.0, 0.1, 0.01, 0.001]));
    }

    #[test]
    fn linear_scaling_divides_all() {
        let s = RopeScaling {
            rope_type: "linear".into(),
            factor: 2.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 64,
        };
        let f = inverse_frequencies(&cfg_with(Some(s))).unwrap();
        assert!(close(&f, &[0.5, 0.05, 0.005, 0.0005]));
    }

    #[test]
    fn llama3_scaling_has_three_bands() {
        // old ctx 64: high-frequency cut at wavelength 16, low-frequency cut at 64.
        let s = RopeScaling {
            rope_type: "llama3".into(),
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 64,
        };
        let f = inverse_frequencies(&cfg_with(Some(s))).unwrap();
        // wavelength 2π ≈ 6.28 < 16: unchanged.
        // wavelength 20π ≈ 62.8: smooth = (64/62.83 - 1)/3 ≈ 0.006197.
        let smooth = (64.0 / (20.0 * std::f64::consts::PI) - 1.0) / 3.0;
        let mid = (1.0 - smooth) * 0.1 / 8.0 + smooth * 0.1;
        assert!(close(&f, &[1.0, mid, 0.01 / 8.0, 0.001 / 8.0]), "{f:?}");
    }

    #[test]
    fn unknown_rope_type_is_refused() {
        let s = RopeScaling {
            rope_type: "yarn".into(),
            factor: 2.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 64,
        };
        let err = inverse_frequencies(&cfg_with(Some(s))).unwrap_err();
        assert!(err.to_string().contains("\"yarn\""), "{err}");
    }

    #[test]
    fn rotation_matches_rotate_half_by_hand() {
        let rope = Rope::new(&cfg_with(None), Device::Cpu).unwrap();
        let tables = rope.tables(&Tensor::from_slice(&[3i64]).view([1, 1]), Kind::Float);
        let x: Vec<f32> = (1..=8).map(|v| v as f32).collect();
        let out = tables.apply(&Tensor::from_slice(&x).view([1, 1, 1, 8]));
        let out = Vec::<f32>::try_from(out.flatten(0, -1)).unwrap();
        // pair (x_i, x_{i+4}) rotates by angle 3 * f_i.
        for (i, f) in [1.0f64, 0.1, 0.01, 0.001].iter().enumerate() {
            let (a, b) = (x[i] as f64, x[i + 4] as f64);
            let (c, s) = ((3.0 * f).cos(), (3.0 * f).sin());
            assert!((out[i] as f64 - (a * c - b * s)).abs() < 1e-5);
            assert!((out[i + 4] as f64 - (b * c + a * s)).abs() < 1e-5);
        }
    }
}
