//! Fuzzing the binary model readers: GGUF (the container, every tensor's
//! dequantisation and the Llama view on top) and safetensors. A model file is
//! untrusted input: whatever its bytes, reading it must return (no panic, no hang,
//! no allocation sized by a forged count) and an error must name the file.
//! Seeds: the tiny Llama GGUF fixture and a small safetensors file built here.

use std::collections::HashMap;
use std::path::Path;

use crate::support::fuzz::{bounded, cases, edit, mutate, scratch_file};
use coe::model::gguf::{GgufFile, load_llama_gguf};
use coe::model::safetensors_io::read_safetensors;
use proptest::prelude::*;
use safetensors::Dtype;
use safetensors::tensor::TensorView;

fn gguf_seed() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf/tiny_llama.gguf"))
        .unwrap()
}

/// The container, every tensor, then the Llama loader, on one byte string.
fn read_gguf(bytes: &[u8]) {
    if let Some(trace) = std::env::var_os("COE_FUZZ_TRACE") {
        std::fs::write(trace, bytes).unwrap();
    }
    let path = Path::new("fuzz.gguf");
    bounded("parsing GGUF", || {
        match GgufFile::parse(path, bytes.to_vec()) {
            Ok(file) => {
                for info in &file.tensors {
                    if let Err(e) = file.tensor_f32(info) {
                        assert!(e.to_string().starts_with("fuzz.gguf"), "{e}");
                    }
                }
            }
            Err(e) => assert!(e.to_string().starts_with("fuzz.gguf"), "{e}"),
        }
    });
    let file = scratch_file("fuzz-gguf-", bytes);
    bounded("loading a Llama GGUF", || {
        if let Err(e) = load_llama_gguf(&file) {
            assert!(
                e.to_string().starts_with(&file.display().to_string()),
                "{e}"
            );
        }
    });
}

/// A safetensors file with one tensor per supported dtype.
fn safetensors_seed() -> Vec<u8> {
    let f32s: Vec<u8> = (0..12)
        .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
        .collect();
    let halves: Vec<u8> = (0..8u16).flat_map(|i| (0x3c00 + i).to_le_bytes()).collect();
    let views = [
        (
            "a.weight",
            TensorView::new(Dtype::F32, vec![3, 4], &f32s).unwrap(),
        ),
        (
            "b.weight",
            TensorView::new(Dtype::F16, vec![2, 4], &halves).unwrap(),
        ),
        (
            "c.weight",
            TensorView::new(Dtype::BF16, vec![8], &halves).unwrap(),
        ),
    ];
    let meta = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::serialize(views, meta).unwrap()
}

fn read_st(bytes: &[u8]) {
    let file = scratch_file("fuzz-st-", bytes);
    bounded("reading safetensors", || {
        if let Err(e) = read_safetensors(&file) {
            assert!(e.to_string().contains(&file.display().to_string()), "{e}");
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn gguf_mutations(edits in proptest::collection::vec(edit(), 1..8)) {
        read_gguf(&mutate(&gguf_seed(), &edits));
    }

    #[test]
    fn gguf_header_mutations(edits in proptest::collection::vec(edit(), 1..4), keep in 24usize..4096) {
        // Most of the parser's decisions sit in the first kilobytes: mutate only there.
        let seed = gguf_seed();
        let head = &seed[..keep.min(seed.len())];
        let mut bytes = mutate(head, &edits);
        bytes.extend_from_slice(&seed[keep.min(seed.len())..]);
        read_gguf(&bytes);
    }

    #[test]
    fn gguf_arbitrary_bytes(tail in proptest::collection::vec(any::<u8>(), 0..256), version in 0u32..5) {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend_from_slice(&version.to_le_bytes());
        bytes.extend_from_slice(&tail);
        read_gguf(&bytes);
    }

    #[test]
    fn safetensors_mutations(edits in proptest::collection::vec(edit(), 1..6)) {
        read_st(&mutate(&safetensors_seed(), &edits));
    }

    #[test]
    fn safetensors_forged_header(header in "\\{[ -~]{0,200}\\}", len_delta in -4i64..4) {
        let mut bytes = ((header.len() as i64 + len_delta).max(0) as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 64]);
        read_st(&bytes);
    }
}

#[test]
fn seeds_read_cleanly() {
    let file = GgufFile::parse(Path::new("seed.gguf"), gguf_seed()).unwrap();
    assert!(!file.tensors.is_empty());
    let tensors = read_safetensors(&scratch_file("seed-", &safetensors_seed())).unwrap();
    assert_eq!(tensors.len(), 3);
}

#[test]
fn forged_shapes_and_offsets_are_errors() {
    // A header whose shape product overflows, and one whose offsets run past the data.
    let cases = [
        r#"{"x":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}"#,
        r#"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,18446744073709551615]}}"#,
        r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
        r#"{"x":{"dtype":"I8","shape":[16],"data_offsets":[0,16]}}"#,
    ];
    for header in cases {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 16]);
        let file = scratch_file("forged-", &bytes);
        let err = read_safetensors(&file)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains(&file.display().to_string()),
            "{header}: {err:?}"
        );
    }
}

