//! `LlamaClient`: OpenAI's `chat.completions.create` over the local engine (WebGPU) or a
//! remote OpenAI-compatible endpoint (IONOS), chosen by `mode` — and in `auto` mode by what the
//! browser's GPU can hold, with the reason given (`choose.rs`). With `hybrid: true` (auto mode)
//! the client answers remotely at once and switches to local when the model is ready.
//!
//! ```js
//! const client = await LlamaClient.create({ mode: "auto", local: { modelUrl }, remote: { apiKey } });
//! for await (const chunk of await client.chat.completions.create({ messages, stream: true })) { … }
//! ```

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_channel::mpsc::{UnboundedReceiver, unbounded};
use futures_util::StreamExt;
use js_sys::{Object, Promise, Reflect};
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use super::guard::guarded;
use web_sys::AbortController;

use super::choose::choose;
use super::local::{LocalBackend, Turn};
use super::model_cache::ModelCache;
use super::options::{Options, read_params};
use super::to_js;
use super::worker::{WorkerBackend, WorkerRequest};
use crate::api::{ApiError, ChatParams, ErrorCode};
use crate::remote::fetch::{Opened, RemoteClient, follow};

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
#[derive(Clone)]
pub(super) enum Backend {
    /// The model on this browser's GPU, run on the page's thread.
    Local(Rc<LocalBackend>),
    /// The model on this browser's GPU, run in the engine's Web Worker.
    Worker(Rc<WorkerBackend>),
    /// An OpenAI-compatible endpoint.
    Remote(Rc<RemoteClient>),
    /// `dispose()` was called.
    Disposed,
}

impl Backend {
    /// The model this backend answers with (`""` once disposed).
    pub(super) fn model(&self) -> String {
        match self {
            Backend::Local(local) => local.model_name().into(),
            Backend::Worker(worker) => worker.model_name().into(),
            Backend::Remote(remote) => remote.model.clone(),
            Backend::Disposed => String::new(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Local(_) | Backend::Worker(_) => "local",
            Backend::Remote(_) => "remote",
            Backend::Disposed => "disposed",
        }
    }
}

/// What a client and its `chat.completions` share. Both fields change once at most: when a
/// hybrid start's local model is ready (or has failed).
pub(super) struct ClientInner {
    pub(super) backend: RefCell<Backend>,
    fallback_reason: RefCell<Option<String>>,
}

/// The client: create it with `LlamaClient.create(options)`.
#[wasm_bindgen]
pub struct LlamaClient {
    inner: Rc<ClientInner>,
}

#[wasm_bindgen]
impl LlamaClient {
    /// Creates a client; in local (or auto) mode this loads the model, reporting `onProgress`.
    /// With `hybrid: true` it resolves at once, answering remotely while the model loads.
    #[wasm_bindgen(unchecked_return_type = "Promise<LlamaClient>")]
    pub fn create(
        #[wasm_bindgen(unchecked_param_type = "LlamaClientOptions")] options: JsValue,
    ) -> Promise {
        guarded(async move {
            let options = Options::read(&options).map_err(|e| to_js_error(&e))?;
            if options.hybrid {
                return Ok(Self::start_hybrid(options).into());
            }
            let (backend, fallback_reason) = choose(options).await.map_err(|e| to_js_error(&e))?;
            Ok(LlamaClient {
                inner: Rc::new(ClientInner {
                    backend: RefCell::new(backend),
                    fallback_reason: RefCell::new(fallback_reason),
                }),
            }
            .into())
        })
    }

    /// Remote now; the local model loads in the background and takes over the requests sent
    /// after it is ready (`onBackendChange("local")`). A request keeps the backend it began on.
    fn start_hybrid(options: Options) -> LlamaClient {
        let inner = Rc::new(ClientInner {
            backend: RefCell::new(Backend::Remote(options.remote.clone())),
            fallback_reason: RefCell::new(Some("the local model is loading (hybrid start)".into())),
        });
        let on_change = options.on_backend_change.clone();
        let client = inner.clone();
        spawn_local(async move {
            let (backend, reason) = match choose(options).await {
                Ok(chosen) => chosen,
                Err(e) => (client.backend.borrow().clone(), Some(e.message)),
            };
            if matches!(*client.backend.borrow(), Backend::Disposed) {
                return; // disposed while loading: the model is dropped here
            }
            let changed = backend.name() != client.backend.borrow().name();
            *client.backend.borrow_mut() = backend;
            *client.fallback_reason.borrow_mut() = reason;
            if let (true, Some(f)) = (changed, &on_change) {
                let _ = f.call1(&JsValue::NULL, &JsValue::from_str("local"));
            }
        });
        LlamaClient { inner }
    }

    /// `LlamaClient.cache`: the models kept in the browser's store (list, delete, clear).
    #[wasm_bindgen(getter)]
    pub fn cache() -> ModelCache {
        ModelCache {}
    }

