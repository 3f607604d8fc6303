//! Fidelity of the forward pass: the tiny Llama 3.1 models and SmolLM2 against HF transformers'
//! goldens (tests/fixtures; tolerances from the fixtures' README), on the CPU device and on
//! the wgpu device (lavapipe).

mod common;

use common::*;
use llama_web::model::Arithmetic;
use llama_web::model::device::{ComputeDevice, DeviceChoice};
use llama_web::model::error::ModelError;
use llama_web::model::llama::{Llama, LogitsFor};
use llama_web::model::plan::KvFormat;
use pollster::block_on;

const DEVICES: [DeviceChoice; 2] = [DeviceChoice::Cpu, DeviceChoice::Wgpu];

fn tiny(kind: &str, device: DeviceChoice) -> Llama {
    load_llama(
        fixture(&format!("tiny_llama31/tiny-llama31-{kind}.gguf")),
        device,
    )
}

fn golden_ids() -> Vec<u32> {
    ids(&json_fixture("tiny_llama31/golden/golden.json")["ids"])
}

fn logits_at(model: &Llama, ids: &[u32], positions: &[u64]) -> Vec<f32> {
    let mut cache = model.new_cache(64, KvFormat::F32).unwrap();
    block_on(model.forward(ids, positions, &mut cache, LogitsFor::All)).unwrap()
}

/// Checks the tiny model's logits for the golden ids at `positions` on every device.
fn check_tiny_logits(kind: &str, golden: &str, positions: std::ops::Range<u64>) {
    let ids = golden_ids();
    let expected = npy_fixture(&format!("tiny_llama31/golden/{golden}"));
    assert_eq!(expected.shape, [16, 512]);
    let positions: Vec<u64> = positions.collect();
    for device in DEVICES {
        let model = tiny(kind, device);
        let logits = logits_at(&model, &ids, &positions);
        let what = format!("{kind} on {device} from position {}", positions[0]);
        assert_close_rel(&what, &logits, &expected.values, 1e-4);
    }
}

#[test]
fn tiny_f32_logits_match_hf_at_positions_0_to_15() {
    check_tiny_logits("F32", "hf_f32_logits.npy", 0..16);
}

#[test]
fn tiny_f32_logits_match_hf_at_positions_100000_on() {
    check_tiny_logits("F32", "hf_f32_logits_pos100000.npy", 100_000..100_016);
}

#[test]
fn tiny_f32_hidden_states_match_hf() {
    let ids = golden_ids();
    let expected = npy_fixture("tiny_llama31/golden/hf_f32_hidden_states.npy");
    assert_eq!(expected.shape, [4, 16, 64]);
    for device in DEVICES {
        let model = tiny("F32", device);
        let mut cache = model.new_cache(16, KvFormat::F32).unwrap();
        let positions: Vec<u64> = (0..16).collect();
        let states = block_on(model.hidden_states(&ids, &positions, &mut cache)).unwrap();
        assert_eq!(states.len(), 4);
        for (i, state) in states.iter().enumerate() {
            let reference = &expected.values[i * 16 * 64..(i + 1) * 16 * 64];
            assert_close_rel(&format!("{device} hidden {i}"), state, reference, 1e-4);
        }
    }
}

#[test]
fn tiny_quantized_logits_match_hf_on_dequantized_weights() {
    check_tiny_logits("Q8_0", "hf_dequant_q8_0_logits.npy", 0..16);
    check_tiny_logits("Q4_0", "hf_dequant_q4_0_logits.npy", 0..16);
}

/// Prefill part of the prompt, then decode the rest one token at a time through the KV cache:
/// every row must match the batched golden.
#[test]
fn incremental_decoding_through_the_cache_matches_the_batched_pass() {
    let ids = golden_ids();
    let expected = npy_fixture("tiny_llama31/golden/hf_f32_logits.npy");
    for device in DEVICES {
        let model = tiny("F32", device);
        let mut cache = model.new_cache(16, KvFormat::F32).unwrap();
        let mut rows = block_on(model.forward(
            &ids[..9],
            &(0..9).collect::<Vec<_>>(),
            &mut cache,
            LogitsFor::All,
        ))
        .unwrap();
        for p in 9..16 {
            let last =
                block_on(model.forward(&ids[p..p + 1], &[p as u64], &mut cache, LogitsFor::Last))
                    .unwrap();
            rows.extend(last);
        }
        assert_eq!(cache.len(), 16);
        assert_close_rel(
            &format!("{device} incremental"),
            &rows,
            &expected.values,
            1e-4,
        );
    }
}

#[test]
fn bad_input_and_context_overflow_are_typed_errors_that_leave_the_model_usable() {
    let ids = golden_ids();
    let model = tiny("F32", DeviceChoice::Cpu);
    let mut cache = model.new_cache(4, KvFormat::F32).unwrap();
    let overflow =
        block_on(model.forward(&ids[..5], &[0, 1, 2, 3, 4], &mut cache, LogitsFor::Last));
    assert!(
        matches!(
            overflow,
            Err(ModelError::ContextOverflow {
                needed: 5,
                context_size: 4
            })
        ),
        "{overflow:?}"
    );
    for (ids, positions) in [(&[512u32][..], &[0u64][..]), (&[1, 2], &[0]), (&[], &[])] {
        let err = block_on(model.forward(ids, positions, &mut cache, LogitsFor::Last));
        assert!(matches!(err, Err(ModelError::BadInput { .. })), "{err:?}");
    }
    assert_eq!(cache.len(), 0, "a rejected call must not touch the cache");
    let expected = npy_fixture("tiny_llama31/golden/hf_f32_logits.npy");
    let first = block_on(model.forward(&ids[..1], &[0], &mut cache, LogitsFor::Last)).unwrap();
    assert_close_rel("after errors", &first, &expected.values[..512], 1e-4);
}

