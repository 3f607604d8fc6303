//! Building the tokenizer from GGUF metadata, as llama.cpp and HF transformers' GGUF loader
//! read it: `tokenizer.ggml.{model, pre, tokens, token_type, merges, bos_token_id,
//! eos_token_id, add_bos_token}`.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior};

use super::{Tokenizer, TokenizerError};
use crate::gguf::{ByteSource, GgufHeader, MetadataValue};

/// Llama 3's split regex (HF tokenizer.json of Llama 3.x; llama.cpp's LLAMA3 pre-tokenizer).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF token types (llama.cpp `llama_token_type`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

impl Tokenizer {
    /// Builds the tokenizer a GGUF file describes. `source` must be the file the header was
    /// read from: the vocabulary and merges are read from it now.
    pub fn from_gguf(
        header: &GgufHeader,
        source: &impl ByteSource,
    ) -> Result<Self, TokenizerError> {
        let model = header.require_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(TokenizerError::UnsupportedModel {
                model: model.into(),
            });
        }
        let pre = header
            .get("tokenizer.ggml.pre")
            .and_then(MetadataValue::as_str)
            .unwrap_or("default");
        let (pre_tokenizer, ignore_merges) = pre_tokenizer_for(pre)?;

        let tokens = strings(
            header.read_array(source, "tokenizer.ggml.tokens")?,
            "tokenizer.ggml.tokens",
        )?;
        let merges = strings(
            header.read_array(source, "tokenizer.ggml.merges")?,
            "tokenizer.ggml.merges",
        )?;
        let types: Vec<i64> = match header.get("tokenizer.ggml.token_type") {
            None => Vec::new(),
            Some(_) => header
                .read_array(source, "tokenizer.ggml.token_type")?
                .iter()
                .map(|v| {
                    v.as_i64()
                        .ok_or_else(|| bad("a token type is not an integer"))
                })
                .collect::<Result<_, _>>()?,
        };
        if !types.is_empty() && types.len() != tokens.len() {
            return Err(bad(&format!(
                "{} token types for {} tokens",
                types.len(),
                tokens.len()
            )));
        }

        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(id, t)| (t.clone(), id as u32))
            .collect();
        if vocab.len() != tokens.len() {
            return Err(bad("duplicate tokens in the vocabulary"));
        }
        let merges = merges
            .iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| bad(&format!("merge `{m}` is not two tokens")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(ignore_merges)
            .build()
            .map_err(TokenizerError::library)?;

        let mut inner = tokenizers::Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        // Control tokens are special (parsed whole, skippable on decode); user-defined ones
        // are parsed whole too but are ordinary text.
        let (special, user_defined): (Vec<AddedToken>, Vec<AddedToken>) = types
            .iter()
            .enumerate()
            .filter(|&(_, &t)| t == TOKEN_TYPE_CONTROL || t == TOKEN_TYPE_USER_DEFINED)
            .map(|(id, &t)| {
                AddedToken::from(tokens[id].clone(), t == TOKEN_TYPE_CONTROL).normalized(false)
            })
            .partition(|t| t.special);
        inner
            .add_special_tokens(special)
            .map_err(TokenizerError::library)?;
        inner
            .add_tokens(user_defined)
            .map_err(TokenizerError::library)?;

        let id = |key: &str| -> Result<Option<u32>, TokenizerError> {
            match header.get(key) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .filter(|&v| (v as usize) < tokens.len())
                    .map(Some)
                    .ok_or_else(|| bad(&format!("{key} is not a token id"))),
            }
        };
        let add_bos = header
            .get("tokenizer.ggml.add_bos_token")
            .and_then(MetadataValue::as_bool)
            .unwrap_or(false);
        Ok(Self::from_parts(
            inner,
            id("tokenizer.ggml.bos_token_id")?,
            id("tokenizer.ggml.eos_token_id")?,
            add_bos,
        ))
    }
}

/// The pre-tokenizer for a `tokenizer.ggml.pre` name, and whether BPE ignores merges for
/// words that are whole tokens (Llama 3 does; HF `ignore_merges`).
fn pre_tokenizer_for(pre: &str) -> Result<(PreTokenizerWrapper, bool), TokenizerError> {
    match pre {
        "llama-bpe" | "llama3" => {
            let split = Split::new(
                SplitPattern::Regex(LLAMA3_SPLIT.into()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(TokenizerError::library)?;
            let pre = Sequence::new(vec![
                split.into(),
                ByteLevel::new(false, true, false).into(),
            ]);
            Ok((pre.into(), true))
        }
        // SmolLM2's tokenizer.json: single digits, then GPT-2's byte-level regex.
        "smollm" => {
            let pre = Sequence::new(vec![
                Digits::new(true).into(),
                ByteLevel::new(false, true, true).into(),
            ]);
            Ok((pre.into(), false))
        }
        other => Err(TokenizerError::UnsupportedPreTokenizer { pre: other.into() }),
    }
}

fn strings(values: Vec<MetadataValue>, key: &str) -> Result<Vec<String>, TokenizerError> {
    values
        .into_iter()
        .map(|v| match v {
            MetadataValue::String(s) => Ok(s),
            _ => Err(bad(&format!("{key} holds a non-string"))),
        })
        .collect()
}

fn bad(detail: &str) -> TokenizerError {
    TokenizerError::BadVocabulary {
        detail: detail.into(),
    }
}
