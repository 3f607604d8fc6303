//! Reference dequantizers, bit-exact against gguf-py 0.19.0 (itself bit-identical to ggml):
//! random blocks of every supported type, and every tensor of the tiny Llama 3.1 GGUFs and of
//! SmolLM2. Vectors and hashes: tests/fixtures/dequant/make_vectors.py.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;
use std::path::PathBuf;

mod common;

use common::{fixture, open_gguf, smollm2_path};
use llama_web::gguf::dequant::dequantize;
use llama_web::gguf::{GgmlType, GgufHeader};
use sha2::{Digest, Sha256};

#[test]
fn random_blocks_match_gguf_py_bit_for_bit() {
    for t in GgmlType::ALL {
        let blocks = std::fs::read(fixture(&format!("dequant/blocks/{t}.bin"))).unwrap();
        let expected: Vec<u32> = std::fs::read(fixture(&format!("dequant/blocks/{t}.f32")))
            .unwrap()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let n_blocks = blocks.len() as u64 / t.block_bytes();
        let n = (n_blocks * t.block_elements()) as usize;
        assert_eq!(n, expected.len(), "{t}: fixture sizes");
        let actual = dequantize(t, &blocks, n).unwrap();
        let mismatches: Vec<usize> = (0..n)
            .filter(|&i| actual[i].to_bits() != expected[i])
            .collect();
        assert!(
            mismatches.is_empty(),
            "{t}: {} of {n} values differ, first at {}: {} vs {}",
            mismatches.len(),
            mismatches[0],
            actual[mismatches[0]],
            f32::from_bits(expected[mismatches[0]])
        );
    }
}

fn sha256_of(values: &[f32]) -> String {
    let mut h = Sha256::new();
    for v in values {
        h.update(v.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn check_file(path: PathBuf, expected: &BTreeMap<String, String>) {
    let source = open_gguf(path.clone());
    let header = GgufHeader::read(&source).unwrap();
    assert_eq!(header.tensors().len(), expected.len(), "{}", path.display());
    for t in header.tensors() {
        let bytes = header.read_tensor_bytes(&source, &t.name).unwrap();
        let values = dequantize(t.ggml_type, &bytes, t.n_elements as usize).unwrap();
        assert_eq!(
            &sha256_of(&values),
            &expected[&t.name],
            "{} {} ({})",
            path.display(),
            t.name,
            t.ggml_type
        );
    }
}

#[test]
fn every_tensor_of_the_fixture_models_matches_gguf_py() {
    let hashes: BTreeMap<String, BTreeMap<String, String>> =
        serde_json::from_slice(&std::fs::read(fixture("dequant/tensor_sha256.json")).unwrap())
            .unwrap();
    for name in [
        "tiny-llama31-F32.gguf",
        "tiny-llama31-Q8_0.gguf",
        "tiny-llama31-Q4_0.gguf",
    ] {
        check_file(fixture(&format!("tiny_llama31/{name}")), &hashes[name]);
    }
    check_file(smollm2_path(), &hashes["SmolLM2-135M-Instruct.Q4_1.gguf"]);
}
