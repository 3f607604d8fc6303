//! What the endpoint's answers hold: a body read by its content type, a stream's events as
//! chunks (complete only with `[DONE]` or a `finish_reason`), a whole `chat.completion` checked
//! (and turned into chunks for a stream request), and a body that is none of these as a typed
//! error that is never retried.

use serde_json::Value;

use super::protocol::{error_for_status, shorten};
use super::sse::{SseEvent, SseParser};
use crate::api::{ApiError, ErrorCode};

/// The error for an answer the endpoint accepted (HTTP 2xx) but whose body is not what was
/// asked for: `network`, with the status (so it is never retried: the request was answered,
/// and may have been billed) and the first bytes of what came instead.
pub fn unexpected_body(status: u16, content_type: &str, what: &str, body: &str) -> ApiError {
    let kind = match content_type {
        "" => "no content type".to_string(),
        t => t.to_string(),
    };
    ApiError::new(
        ErrorCode::Network,
        format!(
            "the endpoint answered with {what} (HTTP {status}, {kind}): {}",
            shorten(body)
        ),
    )
    .with_status(status)
}

/// How a response's body is read, by its `Content-Type` and whether a stream was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// Server-sent events (`text/event-stream`; also a stream answer with no content type).
    EventStream,
    /// One JSON document: a `chat.completion` (converted into chunks for a stream request).
    Json,
    /// Anything else (an HTML error page from a proxy, plain text): a typed error.
    Other,
}

impl BodyKind {
    /// The kind of a body with `content_type` (the header's value, if any).
    pub fn of(content_type: Option<&str>, stream: bool) -> Self {
        let media = content_type
            .and_then(|t| t.split(';').next())
            .map(|t| t.trim().to_ascii_lowercase());
        match media.as_deref() {
            Some("text/event-stream") => BodyKind::EventStream,
            Some(t) if t == "application/json" || t.ends_with("+json") => BodyKind::Json,
            None | Some("") if stream => BodyKind::EventStream,
            None | Some("") => BodyKind::Json,
            Some(_) => BodyKind::Other,
        }
    }
}

/// Reads a whole JSON answer: a `chat.completion`, or the typed error it is instead.
pub fn parse_completion(status: u16, content_type: &str, body: &str) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_str(body)
        .map_err(|_| unexpected_body(status, content_type, "what is not JSON", body))?;
    if value.get("error").is_some() {
        return Err(unexpected_body(status, content_type, "an error", body));
    }
    if value.get("choices").is_none_or(|c| !c.is_array()) {
        return Err(unexpected_body(
            status,
            content_type,
            "JSON that is not a chat.completion",
            body,
        ));
    }
    Ok(value)
}

/// A `chat.completion` sent to a streaming request, as the chunks its stream would have
/// carried: each choice's whole message in one delta, its finish reason, then the usage.
pub fn completion_as_chunks(completion: &Value) -> Vec<Value> {
    let mut base = serde_json::Map::new();
    for key in ["id", "created", "model", "system_fingerprint"] {
        if let Some(v) = completion.get(key) {
            base.insert(key.into(), v.clone());
        }
    }
    base.insert("object".into(), "chat.completion.chunk".into());
    let chunk = |choices: Value| {
        let mut chunk = base.clone();
        chunk.insert("choices".into(), choices);
        Value::Object(chunk)
    };
    let choices = completion["choices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut chunks = Vec::new();
    for (i, choice) in choices.iter().enumerate() {
        let index = choice.get("index").cloned().unwrap_or(Value::from(i));
        let mut delta = choice.get("message").cloned().unwrap_or(Value::Null);
        if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
            for (n, call) in calls.iter_mut().enumerate() {
                if call.get("index").is_none() {
                    call["index"] = Value::from(n);
                }
            }
        }
        chunks.push(chunk(serde_json::json!([
            {"index": index, "delta": delta, "finish_reason": null}
        ])));
        chunks.push(chunk(serde_json::json!([
            {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason").cloned().unwrap_or(Value::Null)}
        ])));
    }
    if let Some(usage) = completion.get("usage") {
        let mut last = chunk(serde_json::json!([]));
        last["usage"] = usage.clone();
        chunks.push(last);
    }
    chunks
}

/// One thing the stream delivered.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// A `chat.completion.chunk`, as the endpoint sent it.
    Chunk(Value),
    /// `[DONE]`: the stream is complete.
    Done,
}

