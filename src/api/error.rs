//! The errors both backends raise, with the stable codes of the JS API (DESIGN.md), and the one
//! place where each layer's typed error gets its code (the remote layer builds `ApiError`s
//! itself, from HTTP statuses, in `remote::protocol`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::engine::EngineError;
use crate::gguf::GgufError;
use crate::model::device::DeviceError;
use crate::model::error::ModelError;
use crate::store::StoreError;
use crate::tokenizer::TemplateError;

/// What kind of failure, as the JS API's `code` names it. The codes are stable: pages branch on
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The browser has no usable WebGPU adapter.
    NoWebgpu,
    /// The adapter cannot hold the model at the asked context.
    InsufficientGpu,
    /// The GPU device was lost while running.
    DeviceLost,
    /// The model file could not be downloaded.
    ModelFetch,
    /// The model file is not a model we can run (corrupt, truncated, unsupported).
    BadModel,
    /// The browser's storage cannot hold the model (the message says the bytes needed and
    /// available).
    StorageQuota,
    /// The account's quota or credit is used up (HTTP 402, or a quota error body).
    Quota,
    /// The token was refused (HTTP 401/403) or none was given.
    Auth,
    /// Too many requests (HTTP 429) even after the retries; see `retry_after_seconds`.
    RateLimited,
    /// The endpoint could not be reached, failed (HTTP 5xx), stalled, or sent what is not the
    /// OpenAI stream format.
    Network,
    /// The prompt and `max_tokens` do not fit the context.
    ContextOverflow,
    /// The caller aborted.
    Aborted,
    /// The request itself is wrong (bad parameters, HTTP 400/404/422).
    BadRequest,
}

