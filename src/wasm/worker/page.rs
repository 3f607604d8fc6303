//! The page's end: starts the worker and waits for its load ([`WorkerBackend::start`]), then
//! sends numbered requests and routes the chunks, completions and errors that come back to each
//! request's channel. A worker that crashes fails every request in flight with `device_lost`
//! and every later one at once.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures_channel::oneshot;
use futures_util::StreamExt;
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::AbortSignal;

use super::{
    FromWorker, ToWorker, decode, encode, post_to_worker, spawn_engine_worker, terminate_worker,
};
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

/// Where a request's answer goes.
enum Pending {
    Stream(UnboundedSender<Result<Value, ApiError>>),
    Whole(oneshot::Sender<Result<Value, ApiError>>),
}

impl Pending {
    fn fail(self, error: ApiError) {
        match self {
            Pending::Stream(tx) => drop(tx.unbounded_send(Err(error))),
            Pending::Whole(tx) => drop(tx.send(Err(error))),
        }
    }
}

/// What the load waits on.
enum LoadEvent {
    Message(FromWorker),
    Crashed(String),
}

/// The worker callbacks' `(on_message, on_error)`.
type Callbacks = (Closure<dyn FnMut(JsValue)>, Closure<dyn FnMut(String)>);

/// What the page's end and the worker's callbacks share. The callbacks hold it and it holds
/// them, so it lives until [`Shared::shutdown`] (the worker closed, crashed or was not kept).
#[derive(Default)]
struct Shared {
    /// The `Worker` (`None` once terminated).
    worker: RefCell<Option<JsValue>>,
    callbacks: RefCell<Option<Callbacks>>,
    /// The requests sent and not yet answered.
    pending: RefCell<HashMap<u32, Pending>>,
    /// While loading: where the worker's load messages go.
    events: RefCell<Option<UnboundedSender<LoadEvent>>>,
    /// Why the worker cannot answer any more.
    broken: RefCell<Option<ApiError>>,
}

impl Shared {
    fn post(&self, message: &ToWorker) -> Result<(), ApiError> {
        let worker = self.worker.borrow();
        let sent = worker.as_ref().map(|w| post_to_worker(w, &encode(message)));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(self.broken.borrow().clone().unwrap_or_else(|| {
                ApiError::new(ErrorCode::DeviceLost, "the engine's worker is not running")
            })),
        }
    }

    fn receive(self: &Rc<Self>, data: JsValue) {
        let Some(message) = decode::<FromWorker>(data) else {
            return;
        };
        match message {
            FromWorker::Chunk { id, chunk } => {
                if let Some(Pending::Stream(tx)) = self.pending.borrow().get(&id) {
                    let _ = tx.unbounded_send(Ok(chunk));
                }
            }
            FromWorker::Done { id, completion } => {
                // A stream's channel ends when its sender is dropped here.
                if let Some(Pending::Whole(tx)) = self.pending.borrow_mut().remove(&id) {
                    let _ = tx.send(Ok(completion));
                }
            }
            FromWorker::Failed { id, error } => {
                let pending = self.pending.borrow_mut().remove(&id);
                if let Some(pending) = pending {
                    pending.fail(error);
                }
            }
            FromWorker::Closed => self.shutdown_soon(),
            other => {
                if let Some(events) = self.events.borrow().as_ref() {
                    let _ = events.unbounded_send(LoadEvent::Message(other));
                }
            }
        }
    }

    /// The worker failed to start, or crashed (a panic traps its module): every request in
    /// flight fails, and every later one.
    fn crashed(self: &Rc<Self>, text: String) {
        if let Some(events) = self.events.borrow().as_ref() {
            let _ = events.unbounded_send(LoadEvent::Crashed(text));
            return;
        }
        let error = ApiError::new(
            ErrorCode::DeviceLost,
            format!("the engine's worker stopped ({text}); create a new client"),
        );
        *self.broken.borrow_mut() = Some(error.clone());
        let pending: Vec<Pending> = self.pending.borrow_mut().drain().map(|(_, p)| p).collect();
        pending.into_iter().for_each(|p| p.fail(error.clone()));
        self.shutdown_soon();
    }

    /// [`Shared::shutdown`] once the callback running now has returned (a closure must not be
    /// dropped while it runs).
    fn shutdown_soon(self: &Rc<Self>) {
        let shared = self.clone();
        spawn_local(async move { shared.shutdown() });
    }

    /// Terminates the worker and drops its callbacks (which frees this).
    fn shutdown(&self) {
        if let Some(worker) = self.worker.borrow_mut().take() {
            terminate_worker(&worker);
        }
        self.callbacks.borrow_mut().take();
    }
}

