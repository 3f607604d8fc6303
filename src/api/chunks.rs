//! The OpenAI objects the local backend produces, shaped as an OpenAI-compatible endpoint sends
//! them (the remote backend passes the endpoint's own through): `chat.completion.chunk`s of a
//! stream — the assistant role first, then content deltas, then the finish reason, then usage
//! in a chunk with no choices (as `stream_options.include_usage` asks) — or one `chat.completion`.
//! [`LocalAnswer`] assembles them from the engine's deltas and completion.

use serde_json::{Value, json};

use super::ChatParams;
use crate::engine::constrain::Grammar;
use crate::engine::tools::{ToolCallParser, ToolEvent};
use crate::engine::{Completion, Delta, FinishReason};

/// One local answer's OpenAI objects, built as the engine's steps come: the role chunk, then
/// the chunks of each step (content, or tool-call deltas when a [`ToolCallParser`] reads the
/// text), then the end ([`LocalAnswer::end`]).
#[derive(Debug, Clone)]
pub struct LocalAnswer {
    ids: ResponseIds,
    parser: Option<ToolCallParser>,
    content: String,
    /// Each call's name and arguments so far.
    calls: Vec<(String, String)>,
}

/// The objects that end an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerEnd {
    /// The chunks of text held back to the end (a call made whole), the finish-reason chunk,
    /// then the usage chunk (streaming).
    pub chunks: Vec<Value>,
    /// The whole `chat.completion` (not streaming).
    pub completion: Value,
}

impl LocalAnswer {
    /// An answer whose objects carry `ids`; its text is all content.
    pub fn new(ids: ResponseIds) -> Self {
        Self {
            ids,
            parser: None,
            content: String::new(),
            calls: Vec::new(),
        }
    }

    /// An answer whose text `parser` reads for tool calls.
    pub fn with_tool_calls(ids: ResponseIds, parser: ToolCallParser) -> Self {
        Self {
            parser: Some(parser),
            ..Self::new(ids)
        }
    }

    /// The answer to `params`: its text read for calls to the functions it may call (the
    /// arguments streamed as they come when a call grammar guarantees them valid).
    /// `python_tag`: the model's `<|python_tag|>` id.
    pub fn for_request(ids: ResponseIds, params: &ChatParams, python_tag: Option<u32>) -> Self {
        let names: Vec<String> = params
            .callable_functions()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        if names.is_empty() {
            return Self::new(ids);
        }
        let guaranteed = matches!(params.grammar(), Some(Grammar::ToolCall(_)));
        Self::with_tool_calls(ids, ToolCallParser::new(names, python_tag, guaranteed))
    }

    /// The first chunk of a stream.
    pub fn role_chunk(&self) -> Value {
        self.ids.role_chunk()
    }

    /// The chunks for one step's text (none while text is held back).
    pub fn step(&mut self, delta: &Delta) -> Vec<Value> {
        let events = match &mut self.parser {
            Some(parser) => parser.push(delta),
            None if delta.text.is_empty() => vec![],
            None => vec![ToolEvent::Content(delta.text.clone())],
        };
        self.chunks(events)
    }

    /// The end of an answer that `completion` finished; `None` for a cancelled one, which has
    /// no OpenAI ending (the caller reports `aborted`). An answer that made calls and ended
    /// on its own finishes with `"tool_calls"`.
    pub fn end(&mut self, completion: &Completion) -> Option<AnswerEnd> {
        let events = self.parser.as_mut().map(|p| p.finish()).unwrap_or_default();
        let mut chunks = self.chunks(events);
        let finish_reason = match completion.finish_reason {
            FinishReason::Stop if !self.calls.is_empty() => "tool_calls",
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => return None,
        };
        let usage = usage(
            completion.usage.prompt_tokens,
            completion.usage.completion_tokens,
            completion.cached_tokens,
        );
        chunks.push(self.ids.finish_chunk(finish_reason));
        chunks.push(self.ids.usage_chunk(&usage));
        let mut message = json!({"role": "assistant", "content": self.content});
        if !self.calls.is_empty() {
            if self.content.is_empty() {
                message["content"] = Value::Null;
            }
            let calls = self.calls.iter().enumerate();
            let calls = calls.map(|(i, (name, arguments))| self.ids.tool_call(i, name, arguments));
            message["tool_calls"] = Value::Array(calls.collect());
        }
        Some(AnswerEnd {
            chunks,
            completion: self.ids.completion(message, finish_reason, &usage),
        })
    }

    /// The chunks for `events`, recorded for the whole answer.
    fn chunks(&mut self, events: Vec<ToolEvent>) -> Vec<Value> {
        let ids = &self.ids;
        events
            .into_iter()
            .map(|event| match event {
                ToolEvent::Content(text) => {
                    self.content.push_str(&text);
                    ids.content_chunk(&text)
                }
                ToolEvent::CallStart { index, name } => {
                    let start = ids.tool_call(index, &name, "");
                    self.calls.push((name, String::new()));
                    ids.delta_chunk(json!({"tool_calls": [start]}))
                }
                ToolEvent::Arguments { index, text } => {
                    if let Some((_, arguments)) = self.calls.get_mut(index) {
                        arguments.push_str(&text);
                    }
                    let piece = json!({"index": index, "function": {"arguments": text}});
                    ids.delta_chunk(json!({"tool_calls": [piece]}))
                }
            })
            .collect()
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
        self.delta_chunk(json!({"content": text}))
    }

