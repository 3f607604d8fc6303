//! `LlamaClient`: OpenAI's `chat.completions.create` over the local engine (WebGPU) or a
//! remote OpenAI-compatible endpoint (IONOS), chosen by `mode` — and in `auto` mode by what the
//! browser's GPU can hold, with the reason given.
//!
//! ```js
//! const client = await LlamaClient.create({ mode: "auto", local: { modelUrl }, remote: { apiKey } });
//! for await (const chunk of await client.chat.completions.create({ messages, stream: true })) { … }
//! ```

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_channel::mpsc::{UnboundedReceiver, unbounded};
use futures_util::StreamExt;
use js_sys::{Function, Object, Promise, Reflect};
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, spawn_local};
use web_sys::{AbortController, AbortSignal};

use super::adapter::{self, Probe};
use super::http_source::HttpSource;
use super::local::{LocalBackend, Progress, source_error};
use super::to_js;
use crate::api::{ApiError, ChatParams, ErrorCode};
use crate::model::config::LlamaConfig;
use crate::model::device::DeviceChoice;
use crate::model::plan::{KvFormat, MemoryPlan};
use crate::remote::fetch::{Auth, Opened, RemoteClient};
use crate::remote::protocol::RetryPolicy;
use crate::remote::{IONOS_BASE_URL, IONOS_MODEL};

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Options of `LlamaClient.create`. */
export interface LlamaClientOptions {
  /** "auto" (default): local when the GPU can hold the model, else remote. */
  mode?: "local" | "remote" | "auto";
  local?: {
    /** A GGUF file, served with HTTP Range support. */
    modelUrl: string;
    /** Tokens of context (default: min(4096, the model's)). */
    contextSize?: number;
    /** KV cache format: "q8" (default: 8-bit, a quarter of the memory) or "f32" (exact). */
    kvCache?: "f32" | "q8";
  };
  remote?: {
    /** Default: the IONOS AI Model Hub, https://openai.inference.de-txl.ionos.com/v1 */
    baseUrl?: string;
    /** A bearer token; kept in memory only, never stored or logged. */
    apiKey?: string;
    /** Called before every request for a fresh token. */
    getToken?: () => string | Promise<string>;
    /** Default: meta-llama/Meta-Llama-3.1-8B-Instruct */
    model?: string;
    /** A stream silent this long fails with code "network" (default 60). */
    stallTimeoutSeconds?: number;
    /** Retries of 429/503/unreachable before the first byte (default 3). */
    maxRetries?: number;
  };
  onProgress?: (p: LoadProgress) => void;
  /** Aborts loading. */
  signal?: AbortSignal;
}

/** Model loading progress. */
export interface LoadProgress {
  /**
   * "download" while tensors are fetched and uploaded one by one, then one "compile" event when the GPU kernels
   * start compiling (etaSeconds null). The last event has loadedBytes === totalBytes.
   */
  phase: "download" | "compile";
  loadedBytes: number;
  totalBytes: number;
  etaSeconds: number | null;
}

/** `chat.completions.create` parameters (OpenAI's; unknown ones are forwarded to remote endpoints). */
export interface ChatCompletionParams {
  messages: Array<{ role: string; content?: string | null; [key: string]: unknown }>;
  stream?: boolean;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  seed?: number;
  stop?: string | string[];
  presence_penalty?: number;
  frequency_penalty?: number;
  tools?: unknown[];
  tool_choice?: unknown;
  signal?: AbortSignal;
  [key: string]: unknown;
}

export interface ChatCompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Locally: `cached_tokens` of the prompt were not run again (kept from the last request or the load). */
  prompt_tokens_details?: { cached_tokens: number };
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: Array<{ index: number; delta: { role?: string; content?: string | null; tool_calls?: unknown[] };
                   finish_reason: "stop" | "length" | "tool_calls" | null }>;
  usage?: ChatCompletionUsage;
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: Array<{ index: number; message: { role: "assistant"; content: string | null; tool_calls?: unknown[] };
                   finish_reason: "stop" | "length" | "tool_calls" }>;
  usage: ChatCompletionUsage;
}

/** Errors are `Error`s named "LlamaWebError" with a stable `code`. */
export interface LlamaWebError extends Error {
  code: "no_webgpu" | "insufficient_gpu" | "device_lost" | "model_fetch" | "bad_model" | "quota" | "auth"
      | "rate_limited" | "network" | "context_overflow" | "aborted" | "bad_request";
  status?: number;
  retryAfterSeconds?: number;
}
"#;

#[wasm_bindgen(inline_js = r#"
export function asyncIterable(stream) {
  return {
    [Symbol.asyncIterator]() { return this; },
    next() { return stream.next(); },
    return(value) { stream.cancel(); return Promise.resolve({ done: true, value }); },
    /** Stops the answer (like breaking out of the loop). */
    abort() { stream.cancel(); },
  };
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = asyncIterable)]
    fn async_iterable(stream: ChatCompletionStream) -> JsValue;
}

