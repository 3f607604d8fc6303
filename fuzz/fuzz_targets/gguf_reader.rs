//! Fuzzes the GGUF reader with arbitrary bytes: the header, every lazily located array, the
//! Llama config built from the metadata, and the dequantization of every tensor. (Building the
//! tokenizer compiles its split regex on every run, which would cut the rate tenfold; the
//! tokenizer's own error paths are covered by tests/tokenizer.rs.)
//! Any input may be rejected with a typed error; none may panic, hang or allocate without
//! bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llama_web::gguf::{GgufHeader, MemorySource, MetadataValue, dequant};
use llama_web::model::config::LlamaConfig;

/// Tensors larger than this are not dequantized (the reader has already bounded them by the
/// input's length; this only keeps each execution fast).
const MAX_DEQUANT_ELEMENTS: u64 = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let source = MemorySource::new(data.to_vec());
    let Ok(header) = GgufHeader::read(&source) else {
        return;
    };
    for (key, value) in header.metadata() {
        if matches!(value, MetadataValue::LazyArray { .. }) {
            let _ = header.read_array(&source, key);
        }
    }
    let _ = LlamaConfig::from_gguf(&header);
    for info in header.tensors() {
        if info.n_elements > MAX_DEQUANT_ELEMENTS {
            continue;
        }
        if let Ok(bytes) = header.read_tensor_bytes(&source, &info.name) {
            let mut out = vec![0f32; info.n_elements as usize];
            dequant::dequantize_into(info.ggml_type, &bytes, &mut out)
                .expect("a tensor the reader accepted must dequantize");
        }
    }
});
