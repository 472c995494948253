//! What the rollout loop reports after every round (one turn of every live episode), so a
//! long evaluation shows signs of life even when no episode ends before the turn cap.
//! A plain struct: the caller decides where it goes (a progress line, a run's log).
use crate::util::progress::clock;

/// The state of a rollout after one round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundProgress {
    /// The round just run: every live episode of the wave took its `turn`-th turn.
    pub turn: u32,
    pub max_turns: u32,
    /// The wave of `batch` episodes being run (from 1), of `waves`.
    pub wave: usize,
    pub waves: usize,
    /// Episodes still running after this round.
    pub live: usize,
    /// Episodes finished so far, of `total`.
    pub finished: usize,
    pub total: usize,
    /// Episodes, finished or live, whose latest state passes every test.
    pub solved: usize,
    /// Token ids sampled for this round's commands, and the round's wall time.
    pub tokens: usize,
    pub round_s: f64,
    pub elapsed_s: f64,
    /// Seconds left if every remaining round takes the mean round time so far.
    pub eta_s: f64,
}

impl RoundProgress {
    /// `[wave 1/2  ]turn 2/3  live 27  finished 0/27  solved 0  412 tok/s  elapsed 0m41s  ETA 0m20s`
    /// (the wave only when there are several).
    pub fn line(&self) -> String {
        let wave = if self.waves > 1 {
            format!("wave {}/{}  ", self.wave, self.waves)
        } else {
            String::new()
        };
        format!(
            "{wave}turn {}/{}  live {}  finished {}/{}  solved {}  {:.0} tok/s  elapsed {}  ETA {}",
            self.turn,
            self.max_turns,
            self.live,
            self.finished,
            self.total,
            self.solved,
            self.tokens as f64 / self.round_s.max(1e-9),
            clock(self.elapsed_s),
            clock(self.eta_s)
        )
    }
}

/// Rounds still to run at most after round `turn` of wave `wave`: the rest of this wave (none
/// once no episode is live) and every turn of the waves after it. Episodes that end early
/// make it an upper bound.
pub fn rounds_left(turn: u32, max_turns: u32, live: usize, wave: usize, waves: usize) -> u64 {
    let this_wave = if live == 0 {
        0
    } else {
        u64::from(max_turns.saturating_sub(turn))
    };
    this_wave + waves.saturating_sub(wave) as u64 * u64::from(max_turns)
}

/// Seconds left: `rounds_left` rounds at the mean time of the `rounds_done` so far.
pub fn eta_s(elapsed_s: f64, rounds_done: u64, rounds_left: u64) -> f64 {
    if rounds_done == 0 {
        return 0.0;
    }
    elapsed_s / rounds_done as f64 * rounds_left as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_is_the_rounds_left_at_the_mean_round_time() {
        // 2 of 3 turns of the first of 2 waves done in 40 s: 20 s a round, 1 + 3 rounds left.
        let left = rounds_left(2, 3, 27, 1, 2);
        assert_eq!(left, 4);
        assert_eq!(eta_s(40.0, 2, left), 80.0);
        // Every episode of the wave ended early: only the next wave is left.
        assert_eq!(rounds_left(1, 3, 0, 1, 2), 3);
        // The last round of the last wave.
        assert_eq!(rounds_left(3, 3, 0, 2, 2), 0);
        assert_eq!(eta_s(0.0, 0, 5), 0.0);
    }

    #[test]
    fn the_line_shows_turns_counts_rate_and_times() {
        let p = RoundProgress {
            turn: 2,
            max_turns: 3,
            wave: 1,
            waves: 1,
            live: 27,
            finished: 0,
            total: 27,
            solved: 1,
            tokens: 1200,
            round_s: 4.0,
            elapsed_s: 41.0,
            eta_s: 20.0,
        };
        assert_eq!(
            p.line(),
            "turn 2/3  live 27  finished 0/27  solved 1  300 tok/s  elapsed 0m41s  ETA 0m20s"
        );
        let p = RoundProgress {
            wave: 2,
            waves: 3,
            eta_s: 3725.0,
            ..p
        };
        assert!(p.line().starts_with("wave 2/3  turn 2/3  "), "{}", p.line());
        assert!(p.line().ends_with("ETA 1h02m"), "{}", p.line());
    }
}
