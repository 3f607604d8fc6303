//! The generation engine: a loaded model with its tokenizer and chat template, and the
//! prefill/decode loop — sampling, stop conditions, usage counts, streamed text deltas and
//! cancellation between tokens.
//!
//! An [`Engine`] is immutable while it generates: each call owns its KV cache, so a call that
//! fails leaves the engine as it was. A call that finishes (cancelled ones too) leaves its cache
//! behind for the next, which prefills only what its prompt does not share with it
//! ([`prefix::KeptCache`]).

pub mod bench;
pub mod constrain;
mod generation;
pub mod prefix;
pub mod sampling;
pub mod stop;
pub mod tools;

use std::ops::ControlFlow;

use serde::Serialize;
use serde_json::Value;

use crate::gguf::{ByteSource, GgufHeader, MetadataValue};
use crate::model::device::ComputeDevice;
use crate::model::error::ModelError;
use crate::model::llama::Llama;
use crate::model::plan::KvFormat;
use crate::model::weights::LoadProgress;
use crate::tokenizer::{
    ChatTemplate, RenderOptions, SpecialTokens, TemplateError, Tokenizer, TokenizerError,
};

use constrain::{Constrainer, Grammar};
pub use generation::{Generation, Step};
use prefix::KeptCache;
use sampling::SamplingParams;

/// Token texts that end a turn in the model families we run (llama.cpp treats the same
/// control tokens as end-of-generation).
const END_TOKEN_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "<|im_end|>",
    "<|endoftext|>",
];

/// Context size used when the caller does not choose one (capped by the model's).
pub const DEFAULT_CONTEXT_SIZE: usize = 4096;

/// What can go wrong while generating.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Loading or running the model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Tokenizing or detokenizing failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The chat template is missing or failed to render.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The prompt plus `max_tokens` do not fit in the context.
    #[error(
        "context overflow: {prompt_tokens} prompt tokens + max_tokens {max_tokens} exceed the context of {context_size}"
    )]
    ContextOverflow {
        /// Tokens in the prompt.
        prompt_tokens: usize,
        /// Tokens asked for.
        max_tokens: usize,
        /// Tokens the context holds.
        context_size: usize,
    },
    /// The model computed NaN logits: its weights (or the device) are broken.
    #[error("the model computed NaN logits (its weights hold NaN, or the GPU failed)")]
    NonFiniteLogits,
    /// A grammar for constrained decoding that does not compile (a bad JSON schema), or a
    /// constraint that failed while generating.
    #[error("constrained decoding: {detail}")]
    Grammar {
        /// What `llguidance` said.
        detail: String,
    },
    /// A request the engine cannot run (empty prompt, out-of-range setting).
    #[error("bad request: {detail}")]
    BadRequest {
        /// What was wrong.
        detail: String,
    },
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The caller cancelled between tokens.
    Cancelled,
}

/// Token counts, OpenAI-shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated (an end token included).
    pub completion_tokens: usize,
    /// The sum.
    pub total_tokens: usize,
}

/// One generation request.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// The prompt's token ids (a rendered chat or raw text, BOS included if wanted).
    pub prompt: Vec<u32>,
    /// At most this many new tokens.
    pub max_tokens: usize,
    /// How to choose each token.
    pub sampling: SamplingParams,
    /// Strings that end generation; they are not part of the text.
    pub stop: Vec<String>,
    /// Keep going past end tokens (for comparisons with reference sequences).
    pub ignore_eos: bool,
    /// What the answer must follow (constrained decoding), if anything.
    pub grammar: Option<Grammar>,
    /// Report each chosen token's log-probability and this many most likely alternatives
    /// (OpenAI's `logprobs` / `top_logprobs`); `None`: not asked.
    pub logprobs: Option<usize>,
}

/// One streamed step: the token chosen and the text it completed (often empty while a
/// multi-byte character or a possible stop string is held back).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Delta {
    /// The token id; `None` for the last delta, which releases text held back at the end.
    pub id: Option<u32>,
    /// New text, safe to show.
    pub text: String,
    /// The token's log-probability and the alternatives', when the request asked for them.
    pub logprobs: Option<TokenLogprobs>,
}

/// A chosen token's log-probability under the model's own distribution (the logits as the
/// model computed them: before biases, penalties, temperature and grammar), and the most likely
/// tokens' (OpenAI's `logprobs.content[]`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenLogprobs {
    /// The chosen token.
    pub chosen: TokenLogprob,
    /// The most likely tokens, most likely first.
    pub top: Vec<TokenLogprob>,
}

/// One token and its log-probability.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenLogprob {
    /// The token's bytes (a piece of UTF-8, possibly a partial character).
    pub bytes: Vec<u8>,
    /// Its natural-log probability.
    pub logprob: f32,
}

/// The outcome of a generation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Completion {
    /// The generated ids (an end token included, the tokens of a stop string too).
    pub ids: Vec<u32>,
    /// The text shown to the caller: no end token, nothing from a stop string on.
    pub text: String,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Token counts.
    pub usage: Usage,
    /// Prompt tokens whose keys and values were kept from the previous call (not run again).
    pub cached_tokens: usize,
}

/// A model ready to generate: weights on a device, tokenizer, chat template, end tokens.
#[derive(Debug)]
pub struct Engine {
    model: Llama,
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    end_tokens: Vec<u32>,
    context_size: usize,
    kv_format: KvFormat,
    kept: KeptCache,
    constrainer: Constrainer,
}

