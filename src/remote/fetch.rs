//! The transport, in the browser: `fetch` (gloo-net) with the body read as it arrives, retries
//! before the first byte, abort through an `AbortSignal`, and a stall timeout while streaming.

use std::collections::VecDeque;
use std::fmt;

use futures_util::future::{Either, select};
use gloo_timers::future::TimeoutFuture;
use js_sys::{Function, Promise, Reflect, Uint8Array};
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, AbortSignal, ReadableStreamDefaultReader};

use super::abort::{AbortListener, aborted, follow, sleep_unless_aborted};
use super::body::{
    BodyKind, ChunkDecoder, StreamItem, completion_as_chunks, parse_completion, unexpected_body,
};
use super::protocol::{RetryPolicy, error_for_status, parse_retry_after};
use crate::api::{ApiError, ChatParams, ErrorCode};

/// Where the bearer token comes from. It is held only as long as the client lives, never
/// stored and never printed (`Debug` shows which kind, not the token).
pub enum Auth {
    /// No `Authorization` header (a same-origin proxy adds it).
    None,
    /// A fixed token.
    Key(String),
    /// A JS function returning the token (or a promise of it), called before every request.
    Callback(Function),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Auth::None => "Auth::None",
            Auth::Key(_) => "Auth::Key(<hidden>)",
            Auth::Callback(_) => "Auth::Callback",
        })
    }
}

/// An OpenAI-compatible endpoint.
#[derive(Debug)]
pub struct RemoteClient {
    /// `…/v1` (no trailing slash needed).
    pub base_url: String,
    /// The model name sent with every request.
    pub model: String,
    /// The token.
    pub auth: Auth,
    /// Retries before the first byte.
    pub retry: RetryPolicy,
    /// A stream that sends nothing for this long fails with `network`.
    pub stall_timeout_ms: u32,
    /// An answer has come from the endpoint before: a later failure to fetch is then CORS or a
    /// connection dropped after the server took the request, not an endpoint out of reach, and
    /// is not retried (the request may have been answered).
    pub reached: std::cell::Cell<bool>,
}

/// How an attempt failed: whether the retry policy may send the request again.
enum Failure {
    /// The policy decides (by the status: 429, 503, or no connection).
    MayRetry(ApiError),
    /// Never sent again.
    Final(ApiError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::MayRetry(e)
    }
}

/// A whole answer (`stream: false`) may take this many stall timeouts to come.
const WHOLE_ANSWER_STALLS: u32 = 10;

/// What a request opened.
pub enum Opened {
    /// A streaming answer, read chunk by chunk.
    Stream(BodyReader),
    /// A stream request answered with one `chat.completion` (JSON): its chunks.
    Chunks(Vec<Value>),
    /// A whole `chat.completion` (`stream: false`).
    Completion(Value),
}

impl RemoteClient {
    /// Sends `params`, retrying 429/503 and failures to connect as [`RetryPolicy`] says, until
    /// the answer's first byte; `signal` aborts at any point.
    pub async fn send(
        &self,
        params: &ChatParams,
        signal: &AbortSignal,
    ) -> Result<Opened, ApiError> {
        let url = format!("{}/chat/completions", self.base_url.trim_end_matches('/'));
        let body = params.remote_body(&self.model);
        let mut retry = 0;
        loop {
            let error = match self.attempt(&url, &body, params.stream, signal).await {
                Ok(opened) => return Ok(opened),
                Err(Failure::MayRetry(e)) => e,
                Err(Failure::Final(e)) => return Err(e),
            };
            if signal.aborted() {
                return Err(aborted());
            }
            match self.retry.delay(retry, &error, js_sys::Math::random()) {
                Some(seconds) => {
                    log::warn!("{}; retrying in {seconds:.1} s", error.message);
                    sleep_unless_aborted((seconds * 1000.0) as u32, Some(signal)).await?;
                    retry += 1;
                }
                None => return Err(error),
            }
        }
    }

