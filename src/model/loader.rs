//! Loading a whole model for use: weights, tokenizer, chat format, device and dtype, an
//! optional LoRA adapter, and the provenance (file sha256) every result records.
//!
//! A model is named the way the command line names it (DESIGN §8): `default` (the embedded
//! SmolLM2-135M GGUF that set-up fetches into `models/`), a `.gguf` file, or a Hugging Face
//! directory. `default` is looked up relative to the working directory first and then in the
//! checkout the running binary was built in, so `target/debug/coe` works from anywhere. The
//! weights end up in one `VarStore` owned by [`LoadedModel`], which is what the model worker
//! thread (DESIGN §6) holds.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tch::{Device, Kind, nn};

use super::chat::ChatFormat;
use super::config::LlamaConfig;
use super::gguf::{GgufError, GgufFile, GgufValue, load_llama_gguf};
use super::llama::{Llama, ModelError};
use super::lora::LoraConfig;
use super::safetensors_io::{SafetensorsError, load_adapter, load_hf_weights, read_adapter_config};
use super::tokenizer::{CoeTokenizer, TokenizerError};
use crate::config::{Dtype, ModelSection};
use crate::util::find_in_checkout;

/// Where set-up puts the embedded default model, relative to the repository root.
pub const DEFAULT_MODEL: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "the default model {DEFAULT_MODEL} is not in {}; run scripts/setup.sh to fetch it",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" or ")
    )]
    DefaultMissing { searched: Vec<PathBuf> },
    #[error("model {0:?}: no such file or directory")]
    NotFound(PathBuf),
    #[error("model {0:?}: expected a .gguf file or a Hugging Face directory with config.json")]
    UnknownFormat(PathBuf),
    #[error("device {spec:?}: {reason}")]
    Device { spec: String, reason: String },
    #[error("cannot read {path:?}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path:?} is not a valid Llama config.json: {source}")]
    Config {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Safetensors(#[from] SafetensorsError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// A model ready to run: the network, the VarStore that owns its weights, and what is
/// needed to talk to it.
#[derive(Debug)]
pub struct LoadedModel {
    pub model: Llama,
    pub vs: nn::VarStore,
    pub tokenizer: CoeTokenizer,
    pub chat: ChatFormat,
    /// sha256 of the weights file (`.gguf`, `model.safetensors` or the shard index).
    pub sha256: Option<String>,
    /// The file or directory loaded (`default` resolved).
    pub path: String,
    /// The adapter directory loaded on top, if any.
    pub adapter: Option<String>,
    pub device: Device,
}

/// `cpu`, `cuda` (device 0) or `cuda:<i>`; CUDA names are refused when libtorch sees no
/// such GPU, so the error comes before any weights are read.
pub fn parse_device(spec: &str) -> Result<Device, LoadError> {
    let bad = |reason: String| LoadError::Device {
        spec: spec.to_string(),
        reason,
    };
    let index = match spec {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        _ => spec
            .strip_prefix("cuda:")
            .and_then(|i| i.parse::<usize>().ok())
            .ok_or_else(|| bad("expected \"cpu\", \"cuda\" or \"cuda:<index>\"".into()))?,
    };
    if !tch::Cuda::is_available() {
        return Err(bad(
            "CUDA is not available (no GPU, or libtorch built without CUDA)".into(),
        ));
    }
    let count = tch::Cuda::device_count().max(0) as usize;
    if index >= count {
        return Err(bad(format!("only {count} CUDA device(s) are visible")));
    }
    Ok(Device::Cuda(index))
}

/// The libtorch dtype of a config dtype.
pub fn kind_of(dtype: Dtype) -> Kind {
    match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::Bf16 => Kind::BFloat16,
        Dtype::F16 => Kind::Half,
    }
}

/// Sets libtorch's intra-op thread count; 0 leaves its default (all cores).
pub fn set_threads(threads: usize) {
    if threads > 0 {
        tch::set_num_threads(threads.min(i32::MAX as usize) as i32);
    }
}

/// Resolves `default`; other specs are paths as given.
pub fn resolve_spec(spec: &str) -> Result<PathBuf, LoadError> {
    if spec != "default" {
        let path = PathBuf::from(spec);
        return if path.exists() {
            Ok(path)
        } else {
            Err(LoadError::NotFound(path))
        };
    }
    find_in_checkout(Path::new(DEFAULT_MODEL)).map_err(|searched| {
        // Listing every ancestor would bury the message; the first two say enough.
        LoadError::DefaultMissing {
            searched: searched.into_iter().take(2).collect(),
        }
    })
}

/// Loads `spec` (`default`, a `.gguf` file or a Hugging Face directory) onto `device` in
/// `dtype`, with fresh (zero-effect) adapters when `lora` is given.
pub fn load_model(
    spec: &str,
    device: Device,
    dtype: Kind,
    lora: Option<&LoraConfig>,
) -> Result<LoadedModel, LoadError> {
    let path = resolve_spec(spec)?;
    let mut vs = nn::VarStore::new(device);
    vs.set_kind(dtype);
    let is_gguf = path.is_file() && path.extension().is_some_and(|e| e == "gguf");
    let (model, tokenizer, template, sha256) = if is_gguf {
        let loaded = load_llama_gguf(&path)?;
        let mut model = Llama::new(&vs.root(), &loaded.config, lora)?;
        model.load_raw(&loaded.tensors)?;
        let sha = sha256_file(&path)?;
        (model, loaded.tokenizer, loaded.chat_template, sha)
    } else if path.join("config.json").is_file() {
        load_hf_dir(&path, &vs, lora)?
    } else {
        return Err(LoadError::UnknownFormat(path));
    };
    Ok(LoadedModel {
        model,
        vs,
        tokenizer,
        chat: ChatFormat::detect(template.as_deref()),
        sha256: Some(sha256),
        path: path.display().to_string(),
        adapter: None,
        device,
    })
}

/// Loads what a config's `model` section names (device, dtype, threads) plus an adapter:
/// `adapter` overrides the section's. The model is built with the adapter's LoRA shape so
/// its weights load name by name.
pub fn load_for_inference(
    section: &ModelSection,
    adapter: Option<&Path>,
) -> Result<LoadedModel, LoadError> {
    let device = parse_device(&section.device)?;
    set_threads(section.threads);
    let adapter = adapter
        .map(Path::to_path_buf)
        .or_else(|| section.adapter.as_ref().map(PathBuf::from));
    let lora = adapter.as_deref().map(read_adapter_config).transpose()?;
    let mut loaded = load_model(&section.path, device, kind_of(section.dtype), lora.as_ref())?;
    if let Some(dir) = &adapter {
        load_adapter(&mut loaded.model, dir)?;
        loaded.adapter = Some(dir.display().to_string());
    }
    Ok(loaded)
}

/// The tokenizer and chat format of `spec`, without building the network: the remote
/// backend builds prompts with them while the servers hold the weights.
pub fn load_tokenizer(spec: &str) -> Result<(CoeTokenizer, ChatFormat), LoadError> {
    let path = resolve_spec(spec)?;
    if path.is_file() && path.extension().is_some_and(|e| e == "gguf") {
        let file = GgufFile::read(&path)?;
        let tok = CoeTokenizer::from_gguf(&file)?;
        let template = file
            .get("tokenizer.chat_template")
            .and_then(GgufValue::as_str)
            .map(str::to_string);
        Ok((tok, ChatFormat::detect(template.as_deref())))
    } else if path.join("config.json").is_file() {
        let tok = CoeTokenizer::from_file(&path.join("tokenizer.json"))?;
        Ok((tok, ChatFormat::detect(hf_chat_template(&path)?.as_deref())))
    } else {
        Err(LoadError::UnknownFormat(path))
    }
}

type Parts = (Llama, CoeTokenizer, Option<String>, String);

fn load_hf_dir(
    dir: &Path,
    vs: &nn::VarStore,
    lora: Option<&LoraConfig>,
) -> Result<Parts, LoadError> {
    let config_path = dir.join("config.json");
    let text = read_string(&config_path)?;
    let cfg = LlamaConfig::from_hf_json(&text).map_err(|source| LoadError::Config {
        path: config_path.clone(),
        source,
    })?;
    let mut model = Llama::new(&vs.root(), &cfg, lora)?;
    model.load_tensors(load_hf_weights(dir)?)?;
    let tokenizer = CoeTokenizer::from_file(&dir.join("tokenizer.json"))?;
    let weights = ["model.safetensors", "model.safetensors.index.json"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| SafetensorsError::NoWeights(dir.to_path_buf()))?;
    Ok((
        model,
        tokenizer,
        hf_chat_template(dir)?,
        sha256_file(&weights)?,
    ))
}

/// The chat template of a Hugging Face directory: `tokenizer_config.json`'s
/// `chat_template` (a string, or a list of named templates of which `default` is used),
/// else a `chat_template.jinja` file.
pub(crate) fn hf_chat_template(dir: &Path) -> Result<Option<String>, LoadError> {
    let config_path = dir.join("tokenizer_config.json");
    if config_path.is_file() {
        let text = read_string(&config_path)?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| LoadError::Config {
                path: config_path.clone(),
                source,
            })?;
        let template = match value.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
            _ => None,
        };
        if template.is_some() {
            return Ok(template);
        }
    }
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return read_string(&jinja).map(Some);
    }
    Ok(None)
}

fn read_string(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_or_say_why_not() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        for bad in ["gpu", "cuda:", "cuda:x", "CPU", "cuda:-1"] {
            let msg = parse_device(bad).unwrap_err().to_string();
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
            assert!(msg.contains("expected"), "{msg}");
        }
        if !tch::Cuda::is_available() {
            let msg = parse_device("cuda:1").unwrap_err().to_string();
            assert!(msg.contains("CUDA is not available"), "{msg}");
        }
    }

    #[test]
    fn sha256_of_a_known_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn missing_models_are_named() {
        let msg = resolve_spec("no/such/model.gguf").unwrap_err().to_string();
        assert!(msg.contains("no/such/model.gguf"), "{msg}");
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().display().to_string();
        let err = load_model(&spec, Device::Cpu, Kind::Float, None).unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
    }
}
