//! One HTTP Range request for bytes of a model file, checked before it is taken: a `206` whose
//! `Content-Range` begins with the range asked (a longer answer is cut short: sirv, Vite's dev
//! server, sends the whole file for `bytes=0-0`), a body of that length, and the file's version
//! (length, `ETag`, `Last-Modified`) read off the answer so a caller can tell a changed file.
//! Failures of the network or the server are retried with backoff (a GET of a file is safe to
//! repeat); an abort ends the wait at once.

use std::ops::Range;

use futures_util::future::{Either, select};
use gloo_net::http::{Request, Response};
use gloo_timers::future::TimeoutFuture;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, AbortSignal, ReadableStreamDefaultReader};

use crate::api::{ApiError, ErrorCode};
use crate::remote::abort::{follow, sleep_unless_aborted};
use crate::remote::fetch::read_result_bytes;
use crate::remote::protocol::RetryPolicy;
use crate::store::{ContentRange, FileVersion};

/// A checked answer.
#[derive(Debug)]
pub struct RangeAnswer {
    /// The bytes asked for (clamped to the file's end).
    pub bytes: Vec<u8>,
    /// The version of the file that sent them.
    pub version: FileVersion,
}

/// Why a Range request failed.
#[derive(Debug)]
pub enum RangeError {
    /// The network or the server failed, also after the retries.
    Failed(String),
    /// The range starts at or past the file's end (`416`): the file is shorter.
    Unsatisfiable,
    /// The caller's signal aborted the request.
    Aborted,
}

/// How long one Range request may take before it is abandoned and sent again: `limit_seconds`
/// if given, else 30 s plus a second per 64 KiB (a 16 MiB piece: ~5 min, at least 64 KB/s).
pub fn time_limit_ms(len: u64, limit_seconds: Option<f64>) -> u32 {
    let seconds = limit_seconds.unwrap_or(30.0 + len as f64 / 65_536.0);
    (seconds * 1000.0).min(u32::MAX as f64) as u32
}

/// `range` of the file at `url` (a range reaching past the end gets the bytes up to it),
/// retried as [`RetryPolicy::default`] says while the network or the server fails, or an
/// attempt takes longer than `limit_ms` (a stalled connection; a GET is safe to repeat).
pub async fn get_range(
    url: &str,
    range: Range<u64>,
    signal: Option<&AbortSignal>,
    limit_ms: u32,
) -> Result<RangeAnswer, RangeError> {
    let policy = RetryPolicy::default();
    let mut retry = 0;
    loop {
        let attempt =
            AbortController::new().map_err(|_| RangeError::Failed("no AbortController".into()))?;
        // The caller's abort reaches this attempt while it runs (the listener goes with it).
        let _following = signal.map(|signal| follow(signal, &attempt));
        let attempt_signal = attempt.signal();
        let once = get_once(url, range.clone(), Some(&attempt_signal), signal);
        let outcome = match select(Box::pin(once), TimeoutFuture::new(limit_ms)).await {
            Either::Left((outcome, _)) => outcome,
            Either::Right(_) => {
                attempt.abort();
                Err(Attempt::Retryable(format!(
                    "{url}: no answer within {} s",
                    limit_ms as f64 / 1000.0
                )))
            }
        };
        let message = match outcome {
            Err(Attempt::Retryable(message)) => message,
            Err(Attempt::Final(e)) => return Err(e),
            Ok(answer) => return Ok(answer),
        };
        // Every retryable failure is a network-class one to the policy: retried with backoff.
        let error = ApiError::new(ErrorCode::Network, message.clone());
        let Some(seconds) = policy.delay(retry, &error, js_sys::Math::random()) else {
            return Err(RangeError::Failed(message));
        };
        log::warn!("{message}; retrying in {seconds:.1} s");
        sleep_unless_aborted((seconds * 1000.0) as u32, signal)
            .await
            .map_err(|_| RangeError::Aborted)?;
        retry += 1;
    }
}

enum Attempt {
    Retryable(String),
    Final(RangeError),
}

/// One attempt, stopped by `attempt` (the caller's `signal` or the time limit); only the
/// caller's abort counts as aborted.
async fn get_once(
    url: &str,
    range: Range<u64>,
    attempt: Option<&AbortSignal>,
    signal: Option<&AbortSignal>,
) -> Result<RangeAnswer, Attempt> {
    let aborted = || signal.is_some_and(AbortSignal::aborted);
    let fail = |m: String| Attempt::Final(RangeError::Failed(format!("{url}: {m}")));
    let retry = |m: String| match aborted() {
        true => Attempt::Final(RangeError::Aborted),
        false => Attempt::Retryable(format!("{url}: {m}")),
    };
    let last = range.end.max(range.start + 1) - 1;
    let response = Request::get(url)
        .header("range", &format!("bytes={}-{last}", range.start))
        .abort_signal(attempt)
        .send()
        .await
        .map_err(|e| {
            retry(format!(
                "{e} (the server is unreachable, or refuses this page: CORS)"
            ))
        })?;
    match response.status() {
        206 => {}
        200 => {
            return Err(fail(
                "the server ignores Range requests; the model cannot be streamed".into(),
            ));
        }
        416 => return Err(Attempt::Final(RangeError::Unsatisfiable)),
        s @ (408 | 429 | 500..=599) => return Err(retry(format!("HTTP {s}"))),
        s => return Err(fail(format!("HTTP {s}"))),
    }
    let headers = response.headers();
    let content_range = headers
        .get("content-range")
        .and_then(|v| ContentRange::parse(&v))
        .ok_or_else(|| {
            fail("a 206 answer without a readable Content-Range (CORS must expose it)".into())
        })?;
    let len = content_range
        .total
        .ok_or_else(|| fail("the server does not say the file's length".into()))?;
    let want = content_range.check(range.clone(), len).map_err(fail)?;
    let version = FileVersion {
        len,
        etag: headers.get("etag"),
        last_modified: headers.get("last-modified"),
    };
    let sent = content_range.end_inclusive + 1 - content_range.start;
    let bytes = match sent == want {
        true => response.binary().await.map_err(|e| e.to_string()),
        false => read_prefix(&response, want).await,
    }
    .map_err(|e| retry(format!("the download broke off: {e}")))?;
    if bytes.len() as u64 != want {
        return Err(retry(format!(
            "the connection ended after {} of {want} bytes",
            bytes.len()
        )));
    }
    Ok(RangeAnswer { bytes, version })
}

/// The first `len` bytes of a body that runs on past them; the rest is cancelled unread.
async fn read_prefix(response: &Response, len: u64) -> Result<Vec<u8>, String> {
    let body = response.body().ok_or("the answer has no body")?;
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut bytes = Vec::with_capacity(len as usize);
    while (bytes.len() as u64) < len {
        let result = JsFuture::from(reader.read())
            .await
            .map_err(|e| format!("{e:?}"))?;
        let Some(chunk) = read_result_bytes(&result) else {
            break;
        };
        let take = (len as usize - bytes.len()).min(chunk.len());
        bytes.extend_from_slice(&chunk[..take]);
    }
    let _ = reader.cancel();
    Ok(bytes)
}
