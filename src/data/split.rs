//! Seeded, reproducible splits by problem id (DESIGN §3): no problem appears in
//! two splits, and the same seed and ids always give the same split whatever
//! the input order.
use rand::SeedableRng;
use rand::seq::SliceRandom;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Split {
    Train,
    Valid,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Valid, Split::Test];
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        }
    }
}

/// Assigns each id to a split: 80% / 10% / 10%, each split non-empty when there
/// are at least three ids. Returns the split of `ids[i]` at position i.
pub fn split_ids(ids: &[&str], seed: u64) -> Vec<Split> {
    let mut sorted: Vec<&str> = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ SPLIT_SALT);
    sorted.shuffle(&mut rng);
    let n = sorted.len();
    let (mut n_valid, mut n_test) = (n / 10, n / 10);
    if n >= 3 {
        n_valid = n_valid.max(1);
        n_test = n_test.max(1);
    }
    let n_train = n - n_valid - n_test;
    let index: std::collections::HashMap<&str, usize> =
        sorted.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let of = |id: &str| {
        let pos = index.get(id).copied().unwrap_or(0);
        if pos < n_train {
            Split::Train
        } else if pos < n_train + n_valid {
            Split::Valid
        } else {
            Split::Test
        }
    };
    ids.iter().map(|id| of(id)).collect()
}

/// Keeps the split's random stream apart from the corruption streams of the same seed.
const SPLIT_SALT: u64 = 0x5EED_0000_5B11_7000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_disjoint_reproducible_and_order_free() {
        let ids: Vec<String> = (0..50).map(|i| format!("p{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let a = split_ids(&refs, 7);
        let mut rev = refs.clone();
        rev.reverse();
        let b = split_ids(&rev, 7);
        for (i, id) in refs.iter().enumerate() {
            let j = rev.iter().position(|r| r == id).unwrap();
            assert_eq!(a[i], b[j]);
        }
        let count = |s| a.iter().filter(|&&x| x == s).count();
        assert_eq!(
            (count(Split::Train), count(Split::Valid), count(Split::Test)),
            (40, 5, 5)
        );
        assert_ne!(a, split_ids(&refs, 8));
        let small = split_ids(&["a", "b", "c"], 0);
        for s in Split::ALL {
            assert!(small.contains(&s));
        }
    }
}
