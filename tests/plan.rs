//! The memory plan and the synthetic 8B: the plan agrees with what a loaded model holds, and
//! the synthetic file has the real Llama 3.1 8B Q4_K_M's shapes and tensor types, a vocabulary
//! our tokenizer builds, and writes out as the bytes it reads.

mod common;

use common::*;
use llama_web::gguf::{ByteSource, GgmlType, GgufHeader};
use llama_web::model::config::LlamaConfig;
use llama_web::model::device::DeviceChoice;
use llama_web::model::plan::{KvFormat, MemoryPlan};
use llama_web::model::synthetic::{SyntheticKind, SyntheticModel};
use llama_web::tokenizer::{SpecialTokens, Tokenizer};

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
        for format in KvFormat::ALL {
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
    // 4k). The 8-bit cache brings the 8B at 8k to 4953 MiB; with the f32 cache it is 6.3 GiB.
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
    // The output head (Q6_K, 431 MB: its 2,052,096 blocks are whole superblocks of 8 on the
    // device, no padding) is the largest tensor: more than lavapipe's 128 MiB binding.
    assert_eq!(f32_plan.largest_tensor_bytes, 128_256 * 4096 / 256 * 210);
    assert_eq!(
        f32_plan.total_gpu_bytes,
        f32_plan.weight_bytes + f32_plan.kv_cache_bytes + f32_plan.activation_bytes
    );
}

/// A `Write` that keeps the first bytes, counts all of them and hashes them (FNV-1a over
/// little-endian words; every write of the synthetic file is a whole number of words).
struct Capture {
    prefix: Vec<u8>,
    keep: usize,
    total: u64,
    hash: u64,
}

impl Capture {
    fn new(keep: usize) -> Self {
        Self {
            prefix: Vec::new(),
            keep,
            total: 0,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self.keep.saturating_sub(self.prefix.len()).min(buf.len());
        self.prefix.extend_from_slice(&buf[..room]);
        self.total += buf.len() as u64;
        assert!(
            buf.len().is_multiple_of(8),
            "a write of {} bytes",
            buf.len()
        );
        for word in buf.chunks_exact(8) {
            let word = u64::from_le_bytes(word.try_into().unwrap());
            self.hash = (self.hash ^ word).wrapping_mul(0x100_0000_01b3);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_written_synthetic_file_holds_the_bytes_the_source_reads() {
    let source = SyntheticModel::new(SyntheticKind::Llama31_8bQ4_0);
    let header = GgufHeader::read(&source).unwrap();
    let data_offset = header.data_offset() as usize;
    let mut written = Capture::new(data_offset);
    let mut calls = 0;
    source
        .write_to(&mut written, |done, total| {
            assert!(done <= total && total == source.len());
            calls += 1;
        })
        .unwrap();
    assert_eq!(calls, header.tensors().len());
    assert_eq!(written.total, source.len());

    // The same bytes through the source: header, then each tensor in file order, zero-padded.
    let mut expected = Capture::new(0);
    let mut at = 0u64;
    let mut tensors: Vec<_> = header.tensors().iter().collect();
    tensors.sort_by_key(|t| t.offset);
    fn pad(to: u64, at: &mut u64, sink: &mut Capture) {
        std::io::Write::write_all(sink, &vec![0; (to - *at) as usize]).unwrap();
        *at = to;
    }
    let mut head = vec![0; data_offset];
    source.read_exact_at(0, &mut head).unwrap();
    std::io::Write::write_all(&mut expected, &head).unwrap();
    at += data_offset as u64;
    for t in tensors {
        pad(t.offset, &mut at, &mut expected);
        let data = header.read_tensor_bytes(&source, &t.name).unwrap();
        std::io::Write::write_all(&mut expected, &data).unwrap();
        at = t.offset + t.n_bytes;
    }
    pad(source.len(), &mut at, &mut expected);
    assert_eq!(expected.total, written.total);
    assert_eq!(expected.hash, written.hash);
    assert_eq!(written.prefix, head);
}

#[test]
fn the_synthetic_vocabulary_builds_a_byte_level_tokenizer() {
    let source = SyntheticModel::new(SyntheticKind::Llama31_8bQ4KM);
    let header = GgufHeader::read(&source).unwrap();
    let tokenizer = Tokenizer::from_gguf(&header, &source).unwrap();
    assert_eq!(tokenizer.vocab_size(), 128_256);
    assert_eq!(tokenizer.bos_id(), Some(128_000));
    // No merges: text is one token per byte, the token id being the byte ("\n" is GPT-2's Ċ).
    let ids = tokenizer
        .encode("Hi\né<|eot_id|>", SpecialTokens::Parse)
        .unwrap();
    assert_eq!(ids, [72, 105, 10, 0xc3, 0xa9, 128_009]);
    assert_eq!(tokenizer.id_to_token(10).as_deref(), Some("Ċ"));
    assert_eq!(tokenizer.decode(&ids, true).unwrap(), "Hi\né");
}
