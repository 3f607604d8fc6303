//! The OpenAI objects the local backend produces, shaped as an OpenAI-compatible endpoint sends
//! them (the remote backend passes the endpoint's own through): `chat.completion.chunk`s of a
//! stream — the assistant role first, then content deltas, then the finish reason, then usage
//! in a chunk with no choices (as `stream_options.include_usage` asks) — or one `chat.completion`.
//! [`LocalAnswer`] assembles them from the engine's deltas and completion.

use serde_json::{Value, json};

use super::ChatParams;
use crate::engine::constrain::Grammar;
use crate::engine::tools::{ToolCallParser, ToolEvent};
use crate::engine::{Completion, Delta, FinishReason, TokenLogprob};

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
    /// Every token's `logprobs.content[]` entry, when the request asked for them.
    logprobs: Option<Vec<Value>>,
    /// Entries not yet sent in a chunk (their tokens' text is held back).
    pending_logprobs: Vec<Value>,
    /// Only the first call is kept (`parallel_tool_calls: false`).
    single_call: bool,
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
            logprobs: None,
            pending_logprobs: Vec::new(),
            single_call: false,
        }
    }

    /// The same answer, reporting each token's log-probabilities (`logprobs: true`).
    pub fn with_logprobs(mut self) -> Self {
        self.logprobs = Some(Vec::new());
        self
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
        let answer = match names.is_empty() {
            true => Self::new(ids),
            false => {
                let guaranteed = matches!(params.grammar(), Some(Grammar::ToolCall(_)));
                Self::with_tool_calls(ids, ToolCallParser::new(names, python_tag, guaranteed))
            }
        };
        let answer = Self {
            single_call: !params.parallel_tool_calls,
            ..answer
        };
        match params.logprobs {
            Some(_) => answer.with_logprobs(),
            None => answer,
        }
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
        if let (Some(all), Some(logprobs)) = (&mut self.logprobs, &delta.logprobs) {
            let top: Vec<Value> = logprobs
                .top
                .iter()
                .map(|t| logprob_entry(t, None))
                .collect();
            let entry = logprob_entry(&logprobs.chosen, Some(top));
            all.push(entry.clone());
            self.pending_logprobs.push(entry);
        }
        let mut chunks = self.chunks(events);
        self.attach_logprobs(&mut chunks);
        chunks
    }

    /// Puts the entries not yet sent on the last of `chunks`.
    fn attach_logprobs(&mut self, chunks: &mut [Value]) {
        if let Some(last) = chunks.last_mut()
            && !self.pending_logprobs.is_empty()
        {
            let content = std::mem::take(&mut self.pending_logprobs);
            last["choices"][0]["logprobs"] = json!({ "content": content });
        }
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
        self.attach_logprobs(&mut chunks);
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
        let mut completion = self.ids.completion(message, finish_reason, &usage);
        if let Some(all) = &self.logprobs {
            completion["choices"][0]["logprobs"] = json!({ "content": all });
        }
        Some(AnswerEnd { chunks, completion })
    }

    /// The chunks for `events`, recorded for the whole answer.
    fn chunks(&mut self, events: Vec<ToolEvent>) -> Vec<Value> {
        let ids = &self.ids;
        let single_call = self.single_call;
        events
            .into_iter()
            .filter(|event| match event {
                ToolEvent::CallStart { index, .. } | ToolEvent::Arguments { index, .. } => {
                    *index == 0 || !single_call
                }
                ToolEvent::Content(_) => true,
            })
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

/// One token's `logprobs.content[]` entry (`top_logprobs` given for a chosen token).
fn logprob_entry(token: &TokenLogprob, top: Option<Vec<Value>>) -> Value {
    let mut entry = json!({
        "token": String::from_utf8_lossy(&token.bytes),
        "logprob": token.logprob,
        "bytes": token.bytes,
    });
    if let Some(top) = top {
        entry["top_logprobs"] = Value::Array(top);
    }
    entry
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
mod tests;
