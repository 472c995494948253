//! GGUF loading: dequantisation against gguf-py, the Q/K un-permute against llama.cpp's
//! permutation, a tiny model written by gguf-py's `GGUFWriter`, malformed files (each error
//! and no panics), and, when set-up has fetched it, the default model against `transformers`.
//! Reference data comes from `scripts/make_gguf_fixtures.py`.

use std::path::{Path, PathBuf};

use coe::model::chat::ChatFormat;
use coe::model::gguf::dequant::{GgmlType, dequantize};
use coe::model::gguf::names::{llama_config, permute_qk_rows, unpermute_qk_rows};
use coe::model::gguf::{GgufError, GgufFile, GgufValue, load_llama_gguf};
use coe::model::tokenizer::CoeTokenizer;
use serde_json::Value;

/// A path under the repository root.
fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn fixture(name: &str) -> PathBuf {
    repo("tests/fixtures/gguf").join(name)
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Position-weighted sum, as the fixture script computes it.
fn checksum(values: &[f32]) -> f64 {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| f64::from(v) * (i % 7 + 1) as f64)
        .sum()
}

fn assert_close(got: f64, want: f64, what: &str) {
    let tolerance = 1e-9 * want.abs().max(1.0);
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: got {got}, want {want}"
    );
}

#[test]
fn dequantisation_matches_gguf_py_bit_for_bit() {
    let types = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ];
    for ty in types {
        let raw = std::fs::read(fixture(&format!("{}.bin", ty.name()))).unwrap();
        let reference = std::fs::read(fixture(&format!("{}.f32", ty.name()))).unwrap();
        let want: Vec<u32> = reference
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let got: Vec<u32> = dequantize(ty, &raw)
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(got.len(), 512, "{ty}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g,
                w,
                "{ty} element {i}: {} vs {}",
                f32::from_bits(*g),
                f32::from_bits(*w)
            );
        }
    }
}

#[test]
fn qk_permutation_matches_llama_cpp() {
    let cases = json(&fixture("permute.json"));
    for case in cases.as_array().unwrap() {
        let floats = |key: &str| -> Vec<f32> {
            case[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        };
        let (hf, gguf) = (floats("hf"), floats("gguf"));
        let heads = case["n_heads"].as_u64().unwrap() as usize;
        let cols = case["cols"].as_u64().unwrap() as usize;
        assert_eq!(permute_qk_rows(&hf, cols, heads), gguf, "{heads} heads");
        assert_eq!(unpermute_qk_rows(&gguf, cols, heads), hf, "{heads} heads");
    }
}

#[test]
fn tiny_model_written_by_gguf_py_loads_as_hugging_face_tensors() {
    let reference = json(&fixture("tiny_llama.json"));
    let loaded = load_llama_gguf(&fixture("tiny_llama.gguf")).unwrap();
    let cfg = &loaded.config;
    let want = &reference["config"];
    assert_eq!(loaded.architecture, "llama");
    assert_eq!(
        cfg.hidden_size as u64,
        want["hidden_size"].as_u64().unwrap()
    );
    assert_eq!(cfg.intermediate_size, 256);
    assert_eq!(
        (
            cfg.num_hidden_layers,
            cfg.num_attention_heads,
            cfg.kv_heads()
        ),
        (2, 4, 2)
    );
    assert_eq!(cfg.vocab_size, 272);
    assert_eq!((cfg.rope_theta, cfg.rms_norm_eps), (500_000.0, 1e-5));
    assert_eq!(cfg.max_position_embeddings, 131_072);
    assert!(!cfg.tie_word_embeddings);
    assert_eq!(cfg.bos_token_id, Some(1));
    let scaling = cfg.rope_scaling.as_ref().unwrap();
    let want_scaling = &want["rope_scaling"];
    assert_eq!(scaling.rope_type, "llama3");
    assert_eq!(scaling.factor, want_scaling["factor"].as_f64().unwrap());
    assert_eq!(
        scaling.low_freq_factor,
        want_scaling["low_freq_factor"].as_f64().unwrap()
    );
    assert_eq!(
        scaling.high_freq_factor,
        want_scaling["high_freq_factor"].as_f64().unwrap()
    );
    assert_eq!(scaling.original_max_position_embeddings, 8192);

    let tensors = reference["tensors"].as_object().unwrap();
    assert_eq!(loaded.tensors.len(), tensors.len());
    for (gguf_name, want) in tensors {
        let hf = coe::model::gguf::names::hf_name(&format!("{gguf_name}.weight")).unwrap();
        let t = loaded.tensors.iter().find(|t| t.name == hf).unwrap();
        let shape: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape, shape, "{hf}");
        assert_eq!(t.data.len(), shape.iter().product::<usize>(), "{hf}");
        assert_close(checksum(&t.data), want["checksum"].as_f64().unwrap(), &hf);
        for (i, w) in want["first"].as_array().unwrap().iter().enumerate() {
            assert_eq!(t.data[i], w.as_f64().unwrap() as f32, "{hf}[{i}]");
        }
    }

    for case in reference["tokens"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            loaded.tokenizer.encode(text, true).unwrap(),
            ids,
            "{text:?}"
        );
        assert_eq!(loaded.tokenizer.decode(&ids).unwrap(), text);
    }
    let format = ChatFormat::detect(loaded.chat_template.as_deref());
    assert!(matches!(
        format,
        ChatFormat::ChatMl {
            default_system: Some(_)
        }
    ));
}

