//! The blocks of a Llama decoder layer: RMSNorm, grouped-query attention with RoPE,
//! the SwiGLU MLP, and the pre-norm residual layer that joins them.
//!
//! One struct per block, each with `new(path, cfg, ..)` registering its parameters
//! under the Hugging Face names and a `forward`. Batches are LEFT-padded: every row's
//! last real token sits in the last column, so decoding appends one shared column per
//! step. Padded keys are masked out, but a query may always see its own key, which
//! keeps pad rows finite (their outputs are never read) instead of producing NaNs
//! from fully masked softmax rows.

use std::collections::HashSet;

use tch::{Device, Kind, Tensor, nn};

use crate::model::config::LlamaConfig;
use crate::model::error::ModelError;
use crate::model::fused::FusedLinear;
use crate::model::kv_cache::KvCache;
use crate::model::lora::{Linear, LoraConfig, Mode};
use crate::model::rope::RopeTables;
use crate::model::weights::ParamRegistry;

/// Which attention kernel runs. Both compute the same function (a test holds them
/// to it); `Grouped` multiplies each KV head with its group of query heads directly
/// and never copies K/V, which is what a CPU decode step wants, while `Sdpa` hands
/// over to torch's fused kernels (flash / memory-efficient on CUDA, flash on the CPU),
/// which never materialise the [T, Tk] scores: what a long prefill wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKernel {
    Sdpa,
    Grouped,
    /// `Sdpa` for several query tokens (prefill, training), `Grouped` for one (a decode
    /// step): the CPU default. On a 2-core CPU it made multi-turn rollouts, whose every
    /// turn prefills the whole conversation, 2.9× faster.
    Auto,
}

impl AttentionKernel {
    /// The kernel that runs for `t` query tokens.
    pub fn for_queries(self, t: i64) -> AttentionKernel {
        match self {
            AttentionKernel::Auto if t > 1 => AttentionKernel::Sdpa,
            AttentionKernel::Auto => AttentionKernel::Grouped,
            k => k,
        }
    }
}

#[derive(Debug)]
pub struct RmsNorm {
    weight: Tensor, // [D]
    eps: f64,
}

impl RmsNorm {
    pub(crate) fn new(p: &nn::Path, dim: usize, eps: f64, reg: &mut ParamRegistry) -> Self {
        let w = Tensor::ones([dim as i64], (p.kind(), p.device()));
        RmsNorm {
            weight: reg.add(p, "weight", w, false),
            eps,
        }
    }

    /// Normalises in f32 and scales in the model dtype, as `transformers` does. For
    /// f32 models torch's single `rms_norm` kernel computes the same thing with one
    /// dispatch instead of six (per-op overhead matters in CPU decoding).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        if x.kind() == Kind::Float && self.weight.kind() == Kind::Float {
            let d = self.weight.size()[0];
            return x.rms_norm([d], Some(&self.weight), self.eps);
        }
        let h = x.to_kind(Kind::Float);
        let inv_rms = (h.square().mean_dim(-1, true, Kind::Float) + self.eps).rsqrt(); // [.., 1]
        (h * inv_rms).to_kind(x.kind()) * &self.weight
    }
}

/// The mask of one forward, shared by all layers: which keys each query may see.
pub(crate) struct AttnMask {
    start: usize,            // first new column in the cache (0 without a cache)
    causal: bool,            // let SDPA apply the causal mask itself
    allowed: Option<Tensor>, // [B|1, 1, T, Tk] bool, true = may attend
}

