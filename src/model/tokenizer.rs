//! The tokenizer: Hugging Face `tokenizers` built either from a `tokenizer.json` or from the
//! vocabulary a GGUF file carries in its metadata, plus an incremental detokeniser.
//!
//! A GGUF has no `tokenizer.json`, only llama.cpp's `tokenizer.ggml.*` keys. The reference for
//! turning those into a tokenizer is the `transformers` GGUF converter (DESIGN §4), so this
//! module rebuilds exactly what it builds for byte-level BPE ("gpt2") vocabularies: a BPE model
//! over the vocabulary and merges, GPT-2's byte-level pre-tokenizer (or, for the pre-tokenizer
//! types it knows, a regex split before the byte mapping), the byte-level decoder, control
//! tokens as special added tokens and user-defined tokens as plain added tokens. SmolLM2's
//! `smollm` type is not in its table, so it gets GPT-2's split; since the vocabulary has no
//! multi-digit tokens this agrees with SmolLM2's own digit-by-digit split. Parity with
//! `transformers` is checked by `tests/tokenizer_parity.rs`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use super::gguf::reader::{GgufFile, GgufValue};

/// Tokens that end a turn in the chat formats we know; generation stops on them.
const END_OF_TURN_TOKENS: [&str; 5] = [
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<end_of_turn>",
];

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
const TOKEN_TYPE_CONTROL: u64 = 3;
const TOKEN_TYPE_USER_DEFINED: u64 = 4;

/// The Llama-3 split, used by `transformers` for these `tokenizer.ggml.pre` values.
const LLAMA3_PRE_TYPES: [&str; 11] = [
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
    "dbrx",
    "smaug-bpe",
];
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const TEKKEN_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("metadata key {key:?}: {problem}")]
    Metadata { key: String, problem: String },
    #[error("cannot build the tokenizer: {0}")]
    Build(String),
    #[error("{}: cannot load the tokenizer: {problem}", path.display())]
    File { path: PathBuf, problem: String },
    #[error("cannot encode {text:?}: {problem}")]
    Encode { text: String, problem: String },
    #[error("cannot decode {count} token ids: {problem}")]
    Decode { count: usize, problem: String },
}

/// A tokenizer with the model's special ids.
#[derive(Debug, Clone)]
pub struct CoeTokenizer {
    inner: Tokenizer,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    /// End-of-turn tokens (e.g. `<|im_end|>`) and the EOS token: where generation stops.
    pub eot_ids: Vec<u32>,
    /// Whether `encode(.., add_special = true)` adds BOS/EOS itself (GGUF flags); a
    /// `tokenizer.json` does that through its own post-processor instead.
    add_bos: bool,
    add_eos: bool,
}

/// GPT-2's reversible map from bytes to printable characters: printable Latin-1 bytes stand for
/// themselves, the rest take the code points from 256 up, in byte order.
fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for (byte, slot) in table.iter_mut().enumerate() {
        let b = byte as u32;
        let printable =
            (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
        let code = if printable {
            b
        } else {
            next += 1;
            next - 1
        };
        *slot = char::from_u32(code).unwrap_or('\0');
    }
    table
}

fn metadata_error(key: &str, problem: impl Into<String>) -> TokenizerError {
    TokenizerError::Metadata {
        key: key.to_string(),
        problem: problem.into(),
    }
}

