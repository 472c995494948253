//! Reading Hugging Face safetensors checkpoints and reading/writing PEFT adapters.
//!
//! Checkpoints come as one `model.safetensors` or as shards listed in
//! `model.safetensors.index.json`; tensors are created in their stored dtype (F32,
//! F16, BF16) on the CPU, and [`Llama::load_tensors`] converts them while copying,
//! so no f32 copy of a half-precision checkpoint is ever materialised.
//! Adapters are written exactly as PEFT's `save_pretrained` does —
//! `adapter_model.safetensors` with `base_model.model.`-prefixed names and
//! `adapter_config.json` — each through a temporary file and a rename, so a crash
//! never leaves a half-written adapter behind.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensorError, SafeTensors, tensor::TensorView};
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

use crate::model::llama::{Llama, ModelError};
use crate::model::lora::{LoraConfig, LoraError, PeftAdapterConfig};

pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// PEFT's prefix in front of the wrapped model's own parameter names.
pub const PEFT_PREFIX: &str = "base_model.model.";

#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path} is not a valid safetensors file: {source}")]
    Format {
        path: PathBuf,
        source: SafeTensorError,
    },
    #[error("{path}: tensor {name} has dtype {dtype}; only F32, F16 and BF16 are supported")]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    #[error("{path} is not valid JSON of the expected form: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{index}: shard {shard:?} must be a plain file name next to the index")]
    BadShardName { index: PathBuf, shard: String },
    #[error("{path} does not contain tensor {name}, which the index assigns to it")]
    MissingInShard { path: PathBuf, name: String },
    #[error("no model.safetensors or model.safetensors.index.json in {0}")]
    NoWeights(PathBuf),
    #[error("{path}: the adapter uses {feature}, which is not supported (plain LoRA only)")]
    UnsupportedAdapter { path: PathBuf, feature: String },
    #[error("the adapter's {field} is {adapter} but the model's LoRA has {model}")]
    AdapterMismatch {
        field: &'static str,
        adapter: String,
        model: String,
    },
    #[error("adapter tensor {0:?} does not start with the PEFT prefix \"base_model.model.\"")]
    AdapterName(String),
    #[error(transparent)]
    Lora(#[from] LoraError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, SafetensorsError> {
    std::fs::read(path).map_err(|source| SafetensorsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// All tensors of one safetensors file, CPU-resident in their stored dtype.
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>, SafetensorsError> {
    let bytes = read_bytes(path)?;
    let file = SafeTensors::deserialize(&bytes).map_err(|source| SafetensorsError::Format {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::with_capacity(file.len());
    for (name, view) in file.iter() {
        out.push((name.to_string(), to_tensor(path, name, &view)?));
    }
    Ok(out)
}

fn to_tensor(path: &Path, name: &str, view: &TensorView<'_>) -> Result<Tensor, SafetensorsError> {
    let kind = match view.dtype() {
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        other => {
            return Err(SafetensorsError::Dtype {
                path: path.to_path_buf(),
                name: name.to_string(),
                dtype: format!("{other:?}"),
            });
        }
    };
    let shape: Vec<i64> = view.shape().iter().map(|&s| s as i64).collect();
    Ok(Tensor::f_from_data_size(view.data(), &shape, kind)?)
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

/// The weights of a Hugging Face model directory, single-file or sharded.
pub fn load_hf_weights(dir: &Path) -> Result<Vec<(String, Tensor)>, SafetensorsError> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return read_safetensors(&single);
    }
    let index_path = dir.join("model.safetensors.index.json");
    if !index_path.is_file() {
        return Err(SafetensorsError::NoWeights(dir.to_path_buf()));
    }
    let index: ShardIndex =
        serde_json::from_slice(&read_bytes(&index_path)?).map_err(|source| {
            SafetensorsError::Json {
                path: index_path.clone(),
                source,
            }
        })?;
    let mut by_shard: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, shard) in &index.weight_map {
        by_shard
            .entry(shard.as_str())
            .or_default()
            .insert(name.as_str());
    }
    let mut out = Vec::with_capacity(index.weight_map.len());
    for (shard, names) in by_shard {
        let plain = Path::new(shard).file_name().is_some_and(|f| f == shard) && shard != "..";
        if !plain {
            return Err(SafetensorsError::BadShardName {
                index: index_path,
                shard: shard.to_string(),
            });
        }
        let path = dir.join(shard);
        let mut tensors: BTreeMap<String, Tensor> = read_safetensors(&path)?.into_iter().collect();
        for name in names {
            let t = tensors
                .remove(name)
                .ok_or_else(|| SafetensorsError::MissingInShard {
                    path: path.clone(),
                    name: name.to_string(),
                })?;
            out.push((name.to_string(), t));
        }
    }
    Ok(out)
}

/// Writes `tensors` (any device; F32/F16/BF16) to `path` via a temporary file.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
) -> Result<(), SafetensorsError> {
    let mut blobs = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.to_device(Device::Cpu).contiguous();
        let dtype = match t.kind() {
            Kind::Float => Dtype::F32,
            Kind::Half => Dtype::F16,
            Kind::BFloat16 => Dtype::BF16,
            other => {
                return Err(SafetensorsError::Dtype {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
        t.f_copy_data_u8(&mut bytes, numel)?;
        let shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
        blobs.push((name.clone(), dtype, shape, bytes));
    }
    let views = blobs
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            Ok((
                name.as_str(),
                TensorView::new(*dtype, shape.clone(), bytes)?,
            ))
        })
        .collect::<Result<Vec<_>, SafeTensorError>>()
        .and_then(|views| safetensors::serialize(views, None))
        .map_err(|source| SafetensorsError::Format {
            path: path.to_path_buf(),
            source,
        })?;
    write_atomic(path, &views)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SafetensorsError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|source| SafetensorsError::Write {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| SafetensorsError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// Saves the model's adapters to `dir` in PEFT's layout.
pub fn save_adapter(model: &Llama, dir: &Path, base_model: &str) -> Result<(), SafetensorsError> {
    let cfg = model.lora_config().ok_or(ModelError::NoLora)?;
    if model.lora_merged() {
        return Err(ModelError::LoraMerged.into());
    }
    std::fs::create_dir_all(dir).map_err(|source| SafetensorsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let tensors: Vec<(String, Tensor)> = model
        .lora_parameters()
        .map(|(name, t)| (format!("{PEFT_PREFIX}{name}"), t.detach()))
        .collect();
    write_safetensors(&dir.join(ADAPTER_WEIGHTS), &tensors)?;
    let json = serde_json::to_vec_pretty(&PeftAdapterConfig::from_lora(cfg, base_model)?).map_err(
        |source| SafetensorsError::Json {
            path: dir.join(ADAPTER_CONFIG),
            source,
        },
    )?;
    write_atomic(&dir.join(ADAPTER_CONFIG), &json)
}

/// Reads `adapter_config.json` from an adapter directory, refusing PEFT features
/// this implementation does not run.
pub fn read_adapter_config(dir: &Path) -> Result<LoraConfig, SafetensorsError> {
    let path = dir.join(ADAPTER_CONFIG);
    let peft: PeftAdapterConfig =
        serde_json::from_slice(&read_bytes(&path)?).map_err(|source| SafetensorsError::Json {
            path: path.clone(),
            source,
        })?;
    if let Some(feature) = peft.unsupported_feature() {
        return Err(SafetensorsError::UnsupportedAdapter { path, feature });
    }
    Ok(peft.to_lora()?)
}

/// Loads an adapter directory into a model built with the same LoRA shape
/// (rank, alpha and targets must agree; build the model from
/// [`read_adapter_config`] to be sure).
pub fn load_adapter(model: &mut Llama, dir: &Path) -> Result<(), SafetensorsError> {
    let adapter = read_adapter_config(dir)?;
    let own = model.lora_config().ok_or(ModelError::NoLora)?;
    let mismatch = |field, a: String, m: String| {
        Err(SafetensorsError::AdapterMismatch {
            field,
            adapter: a,
            model: m,
        })
    };
    if adapter.r != own.r {
        return mismatch("r", adapter.r.to_string(), own.r.to_string());
    }
    if adapter.alpha != own.alpha {
        return mismatch(
            "lora_alpha",
            adapter.alpha.to_string(),
            own.alpha.to_string(),
        );
    }
    let (a, m) = (adapter.resolved_targets()?, own.resolved_targets()?);
    if a != m {
        return mismatch("target_modules", format!("{a:?}"), format!("{m:?}"));
    }
    model.load_lora_tensors(read_adapter_tensors(dir)?)?;
    Ok(())
}

/// An adapter directory's weights by HF name (PEFT's `base_model.model.` prefix taken off),
/// on the CPU as stored — for a caller that keeps several adapters and swaps them in.
pub fn read_adapter_tensors(dir: &Path) -> Result<Vec<(String, Tensor)>, SafetensorsError> {
    read_safetensors(&dir.join(ADAPTER_WEIGHTS))?
        .into_iter()
        .map(|(name, t)| match name.strip_prefix(PEFT_PREFIX) {
            Some(rest) => Ok((rest.to_string(), t)),
            None => Err(SafetensorsError::AdapterName(name)),
        })
        .collect()
}
