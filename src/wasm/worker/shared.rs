//! One engine worker as the page sees it: spawned with the page's module, its messages routed
//! (load events to the load in progress, chunks and answers to each request's channel), its
//! crash turned into `device_lost` for every request in flight. See `page.rs` for its use.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::mpsc::{UnboundedSender, unbounded};
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
use crate::remote::abort::on_abort;

/// Where a request's answer goes.
pub(super) enum Pending {
    Stream(UnboundedSender<Result<Value, ApiError>>),
    Whole(oneshot::Sender<Result<Value, ApiError>>),
}

impl Pending {
    pub fn fail(self, error: ApiError) {
        match self {
            Pending::Stream(tx) => drop(tx.unbounded_send(Err(error))),
            Pending::Whole(tx) => drop(tx.send(Err(error))),
        }
    }
}

/// How a load in the worker ended, short of an error.
pub(super) enum Loaded {
    /// The model is ready; its name.
    Ready(String),
    /// Auto mode: it does not fit or could not be loaded; the reason.
    Fallback(String),
    /// This worker cannot run it (no WebGPU here, the module did not start); the reason.
    Unavailable(String),
}

/// What the load waits on.
enum LoadEvent {
    Message(FromWorker),
    Crashed(String),
}

/// The worker callbacks' `(on_message, on_error)`.
type Callbacks = (Closure<dyn FnMut(JsValue)>, Closure<dyn FnMut(String)>);

/// The connection to one worker. The callbacks hold it and it holds them, so it lives until
/// [`Shared::shutdown`] (the worker closed, crashed, lost its GPU, or was not kept).
#[derive(Default)]
pub(super) struct Shared {
    /// The `Worker` (`None` once terminated).
    worker: RefCell<Option<JsValue>>,
    callbacks: RefCell<Option<Callbacks>>,
    /// The requests sent and not yet answered.
    pending: RefCell<HashMap<u32, Pending>>,
    /// While loading: where the worker's load messages go.
    events: RefCell<Option<UnboundedSender<LoadEvent>>>,
    /// Requests held until the model is loaded (a restart), in order.
    held: RefCell<Option<Vec<ToWorker>>>,
    /// Why the worker cannot answer any more.
    broken: RefCell<Option<ApiError>>,
    /// A request failed with `device_lost`: the worker's GPU device is gone for good.
    lost: Cell<bool>,
}

impl Shared {
    /// Starts a worker; the reason where none can be had.
    pub fn spawn() -> Result<Rc<Self>, String> {
        let shared = Rc::new(Shared::default());
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
        match spawned {
            Ok(worker) => {
                *shared.worker.borrow_mut() = Some(worker);
                Ok(shared)
            }
            Err(e) => {
                shared.shutdown();
                Err(format!("no Web Worker: {e:?}"))
            }
        }
    }

