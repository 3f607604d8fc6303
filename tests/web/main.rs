//! Browser: in headless Chromium, WebGPU gives a real adapter and Burn's matmul on it is exact;
//! the Llama 3.1 tokenizer encodes as HF does; the tiny Llama 3.1 model's logits match HF's
//! goldens and a seeded sampling run gives the native run's ids (`tiny_model`). Run by `scripts/dev.sh test` through wasm-bindgen-test-runner (webdriver.json adds
//! `--enable-unsafe-webgpu`; without it there is no adapter and these tests fail).
#![cfg(target_arch = "wasm32")]

mod tiny_model;

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
    let gz: &[u8] = include_bytes!("../fixtures/tokenizer/llama31/tokenizer.json.gz");
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut json)
        .unwrap();
    let t = Tokenizer::from_json(&json).unwrap();
    let hf: serde_json::Value = serde_json::from_str(include_str!(
        "../fixtures/tokenizer/llama31_tokenizer_cases.json"
    ))
    .unwrap();
    let cpp: serde_json::Value = serde_json::from_str(include_str!(
        "../fixtures/tokenizer/llamacpp_llama_bpe_vectors.json"
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

// ---- The remote protocol and the JS API's error paths, in the browser ----

/// The SSE parser and chunk decoder give the same chunks in wasm for every split of a body
/// with CRLF, comments, multi-byte characters and multi-line data.
#[wasm_bindgen_test]
fn the_stream_decoder_survives_every_split_in_wasm() {
    use llama_web::remote::body::{ChunkDecoder, StreamItem};
    let body = "\u{feff}: keep-alive\r\n\r\n\
                data: {\"choices\":[{\"delta\":{\"content\":\"Gr\u{fc}\u{df}e \u{1f999}\"}}]}\r\n\r\n\
                data: {\"choices\":\r\ndata: [{\"delta\":{\"content\":\"!\"}}]}\r\n\r\n\
                data: [DONE]\r\n\r\n"
        .as_bytes();
    for piece in 1..=body.len() {
        let mut decoder = ChunkDecoder::new();
        let mut items: Vec<_> = body.chunks(piece).flat_map(|c| decoder.push(c)).collect();
        items.extend(decoder.finish());
        let text: String = items
            .iter()
            .filter_map(|i| match i {
                Ok(StreamItem::Chunk(c)) => c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_string),
                _ => None,
            })
            .collect();
        assert_eq!(text, "Gr\u{fc}\u{df}e \u{1f999}!", "pieces of {piece}");
        assert_eq!(items.last(), Some(&Ok(StreamItem::Done)));
    }
}

async fn js_error_code(result: Result<wasm_bindgen::JsValue, wasm_bindgen::JsValue>) -> String {
    let error = result.expect_err("expected a rejection");
    js_sys::Reflect::get(&error, &"code".into())
        .unwrap()
        .as_string()
        .unwrap_or_else(|| format!("no code on {error:?}"))
}

/// `LlamaClient` in the browser: bad options and bad requests are `bad_request`; an endpoint
/// nobody listens on is `network` once the retries are spent.
#[wasm_bindgen_test]
async fn the_js_api_reports_typed_errors() {
    use llama_web::wasm::client::LlamaClient;
    let options = |json: &str| js_sys::JSON::parse(json).unwrap();

    let no_model = LlamaClient::create(options(r#"{"mode": "local"}"#)).await;
    assert_eq!(
        js_error_code(no_model.map(|_| wasm_bindgen::JsValue::NULL)).await,
        "bad_request"
    );
    let bad_mode = LlamaClient::create(options(r#"{"mode": "cloud"}"#)).await;
    assert_eq!(
        js_error_code(bad_mode.map(|_| wasm_bindgen::JsValue::NULL)).await,
        "bad_request"
    );

    // Port 9 on loopback: nothing listens there (and Chromium refuses the port): fetch fails.
    // The client as JS sees it (`create` resolves to the JS object).
    let client = LlamaClient::create(options(
        r#"{"mode": "remote", "remote": {"baseUrl": "http://127.0.0.1:9/v1", "apiKey": "k", "maxRetries": 1}}"#,
    ))
    .await
    .unwrap();
    let get = |target: &wasm_bindgen::JsValue, key: &str| {
        js_sys::Reflect::get(target, &key.into()).unwrap()
    };
    assert_eq!(
        get(&client, "backend").as_string().as_deref(),
        Some("remote")
    );
    assert!(get(&client, "fallbackReason").is_undefined());
    let completions = get(&get(&client, "chat"), "completions");
    let create: js_sys::Function =
        wasm_bindgen::JsCast::dyn_into(get(&completions, "create")).unwrap();
    let call = |json: &str| {
        let promise = create
            .call1(&completions, &js_sys::JSON::parse(json).unwrap())
            .unwrap();
        wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise))
    };
    let bad = call(r#"{"messages": []}"#).await;
    assert_eq!(js_error_code(bad).await, "bad_request");
    let unreachable =
        call(r#"{"messages": [{"role": "user", "content": "hi"}], "stream": true}"#).await;
    assert_eq!(js_error_code(unreachable).await, "network");
}