/// Which backend answers.
enum Backend {
    Local(Rc<LocalBackend>),
    Remote(Rc<RemoteClient>),
}

struct ClientInner {
    backend: Backend,
    fallback_reason: Option<String>,
}

/// The client: create it with `LlamaClient.create(options)`.
#[wasm_bindgen]
pub struct LlamaClient {
    inner: Rc<ClientInner>,
}

#[wasm_bindgen]
impl LlamaClient {
    /// Creates a client; in local (or auto) mode this loads the model, reporting `onProgress`.
    pub async fn create(
        #[wasm_bindgen(unchecked_param_type = "LlamaClientOptions")] options: JsValue,
    ) -> Result<LlamaClient, JsValue> {
        let options = Options::read(&options).map_err(|e| to_js_error(&e))?;
        let (backend, fallback_reason) = choose(options).await.map_err(|e| to_js_error(&e))?;
        Ok(LlamaClient {
            inner: Rc::new(ClientInner {
                backend,
                fallback_reason,
            }),
        })
    }

    /// `"local"` or `"remote"`: which backend answers.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        match self.inner.backend {
            Backend::Local(_) => "local".into(),
            Backend::Remote(_) => "remote".into(),
        }
    }

    /// Why auto mode chose the remote backend (`undefined` when it did not fall back).
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.inner.fallback_reason.clone()
    }

    /// `client.chat.completions.create(…)`.
    #[wasm_bindgen(getter)]
    pub fn chat(&self) -> Chat {
        Chat {
            inner: self.inner.clone(),
        }
    }
}

/// `client.chat`.
#[wasm_bindgen]
pub struct Chat {
    inner: Rc<ClientInner>,
}

#[wasm_bindgen]
impl Chat {
    /// `client.chat.completions`.
    #[wasm_bindgen(getter)]
    pub fn completions(&self) -> Completions {
        Completions {
            inner: self.inner.clone(),
        }
    }
}

/// `client.chat.completions`.
#[wasm_bindgen]
pub struct Completions {
    inner: Rc<ClientInner>,
}

#[wasm_bindgen]
impl Completions {
    /// OpenAI's `create`: with `stream: true`, an async iterable of `chat.completion.chunk`s;
    /// else one `chat.completion`. `signal` aborts (the error's code is `aborted`).
    #[wasm_bindgen(
        unchecked_return_type = "Promise<AsyncIterable<ChatCompletionChunk> | ChatCompletion>"
    )]
    pub fn create(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ChatCompletionParams")] params: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let (params, user_signal) = read_params(&params).map_err(|e| to_js_error(&e))?;
            let controller = AbortController::new()?;
            if let Some(user) = &user_signal {
                follow(user, &controller);
            }
            start(&inner.backend, params, controller)
                .await
                .map_err(|e| to_js_error(&e))
        })
    }
}

/// What a stream's producer (the remote reader or the local generation) sends.
type Chunks = UnboundedReceiver<Result<Value, ApiError>>;

/// A streamed answer; JS sees it through an async-iterable wrapper.
#[wasm_bindgen]
pub struct ChatCompletionStream {
    /// `None` while a `next()` waits on it.
    rx: Rc<RefCell<Option<Chunks>>>,
    controller: AbortController,
    cancelled: Rc<Cell<bool>>,
}

#[wasm_bindgen]
impl ChatCompletionStream {
    /// The iterator protocol's `next()`: `{ done, value }`, or a rejection with a typed error.
    pub fn next(&self) -> Promise {
        let rx = self.rx.clone();
        future_to_promise(async move {
            let Some(mut receiver) = rx.borrow_mut().take() else {
                return Err(to_js_error(&ApiError::new(
                    ErrorCode::BadRequest,
                    "next() called again before the previous call settled",
                )));
            };
            let item = receiver.next().await;
            *rx.borrow_mut() = Some(receiver);
            let result = Object::new();
            match item {
                Some(Ok(chunk)) => {
                    Reflect::set(&result, &"done".into(), &false.into())?;
                    Reflect::set(&result, &"value".into(), &to_js(&chunk)?)?;
                }
                Some(Err(e)) => return Err(to_js_error(&e)),
                None => {
                    Reflect::set(&result, &"done".into(), &true.into())?;
                }
            }
            Ok(result.into())
        })
    }

    /// Stops the answer: aborts the request or the generation; `next()` then reports the end.
    pub fn cancel(&self) {
        self.cancelled.set(true);
        self.controller.abort();
        if let Some(rx) = self.rx.borrow_mut().as_mut() {
            rx.close();
        }
    }
}

