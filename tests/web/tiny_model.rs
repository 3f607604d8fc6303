//! The tiny Llama 3.1 model on WebGPU (SwiftShader) against HF's goldens: logits in f32 and
//! the quantized formats, the f16 cache, the hardware GPU's kernels, replayed decode steps, and
//! a seeded sampling run equal to the native one.

use super::*;

const TINY_F32: &[u8] = include_bytes!("../fixtures/tiny_llama31/tiny-llama31-F32.gguf");
const TINY_Q8_0: &[u8] = include_bytes!("../fixtures/tiny_llama31/tiny-llama31-Q8_0.gguf");
const TINY_Q4_0: &[u8] = include_bytes!("../fixtures/tiny_llama31/tiny-llama31-Q4_0.gguf");
const GOLDEN: &[u8] = include_bytes!("../fixtures/tiny_llama31/golden/golden.json");

async fn tiny_engine(gguf: &[u8]) -> llama_web::engine::Engine {
    tiny_engine_with(gguf, None).await
}

/// [`tiny_engine`] with its matrices multiplied by `kernel` (else the device's own).
async fn tiny_engine_with(
    gguf: &[u8],
    kernel: Option<llama_web::model::DecodeKernel>,
) -> llama_web::engine::Engine {
    use llama_web::gguf::{GgufHeader, MemorySource};
    let mut device = ComputeDevice::init_webgpu().await.expect("WebGPU device");
    if let Some(kernel) = kernel {
        device = device.with_decode_kernel(kernel);
    }
    let source = MemorySource::new(gguf.to_vec());
    let header = GgufHeader::read(&source).unwrap();
    let mut engine =
        llama_web::engine::Engine::load(&header, &source, &device, Some(64), &mut |_| {})
            .await
            .unwrap();
    // The goldens and the recorded run are the f32 cache's (the reference; the default is q8).
    engine
        .set_kv_format(llama_web::model::plan::KvFormat::F32)
        .unwrap();
    engine
}

fn golden_ids() -> Vec<u32> {
    ids(&serde_json::from_slice::<serde_json::Value>(GOLDEN).unwrap()["ids"])
}

/// The largest |a − b| (NaN if any difference is).
fn max_abs_diff(actual: &[f32], expected: &[f32]) -> f32 {
    actual.iter().zip(expected).fold(0f32, |m, (a, b)| {
        if (a - b).is_nan() {
            f32::NAN
        } else {
            m.max((a - b).abs())
        }
    })
}

/// Logits within 1e-4 × max|golden| everywhere.
fn assert_close(what: &str, actual: &[f32], npy: &[u8]) {
    let expected = llama_web::npy::read_f32(npy).unwrap();
    assert_eq!(actual.len(), expected.values.len(), "{what}");
    let scale = expected.values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = max_abs_diff(actual, &expected.values);
    web_sys::console::log_1(&format!("{what}: max |diff| {diff:e} (scale {scale})").into());
    assert!(
        diff <= 1e-4 * scale,
        "{what}: max |diff| {diff} > 1e-4 × {scale}"
    );
}

async fn tiny_logits(gguf: &[u8], positions: std::ops::Range<u64>) -> Vec<f32> {
    use llama_web::model::llama::LogitsFor;
    use llama_web::model::plan::KvFormat;
    let engine = tiny_engine(gguf).await;
    let model = engine.model();
    let mut cache = model.new_cache(16, KvFormat::F32).unwrap();
    let positions: Vec<u64> = positions.collect();
    model
        .forward(&golden_ids(), &positions, &mut cache, LogitsFor::All)
        .await
        .unwrap()
}

#[wasm_bindgen_test]
async fn tiny_f32_logits_match_hf_on_webgpu() {
    let logits = tiny_logits(TINY_F32, 0..16).await;
    assert_close(
        "F32 pos 0..15",
        &logits,
        include_bytes!("../fixtures/tiny_llama31/golden/hf_f32_logits.npy"),
    );
    let logits = tiny_logits(TINY_F32, 100_000..100_016).await;
    assert_close(
        "F32 pos 100000..",
        &logits,
        include_bytes!("../fixtures/tiny_llama31/golden/hf_f32_logits_pos100000.npy"),
    );
}

