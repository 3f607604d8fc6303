//! Chat templates rendered like HF transformers' apply_chat_template, byte for byte: the nine
//! Llama 3.1 conversations of the fixtures (rendered and tokenized), OpenAI-shaped tool turns
//! (`scripts/fixtures/llama31_tool_turns.py`), SmolLM2's own template
//! from its GGUF, and the tiny model's GGUF template.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{fixture, ids, json_fixture as json_file, llama31_tokenizer, open_gguf, smollm2_path};
use llama_web::engine::tools::messages_for_template;
use llama_web::gguf::GgufHeader;
use llama_web::tokenizer::{ChatTemplate, RenderOptions, SpecialTokens, TemplateError, Tokenizer};
use serde_json::{Value, json};

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
        assert_eq!(
            tokenizer.encode(&prompt, SpecialTokens::Parse).unwrap(),
            ids(&case["ids"]),
            "{name}"
        );
    }
}

#[test]
fn openai_shaped_tool_turns_render_like_hf() {
    // OpenAI clients send tool calls back with `arguments` as JSON text; transformers renders
    // the documented dict shape. The engine gives the template the dict: same bytes as HF.
    let template = ChatTemplate::from_tokenizer_config(
        &std::fs::read(fixture("tokenizer/llama31/tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    let tokenizer = llama31_tokenizer();
    let cases = json_file("tokenizer/llama31_tool_turn_cases.json");
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let expected = case["prompt"].as_str().unwrap();
        let options = options(&case["kwargs"]);
        let openai = &case["openai_messages"];
        assert_eq!(messages_for_template(openai), case["hf_messages"], "{name}");
        let prompt = template
            .render(&messages_for_template(openai), &options)
            .unwrap();
        assert_eq!(prompt, expected, "{name}");
        assert_eq!(
            tokenizer.encode(&prompt, SpecialTokens::Parse).unwrap(),
            ids(&case["ids"]),
            "{name}"
        );
        // Given as text, the arguments would be printed as a quoted string (or refused).
        let raw = template.render(openai, &options).ok();
        assert_ne!(raw.as_deref(), Some(expected), "{name}");
    }
}

#[test]
fn smollm2_renders_its_own_gguf_template() {
    let source = open_gguf(smollm2_path());
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
    assert_eq!(
        tokenizer.encode(&prompt, SpecialTokens::Parse).unwrap(),
        ids(&reference["prompt_ids"])
    );
}

#[test]
fn tiny_gguf_template_is_llama31s() {
    let source = open_gguf(fixture("tiny_llama31/tiny-llama31-Q8_0.gguf"));
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
        Err(TemplateError::Syntax(_))
    ));
}