impl AttnMask {
    pub(crate) fn new(
        t: i64,
        start: usize,
        key_valid: Option<Tensor>,
        kernel: AttentionKernel,
        device: Device,
    ) -> Self {
        let s = start as i64;
        if key_valid.is_none() && t == 1 {
            return AttnMask {
                start,
                causal: false,
                allowed: None,
            };
        }
        if key_valid.is_none() && s == 0 && kernel == AttentionKernel::Sdpa {
            return AttnMask {
                start,
                causal: true,
                allowed: None,
            };
        }
        let tk = s + t;
        let q_abs = Tensor::arange_start(s, tk, (Kind::Int64, device)).view([t, 1]);
        let k_idx = Tensor::arange(tk, (Kind::Int64, device)).view([1, tk]);
        let causal = k_idx.le_tensor(&q_abs); // [T, Tk]
        let allowed = match key_valid {
            Some(valid) => {
                let b = valid.size()[0];
                causal
                    .logical_and(&valid.view([b, 1, 1, tk]))
                    .logical_or(&k_idx.eq_tensor(&q_abs)) // [B, 1, T, Tk]
            }
            None => causal.view([1, 1, t, tk]),
        };
        AttnMask {
            start,
            causal: false,
            allowed: Some(allowed),
        }
    }
}

#[derive(Debug)]
pub struct Attention {
    /// q_proj, k_proj and v_proj.
    qkv: FusedLinear<3>,
    o_proj: Linear,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
}

impl Attention {
    pub(crate) fn new(
        p: &nn::Path,
        cfg: &LlamaConfig,
        lora: &LoraFor,
        reg: &mut ParamRegistry,
    ) -> Self {
        let (d, hd) = (cfg.hidden_size, cfg.head_dim());
        let (h, kvh) = (cfg.num_attention_heads, cfg.kv_heads());
        let parts = [
            ("q_proj", h * hd),
            ("k_proj", kvh * hd),
            ("v_proj", kvh * hd),
        ];
        Attention {
            qkv: FusedLinear::new(p, d, parts, |n| lora.get(n), reg),
            o_proj: Linear::new(&(p / "o_proj"), h * hd, d, lora.get("o_proj"), reg),
            heads: h as i64,
            kv_heads: kvh as i64,
            head_dim: hd as i64,
        }
    }