#[wasm_bindgen_test]
async fn tiny_quantized_logits_match_hf_on_webgpu() {
    let logits = tiny_logits(TINY_Q8_0, 0..16).await;
    assert_close(
        "Q8_0",
        &logits,
        include_bytes!("../fixtures/tiny_llama31/golden/hf_dequant_q8_0_logits.npy"),
    );
    let logits = tiny_logits(TINY_Q4_0, 0..16).await;
    assert_close(
        "Q4_0",
        &logits,
        include_bytes!("../fixtures/tiny_llama31/golden/hf_dequant_q4_0_logits.npy"),
    );
}

/// The golden prompt prefilled, then 4 tokens decoded one at a time: every step's last logits.
async fn prefill_and_decode(
    model: &llama_web::model::llama::Llama,
    format: llama_web::model::plan::KvFormat,
) -> Vec<f32> {
    use llama_web::model::llama::LogitsFor;
    let ids = golden_ids();
    let mut cache = model.new_cache(32, format).unwrap();
    let mut rows = model.prefill(&ids, &mut cache).await.unwrap();
    for &id in &ids[..4] {
        let (token, position) = ([id], [cache.len() as u64]);
        let step = model.forward(&token, &position, &mut cache, LogitsFor::Last);
        rows.extend(step.await.unwrap());
    }
    rows
}

/// The f16 cache where WebGPU has no `shader-f16` (SwiftShader): its halves are written and
/// read with integer operations; the logits of a prefill and of decode steps stay within
/// 5e-4 × max of the f32 cache's (the native bound, tests/kv_cache.rs), and are not theirs.
#[wasm_bindgen_test]
async fn the_f16_cache_needs_no_shader_f16() {
    use llama_web::model::plan::KvFormat;
    let engine = tiny_engine(TINY_F32).await;
    let exact = prefill_and_decode(engine.model(), KvFormat::F32).await;
    let half = prefill_and_decode(engine.model(), KvFormat::F16).await;
    assert_near_not_equal("f16 vs f32 cache", &half, &exact, 5e-4);
}

/// `actual` within `bound` × max |expected| of `expected`, and not equal to it (what is compared
/// took another path): logged, then asserted.
fn assert_near_not_equal(what: &str, actual: &[f32], expected: &[f32], bound: f32) {
    assert_eq!(actual.len(), expected.len(), "{what}");
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = max_abs_diff(actual, expected);
    web_sys::console::log_1(&format!("{what}: max |diff| {diff:e} (scale {scale})").into());
    assert!(
        diff > 0.0 && diff <= bound * scale,
        "{what}: max |diff| {diff} of {scale} (0: the same path ran)"
    );
}

/// The hardware GPU's kernels — the cooperative GEMV for one token, the shared tile (workgroup
/// memory, barriers) for several — are what a browser on a real GPU runs; SwiftShader takes the
/// software GPU's. Forced here, Chromium's WGSL compiler must accept them (its uniformity
/// analysis refuses a barrier in non-uniform control flow) and their prefill and decode steps
/// must give the software kernels' logits (1e-4 × max, as against HF).
#[wasm_bindgen_test]
async fn the_hardware_gpu_kernels_run_in_the_browser() {
    use llama_web::model::plan::KvFormat;
    use llama_web::model::{Cooperative, DecodeKernel};
    let hardware = DecodeKernel::Cooperative(Cooperative::DEFAULT);
    let engine = tiny_engine_with(TINY_Q4_0, Some(hardware)).await;
    let cooperative = prefill_and_decode(engine.model(), KvFormat::F32).await;
    let engine = tiny_engine(TINY_Q4_0).await;
    let software = prefill_and_decode(engine.model(), KvFormat::F32).await;
    assert_near_not_equal(
        "hardware vs software kernels",
        &cooperative,
        &software,
        1e-4,
    );
}

