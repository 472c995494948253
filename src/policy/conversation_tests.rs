//! Prompt building on the tiny GGUF fixture's tokenizer (ChatML, 272 ids): spliced replies,
//! agreement with the SFT encoding, and trimming whole turns.
use super::*;
use crate::model::chat::encode_conversation;
use crate::model::gguf::load_llama_gguf;

fn tiny() -> (CoeTokenizer, ChatFormat) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf/tiny_llama.gguf");
    let loaded = load_llama_gguf(&path).unwrap();
    let fmt = ChatFormat::detect(loaded.chat_template.as_deref());
    (loaded.tokenizer, fmt)
}

fn im_end(tok: &CoeTokenizer) -> u32 {
    tok.token_id("<|im_end|>").unwrap()
}

fn reply(text: &str, ids: Vec<u32>) -> Proposal {
    Proposal {
        text: text.into(),
        token_ids: ids,
        ..Proposal::default()
    }
}

/// Index of `needle` as a contiguous run in `hay`.
fn find(hay: &[u32], needle: &[u32]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn replies_are_spliced_verbatim_and_closed_once() {
    let (tok, fmt) = tiny();
    let end = im_end(&tok);
    // Ids no tokenisation of the text would give, to prove they are not re-derived.
    let closed = vec![200, 201, 202, end];
    let open = vec![210, 211]; // cut by the length limit: the template closes the turn
    let history = vec![
        (
            "first state".to_string(),
            reply("### DELL 1", closed.clone()),
        ),
        (
            "second state".to_string(),
            reply("### DELL 2", open.clone()),
        ),
    ];
    let p = prompt_ids(&tok, &fmt, &history, "third state", 10_000).unwrap();
    assert_eq!(p.dropped_pairs, 0);
    assert!(!p.over_budget);
    assert_eq!(p.replies.len(), 2);
    for ((k, range), want) in p.replies.iter().zip([&closed, &open]) {
        assert_eq!(&p.ids[range.clone()], want.as_slice(), "reply {k}");
    }
    let newline = tok.encode("\n", false).unwrap();
    let after_closed = p.replies[0].1.end;
    assert_eq!(
        p.ids[after_closed..after_closed + newline.len()],
        newline[..]
    );
    let after_open = p.replies[1].1.end;
    assert_eq!(p.ids[after_open], end);
    assert_eq!(p.ids.iter().filter(|&&i| i == 202).count(), 1);
    let gen_prompt = tok.encode("<|im_start|>assistant\n", false).unwrap();
    assert!(p.ids.ends_with(&gen_prompt));
}

#[test]
fn tokenised_replies_match_the_sft_encoding() {
    let (tok, fmt) = tiny();
    let texts = ["### REPL 2 >>>    return a", "### EXIT"];
    let mut history = Vec::new();
    let mut msgs = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let mut ids = tok.encode(text, false).unwrap();
        ids.push(im_end(&tok));
        let user = format!("state {i}\nL1 def f():");
        msgs.push(Message::new(Role::User, user.as_str()));
        msgs.push(Message::new(Role::Assistant, *text));
        history.push((user, reply(text, ids)));
    }
    // A person's reply has no ids and is tokenised from its text.
    history.push(("state 2".to_string(), reply("### DELL 1", vec![])));
    msgs.push(Message::new(Role::User, "state 2"));
    msgs.push(Message::new(Role::Assistant, "### DELL 1"));
    msgs.push(Message::new(Role::User, "state 3"));
    let p = prompt_ids(&tok, &fmt, &history, "state 3", 10_000).unwrap();
    let (mut want, _) = encode_conversation(&tok, &fmt, &msgs).unwrap();
    want.extend(tok.encode("<|im_start|>assistant\n", false).unwrap());
    assert_eq!(p.ids, want);
    assert_eq!(p.replies.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn trimming_drops_whole_pairs_oldest_first() {
    let (tok, fmt) = tiny();
    let end = im_end(&tok);
    let history: Vec<(String, Proposal)> = (0..4)
        .map(|i| {
            let user = format!("the user turn number {i} with some words in it");
            (user, reply("r", vec![100 + i, 101 + i, end]))
        })
        .collect();
    let obs = "the current state";
    let full = prompt_ids(&tok, &fmt, &history, obs, usize::MAX).unwrap();
    // Dropping pair 0 (reply 0, user 1) is the conversation u0, r1, u2, r2, u3, r3, obs.
    let mut once = vec![(history[0].0.clone(), history[1].1.clone())];
    once.extend(history[2..].iter().cloned());
    let want_once = prompt_ids(&tok, &fmt, &once, obs, usize::MAX).unwrap();
    let p = prompt_ids(&tok, &fmt, &history, obs, full.ids.len() - 1).unwrap();
    assert_eq!((p.dropped_pairs, p.over_budget), (1, false));
    assert_eq!(p.ids, want_once.ids);
    assert_eq!(p.replies.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3]);
    // Exactly at the budget nothing is dropped.
    let exact = prompt_ids(&tok, &fmt, &history, obs, full.ids.len()).unwrap();
    assert_eq!((exact.dropped_pairs, exact.ids), (0, full.ids.clone()));
    // No budget: everything droppable goes, the first user turn and the last pair stay.
    let p = prompt_ids(&tok, &fmt, &history, obs, 0).unwrap();
    assert_eq!((p.dropped_pairs, p.over_budget), (3, true));
    let first = tok.encode(&history[0].0, false).unwrap();
    let last_user = tok.encode(&history[3].0, false).unwrap();
    assert!(find(&p.ids, &first).is_some());
    assert!(
        find(&p.ids, &last_user).is_none(),
        "user 3 belongs to pair 2"
    );
    assert!(
        find(&p.ids, &[103, 104, end]).is_some(),
        "the last reply stays"
    );
    assert!(find(&p.ids, &tok.encode(obs, false).unwrap()).is_some());
    for (user, _) in &history[1..3] {
        let u = tok.encode(user, false).unwrap();
        assert!(find(&p.ids, &u).is_none(), "{user:?} dropped");
    }
}

#[test]
fn first_turn_is_the_rendered_observation() {
    let (tok, fmt) = tiny();
    let p = prompt_ids(&tok, &fmt, &[], "hello", 10).unwrap();
    let msgs = [Message::new(Role::User, "hello")];
    let text = fmt.render(&msgs, true);
    // Piecewise tokenisation agrees with whole-text tokenisation across special tokens.
    assert_eq!(p.ids, tok.encode(&text, false).unwrap());
    assert!(p.over_budget && p.replies.is_empty() && p.dropped_pairs == 0);
}