#[test]
fn reader_exposes_metadata_and_tensor_infos() {
    let file = GgufFile::read(&fixture("tiny_llama.gguf")).unwrap();
    assert_eq!(file.version, 3);
    assert_eq!(
        file.get("general.architecture"),
        Some(&GgufValue::String("llama".into()))
    );
    assert_eq!(
        file.get("llama.block_count").and_then(GgufValue::as_u64),
        Some(2)
    );
    let q = file.tensor_info("blk.0.attn_q.weight").unwrap();
    assert_eq!(
        (q.dims.as_slice(), q.ggml_type),
        (&[64u64, 64][..], GgmlType::F32)
    );
    let down = file.tensor_info("blk.1.ffn_down.weight").unwrap();
    assert_eq!(
        (down.hf_shape(), down.ggml_type),
        (vec![64, 256], GgmlType::Q4_K)
    );
    assert_eq!(file.tensor_f32(down).unwrap().len(), 64 * 256);
}

/// The default model against `transformers`, and the DESIGN §4 facts; skipped before set-up.
#[test]
fn default_model_matches_transformers() {
    let model = repo("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let what = format!("{} (run scripts/setup.sh)", model.display());
    if !crate::support::prereq::require(&what, model.exists()) {
        return;
    }
    let loaded = load_llama_gguf(&model).unwrap();
    let cfg = &loaded.config;
    assert_eq!(
        (
            cfg.num_hidden_layers,
            cfg.hidden_size,
            cfg.intermediate_size
        ),
        (30, 576, 1536)
    );
    assert_eq!(
        (cfg.num_attention_heads, cfg.kv_heads(), cfg.vocab_size),
        (9, 3, 49_152)
    );
    assert_eq!(
        (cfg.rope_theta, cfg.rms_norm_eps, cfg.rope_scaling.clone()),
        (100_000.0, 1e-5, None)
    );
    assert!(cfg.tie_word_embeddings);
    assert_eq!(cfg.bos_token_id, Some(1));
    assert_eq!(cfg.eos_token_id.as_ref().map(|e| e.ids()), Some(vec![2]));
    assert_eq!(loaded.tensors.len(), 2 + 30 * 9);
    assert!(!loaded.tensors.iter().any(|t| t.name == "lm_head.weight"));

    let reference = json(&fixture("smollm2_tensors.json"));
    for (name, want) in reference.as_object().unwrap() {
        let t = loaded.tensors.iter().find(|t| &t.name == name).unwrap();
        let shape: Vec<usize> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape, shape, "{name}");
        assert_close(checksum(&t.data), want["checksum"].as_f64().unwrap(), name);
        for (i, w) in want["first"].as_array().unwrap().iter().enumerate() {
            assert_eq!(t.data[i], w.as_f64().unwrap() as f32, "{name}[{i}]");
        }
    }
}

