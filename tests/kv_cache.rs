//! The preallocated KV cache and the attention kernels (wgpu, lavapipe) against the CPU
//! device's reference attention (Burn operations, as HF's eager attention): long contexts that
//! split into several key segments, prefill chunks after a filled cache, a reused cache, the
//! 8-bit and f16 caches' error, decode steps replayed from a recording against decode steps
//! launched kernel by kernel, and typed errors for caches that cannot be made.

mod common;

use std::ops::ControlFlow;

use common::*;
use llama_web::engine::GenerateRequest;
use llama_web::engine::sampling::SamplingParams;
use llama_web::model::device::{ComputeDevice, DeviceChoice};
use llama_web::model::error::ModelError;
use llama_web::model::kv_cache::KvCache;
use llama_web::model::llama::{Llama, LogitsFor};
use llama_web::model::plan::{KvFormat, attention_segments};
use llama_web::model::{Cooperative, DecodeKernel};
use llama_web::rng::SplitMix64;
use pollster::block_on;

fn tiny(device: DeviceChoice) -> Llama {
    load_llama(fixture("tiny_llama31/tiny-llama31-F32.gguf"), device)
}

fn random_ids(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| (rng.next_u64() % vocab as u64) as u32)
        .collect()
}

/// Prefills `prompt` (in the engine's chunks), then decodes `decode` one token at a time;
/// returns the prefill's last logits followed by every decode step's.
fn prefill_then_decode(
    model: &Llama,
    cache: &mut KvCache,
    prompt: &[u32],
    decode: &[u32],
) -> Vec<f32> {
    let mut rows = block_on(model.prefill(prompt, cache)).unwrap();
    for &id in decode {
        let position = cache.len() as u64;
        rows.extend(block_on(model.forward(&[id], &[position], cache, LogitsFor::Last)).unwrap());
    }
    rows
}

/// 600 cached tokens: decoding reads three segments of 256 keys (the last one partial), and
/// the prefill's later chunks attend to a full cache. Every row equals the CPU reference's.
#[test]
fn long_context_on_the_gpu_matches_the_reference_attention() {
    assert_eq!(attention_segments(1, 601, 256), (3, 256));
    long_context_matches_the_reference(&tiny(DeviceChoice::Wgpu), "software kernels");
}

/// The hardware GPU's kernels, forced on lavapipe, with segments of 16 keys a query token (32
/// by default) so that both kinds of step split: decode attention in 38 segments, the prompt's
/// last chunk of 24 tokens in 2; the prefill's shared tile, the cooperative GEMV — every row
/// the CPU reference's too.
#[test]
fn the_hardware_kernels_match_the_reference_over_a_long_context() {
    let hardware = DecodeKernel::Cooperative(Cooperative {
        segment_keys: 16,
        ..Cooperative::DEFAULT
    });
    assert_eq!(
        attention_segments(1, 601, hardware.segment_keys()),
        (38, 16)
    );
    assert_eq!(
        attention_segments(24, 600, hardware.segment_keys()),
        (2, 384)
    );
    let device = ComputeDevice::init_native(DeviceChoice::Wgpu)
        .unwrap()
        .with_decode_kernel(hardware);
    let gpu = load_llama_on(fixture("tiny_llama31/tiny-llama31-F32.gguf"), &device);
    long_context_matches_the_reference(&gpu, "hardware kernels");
}

/// A 600-token prompt and 6 decode steps on `gpu`, in an f32 cache of 1024 tokens: every row
/// within 1e-4 (relative) of the CPU reference's.
fn long_context_matches_the_reference(gpu: &Llama, what: &str) {
    let cpu = tiny(DeviceChoice::Cpu);
    let vocab = cpu.config().vocab_size;
    let prompt = random_ids(600, vocab, 7);
    let decode = random_ids(6, vocab, 8);
    let mut cpu_cache = cpu.new_cache(1024, KvFormat::F32).unwrap();
    let expected = prefill_then_decode(&cpu, &mut cpu_cache, &prompt, &decode);
    let mut gpu_cache = gpu.new_cache(1024, KvFormat::F32).unwrap();
    let actual = prefill_then_decode(gpu, &mut gpu_cache, &prompt, &decode);
    assert_eq!(gpu_cache.len(), 606);
    let label = format!("600-token context, f32 cache, {what}");
    assert_close_rel(&label, &actual, &expected, 1e-4);
}

