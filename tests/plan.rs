//! The memory plan and the synthetic 8B: the plan agrees with what a loaded model holds, and
//! the synthetic file has the real Llama 3.1 8B Q4_K_M's shapes and tensor types.

mod common;

use common::*;
use llama_web::gguf::{ByteSource, GgmlType, GgufHeader};
use llama_web::model::config::LlamaConfig;
use llama_web::model::device::DeviceChoice;
use llama_web::model::plan::{KvFormat, MemoryPlan};
use llama_web::model::synthetic::{SyntheticKind, SyntheticModel};

fn plan_of(source: &impl ByteSource, context: usize, kv: KvFormat) -> (LlamaConfig, MemoryPlan) {
    let header = GgufHeader::read(source).unwrap();
    let config = LlamaConfig::from_gguf(&header).unwrap();
    let plan = MemoryPlan::new(&header, &config, context, kv);
    (config, plan)
}

#[test]
fn planned_weight_bytes_are_what_the_loaded_model_holds() {
    for path in [
        smollm2_path(),
        fixture("tiny_llama31/tiny-llama31-Q4_0.gguf"),
    ] {
        let (_, plan) = plan_of(&open_gguf(path.clone()), 256, KvFormat::F32);
        let model = load_llama(path.clone(), DeviceChoice::Wgpu);
        assert_eq!(
            plan.weight_bytes,
            model.weight_bytes(),
            "{}",
            path.display()
        );
        assert_eq!(
            plan.host_bytes,
            model.host_weight_bytes() + plan_rope_bytes(&model),
            "{}",
            path.display()
        );
        for format in [KvFormat::F32, KvFormat::Q8] {
            let (_, plan) = plan_of(&open_gguf(path.clone()), 256, format);
            let cache = model.new_cache(256, format).unwrap();
            assert_eq!(plan.kv_cache_bytes, cache.device_bytes(), "{format:?}");
        }
    }
}

/// `rope_freqs` is counted as host bytes by the plan (it becomes the RoPE table).
fn plan_rope_bytes(model: &llama_web::model::llama::Llama) -> u64 {
    match model.config().rope_freqs {
        true => model.config().head_dim as u64 / 2 * 4,
        false => 0,
    }
}

#[test]
fn the_synthetic_8b_has_the_real_files_shapes_and_types() {
    let source = SyntheticModel::new(SyntheticKind::Llama31_8bQ4KM);
    let header = GgufHeader::read(&source).unwrap();
    let config = LlamaConfig::from_gguf(&header).unwrap();
    assert_eq!(
        (
            config.n_layers,
            config.hidden_size,
            config.ffn_size,
            config.n_heads,
            config.n_kv_heads
        ),
        (32, 4096, 14336, 32, 8)
    );
    assert_eq!(
        (config.vocab_size, config.tied_embeddings, config.rope_freqs),
        (128_256, false, true)
    );
    let count = |t: GgmlType| header.tensors().iter().filter(|i| i.ggml_type == t).count();
    // llama.cpp's log of Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf: f32 66, q4_K 193, q6_K 33.
    assert_eq!(
        (
            count(GgmlType::F32),
            count(GgmlType::Q4_K),
            count(GgmlType::Q6_K)
        ),
        (66, 193, 33)
    );
    // The real file is 4.92 GB.
    let bytes = source.tensor_bytes();
    assert!((4_900_000_000..4_930_000_000).contains(&bytes), "{bytes}");
    // Whole tensors read as blocks with finite scales; other ranges are refused.
    let t = header.tensor("blk.0.attn_q.weight").unwrap();
    let data = header.read_tensor_bytes(&source, &t.name).unwrap();
    let values = llama_web::gguf::dequant::dequantize(t.ggml_type, &data[..144], 256).unwrap();
    assert!(values.iter().all(|v| v.is_finite()) && values.iter().any(|&v| v != 0.0));
    let mut two = [0u8; 2];
    assert!(source.read_exact_at(t.offset + 1, &mut two).is_err());
}

#[test]
fn the_8b_plan_at_8k_context() {
    let source = SyntheticModel::new(SyntheticKind::Llama31_8bQ4KM);
    let (_, f32_plan) = plan_of(&source, 8192, KvFormat::F32);
    let (_, q8_plan) = plan_of(&source, 8192, KvFormat::Q8);
    // 32 blocks × K and V × 1024 wide × 8192 tokens.
    assert_eq!(f32_plan.kv_cache_bytes, 32 * 2 * 1024 * 8192 * 4);
    // 8 KV heads × 8192 tokens × (128 bytes + an f32 scale) per block's keys, and values.
    assert_eq!(q8_plan.kv_cache_bytes, 32 * 2 * 8 * 8192 * 132);
    eprintln!("f32: {f32_plan:#?}\nq8: {q8_plan:#?}");
    // The budget: under 5.0 GB of GPU memory, in the binary units GPU memory is sized in
    // (an "80 GB" H100 holds 80 GiB) and WebLLM reports in (5001 "MB" = MiB for its 8B q4f16 at
    // 4k). The 8-bit cache brings the 8B at 8k to 4950 MiB; with the f32 cache it is 6.3 GiB.
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    assert!(
        q8_plan.total_gpu_bytes < 5 * GIB,
        "{}",
        q8_plan.total_gpu_bytes
    );
    assert!(
        q8_plan.total_gpu_bytes < 5000 * MIB,
        "{}",
        q8_plan.total_gpu_bytes
    );
    assert!(f32_plan.total_gpu_bytes > 6 * GIB);
    // No score matrix: the activations of a 64-token chunk at the end of 8k are the
    // projections, the MLP and the logits, under 32 MiB.
    assert!(
        q8_plan.activation_bytes < 32 * MIB,
        "{}",
        q8_plan.activation_bytes
    );
    assert_eq!(f32_plan.weight_bytes, q8_plan.weight_bytes);
    // Everything but the 295.5 MB Q4_K embedding table (kept on the host) and rope_freqs.
    assert_eq!(f32_plan.host_bytes, 128_256 * 4096 / 256 * 144 + 64 * 4);
    assert!(f32_plan.weight_bytes + f32_plan.host_bytes <= source.tensor_bytes() + 65 * 4096 * 4);
    // The output head (Q6_K, 431 MB, and the kernels' two padding words) is the largest
    // tensor: more than lavapipe's 128 MiB binding.
    assert_eq!(
        f32_plan.largest_tensor_bytes,
        128_256 * 4096 / 256 * 210 + 8
    );
    assert_eq!(
        f32_plan.total_gpu_bytes,
        f32_plan.weight_bytes + f32_plan.kv_cache_bytes + f32_plan.activation_bytes
    );
}