fn string_array<'a>(file: &'a GgufFile, key: &str) -> Result<Option<Vec<&'a str>>, TokenizerError> {
    let Some(value) = file.get(key) else {
        return Ok(None);
    };
    let items = value
        .as_array()
        .ok_or_else(|| metadata_error(key, "expected an array of strings"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .ok_or_else(|| metadata_error(key, format!("item {i} is not a string")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn token_id(file: &GgufFile, key: &str, vocab_size: usize) -> Result<Option<u32>, TokenizerError> {
    match file.get(key) {
        None => Ok(None),
        Some(v) => match v.as_u64().and_then(|id| u32::try_from(id).ok()) {
            Some(id) if (id as usize) < vocab_size => Ok(Some(id)),
            _ => Err(metadata_error(
                key,
                format!("{v:?} is not a token id below {vocab_size}"),
            )),
        },
    }
}

impl CoeTokenizer {
    /// Builds the tokenizer a GGUF file describes, as `transformers` does.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, TokenizerError> {
        match file.get("tokenizer.ggml.model").and_then(GgufValue::as_str) {
            Some("gpt2") => {}
            Some(other) => {
                let problem =
                    format!("{other:?} is not supported (supported: \"gpt2\", byte-level BPE)");
                return Err(metadata_error("tokenizer.ggml.model", problem));
            }
            None => {
                return Err(metadata_error(
                    "tokenizer.ggml.model",
                    "is missing or not a string",
                ));
            }
        }
        let tokens = string_array(file, "tokenizer.ggml.tokens")?
            .ok_or_else(|| metadata_error("tokenizer.ggml.tokens", "is missing"))?;
        let merges = string_array(file, "tokenizer.ggml.merges")?
            .ok_or_else(|| metadata_error("tokenizer.ggml.merges", "is missing"))?;
        let types: Vec<u64> = match file.get("tokenizer.ggml.token_type") {
            None => Vec::new(),
            Some(v) => v
                .as_array()
                .map(|items| items.iter().map(|t| t.as_u64().unwrap_or(0)).collect())
                .ok_or_else(|| {
                    metadata_error("tokenizer.ggml.token_type", "expected an array of integers")
                })?,
        };
        let pre = file.get("tokenizer.ggml.pre").and_then(GgufValue::as_str);
        let flag = |key: &str| file.get(key).and_then(GgufValue::as_bool).unwrap_or(false);
        let mut inner = build_byte_level(&tokens, &merges, &types, pre)?;
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        let bos_id = token_id(file, "tokenizer.ggml.bos_token_id", tokens.len())?;
        let eos_id = token_id(file, "tokenizer.ggml.eos_token_id", tokens.len())?;
        Ok(Self::assemble(
            inner,
            bos_id,
            eos_id,
            flag("tokenizer.ggml.add_bos_token"),
            flag("tokenizer.ggml.add_eos_token"),
        ))
    }

    /// Loads a `tokenizer.json`; BOS/EOS come from a `tokenizer_config.json` beside it, if any.
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        let file_error = |problem: String| TokenizerError::File {
            path: path.to_path_buf(),
            problem,
        };
        let inner = Tokenizer::from_file(path).map_err(|e| file_error(e.to_string()))?;
        let config_path = path.with_file_name("tokenizer_config.json");
        let config: serde_json::Value = match std::fs::read_to_string(&config_path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| TokenizerError::File {
                path: config_path.clone(),
                problem: e.to_string(),
            })?,
            Err(_) => serde_json::Value::Null,
        };
        let special = |name: &str| {
            let value = config.get(name)?;
            let text = value.as_str().or_else(|| value.get("content")?.as_str())?;
            inner.token_to_id(text)
        };
        let (bos_id, eos_id) = (special("bos_token"), special("eos_token"));
        Ok(Self::assemble(inner, bos_id, eos_id, false, false))
    }

    fn assemble(
        inner: Tokenizer,
        bos_id: Option<u32>,
        eos_id: Option<u32>,
        add_bos: bool,
        add_eos: bool,
    ) -> Self {
        let mut eot_ids: Vec<u32> = END_OF_TURN_TOKENS
            .iter()
            .filter_map(|t| inner.token_to_id(t))
            .chain(eos_id)
            .collect();
        eot_ids.sort_unstable();
        eot_ids.dedup();
        CoeTokenizer {
            inner,
            bos_id,
            eos_id,
            eot_ids,
            add_bos,
            add_eos,
        }
    }

    /// Writes the tokenizer as a Hugging Face `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<(), TokenizerError> {
        self.inner
            .save(path, false)
            .map_err(|e| TokenizerError::File {
                path: path.to_path_buf(),
                problem: e.to_string(),
            })
    }

    /// Token ids of `text`. Special tokens written in the text (`<|im_start|>`) become their
    /// ids; `add_special` adds the BOS/EOS the model expects around a whole input.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, TokenizerError> {
        let encoding =
            self.inner
                .encode(text, add_special)
                .map_err(|e| TokenizerError::Encode {
                    text: text.chars().take(40).collect(),
                    problem: e.to_string(),
                })?;
        let mut ids = Vec::with_capacity(encoding.len() + 2);
        if add_special && self.add_bos {
            ids.extend(self.bos_id);
        }
        ids.extend_from_slice(encoding.get_ids());
        if add_special && self.add_eos {
            ids.extend(self.eos_id);
        }
        Ok(ids)
    }

    /// The text of `ids`, special tokens included. Bytes that do not form UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, false)
            .map_err(|e| TokenizerError::Decode {
                count: ids.len(),
                problem: e.to_string(),
            })
    }

    /// The vocabulary entry for `id` as stored (byte-level spelling, e.g. `Ġhello`).
    pub fn token_str(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn is_end_of_turn(&self, id: u32) -> bool {
        self.eot_ids.contains(&id)
    }
}

