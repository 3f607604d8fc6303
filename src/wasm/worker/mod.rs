//! The Web Worker host: with `local.worker` (the default) the local model loads and runs in a
//! dedicated worker, and the page's thread only forwards requests and chunks — a 4.9 GB load
//! and every decode step stay off it. The JS API is the same either way.
//!
//! - [`page`]: the page's end, [`WorkerBackend`] (`Backend::Worker` in the client), which
//!   replaces a worker whose GPU device was lost; [`shared`]: one worker's connection.
//! - [`host`]: the worker's end, `workerMain()` (called by `pkg/llama_web_worker.js`), which runs
//!   the same [`LocalBackend`](super::local::LocalBackend) as the page would.
//! - `glue.js`: starting the worker (one literal `new URL(…, import.meta.url)` bundlers follow),
//!   and posting messages both ways.
//!
//! The messages are [`ToWorker`] and [`FromWorker`], plain JSON-like objects tagged by `type`.
//! Requests are numbered by the page and answered by number; the worker queues them in the order
//! they arrive, which is the order of the `create()` calls. Abort is a `cancel` message, seen by
//! the worker between two decode steps.

mod host;
mod page;
mod shared;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_bindgen::prelude::*;

use crate::api::ApiError;

pub(super) use page::{WorkerBackend, WorkerRequest, WorkerStart};

/// What the page sends the worker (after the `init` message that `glue.js` sends itself).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
enum ToWorker {
    /// Load the model: `local` is the `local` options' plain data; `auto` is auto mode.
    Load { auto: bool, local: Value },
    /// The page's `signal` aborted the load.
    AbortLoad,
    /// Answer request `id` (the request object, `signal` taken out).
    Chat { id: u32, params: Value },
    /// Stop request `id`.
    Cancel { id: u32 },
    /// Drop the model once the requests in flight are over, then close.
    Dispose,
}

/// What the worker sends the page.
#[derive(Debug, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
enum FromWorker {
    /// The module is instantiated; messages may come.
    Ready,
    /// Instantiating the module failed (sent by `llama_web_worker.js`).
    StartFailed { message: String },
    /// A loading progress event, as `onProgress` gets it.
    Progress { progress: Value },
    /// The model is loaded.
    Loaded {
        /// The model's name (its `general.name`).
        model: String,
    },
    /// Auto mode: the model does not fit or could not be loaded here; the reason.
    Fallback { reason: String },
    /// The worker has no WebGPU (the page may still have it).
    NoWebgpu { reason: String },
    /// Loading failed.
    LoadFailed { error: ApiError },
    /// A chunk of streamed request `id`.
    Chunk { id: u32, chunk: Value },
    /// Request `id` is answered: the whole `chat.completion` (for a stream too).
    Done { id: u32, completion: Value },
    /// Request `id` failed.
    Failed { id: u32, error: ApiError },
    /// Disposed: the worker has closed.
    Closed,
}

#[wasm_bindgen(module = "/src/wasm/worker/glue.js")]
extern "C" {
    #[wasm_bindgen(catch, js_name = spawnEngineWorker)]
    fn spawn_engine_worker(
        module: &JsValue,
        on_message: &js_sys::Function,
        on_error: &js_sys::Function,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_name = postToWorker)]
    fn post_to_worker(worker: &JsValue, message: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(js_name = terminateWorker)]
    fn terminate_worker(worker: &JsValue);
    #[wasm_bindgen(js_name = listenToPage)]
    fn listen_to_page(on_message: &js_sys::Function);
    #[wasm_bindgen(catch, js_name = postToPage)]
    fn post_to_page(message: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(js_name = closeWorker)]
    fn close_worker();
}

/// A message as a plain JS object.
fn encode<T: Serialize>(message: &T) -> JsValue {
    super::to_js(message).unwrap_or(JsValue::NULL)
}

/// A message read back (`None` for what is not one: it is ignored).
fn decode<T: for<'de> Deserialize<'de>>(data: JsValue) -> Option<T> {
    serde_wasm_bindgen::from_value(data).ok()
}