    fn forward(
        &self,
        x: &Tensor, // [B, T, D]
        rope: &RopeTables,
        mask: &AttnMask,
        cache: Option<(&mut KvCache, usize)>,
        kernel: AttentionKernel,
        mode: Mode,
    ) -> Result<Tensor, ModelError> {
        let (b, t, _) = x.size3()?;
        let (h, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        // [B, T, heads * hd] -> [B, T, heads, hd] -> [B, heads, T, hd]
        let [q, k, v] = self.qkv.forward(x, mode);
        let q = q.view([b, t, h, hd]).transpose(1, 2);
        let k = k.view([b, t, kvh, hd]).transpose(1, 2);
        let v = v.view([b, t, kvh, hd]).transpose(1, 2);
        let (q, k) = (rope.apply(&q), rope.apply(&k));
        let (k, v) = match cache {
            Some((c, layer)) => c.store(layer, mask.start, &k, &v)?, // [B, kvh, Tk, hd]
            None => (k, v),
        };
        let scale = 1.0 / (hd as f64).sqrt();
        let y = match kernel {
            AttentionKernel::Sdpa => Tensor::f_scaled_dot_product_attention(
                &q,
                &k,
                &v,
                mask.allowed.as_ref(),
                0.0,
                mask.causal,
                scale,
                h != kvh,
            )?,
            // `Auto` is resolved by the model before any layer runs.
            AttentionKernel::Grouped | AttentionKernel::Auto => {
                grouped_attention(&q, &k, &v, mask.allowed.as_ref(), scale)?
            }
        };
        // [B, heads, T, hd] -> [B, T, heads * hd]
        let y = y.transpose(1, 2).reshape([b, t, h * hd]);
        Ok(self.o_proj.forward(&y, mode))
    }
}

/// Attention where the query heads of one KV group share that group's K/V without
/// repeating them: HF's `repeat_kv` maps query head `g * rep + r` to KV head `g`,
/// which is exactly the layout of `q` viewed as `[B, kvh, rep * T, hd]`.
fn grouped_attention(
    q: &Tensor, // [B, H, T, hd]
    k: &Tensor, // [B, kvh, Tk, hd]
    v: &Tensor, // [B, kvh, Tk, hd]
    allowed: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor, ModelError> {
    let (b, h, t, hd) = q.size4()?;
    let (kvh, tk) = (k.size()[1], k.size()[2]);
    let rep = h / kvh;
    let qg = q.reshape([b, kvh, rep * t, hd]);
    let scores = qg.matmul(&k.transpose(-2, -1)) * scale; // [B, kvh, rep*T, Tk]
    let scores = match allowed {
        Some(m) => scores
            .view([b, kvh, rep, t, tk])
            .f_masked_fill(&m.logical_not().unsqueeze(2), f64::NEG_INFINITY)? // m: [B|1, 1, 1, T, Tk]
            .view([b, kvh, rep * t, tk]),
        None => scores,
    };
    let probs = scores.softmax(-1, Kind::Float).to_kind(q.kind());
    // [B, kvh, rep*T, hd] -> [B, H, T, hd]
    Ok(probs.matmul(v).view([b, h, t, hd]))
}

#[derive(Debug)]
pub struct Mlp {
    /// gate_proj and up_proj.
    gate_up: FusedLinear<2>,
    down_proj: Linear,
}

impl Mlp {
    pub(crate) fn new(
        p: &nn::Path,
        cfg: &LlamaConfig,
        lora: &LoraFor,
        reg: &mut ParamRegistry,
    ) -> Self {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        let parts = [("gate_proj", i), ("up_proj", i)];
        Mlp {
            gate_up: FusedLinear::new(p, d, parts, |n| lora.get(n), reg),
            down_proj: Linear::new(&(p / "down_proj"), i, d, lora.get("down_proj"), reg),
        }
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let [gate, up] = self.gate_up.forward(x, mode);
        let gated = gate.silu() * up;
        self.down_proj.forward(&gated, mode)
    }
}

#[derive(Debug)]
pub struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    pub(crate) fn new(
        p: &nn::Path,
        cfg: &LlamaConfig,
        lora: &LoraFor,
        reg: &mut ParamRegistry,
    ) -> Self {
        let eps = cfg.rms_norm_eps;
        DecoderLayer {
            input_layernorm: RmsNorm::new(&(p / "input_layernorm"), cfg.hidden_size, eps, reg),
            self_attn: Attention::new(&(p / "self_attn"), cfg, lora, reg),
            post_attention_layernorm: RmsNorm::new(
                &(p / "post_attention_layernorm"),
                cfg.hidden_size,
                eps,
                reg,
            ),
            mlp: Mlp::new(&(p / "mlp"), cfg, lora, reg),
        }
    }

    pub(crate) fn forward(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        mask: &AttnMask,
        cache: Option<(&mut KvCache, usize)>,
        kernel: AttentionKernel,
        mode: Mode,
    ) -> Result<Tensor, ModelError> {
        let attn = self.self_attn.forward(
            &self.input_layernorm.forward(x),
            rope,
            mask,
            cache,
            kernel,
            mode,
        )?;
        let h = x + attn;
        let mlp = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&h), mode);
        Ok(h + mlp)
    }

    pub(crate) fn linears(&self) -> [&Linear; 7] {
        let (a, m) = (&self.self_attn, &self.mlp);
        let [q, k, v] = a.qkv.members();
        let [gate, up] = m.gate_up.members();
        [q, k, v, &a.o_proj, gate, up, &m.down_proj]
    }
}

/// Which LoRA config (if any) each short module name gets.
pub(crate) struct LoraFor<'a> {
    pub(crate) cfg: Option<&'a LoraConfig>,
    pub(crate) targets: HashSet<&'static str>,
}

impl LoraFor<'_> {
    fn get(&self, name: &str) -> Option<&LoraConfig> {
        self.cfg.filter(|_| self.targets.contains(name))
    }
}