/// Prefill `prompt` ids into a cache of `context` tokens, then 12 steps ending each way a step
/// can (the greedy choice, a shortlist, the logits): what every step gave, and whether the cache
/// holds a recorded step at the end.
async fn steps_of_every_tail(
    model: &llama_web::model::llama::Llama,
    prompt: u32,
    context: usize,
) -> (Vec<String>, bool) {
    use llama_web::model::llama::LogitsFor;
    use llama_web::model::plan::KvFormat;
    let vocab = model.config().vocab_size as u32;
    let prompt: Vec<u32> = (0..prompt).map(|i| (i * 7919 + 13) % vocab).collect();
    // As the engine and the bench do: every kernel compiled first, in a cache of this size.
    model.warm_up(context, KvFormat::Q8).await.unwrap();
    let mut cache = model.new_cache(context, KvFormat::Q8).unwrap();
    model.prefill(&prompt, &mut cache).await.unwrap();
    let mut seen = Vec::new();
    for step in 0..12u32 {
        let (token, position) = ([(step * 104_729 + 7) % vocab], [cache.len() as u64]);
        seen.push(match step % 3 {
            0 => {
                let id = model.forward_argmax(&token, &position, &mut cache).await;
                format!("argmax {}", id.unwrap())
            }
            1 => {
                let top = model.forward_top(&token, &position, &mut cache, 0.8).await;
                let top = top.unwrap();
                let shortlist = format!("{:?}", top.shortlist);
                let bits: Vec<u32> = top
                    .read_all()
                    .await
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                format!("top {shortlist} {bits:?}")
            }
            _ => {
                let logits = model
                    .forward(&token, &position, &mut cache, LogitsFor::Last)
                    .await;
                let bits: Vec<u32> = logits.unwrap().iter().map(|v| v.to_bits()).collect();
                format!("logits {bits:?}")
            }
        });
    }
    (seen, cache.has_decode_graph())
}

/// Decode steps recorded once and replayed on WebGPU give, bit for bit, what the same steps
/// launched kernel by kernel give, whichever way they end (tests/kv_cache.rs natively), in an
/// engine loaded and warmed up as the JS API's is.
#[wasm_bindgen_test]
async fn replayed_decode_steps_equal_launched_ones_on_webgpu() {
    use llama_web::engine::Engine;
    use llama_web::gguf::{GgufHeader, MemorySource};
    let source = MemorySource::new(TINY_Q4_0.to_vec());
    let header = GgufHeader::read(&source).unwrap();
    let mut runs = Vec::new();
    // Graphs first, on a fresh device: what the pools hold when a step is recorded matters.
    for graphs in [true, false] {
        let device = ComputeDevice::init_webgpu().await.expect("WebGPU device");
        let device = device.with_decode_graphs(graphs);
        let engine = Engine::load(&header, &source, &device, None, &mut |_| {})
            .await
            .unwrap();
        engine.warm_up().await.unwrap();
        // A cache just large enough (as the bench page's), and one where the steps pass 256
        // keys (attention in segments).
        for (prompt, context) in [(6, 18), (250, engine.context_size())] {
            runs.push(steps_of_every_tail(engine.model(), prompt, context).await);
        }
    }
    let (replayed, launched) = runs.split_at(2);
    for (launched, replayed) in launched.iter().zip(replayed) {
        assert!(!launched.1, "graphs off: nothing recorded");
        assert!(replayed.1, "graphs on: the steps replayed a recording");
        for (step, (a, b)) in replayed.0.iter().zip(&launched.0).enumerate() {
            assert!(a == b, "step {step}: replayed {a:.80} vs launched {b:.80}");
        }
    }
}

/// The same seeded run as tests/engine.rs natively: the same ids in the browser.
#[wasm_bindgen_test]
async fn seeded_sampling_in_the_browser_equals_the_native_run() {
    use llama_web::engine::GenerateRequest;
    use llama_web::engine::sampling::SamplingParams;
    let recorded: serde_json::Value = serde_json::from_slice(include_bytes!(
        "../fixtures/tiny_llama31/seeded_sample.json"
    ))
    .unwrap();
    let engine = tiny_engine(TINY_F32).await;
    let request = GenerateRequest {
        prompt: ids(&recorded["prompt"]),
        max_tokens: recorded["max_tokens"].as_u64().unwrap() as usize,
        sampling: serde_json::from_value::<SamplingParams>(recorded["sampling"].clone()).unwrap(),
        stop: vec![],
        ignore_eos: true,
        grammar: None,
        logprobs: None,
    };
    let out = engine
        .generate(&request, &mut |_| std::ops::ControlFlow::Continue(()))
        .await
        .unwrap();
    assert_eq!(out.ids, ids(&recorded["ids"]));
}
