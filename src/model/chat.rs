//! Prompt formats: rendering a conversation the way the model's chat template does, and
//! encoding one for training with a mask of the tokens the model should learn to produce.
//!
//! We do not run Jinja: the templates of the model families this project targets are fixed
//! strings around each message, so each format is written out here and checked against
//! `transformers`' `apply_chat_template` output recorded in the tokenizer fixture. A render is
//! built as a list of segments tagged "assistant or not", and both `render` and
//! `encode_conversation` walk that one list, so the training mask cannot drift from the text.
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

/// A piece of rendered text; `trained` marks assistant output (content and end of turn).
struct Segment {
    text: String,
    trained: bool,
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
        self.segments(msgs, add_generation_prompt)
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    fn segments(&self, msgs: &[Message], add_generation_prompt: bool) -> Vec<Segment> {
        let mut out = Vec::new();
        let mut push = |text: String, trained: bool| {
            if !text.is_empty() {
                out.push(Segment { text, trained });
            }
        };
        let eot = self.end_of_turn();
        match self {
            ChatFormat::ChatMl { default_system } => {
                if let (Some(first), Some(system)) = (msgs.first(), default_system)
                    && first.role != Role::System
                {
                    push(format!("<|im_start|>system\n{system}<|im_end|>\n"), false);
                }
                for m in msgs {
                    push(format!("<|im_start|>{}\n", m.role.as_str()), false);
                    close_turn(&mut push, m, m.content.clone(), eot, "\n");
                }
                if add_generation_prompt {
                    push("<|im_start|>assistant\n".into(), false);
                }
            }
            ChatFormat::Llama3 => {
                push("<|begin_of_text|>".into(), false);
                for m in msgs {
                    push(
                        format!(
                            "<|start_header_id|>{}<|end_header_id|>\n\n",
                            m.role.as_str()
                        ),
                        false,
                    );
                    // The template trims each message.
                    close_turn(&mut push, m, m.content.trim().to_string(), eot, "");
                }
                if add_generation_prompt {
                    push(
                        "<|start_header_id|>assistant<|end_header_id|>\n\n".into(),
                        false,
                    );
                }
            }
            ChatFormat::Plain => {
                for m in msgs {
                    push(format!("{}: ", plain_label(m.role)), false);
                    close_turn(&mut push, m, m.content.clone(), eot, "");
                }
                if add_generation_prompt {
                    push("Assistant: ".into(), false);
                }
            }
        }
        out
    }
}

/// Content, end-of-turn marker and separator of one message; the first two are what an
/// assistant turn is trained on.
fn close_turn(
    push: &mut impl FnMut(String, bool),
    m: &Message,
    content: String,
    eot: &str,
    separator: &str,
) {
    let trained = m.role == Role::Assistant;
    push(content, trained);
    push(eot.to_string(), trained);
    push(separator.to_string(), false);
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
    for segment in fmt.segments(msgs, false) {
        let piece = tok.encode(&segment.text, false)?;
        mask.extend(std::iter::repeat_n(segment.trained, piece.len()));
        ids.extend(piece);
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
}
