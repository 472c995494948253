//! The per-turn reward of DESIGN §2.3 as a pure function, and returns.
use crate::config::RewardSection;

/// What happened on one turn, as far as the reward cares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnFacts {
    /// The command did not parse or could not be applied.
    pub invalid: bool,
    /// The state passes every test now and never did before in this episode.
    pub first_solve: bool,
    /// This is the last turn and the episode ends by the turn cap, not by EXIT.
    pub capped: bool,
}

/// Sum of the configured weights for the facts that hold.
pub fn turn_reward(w: &RewardSection, f: TurnFacts) -> f64 {
    let mut r = 0.0;
    if f.first_solve {
        r += w.solved;
    }
    if f.invalid {
        r += w.invalid;
    }
    if f.capped {
        r += w.turn_cap;
    }
    r
}

/// Undiscounted returns: `G_t = sum_{u >= t} r_u`.
pub fn returns(rewards: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; rewards.len()];
    let mut acc = 0.0;
    for (i, r) in rewards.iter().enumerate().rev() {
        acc += r;
        out[i] = acc;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_add_up() {
        let w = RewardSection::default();
        let f = |invalid, first_solve, capped| TurnFacts {
            invalid,
            first_solve,
            capped,
        };
        assert_eq!(turn_reward(&w, f(false, false, false)), 0.0);
        assert_eq!(turn_reward(&w, f(false, true, false)), 1.0);
        assert_eq!(turn_reward(&w, f(true, false, false)), -0.5);
        assert_eq!(turn_reward(&w, f(true, false, true)), -1.0);
        assert_eq!(turn_reward(&w, f(false, true, true)), 0.5);
        let custom = RewardSection {
            solved: 2.0,
            invalid: -0.25,
            turn_cap: 0.0,
        };
        assert_eq!(turn_reward(&custom, f(true, true, true)), 1.75);
    }

    #[test]
    fn returns_are_suffix_sums() {
        assert_eq!(returns(&[0.0, -0.5, 1.0, 0.0]), vec![0.5, 0.5, 1.0, 0.0]);
        assert!(returns(&[]).is_empty());
    }
}
