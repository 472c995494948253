//! The whole-episode RL update: an episode's turns scored in one pass over its
//! conversation give the same loss and adapter gradients as one pass per turn (within
//! 1e-5 relative, f32, tiny model), in fewer sequences.
use crate::common::{add_task, converse, tiny_with_adapters};
use coe::config::AdvantageMode;
use coe::eval::rollout::EpisodeResult;
use coe::policy::ModelPolicy;
use coe::policy::model::ModelPolicyConfig;
use coe::train::grpo::loss_sums;
use coe::train::rl::{TurnSample, turn_samples};
use coe::train::tokens::target_logprobs;
use tch::Tensor;

fn policy() -> ModelPolicy {
    // Non-zero adapters, so every adapter tensor gets a gradient.
    let loaded = tiny_with_adapters(7, 0.05);
    let mut cfg = ModelPolicyConfig::new(1.0, 1.0, 2048, 4);
    cfg.max_new_tokens = 16;
    ModelPolicy::new(loaded, cfg).unwrap()
}

/// Two groups of two 4-turn episodes, sampled from the policy, with rewards that give
/// every turn a non-zero advantage.
fn episodes(p: &mut ModelPolicy) -> Vec<EpisodeResult> {
    let n = 4;
    let histories = converse(p, &add_task("t", "return a - b"), n, 4, |turn, e| {
        format!("L1 def add(a, b):\nL2     return a - b\n***\nturn {turn} of {e}")
    });
    histories
        .into_iter()
        .enumerate()
        .map(|(e, history)| {
            let rewards: Vec<f64> = (0..4)
                .map(|t| ((e * 7 + t * 3) % 5) as f64 * 0.5 - 1.0)
                .collect();
            EpisodeResult {
                episode: e as u64,
                task_index: e / 2,
                task_id: "t".into(),
                sample: e % 2,
                solved: false,
                turns: 4,
                invalid: 0,
                solved_after: vec![false; 4],
                solved_at_start: false,
                infra_error: false,
                records: Vec::new(),
                rewards,
                history,
            }
        })
        .collect()
}

/// The update's loss (before the optimizer step) and the adapters' gradients.
fn loss_and_grads(p: &ModelPolicy, samples: &[TurnSample]) -> (f64, Vec<Tensor>) {
    let model = &p.loaded().model;
    let n: usize = samples.iter().map(|s| s.old.len()).sum();
    let seqs: Vec<_> = samples.iter().map(|s| &s.seq).collect();
    let new = target_logprobs(model, &seqs).unwrap();
    let old: Vec<f32> = samples.iter().flat_map(|s| s.old.iter().copied()).collect();
    let adv: Vec<f32> = samples
        .iter()
        .flat_map(|s| s.advantages.iter().copied())
        .collect();
    let old = Tensor::from_slice(&old);
    // A reference a little off the policy, so the KL term has a gradient too.
    let reference = new.detach() - 0.05;
    let (loss, _) = loss_sums(&new, &old, &reference, &Tensor::from_slice(&adv), 0.2, 0.1);
    let loss = loss / n as f64;
    loss.backward();
    let grads: Vec<Tensor> = model
        .lora_parameters()
        .map(|(_, t)| t.grad().copy())
        .collect();
    for (_, t) in model.lora_parameters() {
        let mut g = t.grad();
        let _ = g.zero_();
    }
    (loss.double_value(&[]), grads)
}

#[test]
fn whole_episode_update_equals_the_turn_by_turn_form() {
    let mut p = policy();
    let results = episodes(&mut p);
    let per_turn = turn_samples(&p, &results, 2, AdvantageMode::PerTurn, false).unwrap();
    let whole = turn_samples(&p, &results, 2, AdvantageMode::PerTurn, true).unwrap();
    let tokens = |s: &[TurnSample]| s.iter().map(|s| s.seq.ids.len()).sum::<usize>();
    assert_eq!(per_turn.len(), 16, "every turn has a non-zero advantage");
    assert_eq!(whole.len(), 4, "one sequence per episode");
    assert!(
        tokens(&whole) * 2 < tokens(&per_turn),
        "{} vs {}",
        tokens(&whole),
        tokens(&per_turn)
    );
    let (la, ga) = loss_and_grads(&p, &per_turn);
    let (lb, gb) = loss_and_grads(&p, &whole);
    assert!(
        (la - lb).abs() <= 1e-5 * la.abs().max(1e-6),
        "loss {la} vs {lb}"
    );
    for (a, b) in ga.iter().zip(&gb) {
        let scale = a.abs().max().double_value(&[]).max(1e-12);
        let diff = (a - b).abs().max().double_value(&[]);
        assert!(
            diff <= 1e-5 * scale,
            "gradient differs by {diff} (scale {scale})"
        );
    }
    assert!(ga.iter().all(|g| g.abs().max().double_value(&[]) > 0.0));
}
