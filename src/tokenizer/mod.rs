//! Text ↔ token ids: HF `tokenizers` built from a GGUF file's own metadata (or from a
//! tokenizer.json), and a streaming detokenizer that never emits a broken UTF-8 sequence.
//!
//! The pipeline is `tokenizers`' own: pre-tokenizer (the split regex chosen by
//! `tokenizer.ggml.pre`) → byte-level BPE → byte-level decoder. No normalizer, and no
//! post-processor: ids are exactly the text's, BOS included only when the text (a rendered
//! chat template) contains it.

pub mod chat_template;
mod from_gguf;
mod pyjson;
mod stream;

use std::sync::OnceLock;

pub use chat_template::{ChatTemplate, RenderOptions, TemplateError};
pub use stream::StreamDecoder;

/// Why a tokenizer could not be built or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// The GGUF metadata is missing or malformed.
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    /// A tokenizer model other than byte-level BPE (`tokenizer.ggml.model` "gpt2").
    #[error("tokenizer model `{model}` is not supported (llama-web reads `gpt2` byte-level BPE)")]
    UnsupportedModel {
        /// The model named in the file.
        model: String,
    },
    /// A pre-tokenizer we do not know (`tokenizer.ggml.pre`).
    #[error("pre-tokenizer `{pre}` is not supported (known: llama-bpe, smollm)")]
    UnsupportedPreTokenizer {
        /// The pre-tokenizer named in the file.
        pre: String,
    },
    /// Vocabulary, merges or token types that do not fit together.
    #[error("bad tokenizer data: {detail}")]
    BadVocabulary {
        /// What is wrong.
        detail: String,
    },
    /// The `tokenizers` library refused (a bad tokenizer.json, an id out of range).
    #[error("tokenizer: {0}")]
    Library(String),
}

impl TokenizerError {
    fn library(e: impl std::fmt::Display) -> Self {
        TokenizerError::Library(e.to_string())
    }
}

/// How special-token text inside the input is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialTokens {
    /// `<|eot_id|>` in the text becomes the special token (HF's default).
    Parse,
    /// Special-token text is ordinary text (HF's `encode_special_tokens=True`).
    AsText,
}

/// A tokenizer with the model's special ids.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// A copy that treats special-token text as text, made on first use.
    as_text: OnceLock<tokenizers::Tokenizer>,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    add_bos: bool,
}

impl Tokenizer {
    fn from_parts(
        inner: tokenizers::Tokenizer,
        bos_id: Option<u32>,
        eos_id: Option<u32>,
        add_bos: bool,
    ) -> Self {
        Self {
            inner,
            as_text: OnceLock::new(),
            bos_id,
            eos_id,
            add_bos,
        }
    }

    /// Loads an HF tokenizer.json. Its post-processor is dropped: ids are exactly the text's.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TokenizerError> {
        let mut inner =
            tokenizers::Tokenizer::from_bytes(bytes).map_err(TokenizerError::library)?;
        inner.with_post_processor(None::<tokenizers::PostProcessorWrapper>);
        Ok(Self::from_parts(inner, None, None, false))
    }

    /// Encodes `text` exactly: no BOS is added.
    pub fn encode(&self, text: &str, special: SpecialTokens) -> Result<Vec<u32>, TokenizerError> {
        let tokenizer = match special {
            SpecialTokens::Parse => &self.inner,
            SpecialTokens::AsText => self.as_text.get_or_init(|| {
                let mut t = self.inner.clone();
                t.set_encode_special_tokens(true);
                t
            }),
        };
        let encoding = tokenizer
            .encode_fast(text, false)
            .map_err(TokenizerError::library)?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Decodes ids to text (special tokens included unless `skip_special`). Bytes that do not
    /// form UTF-8 become U+FFFD; use [`StreamDecoder`] for incremental output.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, skip_special)
            .map_err(TokenizerError::library)
    }

    /// The id of a token's text (special tokens included).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The text of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The bytes an id stands for (a piece of UTF-8, possibly a partial character): byte-level
    /// BPE writes each byte as a printable character (GPT-2's table), added tokens are their text.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let added = self.inner.get_added_vocabulary();
        if let Some(text) = added.simple_id_to_token(id) {
            return text.into_bytes();
        }
        let Some(token) = self.inner.id_to_token(id) else {
            return Vec::new();
        };
        token
            .chars()
            .map(byte_of_char)
            .collect::<Option<Vec<u8>>>()
            .unwrap_or_else(|| token.into_bytes())
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The beginning-of-text id, when the model names one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// The end-of-sequence id named by the model's metadata, when it names one.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// The tokenizer as HF's tokenizer.json shapes it (what constrained decoding reads the
    /// vocabulary's bytes from).
    #[cfg(feature = "gpu")]
    pub(crate) fn hf_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.inner).unwrap_or_default()
    }

    /// Whether the model expects BOS before a raw (untemplated) prompt.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
}

/// The byte that byte-level BPE writes as `c`: GPT-2's table maps the printable bytes to
/// themselves and the other 68, in order, to U+0100 onwards.
fn byte_of_char(c: char) -> Option<u8> {
    let printable = |b: u32| matches!(b, 0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff);
    let c = c as u32;
    if printable(c) {
        return u8::try_from(c).ok();
    }
    let n = c.checked_sub(256)? as usize;
    (0u32..256)
        .filter(|&b| !printable(b))
        .nth(n)
        .and_then(|b| u8::try_from(b).ok())
}