/// The `tokenizers` pipeline `transformers` builds for a byte-level BPE GGUF vocabulary.
fn build_byte_level(
    tokens: &[&str],
    merges: &[&str],
    types: &[u64],
    pre: Option<&str>,
) -> Result<Tokenizer, TokenizerError> {
    let spelling = byte_to_char();
    let alphabet: HashSet<char> = spelling.iter().copied().collect();
    let in_alphabet = |t: &str| t.chars().all(|c| alphabet.contains(&c));
    // Tokens written in raw UTF-8 rather than the byte alphabet are respelled byte by byte;
    // a later duplicate wins, as in a Python dict.
    let mut vocab = Vocab::default();
    for (id, token) in tokens.iter().enumerate() {
        let key = if in_alphabet(token) {
            token.to_string()
        } else {
            token.bytes().map(|b| spelling[usize::from(b)]).collect()
        };
        vocab.insert(key, id as u32);
    }
    let merges = merges
        .iter()
        .enumerate()
        .map(|(i, m)| match m.split(' ').collect::<Vec<_>>()[..] {
            [a, b] => Ok((a.to_string(), b.to_string())),
            _ => Err(metadata_error(
                "tokenizer.ggml.merges",
                format!("merge {i} {m:?} is not two tokens"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let typed = |wanted: u64| {
        tokens
            .iter()
            .zip(types)
            .filter(move |(_, t)| **t == wanted)
            .map(|(token, _)| *token)
    };
    // Control tokens spelled outside the byte alphabet are llama.cpp mislabels; user-defined
    // tokens only count if the vocabulary holds them as spelled.
    let control: Vec<AddedToken> = typed(TOKEN_TYPE_CONTROL)
        .filter(|t| in_alphabet(t))
        .map(|t| AddedToken::from(t, true).normalized(false))
        .collect();
    let user: Vec<AddedToken> = typed(TOKEN_TYPE_USER_DEFINED)
        .filter(|t| vocab.contains_key(*t))
        .map(|t| AddedToken::from(t, false).normalized(false))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| TokenizerError::Build(e.to_string()))?;
    let mut tokenizer = Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, true, true);
    let split = match pre {
        Some(p) if LLAMA3_PRE_TYPES.contains(&p) => Some(LLAMA3_SPLIT),
        Some("tekken") => Some(TEKKEN_SPLIT),
        _ => None,
    };
    match split {
        None => {
            tokenizer.with_pre_tokenizer(Some(byte_level));
        }
        Some(regex) => {
            let split = Split::new(
                SplitPattern::Regex(regex.into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| TokenizerError::Build(e.to_string()))?;
            let steps: Vec<PreTokenizerWrapper> =
                vec![split.into(), byte_level.use_regex(false).into()];
            tokenizer.with_pre_tokenizer(Some(Sequence::new(steps)));
        }
    }
    let build_error = |e: tokenizers::Error| TokenizerError::Build(e.to_string());
    tokenizer.add_special_tokens(control).map_err(build_error)?;
    tokenizer.add_tokens(user).map_err(build_error)?;
    Ok(tokenizer)
}

/// Turns a stream of ids into text as it is generated, emitting only complete characters.
///
/// It re-decodes a short window of recent ids and emits what the last id added, so decoders
/// whose output depends on neighbouring tokens behave as in a full decode; text ending in an
/// unfinished UTF-8 sequence (decoded as U+FFFD) is held back until the sequence completes, or
/// until a later token shows it never will (then it is emitted as U+FFFD, as a full decode would).
#[derive(Debug, Clone, Default)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    /// `ids[..read]` have been emitted; `ids[..prefix]` only serve as context.
    prefix: usize,
    read: usize,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one id and returns the text it completes (often empty for a partial character).
    pub fn push(&mut self, tok: &CoeTokenizer, id: u32) -> Result<String, TokenizerError> {
        self.ids.push(id);
        let context = tok.decode(self.ids.get(self.prefix..self.read).unwrap_or_default())?;
        let full = tok.decode(self.ids.get(self.prefix..).unwrap_or_default())?;
        if full.len() <= context.len() || full.ends_with('\u{FFFD}') {
            return Ok(String::new());
        }
        let new = new_suffix(&context, &full);
        // Keep the last emitted token as context; drop what lies before it.
        self.ids.drain(..self.read);
        self.prefix = 0;
        self.read = self.ids.len();
        Ok(new)
    }

    /// Emits whatever is held back (an incomplete character becomes U+FFFD) and resets.
    pub fn finish(&mut self, tok: &CoeTokenizer) -> Result<String, TokenizerError> {
        let context = tok.decode(self.ids.get(self.prefix..self.read).unwrap_or_default())?;
        let full = tok.decode(self.ids.get(self.prefix..).unwrap_or_default())?;
        *self = Self::default();
        Ok(new_suffix(&context, &full))
    }
}

/// What `full` adds after `context`; if a decoder rewrote the context, the text after the
/// longest common prefix (emitted text cannot be taken back).
fn new_suffix(context: &str, full: &str) -> String {
    if let Some(rest) = full.strip_prefix(context) {
        return rest.to_string();
    }
    let common = context
        .char_indices()
        .zip(full.chars())
        .take_while(|((_, a), b)| a == b)
        .last()
        .map_or(0, |((i, c), _)| i + c.len_utf8());
    full.get(common..).unwrap_or_default().to_string()
}