/// The local model running in the engine's worker.
pub(in crate::wasm) struct WorkerBackend {
    shared: Rc<Shared>,
    next_id: Cell<u32>,
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
        let shared = Rc::new(Shared::default());
        let (events_tx, mut events) = unbounded();
        *shared.events.borrow_mut() = Some(events_tx);
        let on_message = {
            let shared = shared.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |data| shared.receive(data))
        };
        let on_error = {
            let shared = shared.clone();
            Closure::<dyn FnMut(String)>::new(move |text| shared.crashed(text))
        };
        let spawned = spawn_engine_worker(
            &wasm_bindgen::module(),
            on_message.as_ref().unchecked_ref(),
            on_error.as_ref().unchecked_ref(),
        );
        *shared.callbacks.borrow_mut() = Some((on_message, on_error));
        let worker = match spawned {
            Ok(worker) => worker,
            Err(e) => {
                shared.shutdown();
                return Ok(WorkerStart::Unavailable(format!("no Web Worker: {e:?}")));
            }
        };
        *shared.worker.borrow_mut() = Some(worker);
        if let Some(signal) = &signal {
            let shared = shared.clone();
            let on_abort = Closure::once_into_js(move || drop(shared.post(&ToWorker::AbortLoad)));
            let _ = signal.add_event_listener_with_callback("abort", on_abort.unchecked_ref());
        }
        let data = serde_wasm_bindgen::from_value::<Value>(local.data.clone().into())
            .unwrap_or(Value::Null);
        let mut ready = false;
        // `None`: loaded.
        let outcome: Result<Option<WorkerStart>, ApiError> = loop {
            let Some(event) = events.next().await else {
                break Ok(Some(WorkerStart::Unavailable(
                    "the worker went away".into(),
                )));
            };
            match event {
                LoadEvent::Message(FromWorker::Ready) => {
                    ready = true;
                    let load = ToWorker::Load {
                        auto,
                        local: data.clone(),
                    };
                    if let Err(e) = shared.post(&load) {
                        break Err(e);
                    }
                    if signal.as_ref().is_some_and(AbortSignal::aborted) {
                        let _ = shared.post(&ToWorker::AbortLoad);
                    }
                }
                LoadEvent::Message(FromWorker::Progress { progress }) => {
                    on_progress(encode(&progress))
                }
                LoadEvent::Message(FromWorker::Loaded) => break Ok(None),
                LoadEvent::Message(FromWorker::Fallback { reason }) => {
                    break Ok(Some(WorkerStart::Fallback(reason)));
                }
                LoadEvent::Message(FromWorker::NoWebgpu { reason }) => {
                    let why = format!("the worker has no WebGPU: {reason}");
                    break Ok(Some(WorkerStart::Unavailable(why)));
                }
                LoadEvent::Message(FromWorker::StartFailed { message }) => {
                    let why = format!("the worker could not start: {message}");
                    break Ok(Some(WorkerStart::Unavailable(why)));
                }
                LoadEvent::Message(FromWorker::LoadFailed { error }) => break Err(error),
                LoadEvent::Crashed(text) if ready => {
                    break Err(ApiError::new(
                        ErrorCode::DeviceLost,
                        format!("the engine's worker stopped while loading: {text}"),
                    ));
                }
                LoadEvent::Crashed(text) => {
                    let why = format!("the worker could not start: {text}");
                    break Ok(Some(WorkerStart::Unavailable(why)));
                }
                LoadEvent::Message(_) => {}
            }
        };
        shared.events.borrow_mut().take();
        match outcome {
            Ok(None) => Ok(WorkerStart::Loaded(WorkerBackend {
                shared,
                next_id: Cell::new(0),
            })),
            Ok(Some(start)) => {
                shared.shutdown();
                Ok(start)
            }
            Err(e) => {
                shared.shutdown();
                Err(e)
            }
        }
    }

    /// Sends a request (the request object as JSON) now: the worker answers requests in the
    /// order they were sent.
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
        match self.shared.post(&ToWorker::Chat { id, params }) {
            Ok(()) => drop(self.shared.pending.borrow_mut().insert(id, pending)),
            Err(error) => pending.fail(error),
        }
        request
    }

    /// Stops request `id` (between two decode steps in the worker).
    pub fn cancel(&self, id: u32) {
        let _ = self.shared.post(&ToWorker::Cancel { id });
    }

    /// Has the worker drop the model once the requests in flight are over, then close.
    pub fn dispose(&self) {
        if self.shared.post(&ToWorker::Dispose).is_err() {
            self.shared.shutdown();
        }
    }
}
