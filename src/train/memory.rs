//! Will an SFT step fit in memory? Checked once before the first step, so a batch that is too
//! big is refused with a message naming the setting to lower, instead of the kernel's OOM
//! killer ending the process without a word many minutes in.
//!
//! Memory beyond the loaded model is dominated by the activations autograd keeps for the
//! backward pass (LoRA trains only adapters, but every layer's inputs are still kept), which
//! grow with the padded tokens of the largest micro-batch. The estimate counts the tensors a
//! layer saves per token; its per-token figure was checked against the peak resident set of
//! `coe train sft` on the default model (results/2026-12-06-lean-sft-cpu.md). Only the CPU's
//! available memory is known here; on CUDA a failed allocation is caught instead.
use super::error::{TrainError, TrainResult};
use super::tokens::HEAD_CHUNK;
use crate::config::SftSection;
use crate::model::llama::Llama;

/// What the largest micro-batch of a run needs, and what the machine has.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPlan {
    /// Padded tokens of the largest micro-batch the data and settings can make.
    pub worst_tokens: usize,
    /// Activation bytes kept per token for the backward pass.
    pub per_token: u64,
    /// Bytes the step needs beyond the loaded model.
    pub needed: u64,
    /// Bytes the process may still use (`None`: unknown, not checked).
    pub available: Option<u64>,
    pub max_batch_tokens: usize,
    pub batch_size: usize,
}

/// The plan of an SFT run of `model` over examples of lengths `lens` with the settings `s`,
/// against the memory available now.
pub fn plan(model: &Llama, lens: &[usize], s: &SftSection) -> MemoryPlan {
    let available = if model.device().is_cuda() {
        None
    } else {
        available_bytes()
    };
    plan_with(model, lens, s, available)
}

/// [`plan`] against a given amount of available memory.
pub fn plan_with(
    model: &Llama,
    lens: &[usize],
    s: &SftSection,
    available: Option<u64>,
) -> MemoryPlan {
    let cfg = model.config();
    let elt = model.kind().elt_size_in_bytes() as u64;
    let (d, i) = (cfg.hidden_size as u64, cfg.intermediate_size as u64);
    let kv = (cfg.kv_heads() * cfg.head_dim()) as u64;
    let adapted = model.lora_config().map_or(0, |l| {
        l.resolved_targets().map_or(0, |t| t.len() as u64) * u64::from(l.dropout > 0.0)
    });
    // Per layer and token: the residual, norm inputs and outputs, q/k/v after RoPE and the
    // attention output (flash keeps no scores), the SwiGLU's gate, up, activation and product
    // (I-sized), plus a dropped-out copy of each adapted linear's input.
    let saved = 10 * d + 4 * kv + 5 * i + adapted * (d + i) / 2;
    // Every layer's, plus about three layers' worth of transient gradients while the
    // backward pass runs.
    let per_token = saved * elt * (cfg.num_hidden_layers as u64 + 3);
    let worst_tokens = worst_micro_batch(lens, s.batch_size, s.max_batch_tokens);
    MemoryPlan {
        worst_tokens,
        per_token,
        needed: worst_tokens as u64 * per_token + head_bytes(cfg.vocab_size),
        available,
        max_batch_tokens: s.max_batch_tokens,
        batch_size: s.batch_size,
    }
}

impl MemoryPlan {
    /// Refuses a plan that needs more than is available, naming the setting to lower.
    pub fn check(&self) -> TrainResult<()> {
        let Some(available) = self.available else {
            return Ok(());
        };
        if self.needed <= available {
            return Ok(());
        }
        let gb = |b: u64| b as f64 / 1e9;
        let fits = available
            .saturating_sub(self.needed - self.worst_tokens as u64 * self.per_token)
            / self.per_token.max(1);
        Err(TrainError::Invalid(format!(
            "sft.max_batch_tokens = {} with sft.batch_size = {} makes micro-batches of up to {} padded tokens, which need about {:.1} GB ({:.2} MB per token) but {:.1} GB are available: lower sft.max_batch_tokens (about {} would fit; steps keep their size, split into more micro-batches)",
            self.max_batch_tokens,
            self.batch_size,
            self.worst_tokens,
            gb(self.needed),
            self.per_token as f64 / 1e6,
            gb(available),
            fits,
        )))
    }
}

/// The vocabulary projection of one chunk: f32 logits, their log-softmax and its gradient.
fn head_bytes(vocab: usize) -> u64 {
    3 * HEAD_CHUNK as u64 * vocab as u64 * 4
}

/// Padded tokens of the largest micro-batch [`crate::util::batches::micro_batches`] can make from
/// sequences of lengths `lens` at `max_rows` rows and `max_tokens` tokens: rows of the
/// longest sequence, as many as fit, and never less than that sequence alone.
pub fn worst_micro_batch(lens: &[usize], max_rows: usize, max_tokens: usize) -> usize {
    let longest = lens.iter().copied().max().unwrap_or(0);
    let rows = (max_tokens / longest.max(1)).clamp(1, max_rows.max(1));
    rows * longest
}

/// Memory this process may still take: the kernel's `MemAvailable`, capped by the cgroup's
/// limit where one is set.
fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    let mut avail = kb * 1024;
    let read = |f: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{f}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    if let (Some(max), Some(current)) = (read("memory.max"), read("memory.current")) {
        avail = avail.min(max.saturating_sub(current));
    }
    Some(avail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::LlamaConfig;
    use crate::model::lora::LoraConfig;

    #[test]
    fn worst_micro_batch_is_rows_of_the_longest_sequence() {
        assert_eq!(worst_micro_batch(&[100, 50], 8, 1000), 800);
        assert_eq!(worst_micro_batch(&[100, 50], 8, 350), 300);
        assert_eq!(worst_micro_batch(&[100], 8, 10), 100, "one row at least");
        assert_eq!(worst_micro_batch(&[], 8, 10), 0);
    }

    #[test]
    fn a_batch_that_cannot_fit_is_refused_naming_the_setting() {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let lora = LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.05,
            targets: vec!["all-linear".into()],
        };
        let model = Llama::new(&vs.root(), &LlamaConfig::tiny(64), Some(&lora)).unwrap();
        let s = SftSection {
            batch_size: 8,
            max_batch_tokens: 4096,
            ..SftSection::default()
        };
        let lens = [2048, 1000, 30];
        let p = plan_with(&model, &lens, &s, Some(1 << 40));
        assert_eq!(p.worst_tokens, 4096);
        assert!(p.check().is_ok());
        assert!(
            plan_with(&model, &lens, &s, None).check().is_ok(),
            "unknown: not checked"
        );
        let small = plan_with(&model, &lens, &s, Some(p.needed - 1));
        let msg = small.check().unwrap_err().to_string();
        assert!(
            msg.starts_with("sft.max_batch_tokens = 4096 with sft.batch_size = 8 makes micro-batches of up to 4096 padded tokens"),
            "{msg}"
        );
        assert!(
            msg.contains("lower sft.max_batch_tokens (about 4095 would fit"),
            "{msg}"
        );
    }
}