/// Turns the body of a streaming response into chunks: SSE events → JSON chunks, `[DONE]`,
/// and errors the endpoint reports inside the stream (`{"error": …}`).
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    sse: SseParser,
    done: bool,
    /// A chunk with a `finish_reason` has come: the answer is complete even without `[DONE]`.
    finished: bool,
}

impl ChunkDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes the next piece of the body: its chunks in order, ending with an error if one of
    /// its events is one (the chunks before it still count). Nothing after `[DONE]` or an
    /// error counts.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<StreamItem, ApiError>> {
        let events = self.sse.push(bytes);
        self.decode(events)
    }

    /// Decodes what remains at the end of the body. A body that ends without `[DONE]` is
    /// complete if a chunk carried a `finish_reason` (some servers omit `[DONE]`); otherwise it
    /// was cut off (a proxy's idle timeout, a dropped connection) and ends in a `network` error
    /// after the chunks it did deliver. The last item is `Done` or that error.
    pub fn finish(&mut self) -> Vec<Result<StreamItem, ApiError>> {
        let events = self.sse.finish();
        let mut items = self.decode(events);
        if !self.done {
            self.done = true;
            items.push(match self.finished {
                true => Ok(StreamItem::Done),
                false => Err(ApiError::new(
                    ErrorCode::Network,
                    "the stream ended before the answer did (no finish_reason, no [DONE]): \
                     the connection was cut",
                )),
            });
        }
        items
    }

    /// Whether the stream is over (`[DONE]` or an error seen).
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn decode(&mut self, events: Vec<SseEvent>) -> Vec<Result<StreamItem, ApiError>> {
        let mut items = Vec::new();
        for event in events {
            if self.done {
                break;
            }
            let item = decode_event(&event.data);
            self.done = !matches!(item, Ok(StreamItem::Chunk(_)));
            if let Ok(StreamItem::Chunk(chunk)) = &item {
                self.finished |= has_finish_reason(chunk);
            }
            items.push(item);
        }
        items
    }
}

/// Whether any choice of `chunk` has ended.
fn has_finish_reason(chunk: &Value) -> bool {
    chunk["choices"]
        .as_array()
        .is_some_and(|choices| choices.iter().any(|c| !c["finish_reason"].is_null()))
}