    /// Frees the local model (its weights and KV cache leave the GPU once the request in flight,
    /// if any, has finished); later requests fail with `bad_request`. A hybrid start's load in
    /// progress is dropped when it ends.
    pub fn dispose(&self) {
        let backend = self.inner.backend.replace(Backend::Disposed);
        if let Backend::Worker(worker) = backend {
            worker.dispose();
        }
        *self.inner.fallback_reason.borrow_mut() = None;
    }

    /// `"local"` or `"remote"`: which backend answers (`"disposed"` after `dispose()`).
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.inner.backend.borrow().name().into()
    }

    /// Why auto mode chose the remote backend (`undefined` when it did not fall back).
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.inner.fallback_reason.borrow().clone()
    }

    /// A `fetch` for OpenAI-compatible clients (the `openai` package, the Vercel AI SDK,
    /// LangChain): it answers `POST …/chat/completions` (SSE or JSON, as the hosted API sends
    /// them) and `GET …/models` from this client's backend, whatever the base URL.
    #[wasm_bindgen(getter, unchecked_return_type = "typeof fetch")]
    pub fn fetch(&self) -> js_sys::Function {
        super::fetch::openai_fetch(self.inner.clone())
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
    pub(super) inner: Rc<ClientInner>,
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
        // The backend answering now answers this request to its end; a local request's place
        // in the queue is taken now, in the order of the calls (a turn, or the worker's order
        // of arrival).
        let backend = self.inner.backend.borrow().clone();
        let request = read_params(&params);
        let queued = match (&backend, &request) {
            (Backend::Local(local), _) => Queued::Turn(local.take_turn()),
            (Backend::Worker(worker), Ok(request)) => {
                Queued::Sent(worker.send(request.json.clone(), request.params.stream))
            }
            _ => Queued::Nothing,
        };
        guarded(async move {
            let request = request.map_err(|e| to_js_error(&e))?;
            let controller = AbortController::new()?;
            if let Some(user) = &request.signal {
                follow(user, &controller);
            }
            start(&backend, request.params, controller, queued)
                .await
                .map_err(|e| to_js_error(&e))
        })
    }
}

/// A local request's place in the queue, taken when `create()` is called.
enum Queued {
    /// In the page: the turn on the model.
    Turn(Turn),
    /// In the worker: the request, sent.
    Sent(WorkerRequest),
    /// Remote (or a request that could not be read).
    Nothing,
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
        guarded(async move {
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
    queued: Queued,
) -> Result<JsValue, ApiError> {
    let signal = controller.signal();
    // A signal aborted before the call stops the request before it starts; a later abort stops
    // a local generation between tokens.
    let cancelled = Rc::new(Cell::new(signal.aborted()));
    {
        let cancelled = cancelled.clone();
        let on_abort = Closure::once_into_js(move || cancelled.set(true));
        let _ = signal.add_event_listener_with_callback("abort", on_abort.unchecked_ref());
    }
    let (tx, rx) = unbounded();
    match backend {
        Backend::Disposed => Err(ApiError::new(
            ErrorCode::BadRequest,
            "the client was disposed; create a new one",
        )),
        Backend::Remote(client) => match client.send(&params, &signal).await? {
            Opened::Completion(completion) => to_js(&completion).map_err(js_to_api),
            Opened::Chunks(chunks) => {
                for chunk in chunks {
                    let _ = tx.unbounded_send(Ok(chunk));
                }
                drop(tx);
                Ok(stream_object(rx, controller, cancelled))
            }
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
        Backend::Worker(worker) => {
            let Queued::Sent(request) = queued else {
                let detail = "a worker request is sent when create() is called";
                return Err(ApiError::new(ErrorCode::BadRequest, detail));
            };
            let id = match &request {
                WorkerRequest::Stream { id, .. } | WorkerRequest::Whole { id, .. } => *id,
            };
            // The caller's abort (and the stream's cancel) becomes a `cancel` message.
            match signal.aborted() {
                true => worker.cancel(id),
                false => {
                    let worker = worker.clone();
                    let on_abort = Closure::once_into_js(move || worker.cancel(id));
                    let _ =
                        signal.add_event_listener_with_callback("abort", on_abort.unchecked_ref());
                }
            }
            match request {
                WorkerRequest::Whole { answer, .. } => {
                    let gone = || {
                        Err(ApiError::new(
                            ErrorCode::DeviceLost,
                            "the engine's worker went away",
                        ))
                    };
                    let completion = answer.await.unwrap_or_else(|_| gone())?;
                    to_js(&completion).map_err(js_to_api)
                }
                WorkerRequest::Stream { chunks, .. } => {
                    Ok(stream_object(chunks, controller, cancelled))
                }
            }
        }
        Backend::Local(local) => {
            let turn = match queued {
                Queued::Turn(turn) => turn,
                _ => local.take_turn(),
            };
            if !params.stream {
                let completion = local.answer(turn, &params, &mut |_| {}, &cancelled).await?;
                return to_js(&completion).map_err(js_to_api);
            }
            let local = local.clone();
            let flag = cancelled.clone();
            spawn_local(async move {
                let mut send = |chunk| drop(tx.unbounded_send(Ok(chunk)));
                if let Err(e) = local.answer(turn, &params, &mut send, &flag).await {
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
