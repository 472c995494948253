//! AdamW over the adapter parameters, written out rather than taken from `tch::nn::Optimizer`
//! because a resumed run needs the optimizer's moments, and tch does not expose them. The
//! state is a pair of tensors per parameter plus the step count; it saves to and loads from
//! safetensors by parameter name.
use std::collections::BTreeMap;

use tch::{Kind, Tensor};

/// Decoupled weight decay Adam (Loshchilov & Hutter) with PyTorch's defaults.
#[derive(Debug)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Optimizer steps taken (bias correction uses it).
    pub steps: u64,
    /// (first moment, second moment) by parameter name.
    moments: BTreeMap<String, (Tensor, Tensor)>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdamError {
    #[error("optimizer state has no moment {0:?} for a trainable parameter")]
    Missing(String),
    #[error("optimizer state moment {name:?} has shape {found:?}, the parameter {expected:?}")]
    Shape {
        name: String,
        expected: Vec<i64>,
        found: Vec<i64>,
    },
}

impl AdamW {
    pub fn new(weight_decay: f64) -> Self {
        AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            steps: 0,
            moments: BTreeMap::new(),
        }
    }

    /// One update of every named parameter that has a gradient, at rate `lr`; the
    /// gradients are left in place (the caller zeroes them).
    pub fn step<'a>(&mut self, params: impl Iterator<Item = (&'a str, &'a Tensor)>, lr: f64) {
        let _guard = tch::no_grad_guard();
        self.steps += 1;
        let t = self.steps as i32;
        let (c1, c2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        for (name, p) in params {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            let (m, v) = self
                .moments
                .entry(name.to_string())
                .or_insert_with(|| (p.zeros_like(), p.zeros_like()));
            let _ = m.g_mul_scalar_(self.beta1);
            let _ = m.g_add_(&(&g * (1.0 - self.beta1)));
            let _ = v.g_mul_scalar_(self.beta2);
            let _ = v.g_add_(&(&g * &g * (1.0 - self.beta2)));
            let update = (&*m / c1) / ((&*v / c2).sqrt() + self.eps);
            let mut p = p.shallow_clone();
            if self.weight_decay > 0.0 {
                let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
            }
            let _ = p.g_sub_(&(update * lr));
        }
    }

    /// The moments as named tensors (`m.<name>`, `v.<name>`) for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.moments.len());
        for (name, (m, v)) in &self.moments {
            out.push((format!("m.{name}"), m.detach()));
            out.push((format!("v.{name}"), v.detach()));
        }
        out
    }

    /// Restores moments saved by [`AdamW::state_tensors`] for the parameters given, with
    /// their shapes. Moments are created lazily, at a parameter's first gradient, so a
    /// parameter with neither moment saved has never been updated and starts fresh; one with
    /// only one of the two is an error.
    pub fn load_state<'a>(
        &mut self,
        steps: u64,
        saved: Vec<(String, Tensor)>,
        params: impl Iterator<Item = (&'a str, &'a Tensor)>,
    ) -> Result<(), AdamError> {
        let saved: BTreeMap<String, Tensor> = saved.into_iter().collect();
        let mut moments = BTreeMap::new();
        for (name, p) in params {
            let keys = [format!("m.{name}"), format!("v.{name}")];
            if keys.iter().all(|k| !saved.contains_key(k)) {
                continue;
            }
            let mut pair = Vec::with_capacity(2);
            for key in keys {
                let t = saved
                    .get(&key)
                    .ok_or_else(|| AdamError::Missing(key.clone()))?;
                if t.size() != p.size() {
                    return Err(AdamError::Shape {
                        name: key,
                        expected: p.size(),
                        found: t.size(),
                    });
                }
                pair.push(t.to_kind(Kind::Float).to_device(p.device()));
            }
            let v = pair.pop();
            let m = pair.pop();
            if let (Some(m), Some(v)) = (m, v) {
                moments.insert(name.to_string(), (m, v));
            }
        }
        self.moments = moments;
        self.steps = steps;
        Ok(())
    }
}

/// Scales the gradients of `params` so their global L2 norm is at most `max_norm`;
/// returns the norm before clipping.
pub fn clip_grad_norm(params: &[&Tensor], max_norm: f64) -> f64 {
    let _guard = tch::no_grad_guard();
    let mut total = 0.0;
    for p in params {
        let g = p.grad();
        if g.defined() {
            total += g.square().sum(Kind::Double).double_value(&[]);
        }
    }
    let norm = total.sqrt();
    if norm.is_finite() && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for p in params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.g_mul_scalar_(scale);
            }
        }
    }
    norm
}

