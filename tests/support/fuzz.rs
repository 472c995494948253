//! Byte-level mutations for the input fuzzers: start from a valid file and apply a few
//! edits that break it the way real files break (truncation, flipped bits, a length
//! or count field overwritten with a huge value, a chunk duplicated or spliced in).
//! Random bytes alone almost never get past a magic number or a JSON brace; mutated
//! seeds reach the deep paths. Each run is bounded: a case must finish within
//! [`CASE_LIMIT`], which is how a hang shows up as a failure instead of a stuck CI job.
#![allow(dead_code)] // each fuzz binary uses its own part of this module

use proptest::prelude::*;
use std::time::{Duration, Instant};

/// A case that takes longer than this counts as a hang.
pub const CASE_LIMIT: Duration = Duration::from_secs(5);

/// Values that sit on the edges of integer parsing and allocation checks.
const INTERESTING: [u64; 10] = [
    0,
    1,
    0x7f,
    0xff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 40,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

#[derive(Debug, Clone)]
pub enum Edit {
    /// Flip one bit of the byte at (position modulo length).
    Flip(usize, u8),
    /// Overwrite 4 or 8 little-endian bytes with an interesting value.
    Int(usize, bool, usize),
    /// Cut the file at this position.
    Truncate(usize),
    /// Insert these bytes.
    Insert(usize, Vec<u8>),
    /// Copy a chunk of the file to another place.
    Splice(usize, usize, usize),
    /// Delete a chunk.
    Delete(usize, usize),
}

pub fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(p, b)| Edit::Flip(p, b)),
        3 => (any::<usize>(), any::<bool>(), 0..INTERESTING.len()).prop_map(|(p, w, i)| Edit::Int(p, w, i)),
        1 => any::<usize>().prop_map(Edit::Truncate),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(p, b)| Edit::Insert(p, b)),
        1 => (any::<usize>(), any::<usize>(), 1usize..64).prop_map(|(a, b, n)| Edit::Splice(a, b, n)),
        1 => (any::<usize>(), 1usize..32).prop_map(|(p, n)| Edit::Delete(p, n)),
    ]
}

/// `seed` with `edits` applied in order (positions taken modulo the current length).
pub fn mutate(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for e in edits {
        let len = b.len().max(1);
        match e {
            Edit::Flip(p, bit) => {
                if let Some(x) = b.get_mut(p % len) {
                    *x ^= 1 << bit;
                }
            }
            Edit::Int(p, wide, i) => {
                let bytes = INTERESTING[*i].to_le_bytes();
                let n = if *wide { 8 } else { 4 };
                let at = p % len;
                for (k, v) in bytes.iter().take(n).enumerate() {
                    if let Some(x) = b.get_mut(at + k) {
                        *x = *v;
                    }
                }
            }
            Edit::Truncate(p) => b.truncate(p % len),
            Edit::Insert(p, bytes) => {
                let at = (p % len).min(b.len());
                b.splice(at..at, bytes.iter().copied());
            }
            Edit::Splice(from, to, n) => {
                let from = from % len;
                let chunk: Vec<u8> = b.iter().skip(from).take(*n).copied().collect();
                let at = (to % len).min(b.len());
                b.splice(at..at, chunk);
            }
            Edit::Delete(p, n) => {
                let at = (p % len).min(b.len());
                let end = (at + n).min(b.len());
                b.drain(at..end);
            }
        }
    }
    b
}

/// Cases per property: `default`, or `COE_FUZZ_CASES` for a longer hunt by hand
/// (`COE_FUZZ_CASES=20000 cargo test --test fuzz_models`).
pub fn cases(default: u32) -> u32 {
    std::env::var("COE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The most data memory a fuzz binary may hold. A reader that sizes an allocation by a
/// forged count then fails loudly (allocation failure) instead of driving a shared CI
/// machine into swap, which is how the block-count bug first showed itself.
const DATA_LIMIT: u64 = 4 << 30;

/// Runs `f` and fails the case when it took longer than [`CASE_LIMIT`].
pub fn bounded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    static GUARD: std::sync::Once = std::sync::Once::new();
    GUARD.call_once(|| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: get/setrlimit on a valid struct; only the soft limit is lowered.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_DATA, &mut lim) == 0 {
                lim.rlim_cur = lim.rlim_cur.min(DATA_LIMIT);
                libc::setrlimit(libc::RLIMIT_DATA, &lim);
            }
        }
    });
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    assert!(took < CASE_LIMIT, "{what} took {took:?}");
    out
}

/// A scratch file for one case, in the target's temp dir.
pub fn scratch_file(name: &str, bytes: &[u8]) -> tempfile::TempPath {
    let mut f = tempfile::Builder::new()
        .prefix(name)
        .tempfile_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    std::io::Write::write_all(&mut f, bytes).unwrap();
    f.into_temp_path()
}
