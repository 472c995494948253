//! The tokenizer built from the default GGUF against `transformers` on the same file: token ids,
//! decoding, streaming decoding and chat renders recorded by
//! `scripts/make_tokenizer_reference.py`. Skipped (with a note) before set-up fetches the model.

use std::path::{Path, PathBuf};

use coe::model::chat::{ChatFormat, Message, Role, encode_conversation};
use coe::model::gguf::{GgufFile, GgufValue};
use coe::model::tokenizer::{CoeTokenizer, StreamDecoder};
use serde_json::Value;

/// A path under the repository root.
fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The tokenizer and chat format of the default model, or `None` (with a note) without it.
fn default_model() -> Option<(CoeTokenizer, ChatFormat)> {
    let model = repo("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let what = format!("{} (run scripts/setup.sh)", model.display());
    if !crate::support::prereq::require(&what, model.exists()) {
        return None;
    }
    let file = GgufFile::read(&model).unwrap();
    let template = file
        .get("tokenizer.chat_template")
        .and_then(GgufValue::as_str);
    Some((
        CoeTokenizer::from_gguf(&file).unwrap(),
        ChatFormat::detect(template),
    ))
}

fn reference() -> Value {
    let path = repo("tests/fixtures/tokenizer/smollm2_ids.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap() as u32)
        .collect()
}

fn messages(v: &Value) -> Vec<Message> {
    let role = |r: &str| match r {
        "system" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => panic!("unknown role {other}"),
    };
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            Message::new(
                role(m["role"].as_str().unwrap()),
                m["content"].as_str().unwrap(),
            )
        })
        .collect()
}

#[test]
fn special_ids_match() {
    let Some((tok, _)) = default_model() else {
        return;
    };
    let r = reference();
    assert_eq!(tok.bos_id.map(u64::from), r["bos_token_id"].as_u64());
    assert_eq!(tok.eos_id.map(u64::from), r["eos_token_id"].as_u64());
    assert_eq!(tok.vocab_size() as u64, r["vocab_size"].as_u64().unwrap());
    assert_eq!(tok.eot_ids, vec![2]);
    assert_eq!(tok.token_str(2).as_deref(), Some("<|im_end|>"));
    assert_eq!(tok.token_id("<|im_start|>"), Some(1));
}

#[test]
fn corpus_ids_and_decoding_match_transformers() {
    let Some((tok, _)) = default_model() else {
        return;
    };
    for case in reference()["corpus"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want = ids(&case["ids"]);
        assert_eq!(tok.encode(text, false).unwrap(), want, "{text:?}");
        // SmolLM2 adds no BOS/EOS of its own.
        assert_eq!(tok.encode(text, true).unwrap(), want, "{text:?}");
        assert_eq!(
            tok.decode(&want).unwrap(),
            case["decoded"].as_str().unwrap()
        );
        assert_eq!(tok.decode(&want).unwrap(), text, "round trip");
    }
}

#[test]
fn streaming_decode_emits_whole_characters_only() {
    let Some((tok, _)) = default_model() else {
        return;
    };
    for case in reference()["corpus"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let mut stream = StreamDecoder::new();
        let mut out = String::new();
        for id in ids(&case["ids"]) {
            let piece = stream.push(&tok, id).unwrap();
            assert!(
                !piece.contains('\u{FFFD}'),
                "{text:?}: partial character in {piece:?}"
            );
            out.push_str(&piece);
        }
        out.push_str(&stream.finish(&tok).unwrap());
        assert_eq!(out, text);
    }
    // "🚀" is four bytes spread over several byte-level tokens: nothing until the last one.
    let rocket = tok.encode("🚀", false).unwrap();
    assert!(rocket.len() > 1);
    let mut stream = StreamDecoder::new();
    let pieces: Vec<String> = rocket
        .iter()
        .map(|&id| stream.push(&tok, id).unwrap())
        .collect();
    assert!(
        pieces[..pieces.len() - 1].iter().all(String::is_empty),
        "{pieces:?}"
    );
    assert_eq!(pieces.last().map(String::as_str), Some("🚀"));
}

