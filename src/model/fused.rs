//! Projections that read the same input, run as one matrix product: q/k/v of the
//! attention and gate/up of the MLP.
//!
//! The members' frozen weights are row blocks of one `[Σ out, in]` tensor, registered
//! under their own Hugging Face names, so loading, folding adapters and restoring write
//! into the fused tensor and nothing else changes. A forward is then one GEMM for the
//! base (and one for its input gradient in training) instead of one per member, and,
//! when the members' adapters share a dropout-free input, one GEMM for all their `A`s.
//! Fewer, larger products: on a 2-core CPU they run closer to the GEMM peak, and on
//! CUDA they launch fewer kernels.

use tch::{Kind, Tensor, nn};

use crate::model::lora::{Linear, LoraConfig, Mode};
use crate::model::weights::ParamRegistry;

/// `N` member projections `(short name, out features)` sharing an input of `in` features.
#[derive(Debug)]
pub struct FusedLinear<const N: usize> {
    weight: Tensor, // [Σ out, in], frozen; member i's weight is rows off_i .. off_i + out_i
    members: [Linear; N],
    sizes: [i64; N],
}

impl<const N: usize> FusedLinear<N> {
    /// Registers each member under `p / name` (weight, and adapter when `lora(name)` gives
    /// a config), its weight a row block of the fused tensor.
    pub(crate) fn new<'a>(
        p: &nn::Path,
        in_dim: usize,
        parts: [(&str, usize); N],
        lora: impl Fn(&str) -> Option<&'a LoraConfig>,
        reg: &mut ParamRegistry,
    ) -> Self {
        let sizes = parts.map(|(_, o)| o as i64);
        let total: i64 = sizes.iter().sum();
        let weight = Tensor::zeros([total, in_dim as i64], (p.kind(), p.device()));
        let mut off = 0;
        let members = parts.map(|(name, o)| {
            let block = weight.narrow(0, off, o as i64);
            off += o as i64;
            Linear::with_weight(&(p / name), block, lora(name), reg)
        });
        FusedLinear {
            weight,
            members,
            sizes,
        }
    }

    pub(crate) fn members(&self) -> &[Linear; N] {
        &self.members
    }

    /// Each member's output, in the order of `parts`: `x Wᵢᵀ` (+ its adapter's delta).
    /// Outputs without an adapter are column blocks (views) of one product; the split
    /// (not `narrow`) makes the backward one concatenation of the members' gradients.
    pub(crate) fn forward(&self, x: &Tensor, mode: Mode) -> [Tensor; N] {
        let y = x.linear::<Tensor>(&self.weight, None);
        let mut split = y.split_with_sizes(self.sizes, -1).into_iter();
        // split_with_sizes returns exactly N blocks.
        let mut outs: [Tensor; N] = std::array::from_fn(|_| split.next().unwrap_or_default());
        if !mode.lora {
            return outs;
        }
        let adapted: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].adapter().is_some())
            .collect();
        let shared = adapted.len() > 1
            && adapted.iter().all(|&i| {
                self.members[i]
                    .adapter()
                    .is_some_and(|ad| !ad.needs_dropout(mode))
            });
        if shared {
            for (i, delta) in adapted.iter().zip(self.shared_deltas(x, &adapted)) {
                outs[*i] = &outs[*i] + delta;
            }
        } else {
            for &i in &adapted {
                if let Some(delta) = self.members[i].lora_delta(x, mode) {
                    outs[i] = &outs[i] + delta;
                }
            }
        }
        outs
    }

    /// The deltas of the `adapted` members from one product with their stacked `A`s
    /// (no dropout, so they all read the same input); the same values as each member's
    /// own `lora_delta`.
    fn shared_deltas(&self, x: &Tensor, adapted: &[usize]) -> Vec<Tensor> {
        let ads: Vec<_> = adapted
            .iter()
            .filter_map(|&i| self.members[i].adapter())
            .collect();
        let a = Tensor::cat(&ads.iter().map(|ad| &ad.a).collect::<Vec<_>>(), 0);
        let ranks: Vec<i64> = ads.iter().map(|ad| ad.a.size()[0]).collect();
        let low = x.to_kind(Kind::Float).linear::<Tensor>(&a, None); // [.., Σ r]
        low.split_with_sizes(&ranks, -1)
            .iter()
            .zip(&ads)
            .map(|(h, ad)| {
                (h * ad.scale)
                    .linear::<Tensor>(&ad.b, None)
                    .to_kind(x.kind())
            })
            .collect()
    }
}
