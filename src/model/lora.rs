//! LoRA: low-rank adapters on the Llama linear layers, and the linear layer itself.
//!
//! Every Llama projection is a [`Linear`] holding the frozen base weight and, when
//! its short name (`q_proj`, …, `down_proj`) is targeted, an adapter `B·A` scaled by
//! `alpha / r`. The adapter lives in the same VarStore under the HF module path
//! (`model.layers.0.self_attn.q_proj.lora_A.weight`), which is PEFT's name minus
//! its `base_model.model.` prefix, so saving and loading adapters is a rename.
//! Adapters are kept in f32 whatever the base dtype (as PEFT does by default) so
//! that AdamW updates on bf16 models do not round away. Disabling adapters (a flag
//! carried by [`Mode`]) gives the base model — the KL reference policy — without a
//! second copy of the weights.

pub use crate::model::error::LoraError;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor, nn};

use crate::model::weights::ParamRegistry;

/// The projections LoRA may target, in layer order. `lm_head` is not among them,
/// matching PEFT's "all-linear", which skips the output layer.
pub const LINEAR_MODULES: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// Rank, scale, dropout and targets of the adapters (PEFT's `LoraConfig` fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f64,
    #[serde(default)]
    pub dropout: f64,
    /// Short module names, or the single entry `"all-linear"`.
    pub targets: Vec<String>,
}

impl LoraConfig {
    pub fn validate(&self) -> Result<(), LoraError> {
        if self.r == 0 {
            return Err(LoraError::ZeroRank(self.r));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(LoraError::BadAlpha(self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(LoraError::BadDropout(self.dropout));
        }
        self.resolved_targets().map(|_| ())
    }

    /// `alpha / r`, the factor on `B·A`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.r as f64
    }

    /// The targeted short names, with "all-linear" expanded.
    pub fn resolved_targets(&self) -> Result<BTreeSet<&'static str>, LoraError> {
        if self.targets.is_empty() {
            return Err(LoraError::NoTargets);
        }
        let mut out = BTreeSet::new();
        for name in &self.targets {
            if name == "all-linear" {
                out.extend(LINEAR_MODULES);
            } else if let Some(&m) = LINEAR_MODULES.iter().find(|&&m| m == name) {
                out.insert(m);
            } else {
                return Err(LoraError::UnknownTarget {
                    name: name.clone(),
                    known: LINEAR_MODULES.join(", "),
                });
            }
        }
        Ok(out)
    }
}

/// `adapter_config.json` as PEFT writes and reads it. Fields we do not implement
/// (DoRA, rsLoRA, per-layer ranks) are read so that an adapter using them is
/// refused instead of being loaded with the wrong maths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeftAdapterConfig {
    pub peft_type: String,
    pub task_type: Option<String>,
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    pub target_modules: TargetModules,
    #[serde(default = "bias_none")]
    pub bias: String,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub inference_mode: bool,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    pub rank_pattern: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub alpha_pattern: serde_json::Map<String, serde_json::Value>,
    /// Everything else PEFT writes (its schema grows with each release).
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// Settings in `other` that change the adapter's maths or placement when set to
/// anything but null / false / empty.
const UNSUPPORTED_WHEN_SET: [&str; 9] = [
    "lora_bias",
    "use_qalora",
    "use_bdlora",
    "layers_to_transform",
    "layer_replication",
    "exclude_modules",
    "target_parameters",
    "trainable_token_indices",
    "alora_invocation_tokens",
];

fn is_set(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null | Value::Bool(false) => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// PEFT stores either a list of names or a single string ("all-linear" or a regex).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    One(String),
    Many(Vec<String>),
}

fn bias_none() -> String {
    "none".to_string()
}

impl PeftAdapterConfig {
    pub fn from_lora(cfg: &LoraConfig, base_model: &str) -> Result<Self, LoraError> {
        let targets = cfg.resolved_targets()?;
        Ok(PeftAdapterConfig {
            peft_type: "LORA".into(),
            task_type: Some("CAUSAL_LM".into()),
            r: cfg.r,
            lora_alpha: cfg.alpha,
            lora_dropout: cfg.dropout,
            target_modules: TargetModules::Many(targets.iter().map(|s| s.to_string()).collect()),
            bias: bias_none(),
            base_model_name_or_path: Some(base_model.to_string()),
            fan_in_fan_out: false,
            inference_mode: true,
            use_rslora: false,
            use_dora: false,
            modules_to_save: None,
            rank_pattern: Default::default(),
            alpha_pattern: Default::default(),
            other: Default::default(),
        })
    }

