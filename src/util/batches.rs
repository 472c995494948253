//! Consecutive micro-batches of rows within a row count and a padded-token budget: the
//! split SFT, the RL update, the model policy's decoding and `coe serve` all make.

/// Splits rows of lengths `lens` into consecutive micro-batches of at most `max_rows` rows
/// and `max_tokens` padded tokens (rows × longest), at least one row each.
pub fn micro_batches(
    lens: &[usize],
    max_rows: usize,
    max_tokens: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < lens.len() {
        let mut end = start + 1;
        let mut width = lens.get(start).copied().unwrap_or(0);
        while let Some(&next) = lens.get(end) {
            let w = width.max(next);
            if end - start >= max_rows || w * (end + 1 - start) > max_tokens {
                break;
            }
            width = w;
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_batches_respect_rows_and_tokens() {
        assert_eq!(micro_batches(&[10, 10, 10, 10], 2, 1000), vec![0..2, 2..4]);
        assert_eq!(micro_batches(&[10, 30, 10], 8, 60), vec![0..2, 2..3]);
        assert_eq!(
            micro_batches(&[100], 8, 10),
            vec![0..1],
            "an oversize row goes alone"
        );
        assert!(micro_batches(&[], 4, 10).is_empty());
    }
}
