//! `LlamaClient`: OpenAI's `chat.completions.create` over the local engine (WebGPU) or a
//! remote OpenAI-compatible endpoint (IONOS), chosen by `mode` — and in `auto` mode by what the
//! browser's GPU can hold, with the reason given (`choose.rs`). With `hybrid: true` (auto mode)
//! the client answers remotely at once and switches to local when the model is ready.
//!
//! The answer's stream and the request's run on its backend are in `stream.rs`.
//!
//! ```js
//! const client = await LlamaClient.create({ mode: "auto", local: { modelUrl }, remote: { apiKey } });
//! for await (const chunk of await client.chat.completions.create({ messages, stream: true })) { … }
//! ```

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::AbortController;

use super::choose::choose;
use super::error::to_js_error;
use super::guard::guarded;
use super::local::LocalBackend;
use super::model_cache::ModelCache;
use super::options::{Options, read_params};
use super::stream::{Queued, start};
use super::worker::WorkerBackend;
use crate::remote::abort::follow;
use crate::remote::fetch::RemoteClient;

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
    /// else one `chat.completion`. `signal` aborts (the error's code is `aborted`). Its
    /// TypeScript overloads (one per `stream` literal) are declared in `types.rs`.
    #[wasm_bindgen(skip_typescript)]
    pub fn create(&self, params: JsValue) -> Promise {
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
            // The caller's signal aborts this request until it ends (then the listener goes).
            let following = request
                .signal
                .as_ref()
                .map(|user| follow(user, &controller));
            start(&backend, request.params, controller, queued, following)
                .await
                .map_err(|e| to_js_error(&e))
        })
    }
}
