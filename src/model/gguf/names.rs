//! The Llama view of a GGUF file: Hugging Face tensor names and layouts, and a `LlamaConfig`.
//!
//! The network and the LoRA adapters address parameters by Hugging Face names
//! (`model.layers.3.self_attn.q_proj.weight`), so a GGUF is translated once at load time, after
//! which it is indistinguishable from a safetensors checkpoint. Three things differ in llama.cpp's
//! files: the names (`blk.3.attn_q.weight`), the dimension order (ggml lists the innermost first),
//! and the rows of Q and K, which llama.cpp's converter permutes within each head so that its
//! RoPE can rotate adjacent pairs instead of the two halves of a head. One table drives the name
//! mapping in both directions, so "is every tensor there" and "is every tensor known" agree.

use std::path::Path;

use super::reader::{GgufError, GgufFile, GgufTensorInfo, GgufValue};
use crate::model::config::{EosIds, LlamaConfig, RopeScaling};
use crate::model::tokenizer::CoeTokenizer;

/// A tensor with its Hugging Face name, row-major shape (outermost first) and values.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Everything a GGUF file provides for running the model.
#[derive(Debug)]
pub struct LoadedGguf {
    pub config: LlamaConfig,
    pub tensors: Vec<RawTensor>,
    pub tokenizer: CoeTokenizer,
    pub chat_template: Option<String>,
    pub architecture: String,
}

