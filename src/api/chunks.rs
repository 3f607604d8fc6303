//! The OpenAI objects the local backend produces, shaped as an OpenAI-compatible endpoint sends
//! them (the remote backend passes the endpoint's own through): `chat.completion.chunk`s of a
//! stream — the assistant role first, then content deltas, then the finish reason, then usage
//! in a chunk with no choices (as `stream_options.include_usage` asks) — or one `chat.completion`.

use serde_json::{Value, json};

/// What every object of one response shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseIds {
    /// `chatcmpl-…`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The model's name.
    pub model: String,
}

impl ResponseIds {
    /// Ids for a response created at `created` (Unix seconds); `nonce` makes the id unique.
    pub fn new(model: &str, created: u64, nonce: u64) -> Self {
        Self {
            id: format!("chatcmpl-local-{nonce:016x}"),
            created,
            model: model.to_string(),
        }
    }

    fn chunk(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }

    /// The first chunk: the assistant's role, no text yet.
    pub fn role_chunk(&self) -> Value {
        self.chunk(json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]))
    }

    /// A chunk of text.
    pub fn content_chunk(&self, text: &str) -> Value {
        self.chunk(json!([{"index": 0, "delta": {"content": text}, "finish_reason": null}]))
    }

    /// The chunk that ends the choice: `"stop"` or `"length"`.
    pub fn finish_chunk(&self, finish_reason: &str) -> Value {
        self.chunk(json!([{"index": 0, "delta": {}, "finish_reason": finish_reason}]))
    }

    /// The last chunk: no choices, the token counts.
    pub fn usage_chunk(&self, usage: &Value) -> Value {
        let mut chunk = self.chunk(json!([]));
        chunk["usage"] = usage.clone();
        chunk
    }

    /// The whole answer as one `chat.completion`.
    pub fn completion(&self, text: &str, finish_reason: &str, usage: &Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }],
            "usage": usage,
        })
    }
}

/// OpenAI's usage object; `cached_tokens` of the prompt's were not run again (their keys and
/// values were kept from an earlier request), as OpenAI reports prompt caching.
pub fn usage(prompt_tokens: usize, completion_tokens: usize, cached_tokens: usize) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": { "cached_tokens": cached_tokens },
    })
}
