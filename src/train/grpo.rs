//! The maths of the paper's GRPO variant (DESIGN §5), as small pure functions with tests on
//! hand-computed numbers: undiscounted returns per turn, advantages normalised across a group
//! at the same turn index, the PPO-clipped surrogate and the KL penalty to the reference
//! policy, per command token. The tensor form used in training is checked against the
//! scalar form.
use tch::{Kind, Tensor};

/// Below this spread a group's returns count as equal: every advantage is zero.
pub const MIN_STD: f64 = 1e-6;

/// Undiscounted return from each turn on: `R_t = Σ_{t' ≥ t} r_t'`.
pub fn returns(rewards: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; rewards.len()];
    let mut acc = 0.0;
    for (slot, r) in out.iter_mut().zip(rewards).rev() {
        acc += r;
        *slot = acc;
    }
    out
}

/// Per-turn advantages for one group of episodes of the same task: at each turn index the
/// returns of the episodes that reached it are normalised to zero mean and unit (population)
/// standard deviation. A turn index reached by one episode only, or where all returns are
/// equal, gets zero advantage.
pub fn group_advantages(group_returns: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let longest = group_returns.iter().map(Vec::len).max().unwrap_or(0);
    let mut out: Vec<Vec<f64>> = group_returns.iter().map(|r| vec![0.0; r.len()]).collect();
    for t in 0..longest {
        let at_t: Vec<f64> = group_returns
            .iter()
            .filter_map(|r| r.get(t).copied())
            .collect();
        let n = at_t.len() as f64;
        let mean = at_t.iter().sum::<f64>() / n;
        let std = (at_t.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
        if std < MIN_STD {
            continue;
        }
        for (adv, ret) in out.iter_mut().zip(group_returns) {
            if let (Some(a), Some(r)) = (adv.get_mut(t), ret.get(t)) {
                *a = (r - mean) / std;
            }
        }
    }
    out
}

/// Episode-level advantages (the plain GRPO form, an alternative to the paper's per-turn
/// one): each episode's whole return, normalised to zero mean and unit (population) standard
/// deviation across the group, given to every one of its turns. Zero spread gives zero.
pub fn episode_advantages(group_returns: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let totals: Vec<f64> = group_returns
        .iter()
        .map(|r| r.first().copied().unwrap_or(0.0))
        .collect();
    let n = totals.len().max(1) as f64;
    let mean = totals.iter().sum::<f64>() / n;
    let std = (totals.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    group_returns
        .iter()
        .zip(&totals)
        .map(|(r, total)| {
            let a = if std < MIN_STD {
                0.0
            } else {
                (total - mean) / std
            };
            vec![a; r.len()]
        })
        .collect()
}

/// The clipped surrogate of one token: `min(ρ·A, clip(ρ, 1−ε, 1+ε)·A)`, `ρ = e^{new−old}`.
pub fn clipped_surrogate(logp_new: f64, logp_old: f64, adv: f64, eps: f64) -> f64 {
    let ratio = (logp_new - logp_old).exp();
    (ratio * adv).min(ratio.clamp(1.0 - eps, 1.0 + eps) * adv)
}

/// The per-token KL estimate to the reference (Schulman's k3, always ≥ 0):
/// `e^{ref−new} − (ref−new) − 1`.
pub fn kl_k3(logp_new: f64, logp_ref: f64) -> f64 {
    let d = logp_ref - logp_new;
    d.exp() - d - 1.0
}

/// The loss of one token: `−(surrogate − β·KL)`.
pub fn token_loss(
    logp_new: f64,
    logp_old: f64,
    logp_ref: f64,
    adv: f64,
    eps: f64,
    beta: f64,
) -> f64 {
    -(clipped_surrogate(logp_new, logp_old, adv, eps) - beta * kl_k3(logp_new, logp_ref))
}

/// The same loss on tensors of token log-probabilities `[N]` (`new` carries the gradient):
/// returns (sum of token losses, sum of token KLs), so micro-batches add up and the caller
/// divides by the number of tokens in the whole update.
pub fn loss_sums(
    new: &Tensor,
    old: &Tensor,
    reference: &Tensor,
    adv: &Tensor,
    eps: f64,
    beta: f64,
) -> (Tensor, Tensor) {
    let ratio = (new - old).exp();
    let unclipped = &ratio * adv;
    let clipped = ratio.clamp(1.0 - eps, 1.0 + eps) * adv;
    let surrogate = unclipped.minimum(&clipped);
    let d = reference - new;
    let kl = d.exp() - &d - 1.0;
    let loss = -(surrogate - &kl * beta);
    (loss.sum(Kind::Float), kl.detach().sum(Kind::Float))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn returns_are_suffix_sums() {
        assert_eq!(returns(&[0.0, -0.5, 1.0]), vec![0.5, 0.5, 1.0]);
        assert_eq!(returns(&[]), Vec::<f64>::new());
    }

    #[test]
    fn advantages_normalise_per_turn_index() {
        // Turn 0 returns 1, 0, 1, 0: mean 0.5, std 0.5 -> ±1.
        // Turn 1 is reached by episodes 0 and 1 only: 1 and -0.5, mean 0.25, std 0.75 -> ±1.
        // Turn 2 by episode 1 alone -> 0.
        let g = vec![vec![1.0, 1.0], vec![0.0, -0.5, 0.0], vec![1.0], vec![0.0]];
        let a = group_advantages(&g);
        assert_eq!(a[0], vec![1.0, 1.0]);
        assert_eq!(a[1], vec![-1.0, -1.0, 0.0]);
        assert_eq!(a[2], vec![1.0]);
        assert_eq!(a[3], vec![-1.0]);
    }

    #[test]
    fn episode_advantages_give_every_turn_the_episode_score() {
        // Totals 1, 0.5, 1, -1: mean 0.375, std sqrt((0.390625 + 0.015625 + 0.390625
        // + 1.890625) / 4) = sqrt(0.671875).
        let g = vec![
            vec![1.0, 1.0],
            vec![0.5, 0.5, 1.0],
            vec![1.0],
            vec![-1.0, -0.5],
        ];
        let a = episode_advantages(&g);
        let std = 0.671875f64.sqrt();
        assert!(close(a[0][0], 0.625 / std) && close(a[0][1], 0.625 / std));
        assert_eq!(a[1].len(), 3);
        assert!(a[1].iter().all(|&x| close(x, 0.125 / std)));
        assert!(close(a[3][1], -1.375 / std));
        assert_eq!(
            episode_advantages(&[vec![1.0, 1.0], vec![1.0]]),
            vec![vec![0.0, 0.0], vec![0.0]]
        );
        assert!(episode_advantages(&[]).is_empty());
    }

    #[test]
    fn zero_spread_gives_zero_advantage() {
        let a = group_advantages(&[vec![1.0, 1.0], vec![1.0, 1.0]]);
        assert_eq!(a, vec![vec![0.0, 0.0], vec![0.0, 0.0]]);
        assert!(group_advantages(&[]).is_empty());
    }

    #[test]
    fn surrogate_clips_only_in_the_direction_of_the_advantage() {
        let (eps, ln) = (0.2, f64::ln);
        // ρ = 1.5, A = 2: clipped to 1.2 · 2.
        assert!(close(clipped_surrogate(ln(1.5), 0.0, 2.0, eps), 2.4));
        // ρ = 1.5, A = -2: min(-3, -2.4) = -3 (no clipping that would help).
        assert!(close(clipped_surrogate(ln(1.5), 0.0, -2.0, eps), -3.0));
        // ρ = 0.5, A = -2: min(-1, -1.6) = -1.6.
        assert!(close(clipped_surrogate(ln(0.5), 0.0, -2.0, eps), -1.6));
        // ρ = 1: the advantage itself.
        assert!(close(clipped_surrogate(-0.7, -0.7, 0.3, eps), 0.3));
    }

    #[test]
    fn kl_is_zero_at_equality_and_positive_elsewhere() {
        assert!(close(kl_k3(-1.0, -1.0), 0.0));
        // ref - new = 1: e - 1 - 1.
        assert!(close(kl_k3(-2.0, -1.0), std::f64::consts::E - 2.0));
        assert!(kl_k3(-1.0, -3.0) > 0.0);
    }

    #[test]
    fn tensor_loss_matches_the_scalar_form() {
        let new = [-0.5, -1.2, -0.1, -2.0];
        let old = [-0.6, -0.9, -0.1, -2.5];
        let refr = [-0.4, -1.5, -0.3, -2.2];
        let adv = [1.0, -0.5, 0.0, 2.0];
        let (eps, beta) = (0.2, 0.01);
        let t = |v: &[f64]| Tensor::from_slice(v).to_kind(Kind::Float);
        let (loss, kl) = loss_sums(&t(&new), &t(&old), &t(&refr), &t(&adv), eps, beta);
        let mut want_loss = 0.0;
        let mut want_kl = 0.0;
        for i in 0..4 {
            want_loss += token_loss(new[i], old[i], refr[i], adv[i], eps, beta);
            want_kl += kl_k3(new[i], refr[i]);
        }
        assert!((loss.double_value(&[]) - want_loss).abs() < 1e-5);
        assert!((kl.double_value(&[]) - want_kl).abs() < 1e-5);
    }
}