/// Per-layer tensors: (llama.cpp name, Hugging Face name), both without `blk.N.`/`.weight`.
const LAYER_TENSORS: [(&str, &str); 9] = [
    ("attn_norm", "input_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

const GLOBAL_TENSORS: [(&str, &str); 3] = [
    ("token_embd", "model.embed_tokens"),
    ("output_norm", "model.norm"),
    ("output", "lm_head"),
];

/// llama.cpp stores Llama-3 RoPE scaling as per-frequency factors in this tensor.
const ROPE_FREQS: &str = "rope_freqs.weight";

/// The Hugging Face name of a llama.cpp weight, or `None` if it is not a Llama weight.
pub fn hf_name(gguf_name: &str) -> Option<String> {
    let stem = gguf_name.strip_suffix(".weight")?;
    if let Some(rest) = stem.strip_prefix("blk.") {
        let (layer, short) = rest.split_once('.')?;
        let layer: usize = layer.parse().ok()?;
        let (_, hf) = LAYER_TENSORS.iter().find(|(g, _)| *g == short)?;
        return Some(format!("model.layers.{layer}.{hf}.weight"));
    }
    let (_, hf) = GLOBAL_TENSORS.iter().find(|(g, _)| *g == stem)?;
    Some(format!("{hf}.weight"))
}

/// Every tensor a Llama with this config must have: (llama.cpp name, HF name, HF shape).
fn expected_tensors(cfg: &LlamaConfig) -> Vec<(String, String, Vec<usize>)> {
    let (h, inter, vocab) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let q_out = cfg.num_attention_heads * cfg.head_dim();
    let kv_out = cfg.kv_heads() * cfg.head_dim();
    let mut out = vec![
        ("token_embd".to_string(), vec![vocab, h]),
        ("output_norm".to_string(), vec![h]),
    ];
    if !cfg.tie_word_embeddings {
        out.push(("output".to_string(), vec![vocab, h]));
    }
    for layer in 0..cfg.num_hidden_layers {
        let shapes = [
            vec![h],
            vec![q_out, h],
            vec![kv_out, h],
            vec![kv_out, h],
            vec![h, q_out],
            vec![h],
            vec![inter, h],
            vec![inter, h],
            vec![h, inter],
        ];
        for ((short, _), shape) in LAYER_TENSORS.iter().zip(shapes) {
            out.push((format!("blk.{layer}.{short}"), shape));
        }
    }
    out.into_iter()
        .filter_map(|(g, shape)| {
            let g = format!("{g}.weight");
            hf_name(&g).map(|hf| (g, hf, shape))
        })
        .collect()
}

/// Rows as llama.cpp's converter writes them: within each head, HF row `i * half + j`
/// (`i` = which half of the head, `j` < half) moves to row `2 * j + i`. This is
/// `w.reshape(n_head, 2, half, cols).swapaxes(1, 2).reshape(rows, cols)`.
pub fn permute_qk_rows(w: &[f32], cols: usize, n_heads: usize) -> Vec<f32> {
    move_rows(w, cols, n_heads, |i, j, half| (i * half + j, 2 * j + i))
}

/// The inverse of [`permute_qk_rows`]: back from llama.cpp's interleaved rows to HF's.
pub fn unpermute_qk_rows(w: &[f32], cols: usize, n_heads: usize) -> Vec<f32> {
    move_rows(w, cols, n_heads, |i, j, half| (2 * j + i, i * half + j))
}

/// Copies row `from` of each head to row `to`, where `(from, to) = map(i, j, half)`. The caller
/// guarantees `w.len()` is a multiple of `2 * n_heads * cols`; a ragged tail is left in place.
fn move_rows(
    w: &[f32],
    cols: usize,
    n_heads: usize,
    map: impl Fn(usize, usize, usize) -> (usize, usize),
) -> Vec<f32> {
    let mut out = w.to_vec();
    let head_len = (w.len() / n_heads.max(1)) / (2 * cols.max(1)) * 2 * cols.max(1);
    if head_len == 0 {
        return out;
    }
    let half = head_len / cols / 2;
    for (src, dst) in w.chunks_exact(head_len).zip(out.chunks_exact_mut(head_len)) {
        for i in 0..2 {
            for j in 0..half {
                let (from, to) = map(i, j, half);
                dst[to * cols..(to + 1) * cols]
                    .copy_from_slice(&src[from * cols..(from + 1) * cols]);
            }
        }
    }
    out
}

/// Rounds an f32 metadata value to the shortest decimal that reads back as the same f32, so
/// `1e-5` stored as f32 becomes `1e-5`, not `9.999999747378752e-6`, as in the HF config.
fn f32_decimal(v: f64) -> f64 {
    let short = format!("{}", v as f32);
    short.parse().unwrap_or(v)
}

/// Builds the model config from `llama.*` and `tokenizer.ggml.*` metadata.
pub fn llama_config(file: &GgufFile) -> Result<LlamaConfig, GgufError> {
    let int = |key: &str| -> Result<usize, GgufError> {
        let v = file.require(key, "a non-negative integer", GgufValue::as_u64)?;
        usize::try_from(v).map_err(|_| bad_key(file, key, format!("{v} is out of range")))
    };
    let positive = |key: &str| -> Result<usize, GgufError> {
        int(key).and_then(|v| match v {
            0 => Err(bad_key(file, key, "must be positive".into())),
            v => Ok(v),
        })
    };
    let float = |key: &str| file.get(key).and_then(GgufValue::as_f64).map(f32_decimal);
    let token_id = |key: &str| {
        file.get(key)
            .and_then(GgufValue::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    };

    let tokens = file.require(
        "tokenizer.ggml.tokens",
        "an array of strings",
        GgufValue::as_array,
    )?;
    let hidden_size = positive("llama.embedding_length")?;
    let heads = positive("llama.attention.head_count")?;
    let kv_heads = match file.get("llama.attention.head_count_kv") {
        None => heads,
        Some(_) => positive("llama.attention.head_count_kv")?,
    };
    if hidden_size % heads != 0 || heads % kv_heads != 0 || (hidden_size / heads) % 2 != 0 {
        let problem = format!(
            "{heads} heads with {kv_heads} key/value heads do not divide the width {hidden_size} into even-sized heads"
        );
        return Err(bad_key(file, "llama.attention.head_count", problem));
    }
    let head_dim = hidden_size / heads;
    for key in ["llama.attention.key_length", "llama.rope.dimension_count"] {
        if file.get(key).is_some() && int(key)? != head_dim {
            let problem = format!(
                "{} differs from the head size {head_dim}; only full-width heads and RoPE are supported",
                int(key)?
            );
            return Err(bad_key(file, key, problem));
        }
    }
    let rope_theta = float("llama.rope.freq_base").unwrap_or(10_000.0);
    let rope_scaling = match file.tensor_info(ROPE_FREQS) {
        Some(info) => llama3_rope_scaling(file, info, rope_theta, head_dim)?,
        None => None,
    };
    if rope_scaling.is_none()
        && let Some(kind) = file
            .get("llama.rope.scaling.type")
            .and_then(GgufValue::as_str)
        && kind != "none"
    {
        let problem =
            format!("RoPE scaling {kind:?} is not supported (supported: none, Llama-3 rope_freqs)");
        return Err(bad_key(file, "llama.rope.scaling.type", problem));
    }
    Ok(LlamaConfig {
        vocab_size: tokens.len(),
        hidden_size,
        intermediate_size: positive("llama.feed_forward_length")?,
        num_hidden_layers: positive("llama.block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: Some(kv_heads),
        rms_norm_eps: float("llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
        rope_theta,
        rope_scaling,
        max_position_embeddings: positive("llama.context_length")?,
        tie_word_embeddings: file.tensor_info("output.weight").is_none(),
        bos_token_id: token_id("tokenizer.ggml.bos_token_id"),
        eos_token_id: token_id("tokenizer.ggml.eos_token_id").map(EosIds::One),
    })
}

/// Recovers Hugging Face's `rope_scaling` (type "llama3") from llama.cpp's per-frequency
/// factors. Only the ratios of the original context to the low/high frequency factors are
/// observable, so the original context is taken from the metadata (default 8192) and the two
/// factors are fitted from the smoothly interpolated frequencies; the fit must reproduce
/// every stored factor or the file is rejected.
fn llama3_rope_scaling(
    file: &GgufFile,
    info: &GgufTensorInfo,
    theta: f64,
    head_dim: usize,
) -> Result<Option<RopeScaling>, GgufError> {
    let stored = file.tensor_f32(info)?;
    if stored.len() != head_dim / 2 {
        return Err(GgufError::ShapeMismatch {
            file: file.path().to_path_buf(),
            tensor: ROPE_FREQS.into(),
            expected: vec![head_dim / 2],
            found: info.hf_shape(),
        });
    }
    let original = file
        .get("llama.rope.scaling.original_context_length")
        .and_then(GgufValue::as_u64)
        .map_or(8192, |v| v as usize);
    let factors: Vec<f64> = stored.iter().map(|&f| f64::from(f)).collect();
    fit_llama3(&factors, theta, head_dim, original)
        .map_err(|problem| file.tensor_error(ROPE_FREQS, problem))
}

/// Hugging Face's Llama-3 factor for a wavelength: 1 for short waves, `factor` for long ones,
/// a smooth blend in between.
pub fn llama3_factor(wavelen: f64, s: &RopeScaling) -> f64 {
    let original = s.original_max_position_embeddings as f64;
    if wavelen < original / s.high_freq_factor {
        1.0
    } else if wavelen > original / s.low_freq_factor {
        s.factor
    } else {
        let smooth =
            (original / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        1.0 / ((1.0 - smooth) / s.factor + smooth)
    }
}

/// Fits `(factor, low_freq_factor, high_freq_factor)` to per-frequency factors; `None` when
/// every factor is 1 (no scaling). The blend is linear in `original / wavelen`, so two blended
/// frequencies determine both factors; with fewer, Llama-3's published 1 and 4 are tried.
pub fn fit_llama3(
    factors: &[f64],
    theta: f64,
    head_dim: usize,
    original: usize,
) -> Result<Option<RopeScaling>, String> {
    let factor = factors.iter().copied().fold(1.0, f64::max);
    if factors.iter().any(|f| !(f.is_finite() && *f > 1.0 - 1e-6)) {
        return Err(format!(
            "RoPE factors {factors:?} are not all finite and at least 1"
        ));
    }
    if factor <= 1.0 + 1e-6 {
        return Ok(None);
    }
    let wavelens: Vec<f64> = (0..factors.len())
        .map(|i| 2.0 * std::f64::consts::PI * theta.powf(2.0 * i as f64 / head_dim as f64))
        .collect();
    // (original / wavelen, smoothing) of the blended frequencies, from f = 1/((1-s)/factor + s).
    let blended: Vec<(f64, f64)> = factors
        .iter()
        .zip(&wavelens)
        .filter(|(f, _)| **f > 1.0 + 1e-4 && **f < factor * (1.0 - 1e-4))
        .map(|(f, wl)| {
            (
                original as f64 / wl,
                (1.0 / f - 1.0 / factor) / (1.0 - 1.0 / factor),
            )
        })
        .collect();
    // The factors are f32, so the fit is good to ~1e-5; rounding recovers the config's decimals.
    let round = |x: f64| (x * 1e4).round() / 1e4;
    let (low, high) = match (blended.first(), blended.last()) {
        (Some(&(x0, s0)), Some(&(x1, s1))) if blended.len() >= 2 && x1 != x0 => {
            let slope = (s1 - s0) / (x1 - x0);
            let low = -(s0 - slope * x0) / slope;
            (round(low), round(low + 1.0 / slope))
        }
        _ => (1.0, 4.0),
    };
    let scaling = RopeScaling {
        rope_type: "llama3".into(),
        factor: f32_decimal(factor),
        low_freq_factor: low,
        high_freq_factor: high,
        original_max_position_embeddings: original,
    };
    let fits = factors.iter().zip(&wavelens).all(|(f, wl)| {
        let want = llama3_factor(*wl, &scaling);
        want.is_finite() && (want - f).abs() <= 1e-3 * f
    });
    if !fits {
        return Err(format!(
            "RoPE factors do not follow Llama-3 scaling (closest: factor {factor}, low_freq_factor {low}, high_freq_factor {high})"
        ));
    }
    Ok(Some(scaling))
}

fn bad_key(file: &GgufFile, key: &str, problem: String) -> GgufError {
    GgufError::BadMetadata {
        file: file.path().to_path_buf(),
        key: key.to_string(),
        problem,
    }
}

/// Dequantises one tensor into HF layout: checks its shape against `expected` and un-permutes
/// Q and K rows.
pub fn load_tensor(
    file: &GgufFile,
    info: &GgufTensorInfo,
    hf: &str,
    expected: &[usize],
    cfg: &LlamaConfig,
) -> Result<RawTensor, GgufError> {
    let shape = info.hf_shape();
    if shape != expected {
        return Err(GgufError::ShapeMismatch {
            file: file.path().to_path_buf(),
            tensor: info.name.clone(),
            expected: expected.to_vec(),
            found: shape,
        });
    }
    let mut data = file.tensor_f32(info)?;
    let cols = shape.last().copied().unwrap_or(1);
    if hf.ends_with("self_attn.q_proj.weight") {
        data = unpermute_qk_rows(&data, cols, cfg.num_attention_heads);
    } else if hf.ends_with("self_attn.k_proj.weight") {
        data = unpermute_qk_rows(&data, cols, cfg.kv_heads());
    }
    Ok(RawTensor {
        name: hf.to_string(),
        shape,
        data,
    })
}

/// Reads a Llama GGUF: config, every weight in HF names and layout, the tokenizer and the chat
/// template. Unknown or missing tensors are errors, so a partial load never reaches the model.
pub fn load_llama_gguf(path: &Path) -> Result<LoadedGguf, GgufError> {
    let file = GgufFile::read(path)?;
    let architecture = file
        .require("general.architecture", "a string", GgufValue::as_str)?
        .to_string();
    if architecture != "llama" {
        return Err(GgufError::UnsupportedArchitecture {
            file: path.to_path_buf(),
            found: architecture,
        });
    }
    let config = llama_config(&file)?;
    // Each block holds LAYER_TENSORS weights; a block count the tensor table cannot back is
    // a corrupt header, and must not size the list of expected names (found by fuzzing:
    // a count of 536870914 asked for gigabytes).
    let blocks_held = file.tensors.len() / LAYER_TENSORS.len();
    if config.num_hidden_layers > blocks_held {
        let problem = format!(
            "{} blocks, but the file holds only {} tensors ({} per block)",
            config.num_hidden_layers,
            file.tensors.len(),
            LAYER_TENSORS.len()
        );
        return Err(bad_key(&file, "llama.block_count", problem));
    }
    let expected = expected_tensors(&config);
    for info in &file.tensors {
        if info.name != ROPE_FREQS && !expected.iter().any(|(g, _, _)| *g == info.name) {
            let problem = "is not a weight of a Llama with this config".to_string();
            return Err(file.tensor_error(&info.name, problem));
        }
    }
    let mut tensors = Vec::with_capacity(expected.len());
    for (gguf_name, hf, shape) in &expected {
        let info = file
            .tensor_info(gguf_name)
            .ok_or_else(|| GgufError::MissingTensor {
                file: path.to_path_buf(),
                tensor: gguf_name.clone(),
            })?;
        tensors.push(load_tensor(&file, info, hf, shape, &config)?);
    }
    let tokenizer = CoeTokenizer::from_gguf(&file).map_err(|e| GgufError::Tokenizer {
        file: path.to_path_buf(),
        problem: e.to_string(),
    })?;
    let chat_template = file
        .get("tokenizer.chat_template")
        .and_then(GgufValue::as_str)
        .map(str::to_string);
    Ok(LoadedGguf {
        config,
        tensors,
        tokenizer,
        chat_template,
        architecture,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_kinds() {
        let cases = [
            ("token_embd.weight", Some("model.embed_tokens.weight")),
            (
                "blk.12.attn_k.weight",
                Some("model.layers.12.self_attn.k_proj.weight"),
            ),
            (
                "blk.0.ffn_norm.weight",
                Some("model.layers.0.post_attention_layernorm.weight"),
            ),
            (
                "blk.3.attn_output.weight",
                Some("model.layers.3.self_attn.o_proj.weight"),
            ),
            ("output_norm.weight", Some("model.norm.weight")),
            ("output.weight", Some("lm_head.weight")),
            ("blk.x.attn_q.weight", None),
            ("blk.1.attn_q.bias", None),
            ("rope_freqs.weight", None),
        ];
        for (gguf, hf) in cases {
            assert_eq!(hf_name(gguf).as_deref(), hf, "{gguf}");
        }
    }

    #[test]
    fn llama3_rope_scaling_is_recovered_from_factors() {
        let truth = RopeScaling {
            rope_type: "llama3".into(),
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        };
        let (theta, head_dim) = (500_000.0, 64);
        let factors: Vec<f64> = (0..head_dim / 2)
            .map(|i| {
                let wl =
                    2.0 * std::f64::consts::PI * f64::powf(theta, 2.0 * i as f64 / head_dim as f64);
                f64::from(llama3_factor(wl, &truth) as f32)
            })
            .collect();
        assert!(factors.iter().filter(|f| **f > 1.0 && **f < 32.0).count() >= 2);
        assert_eq!(fit_llama3(&factors, theta, head_dim, 8192), Ok(Some(truth)));
        assert_eq!(fit_llama3(&[1.0; 32], theta, head_dim, 8192), Ok(None));
        let mut broken = factors.clone();
        broken[0] = 5.0;
        assert!(fit_llama3(&broken, theta, head_dim, 8192).is_err());
    }

    #[test]
    fn permute_matches_hand_worked_head() {
        // One head of 4 rows, 1 column: HF rows [a0 a1 | b0 b1] interleave to [a0 b0 a1 b1].
        let hf = [0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0];
        let gguf = permute_qk_rows(&hf, 1, 2);
        assert_eq!(gguf, [0.0, 2.0, 1.0, 3.0, 10.0, 12.0, 11.0, 13.0]);
        assert_eq!(unpermute_qk_rows(&gguf, 1, 2), hf);
    }

    #[test]
    fn unpermute_inverts_permute_with_columns() {
        let w: Vec<f32> = (0..3 * 8 * 5).map(|i| i as f32).collect();
        assert_eq!(unpermute_qk_rows(&permute_qk_rows(&w, 5, 3), 5, 3), w);
        assert_ne!(permute_qk_rows(&w, 5, 3), w);
    }
}
