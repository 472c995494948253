//! The prompt a model policy sees each turn, as token ids: the first user message, then
//! (earlier reply, next state) pairs, then the generation prompt, in the model's chat format.
//!
//! Earlier replies are never re-tokenised: their sampled `token_ids` are spliced in verbatim
//! between the tokenised template pieces (DESIGN §5 — the ids that were sampled are the ids
//! that are trained, so the model must also have been conditioned on exactly those ids). Each
//! template piece is tokenised on its own, as `chat::encode_conversation` does for SFT, so a
//! prompt and a training sequence of the same conversation agree token for token.
//!
//! When the prompt is longer than the budget, whole (reply, state) pairs are dropped, oldest
//! first, after the first user message (which holds the instructions and the task). The first
//! message and the latest pair are always kept: a model must see the task and the current
//! code; if those alone overflow, the prompt goes over budget and says so.

use std::ops::Range;

use crate::model::chat::{ChatFormat, Message, PieceKind, Role};
use crate::model::tokenizer::{CoeTokenizer, TokenizerError};
use crate::protocol::Proposal;

/// Stands in for a reply whose ids are spliced in; never tokenised. Non-blank, so the
/// Llama-3 template's trimming keeps it and its piece exists.
const SPLICED: &str = "\u{FFFC}";

/// A prompt and where the earlier replies sit in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptIds {
    pub ids: Vec<u32>,
    /// For each kept earlier reply that has token ids, oldest first: (its index in the
    /// history, the range of `ids` that holds those ids verbatim).
    pub replies: Vec<(usize, Range<usize>)>,
    /// Earlier (reply, state) pairs dropped to fit the budget.
    pub dropped_pairs: usize,
    /// The prompt is still longer than the budget after dropping all it may.
    pub over_budget: bool,
}

/// One tokenised template piece, tagged with its message.
struct Unit {
    message: Option<usize>,
    ids: Vec<u32>,
    /// `Some(k)` when these are reply `k`'s own tokens.
    reply: Option<usize>,
}

/// Whether a reply's ids already end its turn, so the template's end-of-turn marker must
/// not be added again: the last id is an end-of-turn token, or the format ends turns with a
/// newline and the last token's text ends with one.
fn closes_turn(tok: &CoeTokenizer, fmt: &ChatFormat, ids: &[u32]) -> Result<bool, TokenizerError> {
    let Some(&last) = ids.last() else {
        return Ok(false);
    };
    if tok.is_end_of_turn(last) {
        return Ok(true);
    }
    Ok(fmt.end_of_turn() == "\n" && tok.decode(&[last])?.ends_with('\n'))
}

/// Builds the prompt for the next reply. `history` holds (user message, reply) per earlier
/// turn, `observation` the user message of this turn, `budget` the most prompt tokens wanted
/// (context length minus room for the reply).
pub fn prompt_ids(
    tok: &CoeTokenizer,
    fmt: &ChatFormat,
    history: &[(String, Proposal)],
    observation: &str,
    budget: usize,
) -> Result<PromptIds, TokenizerError> {
    // Message 2k is user turn k, 2k+1 reply k; the last message is `observation`.
    let mut msgs = Vec::with_capacity(2 * history.len() + 1);
    for (user, reply) in history {
        msgs.push(Message::new(Role::User, user.as_str()));
        let content = if reply.token_ids.is_empty() {
            reply.text.as_str()
        } else {
            SPLICED
        };
        msgs.push(Message::new(Role::Assistant, content));
    }
    msgs.push(Message::new(Role::User, observation));

    let mut units = Vec::new();
    for piece in fmt.pieces(&msgs, true) {
        let reply_no = piece.message.filter(|i| i % 2 == 1).map(|i| i / 2);
        let spliced = reply_no
            .and_then(|k| history.get(k))
            .map(|(_, p)| p.token_ids.as_slice())
            .filter(|ids| !ids.is_empty());
        let unit = match (piece.kind, spliced) {
            (PieceKind::Content, Some(ids)) => Unit {
                message: piece.message,
                ids: ids.to_vec(),
                reply: reply_no,
            },
            (PieceKind::EndOfTurn, Some(ids)) if closes_turn(tok, fmt, ids)? => continue,
            _ => Unit {
                message: piece.message,
                ids: tok.encode(&piece.text, false)?,
                reply: None,
            },
        };
        units.push(unit);
    }

    let mut per_message = vec![0usize; msgs.len()];
    let mut total = 0usize;
    for u in &units {
        total += u.ids.len();
        if let Some(count) = u.message.and_then(|i| per_message.get_mut(i)) {
            *count += u.ids.len();
        }
    }
    // Pair k is (reply k, user turn k+1); the last pair is never dropped.
    let droppable = history.len().saturating_sub(1);
    let mut dropped = 0;
    while total > budget && dropped < droppable {
        let pair = 2 * dropped + 1..2 * dropped + 3;
        total -= per_message.get(pair).map_or(0, |c| c.iter().sum());
        dropped += 1;
    }
    let gone = 1..2 * dropped + 1;
    let mut out = PromptIds {
        ids: Vec::with_capacity(total),
        replies: Vec::new(),
        dropped_pairs: dropped,
        over_budget: total > budget,
    };
    for u in units {
        if u.message.is_some_and(|i| gone.contains(&i)) {
            continue;
        }
        let start = out.ids.len();
        out.ids.extend_from_slice(&u.ids);
        if let Some(k) = u.reply {
            out.replies.push((k, start..out.ids.len()));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "conversation_tests.rs"]
mod tests;
