//! Browser: in headless Chromium, WebGPU gives a real adapter and Burn's matmul on it is exact.
//! Run by `scripts/dev.sh test` through wasm-bindgen-test-runner (webdriver.json adds
//! `--enable-unsafe-webgpu`; without it there is no adapter and these tests fail).
#![cfg(target_arch = "wasm32")]

use llama_web::model::device::ComputeDevice;
use llama_web::model::selftest::{Matrix, matmul_on_device, self_test};
use llama_web::tokenizer::{SpecialTokens, Tokenizer};
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

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The Llama 3.1 tokenizer in the browser: HF's 21 cases and llama.cpp's 46 vectors.
#[wasm_bindgen_test]
fn llama31_tokenizer_cases_in_the_browser() {
    use std::io::Read;
    let gz: &[u8] = include_bytes!("fixtures/tokenizer/llama31/tokenizer.json.gz");
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut json)
        .unwrap();
    let t = Tokenizer::from_json(&json).unwrap();
    let hf: serde_json::Value = serde_json::from_str(include_str!(
        "fixtures/tokenizer/llama31_tokenizer_cases.json"
    ))
    .unwrap();
    let cpp: serde_json::Value = serde_json::from_str(include_str!(
        "fixtures/tokenizer/llamacpp_llama_bpe_vectors.json"
    ))
    .unwrap();
    let mut checked = 0;
    for case in hf["cases"]
        .as_array()
        .unwrap()
        .iter()
        .chain(cpp["cases"].as_array().unwrap())
    {
        let text = case["text"].as_str().unwrap();
        let expected = ids(&case["ids"]);
        assert_eq!(
            t.encode(text, SpecialTokens::Parse).unwrap(),
            expected,
            "encode {text:?}"
        );
        assert_eq!(t.decode(&expected, false).unwrap(), text, "decode {text:?}");
        checked += 1;
    }
    assert_eq!(checked, 21 + 46);
}
