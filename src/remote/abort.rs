//! Aborts in the browser: a listener on an `AbortSignal` that is removed when dropped, a
//! caller's signal followed by our own controller, and waits that end when the signal aborts.

use gloo_timers::future::TimeoutFuture;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{AbortController, AbortSignal};

use crate::api::ApiError;

/// When `user` aborts, abort `ours` too — while the returned listener lives (see [`on_abort`]).
pub(crate) fn follow(user: &AbortSignal, ours: &AbortController) -> AbortListener {
    if user.aborted() {
        ours.abort();
    }
    let ours = ours.clone();
    on_abort(user, move || ours.abort())
}

/// Calls `f` when `signal` aborts, while the returned [`AbortListener`] lives: dropping it takes
/// the listener off `signal`, so a long-lived signal (one per page, given to every request or
/// load) does not collect a listener — and what its closure holds — per request or per piece.
pub(crate) fn on_abort(signal: &AbortSignal, f: impl FnMut() + 'static) -> AbortListener {
    let listener = Closure::<dyn FnMut()>::new(f);
    let _ = signal.add_event_listener_with_callback("abort", listener.as_ref().unchecked_ref());
    AbortListener {
        signal: signal.clone(),
        listener,
    }
}

/// A listener for a signal's `abort` ([`on_abort`]); dropped, it is removed.
#[must_use = "dropping it removes the listener"]
pub(crate) struct AbortListener {
    signal: AbortSignal,
    listener: Closure<dyn FnMut()>,
}

impl Drop for AbortListener {
    fn drop(&mut self) {
        let _ = self
            .signal
            .remove_event_listener_with_callback("abort", self.listener.as_ref().unchecked_ref());
    }
}

/// The error of a request its caller aborted.
pub(super) fn aborted() -> ApiError {
    ApiError::aborted("the request")
}

/// Waits `ms` milliseconds; ends early with `aborted` once `signal` is aborted.
pub(crate) async fn sleep_unless_aborted(
    ms: u32,
    signal: Option<&AbortSignal>,
) -> Result<(), ApiError> {
    let mut waited = 0;
    // Short steps, so an abort during a long Retry-After ends the wait promptly.
    while waited < ms {
        let step = (ms - waited).min(100);
        TimeoutFuture::new(step).await;
        waited += step;
        if signal.is_some_and(AbortSignal::aborted) {
            return Err(aborted());
        }
    }
    Ok(())
}