/// Writes GGUF bytes for the malformed-file tests.
#[derive(Default)]
struct Builder {
    kvs: Vec<u8>,
    n_kv: u64,
    tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
}

fn gguf_string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

impl Builder {
    fn kv(mut self, key: &str, ty: u32, value: &[u8]) -> Self {
        self.kvs.extend(gguf_string(key));
        self.kvs.extend(ty.to_le_bytes());
        self.kvs.extend_from_slice(value);
        self.n_kv += 1;
        self
    }

    fn u32(self, key: &str, v: u32) -> Self {
        self.kv(key, 4, &v.to_le_bytes())
    }

    fn str(self, key: &str, v: &str) -> Self {
        self.kv(key, 8, &gguf_string(v))
    }

    fn strings(self, key: &str, items: &[&str]) -> Self {
        let mut value = 8u32.to_le_bytes().to_vec();
        value.extend((items.len() as u64).to_le_bytes());
        items.iter().for_each(|s| value.extend(gguf_string(s)));
        self.kv(key, 9, &value)
    }

    fn ints(self, key: &str, items: &[i32]) -> Self {
        let mut value = 5u32.to_le_bytes().to_vec();
        value.extend((items.len() as u64).to_le_bytes());
        items.iter().for_each(|i| value.extend(i.to_le_bytes()));
        self.kv(key, 9, &value)
    }

    fn tensor(mut self, name: &str, hf_shape: &[u64], ty: u32, data: Vec<u8>) -> Self {
        let dims = hf_shape.iter().rev().copied().collect();
        self.tensors.push((name.into(), dims, ty, data));
        self
    }

    fn f32_tensor(self, name: &str, hf_shape: &[u64]) -> Self {
        let n: u64 = hf_shape.iter().product();
        let data = (0..n)
            .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
            .collect();
        self.tensor(name, hf_shape, 0, data)
    }

    fn build(self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(self.kvs);
        let mut data = Vec::new();
        for (name, dims, ty, bytes) in &self.tensors {
            out.extend(gguf_string(name));
            out.extend((dims.len() as u32).to_le_bytes());
            dims.iter().for_each(|d| out.extend(d.to_le_bytes()));
            out.extend(ty.to_le_bytes());
            out.extend((data.len() as u64).to_le_bytes());
            data.extend_from_slice(bytes);
            data.resize(data.len().div_ceil(32) * 32, 0);
        }
        out.resize(out.len().div_ceil(32) * 32, 0);
        out.extend(data);
        out
    }
}

/// A complete one-layer Llama (hidden 8, 2 heads, 1 KV head, vocab 4) with F32 weights;
/// `skip` leaves one tensor out and `wrong` gives one a bad shape.
fn tiny_llama(skip: Option<&str>, wrong: Option<&str>) -> Builder {
    let mut b = Builder::default()
        .str("general.architecture", "llama")
        .u32("llama.block_count", 1)
        .u32("llama.context_length", 64)
        .u32("llama.embedding_length", 8)
        .u32("llama.feed_forward_length", 16)
        .u32("llama.attention.head_count", 2)
        .u32("llama.attention.head_count_kv", 1)
        .str("tokenizer.ggml.model", "gpt2")
        .strings("tokenizer.ggml.tokens", &["a", "b", "ab", "<|im_end|>"])
        .ints("tokenizer.ggml.token_type", &[1, 1, 1, 3])
        .strings("tokenizer.ggml.merges", &["a b"])
        .u32("tokenizer.ggml.eos_token_id", 3);
    let tensors: [(&str, &[u64]); 11] = [
        ("token_embd.weight", &[4, 8]),
        ("output_norm.weight", &[8]),
        ("blk.0.attn_norm.weight", &[8]),
        ("blk.0.attn_q.weight", &[8, 8]),
        ("blk.0.attn_k.weight", &[4, 8]),
        ("blk.0.attn_v.weight", &[4, 8]),
        ("blk.0.attn_output.weight", &[8, 8]),
        ("blk.0.ffn_norm.weight", &[8]),
        ("blk.0.ffn_gate.weight", &[16, 8]),
        ("blk.0.ffn_up.weight", &[16, 8]),
        ("blk.0.ffn_down.weight", &[8, 16]),
    ];
    for (name, shape) in tensors {
        if Some(name) == skip {
            continue;
        }
        b = if Some(name) == wrong {
            b.f32_tensor(name, &[3, 8])
        } else {
            b.f32_tensor(name, shape)
        };
    }
    b
}

