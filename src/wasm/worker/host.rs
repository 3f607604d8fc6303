//! The worker's end: loads the model when the page asks, answers numbered requests in the order
//! they came (one at a time on the one KV cache), stops one on `cancel`, and closes once
//! disposed and idle.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::AbortController;

use super::{FromWorker, ToWorker, close_worker, decode, encode, listen_to_page, post_to_page};
use crate::api::{ApiError, ChatParams, ErrorCode};
use crate::wasm::choose::{LocalChoice, load_local};
use crate::wasm::local::LocalBackend;
use crate::wasm::options::LocalOptions;
use crate::wasm::to_js;

/// `workerMain()`: run by `llama_web_worker.js` once the module is instantiated in the worker;
/// listens to the page and tells it the worker is ready.
#[wasm_bindgen(js_name = workerMain)]
pub fn worker_main() {
    let host = Rc::new(Host::default());
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |data: JsValue| {
        if let Some(message) = decode::<ToWorker>(data) {
            host.receive(message);
        }
    });
    listen_to_page(on_message.as_ref().unchecked_ref());
    // The listener lives as long as the worker.
    on_message.forget();
    post(&FromWorker::Ready);
}

/// The worker's state.
#[derive(Default)]
struct Host {
    /// The loaded model (`None` before loading and after `dispose`).
    backend: RefCell<Option<Rc<LocalBackend>>>,
    /// Aborts the load in progress.
    loading: RefCell<Option<AbortController>>,
    /// The requests not yet answered, by id: each one's cancel flag.
    requests: RefCell<HashMap<u32, Rc<Cell<bool>>>>,
    disposed: Cell<bool>,
}

impl Host {
    fn receive(self: &Rc<Self>, message: ToWorker) {
        match message {
            ToWorker::Load { auto, local } => {
                let host = self.clone();
                spawn_local(async move { host.load(auto, local).await });
            }
            ToWorker::AbortLoad => {
                if let Some(controller) = self.loading.borrow().as_ref() {
                    controller.abort();
                }
            }
            ToWorker::Chat { id, params } => self.chat(id, params),
            ToWorker::Cancel { id } => {
                if let Some(cancelled) = self.requests.borrow().get(&id) {
                    cancelled.set(true);
                }
            }
            ToWorker::Dispose => {
                self.disposed.set(true);
                self.backend.borrow_mut().take();
                self.close_if_idle();
            }
        }
    }

    async fn load(&self, auto: bool, local: Value) {
        let loaded = async {
            let bad = |what: &str| ApiError::new(ErrorCode::BadRequest, what);
            let local = to_js(&local).map_err(|_| bad("local options that are not JSON-like"))?;
            let local = LocalOptions::read(&local)?;
            let controller =
                AbortController::new().map_err(|_| bad("no AbortController in the worker"))?;
            let signal = controller.signal();
            *self.loading.borrow_mut() = Some(controller);
            let mut report = |p| {
                if let Ok(progress) = serde_json::to_value(p) {
                    post(&FromWorker::Progress { progress });
                }
            };
            load_local(&local, auto, &mut report, Some(signal)).await
        };
        let reply = match loaded.await {
            Ok(LocalChoice::Loaded(backend)) => {
                let model = backend.model_name().to_string();
                *self.backend.borrow_mut() = Some(Rc::new(*backend));
                FromWorker::Loaded { model }
            }
            Ok(LocalChoice::Fallback(reason)) => FromWorker::Fallback { reason },
            Ok(LocalChoice::NoWebgpu(reason)) => FromWorker::NoWebgpu { reason },
            Err(error) => FromWorker::LoadFailed { error },
        };
        self.loading.borrow_mut().take();
        post(&reply);
    }

    /// Takes request `id`'s turn now (the order of arrival), then answers it.
    fn chat(self: &Rc<Self>, id: u32, params: Value) {
        let backend = self.backend.borrow().clone();
        let Some(backend) = backend else {
            let error = ApiError::new(
                ErrorCode::BadRequest,
                "the client was disposed; create a new one",
            );
            return post(&FromWorker::Failed { id, error });
        };
        let params = match ChatParams::from_json(params) {
            Ok(params) => params,
            Err(error) => return post(&FromWorker::Failed { id, error }),
        };
        let turn = backend.take_turn();
        let cancelled = Rc::new(Cell::new(false));
        self.requests.borrow_mut().insert(id, cancelled.clone());
        let host = self.clone();
        spawn_local(async move {
            let mut send = |chunk| post(&FromWorker::Chunk { id, chunk });
            let mut ignore = |_| {};
            let on_chunk: &mut dyn FnMut(Value) = match params.stream {
                true => &mut send,
                false => &mut ignore,
            };
            let reply = match backend.answer(turn, &params, on_chunk, &cancelled).await {
                Ok(completion) => FromWorker::Done { id, completion },
                Err(error) => FromWorker::Failed { id, error },
            };
            drop(backend);
            host.requests.borrow_mut().remove(&id);
            post(&reply);
            host.close_if_idle();
        });
    }

    /// After `dispose`, once no request is left: the page is told, and the worker ends.
    fn close_if_idle(&self) {
        if self.disposed.get() && self.requests.borrow().is_empty() {
            post(&FromWorker::Closed);
            close_worker();
        }
    }
}

/// Sends `message` to the page (a message that cannot be sent is logged: the page has gone).
fn post(message: &FromWorker) {
    if let Err(e) = post_to_page(&encode(message)) {
        log::error!("llama-web worker: a message could not be sent: {e:?}");
    }
}
