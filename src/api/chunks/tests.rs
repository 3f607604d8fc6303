//! The OpenAI objects of local answers: content, tool calls (and `parallel_tool_calls`), ends.

use super::*;
use crate::engine::Usage;

fn answer() -> LocalAnswer {
    LocalAnswer::new(ResponseIds::new("m", 7, 0xab))
}

fn completion(finish_reason: FinishReason) -> Completion {
    Completion {
        ids: vec![1, 2, 3],
        text: "Hi there".into(),
        finish_reason,
        usage: Usage {
            prompt_tokens: 5,
            completion_tokens: 3,
            total_tokens: 8,
        },
        cached_tokens: 2,
    }
}

fn delta(text: &str) -> Delta {
    Delta {
        id: Some(1),
        text: text.into(),
        ..Delta::default()
    }
}

#[test]
fn deltas_become_content_chunks_and_empty_ones_none() {
    let mut a = answer();
    assert_eq!(a.role_chunk()["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(a.step(&delta("")), Vec::<Value>::new());
    let chunks = a.step(&delta("Hi"));
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert_eq!(chunks[0]["id"], "chatcmpl-local-00000000000000ab");
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "Hi");
}

#[test]
fn the_end_carries_the_finish_reason_and_usage_and_cancelled_has_none() {
    for (reason, name) in [
        (FinishReason::Stop, "stop"),
        (FinishReason::Length, "length"),
    ] {
        let mut a = answer();
        a.step(&delta("Hi "));
        a.step(&delta("there"));
        let end = a.end(&completion(reason)).unwrap();
        assert_eq!(end.chunks.len(), 2);
        assert_eq!(end.chunks[0]["choices"][0]["finish_reason"], name);
        assert_eq!(end.chunks[1]["choices"], json!([]));
        assert_eq!(end.chunks[1]["usage"]["total_tokens"], 8);
        assert_eq!(
            end.chunks[1]["usage"]["prompt_tokens_details"]["cached_tokens"],
            2
        );
        assert_eq!(end.completion["object"], "chat.completion");
        let message = &end.completion["choices"][0]["message"];
        assert_eq!(
            message,
            &json!({"role": "assistant", "content": "Hi there"})
        );
        assert_eq!(end.completion["choices"][0]["finish_reason"], name);
    }
    assert_eq!(answer().end(&completion(FinishReason::Cancelled)), None);
}

#[test]
fn a_call_streams_as_tool_call_deltas_and_ends_with_tool_calls() {
    let parser = ToolCallParser::new(vec!["get_weather".into()], None, true);
    let mut a = LocalAnswer::with_tool_calls(ResponseIds::new("m", 7, 0xab), parser);
    let mut chunks = Vec::new();
    for piece in [
        r#"{"name": "get_weather", "param"#,
        r#"eters": {"city""#,
        r#": "Paris"}}"#,
    ] {
        chunks.extend(a.step(&delta(piece)));
    }
    let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
    assert_eq!(
        deltas[0],
        &json!({"tool_calls": [{"index": 0, "id": "call_00000000000000ab_0", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}]})
    );
    let arguments: String = deltas[1..]
        .iter()
        .map(|d| {
            d["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(arguments, r#"{"city": "Paris"}"#);
    assert!(deltas[1..].iter().all(|d| d["tool_calls"][0]["index"] == 0));
    let end = a.end(&completion(FinishReason::Stop)).unwrap();
    assert_eq!(end.chunks[0]["choices"][0]["finish_reason"], "tool_calls");
    let choice = &end.completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    assert_eq!(
        choice["message"]["tool_calls"][0]["function"],
        json!({"name": "get_weather", "arguments": r#"{"city": "Paris"}"#})
    );
}

#[test]
fn a_call_given_whole_comes_at_the_end_and_prose_stays_content() {
    let parser = || ToolCallParser::new(vec!["f".into()], None, false);
    let mut a = LocalAnswer::with_tool_calls(ResponseIds::new("m", 7, 1), parser());
    assert!(
        a.step(&delta(r#"{"name": "f", "parameters": {}"#))
            .is_empty()
    );
    let end = a.end(&completion(FinishReason::Length)).unwrap();
    // Cut short: the held text is content, the reason "length".
    assert_eq!(
        end.chunks[0]["choices"][0]["delta"]["content"],
        r#"{"name": "f", "parameters": {}"#
    );
    assert_eq!(end.completion["choices"][0]["finish_reason"], "length");
    assert!(
        end.completion["choices"][0]["message"]
            .get("tool_calls")
            .is_none()
    );
    let mut b = LocalAnswer::with_tool_calls(ResponseIds::new("m", 7, 1), parser());
    let chunks = b.step(&delta("Sunny, 22 degrees."));
    assert_eq!(
        chunks[0]["choices"][0]["delta"]["content"],
        "Sunny, 22 degrees."
    );
    let end = b.end(&completion(FinishReason::Stop)).unwrap();
    assert_eq!(end.completion["choices"][0]["finish_reason"], "stop");
}

#[test]
fn parallel_tool_calls_false_keeps_the_first_call() {
    let tools = json!([
        {"type": "function", "function": {"name": "f"}},
        {"type": "function", "function": {"name": "g"}},
    ]);
    let text = r#"{"name": "f", "parameters": {}}; {"name": "g", "parameters": {"x": 1}}"#;
    let calls = |parallel: bool| {
        let params = ChatParams::from_json(json!({
            "messages": [{"role": "user", "content": "hi"}], "tools": tools,
            "parallel_tool_calls": parallel,
        }))
        .unwrap();
        let mut a = LocalAnswer::for_request(ResponseIds::new("m", 7, 1), &params, None);
        a.step(&delta(text));
        let end = a.end(&completion(FinishReason::Stop)).unwrap();
        let message = &end.completion["choices"][0]["message"];
        let names: Vec<String> = message["tool_calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["function"]["name"].as_str().unwrap().to_string())
            .collect();
        names
    };
    assert_eq!(calls(true), ["f", "g"]);
    assert_eq!(calls(false), ["f"]);
}
