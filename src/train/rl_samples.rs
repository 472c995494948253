//! What an RL update trains on: each episode's turns with their advantages, as token
//! sequences with the sampled ids marked and the sampled log-probabilities beside them.
//!
//! A turn's prompt is the previous turn's prompt, its reply (the sampled ids, spliced in) and
//! the new observation, so an episode is one growing sequence: with `whole_episode`, the
//! turns whose prompt and reply are a prefix of the episode's last trained turn are marked
//! in that one sequence and scored in one forward pass, each with its own advantage on its
//! own reply tokens — the same log-probabilities as one pass per turn under causal
//! attention, at a fraction of the cost (O(turns) tokens instead of O(turns²)). A turn whose
//! context was cut (old turns dropped past the context) is not a prefix and gets its own
//! pass. Every rebuilt prompt is checked to hold the earlier replies' sampled ids verbatim.
use super::error::{TrainResult, ensure};
use super::grpo::{episode_advantages, group_advantages, returns};
use super::tokens::Sequence;
use crate::config::AdvantageMode;
use crate::eval::rollout::EpisodeResult;
use crate::policy::ModelPolicy;

/// Commands to train on in one sequence: the trained tokens' sampled log-probabilities and
/// advantages, in sequence order.
#[derive(Debug, Clone)]
pub struct TurnSample {
    pub seq: Sequence,
    /// The sampled log-probabilities of the trained tokens (the behaviour policy).
    pub old: Vec<f32>,
    /// Each trained token's advantage (its turn's).
    pub advantages: Vec<f32>,
}

/// One turn with a non-zero advantage: its prompt and reply ids, sampled log-probabilities.
struct Turn<'a> {
    prompt: Vec<u32>,
    reply: &'a [u32],
    old: &'a [f32],
    advantage: f64,
}

impl Turn<'_> {
    fn full_len(&self) -> usize {
        self.prompt.len() + self.reply.len()
    }

    /// Whether `ids` starts with this turn's prompt and reply.
    fn is_prefix_of(&self, ids: &[u32]) -> bool {
        ids.len() >= self.full_len()
            && ids.starts_with(&self.prompt)
            && ids[self.prompt.len()..self.full_len()] == *self.reply
    }
}

/// The samples of an update, group by group; see the module header.
pub fn turn_samples(
    policy: &ModelPolicy,
    results: &[EpisodeResult],
    group_size: usize,
    mode: AdvantageMode,
    whole_episode: bool,
) -> TrainResult<Vec<TurnSample>> {
    let mut out = Vec::new();
    for group in results.chunks(group_size.max(1)) {
        let kept: Vec<&EpisodeResult> = group
            .iter()
            .filter(|e| !e.infra_error && !e.solved_at_start && !e.history.is_empty())
            .collect();
        let rets: Vec<Vec<f64>> = kept.iter().map(|e| returns(&e.rewards)).collect();
        let advs = match mode {
            AdvantageMode::PerTurn => group_advantages(&rets),
            AdvantageMode::Episode => episode_advantages(&rets),
        };
        for (e, adv) in kept.iter().zip(advs) {
            let turns = episode_turns(policy, e, &adv)?;
            if whole_episode {
                out.extend(merge(turns));
            } else {
                out.extend(turns.into_iter().map(|t| sample(&t.prompt, &[&t])));
            }
        }
    }
    Ok(out)
}

/// The turns of `e` with a non-zero advantage, prompts rebuilt and checked.
fn episode_turns<'a>(
    policy: &ModelPolicy,
    e: &'a EpisodeResult,
    adv: &[f64],
) -> TrainResult<Vec<Turn<'a>>> {
    let mut turns = Vec::new();
    for (t, a) in adv.iter().enumerate() {
        if *a == 0.0 {
            continue; // no signal: nothing to train
        }
        let (Some((user, reply)), Some(earlier)) = (e.history.get(t), e.history.get(..t)) else {
            continue;
        };
        ensure!(
            !reply.token_ids.is_empty() && reply.token_ids.len() == reply.logprobs.len(),
            "episode {} turn {}: the reply carries {} ids and {} log-probabilities",
            e.episode,
            t + 1,
            reply.token_ids.len(),
            reply.logprobs.len()
        );
        let prompt = policy.prompt_from(earlier, user)?;
        for (k, range) in &prompt.replies {
            let spliced = prompt.ids.get(range.clone()).unwrap_or_default();
            let sampled = earlier
                .get(*k)
                .map(|(_, p)| p.token_ids.as_slice())
                .unwrap_or_default();
            ensure!(
                spliced == sampled,
                "episode {} turn {}: the prompt does not hold reply {}'s sampled ids verbatim",
                e.episode,
                t + 1,
                k + 1
            );
        }
        turns.push(Turn {
            prompt: prompt.ids,
            reply: &reply.token_ids,
            old: &reply.logprobs,
            advantage: *a,
        });
    }
    Ok(turns)
}

/// Groups turns into as few sequences as the prefix rule allows: each sequence is the prompt
/// and reply of its last turn, holding every earlier turn that is a prefix of it.
fn merge(turns: Vec<Turn<'_>>) -> Vec<TurnSample> {
    // Latest first: a later turn's sequence can hold earlier ones, never the reverse.
    let mut groups: Vec<(Vec<u32>, Vec<&Turn<'_>>)> = Vec::new();
    for t in turns.iter().rev() {
        match groups.iter_mut().find(|(ids, _)| t.is_prefix_of(ids)) {
            Some((_, members)) => members.push(t),
            None => {
                let mut ids = t.prompt.clone();
                ids.extend_from_slice(t.reply);
                groups.push((ids, vec![t]));
            }
        }
    }
    groups
        .into_iter()
        .rev()
        .map(|(ids, mut members)| {
            members.reverse(); // sequence order
            sample_of(ids, &members)
        })
        .collect()
}

/// One turn's own sequence: its prompt and reply.
fn sample(prompt: &[u32], turns: &[&Turn<'_>]) -> TurnSample {
    let mut ids = prompt.to_vec();
    if let Some(t) = turns.first() {
        ids.extend_from_slice(t.reply);
    }
    sample_of(ids, turns)
}

/// `ids` with each of `turns` (in sequence order, each a prefix of `ids`) marked.
fn sample_of(ids: Vec<u32>, turns: &[&Turn<'_>]) -> TurnSample {
    let mut trained = vec![false; ids.len()];
    let (mut old, mut advantages) = (Vec::new(), Vec::new());
    for t in turns {
        trained[t.prompt.len()..t.full_len()].fill(true);
        old.extend_from_slice(t.old);
        advantages.extend(std::iter::repeat_n(t.advantage as f32, t.reply.len()));
    }
    TurnSample {
        seq: Sequence { ids, trained },
        old,
        advantages,
    }
}
