//! What one decode step costs the device, counted exactly (wgpu, lavapipe): kernel launches
//! (ours and Burn's, through cubecl's launch observer) and bytes read back. The counts are
//! deterministic, so a change that adds a dispatch or reads the logits back fails here.
//!
//! Its own test binary with one test: the launch observer is process-wide, and nothing else may
//! use the device while it counts.

mod common;

use std::ops::ControlFlow;

use common::*;
use llama_web::engine::GenerateRequest;
use llama_web::model::Shortlist;
use llama_web::model::device::{ComputeDevice, DeviceChoice, DeviceCounters};
use llama_web::model::llama::{Llama, LogitsFor};
use llama_web::model::plan::KvFormat;
use pollster::block_on;

/// One greedy decode step after a prompt of `prompt_len` tokens, replayed from a recording: its
/// launches and readback bytes, after checking that the first step — run, recorded, and replayed
/// for its answer — runs twice its launches and reads back as many bytes, and that the id chosen
/// on the device is the host's greedy choice over the same step's logits.
fn greedy_step(model: &Llama, prompt_len: usize, format: KvFormat) -> (u64, u64) {
    let prompt: Vec<u32> = (1..=prompt_len as u32).collect();
    let mut cache = model.new_cache(prompt_len + 2, format).unwrap();
    let logits = block_on(model.prefill(&prompt, &mut cache)).unwrap();
    let id = llama_web::engine::sampling::argmax(&logits);

    let counters = DeviceCounters::start();
    let position = cache.len() as u64;
    let chosen = block_on(model.forward_argmax(&[id], &[position], &mut cache)).unwrap();
    let first = (counters.launches(), counters.readback_bytes());
    assert!(
        cache.has_decode_graph(),
        "{format:?}: the step was recorded"
    );
    let counters = DeviceCounters::start();
    block_on(model.forward_argmax(&[chosen], &[position + 1], &mut cache)).unwrap();
    let counts = (counters.launches(), counters.readback_bytes());
    assert_eq!(
        first,
        (2 * counts.0, counts.1),
        "{format:?}: the recorded step"
    );

    let mut again = model.new_cache(prompt_len + 1, format).unwrap();
    block_on(model.prefill(&prompt, &mut again)).unwrap();
    let logits = block_on(model.forward(&[id], &[position], &mut again, LogitsFor::Last)).unwrap();
    assert_eq!(
        chosen,
        llama_web::engine::sampling::argmax(&logits),
        "{format:?}"
    );
    counts
}

/// A seeded sampled generation through the engine (the fixture's run: temperature 1, top-k 40,
/// top-p 0.95): its ids, and the bytes it reads back — a shortlist for the prompt's last token
/// and one a step, every one decided without the logits.
fn sampled_generation_reads_back_shortlists() {
    let recorded = json_fixture("tiny_llama31/seeded_sample.json");
    let mut engine = load_engine(
        fixture("tiny_llama31/tiny-llama31-F32.gguf"),
        DeviceChoice::Wgpu,
        Some(64),
    );
    engine.set_kv_format(KvFormat::F32).unwrap();
    let request = GenerateRequest {
        prompt: ids(&recorded["prompt"]),
        max_tokens: recorded["max_tokens"].as_u64().unwrap() as usize,
        sampling: serde_json::from_value(recorded["sampling"].clone()).unwrap(),
        stop: vec![],
        ignore_eos: true,
        grammar: None,
        logprobs: None,
    };
    let counters = DeviceCounters::start();
    let completion =
        block_on(engine.generate(&request, &mut |_| ControlFlow::Continue(()))).unwrap();
    let readback = counters.readback_bytes();
    assert_eq!(completion.ids, ids(&recorded["ids"]));
    let tokens = request.max_tokens as u64;
    assert_eq!(readback, tokens * 4 * (4 + 2 * 128));
}

#[test]
fn a_decode_step_is_five_launches_per_block_and_reads_back_the_choice_or_a_shortlist() {
    let model = load_llama(
        fixture("tiny_llama31/tiny-llama31-Q4_0.gguf"),
        DeviceChoice::Wgpu,
    );
    let layers = model.config().n_layers as u64;
    for format in KvFormat::ALL {
        // Per block: q/k/v (norm folded in), attention with RoPE and the cache store folded in
        // (up to 256 keys: one segment, written directly), the output projection (+ residual),
        // gate/up (norm and SwiGLU folded in), down (+ residual). Then the head (final norm
        // folded in) and the greedy choice.
        let (launches, readback) = greedy_step(&model, 5, format);
        assert_eq!(
            launches,
            5 * layers + 2,
            "{format:?}: launches of one decode step"
        );
        assert!(launches <= 8 * layers + 8, "the issue's budget");
        assert_eq!(readback, 4, "{format:?}: the chosen id only");

        // Past 256 keys attention runs in segments, and one more launch per block merges them.
        let (launches, readback) = greedy_step(&model, 300, format);
        assert_eq!(
            launches,
            6 * layers + 2,
            "{format:?}: launches after 300 tokens"
        );
        assert_eq!(readback, 4);
    }

    // Reading the logits back is counted as such: the counter is not stuck at 4.
    let vocab = model.config().vocab_size as u64;
    let mut cache = model.new_cache(16, KvFormat::F32).unwrap();
    // (The first step also runs the cache's zero fill, a fused Burn kernel.)
    block_on(model.prefill(&[1], &mut cache)).unwrap();
    let counters = DeviceCounters::start();
    block_on(model.forward(&[2], &[1], &mut cache, LogitsFor::Last)).unwrap();
    assert_eq!(counters.readback_bytes(), vocab * 4);
    // The first step on a cache runs twice: once as is, once replaying its recording.
    assert_eq!(counters.launches(), 2 * (5 * layers + 1));

    // A sampled step reads back the shortlist instead: 4 header words and 128 (id, logit)
    // pairs, the vocabulary's first in the host's order.
    let mut cache = model.new_cache(16, KvFormat::F32).unwrap();
    block_on(model.prefill(&[1], &mut cache)).unwrap();
    let counters = DeviceCounters::start();
    let top = block_on(model.forward_top(&[2], &[1], &mut cache, 0.8)).unwrap();
    assert_eq!(counters.readback_bytes(), 4 * (4 + 2 * 128));
    assert_eq!(counters.launches(), 2 * (5 * layers + 2));
    let shortlist = top.shortlist.clone();
    let logits = block_on(top.read_all()).unwrap();
    assert_eq!(shortlist.top, Shortlist::from_logits(&logits, 0.8, 128).top);

    // The warm-up launches its steps without recording them: as many launches as on a device
    // that never records.
    let counters = DeviceCounters::start();
    block_on(model.warm_up(600, KvFormat::Q8)).unwrap();
    let recording = counters.launches();
    let source = open_gguf(fixture("tiny_llama31/tiny-llama31-Q4_0.gguf"));
    let header = llama_web::gguf::GgufHeader::read(&source).unwrap();
    let device = ComputeDevice::init_native(DeviceChoice::Wgpu)
        .unwrap()
        .with_decode_graphs(false);
    let launching = block_on(Llama::load(&header, &source, &device, &mut |_| {})).unwrap();
    let counters = DeviceCounters::start();
    block_on(launching.warm_up(600, KvFormat::Q8)).unwrap();
    assert_eq!(recording, counters.launches(), "launches of a warm-up");

    sampled_generation_reads_back_shortlists();
}
