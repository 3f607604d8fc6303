//! The local backend in the browser: a GGUF model read through the browser's model store
//! (downloaded by HTTP Range requests, or read back from OPFS) onto Burn's WebGPU device, and
//! the engine answering in OpenAI's shapes.

use std::cell::{Cell, RefCell};

use futures_channel::oneshot;
use serde_json::Value;
use web_sys::AbortSignal;

use super::model_store::StoredSource;
use crate::api::answer::answer;
use crate::api::chunks::ResponseIds;
use crate::api::{ApiError, ChatParams, ErrorCode};
use crate::engine::Engine;
use crate::gguf::{ByteSource, GgufHeader};
use crate::model::device::ComputeDevice;
use crate::model::plan::KvFormat;

/// Loading progress as the JS API reports it (`onProgress`).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// `"download"` while the file comes in from the network (each tensor is fetched, stored
    /// and uploaded to the GPU in turn, so these are one phase), or `"cache"` while a stored
    /// file is read back; then one `"compile"` event when the GPU kernels start compiling
    /// (bytes all loaded, no estimate). The last event has `loaded_bytes == total_bytes`.
    pub phase: &'static str,
    /// Bytes of the file fetched so far.
    pub loaded_bytes: u64,
    /// The file's size.
    pub total_bytes: u64,
    /// Seconds left at the rate so far — while downloading, the rate of bytes really fetched
    /// (a resumed download's stored pieces do not count) — `None` before there is a rate and
    /// while compiling.
    pub eta_seconds: Option<f64>,
}

/// [`Progress::phase`] while the kernels compile.
const COMPILE: &str = "compile";

/// A model loaded on the page's GPU.
pub struct LocalBackend {
    engine: Engine,
    /// Declared after `engine`, so dropped after it: then the freed pages go back to the GPU.
    _release: ReleaseOnDrop,
    model_name: String,
    /// The end of the queue: the last turn taken finishes when this says so.
    last_turn: RefCell<Option<oneshot::Receiver<()>>>,
}

/// Gives the device's free pages back when the model that used them is dropped.
struct ReleaseOnDrop(ComputeDevice);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release_free_memory();
    }
}

/// A request's place in the queue of one local model: requests take turns on the one KV cache,
/// first come first served ([`LocalBackend::take_turn`]).
pub struct Turn {
    /// Says when the turn before this one is over.
    previous: Option<oneshot::Receiver<()>>,
    /// Dropped when this turn is over, which lets the next one go.
    done: Option<oneshot::Sender<()>>,
}

impl Turn {
    async fn wait(&mut self) {
        if let Some(previous) = self.previous.take() {
            let _ = previous.await;
        }
    }
}

impl Drop for Turn {
    /// A turn dropped before it came (a request that failed early) passes it on only once the
    /// turn before it is over, so the queue never lets two requests run at once.
    fn drop(&mut self) {
        if let (Some(previous), Some(done)) = (self.previous.take(), self.done.take()) {
            wasm_bindgen_futures::spawn_local(async move {
                let _ = previous.await;
                drop(done);
            });
        }
    }
}

impl LocalBackend {
    /// Loads the model whose header `source` has fetched, tensor by tensor.
    pub async fn load(
        source: StoredSource,
        header: GgufHeader,
        context_size: Option<usize>,
        kv_format: KvFormat,
        on_progress: &mut dyn FnMut(Progress),
        signal: Option<&AbortSignal>,
    ) -> Result<Self, ApiError> {
        let device = ComputeDevice::init_webgpu()
            .await
            .map_err(|e| ApiError::new(ErrorCode::NoWebgpu, e.to_string()))?;
        let started = js_sys::Date::now();
        let total = source.len();
        let reading = source.phase();
        let mut report = |phase: &'static str, done: bool| {
            // Alignment padding between tensors is never read: at the end, all is loaded.
            let loaded = match done {
                true => total,
                false => source.loaded().min(total),
            };
            let seconds = (js_sys::Date::now() - started) / 1000.0;
            let eta = match (phase, done) {
                (COMPILE, _) => None,
                (_, true) => Some(0.0),
                _ => source.eta_seconds(seconds),
            };
            on_progress(Progress {
                phase,
                loaded_bytes: loaded,
                total_bytes: total,
                eta_seconds: eta,
            });
        };
        report(reading, false);
        let result = Engine::load(&header, &source, &device, context_size, &mut |_| {
            report(reading, false)
        })
        .await;
        let aborted = || signal.is_some_and(AbortSignal::aborted);
        let mut engine = result.map_err(|e| match (aborted(), source.take_failure()) {
            (true, _) => ApiError::aborted("loading"),
            (false, Some(failure)) => failure.into(),
            (false, None) => ApiError::from(&e),
        })?;
        source.finish().await.map_err(|e| match aborted() {
            true => ApiError::aborted("loading"),
            false => e.into(),
        })?;
        engine
            .set_kv_format(kv_format)
            .map_err(|e| ApiError::from(&e))?;
        report(reading, true);
        // Compiling the kernels now (seconds on a software GPU) spares the first question.
        report(COMPILE, true);
        engine.warm_up().await.map_err(|e| ApiError::from(&e))?;
        if signal.is_some_and(AbortSignal::aborted) {
            return Err(ApiError::aborted("loading"));
        }
        let model_name = header
            .get("general.name")
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "local model".into());
        Ok(Self {
            engine,
            _release: ReleaseOnDrop(device),
            model_name,
            last_turn: RefCell::new(None),
        })
    }

    /// The model's name (its `general.name`), as answers carry it.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// The next place in the queue: its request runs once every turn taken before is over.
    pub fn take_turn(&self) -> Turn {
        let (done, over) = oneshot::channel();
        Turn {
            previous: self.last_turn.replace(Some(over)),
            done: Some(done),
        }
    }

    /// Answers `params`: every `chat.completion.chunk` of the answer goes to `on_chunk`
    /// (streaming), and the whole `chat.completion` is returned. Pulls the engine's steps one by
    /// one and stops between two once `cancelled` is set. Waits for `turn` (the requests before
    /// it) first.
    pub async fn answer(
        &self,
        mut turn: Turn,
        params: &ChatParams,
        on_chunk: &mut dyn FnMut(Value),
        cancelled: &Cell<bool>,
    ) -> Result<Value, ApiError> {
        turn.wait().await;
        if cancelled.get() {
            return Err(ApiError::aborted("the request"));
        }
        let created = (js_sys::Date::now() / 1000.0) as u64;
        let nonce = (js_sys::Math::random() * 2f64.powi(52)) as u64;
        let ids = ResponseIds::new(&self.model_name, created, nonce);
        answer(&self.engine, params, ids, on_chunk, &|| cancelled.get()).await
    }
}