#[test]
fn chat_renders_match_apply_chat_template() {
    let Some((tok, format)) = default_model() else {
        return;
    };
    assert_eq!(format.end_of_turn(), "<|im_end|>");
    for chat in reference()["chats"].as_array().unwrap() {
        let msgs = messages(&chat["messages"]);
        let add_generation_prompt = chat["add_generation_prompt"].as_bool().unwrap();
        let rendered = chat["rendered"].as_str().unwrap();
        let want = ids(&chat["ids"]);
        assert_eq!(format.render(&msgs, add_generation_prompt), rendered);
        assert_eq!(tok.encode(rendered, false).unwrap(), want, "{rendered:?}");
        if add_generation_prompt {
            continue;
        }
        let (got, mask) = encode_conversation(&tok, &format, &msgs).unwrap();
        assert_eq!(
            got, want,
            "segment-wise encoding differs from the whole render"
        );
        // The trained tokens are exactly each assistant message followed by <|im_end|>.
        let trained: Vec<u32> = got
            .iter()
            .zip(&mask)
            .filter(|(_, m)| **m)
            .map(|(id, _)| *id)
            .collect();
        let assistant: String = msgs
            .iter()
            .filter(|m| m.role == Role::Assistant)
            .map(|m| format!("{}<|im_end|>", m.content))
            .collect();
        assert_eq!(tok.decode(&trained).unwrap(), assistant);
        let ends = got
            .iter()
            .zip(&mask)
            .filter(|(id, m)| **m && **id == 2)
            .count();
        assert_eq!(
            ends,
            msgs.iter().filter(|m| m.role == Role::Assistant).count()
        );
    }
}

/// A minimal byte-level BPE `tokenizer.json` (vocabulary a, b, ab, <|im_end|>, and the two
/// byte-level characters of "é") with a `tokenizer_config.json` beside it.
fn tiny_tokenizer_json(dir: &Path) -> PathBuf {
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "normalizer": null, "post_processor": null,
        "added_tokens": [{"id": 3, "content": "<|im_end|>", "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": false, "special": true}],
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": {"a": 0, "b": 1, "ab": 2, "<|im_end|>": 3, "Ã": 4, "©": 5}, "merges": ["a b"]}
    });
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, tokenizer.to_string()).unwrap();
    let config = serde_json::json!({"bos_token": {"content": "a"}, "eos_token": "<|im_end|>"});
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
    path
}

#[test]
fn tokenizer_json_loads_with_its_special_ids() {
    let dir = tempfile::tempdir().unwrap();
    let tok = CoeTokenizer::from_file(&tiny_tokenizer_json(dir.path())).unwrap();
    assert_eq!((tok.bos_id, tok.eos_id), (Some(0), Some(3)));
    assert_eq!(tok.eot_ids, vec![3]);
    assert!(tok.is_end_of_turn(3));
    assert_eq!(
        tok.encode("abab<|im_end|>é", false).unwrap(),
        vec![2, 2, 3, 4, 5]
    );
    assert_eq!(tok.decode(&[2, 3, 4, 5]).unwrap(), "ab<|im_end|>é");
    let missing = CoeTokenizer::from_file(&dir.path().join("nope.json")).unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("nope.json: cannot load the tokenizer"),
        "{missing}"
    );
}

#[test]
fn stream_decoder_holds_back_a_split_character() {
    let dir = tempfile::tempdir().unwrap();
    let tok = CoeTokenizer::from_file(&tiny_tokenizer_json(dir.path())).unwrap();
    let mut stream = StreamDecoder::new();
    let pieces: Vec<String> = [2, 4, 5, 4]
        .iter()
        .map(|&id| stream.push(&tok, id).unwrap())
        .collect();
    assert_eq!(pieces, ["ab", "", "é", ""]);
    // A dangling lead byte is flushed, as U+FFFD, by `finish`...
    assert_eq!(stream.finish(&tok).unwrap(), "\u{FFFD}");
    // ...or once a token that cannot continue it arrives.
    assert_eq!(stream.push(&tok, 4).unwrap(), "");
    assert_eq!(stream.push(&tok, 3).unwrap(), "\u{FFFD}<|im_end|>");
    assert_eq!(stream.finish(&tok).unwrap(), "");
    assert_eq!(stream.push(&tok, 0).unwrap(), "a");
}