    async fn attempt(
        &self,
        url: &str,
        body: &Value,
        stream: bool,
        signal: &AbortSignal,
    ) -> Result<Opened, Failure> {
        // This attempt's own abort, so a time limit can stop it without aborting the request.
        let attempt = AbortController::new()
            .map_err(|_| ApiError::new(ErrorCode::BadRequest, "no AbortController"))?;
        let following = follow(signal, &attempt);
        let accept = match stream {
            true => "text/event-stream",
            false => "application/json",
        };
        let mut request = gloo_net::http::Request::post(url)
            .header("content-type", "application/json")
            .header("accept", accept)
            .abort_signal(Some(&attempt.signal()));
        if let Some(token) = self.token().await? {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        let request = request
            .body(body.to_string())
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
        // A stream's headers come at once; a whole answer's only when it is generated.
        let limit_ms = match stream {
            true => self.stall_timeout_ms,
            false => self.stall_timeout_ms.saturating_mul(WHOLE_ANSWER_STALLS),
        };
        let reached = self.reached.get();
        let answered = async {
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) if reached && !signal.aborted() => {
                    return Err(Failure::Final(fetch_error(&e, signal)));
                }
                Err(e) => return Err(fetch_error(&e, signal).into()),
            };
            self.reached.set(true);
            let status = response.status();
            if !response.ok() {
                let now = js_sys::Date::now() / 1000.0;
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v: String| parse_retry_after(&v, now));
                let text = response.text().await.unwrap_or_default();
                return Err(error_for_status(status, &text, retry_after).into());
            }
            let content_type = response.headers().get("content-type");
            let kind = BodyKind::of(content_type.as_deref(), stream);
            let content_type = content_type.unwrap_or_default();
            if kind == BodyKind::EventStream && stream {
                return Ok(Ok(response));
            }
            // What is not a stream is read whole (a page, JSON): errors say what it was.
            let text = response
                .text()
                .await
                .map_err(|e| fetch_error(&e, signal).with_status(status))?;
            let completion = match kind {
                BodyKind::Json => parse_completion(status, &content_type, &text)?,
                _ => {
                    let what = match stream {
                        true => "what is not an event stream",
                        false => "what is not JSON",
                    };
                    return Err(unexpected_body(status, &content_type, what, &text).into());
                }
            };
            Ok(Err(completion))
        };
        let response = match select(Box::pin(answered), TimeoutFuture::new(limit_ms)).await {
            Either::Left((answered, _)) => answered?,
            Either::Right(_) => {
                // Not retried: the server may have taken the request.
                attempt.abort();
                return Err(Failure::Final(ApiError::new(
                    ErrorCode::Network,
                    format!(
                        "the endpoint did not answer within {} s",
                        limit_ms as f64 / 1000.0
                    ),
                )));
            }
        };
        let response = match response {
            Ok(response) => response,
            // A whole answer; a stream request answered by one is given as its chunks.
            Err(completion) => {
                return Ok(match stream {
                    true => Opened::Chunks(completion_as_chunks(&completion)),
                    false => Opened::Completion(completion),
                });
            }
        };
        let body = response
            .body()
            .ok_or_else(|| ApiError::new(ErrorCode::Network, "the endpoint sent no body"))?;
        let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
        Ok(Opened::Stream(BodyReader {
            reader,
            _following: following,
            decoder: ChunkDecoder::new(),
            pending: VecDeque::new(),
            finished: false,
            stall_timeout_ms: self.stall_timeout_ms,
            last_progress_ms: js_sys::Date::now(),
        }))
    }

    async fn token(&self) -> Result<Option<String>, ApiError> {
        let auth_error = |m: &str| ApiError::new(ErrorCode::Auth, m.to_string());
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Key(key) => header_safe(key).map(|t| Some(t.to_string())),
            Auth::Callback(f) => {
                let value = f
                    .call0(&JsValue::NULL)
                    .map_err(|_| auth_error("getToken() threw"))?;
                let value = match value.dyn_into::<Promise>() {
                    Ok(promise) => JsFuture::from(promise)
                        .await
                        .map_err(|_| auth_error("getToken() rejected"))?,
                    Err(value) => value,
                };
                let token = value
                    .as_string()
                    .ok_or_else(|| auth_error("getToken() did not give a string"))?;
                header_safe(&token)?;
                Ok(Some(token))
            }
        }
    }
}