    /// A chunk carrying `delta` for the one choice.
    fn delta_chunk(&self, delta: Value) -> Value {
        self.chunk(json!([{"index": 0, "delta": delta, "finish_reason": null}]))
    }

    /// Call `index` as OpenAI writes it (in a message, and the first delta of a streamed one).
    fn tool_call(&self, index: usize, name: &str, arguments: &str) -> Value {
        let nonce = self.id.rsplit('-').next().unwrap_or_default();
        json!({
            "index": index,
            "id": format!("call_{nonce}_{index}"),
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        })
    }

    /// The chunk that ends the choice: `"stop"`, `"length"` or `"tool_calls"`.
    pub fn finish_chunk(&self, finish_reason: &str) -> Value {
        self.chunk(json!([{"index": 0, "delta": {}, "finish_reason": finish_reason}]))
    }

    /// The last chunk: no choices, the token counts.
    pub fn usage_chunk(&self, usage: &Value) -> Value {
        let mut chunk = self.chunk(json!([]));
        chunk["usage"] = usage.clone();
        chunk
    }

    /// The whole answer as one `chat.completion` whose choice carries `message`.
    pub fn completion(&self, message: Value, finish_reason: &str, usage: &Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": message,
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

    fn delta(text: &str) -> Delta {
        Delta {
            id: Some(1),
            text: text.into(),
        }
    }

    #[test]
    fn deltas_become_content_chunks_and_empty_ones_none() {
        let mut a = answer();
        assert_eq!(a.role_chunk()["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(a.step(&delta("")), Vec::<Value>::new());
        let chunks = a.step(&delta("Hi"));
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0]["object"], "chat.completion.chunk");
        assert_eq!(chunks[0]["id"], "chatcmpl-local-00000000000000ab");
        assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "Hi");
    }

    #[test]
    fn the_end_carries_the_finish_reason_and_usage_and_cancelled_has_none() {
        for (reason, name) in [
            (FinishReason::Stop, "stop"),
            (FinishReason::Length, "length"),
        ] {
            let mut a = answer();
            a.step(&delta("Hi "));
            a.step(&delta("there"));
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
            let message = &end.completion["choices"][0]["message"];
            assert_eq!(
                message,
                &json!({"role": "assistant", "content": "Hi there"})
            );
            assert_eq!(end.completion["choices"][0]["finish_reason"], name);
        }
        assert_eq!(answer().end(&completion(FinishReason::Cancelled)), None);
    }

    #[test]
    fn a_call_streams_as_tool_call_deltas_and_ends_with_tool_calls() {
        let parser = ToolCallParser::new(vec!["get_weather".into()], None, true);
        let mut a = LocalAnswer::with_tool_calls(ResponseIds::new("m", 7, 0xab), parser);
        let mut chunks = Vec::new();
        for piece in [
            r#"{"name": "get_weather", "param"#,
            r#"eters": {"city""#,
            r#": "Paris"}}"#,
        ] {
            chunks.extend(a.step(&delta(piece)));
        }
        let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
        assert_eq!(
            deltas[0],
            &json!({"tool_calls": [{"index": 0, "id": "call_00000000000000ab_0", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}]})
        );
        let arguments: String = deltas[1..]
            .iter()
            .map(|d| {
                d["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(arguments, r#"{"city": "Paris"}"#);
        assert!(deltas[1..].iter().all(|d| d["tool_calls"][0]["index"] == 0));
        let end = a.end(&completion(FinishReason::Stop)).unwrap();
        assert_eq!(end.chunks[0]["choices"][0]["finish_reason"], "tool_calls");
        let choice = &end.completion["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        assert_eq!(
            choice["message"]["tool_calls"][0]["function"],
            json!({"name": "get_weather", "arguments": r#"{"city": "Paris"}"#})
        );
    }

    #[test]
    fn a_call_given_whole_comes_at_the_end_and_prose_stays_content() {
        let parser = || ToolCallParser::new(vec!["f".into()], None, false);
        let mut a = LocalAnswer::with_tool_calls(ResponseIds::new("m", 7, 1), parser());
        assert!(
            a.step(&delta(r#"{"name": "f", "parameters": {}"#))
                .is_empty()
        );
        let end = a.end(&completion(FinishReason::Length)).unwrap();
        // Cut short: the held text is content, the reason "length".
        assert_eq!(
            end.chunks[0]["choices"][0]["delta"]["content"],
            r#"{"name": "f", "parameters": {}"#
        );
        assert_eq!(end.completion["choices"][0]["finish_reason"], "length");
        assert!(
            end.completion["choices"][0]["message"]
                .get("tool_calls")
                .is_none()
        );
        let mut b = LocalAnswer::with_tool_calls(ResponseIds::new("m", 7, 1), parser());
        let chunks = b.step(&delta("Sunny, 22 degrees."));
        assert_eq!(
            chunks[0]["choices"][0]["delta"]["content"],
            "Sunny, 22 degrees."
        );
        let end = b.end(&completion(FinishReason::Stop)).unwrap();
        assert_eq!(end.completion["choices"][0]["finish_reason"], "stop");
    }
}