impl Engine {
    /// Loads a GGUF model onto `device`. `context_size` defaults to
    /// min([`DEFAULT_CONTEXT_SIZE`], the model's trained context).
    pub async fn load(
        header: &GgufHeader,
        source: &impl ByteSource,
        device: &ComputeDevice,
        context_size: Option<usize>,
        on_progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Self, EngineError> {
        let tokenizer = Tokenizer::from_gguf(header, source)?;
        let template = ChatTemplate::from_gguf(header, &tokenizer).ok();
        let model = Llama::load(header, source, device, on_progress).await?;
        let trained = model.config().context_length;
        let context_size = context_size.unwrap_or(DEFAULT_CONTEXT_SIZE.min(trained));
        if context_size == 0 {
            return Err(EngineError::BadRequest {
                detail: "context size 0".into(),
            });
        }
        let end_tokens = end_tokens(header, &tokenizer);
        let model_choice = device.choice();
        Ok(Self {
            model,
            tokenizer,
            template,
            end_tokens,
            context_size,
            kv_format: KvFormat::default_for(model_choice),
            kept: KeptCache::default(),
            constrainer: Constrainer::default(),
        })
    }

    /// Stores keys and values in `format` from the next generation on (by default q8 on the
    /// wgpu device, f32 on the CPU device, which has only f32). Checks now that a cache of the
    /// whole context can be made.
    pub fn set_kv_format(&mut self, format: KvFormat) -> Result<(), EngineError> {
        self.model.new_cache(self.context_size, format)?;
        self.kv_format = format;
        self.kept.clear();
        Ok(())
    }

    /// How keys and values are stored.
    pub fn kv_format(&self) -> KvFormat {
        self.kv_format
    }

    /// The model.
    pub fn model(&self) -> &Llama {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The ids that end generation.
    pub fn end_tokens(&self) -> &[u32] {
        &self.end_tokens
    }

    /// The `<|python_tag|>` token that starts Llama 3.1's built-in tool calls, if the model
    /// has one.
    pub fn python_tag(&self) -> Option<u32> {
        self.tokenizer.token_to_id("<|python_tag|>")
    }

    /// The token that ends an assistant's turn: the first of the known end-of-turn markers the
    /// vocabulary has (`<|eot_id|>` for Llama 3), else the model's EOS.
    fn turn_end(&self) -> Option<u32> {
        END_TOKEN_TEXTS
            .iter()
            .find_map(|t| self.tokenizer.token_to_id(t))
            .or(self.tokenizer.eos_id())
    }

    /// Tokens the context holds (prompt and output together).
    pub fn context_size(&self) -> usize {
        self.context_size
    }

    /// Renders OpenAI-shaped `messages` (and `tools`) with the model's chat template, ending
    /// with the assistant's header, and tokenizes the result (no BOS added: the template has it).
    pub fn chat_prompt(
        &self,
        messages: &Value,
        tools: Option<Value>,
    ) -> Result<Vec<u32>, EngineError> {
        let template = self.template.as_ref().ok_or(TemplateError::Missing)?;
        let options = RenderOptions {
            add_generation_prompt: true,
            tools,
            ..RenderOptions::default()
        };
        let text = template.render(&tools::messages_for_template(messages), &options)?;
        Ok(self.tokenizer.encode(&text, SpecialTokens::Parse)?)
    }

    /// Tokenizes a raw prompt, adding BOS when the model asks for it.
    pub fn text_prompt(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        let mut ids = Vec::new();
        if let (true, Some(bos)) = (self.tokenizer.add_bos(), self.tokenizer.bos_id()) {
            ids.push(bos);
        }
        ids.extend(self.tokenizer.encode(text, SpecialTokens::Parse)?);
        Ok(ids)
    }

    /// Generates from `request.prompt`, calling `on_delta` after every token; returning
    /// [`ControlFlow::Break`] from it cancels (finish reason [`FinishReason::Cancelled`]).
    /// A loop over [`Engine::start`] and [`Generation::next`].
    pub async fn generate(
        &self,
        request: &GenerateRequest,
        on_delta: &mut dyn FnMut(&Delta) -> ControlFlow<()>,
    ) -> Result<Completion, EngineError> {
        let mut generation = self.start(request.clone()).await?;
        loop {
            match generation.next().await? {
                Step::Finished(completion) => return Ok(completion),
                Step::Delta(delta) => {
                    if on_delta(&delta).is_break() {
                        return Ok(generation.cancel());
                    }
                }
            }
        }
    }
}

/// The ids that end generation: the metadata's EOS/EOT/EOM ids, and the model's tokens whose
/// text is a known end-of-turn marker.
fn end_tokens(header: &GgufHeader, tokenizer: &Tokenizer) -> Vec<u32> {
    let keys = [
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.eot_token_id",
        "tokenizer.ggml.eom_token_id",
    ];
    let mut ids: Vec<u32> = keys
        .iter()
        .filter_map(|k| header.get(k).and_then(MetadataValue::as_u64))
        .map(|id| id as u32)
        .chain(
            END_TOKEN_TEXTS
                .iter()
                .filter_map(|t| tokenizer.token_to_id(t)),
        )
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}