/// A cleared cache keeps its rows (the previous sequence's keys stay in memory); the kernels
/// must read only the new sequence's.
#[test]
fn a_reused_cache_forgets_the_previous_sequence() {
    let gpu = tiny(DeviceChoice::Wgpu);
    let vocab = gpu.config().vocab_size;
    let first = random_ids(300, vocab, 1);
    let second = random_ids(40, vocab, 2);
    let decode = random_ids(3, vocab, 3);
    for format in KvFormat::ALL {
        let mut fresh = gpu.new_cache(512, format).unwrap();
        let expected = prefill_then_decode(&gpu, &mut fresh, &second, &decode);
        let mut reused = gpu.new_cache(512, format).unwrap();
        prefill_then_decode(&gpu, &mut reused, &first, &decode);
        reused.clear();
        assert!(reused.is_empty());
        let actual = prefill_then_decode(&gpu, &mut reused, &second, &decode);
        assert_eq!(actual, expected, "{format:?}");
    }
}

/// The 8-bit cache rounds each key and value to 1/254 of its row's largest magnitude: logits
/// move by a little, measured here, and stay far from a broken cache's.
#[test]
fn the_q8_cache_stays_close_to_the_f32_cache() {
    let gpu = tiny(DeviceChoice::Wgpu);
    let vocab = gpu.config().vocab_size;
    let prompt = random_ids(300, vocab, 11);
    let decode = random_ids(4, vocab, 12);
    let mut f32_cache = gpu.new_cache(512, KvFormat::F32).unwrap();
    let exact = prefill_then_decode(&gpu, &mut f32_cache, &prompt, &decode);
    let mut q8_cache = gpu.new_cache(512, KvFormat::Q8).unwrap();
    assert_eq!(q8_cache.format(), KvFormat::Q8);
    let rounded = prefill_then_decode(&gpu, &mut q8_cache, &prompt, &decode);
    let (diff, scale) = max_diff(&rounded, &exact);
    eprintln!("tiny, 300 tokens, q8 vs f32 cache: max |diff| {diff:e} of {scale}");
    assert!(diff > 0.0, "the q8 cache cannot be exact");
    assert_close_rel("q8 cache vs f32 cache", &rounded, &exact, 5e-3);
}

/// The f16 cache rounds each key and value to 11 significant bits: its logits move far less
/// than the q8 cache's (measured here on the same tokens), and it takes half the f32 cache's
/// bytes.
#[test]
fn the_f16_cache_is_closer_to_the_f32_cache_than_the_q8_cache() {
    let gpu = tiny(DeviceChoice::Wgpu);
    let vocab = gpu.config().vocab_size;
    let prompt = random_ids(300, vocab, 11);
    let decode = random_ids(4, vocab, 12);
    let run = |format: KvFormat| {
        let mut cache = gpu.new_cache(512, format).unwrap();
        assert_eq!(cache.format(), format);
        let logits = prefill_then_decode(&gpu, &mut cache, &prompt, &decode);
        (logits, cache.device_bytes())
    };
    let (exact, f32_bytes) = run(KvFormat::F32);
    let (half, f16_bytes) = run(KvFormat::F16);
    let (eighth, _) = run(KvFormat::Q8);
    assert_eq!(2 * f16_bytes, f32_bytes);
    let (f16_diff, scale) = max_diff(&half, &exact);
    let (q8_diff, _) = max_diff(&eighth, &exact);
    eprintln!(
        "tiny, 300 tokens, vs the f32 cache: f16 max |diff| {f16_diff:e}, q8 {q8_diff:e} of {scale}"
    );
    assert!(f16_diff > 0.0, "the f16 cache cannot be exact");
    assert!(
        f16_diff * 10.0 < q8_diff,
        "f16 {f16_diff:e} against q8 {q8_diff:e}"
    );
    assert_close_rel("f16 cache vs f32 cache", &half, &exact, 5e-4);
}

