//! Chat templates rendered like HF transformers' apply_chat_template, byte for byte: the nine
//! Llama 3.1 conversations of the fixtures (rendered and tokenized), SmolLM2's own template
//! from its GGUF, and the tiny model's GGUF template.
#![cfg(not(target_arch = "wasm32"))]

use std::io::Read;
use std::path::PathBuf;

use llama_web::gguf::{FileSource, GgufHeader};
use llama_web::tokenizer::{ChatTemplate, RenderOptions, SpecialTokens, TemplateError, Tokenizer};
use serde_json::{Value, json};

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn json_file(rel: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(rel)).unwrap()).unwrap()
}

fn options(kwargs: &Value) -> RenderOptions {
    let mut extra = kwargs.as_object().cloned().unwrap_or_default();
    let add_generation_prompt = extra
        .remove("add_generation_prompt")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let tools = extra.remove("tools");
    RenderOptions {
        add_generation_prompt,
        tools,
        extra,
    }
}

fn llama31_tokenizer() -> Tokenizer {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(fixture("tokenizer/llama31/tokenizer.json.gz")).unwrap(),
    )
    .read_to_end(&mut bytes)
    .unwrap();
    Tokenizer::from_json(&bytes).unwrap()
}

#[test]
fn llama31_conversations_render_and_tokenize_like_hf() {
    let template = ChatTemplate::from_tokenizer_config(
        &std::fs::read(fixture("tokenizer/llama31/tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    let jinja = std::fs::read_to_string(fixture(
        "tokenizer/llama31/meta-llama-Llama-3.1-8B-Instruct.jinja",
    ))
    .unwrap();
    assert_eq!(template.source(), jinja);
    let tokenizer = llama31_tokenizer();
    let cases = json_file("tokenizer/llama31_chat_template_cases.json");
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 9);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let prompt = template
            .render(&case["messages"], &options(&case["kwargs"]))
            .unwrap();
        let expected = case["prompt"].as_str().unwrap();
        assert_eq!(prompt, expected, "{name}");
        let ids: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            tokenizer.encode(&prompt, SpecialTokens::Parse).unwrap(),
            ids,
            "{name}"
        );
    }
}

#[test]
fn smollm2_renders_its_own_gguf_template() {
    let source = FileSource::open(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    )
    .expect("run `scripts/dev.sh setup`");
    let header = GgufHeader::read(&source).unwrap();
    let tokenizer = Tokenizer::from_gguf(&header, &source).unwrap();
    let template = ChatTemplate::from_gguf(&header, &tokenizer).unwrap();
    let messages = json!([{"role": "user", "content": "What is the capital of France?"}]);
    let prompt = template
        .render(
            &messages,
            &RenderOptions {
                add_generation_prompt: true,
                ..Default::default()
            },
        )
        .unwrap();
    let reference = json_file("smollm2/hf_reference.json");
    assert_eq!(prompt, reference["prompt"].as_str().unwrap());
    let ids = tokenizer.encode(&prompt, SpecialTokens::Parse).unwrap();
    let expected: Vec<u32> = reference["prompt_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(ids, expected);
}

#[test]
fn tiny_gguf_template_is_llama31s() {
    let source = FileSource::open(fixture("tiny_llama31/tiny-llama31-Q8_0.gguf")).unwrap();
    let header = GgufHeader::read(&source).unwrap();
    let tokenizer = Tokenizer::from_gguf(&header, &source).unwrap();
    let template = ChatTemplate::from_gguf(&header, &tokenizer).unwrap();
    let cases = json_file("tokenizer/llama31_chat_template_cases.json");
    let case = &cases["cases"][1];
    assert_eq!(
        template
            .render(&case["messages"], &options(&case["kwargs"]))
            .unwrap(),
        case["prompt"].as_str().unwrap()
    );
}

#[test]
fn template_errors_are_typed() {
    let template = ChatTemplate::from_tokenizer_config(
        &std::fs::read(fixture("tokenizer/llama31/tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    // Two tool calls in one message: the template raises.
    let messages = json!([{"role": "assistant", "tool_calls": [
        {"function": {"name": "a", "arguments": {}}}, {"function": {"name": "b", "arguments": {}}}]}]);
    match template.render(&messages, &RenderOptions::default()) {
        Err(TemplateError::Render(msg)) => assert!(msg.contains("single tool-calls"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        ChatTemplate::from_tokenizer_config(b"{}"),
        Err(TemplateError::Missing)
    ));
    assert!(matches!(
        ChatTemplate::from_tokenizer_config(b"not json"),
        Err(TemplateError::BadConfig { .. })
    ));
    let broken = ChatTemplate::new("{% for %}", "", "");
    assert!(matches!(
        broken.render(&json!([]), &RenderOptions::default()),
        Err(TemplateError::Render(_))
    ));
}
