//! Which backend answers: local when the mode asks for it (or, in auto mode, when WebGPU is
//! there, the model can be read and its memory plan fits the adapter), else remote with the
//! reason; for local, the model is loaded here.

use std::rc::Rc;

use js_sys::Reflect;
use wasm_bindgen::prelude::*;
use web_sys::AbortSignal;

use super::adapter::{self, Probe};
use super::client::Backend;
use super::local::{LocalBackend, Progress};
use super::model_store::StoredSource;
use super::options::{LocalOptions, Mode, Options, get};
use super::to_js;
use super::worker::{WorkerBackend, WorkerStart};
use crate::api::{ApiError, ErrorCode};
use crate::model::config::LlamaConfig;
use crate::model::plan::MemoryPlan;

/// Picks (and for local, loads) the backend; in auto mode says why it fell back. The model
/// loads in the engine's Web Worker (`local.worker`, the default) or, where a worker cannot
/// run it, on the page's own thread.
pub(super) async fn choose(options: Options) -> Result<(Backend, Option<String>), ApiError> {
    let Options {
        mode,
        local,
        remote,
        on_progress,
        signal,
        ..
    } = options;
    let remote = || Backend::Remote(remote.clone());
    let Some(local) = local.filter(|_| mode != Mode::Remote) else {
        let reason = (mode == Mode::Auto).then(|| "no local model was configured".to_string());
        return Ok((remote(), reason));
    };
    let auto = mode == Mode::Auto;
    let mut report = |progress: JsValue| {
        if let Some(f) = &on_progress {
            let _ = f.call1(&JsValue::NULL, &progress);
        }
    };
    let in_worker = match local.worker {
        true => WorkerBackend::start(&local, auto, &mut report, signal.clone()).await?,
        false => WorkerStart::Unavailable("local.worker is false".into()),
    };
    let why = match in_worker {
        WorkerStart::Loaded(worker) => return Ok((Backend::Worker(Rc::new(worker)), None)),
        WorkerStart::Fallback(reason) => return Ok((remote(), Some(reason))),
        WorkerStart::Unavailable(why) => why,
    };
    if local.worker {
        log::warn!("llama-web: the model runs on the page's thread ({why})");
    }
    let mut report_progress = |p: Progress| report(to_js(&p).unwrap_or(JsValue::NULL));
    match load_local(&local, auto, &mut report_progress, signal).await? {
        LocalChoice::Loaded(backend) => Ok((Backend::Local(Rc::new(*backend)), None)),
        LocalChoice::Fallback(reason) => Ok((remote(), Some(reason))),
        LocalChoice::NoWebgpu(reason) if auto => Ok((remote(), Some(reason))),
        LocalChoice::NoWebgpu(reason) => Err(ApiError::new(ErrorCode::NoWebgpu, reason)),
    }
}

/// What loading the local model came to, short of an error.
pub(super) enum LocalChoice {
    /// Ready to answer.
    Loaded(Box<LocalBackend>),
    /// Auto mode: the model does not fit or could not be loaded; the reason.
    Fallback(String),
    /// This realm (page or worker) has no WebGPU; the reason.
    NoWebgpu(String),
}

/// Probes WebGPU, opens the model through the store, checks (auto mode) that it fits, and loads
/// it. Auto mode turns what the remote backend can stand in for into [`LocalChoice::Fallback`].
pub(super) async fn load_local(
    local: &LocalOptions,
    auto: bool,
    on_progress: &mut dyn FnMut(Progress),
    signal: Option<AbortSignal>,
) -> Result<LocalChoice, ApiError> {
    let adapter = match adapter::probe().await {
        Probe::Available { adapter } => adapter,
        Probe::Unavailable { reason } => {
            return Ok(LocalChoice::NoWebgpu(format!("no WebGPU: {reason}")));
        }
    };
    let aborted = || signal.as_ref().is_some_and(AbortSignal::aborted);
    let opened = StoredSource::open(&local.model_url, &local.store, signal.clone()).await;
    let (source, header) = match opened {
        Ok(opened) => opened,
        Err(_) if aborted() => return Err(ApiError::aborted("loading")),
        Err(e) => {
            let e = ApiError::from(e);
            return match auto {
                true => Ok(LocalChoice::Fallback(format!(
                    "the local model could not be read: {}",
                    e.message
                ))),
                false => Err(e),
            };
        }
    };
    if auto && let Some(reason) = does_not_fit(&header, local, &adapter)? {
        return Ok(LocalChoice::Fallback(reason));
    }
    let loaded = LocalBackend::load(
        source,
        header,
        local.context_size,
        local.kv_format,
        on_progress,
        signal.as_ref(),
    )
    .await;
    match loaded {
        Ok(backend) => Ok(LocalChoice::Loaded(Box::new(backend))),
        Err(e) if auto && e.code != ErrorCode::Aborted && e.code != ErrorCode::BadModel => {
            Ok(LocalChoice::Fallback(format!(
                "the local model could not be loaded: {}",
                e.message
            )))
        }
        Err(e) => Err(e),
    }
}

/// Why the model cannot run well on `adapter` (auto mode), from the memory plan.
fn does_not_fit(
    header: &crate::gguf::GgufHeader,
    local: &LocalOptions,
    adapter: &adapter::AdapterInfo,
) -> Result<Option<String>, ApiError> {
    let config = LlamaConfig::from_gguf(header)
        .map_err(|e| ApiError::new(ErrorCode::BadModel, e.to_string()))?;
    let context = local
        .context_size
        .unwrap_or(crate::engine::DEFAULT_CONTEXT_SIZE.min(config.context_length));
    let plan = MemoryPlan::new(header, &config, context, local.kv_format);
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let limit = |name: &str| {
        adapter
            .limits
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    };
    let binding = limit("maxStorageBufferBindingSize").unwrap_or(0.0);
    if binding < crate::model::quant::MAX_CHUNK_BYTES as f64 {
        return Ok(Some(format!(
            "the GPU binds at most {:.0} MiB per buffer; the model's kernels need 128 MiB",
            binding / (1u64 << 20) as f64
        )));
    }
    // A software adapter (SwiftShader) runs ~0.1 tok/s on a 135M model: only tiny models.
    if adapter.is_fallback_adapter && plan.total_gpu_bytes > (1 << 30) {
        return Ok(Some(format!(
            "the GPU is a software fallback ({}), far too slow for a model needing {:.1} GiB",
            adapter.name(),
            gib(plan.total_gpu_bytes)
        )));
    }
    // navigator.deviceMemory: the machine's RAM in GiB, rounded down and capped at 8 (Chromium).
    let device_memory = Reflect::get(&get(&js_sys::global(), "navigator"), &"deviceMemory".into())
        .ok()
        .and_then(|v| v.as_f64());
    if let Some(memory) = device_memory
        && memory < 8.0
        && gib(plan.total_gpu_bytes + plan.host_bytes) > memory * 0.5
    {
        return Ok(Some(format!(
            "the model needs {:.1} GiB of GPU memory at {context} tokens, and this device reports {memory} GiB in all",
            gib(plan.total_gpu_bytes)
        )));
    }
    Ok(None)
}
