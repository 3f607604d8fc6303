//! Browser: in headless Chromium, WebGPU gives a real adapter and Burn's matmul on it is exact.
//! Run by `scripts/dev.sh test` through wasm-bindgen-test-runner (webdriver.json adds
//! `--enable-unsafe-webgpu`; without it there is no adapter and these tests fail).
#![cfg(target_arch = "wasm32")]

use llama_web::model::device::ComputeDevice;
use llama_web::model::selftest::{Matrix, matmul_on_device, self_test};
use llama_web::wasm::adapter::{Probe, probe};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn webgpu_adapter_is_returned() {
    match probe().await {
        Probe::Available { adapter } => {
            assert!(
                adapter
                    .limits
                    .iter()
                    .any(|(name, v)| name == "maxStorageBufferBindingSize" && *v > 0.0),
                "adapter without limits: {adapter:?}"
            );
        }
        Probe::Unavailable { reason } => panic!("no WebGPU adapter: {reason}"),
    }
}

#[wasm_bindgen_test]
async fn webgpu_matmul_known_values() {
    let device = ComputeDevice::init_webgpu().await.expect("WebGPU device");
    let a = Matrix::new(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let b = Matrix::new(3, 2, vec![7.0, 8.0, 9.0, 10.0, 11.0, 12.0]).unwrap();
    let c = matmul_on_device(&device, &a, &b)
        .await
        .expect("matmul on WebGPU");
    assert_eq!(c.values(), &[58.0, 64.0, 139.0, 154.0]);
}

#[wasm_bindgen_test]
async fn webgpu_matmul_odd_sizes_exact() {
    let device = ComputeDevice::init_webgpu().await.expect("WebGPU device");
    let report = self_test(&device).await.expect("self-test on WebGPU");
    assert_eq!(report.actual, report.expected);
}
