//! The last-resort guard: a panic on this thread traps the module (`panic = "abort"`, and
//! wasm32 cannot unwind), which would leave every promise the API handed out pending forever.
//! Every API promise is made by [`guarded`], which keeps its `reject` until it settles; the
//! panic hook ([`install`]) rejects them all with `device_lost` ("the engine stopped") and
//! marks the module dead, so later calls are rejected at once instead of running on state
//! the panic left half-changed. (In the engine's worker a panic is caught by the page as the
//! worker's `error` event, with the same code.)

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;

use crate::api::{ApiError, ErrorCode};

thread_local! {
    /// The `reject` of every API promise not yet settled, by number.
    static PENDING: RefCell<HashMap<u32, Function>> = RefCell::new(HashMap::new());
    static NEXT: Cell<u32> = const { Cell::new(0) };
    /// What the panic said, once one has happened.
    static DEAD: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the panic hook: the panic is logged (with its message and place), then every
/// pending API promise is rejected.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        let what = info.to_string();
        let _ = DEAD.try_with(|dead| dead.try_borrow_mut().map(|mut d| *d = Some(what)));
        let pending = PENDING
            .try_with(|p| p.try_borrow_mut().map(|mut p| std::mem::take(&mut *p)))
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let error = dead_error();
        for reject in pending.into_values() {
            let _ = reject.call1(&JsValue::NULL, &error);
        }
    }));
}

/// A promise of `future`'s result that a panic anywhere in the module rejects; after a panic,
/// one rejected at once.
pub fn guarded<F>(future: F) -> Promise
where
    F: Future<Output = Result<JsValue, JsValue>> + 'static,
{
    if DEAD.with(|d| d.borrow().is_some()) {
        return Promise::reject(&dead_error());
    }
    let mut settle: Option<(Function, Function)> = None;
    let promise = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
    let Some((resolve, reject)) = settle else {
        return Promise::reject(&dead_error());
    };
    let id = NEXT.with(|n| {
        let id = n.get();
        n.set(id.wrapping_add(1));
        id
    });
    PENDING.with(|p| p.borrow_mut().insert(id, reject.clone()));
    spawn_local(async move {
        let result = future.await;
        PENDING.with(|p| p.borrow_mut().remove(&id));
        let _ = match result {
            Ok(value) => resolve.call1(&JsValue::NULL, &value),
            Err(error) => reject.call1(&JsValue::NULL, &error),
        };
    });
    promise
}

/// The error every pending and later call gets after a panic.
fn dead_error() -> JsValue {
    let what = DEAD
        .try_with(|d| d.try_borrow().ok().and_then(|d| d.clone()))
        .ok()
        .flatten()
        .unwrap_or_default();
    super::error::to_js_error(&ApiError::new(
        ErrorCode::DeviceLost,
        format!("llama-web stopped after an internal error ({what}); reload the page"),
    ))
}

/// `__llamaWebPanic()`: a test hook that panics, to show the guard at work.
#[wasm_bindgen(js_name = __llamaWebPanic)]
pub fn panic_for_tests() {
    panic!("a panic asked for by __llamaWebPanic()");
}
