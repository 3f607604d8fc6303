//! Llama hyper-parameters from GGUF metadata, and the typed errors for files we cannot run.
#![cfg(not(target_arch = "wasm32"))]

use llama_web::gguf::{GgufHeader, MemorySource};
use llama_web::model::config::{ConfigError, LlamaConfig};

fn tiny_bytes() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tiny_llama31/tiny-llama31-F32.gguf"
    ))
    .unwrap()
}

/// The offset of the value of metadata key `key` (after its type id).
fn value_offset(bytes: &[u8], key: &str) -> usize {
    let mut needle = (key.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(key.as_bytes());
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("key present");
    at + needle.len() + 4
}

fn config_of(bytes: Vec<u8>) -> Result<LlamaConfig, ConfigError> {
    let h = GgufHeader::read(&MemorySource::new(bytes)).map_err(ConfigError::from)?;
    LlamaConfig::from_gguf(&h)
}

#[test]
fn tiny_llama31_config_matches_its_hf_config() {
    // shared/fixtures/tiny_llama31/hf/config.json: hidden 64, intermediate 192, 2 layers,
    // 4 heads, 2 KV heads, rope_theta 500000, rms 1e-5, vocab 512, untied head, llama3 rope.
    let c = config_of(tiny_bytes()).unwrap();
    assert_eq!(
        (
            c.n_layers,
            c.hidden_size,
            c.ffn_size,
            c.n_heads,
            c.n_kv_heads,
            c.head_dim,
            c.vocab_size
        ),
        (2, 64, 192, 4, 2, 16, 512)
    );
    assert_eq!(c.rope_theta, 500000.0);
    assert!((c.rms_eps - 1e-5).abs() < 1e-12);
    assert!(c.rope_freqs && !c.tied_embeddings);
    assert_eq!(c.expected_tensors().len(), 4 + 2 * 9);
}

#[test]
fn another_architecture_is_unsupported() {
    let mut bytes = tiny_bytes();
    let at = value_offset(&bytes, "general.architecture");
    assert_eq!(&bytes[at + 8..at + 13], b"llama");
    bytes[at + 8..at + 13].copy_from_slice(b"gemma");
    match config_of(bytes) {
        Err(ConfigError::UnsupportedArchitecture { architecture }) => {
            assert_eq!(architecture, "gemma")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hyper_parameters_that_contradict_the_tensors_are_rejected() {
    for (key, value) in [
        ("llama.embedding_length", 32u32),
        ("llama.feed_forward_length", 100),
        ("llama.attention.head_count_kv", 3),
        ("llama.attention.head_count", 0),
        ("llama.block_count", 3),
        // Found by the fuzzer: listing the tensors of 4 billion blocks took minutes.
        ("llama.block_count", u32::MAX),
    ] {
        let mut bytes = tiny_bytes();
        let at = value_offset(&bytes, key);
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        assert!(
            matches!(
                config_of(bytes),
                Err(ConfigError::Inconsistent { .. } | ConfigError::Gguf(_))
            ),
            "{key} = {value} accepted"
        );
    }
}
