//! What the endpoint's failures mean: HTTP statuses and error bodies as typed errors, and
//! when (and how long) to wait before trying again. What its bodies hold: `body.rs`.

use serde_json::Value;

use crate::api::{ApiError, ErrorCode};

/// The typed error for an HTTP failure: `status`, the response `body` (OpenAI's
/// `{"error": {"message", "type", "code"}}` or anything else) and the `Retry-After` header
/// already parsed into seconds.
pub fn error_for_status(status: u16, body: &str, retry_after_seconds: Option<f64>) -> ApiError {
    let detail = error_message(body).unwrap_or_else(|| shorten(body));
    let lower = body.to_ascii_lowercase();
    let says = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    let code = match status {
        401 | 403 => ErrorCode::Auth,
        402 => ErrorCode::Quota,
        429 if says(&["insufficient_quota", "quota"]) => ErrorCode::Quota,
        429 => ErrorCode::RateLimited,
        400 | 413 | 422
            if says(&[
                "context length",
                "context_length",
                "maximum context",
                "too many tokens",
                // llama.cpp's server: "the request exceeds the available context size".
                "context size",
            ]) =>
        {
            ErrorCode::ContextOverflow
        }
        400..=499 => ErrorCode::BadRequest,
        _ => ErrorCode::Network,
    };
    let what = match code {
        ErrorCode::Auth => "the endpoint refused the token",
        ErrorCode::Quota => "the account's quota is used up",
        ErrorCode::RateLimited => "too many requests",
        ErrorCode::ContextOverflow => "the conversation is too long for the model",
        ErrorCode::BadRequest => "the endpoint rejected the request",
        _ => "the endpoint failed",
    };
    let message = match detail.is_empty() {
        true => format!("{what} (HTTP {status})"),
        false => format!("{what} (HTTP {status}): {detail}"),
    };
    let mut error = ApiError::new(code, message).with_status(status);
    if code == ErrorCode::RateLimited || status == 503 {
        error.retry_after_seconds = retry_after_seconds;
    }
    error
}

/// `error.message` of an OpenAI-style error body.
fn error_message(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let e = v.get("error")?;
    match e {
        Value::String(s) => Some(s.clone()),
        _ => e.get("message")?.as_str().map(str::to_string),
    }
}

pub(super) fn shorten(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Parses a `Retry-After` value: delta-seconds, or an HTTP date (`Sun, 06 Nov 1994 08:49:37
/// GMT`) taken relative to `now_unix_seconds`. Past dates mean 0.
pub fn parse_retry_after(value: &str, now_unix_seconds: f64) -> Option<f64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then_some(seconds);
    }
    let at = parse_http_date(value)?;
    Some((at as f64 - now_unix_seconds).max(0.0))
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
fn parse_http_date(value: &str) -> Option<i64> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time
        .split(':')
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// When to try a request again. Only before the first byte of an answer (a stream cannot be
/// replayed), only for 429 and 503 (and failures to connect), at most `max_retries` times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The first backoff, seconds; doubled each retry.
    pub base_delay_seconds: f64,
    /// No backoff is longer.
    pub max_delay_seconds: f64,
    /// A `Retry-After` longer than this is not waited for: the error goes to the caller.
    pub max_retry_after_seconds: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay_seconds: 0.5,
            max_delay_seconds: 8.0,
            max_retry_after_seconds: 60.0,
        }
    }
}

