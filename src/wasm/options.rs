//! Reading the JS options of `LlamaClient.create` and of a request, with typed `bad_request`
//! errors for what is wrong.

use std::rc::Rc;

use js_sys::{Function, Object, Reflect};
use serde_json::Value;
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use super::model_store::StoreOptions;
use crate::api::{ApiError, ChatParams, ErrorCode};
use crate::model::device::DeviceChoice;
use crate::model::plan::KvFormat;
use crate::remote::fetch::{Auth, RemoteClient};
use crate::remote::protocol::RetryPolicy;
use crate::remote::{IONOS_BASE_URL, IONOS_MODEL};

/// The largest `local.contextSize` taken (Llama 3.1 is trained for 131072 tokens).
const MAX_CONTEXT: f64 = (1u32 << 20) as f64;
/// The largest `local.pieceBytes` taken: a piece is held whole in memory while it is stored.
const MAX_PIECE_BYTES: f64 = (256u32 << 20) as f64;
/// The most `remote.maxRetries` taken.
const MAX_RETRIES: f64 = 10.0;
/// The longest `remote.stallTimeoutSeconds` taken: a day (in ms it still fits a timer).
const MAX_STALL_SECONDS: f64 = 86_400.0;

/// `create`'s options.
pub(super) struct Options {
    pub mode: Mode,
    pub local: Option<LocalOptions>,
    pub remote: Rc<RemoteClient>,
    /// Auto mode: answer remotely until the local model is ready (`hybrid: true`).
    pub hybrid: bool,
    pub on_progress: Option<Function>,
    pub on_backend_change: Option<Function>,
    pub signal: Option<AbortSignal>,
}

/// `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Local,
    Remote,
    Auto,
}

/// `local`.
pub(super) struct LocalOptions {
    pub model_url: String,
    pub context_size: Option<usize>,
    pub kv_format: KvFormat,
    pub store: StoreOptions,
    /// Run the model in the engine's Web Worker (`local.worker`, default true).
    pub worker: bool,
    /// The plain-data keys as given: what the worker is sent, to read them in turn.
    pub data: Object,
}

/// The keys of `local` that are plain data: what the engine's worker is sent.
const LOCAL_DATA_KEYS: [&str; 7] = [
    "modelUrl",
    "contextSize",
    "kvCache",
    "cache",
    "sha256",
    "pieceBytes",
    "pieceTimeoutSeconds",
];

impl LocalOptions {
    /// Reads and checks the `local` object.
    pub fn read(local: &JsValue) -> Result<Self, ApiError> {
        let bad = |m: String| ApiError::new(ErrorCode::BadRequest, m);
        Ok(LocalOptions {
            model_url: get_string(local, "modelUrl")?
                .ok_or_else(|| bad("local.modelUrl is missing".into()))?,
            context_size: get_integer(local, "contextSize", 1.0, MAX_CONTEXT)?.map(|n| n as usize),
            kv_format: match get_string(local, "kvCache")? {
                None => KvFormat::default_for(DeviceChoice::Wgpu),
                Some(name) => name.parse().map_err(bad)?,
            },
            store: read_store_options(local)?,
            worker: get_bool(local, "worker", true)?,
            data: local_data(local),
        })
    }
}

/// A copy of `local`'s plain-data keys (no callbacks), for the engine's worker to read with
/// [`LocalOptions::read`].
fn local_data(local: &JsValue) -> Object {
    let copy = Object::new();
    for key in LOCAL_DATA_KEYS {
        let value = get(local, key);
        if !value.is_undefined() {
            let _ = Reflect::set(&copy, &key.into(), &value);
        }
    }
    copy
}