#[test]
fn a_forged_block_count_is_an_error_not_an_allocation() {
    // Found by `gguf_header_mutations`: the loader sized its list of expected tensor
    // names by the header's block count before checking it against the tensor table.
    let mut bytes = gguf_seed();
    let key = b"llama.block_count";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    assert_eq!(
        bytes[at..at + 4],
        4u32.to_le_bytes(),
        "a u32 value follows the key"
    );
    bytes[at + 4..at + 8].copy_from_slice(&536_870_914u32.to_le_bytes());
    let file = scratch_file("forged-blocks-", &bytes);
    let err = bounded("loading", || load_llama_gguf(&file))
        .err()
        .map(|e| e.to_string());
    let want = format!(
        "{}: metadata key \"llama.block_count\": 536870914 blocks, but the file holds only 22 tensors (9 per block)",
        file.display()
    );
    assert_eq!(err, Some(want));
}

#[test]
fn a_tensor_too_big_for_u64_bytes_is_an_error() {
    // Found by `gguf_mutations`: 2^62 f32 elements pass the element-count check, but
    // their byte size overflowed (a panic in debug builds, a wrong bound in release).
    let mut bytes = gguf_seed();
    let name = b"output_norm.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    assert_eq!(
        bytes[at..at + 4],
        1u32.to_le_bytes(),
        "one dimension follows the name"
    );
    bytes[at + 4..at + 12].copy_from_slice(&(1u64 << 62).to_le_bytes());
    let err = GgufFile::parse(Path::new("big.gguf"), bytes)
        .err()
        .map(|e| e.to_string());
    let want = "big.gguf: tensor \"output_norm.weight\": dimensions [4611686018427387904] need more than 2^64 bytes";
    assert_eq!(err.as_deref(), Some(want));
}

/// Replays one saved case (`COE_FUZZ_REPLAY=path cargo test --test fuzz_models --
/// --ignored replay`); cases are saved with `COE_FUZZ_TRACE=path` while fuzzing.
#[test]
#[ignore]
fn replay_a_saved_gguf_case() {
    let path = std::env::var_os("COE_FUZZ_REPLAY").expect("set COE_FUZZ_REPLAY");
    let bytes = std::fs::read(path).unwrap();
    match GgufFile::parse(Path::new("case.gguf"), bytes.clone()) {
        Ok(f) => {
            for t in &f.tensors {
                eprintln!(
                    "{} {:?} {:?} {}",
                    t.name,
                    t.dims,
                    t.ggml_type,
                    t.n_elements()
                );
            }
            for (k, v) in &f.metadata {
                let shown = format!("{v:?}");
                eprintln!("{k} = {}", shown.chars().take(80).collect::<String>());
            }
        }
        Err(e) => eprintln!("parse error: {e}"),
    }
    read_gguf(&bytes);
}
