//! Tokenizers against the fixtures: the Llama 3.1 tokenizer.json (HF and llama.cpp vectors),
//! tokenizers built from GGUF metadata (tiny Llama 3.1 vs its own tokenizer.json; SmolLM2 vs
//! HF), special-token handling, and the streaming detokenizer.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{
    fixture, gguf_tokenizer, ids, json_fixture as json, llama31_tokenizer as llama31, smollm2_path,
};
use llama_web::gguf::{GgufHeader, MemorySource};
use llama_web::tokenizer::{SpecialTokens, StreamDecoder, Tokenizer, TokenizerError};

#[test]
fn llama31_hf_cases() {
    let t = llama31();
    let cases = json("tokenizer/llama31_tokenizer_cases.json");
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 21);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected = ids(&case["ids"]);
        assert_eq!(
            t.encode(text, SpecialTokens::Parse).unwrap(),
            expected,
            "encode {text:?}"
        );
        assert_eq!(t.decode(&expected, false).unwrap(), text, "decode {text:?}");
    }
    assert_eq!(t.vocab_size(), 128256);
}

#[test]
fn llama31_llamacpp_vectors() {
    let t = llama31();
    let vectors = json("tokenizer/llamacpp_llama_bpe_vectors.json");
    let cases = vectors["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 46);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            t.encode(text, SpecialTokens::Parse).unwrap(),
            ids(&case["ids"]),
            "encode {text:?}"
        );
    }
}

#[test]
fn special_token_text_is_parsed_or_kept_as_text() {
    let t = llama31();
    assert_eq!(
        t.encode("<|eot_id|>", SpecialTokens::Parse).unwrap(),
        vec![128009]
    );
    let as_text = t.encode("<|eot_id|>", SpecialTokens::AsText).unwrap();
    assert!(
        as_text.len() > 1 && !as_text.contains(&128009),
        "{as_text:?}"
    );
    assert_eq!(t.decode(&as_text, false).unwrap(), "<|eot_id|>");
    assert_eq!(t.decode(&[128000, 9906], true).unwrap(), "Hello");
}

#[test]
fn tiny_gguf_tokenizer_equals_its_tokenizer_json() {
    let from_gguf = gguf_tokenizer(fixture("tiny_llama31/tiny-llama31-F32.gguf"));
    let from_json =
        Tokenizer::from_json(&std::fs::read(fixture("tiny_llama31/hf/tokenizer.json")).unwrap())
            .unwrap();
    assert_eq!(from_gguf.vocab_size(), 512);
    assert_eq!(
        (from_gguf.bos_id(), from_gguf.eos_id(), from_gguf.add_bos()),
        (Some(504), Some(509), true)
    );
    let texts = [
        "Licensed under the Apache License, Version 2.0 (the \"License\");",
        "  you may not use this file except in compliance with the License.\n\n\tSee 12345 and 3.14159!",
        "Ünïcödé: 你好, 🦙 llamas — don't, we'll, I'M",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
        "",
        "   \n\n\n  x",
    ];
    for text in texts {
        let a = from_gguf.encode(text, SpecialTokens::Parse).unwrap();
        assert_eq!(
            a,
            from_json.encode(text, SpecialTokens::Parse).unwrap(),
            "{text:?}"
        );
        assert_eq!(from_gguf.decode(&a, false).unwrap(), text);
    }
}

#[test]
fn smollm2_gguf_tokenizer_matches_hf_prompt_ids() {
    let t = gguf_tokenizer(smollm2_path());
    let reference = json("smollm2/hf_reference.json");
    let expected = ids(&reference["prompt_ids"]);
    assert_eq!(expected.len(), 37);
    let prompt = reference["prompt"].as_str().unwrap();
    assert_eq!(t.encode(prompt, SpecialTokens::Parse).unwrap(), expected);
    assert_eq!(
        (t.bos_id(), t.eos_id(), t.add_bos()),
        (Some(1), Some(2), false)
    );
    // The greedy continuation decodes to HF's text.
    let greedy = ids(&reference["greedy_ids"]);
    assert_eq!(
        t.decode(&greedy, false).unwrap(),
        reference["greedy_text"].as_str().unwrap()
    );
}

#[test]
fn unsupported_pre_tokenizer_is_a_typed_error() {
    let mut bytes = std::fs::read(fixture("tiny_llama31/tiny-llama31-Q4_0.gguf")).unwrap();
    let at = bytes.windows(9).position(|w| w == b"llama-bpe").unwrap();
    bytes[at..at + 9].copy_from_slice(b"falcon-xx");
    let source = MemorySource::new(bytes);
    let header = GgufHeader::read(&source).unwrap();
    match Tokenizer::from_gguf(&header, &source) {
        Err(TokenizerError::UnsupportedPreTokenizer { pre }) => assert_eq!(pre, "falcon-xx"),
        other => panic!("{other:?}"),
    }
}

/// Streams `ids` one at a time; returns the deltas.
fn stream(t: &Tokenizer, ids: &[u32]) -> Vec<String> {
    let mut decoder = StreamDecoder::new(false);
    let mut deltas: Vec<String> = ids
        .iter()
        .filter_map(|&id| decoder.step(t, id).unwrap())
        .collect();
    deltas.extend(decoder.finish(t).unwrap());
    deltas
}

#[test]
fn streaming_never_splits_a_character() {
    // The tiny vocabulary knows no CJK or emoji: each such character is several byte tokens.
    let t = gguf_tokenizer(fixture("tiny_llama31/tiny-llama31-F32.gguf"));
    let text = "héllo 你好 🦙🦙 — naïve café";
    let ids = t.encode(text, SpecialTokens::Parse).unwrap();
    assert!(ids.len() > text.chars().count() / 2);
    let deltas = stream(&t, &ids);
    assert!(deltas.iter().all(|d| !d.contains('\u{FFFD}')), "{deltas:?}");
    assert_eq!(deltas.concat(), text);
    // The llama held back until its fourth byte arrived: some step yielded nothing.
    assert!(
        deltas.len() < ids.len(),
        "{} deltas for {} ids",
        deltas.len(),
        ids.len()
    );

    let t = llama31();
    let text = "Cửa Việt 🦙 ½ 日本語";
    let ids = t.encode(text, SpecialTokens::Parse).unwrap();
    assert_eq!(stream(&t, &ids).concat(), text);
}

#[test]
fn a_stream_cut_mid_character_ends_in_a_replacement_character() {
    let t = gguf_tokenizer(fixture("tiny_llama31/tiny-llama31-F32.gguf"));
    let ids = t.encode("ab🦙", SpecialTokens::Parse).unwrap();
    let deltas = stream(&t, &ids[..ids.len() - 1]);
    assert_eq!(deltas.concat(), "ab\u{FFFD}");
}

#[test]
fn token_bytes_spell_the_text_and_special_tokens_their_names() {
    let t = llama31();
    let text = "Grüße 🦙, ∑ x\n\tdone";
    let ids = t.encode(text, SpecialTokens::AsText).unwrap();
    let bytes: Vec<u8> = ids.iter().flat_map(|&id| t.token_bytes(id)).collect();
    assert_eq!(bytes, text.as_bytes());
    // A character split across tokens: each token holds part of its bytes.
    assert!(
        ids.iter()
            .any(|&id| std::str::from_utf8(&t.token_bytes(id)).is_err())
    );
    let eot = t.token_to_id("<|eot_id|>").unwrap();
    assert_eq!(t.token_bytes(eot), b"<|eot_id|>");
    assert_eq!(t.token_bytes(u32::MAX), Vec::<u8>::new());
}
