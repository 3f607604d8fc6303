//! The JS-facing surface (wasm32 only). Rust errors become JS errors here and nowhere else.
//!
//! - [`client::LlamaClient`]: the chat-completions API (DESIGN.md's JS contract) over the local
//!   engine ([`local`], models read through the browser's store, [`model_store`]; run in the
//!   engine's Web Worker by default, `worker`) or a remote endpoint; [`model_cache::ModelCache`] (`LlamaClient.cache`) lists and clears that store.
//! - `probeWebGpu()` describes the adapter the browser offers (or says why there is none),
//!   `webgpuSelfTest()` runs the numeric self-test on Burn's WebGPU device, and `benchmark()`
//!   measures a GGUF model there (the bench page, `www/bench.html`); `gpuMemory()` reads the
//!   device's allocator.

pub mod adapter;
mod choose;
pub mod client;
mod error;
mod fetch;
mod guard;
pub mod local;
pub mod model_cache;
pub mod model_store;
mod opfs;
mod options;
mod range_fetch;
mod stream;
mod types;
mod worker;

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::model::device::ComputeDevice;
use crate::model::selftest;

/// Installs the panic hook (the last-resort guard, `guard.rs`) and the console logger once,
/// when the module is instantiated:
/// shader compile errors on wasm only reach `log::error!`.
#[wasm_bindgen(start)]
pub fn start() {
    guard::install();
    // A second instantiation in the same realm finds the logger set; that is fine.
    let _ = console_log::init_with_level(log::Level::Warn);
}

/// What `probeWebGpu()` resolves to.
#[derive(Debug, Serialize)]
struct ProbeJs {
    available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    adapter: Option<adapter::AdapterInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// `probeWebGpu()`: `{ available: true, adapter: {…} }` or `{ available: false, reason }`.
#[wasm_bindgen(js_name = probeWebGpu)]
pub async fn probe_webgpu() -> Result<JsValue, JsError> {
    let probe = match adapter::probe().await {
        adapter::Probe::Available { adapter } => ProbeJs {
            available: true,
            adapter: Some(adapter),
            reason: None,
        },
        adapter::Probe::Unavailable { reason } => ProbeJs {
            available: false,
            adapter: None,
            reason: Some(reason),
        },
    };
    to_js(&probe)
}

/// What `webgpuSelfTest()` resolves to.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SelfTestJs {
    passed: bool,
    rows: usize,
    cols: usize,
    actual: Vec<f32>,
    expected: Vec<f32>,
}

/// `webgpuSelfTest()`: runs a matmul on Burn's WebGPU device and compares it with the exact
/// answer. Rejects with an error when no device can be had.
#[wasm_bindgen(js_name = webgpuSelfTest)]
pub async fn webgpu_self_test() -> Result<JsValue, JsError> {
    let device = ComputeDevice::init_webgpu().await.map_err(to_js_error)?;
    let report = selftest::self_test(&device).await.map_err(to_js_error)?;
    to_js(&SelfTestJs {
        passed: report.passed(),
        rows: report.actual.rows(),
        cols: report.actual.cols(),
        actual: report.actual.values().to_vec(),
        expected: report.expected.values().to_vec(),
    })
}

/// `gpuMemory()`: what the page's WebGPU device's allocator holds, `{ inUse, reserved }` in
/// bytes (`null` where it does not say) — a diagnostic, e.g. to see `dispose()` free a model.
#[wasm_bindgen(js_name = gpuMemory)]
pub async fn gpu_memory() -> Result<JsValue, JsError> {
    let device = ComputeDevice::init_webgpu().await.map_err(to_js_error)?;
    to_js(&device.memory_usage())
}

/// `benchmark(ggufBytes, promptLen, gen, kv?, context?, sampled?, decodeGraphs?, stages?)`: loads the
/// model onto Burn's WebGPU device and resolves to the same JSON object as `llama-web bench` (prefill and decode
/// tok/s, weight bytes per token, effective GB/s, the streaming-read roofline, peak GPU bytes).
/// `kv` is the KV cache's format, `"f32"`, `"f16"` or `"q8"` (default: the device's, q8); `context` the
/// tokens the cache is allocated for (default: prompt + gen; the chat page's is 4096);
/// `sampled` also times sampled decoding from the shortlist and from every logit (`--sampled`);
/// `decodeGraphs: false` launches every decode step kernel by kernel instead of replaying the
/// first step's recording (`--no-decode-graphs`); `stages` also times a decode step stage by
/// stage (`--stages`). Times are taken with `performance.now()`.
#[wasm_bindgen(js_name = benchmark)]
#[allow(clippy::too_many_arguments)] // one per argument of the JS function
pub async fn benchmark(
    gguf: Vec<u8>,
    prompt_len: usize,
    gen_tokens: usize,
    kv: Option<String>,
    context: Option<usize>,
    sampled: Option<bool>,
    decode_graphs: Option<bool>,
    stages: Option<bool>,
) -> Result<JsValue, JsError> {
    use crate::engine::bench::BenchParams;
    use crate::model::plan::KvFormat;

    use crate::gguf::{GgufHeader, MemorySource};
    use crate::model::llama::Llama;

    let kv_format = match kv.as_deref() {
        None => KvFormat::default_for(crate::model::device::DeviceChoice::Wgpu),
        Some(name) => name.parse().map_err(|e: String| JsError::new(&e))?,
    };
    let device = ComputeDevice::init_webgpu().await.map_err(to_js_error)?;
    let device = device.with_decode_graphs(decode_graphs.unwrap_or(true));
    let source = MemorySource::new(gguf);
    let header = GgufHeader::read(&source).map_err(to_js_error)?;
    let model = Llama::load(&header, &source, &device, &mut |_| {})
        .await
        .map_err(to_js_error)?;
    drop(source);
    let name = match adapter::probe().await {
        adapter::Probe::Available { adapter } => adapter.name(),
        adapter::Probe::Unavailable { reason } => reason,
    };
    let now = || instant::now() / 1000.0;
    let params = BenchParams {
        prompt_len,
        gen_tokens,
        context,
        kv_format,
        compare_f32: false,
        sampled: sampled.unwrap_or(false),
        stages: stages.unwrap_or(false),
    };
    let report = crate::engine::bench::run(&model, name, params, &now, None)
        .await
        .map_err(to_js_error)?;
    to_js(&report)
}

/// A Rust value as a plain JS value (objects, not Maps).
pub(crate) fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&e.to_string()))
}

fn to_js_error(err: impl std::error::Error) -> JsError {
    JsError::new(&err.to_string())
}
