//! What WebGPU adapter the browser offers: vendor and architecture, limits, features.
//!
//! Read through `js_sys::Reflect` rather than web-sys's WebGPU bindings, which need
//! `--cfg=web_sys_unstable_apis` and change between releases. Works in windows and workers.

use js_sys::{Array, Promise, Reflect};
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// The adapter limits reported (WebGPU spec names). Limits missing in a browser are skipped.
const LIMIT_NAMES: &[&str] = &[
    "maxBufferSize",
    "maxStorageBufferBindingSize",
    "maxUniformBufferBindingSize",
    "maxStorageBuffersPerShaderStage",
    "maxComputeWorkgroupStorageSize",
    "maxComputeInvocationsPerWorkgroup",
    "maxComputeWorkgroupSizeX",
    "maxComputeWorkgroupSizeY",
    "maxComputeWorkgroupSizeZ",
    "maxComputeWorkgroupsPerDimension",
    "maxBindGroups",
    "maxBindingsPerBindGroup",
    "minStorageBufferOffsetAlignment",
    "minUniformBufferOffsetAlignment",
];

/// A WebGPU adapter as the browser describes it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdapterInfo {
    /// `GPUAdapterInfo.vendor` (may be empty).
    pub vendor: String,
    /// `GPUAdapterInfo.architecture` (may be empty).
    pub architecture: String,
    /// `GPUAdapterInfo.device` (may be empty).
    pub device: String,
    /// `GPUAdapterInfo.description` (may be empty).
    pub description: String,
    /// Whether this is a software fallback adapter (SwiftShader in headless Chromium).
    pub is_fallback_adapter: bool,
    /// Selected limits, as `(name, value)` pairs in the order of `LIMIT_NAMES`.
    pub limits: Vec<(String, f64)>,
    /// The adapter's features, sorted.
    pub features: Vec<String>,
}

impl AdapterInfo {
    /// A name for reports: the description, else vendor, architecture and device.
    pub fn name(&self) -> String {
        if !self.description.is_empty() {
            return self.description.clone();
        }
        let parts = [&self.vendor, &self.architecture, &self.device];
        let joined: Vec<&str> = parts
            .iter()
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .collect();
        match joined.is_empty() {
            true => "unnamed WebGPU adapter".into(),
            false => joined.join(" "),
        }
    }
}

/// The outcome of probing for WebGPU.
#[derive(Debug, Clone)]
pub enum Probe {
    /// An adapter was returned.
    Available {
        /// The adapter's description.
        adapter: AdapterInfo,
    },
    /// No adapter: why, in words a person understands.
    Unavailable {
        /// Why there is no adapter.
        reason: String,
    },
}

/// Asks the browser for a WebGPU adapter and describes it. Never fails: every way of not
/// getting one is reported as [`Probe::Unavailable`] with the reason.
pub async fn probe() -> Probe {
    match request_adapter().await {
        Ok(Some(adapter)) => Probe::Available { adapter },
        Ok(None) => Probe::Unavailable {
            reason: "the browser has WebGPU but returned no adapter (blocked, disabled, or no \
                     usable GPU; Chromium on Linux needs --enable-unsafe-webgpu)"
                .into(),
        },
        Err(reason) => Probe::Unavailable { reason },
    }
}

async fn request_adapter() -> Result<Option<AdapterInfo>, String> {
    let global = js_sys::global();
    let navigator = get(&global, "navigator")?;
    let gpu = get(&navigator, "gpu")?;
    if gpu.is_undefined() || gpu.is_null() {
        return Err("this browser does not expose WebGPU (navigator.gpu is missing)".into());
    }
    let request = get(&gpu, "requestAdapter")?
        .dyn_into::<js_sys::Function>()
        .map_err(|_| "navigator.gpu.requestAdapter is not a function".to_string())?;
    let promise = request
        .call0(&gpu)
        .map_err(describe)?
        .dyn_into::<Promise>()
        .map_err(|_| "requestAdapter did not return a promise".to_string())?;
    let adapter = JsFuture::from(promise).await.map_err(describe)?;
    if adapter.is_null() || adapter.is_undefined() {
        return Ok(None);
    }
    describe_adapter(&adapter).map(Some)
}

fn describe_adapter(adapter: &JsValue) -> Result<AdapterInfo, String> {
    let info = get(adapter, "info")?;
    let text = |name: &str| -> Result<String, String> {
        Ok(get(&info, name)?.as_string().unwrap_or_default())
    };
    // Newer browsers report fallback-ness on the info object, older ones on the adapter.
    let is_fallback_adapter = get(&info, "isFallbackAdapter")?
        .as_bool()
        .or(get(adapter, "isFallbackAdapter")?.as_bool())
        .unwrap_or(false);

    let limits_obj = get(adapter, "limits")?;
    let mut limits = Vec::new();
    for name in LIMIT_NAMES {
        if let Some(v) = get(&limits_obj, name)?.as_f64() {
            limits.push((name.to_string(), v));
        }
    }

    let features_set = get(adapter, "features")?;
    let mut features: Vec<String> = Array::from(&features_set)
        .iter()
        .filter_map(|f| f.as_string())
        .collect();
    features.sort();

    Ok(AdapterInfo {
        vendor: text("vendor")?,
        architecture: text("architecture")?,
        device: text("device")?,
        description: text("description")?,
        is_fallback_adapter,
        limits,
        features,
    })
}

fn get(target: &JsValue, key: &str) -> Result<JsValue, String> {
    Reflect::get(target, &JsValue::from_str(key)).map_err(describe)
}

fn describe(err: JsValue) -> String {
    err.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| err.as_string())
        .unwrap_or_else(|| format!("{err:?}"))
}