impl ErrorCode {
    /// The code's string, as JS sees it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NoWebgpu => "no_webgpu",
            ErrorCode::InsufficientGpu => "insufficient_gpu",
            ErrorCode::DeviceLost => "device_lost",
            ErrorCode::ModelFetch => "model_fetch",
            ErrorCode::BadModel => "bad_model",
            ErrorCode::StorageQuota => "storage_quota",
            ErrorCode::Quota => "quota",
            ErrorCode::Auth => "auth",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Network => "network",
            ErrorCode::ContextOverflow => "context_overflow",
            ErrorCode::Aborted => "aborted",
            ErrorCode::BadRequest => "bad_request",
        }
    }

    /// Every code, in the order DESIGN.md lists them.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::NoWebgpu,
        ErrorCode::InsufficientGpu,
        ErrorCode::DeviceLost,
        ErrorCode::ModelFetch,
        ErrorCode::BadModel,
        ErrorCode::StorageQuota,
        ErrorCode::Quota,
        ErrorCode::Auth,
        ErrorCode::RateLimited,
        ErrorCode::Network,
        ErrorCode::ContextOverflow,
        ErrorCode::Aborted,
        ErrorCode::BadRequest,
    ];
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure as the JS API reports it: a code, a message for people, and what the HTTP
/// exchange said where there was one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    /// The stable code.
    pub code: ErrorCode,
    /// What happened, for a person.
    pub message: String,
    /// The HTTP status, for remote failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// For `rate_limited`: seconds the endpoint asked to wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<f64>,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status: None,
            retry_after_seconds: None,
        }
    }

    /// The caller aborted `what` (`"the request"`, `"loading"`).
    pub fn aborted(what: &str) -> Self {
        Self::new(ErrorCode::Aborted, format!("{what} was aborted"))
    }

    /// The HTTP status and body an OpenAI-compatible server answers this error with (what
    /// `client.fetch` gives SDKs): the endpoint's own status for a remote failure, else the
    /// status of the code's kind; the body `{error: {message, type, param, code}}`.
    pub fn openai_error(&self) -> (u16, serde_json::Value) {
        let status = self
            .status
            .filter(|s| *s >= 400)
            .unwrap_or(match self.code {
                ErrorCode::BadRequest | ErrorCode::ContextOverflow => 400,
                ErrorCode::Auth => 401,
                ErrorCode::Quota | ErrorCode::RateLimited => 429,
                ErrorCode::Aborted => 499,
                ErrorCode::Network => 502,
                ErrorCode::NoWebgpu
                | ErrorCode::InsufficientGpu
                | ErrorCode::DeviceLost
                | ErrorCode::ModelFetch
                | ErrorCode::BadModel
                | ErrorCode::StorageQuota => 503,
            });
        let kind = match (self.code, status) {
            (ErrorCode::Quota, _) => "insufficient_quota",
            (_, 401 | 403) => "authentication_error",
            (_, 429) => "rate_limit_error",
            (_, 400..=499) => "invalid_request_error",
            _ => "server_error",
        };
        let body = serde_json::json!({"error": {
            "message": self.message, "type": kind, "param": null, "code": self.code.as_str(),
        }});
        (status, body)
    }

    /// The same error, with the HTTP status that caused it.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<&EngineError> for ApiError {
    /// The request's own fault (messages the template refuses, settings out of range, a
    /// prompt too long) is `bad_request` or `context_overflow`; a file we cannot run is
    /// `bad_model`; what the GPU cannot hold is `insufficient_gpu`; a failing device is
    /// `device_lost`; bytes that did not come is `model_fetch`.
    fn from(e: &EngineError) -> Self {
        let code = match e {
            EngineError::ContextOverflow { .. } => ErrorCode::ContextOverflow,
            EngineError::BadRequest { .. } | EngineError::Grammar { .. } => ErrorCode::BadRequest,
            EngineError::Template(TemplateError::Render(_)) => ErrorCode::BadRequest,
            EngineError::Tokenizer(_) | EngineError::Template(_) => ErrorCode::BadModel,
            EngineError::NonFiniteLogits => ErrorCode::BadModel,
            EngineError::Model(model) => match model {
                ModelError::ContextOverflow { .. } => ErrorCode::ContextOverflow,
                ModelError::Device(DeviceError::MissingFeature { .. }) => ErrorCode::BadRequest,
                ModelError::Device(_) => ErrorCode::DeviceLost,
                ModelError::TooBig { .. } => ErrorCode::InsufficientGpu,
                ModelError::BadInput { .. } => ErrorCode::BadRequest,
                ModelError::Gguf(GgufError::Source { .. }) => ErrorCode::ModelFetch,
                _ => ErrorCode::BadModel,
            },
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    /// `storage_quota` for room, `bad_model` for bytes that are not the model (a wrong hash,
    /// not GGUF), `model_fetch` for the rest.
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::Quota { .. } => ErrorCode::StorageQuota,
            StoreError::Checksum { .. } | StoreError::Gguf(_) => ErrorCode::BadModel,
            StoreError::Changed { .. } | StoreError::Fetch(_) | StoreError::Storage(_) => {
                ErrorCode::ModelFetch
            }
        };
        ApiError::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each layer's failures get the code that says whose fault they are.
    #[test]
    fn engine_failures_map_to_the_codes_that_say_whose_fault_they_are() {
        let code = |e: EngineError| ApiError::from(&e).code;
        let detail = || "x".to_string();
        assert_eq!(
            code(EngineError::Template(TemplateError::Render(detail()))),
            ErrorCode::BadRequest,
            "messages the template refuses are the request's fault"
        );
        assert_eq!(
            code(EngineError::Template(TemplateError::Syntax(detail()))),
            ErrorCode::BadModel
        );
        assert_eq!(
            code(EngineError::Template(TemplateError::Missing)),
            ErrorCode::BadModel
        );
        assert_eq!(
            code(ModelError::TooBig { detail: detail() }.into()),
            ErrorCode::InsufficientGpu
        );
        assert_eq!(
            code(ModelError::Unsupported { detail: detail() }.into()),
            ErrorCode::BadModel
        );
        assert_eq!(
            code(ModelError::BadInput { detail: detail() }.into()),
            ErrorCode::BadRequest
        );
        let missing = DeviceError::MissingFeature {
            feature: "shader-f16",
            wanted: "f16 arithmetic",
        };
        assert_eq!(
            code(ModelError::Device(missing).into()),
            ErrorCode::BadRequest,
            "asked for what the adapter lacks"
        );
        let lost = DeviceError::Execution { reason: detail() };
        assert_eq!(code(ModelError::Device(lost).into()), ErrorCode::DeviceLost);
        assert_eq!(code(EngineError::NonFiniteLogits), ErrorCode::BadModel);
        let fetch = GgufError::Source {
            offset: 0,
            end: 1,
            reason: detail(),
        };
        assert_eq!(
            code(ModelError::Gguf(fetch).into()),
            ErrorCode::ModelFetch,
            "bytes that did not come"
        );
    }

    #[test]
    fn errors_answer_as_openai_compatible_servers_do() {
        let (status, body) = ApiError::new(ErrorCode::ContextOverflow, "too long").openai_error();
        assert_eq!(status, 400);
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "context_overflow");
        assert_eq!(body["error"]["message"], "too long");
        let remote = ApiError::new(ErrorCode::Network, "upstream").with_status(504);
        assert_eq!(remote.openai_error().0, 504);
        let limited = ApiError::new(ErrorCode::RateLimited, "slow down");
        assert_eq!(limited.openai_error().0, 429);
        assert_eq!(
            limited.openai_error().1["error"]["type"],
            "rate_limit_error"
        );
        for code in ErrorCode::ALL {
            let (status, _) = ApiError::new(code, "x").openai_error();
            assert!((400..600).contains(&status), "{code}: {status}");
        }
        assert_eq!(
            ApiError::new(ErrorCode::NoWebgpu, "x").openai_error().0,
            503
        );
    }
}
