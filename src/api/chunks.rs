//! The OpenAI objects the local backend produces, shaped as an OpenAI-compatible endpoint sends
//! them (the remote backend passes the endpoint's own through): `chat.completion.chunk`s of a
//! stream — the assistant role first, then content deltas, then the finish reason, then usage
//! in a chunk with no choices (as `stream_options.include_usage` asks) — or one `chat.completion`.
//! [`LocalAnswer`] assembles them from the engine's deltas and completion.

use serde_json::{Value, json};

use crate::engine::{Completion, Delta, FinishReason};

/// One local answer's OpenAI objects, built as the engine's steps come: the role chunk, a
/// chunk per non-empty delta, then the end ([`LocalAnswer::end`]).
#[derive(Debug, Clone)]
pub struct LocalAnswer {
    ids: ResponseIds,
}

/// The objects that end an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerEnd {
    /// The finish-reason chunk, then the usage chunk (streaming).
    pub chunks: Vec<Value>,
    /// The whole `chat.completion` (not streaming).
    pub completion: Value,
}

impl LocalAnswer {
    /// An answer whose objects carry `ids`.
    pub fn new(ids: ResponseIds) -> Self {
        Self { ids }
    }

    /// The first chunk of a stream.
    pub fn role_chunk(&self) -> Value {
        self.ids.role_chunk()
    }

    /// The chunk for one step's text; `None` when the step completed no text.
    pub fn delta_chunk(&self, delta: &Delta) -> Option<Value> {
        (!delta.text.is_empty()).then(|| self.ids.content_chunk(&delta.text))
    }

    /// The end of an answer that `completion` finished; `None` for a cancelled one, which has
    /// no OpenAI ending (the caller reports `aborted`).
    pub fn end(&self, completion: &Completion) -> Option<AnswerEnd> {
        let finish_reason = match completion.finish_reason {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => return None,
        };
        let usage = usage(
            completion.usage.prompt_tokens,
            completion.usage.completion_tokens,
            completion.cached_tokens,
        );
        Some(AnswerEnd {
            chunks: vec![
                self.ids.finish_chunk(finish_reason),
                self.ids.usage_chunk(&usage),
            ],
            completion: self.ids.completion(&completion.text, finish_reason, &usage),
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Usage;

    fn answer() -> LocalAnswer {
        LocalAnswer::new(ResponseIds::new("m", 7, 0xab))
    }

    fn completion(finish_reason: FinishReason) -> Completion {
        Completion {
            ids: vec![1, 2, 3],
            text: "Hi there".into(),
            finish_reason,
            usage: Usage {
                prompt_tokens: 5,
                completion_tokens: 3,
                total_tokens: 8,
            },
            cached_tokens: 2,
        }
    }

    #[test]
    fn deltas_become_content_chunks_and_empty_ones_none() {
        let a = answer();
        assert_eq!(a.role_chunk()["choices"][0]["delta"]["role"], "assistant");
        let delta = |text: &str| Delta {
            id: Some(1),
            text: text.into(),
        };
        assert_eq!(a.delta_chunk(&delta("")), None);
        let chunk = a.delta_chunk(&delta("Hi")).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], "chatcmpl-local-00000000000000ab");
        assert_eq!(chunk["choices"][0]["delta"]["content"], "Hi");
    }

    #[test]
    fn the_end_carries_the_finish_reason_and_usage_and_cancelled_has_none() {
        let a = answer();
        for (reason, name) in [
            (FinishReason::Stop, "stop"),
            (FinishReason::Length, "length"),
        ] {
            let end = a.end(&completion(reason)).unwrap();
            assert_eq!(end.chunks.len(), 2);
            assert_eq!(end.chunks[0]["choices"][0]["finish_reason"], name);
            assert_eq!(end.chunks[1]["choices"], json!([]));
            assert_eq!(end.chunks[1]["usage"]["total_tokens"], 8);
            assert_eq!(
                end.chunks[1]["usage"]["prompt_tokens_details"]["cached_tokens"],
                2
            );
            assert_eq!(end.completion["object"], "chat.completion");
            assert_eq!(
                end.completion["choices"][0]["message"]["content"],
                "Hi there"
            );
            assert_eq!(end.completion["choices"][0]["finish_reason"], name);
        }
        assert_eq!(a.end(&completion(FinishReason::Cancelled)), None);
    }
}