fn write_temp(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

fn load_error(bytes: &[u8]) -> String {
    let (_dir, path) = write_temp(bytes);
    let err = load_llama_gguf(&path).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with(&path.display().to_string()), "{text}");
    text.replacen(&path.display().to_string(), "m.gguf", 1)
}

#[test]
fn hand_built_llama_loads() {
    let (_dir, path) = write_temp(&tiny_llama(None, None).build());
    let loaded = load_llama_gguf(&path).unwrap();
    assert_eq!(loaded.tensors.len(), 11);
    assert!(loaded.config.tie_word_embeddings);
    assert_eq!(loaded.tokenizer.eot_ids, vec![3]);
    assert_eq!(
        loaded.tokenizer.encode("abab<|im_end|>", false).unwrap(),
        vec![2, 2, 3]
    );
    // Q rows come back un-permuted: row 1 of head 0 in HF order is GGUF row 2.
    let q = loaded
        .tensors
        .iter()
        .find(|t| t.name == "model.layers.0.self_attn.q_proj.weight")
        .unwrap();
    assert_eq!(
        &q.data[8..16],
        &[8.0, 8.5, 9.0, 9.5, 10.0, 10.5, 11.0, 11.5]
    );
}

#[test]
fn malformed_files_give_messages_naming_the_problem() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"GGML\x03\0\0\0".to_vec(),
            "m.gguf: not a GGUF file (starts with \"GGML\", expected \"GGUF\")",
        ),
        (
            b"GGUF\x01\0\0\0".to_vec(),
            "m.gguf: GGUF version 1 is not supported (supported: 2, 3)",
        ),
        (
            b"GGUF\x03\0\0".to_vec(),
            "m.gguf: file ends at byte 7 while reading the version at byte 4",
        ),
        (
            [
                &b"GGUF\x03\0\0\0"[..],
                &0u64.to_le_bytes(),
                &u64::MAX.to_le_bytes(),
            ]
            .concat(),
            "m.gguf: the metadata table claims a length of 18446744073709551615, more than the 0 bytes left could hold",
        ),
        (
            tiny_llama(None, None)
                .kv("general.alignment", 4, &3u32.to_le_bytes())
                .build(),
            "m.gguf: metadata key \"general.alignment\": U32(3) is not a power of two",
        ),
        (
            tiny_llama(None, None).kv("x", 7, &[2]).build(),
            "m.gguf: metadata key \"x\": boolean byte 2 is neither 0 nor 1",
        ),
        (
            tiny_llama(None, None).kv("x", 99, &[]).build(),
            "m.gguf: metadata key \"x\": unknown value type 99",
        ),
        (
            tiny_llama(None, None).u32("llama.block_count", 2).build(),
            "m.gguf: metadata key \"llama.block_count\": appears twice",
        ),
        (
            tiny_llama(None, None)
                .tensor("q.weight", &[2, 33], 8, vec![0; 200])
                .build(),
            "m.gguf: tensor \"q.weight\": innermost dimension 33 is not a multiple of the Q8_0 (8) block size 32",
        ),
        (
            Builder::default()
                .kv("x", 8, &[2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe])
                .build(),
            "m.gguf: the value of \"x\" at byte 45 is not valid UTF-8",
        ),
        (
            tiny_llama(None, None)
                .f32_tensor("output_norm.weight", &[8])
                .build(),
            "m.gguf: tensor \"output_norm.weight\": appears twice",
        ),
        (
            tiny_llama(Some("blk.0.ffn_up.weight"), None).build(),
            "m.gguf: tensor \"blk.0.ffn_up.weight\" is missing",
        ),
        (
            tiny_llama(None, Some("blk.0.attn_k.weight")).build(),
            "m.gguf: tensor \"blk.0.attn_k.weight\" has shape [3, 8], the config implies [4, 8]",
        ),
        (
            tiny_llama(None, None)
                .f32_tensor("blk.1.attn_q.weight", &[8, 8])
                .build(),
            "m.gguf: tensor \"blk.1.attn_q.weight\": is not a weight of a Llama with this config",
        ),
        (
            Builder::default()
                .str("general.architecture", "gemma")
                .build(),
            "m.gguf: architecture \"gemma\" is not supported (supported: llama)",
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(load_error(&bytes), want);
    }
    // A tensor whose 32 bytes would start exactly at the end of the file.
    let short = tiny_llama(None, None)
        .tensor("extra.weight", &[8], 0, vec![])
        .build();
    let n = short.len();
    assert_eq!(
        load_error(&short),
        format!(
            "m.gguf: tensor \"extra.weight\": data at bytes {n}..{} lies outside the file ({n} bytes)",
            n + 32
        )
    );
    let q5 = Builder::default().tensor("blk.3.attn_q.weight", &[8, 256], 13, vec![0; 1408]);
    let file = GgufFile::parse(Path::new("models/x.gguf"), q5.build()).unwrap();
    assert_eq!(
        file.tensor_f32(&file.tensors[0]).unwrap_err().to_string(),
        "models/x.gguf: tensor \"blk.3.attn_q.weight\": type Q5_K (13) is not supported \
         (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)"
    );
    let sentencepiece = Builder::default()
        .str("tokenizer.ggml.model", "llama")
        .strings("tokenizer.ggml.tokens", &["a"]);
    let file = GgufFile::parse(Path::new("x.gguf"), sentencepiece.build()).unwrap();
    assert_eq!(
        CoeTokenizer::from_gguf(&file).unwrap_err().to_string(),
        "metadata key \"tokenizer.ggml.model\": \"llama\" is not supported (supported: \"gpt2\", byte-level BPE)"
    );
}

