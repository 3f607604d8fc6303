//! `client.fetch`: a `fetch` that OpenAI-compatible SDKs (the official `openai` package, the
//! Vercel AI SDK, LangChain) can be given, so that an app written against the hosted API runs
//! on this client's backend — local or remote — unchanged:
//!
//! ```js
//! const openai = new OpenAI({ baseURL: "https://local.invalid/v1", apiKey: "unused",
//!                             fetch: client.fetch, dangerouslyAllowBrowser: true });
//! ```
//!
//! `POST …/chat/completions` is answered by `chat.completions.create` — a stream as the SSE
//! bytes the hosted API sends (`data: {chunk}\n\n` … `data: [DONE]\n\n`), else the JSON
//! completion; `GET …/models` lists the backend's model. Errors come back as the HTTP status
//! and `{error: {…}}` body an OpenAI-compatible server sends (`ApiError::openai_error`), with
//! `x-should-retry: false` (the client has retried what can be retried); an abort rejects with
//! an `AbortError`, as `fetch` does. The HTTP side is in `fetch.js`.

use std::rc::Rc;

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;

use super::client::{ClientInner, Completions};
use crate::api::{ApiError, ErrorCode};

#[wasm_bindgen(module = "/src/wasm/fetch.js")]
extern "C" {
    #[wasm_bindgen(js_name = openaiFetch)]
    fn make_fetch(target: FetchTarget) -> js_sys::Function;
}

/// What `client.fetch` calls into (not part of the public API).
#[wasm_bindgen(skip_typescript)]
pub struct FetchTarget {
    inner: Rc<ClientInner>,
}

#[wasm_bindgen]
impl FetchTarget {
    /// `chat.completions.create(params)` on the client's backend.
    #[wasm_bindgen(skip_typescript)]
    pub fn create(&self, params: JsValue) -> Promise {
        Completions {
            inner: self.inner.clone(),
        }
        .create(params)
    }

    /// The name of the model the backend answers with.
    #[wasm_bindgen(skip_typescript)]
    pub fn model(&self) -> String {
        self.inner.backend.borrow().model()
    }

    /// The HTTP answer to a failed request: `{status, body, retryAfterSeconds}` from the
    /// `LlamaWebError` (`code`, `message`, `status`, `retryAfterSeconds`).
    #[wasm_bindgen(skip_typescript, js_name = errorResponse)]
    pub fn error_response(&self, error: JsValue) -> Result<JsValue, JsValue> {
        let field = |name: &str| Reflect::get(&error, &name.into()).unwrap_or(JsValue::UNDEFINED);
        let code = field("code").as_string().unwrap_or_default();
        let code =
            serde_json::from_value(serde_json::Value::String(code)).unwrap_or(ErrorCode::Network);
        let message = field("message").as_string().unwrap_or_default();
        let mut api_error = ApiError::new(code, message);
        api_error.status = field("status").as_f64().map(|s| s as u16);
        let (status, body) = api_error.openai_error();
        let response = Object::new();
        Reflect::set(&response, &"status".into(), &status.into())?;
        Reflect::set(&response, &"body".into(), &body.to_string().into())?;
        Reflect::set(
            &response,
            &"retryAfterSeconds".into(),
            &field("retryAfterSeconds"),
        )?;
        Ok(response.into())
    }
}

/// The `fetch` function for `client`.
pub(super) fn openai_fetch(inner: Rc<ClientInner>) -> js_sys::Function {
    make_fetch(FetchTarget { inner })
}