/// A streaming response body, decoded into chunks as it arrives.
pub struct BodyReader {
    reader: ReadableStreamDefaultReader,
    /// The request's abort reaches the body's fetch while the body is read.
    _following: AbortListener,
    decoder: ChunkDecoder,
    pending: VecDeque<Result<StreamItem, ApiError>>,
    finished: bool,
    stall_timeout_ms: u32,
    /// When the last event came (SSE comments and partial lines are not progress).
    last_progress_ms: f64,
}

impl BodyReader {
    /// The next `chat.completion.chunk`, or `None` at the end of the stream.
    pub async fn next(&mut self, signal: &AbortSignal) -> Result<Option<Value>, ApiError> {
        loop {
            match self.pending.pop_front() {
                Some(Ok(StreamItem::Chunk(chunk))) => return Ok(Some(chunk)),
                Some(Ok(StreamItem::Done)) => {
                    self.finished = true;
                    self.cancel();
                    return Ok(None);
                }
                Some(Err(e)) => {
                    self.finished = true;
                    self.cancel();
                    return Err(e);
                }
                None if self.finished => return Ok(None),
                None => {}
            }
            let read = JsFuture::from(self.reader.read());
            let silent_ms = (js_sys::Date::now() - self.last_progress_ms).max(0.0) as u32;
            let stall = TimeoutFuture::new(self.stall_timeout_ms.saturating_sub(silent_ms));
            let result = match select(read, stall).await {
                Either::Left((result, _)) => result.map_err(|e| js_error(&e, signal))?,
                Either::Right(_) => {
                    self.cancel();
                    return Err(ApiError::new(
                        ErrorCode::Network,
                        format!(
                            "the endpoint sent no data for {} s and the stream was closed",
                            self.stall_timeout_ms as f64 / 1000.0
                        ),
                    ));
                }
            };
            let items = match read_result_bytes(&result) {
                None => self.decoder.finish(),
                Some(bytes) => self.decoder.push(&bytes),
            };
            if !items.is_empty() {
                self.last_progress_ms = js_sys::Date::now();
            }
            self.pending.extend(items);
        }
    }

    /// Stops reading; the browser closes the connection.
    pub fn cancel(&self) {
        let _ = self.reader.cancel();
    }
}

/// The bytes of a body reader's `read()` result (`{ done, value }`); `None` at the body's end.
pub(crate) fn read_result_bytes(result: &JsValue) -> Option<Vec<u8>> {
    let done = Reflect::get(result, &"done".into())
        .map(|d| d.is_truthy())
        .unwrap_or(true);
    let value = Reflect::get(result, &"value".into()).unwrap_or(JsValue::UNDEFINED);
    (!done).then(|| {
        value
            .dyn_into::<Uint8Array>()
            .map(|a| a.to_vec())
            .unwrap_or_default()
    })
}

/// `token` if an HTTP header can carry it (Latin-1, no line breaks or NUL): `fetch` would
/// throw on anything else (a pasted "…", a stray newline).
fn header_safe(token: &str) -> Result<&str, ApiError> {
    match token
        .chars()
        .find(|&c| c as u32 > 0xFF || matches!(c, '\r' | '\n' | '\0'))
    {
        None => Ok(token),
        Some(c) => Err(ApiError::new(
            ErrorCode::Auth,
            format!(
                "the token contains {c:?} (U+{:04X}), which an HTTP header cannot carry; check what was pasted",
                c as u32
            ),
        )),
    }
}

fn fetch_error(e: &gloo_net::Error, signal: &AbortSignal) -> ApiError {
    if signal.aborted() {
        return aborted();
    }
    ApiError::new(
        ErrorCode::Network,
        format!(
            "the endpoint could not be reached ({e}): the network is down, the server is not \
             there, or it does not allow this page's origin (CORS)"
        ),
    )
}

fn js_error(e: &JsValue, signal: &AbortSignal) -> ApiError {
    if signal.aborted() {
        return aborted();
    }
    let message = Reflect::get(e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    ApiError::new(
        ErrorCode::Network,
        format!("the stream broke off: {message}"),
    )
}
