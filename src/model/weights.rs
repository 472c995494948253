//! The model's parameter registry and the name-by-name weight copy.
//!
//! Every variable is registered as it is created, keyed by its path below the model's
//! root — which, because the module tree mirrors `transformers`, is the Hugging Face
//! tensor name. Loading a checkpoint (safetensors, dequantised GGUF, a PEFT adapter)
//! is then a lookup and a shape-checked in-place copy per tensor, followed by a check
//! that nothing was left out; no loader ever guesses names or walks the model.

use std::collections::{BTreeMap, HashSet};

use tch::{Tensor, nn};

use crate::model::error::ModelError;

/// Frozen base weights and trainable LoRA weights by HF name (shallow clones of the
/// VarStore variables, so copies land in the model).
#[derive(Debug)]
pub(crate) struct ParamRegistry {
    root: String,
    base: BTreeMap<String, Tensor>,
    lora: BTreeMap<String, Tensor>,
}

/// What a load copies into, for error messages and skip rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// Base weights; `tied` skips a checkpoint's `lm_head.weight` as `transformers` does.
    Checkpoint {
        tied: bool,
    },
    Adapter,
}

impl ParamRegistry {
    pub(crate) fn new(root: &nn::Path) -> Self {
        let root = root.components().collect::<Vec<_>>().join(".");
        ParamRegistry {
            root,
            base: BTreeMap::new(),
            lora: BTreeMap::new(),
        }
    }

    /// Registers a variable under `p`; adapters are trainable, everything else frozen.
    pub(crate) fn add(&mut self, p: &nn::Path, name: &str, init: Tensor, adapter: bool) -> Tensor {
        let t = p.add(name, init, adapter);
        let full = p.path(name);
        let rel = match full.strip_prefix(&self.root) {
            Some(rest) if !self.root.is_empty() => rest.trim_start_matches('.').to_string(),
            _ => full,
        };
        let map = if adapter {
            &mut self.lora
        } else {
            &mut self.base
        };
        map.insert(rel, t.shallow_clone());
        t
    }

    pub(crate) fn base(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.base.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub(crate) fn lora(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.lora.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Copies every `(name, tensor)` into `target`'s parameters; every one of them
    /// must be supplied. A failed load may leave earlier tensors copied.
    pub(crate) fn load<I, E>(&self, target: Target, tensors: I) -> Result<(), ModelError>
    where
        I: IntoIterator<Item = Result<(String, Tensor), E>>,
        ModelError: From<E>,
    {
        let (params, what) = match target {
            Target::Checkpoint { .. } => (&self.base, "checkpoint"),
            Target::Adapter => (&self.lora, "adapter"),
        };
        let mut loaded = HashSet::new();
        for item in tensors {
            let (name, src) = item?;
            let skip = match target {
                Target::Checkpoint { tied } => {
                    name.ends_with("rotary_emb.inv_freq") || (tied && name == "lm_head.weight")
                }
                Target::Adapter => false,
            };
            if skip {
                continue;
            }
            copy_named(params, what, &name, &src)?;
            loaded.insert(name);
        }
        let missing: Vec<String> = params
            .keys()
            .filter(|k| !loaded.contains(*k))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ModelError::MissingTensors {
                what,
                names: missing,
            })
        }
    }
}

/// Name-by-name copy with a shape check; `copy_` converts dtype and device.
fn copy_named(
    params: &BTreeMap<String, Tensor>,
    what: &'static str,
    name: &str,
    src: &Tensor,
) -> Result<(), ModelError> {
    let Some(dst) = params.get(name) else {
        return Err(ModelError::UnexpectedTensor {
            what,
            name: name.to_string(),
        });
    };
    if dst.size() != src.size() {
        return Err(ModelError::ShapeMismatch {
            name: name.to_string(),
            expected: dst.size(),
            found: src.size(),
        });
    }
    let _guard = tch::no_grad_guard();
    dst.shallow_clone().f_copy_(src)?;
    Ok(())
}
