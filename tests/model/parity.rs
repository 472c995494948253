//! The default model (SmolLM2-135M-Instruct, Q4_1 GGUF) against `transformers` in f32 on the
//! CPU: prompt ids, next-token logits, top-5 order and 32-token greedy continuations, from
//! `tests/fixtures/parity/smollm2.json` (made by `scripts/make_parity_reference.py`), and the
//! same through `coe model inspect --json`. Skipped with a note before set-up has fetched the
//! model.

use std::path::Path;

use coe::model::generate::{GenParams, generate};
use coe::model::loader::{DEFAULT_MODEL, LoadedModel, load_model};
use coe::model::sampling::SamplingParams;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tch::{Device, Kind, Tensor};

const TOLERANCE: f64 = 1e-3;

fn fixture() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/smollm2.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn have_model() -> bool {
    let present = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(DEFAULT_MODEL)
        .exists();
    crate::support::prereq::require(&format!("{DEFAULT_MODEL} (run scripts/setup.sh)"), present)
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn last_logits(m: &LoadedModel, prompt: &[u32]) -> Vec<f32> {
    let _guard = tch::no_grad_guard();
    let ids: Vec<i64> = prompt.iter().map(|&i| i64::from(i)).collect();
    let n = ids.len() as i64;
    let input = Tensor::from_slice(&ids).view([1, n]);
    let positions = Tensor::arange(n, (Kind::Int64, Device::Cpu)).view([1, n]);
    let logits = m.model.forward(&input, &positions, None, None).unwrap(); // [1, T, V]
    Vec::<f32>::try_from(logits.select(1, n - 1).squeeze_dim(0)).unwrap()
}

fn assert_logits(case: &str, got: &[f32], want: &serde_json::Map<String, Value>) {
    for (id, w) in want {
        let g = f64::from(got[id.parse::<usize>().unwrap()]);
        let w = w.as_f64().unwrap();
        assert!(
            (g - w).abs() <= TOLERANCE,
            "{case}: logit of id {id}: ours {g}, transformers {w}"
        );
    }
}

#[test]
fn default_model_matches_transformers() {
    if !have_model() {
        return;
    }
    // One thread: on a shared CPU, OpenMP workers spin-waiting for a descheduled peer
    // make two threads several times slower than one.
    tch::set_num_threads(1);
    let m = load_model("default", Device::Cpu, Kind::Float, None).unwrap();
    let reference = fixture();
    assert_eq!(m.sha256.as_deref(), reference["sha256"].as_str());
    let cases = reference["cases"].as_array().unwrap();
    let mut prompts = Vec::new();
    for case in cases {
        let text = case["prompt"].as_str().unwrap();
        let prompt = m.tokenizer.encode(text, false).unwrap();
        assert_eq!(prompt, ids(&case["prompt_ids"]), "prompt ids of {text:?}");
        let logits = last_logits(&m, &prompt);
        assert_logits(text, &logits, case["logits"].as_object().unwrap());
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        let top5: Vec<u32> = order[..5].iter().map(|&i| i as u32).collect();
        assert_eq!(top5, ids(&case["top_ids"])[..5], "top-5 of {text:?}");
        prompts.push(prompt);
    }
    // All continuations in one left-padded batch through the KV cache, against
    // transformers' cache-free greedy loop.
    let params = GenParams {
        max_new_tokens: 32,
        sampling: SamplingParams::greedy(),
        stop_ids: vec![],
        stop_rule: None,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let out = generate(&m.model, &prompts, &params, &mut rng).unwrap();
    for (case, g) in cases.iter().zip(out) {
        assert_eq!(
            g.ids,
            ids(&case["greedy"]),
            "greedy continuation of {:?}: ours {:?}, transformers {:?}",
            case["prompt"],
            m.tokenizer.decode(&g.ids).unwrap(),
            case["greedy_text"]
        );
    }
}

#[test]
fn model_inspect_json_matches_transformers() {
    if !have_model() {
        return;
    }
    let reference = fixture();
    let case = reference["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["prompt"] == "def add(a, b):")
        .unwrap();
    let output = assert_cmd::Command::cargo_bin("coe")
        .unwrap()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["model", "inspect", "--model", "default", "--threads", "1"])
        .args(["--prompt", "def add(a, b):", "--top", "5", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let got: Value = serde_json::from_slice(&output.stdout).unwrap();
    let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["prompt_ids", "top"]);
    assert_eq!(got["prompt_ids"], case["prompt_ids"]);
    let top = got["top"].as_array().unwrap();
    let top_ids: Vec<u32> = top
        .iter()
        .map(|t| t["id"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(top_ids, ids(&case["top_ids"])[..5]);
    assert_eq!(top[0]["token"], case["top1_token"]);
    let want = case["logits"].as_object().unwrap();
    for t in top {
        let g = t["logit"].as_f64().unwrap();
        let w = want[&t["id"].to_string()].as_f64().unwrap();
        assert!((g - w).abs() <= TOLERANCE, "{t}: transformers {w}");
        assert_eq!(t.as_object().unwrap().len(), 3);
    }
}
