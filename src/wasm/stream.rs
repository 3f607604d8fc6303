//! A request's run on the backend that answers it (`start`), and the streamed answer JS iterates
//! (`ChatCompletionStream` behind an async-iterable wrapper): remote chunks as they are read,
//! local ones as they are generated (on the page or in the engine's worker), abort and cancel.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_channel::mpsc::{UnboundedReceiver, unbounded};
use futures_util::StreamExt;
use js_sys::{Object, Promise, Reflect};
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::AbortController;

use super::client::Backend;
use super::error::to_js_error;
use super::guard::guarded;
use super::local::Turn;
use super::to_js;
use super::worker::WorkerRequest;
use crate::api::{ApiError, ChatParams, ErrorCode};
use crate::remote::abort::AbortListener;
use crate::remote::fetch::Opened;

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

/// A local request's place in the queue, taken when `create()` is called.
pub(super) enum Queued {
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
    /// The caller's signal passed on to `controller`, until the stream ends.
    following: Rc<RefCell<Option<AbortListener>>>,
}

#[wasm_bindgen]
impl ChatCompletionStream {
    /// The iterator protocol's `next()`: `{ done, value }`, or a rejection with a typed error.
    pub fn next(&self) -> Promise {
        let rx = self.rx.clone();
        let following = self.following.clone();
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
                Some(Err(e)) => {
                    following.borrow_mut().take();
                    return Err(to_js_error(&e));
                }
                None => {
                    following.borrow_mut().take();
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
        self.following.borrow_mut().take();
        if let Some(rx) = self.rx.borrow_mut().as_mut() {
            rx.close();
        }
    }
}

/// Runs one request on `backend`; `following` (the caller's signal passed on to `controller`)
/// is kept until the answer ends: a whole one when this returns, a stream when it is done.
pub(super) async fn start(
    backend: &Backend,
    params: ChatParams,
    controller: AbortController,
    queued: Queued,
    following: Option<AbortListener>,
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
                Ok(stream_object(rx, controller, cancelled, following))
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
                Ok(stream_object(rx, controller, cancelled, following))
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
                    Ok(stream_object(chunks, controller, cancelled, following))
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
            Ok(stream_object(rx, controller, cancelled, following))
        }
    }
}

fn stream_object(
    rx: Chunks,
    controller: AbortController,
    cancelled: Rc<Cell<bool>>,
    following: Option<AbortListener>,
) -> JsValue {
    async_iterable(ChatCompletionStream {
        rx: Rc::new(RefCell::new(Some(rx))),
        controller,
        cancelled,
        following: Rc::new(RefCell::new(following)),
    })
}

fn js_to_api(e: JsError) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, format!("{:?}", JsValue::from(e)))
}