/// Clears the gradients of `params`.
pub fn zero_grads<'a>(params: impl Iterator<Item = &'a Tensor>) {
    for p in params {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(values: &[f32]) -> Tensor {
        Tensor::from_slice(values).set_requires_grad(true)
    }

    #[test]
    fn first_step_moves_each_weight_by_lr_against_the_gradient_sign() {
        // After one step m̂ = g and v̂ = g², so the update is lr · g/|g| (± eps).
        let p = param(&[1.0, -2.0]);
        (&p * Tensor::from_slice(&[3.0f32, -0.5]))
            .sum(Kind::Float)
            .backward();
        let mut opt = AdamW::new(0.0);
        opt.step([("w", &p)].into_iter(), 0.1);
        let got: Vec<f32> = Vec::try_from(&p.detach()).unwrap();
        assert!(
            (got[0] - 0.9).abs() < 1e-6 && (got[1] + 1.9).abs() < 1e-6,
            "{got:?}"
        );
    }

    #[test]
    fn decoupled_weight_decay_shrinks_before_the_update() {
        let p = param(&[2.0]);
        (&p * 0.0).sum(Kind::Float).backward(); // zero gradient: only the decay acts
        let mut opt = AdamW::new(0.5);
        opt.step([("w", &p)].into_iter(), 0.1);
        let got = p.double_value(&[0]);
        assert!((got - 2.0 * (1.0 - 0.05)).abs() < 1e-6, "{got}");
    }

    #[test]
    fn state_round_trips_and_a_resumed_step_matches() {
        let run = |split: bool| {
            let p = param(&[0.5, 1.5]);
            let mut opt = AdamW::new(0.01);
            for i in 0..3 {
                if split && i == 2 {
                    let saved = opt.state_tensors();
                    let mut fresh = AdamW::new(0.01);
                    fresh
                        .load_state(opt.steps, saved, [("w", &p)].into_iter())
                        .unwrap();
                    opt = fresh;
                }
                zero_grads([&p].into_iter());
                (&p * &p).sum(Kind::Float).backward();
                opt.step([("w", &p)].into_iter(), 0.05);
            }
            Vec::<f32>::try_from(&p.detach()).unwrap()
        };
        assert_eq!(run(false), run(true));
    }

    #[test]
    fn missing_or_misshapen_state_is_named() {
        let p = param(&[1.0, 2.0]);
        let mut opt = AdamW::new(0.0);
        let zeros = |n: i64| Tensor::zeros([n], (Kind::Float, tch::Device::Cpu));
        let err = opt
            .load_state(1, vec![("v.w".into(), zeros(2))], [("w", &p)].into_iter())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "optimizer state has no moment \"m.w\" for a trainable parameter"
        );
        let saved = vec![
            (
                "m.w".to_string(),
                Tensor::zeros([3], (Kind::Float, tch::Device::Cpu)),
            ),
            (
                "v.w".to_string(),
                Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
            ),
        ];
        let err = opt
            .load_state(1, saved, [("w", &p)].into_iter())
            .unwrap_err();
        assert!(err.to_string().contains("\"m.w\" has shape [3]"), "{err}");
    }

    #[test]
    fn a_parameter_never_updated_has_no_moments_and_resumes_fresh() {
        // `b` gets no gradient before the checkpoint (as an RL adapter tensor can when a
        // batch has nothing to learn from); after resuming, both runs treat it alike.
        let run = |split: bool| {
            let (a, b) = (param(&[0.5]), param(&[1.5]));
            let mut opt = AdamW::new(0.0);
            for i in 0..4 {
                if split && i == 2 {
                    let saved = opt.state_tensors();
                    assert_eq!(saved.len(), 2, "only a's moments exist yet");
                    let mut fresh = AdamW::new(0.0);
                    let params = [("a", &a), ("b", &b)];
                    fresh
                        .load_state(opt.steps, saved, params.into_iter())
                        .unwrap();
                    opt = fresh;
                }
                zero_grads([&a, &b].into_iter());
                let loss = if i < 2 { &a * &a } else { &a * &b };
                loss.sum(Kind::Float).backward();
                opt.step([("a", &a), ("b", &b)].into_iter(), 0.05);
            }
            (a.double_value(&[0]), b.double_value(&[0]))
        };
        assert_eq!(run(false), run(true));
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let p = param(&[0.0, 0.0]);
        (&p * Tensor::from_slice(&[3.0f32, 4.0]))
            .sum(Kind::Float)
            .backward();
        let norm = clip_grad_norm(&[&p], 1.0);
        assert!((norm - 5.0).abs() < 1e-9);
        let g: Vec<f32> = Vec::try_from(&p.grad()).unwrap();
        assert!(
            (g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5,
            "{g:?}"
        );
    }
}