/// Runs one request on `backend`.
async fn start(
    backend: &Backend,
    params: ChatParams,
    controller: AbortController,
) -> Result<JsValue, ApiError> {
    let signal = controller.signal();
    let cancelled = Rc::new(Cell::new(false));
    // The caller's abort stops a local generation between tokens too.
    {
        let cancelled = cancelled.clone();
        let on_abort = Closure::once_into_js(move || cancelled.set(true));
        let _ = signal.add_event_listener_with_callback("abort", on_abort.unchecked_ref());
    }
    let (tx, rx) = unbounded();
    match backend {
        Backend::Remote(client) => match client.send(&params, &signal).await? {
            Opened::Completion(completion) => to_js(&completion).map_err(js_to_api),
            Opened::Stream(mut reader) => {
                spawn_local(async move {
                    loop {
                        match reader.next(&signal).await {
                            Ok(Some(chunk)) => {
                                if tx.unbounded_send(Ok(chunk)).is_err() {
                                    reader.cancel();
                                    break;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                let _ = tx.unbounded_send(Err(e));
                                break;
                            }
                        }
                    }
                });
                Ok(stream_object(rx, controller, cancelled))
            }
        },
        Backend::Local(local) => {
            if !params.stream {
                let completion = local.answer(&params, None, &cancelled).await?;
                return to_js(&completion).map_err(js_to_api);
            }
            let local = local.clone();
            let flag = cancelled.clone();
            spawn_local(async move {
                if let Err(e) = local.answer(&params, Some(&tx), &flag).await {
                    let _ = tx.unbounded_send(Err(e));
                }
            });
            Ok(stream_object(rx, controller, cancelled))
        }
    }
}

fn stream_object(rx: Chunks, controller: AbortController, cancelled: Rc<Cell<bool>>) -> JsValue {
    async_iterable(ChatCompletionStream {
        rx: Rc::new(RefCell::new(Some(rx))),
        controller,
        cancelled,
    })
}

/// When `user` aborts, abort `ours` too.
fn follow(user: &AbortSignal, ours: &AbortController) {
    if user.aborted() {
        ours.abort();
        return;
    }
    let ours = ours.clone();
    let on_abort = Closure::once_into_js(move || ours.abort());
    let _ = user.add_event_listener_with_callback("abort", on_abort.unchecked_ref());
}

/// `create`'s options.
struct Options {
    mode: Mode,
    local: Option<LocalOptions>,
    remote: RemoteClient,
    on_progress: Option<Function>,
    signal: Option<AbortSignal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Local,
    Remote,
    Auto,
}

struct LocalOptions {
    model_url: String,
    context_size: Option<usize>,
    kv_format: KvFormat,
}

impl Options {
    fn read(options: &JsValue) -> Result<Self, ApiError> {
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
            true => Some(LocalOptions {
                model_url: get_string(&local_obj, "modelUrl")?
                    .ok_or_else(|| bad("local.modelUrl is missing".into()))?,
                context_size: get_number(&local_obj, "contextSize")?.map(|n| n as usize),
                kv_format: match get_string(&local_obj, "kvCache")? {
                    None => KvFormat::default_for(DeviceChoice::Wgpu),
                    Some(name) => name.parse().map_err(bad)?,
                },
            }),
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
        let remote = RemoteClient {
            base_url: get_string(&remote_obj, "baseUrl")?.unwrap_or_else(|| IONOS_BASE_URL.into()),
            model: get_string(&remote_obj, "model")?.unwrap_or_else(|| IONOS_MODEL.into()),
            auth,
            retry: RetryPolicy {
                max_retries: get_number(&remote_obj, "maxRetries")?
                    .map_or(RetryPolicy::default().max_retries, |n| n as u32),
                ..RetryPolicy::default()
            },
            stall_timeout_ms: (get_number(&remote_obj, "stallTimeoutSeconds")?.unwrap_or(60.0)
                * 1000.0) as u32,
        };
        Ok(Self {
            mode,
            local,
            remote,
            on_progress: get(options, "onProgress").dyn_into::<Function>().ok(),
            signal: get(options, "signal").dyn_into::<AbortSignal>().ok(),
        })
    }
}

/// Picks (and for local, loads) the backend; in auto mode says why it fell back.
async fn choose(options: Options) -> Result<(Backend, Option<String>), ApiError> {
    let Options {
        mode,
        local,
        remote,
        on_progress,
        signal,
    } = options;
    let remote = || Backend::Remote(Rc::new(remote));
    let Some(local) = local.filter(|_| mode != Mode::Remote) else {
        let reason = (mode == Mode::Auto).then(|| "no local model was configured".to_string());
        return Ok((remote(), reason));
    };
    let adapter = match adapter::probe().await {
        Probe::Available { adapter } => adapter,
        Probe::Unavailable { reason } => {
            let reason = format!("no WebGPU: {reason}");
            return match mode {
                Mode::Auto => Ok((remote(), Some(reason))),
                _ => Err(ApiError::new(ErrorCode::NoWebgpu, reason)),
            };
        }
    };
    let (source, header) = match HttpSource::open(&local.model_url, signal.clone()).await {
        Ok(opened) => opened,
        Err(_) if signal.as_ref().is_some_and(AbortSignal::aborted) => {
            return Err(ApiError::aborted("loading"));
        }
        Err(e) => {
            let e = source_error(e);
            return match mode {
                Mode::Auto => Ok((
                    remote(),
                    Some(format!("the local model could not be read: {}", e.message)),
                )),
                _ => Err(e),
            };
        }
    };
    if mode == Mode::Auto
        && let Some(reason) = does_not_fit(&header, &local, &adapter)?
    {
        return Ok((remote(), Some(reason)));
    }
    let mut report = |p: Progress| {
        if let (Some(f), Ok(value)) = (&on_progress, to_js(&p)) {
            let _ = f.call1(&JsValue::NULL, &value);
        }
    };
    let loaded = LocalBackend::load(
        source,
        header,
        local.context_size,
        local.kv_format,
        &mut report,
        signal.as_ref(),
    )
    .await;
    match (loaded, mode) {
        (Ok(backend), _) => Ok((Backend::Local(Rc::new(backend)), None)),
        (Err(e), Mode::Auto) if e.code != ErrorCode::Aborted && e.code != ErrorCode::BadModel => {
            Ok((
                remote(),
                Some(format!(
                    "the local model could not be loaded: {}",
                    e.message
                )),
            ))
        }
        (Err(e), _) => Err(e),
    }
}

/// Why the model cannot run well on `adapter` (auto mode), from the memory plan.
fn does_not_fit(
    header: &crate::gguf::GgufHeader,
    local: &LocalOptions,
    adapter: &adapter::AdapterInfo,
) -> Result<Option<String>, ApiError> {
    let config = LlamaConfig::from_gguf(header)
        .map_err(|e| ApiError::new(ErrorCode::BadModel, e.to_string()))?;
    let context = local
        .context_size
        .unwrap_or(crate::engine::DEFAULT_CONTEXT_SIZE.min(config.context_length));
    let plan = MemoryPlan::new(header, &config, context, local.kv_format);
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let limit = |name: &str| {
        adapter
            .limits
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    };
    let binding = limit("maxStorageBufferBindingSize").unwrap_or(0.0);
    if binding < crate::model::quant::MAX_CHUNK_BYTES as f64 {
        return Ok(Some(format!(
            "the GPU binds at most {:.0} MiB per buffer; the model's kernels need 128 MiB",
            binding / (1u64 << 20) as f64
        )));
    }
    // A software adapter (SwiftShader) runs ~0.1 tok/s on a 135M model: only tiny models.
    if adapter.is_fallback_adapter && plan.total_gpu_bytes > (1 << 30) {
        return Ok(Some(format!(
            "the GPU is a software fallback ({}), far too slow for a model needing {:.1} GiB",
            adapter.name(),
            gib(plan.total_gpu_bytes)
        )));
    }
    // navigator.deviceMemory: the machine's RAM in GiB, rounded down and capped at 8 (Chromium).
    let device_memory = Reflect::get(&get(&js_sys::global(), "navigator"), &"deviceMemory".into())
        .ok()
        .and_then(|v| v.as_f64());
    if let Some(memory) = device_memory
        && memory < 8.0
        && gib(plan.total_gpu_bytes + plan.host_bytes) > memory * 0.5
    {
        return Ok(Some(format!(
            "the model needs {:.1} GiB of GPU memory at {context} tokens, and this device reports {memory} GiB in all",
            gib(plan.total_gpu_bytes)
        )));
    }
    Ok(None)
}

/// The request object (`signal` taken out) and its abort signal.
fn read_params(params: &JsValue) -> Result<(ChatParams, Option<AbortSignal>), ApiError> {
    let signal = get(params, "signal").dyn_into::<AbortSignal>().ok();
    let copy = Object::assign(&Object::new(), &Object::from(params.clone()));
    let _ = Reflect::delete_property(&copy, &"signal".into());
    let value: Value = serde_wasm_bindgen::from_value(copy.into()).map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("the request is not JSON-like: {e}"),
        )
    })?;
    Ok((ChatParams::from_json(value)?, signal))
}

fn get(target: &JsValue, key: &str) -> JsValue {
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

fn js_to_api(e: JsError) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, format!("{:?}", JsValue::from(e)))
}

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