    /// The subset of PEFT we run: plain LoRA, no bias training, uniform rank.
    /// Returns the name of the first unsupported setting.
    pub fn unsupported_feature(&self) -> Option<String> {
        let checks = [
            (
                self.peft_type != "LORA",
                format!("peft_type {:?}", self.peft_type),
            ),
            (self.bias != "none", format!("bias {:?}", self.bias)),
            (self.use_dora, "use_dora".into()),
            (self.use_rslora, "use_rslora".into()),
            (self.fan_in_fan_out, "fan_in_fan_out".into()),
            (!self.rank_pattern.is_empty(), "rank_pattern".into()),
            (!self.alpha_pattern.is_empty(), "alpha_pattern".into()),
            (
                self.modules_to_save.as_ref().is_some_and(|m| !m.is_empty()),
                "modules_to_save".into(),
            ),
        ];
        let fixed = checks
            .into_iter()
            .find(|(bad, _)| *bad)
            .map(|(_, what)| what);
        fixed.or_else(|| {
            UNSUPPORTED_WHEN_SET
                .iter()
                .find(|k| self.other.get(**k).is_some_and(is_set))
                .map(|k| k.to_string())
        })
    }

    pub fn to_lora(&self) -> Result<LoraConfig, LoraError> {
        let targets = match &self.target_modules {
            TargetModules::One(s) => vec![s.clone()],
            TargetModules::Many(v) => v.clone(),
        };
        let cfg = LoraConfig {
            r: self.r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            targets,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// How a forward treats adapters and dropout; one copy flows down all layers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mode {
    pub lora: bool,
    pub train: bool,
}

#[derive(Debug)]
pub(crate) struct Adapter {
    pub(crate) a: Tensor, // [r, in] f32, trainable
    pub(crate) b: Tensor, // [out, r] f32, trainable
    pub(crate) scale: f64,
    pub(crate) dropout: f64,
}

impl Adapter {
    /// Whether this forward draws a dropout mask on the adapter's input.
    pub(crate) fn needs_dropout(&self, mode: Mode) -> bool {
        mode.train && self.dropout > 0.0
    }
}

/// A bias-free projection `y = x Wᵀ` with an optional LoRA adapter.
#[derive(Debug)]
pub struct Linear {
    weight: Tensor, // [out, in], frozen
    adapter: Option<Adapter>,
}

impl Linear {
    /// Registers `weight` (frozen, model dtype) under `p`, and `lora_A`/`lora_B`
    /// (trainable, f32) when `lora` is given. A is uniform in ±1/√in — PEFT's
    /// kaiming-uniform with a = √5 — and B is zero, so a new adapter changes nothing.
    pub(crate) fn new(
        p: &nn::Path,
        in_dim: usize,
        out_dim: usize,
        lora: Option<&LoraConfig>,
        reg: &mut ParamRegistry,
    ) -> Self {
        let (i, o) = (in_dim as i64, out_dim as i64);
        let weight = Tensor::zeros([o, i], (p.kind(), p.device()));
        Self::with_weight(p, weight, lora, reg)
    }

    /// [`Linear::new`] over a given `[out, in]` weight tensor — a row block of a fused
    /// weight (see `model::fused`), so that loading and folding write into the block.
    pub(crate) fn with_weight(
        p: &nn::Path,
        weight: Tensor,
        lora: Option<&LoraConfig>,
        reg: &mut ParamRegistry,
    ) -> Self {
        let (o, i) = weight.size2().unwrap_or((0, 0));
        let in_dim = i as usize;
        let weight = reg.add(p, "weight", weight, false);
        let adapter = lora.map(|cfg| {
            let r = cfg.r as i64;
            let bound = 1.0 / (in_dim as f64).sqrt();
            let a = Tensor::empty([r, i], (Kind::Float, p.device())).uniform_(-bound, bound);
            let b = Tensor::zeros([o, r], (Kind::Float, p.device()));
            Adapter {
                a: reg.add(&p.sub("lora_A"), "weight", a, true),
                b: reg.add(&p.sub("lora_B"), "weight", b, true),
                scale: cfg.scale(),
                dropout: cfg.dropout,
            }
        });
        Linear { weight, adapter }
    }

    pub(crate) fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let y = x.linear::<Tensor>(&self.weight, None);
        match self.lora_delta(x, mode) {
            Some(delta) => y + delta,
            None => y,
        }
    }

    /// The adapter's contribution `scale · B·A·dropout(x)` in `x`'s dtype, when there is
    /// an adapter and `mode` enables it. The scale is applied in the rank-`r` space
    /// (`(A·x)·scale` then `B`), which is cheaper than on the output and, for the usual
    /// power-of-two `alpha / r`, bit-identical.
    pub(crate) fn lora_delta(&self, x: &Tensor, mode: Mode) -> Option<Tensor> {
        let ad = self.adapter.as_ref().filter(|_| mode.lora)?;
        let h = x.to_kind(Kind::Float);
        let h = if ad.needs_dropout(mode) {
            h.dropout(ad.dropout, true)
        } else {
            h
        };
        // [.., in] -> [.., r] -> [.., out]
        let low = h.linear::<Tensor>(&ad.a, None) * ad.scale;
        Some(low.linear::<Tensor>(&ad.b, None).to_kind(x.kind()))
    }

    pub(crate) fn adapter(&self) -> Option<&Adapter> {
        self.adapter.as_ref()
    }

    /// `scale · B·A` in the base dtype, `[out, in]`.
    fn delta(&self) -> Option<Tensor> {
        self.adapter
            .as_ref()
            .map(|ad| (ad.b.matmul(&ad.a) * ad.scale).to_kind(self.weight.kind()))
    }

    /// Folds the adapter into the base weight (`sign` +1) or takes it out again (-1).
    pub(crate) fn fold_adapter(&self, sign: f64) {
        if let Some(delta) = self.delta() {
            let _guard = tch::no_grad_guard();
            let mut w = self.weight.shallow_clone();
            w += delta * sign;
        }
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn has_adapter(&self) -> bool {
        self.adapter.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(targets: &[&str]) -> LoraConfig {
        LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: targets.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn validation_table() {
        let cases: Vec<(LoraConfig, Result<(), LoraError>)> = vec![
            (cfg(&["q_proj"]), Ok(())),
            (cfg(&["all-linear"]), Ok(())),
            (
                LoraConfig {
                    r: 0,
                    ..cfg(&["q_proj"])
                },
                Err(LoraError::ZeroRank(0)),
            ),
            (
                LoraConfig {
                    alpha: -1.0,
                    ..cfg(&["q_proj"])
                },
                Err(LoraError::BadAlpha(-1.0)),
            ),
            (
                LoraConfig {
                    dropout: 1.0,
                    ..cfg(&["q_proj"])
                },
                Err(LoraError::BadDropout(1.0)),
            ),
            (cfg(&[]), Err(LoraError::NoTargets)),
            (
                cfg(&["lm_head"]),
                Err(LoraError::UnknownTarget {
                    name: "lm_head".into(),
                    known: LINEAR_MODULES.join(", "),
                }),
            ),
        ];
        for (c, want) in cases {
            assert_eq!(c.validate(), want, "{c:?}");
        }
    }

    #[test]
    fn all_linear_expands_and_scale_is_alpha_over_r() {
        let c = cfg(&["all-linear", "q_proj"]);
        assert_eq!(c.resolved_targets().unwrap().len(), 7);
        assert_eq!(c.scale(), 2.0);
    }

    #[test]
    fn peft_config_round_trip_and_refusals() {
        let c = cfg(&["v_proj", "q_proj"]);
        let peft = PeftAdapterConfig::from_lora(&c, "base").unwrap();
        let json = serde_json::to_string(&peft).unwrap();
        assert!(
            json.contains("\"target_modules\":[\"q_proj\",\"v_proj\"]"),
            "{json}"
        );
        let back: PeftAdapterConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back.unsupported_feature(), None);
        assert_eq!(
            back.to_lora().unwrap().resolved_targets(),
            c.resolved_targets()
        );
        let dora = PeftAdapterConfig {
            use_dora: true,
            ..back
        };
        assert_eq!(dora.unsupported_feature().as_deref(), Some("use_dora"));
        let one: PeftAdapterConfig = serde_json::from_str(
            r#"{"peft_type":"LORA","task_type":"CAUSAL_LM","r":2,"lora_alpha":4,"target_modules":"all-linear","some_new_field":1}"#,
        )
        .unwrap();
        assert_eq!(one.to_lora().unwrap().resolved_targets().unwrap().len(), 7);
        assert_eq!(
            one.unsupported_feature(),
            None,
            "an unknown integer field is tolerated"
        );
        let layered: PeftAdapterConfig = serde_json::from_str(
            r#"{"peft_type":"LORA","r":2,"lora_alpha":4,"target_modules":["q_proj"],"layers_to_transform":[0],"lora_bias":false}"#,
        )
        .unwrap();
        assert_eq!(
            layered.unsupported_feature().as_deref(),
            Some("layers_to_transform")
        );
    }
}
