//! Prompt formats: rendering a conversation the way the model's chat template does, and
//! encoding one for training with a mask of the tokens the model should learn to produce.
//!
//! We do not run Jinja: the templates of the model families this project targets are fixed
//! strings around each message, so each format is written out here and checked against
//! `transformers`' `apply_chat_template` output recorded in the tokenizer fixture. A render is
//! built as a list of pieces tagged with their message and kind; `render`,
//! `encode_conversation` and the model policy's prompt builder all walk that one list, so
//! the training mask and the spliced prompts cannot drift from the text.
//!
//! Templates that add a default system prompt when the conversation has none (SmolLM2's "You
//! are a helpful AI assistant named SmolLM…", Qwen's) are honoured: `detect` lifts the literal
//! default out of the template text. Llama-3.1+ templates add a dated system header that we do
//! not reproduce; `Llama3` renders the Llama-3.0 layout.

use super::tokenizer::{CoeTokenizer, TokenizerError};

/// How messages become prompt text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatFormat {
    /// `<|im_start|>role\ncontent<|im_end|>\n`; `default_system` is inserted before the first
    /// message when that message is not a system message.
    ChatMl { default_system: Option<String> },
    /// `<|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`.
    Llama3,
    /// For base models without a template: `Role: content\n` per message.
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
        }
    }
}

/// What a [`Piece`] of rendered text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    /// Template text: headers, separators, BOS, a default system prompt.
    Frame,
    /// A message's content.
    Content,
    /// The end-of-turn marker closing a message.
    EndOfTurn,
}

/// A piece of rendered text, tagged with the message it belongs to (`None` for text outside
/// every message: a default system prompt, BOS, the generation prompt). Dropping a message's
/// pieces gives exactly the render of the conversation without that message, which is what
/// lets a caller trim old turns or splice sampled token ids in place of a content piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    pub message: Option<usize>,
    pub kind: PieceKind,
}

impl ChatFormat {
    /// The format a chat template (from GGUF metadata or `tokenizer_config.json`) describes.
    pub fn detect(template: Option<&str>) -> Self {
        match template {
            Some(t) if t.contains("<|im_start|>") => ChatFormat::ChatMl {
                default_system: chatml_default_system(t),
            },
            Some(t) if t.contains("<|start_header_id|>") => ChatFormat::Llama3,
            _ => ChatFormat::Plain,
        }
    }

    /// The text that ends an assistant turn.
    pub fn end_of_turn(&self) -> &'static str {
        match self {
            ChatFormat::ChatMl { .. } => "<|im_end|>",
            ChatFormat::Llama3 => "<|eot_id|>",
            ChatFormat::Plain => "\n",
        }
    }

    /// The prompt text; `add_generation_prompt` opens an assistant turn at the end.
    pub fn render(&self, msgs: &[Message], add_generation_prompt: bool) -> String {
        self.pieces(msgs, add_generation_prompt)
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    /// The render as tagged pieces, in order; empty pieces are left out.
    pub fn pieces(&self, msgs: &[Message], add_generation_prompt: bool) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut push = |text: String, message: Option<usize>, kind: PieceKind| {
            if !text.is_empty() {
                out.push(Piece {
                    text,
                    message,
                    kind,
                });
            }
        };
        let eot = self.end_of_turn();
        let frame = PieceKind::Frame;
        match self {
            ChatFormat::ChatMl { default_system } => {
                if let (Some(first), Some(system)) = (msgs.first(), default_system)
                    && first.role != Role::System
                {
                    let text = format!("<|im_start|>system\n{system}<|im_end|>\n");
                    push(text, None, frame);
                }
                for (i, m) in msgs.iter().enumerate() {
                    push(format!("<|im_start|>{}\n", m.role.as_str()), Some(i), frame);
                    close_turn(&mut push, i, m.content.clone(), eot, "\n");
                }
                if add_generation_prompt {
                    push("<|im_start|>assistant\n".into(), None, frame);
                }
            }
            ChatFormat::Llama3 => {
                push("<|begin_of_text|>".into(), None, frame);
                for (i, m) in msgs.iter().enumerate() {
                    let header = format!(
                        "<|start_header_id|>{}<|end_header_id|>\n\n",
                        m.role.as_str()
                    );
                    push(header, Some(i), frame);
                    // The template trims each message.
                    close_turn(&mut push, i, m.content.trim().to_string(), eot, "");
                }
                if add_generation_prompt {
                    let header = "<|start_header_id|>assistant<|end_header_id|>\n\n";
                    push(header.into(), None, frame);
                }
            }
            ChatFormat::Plain => {
                for (i, m) in msgs.iter().enumerate() {
                    push(format!("{}: ", plain_label(m.role)), Some(i), frame);
                    close_turn(&mut push, i, m.content.clone(), eot, "");
                }
                if add_generation_prompt {
                    push("Assistant: ".into(), None, frame);
                }
            }
        }
        out
    }
}

/// Content, end-of-turn marker and separator of message `i`.
fn close_turn(
    push: &mut impl FnMut(String, Option<usize>, PieceKind),
    i: usize,
    content: String,
    eot: &str,
    separator: &str,
) {
    push(content, Some(i), PieceKind::Content);
    push(eot.to_string(), Some(i), PieceKind::EndOfTurn);
    push(separator.to_string(), Some(i), PieceKind::Frame);
}

fn plain_label(role: Role) -> &'static str {
    match role {
        Role::System => "System",
        Role::User => "User",
        Role::Assistant => "Assistant",
    }
}