impl Options {
    /// Reads and checks `create`'s options object.
    pub fn read(options: &JsValue) -> Result<Self, ApiError> {
        let bad = |m: String| ApiError::new(ErrorCode::BadRequest, m);
        let mode = match get_string(options, "mode")?.as_deref() {
            None | Some("auto") => Mode::Auto,
            Some("local") => Mode::Local,
            Some("remote") => Mode::Remote,
            Some(other) => {
                return Err(bad(format!(
                    "mode `{other}` (expected local, remote or auto)"
                )));
            }
        };
        let local_obj = get(options, "local");
        let local = match local_obj.is_object() {
            false => None,
            true => Some(LocalOptions::read(&local_obj)?),
        };
        if mode == Mode::Local && local.is_none() {
            return Err(bad("mode \"local\" needs local.modelUrl".into()));
        }
        let remote_obj = get(options, "remote");
        let auth = match (
            get_string(&remote_obj, "apiKey")?,
            get(&remote_obj, "getToken").dyn_into::<Function>().ok(),
        ) {
            (Some(key), _) => Auth::Key(key),
            (None, Some(f)) => Auth::Callback(f),
            (None, None) => Auth::None,
        };
        let hybrid = get_bool(options, "hybrid", false)?;
        if hybrid && (mode != Mode::Auto || local.is_none()) {
            return Err(bad(
                "hybrid needs mode \"auto\" and local.modelUrl (it answers remotely while the local model loads)"
                    .into(),
            ));
        }
        let remote = RemoteClient {
            base_url: get_string(&remote_obj, "baseUrl")?.unwrap_or_else(|| IONOS_BASE_URL.into()),
            model: get_string(&remote_obj, "model")?.unwrap_or_else(|| IONOS_MODEL.into()),
            auth,
            retry: RetryPolicy {
                max_retries: get_integer(&remote_obj, "maxRetries", 0.0, MAX_RETRIES)?
                    .map_or(RetryPolicy::default().max_retries, |n| n as u32),
                ..RetryPolicy::default()
            },
            reached: Default::default(),
            stall_timeout_ms: match get_number(&remote_obj, "stallTimeoutSeconds")? {
                None => 60_000,
                Some(s) if s > 0.0 && s <= MAX_STALL_SECONDS => (s * 1000.0).ceil() as u32,
                Some(_) => {
                    return Err(bad(format!(
                        "remote.stallTimeoutSeconds must be above 0 and at most {MAX_STALL_SECONDS} (a day)"
                    )));
                }
            },
        };
        Ok(Self {
            mode,
            local,
            remote: Rc::new(remote),
            hybrid,
            on_progress: get(options, "onProgress").dyn_into::<Function>().ok(),
            on_backend_change: get(options, "onBackendChange").dyn_into::<Function>().ok(),
            signal: get(options, "signal").dyn_into::<AbortSignal>().ok(),
        })
    }
}

/// `local.cache`, `local.sha256`, `local.pieceBytes` and `local.pieceTimeoutSeconds`.
pub(super) fn read_store_options(local: &JsValue) -> Result<StoreOptions, ApiError> {
    let bad = |m: String| ApiError::new(ErrorCode::BadRequest, m);
    Ok(StoreOptions {
        enabled: get_bool(local, "cache", true)?,
        piece_bytes: get_integer(local, "pieceBytes", 4096.0, MAX_PIECE_BYTES)?
            .map_or(StoreOptions::default().piece_bytes, |n| n as u64),
        piece_timeout_seconds: match get_number(local, "pieceTimeoutSeconds")? {
            Some(s) if s <= 0.0 || s > MAX_STALL_SECONDS => {
                return Err(bad(format!(
                    "local.pieceTimeoutSeconds must be above 0 and at most {MAX_STALL_SECONDS}"
                )));
            }
            s => s,
        },
        sha256: get_string(local, "sha256")?
            .map(|given| crate::store::parse_sha256(&given).map_err(bad))
            .transpose()?,
    })
}

/// A request: the parsed parameters, the request object as JSON (`signal` taken out) and its
/// abort signal.
pub(super) struct Request {
    pub params: ChatParams,
    pub json: Value,
    pub signal: Option<AbortSignal>,
}

/// Reads and checks the request object.
pub(super) fn read_params(params: &JsValue) -> Result<Request, ApiError> {
    let signal = get(params, "signal").dyn_into::<AbortSignal>().ok();
    let copy = Object::assign(&Object::new(), &Object::from(params.clone()));
    let _ = Reflect::delete_property(&copy, &"signal".into());
    let json: Value = serde_wasm_bindgen::from_value(copy.into()).map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("the request is not JSON-like: {e}"),
        )
    })?;
    Ok(Request {
        params: ChatParams::from_json(json.clone())?,
        json,
        signal,
    })
}

/// `target[key]` (`undefined` when `target` is not an object).
pub(super) fn get(target: &JsValue, key: &str) -> JsValue {
    if !target.is_object() && !target.is_function() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(target, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

fn get_string(target: &JsValue, key: &str) -> Result<Option<String>, ApiError> {
    let v = get(target, key);
    match v.is_undefined() || v.is_null() {
        true => Ok(None),
        false => v.as_string().map(Some).ok_or_else(|| {
            ApiError::new(ErrorCode::BadRequest, format!("`{key}` must be a string"))
        }),
    }
}

/// `target[key]` as a boolean, `default` when absent.
fn get_bool(target: &JsValue, key: &str, default: bool) -> Result<bool, ApiError> {
    match get(target, key) {
        v if v.is_undefined() || v.is_null() => Ok(default),
        v => v.as_bool().ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadRequest,
                format!("`{key}` must be true or false"),
            )
        }),
    }
}

/// `target[key]` as a whole number in `min..=max`.
fn get_integer(target: &JsValue, key: &str, min: f64, max: f64) -> Result<Option<f64>, ApiError> {
    match get_number(target, key)? {
        Some(n) if n.fract() != 0.0 || n < min || n > max => Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("`{key}` must be a whole number from {min} to {max}"),
        )),
        n => Ok(n),
    }
}

fn get_number(target: &JsValue, key: &str) -> Result<Option<f64>, ApiError> {
    let v = get(target, key);
    match v.is_undefined() || v.is_null() {
        true => Ok(None),
        false => v
            .as_f64()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .map(Some)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::BadRequest,
                    format!("`{key}` must be a non-negative number"),
                )
            }),
    }
}
