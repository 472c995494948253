//! Order statistics over timing samples.

/// Median and p99 (nearest rank) of samples in milliseconds; (0, 0) when empty.
pub fn median_p99(samples: &mut [f64]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let i = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i]
    };
    (rank(0.5), rank(0.99))
}

#[cfg(test)]
mod tests {
    #[test]
    fn nearest_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(super::median_p99(&mut v), (50.0, 99.0));
        assert_eq!(super::median_p99(&mut [3.0]), (3.0, 3.0));
        assert_eq!(super::median_p99(&mut []), (0.0, 0.0));
    }
}