/// One event's data: a chunk, `[DONE]`, or the error it reports or is.
fn decode_event(data: &str) -> Result<StreamItem, ApiError> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(StreamItem::Done);
    }
    let value: Value = serde_json::from_str(data).map_err(|e| {
        ApiError::new(
            ErrorCode::Network,
            format!(
                "the endpoint sent malformed JSON in its stream ({e}): {}",
                shorten(data)
            ),
        )
    })?;
    if let Some(error) = value.get("error") {
        let status = error
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| (400..600).contains(c))
            .unwrap_or(500);
        return Err(error_for_status(status, data, None));
    }
    if !value.is_object() || value.get("choices").is_none_or(|c| !c.is_array()) {
        return Err(ApiError::new(
            ErrorCode::Network,
            format!(
                "the endpoint sent a chunk without choices: {}",
                shorten(data)
            ),
        ));
    }
    Ok(StreamItem::Chunk(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::protocol::RetryPolicy;
    use serde_json::json;

    fn chunk(text: &str) -> String {
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]})
            .to_string()
    }

    #[test]
    fn the_stream_yields_chunks_then_done_and_ignores_what_follows() {
        let body = format!(
            "data: {}\n\ndata: {}\n\ndata: [DONE]\n\ndata: {}\n\n",
            chunk("a"),
            chunk("b"),
            chunk("late")
        );
        let mut decoder = ChunkDecoder::new();
        let mut items = decoder.push(body.as_bytes());
        items.extend(decoder.finish());
        assert_eq!(items.len(), 3);
        assert_eq!(items[2], Ok(StreamItem::Done));
        assert!(
            matches!(&items[1], Ok(StreamItem::Chunk(c)) if c["choices"][0]["delta"]["content"] == "b")
        );
    }

    #[test]
    fn a_stream_without_done_ends_after_a_finish_reason_and_is_cut_off_without_one() {
        let finish =
            json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
        let mut decoder = ChunkDecoder::new();
        let body = format!("data: {}\n\ndata: {finish}\n\n", chunk("a"));
        assert_eq!(decoder.push(body.as_bytes()).len(), 2);
        assert!(!decoder.is_done());
        assert_eq!(decoder.finish(), [Ok(StreamItem::Done)]);

        let mut decoder = ChunkDecoder::new();
        let items = decoder.push(format!("data: {}\n\n", chunk("a")).as_bytes());
        assert_eq!(items.len(), 1, "the chunk that came is delivered");
        let end = decoder.finish();
        let [Err(e)] = end.as_slice() else {
            panic!("{end:?}")
        };
        assert_eq!(e.code, ErrorCode::Network);
        assert!(
            e.message.contains("ended before the answer did"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bodies_are_read_by_their_content_type() {
        use BodyKind::*;
        let cases = [
            (Some("text/event-stream; charset=utf-8"), true, EventStream),
            (Some("application/json"), true, Json),
            (Some("application/problem+json"), false, Json),
            (Some("text/html; charset=utf-8"), true, Other),
            (Some("text/html"), false, Other),
            (None, true, EventStream),
            (None, false, Json),
        ];
        for (content_type, stream, kind) in cases {
            assert_eq!(BodyKind::of(content_type, stream), kind, "{content_type:?}");
        }
    }

    #[test]
    fn a_whole_answer_must_be_a_completion_and_a_bad_one_is_never_retried() {
        let ok = r#"{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"total_tokens":3}}"#;
        let completion = parse_completion(200, "application/json", ok).unwrap();
        let chunks = completion_as_chunks(&completion);
        assert_eq!(chunks.len(), 3);
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == "x")
        );
        assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "hi");
        assert_eq!(
            chunks[0]["choices"][0]["delta"]["tool_calls"][0]["index"],
            0
        );
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chunks[2]["usage"]["total_tokens"], 3);
        assert_eq!(chunks[2]["choices"], json!([]));

        let policy = RetryPolicy::default();
        for (body, what) in [
            ("<!doctype html><p>Bad gateway", "not JSON"),
            (r#"{"error": {"message": "overloaded"}}"#, "an error"),
            (r#"{"id": "x"}"#, "not a chat.completion"),
        ] {
            let e = parse_completion(200, "text/html", body).unwrap_err();
            assert_eq!(
                (e.code, e.status),
                (ErrorCode::Network, Some(200)),
                "{body}"
            );
            assert!(e.message.contains(what), "{}", e.message);
            assert_eq!(
                policy.delay(0, &e, 0.5),
                None,
                "an answered request is not sent again"
            );
        }
    }

    #[test]
    fn malformed_json_and_errors_in_the_stream_are_typed() {
        let mut decoder = ChunkDecoder::new();
        let body = format!(
            "data: {}\n\ndata: {{\"choices\": [\n\ndata: {}\n\n",
            chunk("a"),
            chunk("b")
        );
        let items = decoder.push(body.as_bytes());
        assert_eq!(
            items.len(),
            2,
            "the chunk before the error, the error, nothing after"
        );
        assert!(matches!(items[0], Ok(StreamItem::Chunk(_))));
        let err = items[1].clone().unwrap_err();
        assert_eq!(err.code, ErrorCode::Network);
        assert!(err.message.contains("malformed JSON"), "{}", err.message);
        assert!(decoder.is_done() && decoder.finish().is_empty());

        let first_error = |body: &[u8]| {
            let mut decoder = ChunkDecoder::new();
            decoder
                .push(body)
                .into_iter()
                .find_map(Result::err)
                .unwrap()
        };
        let err =
            first_error(b"data: {\"error\": {\"message\": \"overloaded\", \"code\": 503}}\n\n");
        assert_eq!((err.code, err.status), (ErrorCode::Network, Some(503)));
        assert!(err.message.contains("overloaded"));
        let err = first_error(b"data: {\"id\": 1}\n\n");
        assert!(err.message.contains("without choices"), "{}", err.message);
    }
}