#[test]
fn missing_and_mistyped_metadata_are_named() {
    let path = Path::new("x.gguf");
    let parse = |b: Builder| GgufFile::parse(path, b.build()).unwrap();
    let no_layers = Builder::default()
        .strings("tokenizer.ggml.tokens", &["a"])
        .u32("llama.embedding_length", 8)
        .u32("llama.attention.head_count", 2);
    assert_eq!(
        llama_config(&parse(no_layers)).unwrap_err().to_string(),
        "x.gguf: metadata key \"llama.feed_forward_length\" is missing"
    );
    let mistyped = Builder::default()
        .strings("tokenizer.ggml.tokens", &["a"])
        .str("llama.embedding_length", "wide");
    assert_eq!(
        llama_config(&parse(mistyped)).unwrap_err().to_string(),
        "x.gguf: metadata key \"llama.embedding_length\": expected a non-negative integer, found string \"wide\""
    );
    let odd_heads = Builder::default()
        .strings("tokenizer.ggml.tokens", &["a"])
        .u32("llama.embedding_length", 8)
        .u32("llama.attention.head_count", 3);
    assert!(
        llama_config(&parse(odd_heads))
            .unwrap_err()
            .to_string()
            .contains("do not divide the width 8")
    );
}

/// Every prefix of a valid file and many corrupted copies must fail cleanly, never panic.
#[test]
fn truncated_and_corrupted_files_never_panic() {
    let good = std::fs::read(fixture("tiny_llama.gguf")).unwrap();
    let header_end = 16_000.min(good.len());
    for len in (0..header_end).chain((header_end..good.len()).step_by(997)) {
        let result = GgufFile::parse(Path::new("cut.gguf"), good[..len].to_vec());
        assert!(result.is_err(), "a file cut at {len} bytes parsed");
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..300 {
        let mut bytes = good.clone();
        for _ in 0..4 {
            let at = (next() % header_end as u64) as usize;
            bytes[at] = next() as u8;
        }
        if let Ok(file) = GgufFile::parse(Path::new("bad.gguf"), bytes) {
            let _ = llama_config(&file);
            let _ = CoeTokenizer::from_gguf(&file);
            for info in &file.tensors {
                let _ = file.tensor_f32(info);
            }
        }
    }
    assert!(matches!(
        GgufFile::read(Path::new("/nonexistent/m.gguf")),
        Err(GgufError::Io { .. })
    ));
}
