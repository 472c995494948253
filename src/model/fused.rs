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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn lora(dropout: f64) -> LoraConfig {
        LoraConfig {
            r: 3,
            alpha: 5.0, // scale 5/3: not a power of two, so rounding differences would show
            dropout,
            targets: vec!["all-linear".into()],
        }
    }

    /// A fused q/k/v over random weights and adapters (B non-zero); k has no adapter.
    fn fused(vs: &nn::VarStore, cfg: &LoraConfig) -> FusedLinear<3> {
        let mut reg = ParamRegistry::new(&vs.root());
        let f = FusedLinear::new(
            &vs.root(),
            8,
            [("q_proj", 6), ("k_proj", 4), ("v_proj", 4)],
            |n| (n != "k_proj").then_some(cfg),
            &mut reg,
        );
        tch::manual_seed(1);
        let _guard = tch::no_grad_guard();
        for (_, t) in reg.base().chain(reg.lora()) {
            t.shallow_clone()
                .copy_(&Tensor::randn(t.size(), (Kind::Float, Device::Cpu)));
        }
        f
    }

    #[test]
    fn one_product_equals_each_member_alone_in_values_and_adapter_gradients() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = lora(0.0);
        let f = fused(&vs, &cfg);
        let x = Tensor::randn([2, 5, 8], (Kind::Float, Device::Cpu));
        let mode = Mode {
            lora: true,
            train: true,
        };
        let grads = |outs: &[Tensor]| -> Vec<Tensor> {
            let loss: Tensor = outs
                .iter()
                .enumerate()
                .map(|(i, o)| (o * (i as f64 + 1.0)).sin().sum(Kind::Float))
                .sum();
            loss.backward();
            let g = vs
                .trainable_variables()
                .iter()
                .map(|t| t.grad().copy())
                .collect();
            for t in vs.trainable_variables() {
                let _ = t.grad().zero_();
            }
            g
        };
        let together = f.forward(&x, mode);
        let g_together = grads(&together);
        let alone: Vec<Tensor> = f.members().iter().map(|m| m.forward(&x, mode)).collect();
        let g_alone = grads(&alone);
        // Relative to the largest magnitude: the values (other tests share torch's generator,
        // so they differ run to run) reach tens, where f32 rounding alone is ~1e-5.
        let rel = |a: &Tensor, b: &Tensor| {
            let scale = a.abs().max().double_value(&[]).max(1e-30);
            (a - b).abs().max().double_value(&[]) / scale
        };
        for (a, b) in together.iter().zip(&alone) {
            let diff = rel(a, b);
            assert!(diff < 1e-6, "outputs differ by {diff} relative");
        }
        assert_eq!(g_together.len(), 4, "A and B of q and v");
        for (a, b) in g_together.iter().zip(&g_alone) {
            let diff = rel(a, b);
            assert!(diff < 1e-5, "gradients differ by {diff} relative");
            assert!(a.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        }
        // Adapters off: the base products only.
        let off = Mode {
            lora: false,
            train: false,
        };
        let base = f.forward(&x, off);
        let [q, _, _] = f.members();
        let want = x.linear::<Tensor>(q.weight(), None);
        assert_eq!(base[0].size(), want.size());
        assert!((&base[0] - want).abs().max().double_value(&[]) < 1e-5);
    }

    #[test]
    fn members_weights_are_blocks_of_the_fused_tensor() {
        let vs = nn::VarStore::new(Device::Cpu);
        let f = fused(&vs, &lora(0.1));
        let [_, k, _] = f.members();
        let _guard = tch::no_grad_guard();
        let _ = k.weight().shallow_clone().fill_(7.0);
        let rows = f.weight.narrow(0, 6, 4);
        assert_eq!(rows.min().double_value(&[]), 7.0);
        assert_eq!(rows.max().double_value(&[]), 7.0);
        assert!(f.weight.narrow(0, 0, 6).max().double_value(&[]) < 7.0);
    }
}
