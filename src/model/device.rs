//! Compute devices: which one to run on, and bringing it up.
//!
//! Burn 0.22 tensors carry their backend in the [`burn::tensor::Device`], so model code is
//! written once. This module is the only place that decides which backend that is:
//!
//! - **wgpu**: WebGPU in the browser (initialised asynchronously, before any tensor exists);
//!   natively the same WGSL runs on Vulkan (lavapipe in tests, a real GPU in benchmarks).
//! - **cpu**: Burn's pure-Rust Flex device, native only; the reference device for tests.

use std::fmt;
use std::str::FromStr;

mod counters;

pub use counters::DeviceCounters;
pub(crate) use counters::{count_recorded, count_replayed, read_vec};

use super::quant::{Arithmetic, DecodeKernel};
use burn::tensor::Device;

/// Which kind of device to run on, as named on the command line (`--device cpu|wgpu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// Burn's pure-Rust CPU device (Flex). Native builds only.
    Cpu,
    /// wgpu: WebGPU in the browser, Vulkan natively.
    Wgpu,
}

impl DeviceChoice {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Wgpu => "wgpu",
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(DeviceChoice::Cpu),
            "wgpu" => Ok(DeviceChoice::Wgpu),
            other => Err(DeviceError::UnknownDevice {
                name: other.to_string(),
            }),
        }
    }
}

/// What can go wrong while choosing, starting or using a device.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// A device name that is neither `cpu` nor `wgpu`.
    #[error("unknown device `{name}` (expected `cpu` or `wgpu`)")]
    UnknownDevice {
        /// The name that was given.
        name: String,
    },
    /// The device kind exists but is not built into this target (the CPU device in wasm).
    #[error("device `{choice}` is not available in this build")]
    NotBuiltIn {
        /// The device that was asked for.
        choice: DeviceChoice,
    },
    /// wgpu found no usable adapter, or the adapter refused to give a device.
    #[error("no usable GPU adapter: {reason}")]
    NoAdapter {
        /// wgpu's explanation.
        reason: String,
    },
    /// Input to a device operation had inconsistent sizes.
    #[error("shape mismatch: {detail}")]
    Shape {
        /// What did not fit.
        detail: String,
    },
    /// The adapter lacks a feature the caller asked to use (`shader-f16` for f16 arithmetic).
    #[error("the GPU adapter has no `{feature}`, needed for {wanted}")]
    MissingFeature {
        /// The WebGPU feature's name.
        feature: &'static str,
        /// What it was needed for.
        wanted: &'static str,
    },
    /// The device failed while executing work or reading results back.
    #[error("device execution failed: {reason}")]
    Execution {
        /// The backend's explanation.
        reason: String,
    },
}

/// An initialised device, ready for tensors.
#[derive(Debug, Clone)]
pub struct ComputeDevice {
    device: Device,
    choice: DeviceChoice,
    /// The matrix kernel asked for, instead of the one for the kind of GPU.
    decode_kernel: Option<DecodeKernel>,
    /// Whether a decode step is recorded once and replayed (wgpu; see `llama::graph`).
    decode_graphs: bool,
    /// The type the projections' dot products are taken in (f32 unless asked).
    arithmetic: Arithmetic,
}

