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
use web_sys::{AbortSignal, ReadableStreamDefaultReader};

use super::protocol::{ChunkDecoder, RetryPolicy, StreamItem, error_for_status, parse_retry_after};
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
}

/// What a request opened.
pub enum Opened {
    /// A streaming answer, read chunk by chunk.
    Stream(BodyReader),
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
                Err(e) => e,
            };
            if signal.aborted() {
                return Err(aborted());
            }
            match self.retry.delay(retry, &error, js_sys::Math::random()) {
                Some(seconds) => {
                    log::info!("{}; retrying in {seconds:.1} s", error.message);
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
    ) -> Result<Opened, ApiError> {
        let mut request = gloo_net::http::Request::post(url)
            .header("content-type", "application/json")
            .header(
                "accept",
                if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                },
            )
            .abort_signal(Some(signal));
        if let Some(token) = self.token().await? {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        let request = request
            .body(body.to_string())
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))?;
        let response = request.send().await.map_err(|e| fetch_error(&e, signal))?;
        if !response.ok() {
            let now = js_sys::Date::now() / 1000.0;
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v: String| parse_retry_after(&v, now));
            let text = response.text().await.unwrap_or_default();
            return Err(error_for_status(response.status(), &text, retry_after));
        }
        if !stream {
            let text = response.text().await.map_err(|e| fetch_error(&e, signal))?;
            let value: Value = serde_json::from_str(&text).map_err(|e| {
                ApiError::new(
                    ErrorCode::Network,
                    format!("the endpoint sent malformed JSON ({e})"),
                )
            })?;
            return Ok(Opened::Completion(value));
        }
        let body = response
            .body()
            .ok_or_else(|| ApiError::new(ErrorCode::Network, "the endpoint sent no body"))?;
        let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
        Ok(Opened::Stream(BodyReader {
            reader,
            decoder: ChunkDecoder::new(),
            pending: VecDeque::new(),
            finished: false,
            stall_timeout_ms: self.stall_timeout_ms,
        }))
    }

    async fn token(&self) -> Result<Option<String>, ApiError> {
        let auth_error = |m: &str| ApiError::new(ErrorCode::Auth, m.to_string());
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Key(key) => Ok(Some(key.clone())),
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
                value
                    .as_string()
                    .map(Some)
                    .ok_or_else(|| auth_error("getToken() did not give a string"))
            }
        }
    }
}

/// A streaming response body, decoded into chunks as it arrives.
pub struct BodyReader {
    reader: ReadableStreamDefaultReader,
    decoder: ChunkDecoder,
    pending: VecDeque<Result<StreamItem, ApiError>>,
    finished: bool,
    stall_timeout_ms: u32,
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
            let stall = TimeoutFuture::new(self.stall_timeout_ms);
            let result = match select(read, stall).await {
                Either::Left((result, _)) => result.map_err(|e| js_error(&e, signal))?,
                Either::Right(_) => {
                    self.cancel();
                    return Err(ApiError::new(
                        ErrorCode::Network,
                        format!(
                            "the endpoint sent nothing for {} s and the stream was closed",
                            self.stall_timeout_ms as f64 / 1000.0
                        ),
                    ));
                }
            };
            let done = Reflect::get(&result, &"done".into())
                .map(|d| d.is_truthy())
                .unwrap_or(true);
            let items = if done {
                self.decoder.finish()
            } else {
                let value = Reflect::get(&result, &"value".into()).unwrap_or(JsValue::UNDEFINED);
                let bytes = value
                    .dyn_into::<Uint8Array>()
                    .map(|a| a.to_vec())
                    .unwrap_or_default();
                self.decoder.push(&bytes)
            };
            self.pending.extend(items);
        }
    }

    /// Stops reading; the browser closes the connection.
    pub fn cancel(&self) {
        let _ = self.reader.cancel();
    }
}

fn aborted() -> ApiError {
    ApiError::aborted("the request")
}

/// Waits `ms` milliseconds; ends early with `aborted` once `signal` is aborted.
pub(crate) async fn sleep_unless_aborted(
    ms: u32,
    signal: Option<&AbortSignal>,
) -> Result<(), ApiError> {
    let mut waited = 0;
    // Short steps, so an abort during a long Retry-After ends the wait promptly.
    while waited < ms {
        let step = (ms - waited).min(100);
        TimeoutFuture::new(step).await;
        waited += step;
        if signal.is_some_and(AbortSignal::aborted) {
            return Err(aborted());
        }
    }
    Ok(())
}

fn fetch_error(e: &gloo_net::Error, signal: &AbortSignal) -> ApiError {
    if signal.aborted() {
        return aborted();
    }
    ApiError::new(
        ErrorCode::Network,
        format!("the endpoint could not be reached: {e}"),
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