/// SmolLM2 with the 8-bit or the f16 cache still answers as with the f32 cache (and HF).
#[test]
fn smollm2_with_a_compact_cache_gives_the_same_greedy_answer() {
    let mut engine = load_engine(smollm2_path(), DeviceChoice::Wgpu, Some(256));
    let messages =
        serde_json::json!([{"role": "user", "content": "What is the capital of France?"}]);
    for format in [KvFormat::Q8, KvFormat::F16] {
        engine.set_kv_format(format).unwrap();
        assert_eq!(engine.kv_format(), format);
        let request = GenerateRequest {
            prompt: engine.chat_prompt(&messages, None).unwrap(),
            max_tokens: 12,
            sampling: SamplingParams::greedy(),
            stop: vec![],
            ignore_eos: false,
            grammar: None,
            logprobs: None,
        };
        let out = block_on(engine.generate(&request, &mut |_| ControlFlow::Continue(()))).unwrap();
        assert_eq!(out.text, "The capital of France is Paris.", "{format:?}");
    }
}

#[test]
fn caches_that_cannot_be_made_are_typed_errors() {
    let cpu = tiny(DeviceChoice::Cpu);
    let err = cpu.new_cache(16, KvFormat::Q8).unwrap_err();
    assert!(
        matches!(&err, ModelError::BadInput { detail } if detail.contains("wgpu")),
        "{err}"
    );
    let mut engine = load_engine(
        fixture("tiny_llama31/tiny-llama31-F32.gguf"),
        DeviceChoice::Cpu,
        Some(64),
    );
    assert!(engine.set_kv_format(KvFormat::Q8).is_err());
    assert_eq!(
        engine.kv_format(),
        KvFormat::F32,
        "a refused format is not kept"
    );

    // 2 KV heads × 16 values × 4 bytes = 128 bytes a token: 2^20 tokens are 128 MiB, one
    // more binding's worth than an adapter is guaranteed.
    let gpu = tiny(DeviceChoice::Wgpu);
    let err = gpu.new_cache(1 << 20, KvFormat::F32).unwrap_err();
    assert!(
        matches!(&err, ModelError::TooBig { detail } if detail.contains("storage binding")),
        "{err}"
    );
    assert!(
        gpu.new_cache(1 << 20, KvFormat::Q8).is_ok(),
        "a q8 row is 20 bytes"
    );
    assert_eq!("q8".parse::<KvFormat>(), Ok(KvFormat::Q8));
    assert_eq!("f16".parse::<KvFormat>(), Ok(KvFormat::F16));
    assert!("bf16".parse::<KvFormat>().is_err());
    let err = cpu.new_cache(16, KvFormat::F16).unwrap_err();
    assert!(matches!(&err, ModelError::BadInput { .. }), "{err}");
}

/// A decode step recorded once and replayed gives the launch-by-launch step's logits bit for
/// bit, in every cache format: decoding from 250 to 262 tokens crosses into two segments of keys
/// (the step is recorded again there), then the cache is cleared and reused for another prompt
/// (its recording replays at the new positions).
#[test]
fn replayed_decode_steps_equal_launched_ones_bit_for_bit() {
    let path = fixture("tiny_llama31/tiny-llama31-Q4_0.gguf");
    let load = |graphs: bool| {
        let source = open_gguf(path.clone());
        let header = llama_web::gguf::GgufHeader::read(&source).unwrap();
        let device = ComputeDevice::init_native(DeviceChoice::Wgpu)
            .unwrap()
            .with_decode_graphs(graphs);
        block_on(Llama::load(&header, &source, &device, &mut |_| {})).unwrap()
    };
    let (replayed, launched) = (load(true), load(false));
    let vocab = replayed.config().vocab_size;
    let prompt = random_ids(250, vocab, 11);
    let decode = random_ids(12, vocab, 12);
    let again = random_ids(9, vocab, 13);
    for format in KvFormat::ALL {
        let run = |model: &Llama| {
            let mut cache = model.new_cache(300, format).unwrap();
            let mut rows = prefill_then_decode(model, &mut cache, &prompt, &decode);
            cache.clear();
            rows.extend(prefill_then_decode(model, &mut cache, &again, &decode));
            (rows, cache.has_decode_graph())
        };
        let (expected, recorded) = run(&launched);
        assert!(!recorded, "{format:?}: graphs off");
        let (rows, recorded) = run(&replayed);
        assert!(recorded, "{format:?}: the steps replayed a recording");
        assert_eq!(rows.len(), expected.len());
        let differ = rows
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(
            differ.count(),
            0,
            "{format:?}: logits differ from launched steps"
        );
    }
}
