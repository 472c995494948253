//! Evaluation metrics (DESIGN §5): the unbiased pass@k estimator, the solve rate
//! against the turn budget, mean turns and the invalid-command rate. Pure
//! functions over episode outcomes; infra-error episodes are excluded by callers.

/// Unbiased pass@k for one task with `n` samples of which `c` are correct:
/// `1 - C(n-c, k) / C(n, k)`, computed as a running product so it never overflows.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    if k == 0 || n == 0 || k > n {
        return 0.0;
    }
    if n - c < k {
        return 1.0;
    }
    // C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
    let mut prod = 1.0;
    for i in (n - c + 1)..=n {
        prod *= 1.0 - k as f64 / i as f64;
    }
    1.0 - prod
}

/// Mean pass@k over tasks, each given as (n, c).
pub fn mean_pass_at_k(per_task: &[(usize, usize)], k: usize) -> f64 {
    if per_task.is_empty() {
        return 0.0;
    }
    per_task
        .iter()
        .map(|&(n, c)| pass_at_k(n, c, k))
        .sum::<f64>()
        / per_task.len() as f64
}

/// Solve rate if the turn budget were t, for t = 1..=max_turns: an episode counts
/// when the state after turn min(t, its last turn) passed every test.
pub fn turn_curve(solved_after: &[Vec<bool>], max_turns: u32) -> Vec<f64> {
    (1..=max_turns as usize)
        .map(|t| {
            if solved_after.is_empty() {
                return 0.0;
            }
            let hits = solved_after
                .iter()
                .filter(|s| match s.len() {
                    0 => false,
                    len => s[t.min(len) - 1],
                })
                .count();
            hits as f64 / solved_after.len() as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn pass_at_k_matches_hand_computed_values() {
        assert!(close(pass_at_k(4, 0, 1), 0.0));
        assert!(close(pass_at_k(4, 4, 1), 1.0));
        assert!(close(pass_at_k(4, 1, 1), 0.25));
        assert!(close(pass_at_k(4, 1, 4), 1.0));
        // 1 - C(3,2)/C(4,2) = 1 - 3/6
        assert!(close(pass_at_k(4, 1, 2), 0.5));
        // 1 - C(8,4)/C(10,4) = 1 - 70/210
        assert!(close(pass_at_k(10, 2, 4), 1.0 - 70.0 / 210.0));
        assert!(close(pass_at_k(3, 1, 5), 0.0));
        assert!(close(mean_pass_at_k(&[(4, 1), (4, 0)], 1), 0.125));
    }

    #[test]
    fn turn_curve_holds_the_last_state_after_an_early_end() {
        let eps = vec![
            vec![false, true],        // solved at turn 2, then EXIT
            vec![true, false, false], // solved, then broken
            vec![false],
        ];
        let c = turn_curve(&eps, 4);
        assert_eq!(c, vec![1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]);
        assert_eq!(
            turn_curve(&[vec![false, false, true]], 3),
            vec![0.0, 0.0, 1.0]
        );
    }
}