impl RetryPolicy {
    /// Seconds to wait before retry number `retry` (0 = the first) after `error`, or `None`
    /// to give up. `unit_random` in [0, 1) spreads clients apart (jitter).
    pub fn delay(&self, retry: u32, error: &ApiError, unit_random: f64) -> Option<f64> {
        if retry >= self.max_retries {
            return None;
        }
        let retryable = matches!(error.status, Some(429) | Some(503))
            || (error.status.is_none() && error.code == ErrorCode::Network);
        if !retryable || error.code == ErrorCode::Quota {
            return None;
        }
        if let Some(wait) = error.retry_after_seconds {
            // The server said when: wait that long, plus a little so clients do not return at once.
            return (wait <= self.max_retry_after_seconds).then_some(wait + 0.1 * unit_random);
        }
        let backoff =
            (self.base_delay_seconds * 2f64.powi(retry as i32)).min(self.max_delay_seconds);
        Some(backoff * (0.5 + 0.5 * unit_random))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_stable_codes() {
        let cases = [
            (401, "", ErrorCode::Auth),
            (403, "forbidden", ErrorCode::Auth),
            (402, "", ErrorCode::Quota),
            (
                429,
                r#"{"error":{"message":"slow down"}}"#,
                ErrorCode::RateLimited,
            ),
            (
                429,
                r#"{"error":{"code":"insufficient_quota"}}"#,
                ErrorCode::Quota,
            ),
            (
                400,
                r#"{"error":{"message":"This model's maximum context length is 8192 tokens"}}"#,
                ErrorCode::ContextOverflow,
            ),
            (400, "bad", ErrorCode::BadRequest),
            (404, "no such model", ErrorCode::BadRequest),
            (500, "boom", ErrorCode::Network),
            (503, "", ErrorCode::Network),
        ];
        for (status, body, code) in cases {
            let e = error_for_status(status, body, Some(3.0));
            assert_eq!(e.code, code, "{status} {body}");
            assert_eq!(e.status, Some(status));
            assert_eq!(
                e.retry_after_seconds.is_some(),
                code == ErrorCode::RateLimited || status == 503
            );
        }
        let e = error_for_status(429, r#"{"error":{"message":"slow down"}}"#, Some(2.0));
        assert!(
            e.message.contains("slow down") && e.message.contains("429"),
            "{}",
            e.message
        );
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        assert_eq!(parse_retry_after("3", 0.0), Some(3.0));
        assert_eq!(parse_retry_after(" 1.5 ", 0.0), Some(1.5));
        // 1994-11-06 08:49:37 UTC is 784111777.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_770.0),
            Some(7.0)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_800.0),
            Some(0.0)
        );
        assert_eq!(
            parse_retry_after("Thu, 26 Nov 2026 12:00:00 GMT", 1_795_694_370.0),
            Some(30.0)
        );
        for bad in ["", "-1", "soon", "Sun, 06 Nov 1994 08:49 GMT", "NaN"] {
            assert_eq!(parse_retry_after(bad, 0.0), None, "{bad}");
        }
    }

    #[test]
    fn retries_honour_retry_after_back_off_and_give_up() {
        let policy = RetryPolicy::default();
        let limited = error_for_status(429, "", Some(2.0));
        assert_eq!(policy.delay(0, &limited, 0.0), Some(2.0));
        assert_eq!(
            policy.delay(3, &limited, 0.0),
            None,
            "three retries at most"
        );
        let long = error_for_status(429, "", Some(3600.0));
        assert_eq!(
            policy.delay(0, &long, 0.0),
            None,
            "an hour is not waited for"
        );
        let unavailable = error_for_status(503, "", None);
        let delays: Vec<f64> = (0..3)
            .map(|r| policy.delay(r, &unavailable, 1.0).unwrap())
            .collect();
        assert_eq!(delays, [0.5, 1.0, 2.0]);
        assert_eq!(
            policy.delay(0, &unavailable, 0.0),
            Some(0.25),
            "jitter halves at most"
        );
        let offline = ApiError::new(ErrorCode::Network, "failed to fetch");
        assert!(policy.delay(0, &offline, 0.5).is_some());
        for status in [400, 401, 402, 500] {
            assert_eq!(
                policy.delay(0, &error_for_status(status, "", None), 0.5),
                None,
                "{status}"
            );
        }
    }

    #[test]
    fn a_503_retry_after_is_honoured_and_llama_cpp_context_errors_are_context_overflow() {
        let e = error_for_status(503, "", Some(2.0));
        assert_eq!(e.retry_after_seconds, Some(2.0));
        assert_eq!(RetryPolicy::default().delay(0, &e, 0.0), Some(2.0));
        let body = r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}"#;
        assert_eq!(
            error_for_status(400, body, None).code,
            ErrorCode::ContextOverflow
        );
    }
}
