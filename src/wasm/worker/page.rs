//! The page's end: starts the worker and waits for its load ([`WorkerBackend::start`]), then
//! sends numbered requests whose chunks, completions and errors come back to each request's
//! channel (`shared.rs`). A worker whose GPU device was lost (a request failed `device_lost`)
//! or that crashed is replaced on the next request: a fresh worker — a fresh realm, so a fresh
//! device — loads the model again (from the browser's store) and the request waits for it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_channel::mpsc::{UnboundedReceiver, unbounded};
use futures_channel::oneshot;
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::AbortSignal;

use super::ToWorker;
use super::shared::{Loaded, Pending, Shared};
use crate::api::{ApiError, ErrorCode};
use crate::wasm::options::LocalOptions;

/// How starting the model in a worker ended, short of an error.
pub(in crate::wasm) enum WorkerStart {
    /// The model is loaded in the worker.
    Loaded(WorkerBackend),
    /// Auto mode: the model does not fit or could not be loaded; the reason.
    Fallback(String),
    /// No worker could run it (no `Worker`, no WebGPU in workers, the worker file missing): the
    /// page may run the model itself. The reason.
    Unavailable(String),
}

/// One request's answer: the chunks of a stream, or the whole completion.
pub(in crate::wasm) enum WorkerRequest {
    /// `stream: true`; the channel ends after the last chunk (or an error).
    Stream {
        id: u32,
        chunks: UnboundedReceiver<Result<Value, ApiError>>,
    },
    /// `stream: false`.
    Whole {
        id: u32,
        answer: oneshot::Receiver<Result<Value, ApiError>>,
    },
}

/// The local model running in the engine's worker.
pub(in crate::wasm) struct WorkerBackend {
    /// The worker now answering (replaced after a device loss).
    shared: RefCell<Rc<Shared>>,
    next_id: Cell<u32>,
    /// The `local` options' plain data and auto mode, to load the model again.
    local: Value,
    auto: bool,
    /// The model's name.
    model: String,
}

impl WorkerBackend {
    /// Starts the worker and has it load the model (`auto`: with auto mode's fit check and
    /// fallback), forwarding its progress events to `on_progress`. `signal` aborts the load.
    pub async fn start(
        local: &LocalOptions,
        auto: bool,
        on_progress: &mut dyn FnMut(JsValue),
        signal: Option<AbortSignal>,
    ) -> Result<WorkerStart, ApiError> {
        let shared = match Shared::spawn() {
            Ok(shared) => shared,
            Err(why) => return Ok(WorkerStart::Unavailable(why)),
        };
        let local = serde_wasm_bindgen::from_value::<Value>(local.data.clone().into())
            .unwrap_or(Value::Null);
        Ok(
            match shared
                .load(local.clone(), auto, on_progress, signal)
                .await?
            {
                Loaded::Ready(model) => WorkerStart::Loaded(WorkerBackend {
                    model,
                    shared: RefCell::new(shared),
                    next_id: Cell::new(0),
                    local,
                    auto,
                }),
                Loaded::Fallback(reason) => WorkerStart::Fallback(reason),
                Loaded::Unavailable(why) => WorkerStart::Unavailable(why),
            },
        )
    }

    /// Sends a request (the request object as JSON) now: the worker answers requests in the
    /// order they were sent. After a device loss, the request waits for a fresh worker.
    pub fn send(&self, params: Value, stream: bool) -> WorkerRequest {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let (pending, request) = match stream {
            true => {
                let (tx, chunks) = unbounded();
                (Pending::Stream(tx), WorkerRequest::Stream { id, chunks })
            }
            false => {
                let (tx, answer) = oneshot::channel();
                (Pending::Whole(tx), WorkerRequest::Whole { id, answer })
            }
        };
        if self.shared.borrow().is_dead() {
            self.restart();
        }
        self.shared.borrow().send(id, params, pending);
        request
    }

    /// Replaces a dead worker: a fresh one loads the model; requests sent meanwhile are held
    /// until it is ready (or fail with why it could not load).
    fn restart(&self) {
        let old = self.shared.borrow().clone();
        old.fail_all(ApiError::new(
            ErrorCode::DeviceLost,
            "the GPU device was lost; the model is being loaded again",
        ));
        old.shutdown();
        let fresh = match Shared::spawn() {
            Ok(fresh) => fresh,
            Err(why) => {
                log::error!("llama-web: the engine's worker could not be restarted: {why}");
                return;
            }
        };
        log::warn!("llama-web: the GPU device was lost; loading the model again in a new worker");
        fresh.hold();
        *self.shared.borrow_mut() = fresh.clone();
        let (local, auto) = (self.local.clone(), self.auto);
        spawn_local(async move {
            if let Err(e) = fresh.load(local, auto, &mut |_| {}, None).await {
                log::error!("llama-web: the model could not be loaded again: {e}");
            }
        });
    }

    /// The model's name (its `general.name`), as answers carry it.
    pub fn model_name(&self) -> &str {
        &self.model
    }

    /// Stops request `id` (between two decode steps in the worker).
    pub fn cancel(&self, id: u32) {
        let _ = self.shared.borrow().post(&ToWorker::Cancel { id });
    }

    /// Has the worker drop the model once the requests in flight are over, then close.
    pub fn dispose(&self) {
        let shared = self.shared.borrow().clone();
        if shared.post(&ToWorker::Dispose).is_err() {
            shared.shutdown();
        }
    }
}
