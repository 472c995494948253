//! The Llama architecture's hyper-parameters, mirroring Hugging Face's `config.json`
//! for `LlamaForCausalLM` (field names as there, so a checkpoint's file
//! deserialises directly; unknown fields are ignored because real configs carry many).

use serde::{Deserialize, Serialize};

/// Llama-3 style RoPE frequency scaling (`rope_scaling` with `rope_type: "llama3"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    #[serde(alias = "type")]
    pub rope_type: String,
    pub factor: f64,
    #[serde(default = "one")]
    pub low_freq_factor: f64,
    #[serde(default = "four")]
    pub high_freq_factor: f64,
    #[serde(default = "ctx8k")]
    pub original_max_position_embeddings: usize,
}

fn one() -> f64 {
    1.0
}
fn four() -> f64 {
    4.0
}
fn ctx8k() -> usize {
    8192
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Defaults to `num_attention_heads` (no grouped-query attention).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// Hugging Face allows a single id or a list.
    #[serde(default)]
    pub eos_token_id: Option<EosIds>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EosIds {
    One(u32),
    Many(Vec<u32>),
}

impl EosIds {
    pub fn ids(&self) -> Vec<u32> {
        match self {
            EosIds::One(i) => vec![*i],
            EosIds::Many(v) => v.clone(),
        }
    }
}

fn default_rms_eps() -> f64 {
    1e-5
}
fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_max_pos() -> usize {
    2048
}

impl LlamaConfig {
    /// Parses a Hugging Face `config.json`. Since transformers 5 the RoPE settings live in
    /// `rope_parameters` (`rope_theta`, `rope_type` and, for `llama3`, the scaling factors)
    /// rather than in `rope_theta` / `rope_scaling`; either layout is read.
    pub fn from_hf_json(text: &str) -> Result<Self, serde_json::Error> {
        let mut value: serde_json::Value = serde_json::from_str(text)?;
        if let Some(obj) = value.as_object_mut()
            && let Some(params) = obj.get("rope_parameters").cloned()
        {
            if !obj.contains_key("rope_theta")
                && let Some(theta) = params.get("rope_theta")
            {
                obj.insert("rope_theta".into(), theta.clone());
            }
            let kind = params
                .get("rope_type")
                .or_else(|| params.get("type"))
                .and_then(|t| t.as_str());
            if obj.get("rope_scaling").is_none_or(|v| v.is_null())
                && kind.is_some_and(|k| k != "default")
            {
                obj.insert("rope_scaling".into(), params);
            }
        }
        serde_json::from_value(value)
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// A tiny configuration for tests: a few layers, GQA, tied embeddings.
    pub fn tiny(vocab_size: usize) -> Self {
        LlamaConfig {
            vocab_size,
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: Some(2),
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: None,
            max_position_embeddings: 512,
            tie_word_embeddings: true,
            bos_token_id: Some(1),
            eos_token_id: Some(EosIds::One(2)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#""vocab_size": 8, "hidden_size": 4, "intermediate_size": 8,
        "num_hidden_layers": 1, "num_attention_heads": 2"#;

    #[test]
    fn rope_theta_is_read_from_transformers_5_rope_parameters() {
        let text = format!(
            r#"{{{BASE}, "rope_parameters": {{"rope_theta": 100000.0, "rope_type": "default"}}}}"#
        );
        let cfg = LlamaConfig::from_hf_json(&text).unwrap();
        assert_eq!(cfg.rope_theta, 100_000.0);
        assert_eq!(cfg.rope_scaling, None);
    }

    #[test]
    fn llama3_scaling_is_read_from_rope_parameters() {
        let text = format!(
            r#"{{{BASE}, "rope_parameters": {{"rope_theta": 500000.0, "rope_type": "llama3",
                "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}}}}"#
        );
        let cfg = LlamaConfig::from_hf_json(&text).unwrap();
        assert_eq!(cfg.rope_theta, 500_000.0);
        let scaling = cfg.rope_scaling.unwrap();
        assert_eq!(
            (scaling.rope_type.as_str(), scaling.factor),
            ("llama3", 32.0)
        );
    }

    #[test]
    fn the_older_layout_still_reads_and_wins() {
        let text = format!(
            r#"{{{BASE}, "rope_theta": 20000.0, "rope_parameters": {{"rope_theta": 1.0}}}}"#
        );
        assert_eq!(
            LlamaConfig::from_hf_json(&text).unwrap().rope_theta,
            20_000.0
        );
        let plain = format!("{{{BASE}}}");
        assert_eq!(
            LlamaConfig::from_hf_json(&plain).unwrap().rope_theta,
            10_000.0
        );
    }
}