/// The literal default system prompt of a ChatML template, if it writes one: the text between
/// `<|im_start|>system` + newline and `<|im_end|>` inside a single string literal.
fn chatml_default_system(template: &str) -> Option<String> {
    const OPEN: &str = "<|im_start|>system";
    let mut search = template;
    while let Some(at) = search.find(OPEN) {
        let after = &search[at + OPEN.len()..];
        let body = after
            .strip_prefix('\n')
            .or_else(|| after.strip_prefix("\\n"));
        if let Some(body) = body
            && let Some(end) = body.find("<|im_end|>")
        {
            let text = &body[..end];
            // A literal cannot contain a quote or a template expression.
            if !text.contains(['\'', '"', '{', '}']) {
                return Some(text.replace("\\n", "\n"));
            }
        }
        search = after;
    }
    None
}

/// Encodes a conversation for training: token ids of the rendered text (no generation prompt,
/// no BOS beyond what the format writes) and, per token, whether it is assistant output, i.e.
/// an assistant message's content or its end-of-turn token. Each segment is encoded on its own,
/// which is how a generated turn is tokenised: the prompt up to the assistant header, then the
/// sampled tokens.
pub fn encode_conversation(
    tok: &CoeTokenizer,
    fmt: &ChatFormat,
    msgs: &[Message],
) -> Result<(Vec<u32>, Vec<bool>), TokenizerError> {
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for piece in fmt.pieces(msgs, false) {
        // Assistant output is the content and its end-of-turn marker, not the frame.
        let trained = piece.kind != PieceKind::Frame
            && piece
                .message
                .and_then(|i| msgs.get(i))
                .is_some_and(|m| m.role == Role::Assistant);
        let piece_ids = tok.encode(&piece.text, false)?;
        mask.extend(std::iter::repeat_n(trained, piece_ids.len()));
        ids.extend(piece_ids);
    }
    Ok((ids, mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn smollm2() -> ChatFormat {
        ChatFormat::detect(Some(SMOLLM2))
    }

    #[test]
    fn detect_reads_the_default_system_prompt() {
        let want = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
        assert_eq!(
            smollm2(),
            ChatFormat::ChatMl {
                default_system: Some(want.into())
            }
        );
        let no_default =
            "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'}}";
        assert_eq!(
            ChatFormat::detect(Some(no_default)),
            ChatFormat::ChatMl {
                default_system: None
            }
        );
        let escaped = "{{ '<|im_start|>system\\nBe brief.<|im_end|>\\n' }}";
        assert_eq!(
            ChatFormat::detect(Some(escaped)),
            ChatFormat::ChatMl {
                default_system: Some("Be brief.".into())
            }
        );
        assert_eq!(
            ChatFormat::detect(Some("{{ '<|start_header_id|>' }}")),
            ChatFormat::Llama3
        );
        assert_eq!(ChatFormat::detect(None), ChatFormat::Plain);
    }

    #[test]
    fn chatml_renders_like_the_template() {
        let msgs = [
            Message::new(Role::User, "hi"),
            Message::new(Role::Assistant, "ok"),
        ];
        let sys = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";
        assert_eq!(
            smollm2().render(&msgs, true),
            format!(
                "{sys}<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n<|im_start|>assistant\n"
            )
        );
        let with_system = [
            Message::new(Role::System, "S"),
            Message::new(Role::User, "u"),
        ];
        assert_eq!(
            smollm2().render(&with_system, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nu<|im_end|>\n"
        );
        assert_eq!(smollm2().render(&[], true), "<|im_start|>assistant\n");
    }

    #[test]
    fn llama3_and_plain_render() {
        let msgs = [
            Message::new(Role::User, " q "),
            Message::new(Role::Assistant, "a"),
        ];
        assert_eq!(
            ChatFormat::Llama3.render(&msgs, false),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nq<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\na<|eot_id|>"
        );
        assert_eq!(
            ChatFormat::Plain.render(&msgs, true),
            "User:  q \nAssistant: a\nAssistant: "
        );
        assert_eq!(ChatFormat::Plain.end_of_turn(), "\n");
    }

    #[test]
    fn pieces_of_a_message_are_exactly_its_share_of_the_render() {
        let msgs = [
            Message::new(Role::User, "u0"),
            Message::new(Role::Assistant, "a0"),
            Message::new(Role::User, "u1"),
            Message::new(Role::Assistant, "a1"),
            Message::new(Role::User, "u2"),
        ];
        for fmt in [smollm2(), ChatFormat::Llama3, ChatFormat::Plain] {
            let pieces = fmt.pieces(&msgs, true);
            // Dropping messages 1 and 2 leaves the render of [u0, a1, u2].
            let kept: String = pieces
                .iter()
                .filter(|p| !matches!(p.message, Some(1 | 2)))
                .map(|p| p.text.as_str())
                .collect();
            let fewer = [msgs[0].clone(), msgs[3].clone(), msgs[4].clone()];
            assert_eq!(kept, fmt.render(&fewer, true), "{fmt:?}");
            let content: Vec<&str> = pieces
                .iter()
                .filter(|p| p.kind == PieceKind::Content)
                .map(|p| p.text.as_str())
                .collect();
            assert_eq!(content, ["u0", "a0", "u1", "a1", "u2"], "{fmt:?}");
            let eot = pieces
                .iter()
                .filter(|p| p.kind == PieceKind::EndOfTurn)
                .map(|p| (p.message, p.text.as_str()));
            assert!(
                eot.eq((0..5).map(|i| (Some(i), fmt.end_of_turn()))),
                "{fmt:?}"
            );
        }
    }
}
