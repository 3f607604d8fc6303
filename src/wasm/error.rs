//! The one place where the API layer's errors become JS values: `Error`s named `LlamaWebError`
//! with the stable `code` (DESIGN.md's error table).

use js_sys::Reflect;
use wasm_bindgen::prelude::*;

use crate::api::ApiError;

/// A JS `Error` named `LlamaWebError` with `code` (and `status`, `retryAfterSeconds`).
pub fn to_js_error(e: &ApiError) -> JsValue {
    let error = js_sys::Error::new(&e.message);
    error.set_name("LlamaWebError");
    let _ = Reflect::set(&error, &"code".into(), &e.code.as_str().into());
    if let Some(status) = e.status {
        let _ = Reflect::set(&error, &"status".into(), &status.into());
    }
    if let Some(seconds) = e.retry_after_seconds {
        let _ = Reflect::set(&error, &"retryAfterSeconds".into(), &seconds.into());
    }
    error.into()
}