#[test]
fn smollm2_last_logits_match_hf_within_1e_3() {
    let reference = json_fixture("smollm2/hf_reference.json");
    let prompt = ids(&reference["prompt_ids"]);
    let expected = npy_fixture("smollm2/hf_last_logits.npy");
    for device in DEVICES {
        let model = load_llama(smollm2_path(), device);
        // wgpu keeps the file's blocks (98 MB file); the CPU device holds f32 (4 bytes × 135M).
        let bytes = model.weight_bytes();
        match device {
            DeviceChoice::Wgpu => assert!(bytes < 100_000_000, "{bytes}"),
            DeviceChoice::Cpu => assert!(bytes > 500_000_000, "{bytes}"),
        }
        let mut cache = model.new_cache(64, KvFormat::F32).unwrap();
        let positions: Vec<u64> = (0..prompt.len() as u64).collect();
        let logits =
            block_on(model.forward(&prompt, &positions, &mut cache, LogitsFor::Last)).unwrap();
        let (diff, _) = max_diff(&logits, &expected.values);
        eprintln!("SmolLM2 on {device}: max |diff| {diff:e}");
        assert!(diff <= 1e-3, "SmolLM2 on {device}: max |diff| {diff}");
    }
}

/// Our f32 inverse frequencies are transformers' `rotary_emb.inv_freq` to within two f32 ulps
/// (torch's vectorised `pow` lands one entry of eight two ulps away). The angle `p · θ` is one
/// f32 product in both, so at position 100 000 the slowest pairs differ by ~1e-7 rad.
#[test]
fn rope_inverse_frequencies_match_transformers_within_two_ulps() {
    use llama_web::model::rope::RopeTable;
    let rope = json_fixture("tiny_llama31/rope.json");
    let floats = |key: &str| -> Vec<f32> {
        rope[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    let within_two_ulps = |ours: &[f32], theirs: &[f32]| {
        assert_eq!(ours.len(), theirs.len());
        for (a, b) in ours.iter().zip(theirs) {
            assert!(a.to_bits().abs_diff(b.to_bits()) <= 2, "{a:e} vs {b:e}");
        }
    };
    let base = RopeTable::new(16, 500_000.0, None);
    within_two_ulps(base.inv_freq(), &floats("inv_freq_base"));
    let scaled = RopeTable::new(16, 500_000.0, Some(&floats("rope_freqs_factors")));
    within_two_ulps(scaled.inv_freq(), &floats("inv_freq_llama3_scaled"));
    // Without the llama3 factors the slow pairs turn 8× faster: the test can tell.
    assert!(base.inv_freq()[7] > 7.9 * scaled.inv_freq()[7]);
}

/// How far the logits with f16 arithmetic in the projections may be from the f32 path's,
/// relative to the largest logit: measured 7.5e-3 on SmolLM2 (0.19 of 25.3), 1.8e-3 on the tiny
/// Q8_0 model (1.9e-3 with Q4_0 weights, 1.6e-3 with F32).
const F16_ARITHMETIC_BOUND: f32 = 2e-2;

/// f16 arithmetic (`Arithmetic::F16`, where the adapter has `shader-f16`: lavapipe has)
/// against the f32 path, the reference: SmolLM2's last logits and the tiny Q8_0 model's at every
/// position (Q8_0's integers, up to 127, would be the first to overflow f16 if dotted before
/// dequantizing) stay within [`F16_ARITHMETIC_BOUND`], and each row's greedy choice is the same.
#[test]
fn f16_arithmetic_stays_within_its_bound_of_the_f32_path() {
    let f32_device = ComputeDevice::init_native(DeviceChoice::Wgpu).unwrap();
    assert!(f32_device.supports_f16(), "lavapipe has shader-f16");
    let f16_device = f32_device.clone().with_arithmetic(Arithmetic::F16).unwrap();
    let smollm2_prompt = ids(&json_fixture("smollm2/hf_reference.json")["prompt_ids"]);
    let cases = [
        (smollm2_path(), smollm2_prompt, LogitsFor::Last),
        (
            fixture("tiny_llama31/tiny-llama31-Q8_0.gguf"),
            golden_ids(),
            LogitsFor::All,
        ),
    ];
    for (path, prompt, which) in cases {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let logits = |device: &ComputeDevice| {
            let model = load_llama_on(path.clone(), device);
            let mut cache = model.new_cache(64, KvFormat::F32).unwrap();
            let positions: Vec<u64> = (0..prompt.len() as u64).collect();
            let logits = block_on(model.forward(&prompt, &positions, &mut cache, which)).unwrap();
            (logits, model.config().vocab_size)
        };
        let (reference, vocab) = logits(&f32_device);
        let (half, _) = logits(&f16_device);
        let (diff, _) = max_diff(&half, &reference);
        assert!(
            diff > 0.0,
            "{name}: f16 arithmetic gave the f32 path's logits bit for bit (or NaN)"
        );
        assert_close_rel(
            &format!("{name}, f16 arithmetic against f32"),
            &half,
            &reference,
            F16_ARITHMETIC_BOUND,
        );
        let argmax = |row: &[f32]| {
            (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap()
        };
        for (r, (h, f)) in half.chunks(vocab).zip(reference.chunks(vocab)).enumerate() {
            assert_eq!(argmax(h), argmax(f), "{name}: row {r}'s greedy choice");
        }
    }
}