    /// Has the worker load the model (`local`: the options' plain data), forwarding progress
    /// to `on_progress`; `signal` aborts. Requests held meanwhile are sent once it is loaded,
    /// or failed with the load's error.
    pub async fn load(
        self: &Rc<Self>,
        local: Value,
        auto: bool,
        on_progress: &mut dyn FnMut(JsValue),
        signal: Option<AbortSignal>,
    ) -> Result<Loaded, ApiError> {
        let (events_tx, mut events) = unbounded();
        *self.events.borrow_mut() = Some(events_tx);
        // Removed when the load ends: the caller's signal may outlive this client.
        let _listening = signal.as_ref().map(|signal| {
            let shared = self.clone();
            on_abort(signal, move || drop(shared.post(&ToWorker::AbortLoad)))
        });
        let mut ready = false;
        let outcome = loop {
            let Some(event) = events.next().await else {
                break Ok(Loaded::Unavailable("the worker went away".into()));
            };
            match event {
                LoadEvent::Message(FromWorker::Ready) => {
                    ready = true;
                    let local = local.clone();
                    if let Err(e) = self.post(&ToWorker::Load { auto, local }) {
                        break Err(e);
                    }
                    if signal.as_ref().is_some_and(AbortSignal::aborted) {
                        let _ = self.post(&ToWorker::AbortLoad);
                    }
                }
                LoadEvent::Message(FromWorker::Progress { progress }) => {
                    on_progress(encode(&progress))
                }
                LoadEvent::Message(FromWorker::Loaded { model }) => break Ok(Loaded::Ready(model)),
                LoadEvent::Message(FromWorker::Fallback { reason }) => {
                    break Ok(Loaded::Fallback(reason));
                }
                LoadEvent::Message(FromWorker::NoWebgpu { reason }) => {
                    let why = format!("the worker has no WebGPU: {reason}");
                    break Ok(Loaded::Unavailable(why));
                }
                LoadEvent::Message(FromWorker::StartFailed { message }) => {
                    let why = format!("the worker could not start: {message}");
                    break Ok(Loaded::Unavailable(why));
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
                    break Ok(Loaded::Unavailable(why));
                }
                LoadEvent::Message(_) => {}
            }
        };
        self.events.borrow_mut().take();
        let held = self.held.borrow_mut().take().unwrap_or_default();
        match &outcome {
            Ok(Loaded::Ready(_)) => {
                for message in held {
                    if let Err(e) = self.post(&message) {
                        self.fail_all(e);
                    }
                }
            }
            other => {
                let error = match other {
                    Err(e) => e.clone(),
                    Ok(Loaded::Fallback(why) | Loaded::Unavailable(why)) => {
                        ApiError::new(ErrorCode::DeviceLost, why.clone())
                    }
                    Ok(Loaded::Ready(_)) => unreachable!(),
                };
                self.fail_all(error);
                self.shutdown();
            }
        }
        outcome
    }

    /// From now until the load ends, requests are held (a restart's load).
    pub fn hold(&self) {
        *self.held.borrow_mut() = Some(Vec::new());
    }

    /// Sends `message`, or holds it while a restart loads.
    pub fn post(&self, message: &ToWorker) -> Result<(), ApiError> {
        let holds = !matches!(message, ToWorker::Load { .. } | ToWorker::AbortLoad);
        if let (true, Some(held)) = (holds, self.held.borrow_mut().as_mut()) {
            held.push(message.clone());
            return Ok(());
        }
        let worker = self.worker.borrow();
        let sent = worker.as_ref().map(|w| post_to_worker(w, &encode(message)));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(self.broken.borrow().clone().unwrap_or_else(|| {
                ApiError::new(ErrorCode::DeviceLost, "the engine's worker is not running")
            })),
        }
    }

    /// Sends request `id` and keeps where its answer goes.
    pub fn send(&self, id: u32, params: Value, pending: Pending) {
        match self.post(&ToWorker::Chat { id, params }) {
            Ok(()) => drop(self.pending.borrow_mut().insert(id, pending)),
            Err(error) => pending.fail(error),
        }
    }

    /// Whether this worker can answer no more (crashed, or its GPU device was lost).
    pub fn is_dead(&self) -> bool {
        self.lost.get() || self.broken.borrow().is_some()
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
                if error.code == ErrorCode::DeviceLost {
                    self.lost.set(true);
                }
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
            format!("the engine's worker stopped ({text})"),
        );
        *self.broken.borrow_mut() = Some(error.clone());
        self.fail_all(error);
        self.shutdown_soon();
    }

    /// Fails every request in flight with `error`.
    pub fn fail_all(&self, error: ApiError) {
        let pending: Vec<Pending> = self.pending.borrow_mut().drain().map(|(_, p)| p).collect();
        pending.into_iter().for_each(|p| p.fail(error.clone()));
    }

    /// [`Shared::shutdown`] once the callback running now has returned (a closure must not be
    /// dropped while it runs).
    fn shutdown_soon(self: &Rc<Self>) {
        let shared = self.clone();
        spawn_local(async move { shared.shutdown() });
    }

    /// Terminates the worker and drops its callbacks (which frees this).
    pub fn shutdown(&self) {
        if let Some(worker) = self.worker.borrow_mut().take() {
            terminate_worker(&worker);
        }
        self.callbacks.borrow_mut().take();
    }
}
