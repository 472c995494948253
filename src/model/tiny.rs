//! Small random Llama models written as Hugging Face directories, with the tokenizer and chat
//! template of another model (the embedded default by default). They exist for the smoke
//! configs and the learning tests: on a 2-core CPU a 135M model takes minutes per SFT step on a
//! Chain-of-Edits conversation, a 4-layer 128-wide one a fraction of a second, and the whole
//! pipeline — data, SFT, RL, evaluation — runs the same code on either.
use std::path::Path;

use serde_json::json;
use tch::{Device, Kind, nn};

use super::config::{EosIds, LlamaConfig};
use super::gguf::GgufFile;
use super::llama::Llama;
use super::loader::{hf_chat_template, resolve_spec};
use super::safetensors_io::write_safetensors;
use super::tokenizer::CoeTokenizer;

/// The shape of a tiny model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TinyShape {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate: usize,
}

impl Default for TinyShape {
    fn default() -> Self {
        TinyShape {
            layers: 4,
            hidden: 128,
            heads: 4,
            kv_heads: 2,
            intermediate: 384,
        }
    }
}

/// Why a tiny model could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TinyError {
    #[error("{0}")]
    Shape(String),
    #[error("{0}: the tokenizer source must be a .gguf file or a Hugging Face directory")]
    Source(std::path::PathBuf),
    #[error(transparent)]
    Load(#[from] super::loader::LoadError),
    #[error(transparent)]
    Gguf(#[from] super::gguf::GgufError),
    #[error(transparent)]
    Tokenizer(#[from] super::tokenizer::TokenizerError),
    #[error(transparent)]
    Model(#[from] super::error::ModelError),
    #[error(transparent)]
    Safetensors(#[from] super::safetensors_io::SafetensorsError),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Writes a randomly initialised model (normal, std 0.02; norms 1) of `shape` to `out` as a
/// Hugging Face directory, with the tokenizer and chat template of the model `source`
/// (`default`, a `.gguf` path, or a Hugging Face directory). Returns the parameter count.
pub fn create(out: &Path, source: &str, shape: TinyShape, seed: u64) -> Result<usize, TinyError> {
    if !(shape.heads > 0
        && shape.kv_heads > 0
        && shape.heads.is_multiple_of(shape.kv_heads)
        && shape.hidden.is_multiple_of(shape.heads))
    {
        return Err(TinyError::Shape(format!(
            "heads {} must divide hidden {} and be a multiple of kv_heads {}",
            shape.heads, shape.hidden, shape.kv_heads
        )));
    }
    let path = resolve_spec(source)?;
    let (tokenizer, template) = if path.is_dir() {
        // A Hugging Face directory (another tiny model, say): its tokenizer and template.
        let tokenizer = CoeTokenizer::from_file(&path.join("tokenizer.json"))?;
        (tokenizer, hf_chat_template(&path)?)
    } else {
        if path.extension().is_none_or(|e| e != "gguf") {
            return Err(TinyError::Source(path));
        }
        let gguf = GgufFile::read(&path)?;
        let template = gguf
            .get("tokenizer.chat_template")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        (CoeTokenizer::from_gguf(&gguf)?, template)
    };
    let cfg = LlamaConfig {
        vocab_size: tokenizer.vocab_size(),
        hidden_size: shape.hidden,
        intermediate_size: shape.intermediate,
        num_hidden_layers: shape.layers,
        num_attention_heads: shape.heads,
        num_key_value_heads: Some(shape.kv_heads),
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        rope_scaling: None,
        max_position_embeddings: 4096,
        tie_word_embeddings: true,
        bos_token_id: tokenizer.bos_id,
        eos_token_id: tokenizer.eos_id.map(EosIds::One),
    };
    tch::manual_seed(seed as i64);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Llama::new(&vs.root(), &cfg, None)?;
    let mut tensors = Vec::new();
    let mut count = 0;
    for (name, t) in model.base_parameters() {
        // The embedding is tied to the output and stays frozen under LoRA, so it gets unit
        // scale: with the usual 0.02 the largest reachable logit is about 2.6 and the loss
        // cannot fall much below ln(vocab) however the adapters train.
        let init = if name.ends_with("norm.weight") {
            t.ones_like()
        } else if name.ends_with("embed_tokens.weight") {
            t.randn_like()
        } else {
            t.randn_like() * 0.02
        };
        count += init.numel();
        tensors.push((name.to_string(), init.to_kind(Kind::Float)));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TinyError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    write_safetensors(&out.join("model.safetensors"), &tensors)?;
    let mut config = serde_json::to_value(&cfg)?;
    if let Some(obj) = config.as_object_mut() {
        obj.insert("architectures".into(), json!(["LlamaForCausalLM"]));
        obj.insert("model_type".into(), json!("llama"));
    }
    crate::util::write_atomic(
        &out.join("config.json"),
        serde_json::to_string_pretty(&config)?.as_bytes(),
    )
    .map_err(io(&out.join("config.json")))?;
    tokenizer.save(&out.join("tokenizer.json"))?;
    let token = |id: Option<u32>| id.and_then(|i| tokenizer.token_str(i));
    let tok_cfg = json!({
        "chat_template": template,
        "bos_token": token(tokenizer.bos_id),
        "eos_token": token(tokenizer.eos_id),
    });
    crate::util::write_atomic(
        &out.join("tokenizer_config.json"),
        serde_json::to_string_pretty(&tok_cfg)?.as_bytes(),
    )
    .map_err(io(&out.join("tokenizer_config.json")))?;
    Ok(count)
}