impl ComputeDevice {
    /// Brings up a device on a native target. The wgpu device is pinned to Vulkan, the API
    /// whose WGSL path matches the browser's.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn init_native(choice: DeviceChoice) -> Result<Self, DeviceError> {
        let device = match choice {
            DeviceChoice::Cpu => Device::flex(),
            DeviceChoice::Wgpu => shared_vulkan_device()?,
        };
        Ok(Self {
            device,
            choice,
            decode_kernel: None,
            decode_graphs: true,
            arithmetic: Arithmetic::F32,
        })
    }

    /// Brings up the browser's WebGPU device (once per page or worker; later calls share it).
    /// Must complete before any tensor is created.
    #[cfg(target_arch = "wasm32")]
    pub async fn init_webgpu() -> Result<Self, DeviceError> {
        use burn::tensor::wgpu::WgpuBackend;
        use std::cell::RefCell;

        // Burn refuses to initialise a runtime twice; wasm is single-threaded, so a
        // thread-local is the page-wide cache.
        thread_local! {
            static WEBGPU: RefCell<Option<Device>> = const { RefCell::new(None) };
        }
        run_static_constructors();
        let cached = || WEBGPU.with(|d| d.borrow().clone());
        if let Some(device) = cached() {
            return Ok(Self::wgpu(device));
        }
        let result = Device::wgpu_options()
            .graphics_api(WgpuBackend::WebGpu)
            .tasks_max(TASKS_PER_SUBMIT)
            .init_async()
            .await;
        match result {
            Ok(device) => {
                WEBGPU.with(|d| *d.borrow_mut() = Some(device.clone()));
                Ok(Self::wgpu(device))
            }
            // A concurrent caller may have finished first: then use its device.
            Err(e) => cached().map(Self::wgpu).ok_or(DeviceError::NoAdapter {
                reason: e.to_string(),
            }),
        }
    }

    #[cfg(target_arch = "wasm32")]
    fn wgpu(device: Device) -> Self {
        Self {
            device,
            choice: DeviceChoice::Wgpu,
            decode_kernel: None,
            decode_graphs: true,
            arithmetic: Arithmetic::F32,
        }
    }

    /// Which kind of device this is.
    pub fn choice(&self) -> DeviceChoice {
        self.choice
    }

    /// Whether the GPU is software (lavapipe, SwiftShader: wgpu reports a CPU device type). Such
    /// adapters run one-unit-per-row kernels faster than cooperative ones (barriers are costly).
    pub fn is_software_gpu(&self) -> bool {
        self.choice == DeviceChoice::Wgpu
            && self
                .device
                .identity()
                .is_none_or(|id| id.physical.is_none())
    }

    /// The same device with matrices uploaded from now on multiplied by `kernel` instead of the
    /// kernel for its kind of GPU ([`DecodeKernel::for_device`]): for benchmarks comparing
    /// kernel shapes on one GPU.
    pub fn with_decode_kernel(mut self, kernel: DecodeKernel) -> Self {
        self.decode_kernel = Some(kernel);
        self
    }

    /// The matrix kernel asked for with [`Self::with_decode_kernel`], if any.
    pub fn decode_kernel(&self) -> Option<DecodeKernel> {
        self.decode_kernel
    }

    /// The same device with decode steps recorded once and replayed (`true`, the default) or
    /// launched kernel by kernel every step (`false`): for benchmarks and tests comparing the two.
    pub fn with_decode_graphs(mut self, enabled: bool) -> Self {
        self.decode_graphs = enabled;
        self
    }

    /// Whether decode steps on this device are recorded once and replayed (wgpu only).
    pub fn decode_graphs(&self) -> bool {
        self.decode_graphs && self.choice == DeviceChoice::Wgpu
    }

    /// Whether the adapter has `shader-f16` (WGSL's `f16` type): lavapipe and most hardware
    /// GPUs do, SwiftShader does not; the CPU device has no kernels of ours.
    pub fn supports_f16(&self) -> bool {
        self.choice == DeviceChoice::Wgpu && self.device.supports_dtype(burn::tensor::DType::F16)
    }

    /// The same device with matrices uploaded from now on multiplied in `arithmetic`
    /// ([`Arithmetic::F16`] needs [`Self::supports_f16`], else
    /// [`DeviceError::MissingFeature`]).
    pub fn with_arithmetic(mut self, arithmetic: Arithmetic) -> Result<Self, DeviceError> {
        if arithmetic == Arithmetic::F16 && !self.supports_f16() {
            return Err(DeviceError::MissingFeature {
                feature: "shader-f16",
                wanted: "f16 arithmetic",
            });
        }
        self.arithmetic = arithmetic;
        Ok(self)
    }

    /// The type matrices uploaded to this device are multiplied in.
    pub fn arithmetic(&self) -> Arithmetic {
        self.arithmetic
    }

    /// The Burn device, to create tensors on it (inside `model/`: Burn types are not public).
    pub(crate) fn burn(&self) -> &Device {
        &self.device
    }

    /// The adapter's name as the driver gives it (e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"),
    /// where the device has one (the CPU device has not).
    pub fn adapter_name(&self) -> Option<String> {
        self.device.identity().map(|id| id.name)
    }

    /// What the device's allocator holds, where it says: bytes of live tensors and bytes of
    /// reserved pages (GPU buffers).
    pub fn memory_usage(&self) -> Option<MemoryUsage> {
        self.device.memory_pool_usage().map(|u| MemoryUsage {
            in_use: u.bytes_in_use,
            reserved: u.bytes_reserved,
        })
    }

    /// Gives the allocator's free pages back to the GPU where it can (after a model is freed).
    pub fn release_free_memory(&self) {
        self.device.memory_cleanup();
    }
}

/// A device allocator's reading ([`ComputeDevice::memory_usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryUsage {
    /// Bytes of live tensors.
    pub in_use: u64,
    /// Bytes of pages the allocator holds (GPU buffers), used or free.
    pub reserved: u64,
}

#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    /// The module's static constructors, synthesized by wasm-ld.
    fn __wasm_call_ctors();
}

/// Runs the module's static constructors: CubeCL's kernel compiler needs pliron's `inventory`
/// registrations. A module that never calls `__wasm_call_ctors` itself is linked
/// "command-style", and wasm-ld then re-runs every constructor at the top of every exported
/// function — every JS → wasm call, thousands per decode step (the glue's externref table
/// calls included), which made the browser's decode step host-bound (SmolLM2: 0.29 → 1.7
/// tok/s without it). Referring to it here makes wasm-ld leave the exports alone, so it must
/// run before the first kernel compiles; calling it again is harmless (`inventory` guards
/// each registration, and it is the only source of constructors in the module).
#[cfg(target_arch = "wasm32")]
fn run_static_constructors() {
    // SAFETY: a linker-synthesized function without arguments; its constructors are
    // idempotent (see above).
    unsafe { __wasm_call_ctors() };
}

/// Kernel launches a wgpu device gathers into one command submission (a decode step fits in
/// one; cubecl's default is 32). A readback also submits what is pending.
pub const TASKS_PER_SUBMIT: usize = 1024;

/// The process-wide Vulkan device. Burn registers a wgpu runtime once per selector and refuses
/// to initialise it twice, so every caller (tests run in parallel threads) shares one result.
#[cfg(not(target_arch = "wasm32"))]
fn shared_vulkan_device() -> Result<Device, DeviceError> {
    use burn::tensor::wgpu::WgpuBackend;
    use std::sync::OnceLock;

    static VULKAN: OnceLock<Result<Device, String>> = OnceLock::new();
    VULKAN
        .get_or_init(|| {
            Device::wgpu_options()
                .graphics_api(WgpuBackend::Vulkan)
                .tasks_max(TASKS_PER_SUBMIT)
                .init()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|reason| DeviceError::NoAdapter { reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_round_trip() {
        for choice in [DeviceChoice::Cpu, DeviceChoice::Wgpu] {
            assert_eq!(choice.name().parse::<DeviceChoice>().unwrap(), choice);
        }
    }

    #[test]
    fn unknown_device_name_is_a_typed_error() {
        let err = "cuda".parse::<DeviceChoice>().unwrap_err();
        assert!(matches!(err, DeviceError::UnknownDevice { ref name } if name == "cuda"));
    }
}
