//! The GGUF reader on real files (the tiny Llama 3.1 fixtures, SmolLM2 from PyPI) here, and on
//! hostile ones built in memory in `hostile`: every malformation is a typed error, never a panic.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;

use llama_web::gguf::{
    ByteSource, CountingSource, FileSource, GgmlType, GgufHeader, MetadataValue,
};

#[path = "../common/mod.rs"]
mod common;
mod hostile;

use common::{open_gguf, repo_path, smollm2_path};

fn smollm2() -> FileSource {
    open_gguf(smollm2_path())
}

fn type_counts(h: &GgufHeader) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for t in h.tensors() {
        *counts.entry(t.ggml_type.to_string()).or_default() += 1;
    }
    counts
}

// ------------------------------------------------------------------ real files

#[test]
fn smollm2_header_matches_gguf_py() {
    let source = smollm2();
    let h = GgufHeader::read(&source).unwrap();
    // Figures from shared/fixtures/smollm2/gguf_inspect.json (gguf-py 0.19.0).
    assert_eq!(h.version(), 3);
    assert_eq!(h.alignment(), 32);
    assert_eq!(h.tensors().len(), 272);
    assert_eq!(h.require_str("general.architecture").unwrap(), "llama");
    assert_eq!(h.require_u64("llama.block_count").unwrap(), 30);
    assert_eq!(h.require_u64("llama.embedding_length").unwrap(), 576);
    assert_eq!(h.require_u64("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(h.require_f64("llama.rope.freq_base").unwrap(), 100000.0);
    let expected: BTreeMap<String, usize> = [("F32", 61), ("Q4_1", 210), ("Q8_0", 1)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(type_counts(&h), expected);
    let embd = h.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.dims, vec![576, 49152]);
    assert_eq!((embd.offset, embd.n_bytes), (1_785_664, 30_081_024));
    let down = h.tensor("blk.0.ffn_down.weight").unwrap();
    assert_eq!(
        (down.ggml_type, down.offset, down.n_bytes),
        (GgmlType::Q4_1, 31_868_992, 552_960)
    );
    assert!(
        h.tensor("output.weight").is_none(),
        "SmolLM2 has tied embeddings"
    );
    let last = h
        .tensors()
        .iter()
        .map(|t| t.offset + t.n_bytes)
        .max()
        .unwrap();
    assert_eq!(last, source.len());
}

#[test]
fn smollm2_header_touches_under_one_percent() {
    let source = CountingSource::new(smollm2());
    let h = GgufHeader::read(&source).unwrap();
    assert_eq!(h.tensors().len(), 272);
    let fraction = source.bytes_read() as f64 / source.len() as f64;
    assert!(
        fraction < 0.01,
        "read {} of {} bytes ({:.2} %)",
        source.bytes_read(),
        source.len(),
        fraction * 100.0
    );
    assert!(source.bytes_read() < h.data_offset(), "read tensor data");
}

#[test]
fn smollm2_vocabulary_is_read_on_demand() {
    let source = smollm2();
    let h = GgufHeader::read(&source).unwrap();
    assert!(matches!(
        h.get("tokenizer.ggml.tokens"),
        Some(MetadataValue::LazyArray { count: 49152, .. })
    ));
    let tokens = h.read_array(&source, "tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 49152);
    let first: Vec<&str> = tokens[..3].iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(first, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]);
    let merges = h.read_array(&source, "tokenizer.ggml.merges").unwrap();
    assert_eq!(merges.len(), 48900);
    assert_eq!(merges[0].as_str(), Some("Ġ t"));
    let types = h.read_array(&source, "tokenizer.ggml.token_type").unwrap();
    assert_eq!(types[0], MetadataValue::I32(3));
    let languages = h.read_array(&source, "general.languages").unwrap();
    assert_eq!(languages, vec![MetadataValue::String("en".into())]);
}

#[test]
fn tiny_llama31_files_read() {
    for (file, matrix_type) in [
        ("F32", GgmlType::F32),
        ("Q8_0", GgmlType::Q8_0),
        ("Q4_0", GgmlType::Q4_0),
    ] {
        let source = FileSource::open(repo_path(&format!(
            "tests/fixtures/tiny_llama31/tiny-llama31-{file}.gguf"
        )))
        .unwrap();
        let h = GgufHeader::read(&source).unwrap();
        assert_eq!(h.require_u64("llama.block_count").unwrap(), 2, "{file}");
        assert_eq!(
            h.require_u64("llama.embedding_length").unwrap(),
            64,
            "{file}"
        );
        let q = h.tensor("blk.0.attn_q.weight").unwrap();
        assert_eq!(
            (q.dims.clone(), q.ggml_type),
            (vec![64, 64], matrix_type),
            "{file}"
        );
        let rope = h.tensor("rope_freqs.weight").unwrap();
        assert_eq!(
            (rope.dims.clone(), rope.ggml_type),
            (vec![8], GgmlType::F32),
            "{file}"
        );
        assert!(h.tensor("output.weight").is_some(), "{file}: untied head");
        let bytes = h.read_tensor_bytes(&source, "rope_freqs.weight").unwrap();
        let first = f32::from_le_bytes(bytes[..4].try_into().unwrap());
        assert_eq!(first, 1.0, "{file}: rope_freqs starts at factor 1");
    }
}
