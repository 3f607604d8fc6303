//! Tool calls, structured output and logprobs on a real model, through the same loop the
//! browser runs (`api::answer`): the tiny random model's free output is noise, so every valid
//! call and every schema-valid object below is the grammar's doing (a control test shows the
//! noise).

mod common;

use common::*;
use llama_web::api::answer::answer;
use llama_web::api::chunks::ResponseIds;
use llama_web::api::{ChatParams, ErrorCode};
use llama_web::engine::Engine;
use llama_web::model::device::DeviceChoice;
use pollster::block_on;
use serde_json::{Value, json};

fn tiny() -> Engine {
    load_engine(
        fixture("tiny_llama31/tiny-llama31-F32.gguf"),
        DeviceChoice::Cpu,
        Some(2048),
    )
}

/// The parameters of the function and the schema of the structured answer: every field
/// bounded, so that a noisy model's output ends within `max_tokens`.
fn forecast_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 12},
            "days": {"type": "integer", "minimum": 1, "maximum": 14},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "alerts": {"type": "boolean"}
        },
        "required": ["city", "days", "unit", "alerts"],
        "additionalProperties": false
    })
}

/// Checks `value` against [`forecast_schema`], field by field.
fn validate_forecast(value: &Value) -> Result<(), String> {
    let object = value.as_object().ok_or("not an object")?;
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    if keys != ["alerts", "city", "days", "unit"] {
        return Err(format!("keys {keys:?}"));
    }
    let city = object["city"].as_str().ok_or("city is not a string")?;
    if city.chars().count() > 12 {
        return Err(format!("city {city:?} is too long"));
    }
    match object["days"].as_i64() {
        Some(1..=14) => {}
        _ => return Err(format!("days {}", object["days"])),
    }
    match object["unit"].as_str() {
        Some("celsius" | "fahrenheit") => {}
        _ => return Err(format!("unit {}", object["unit"])),
    }
    object["alerts"]
        .as_bool()
        .ok_or("alerts is not a boolean")?;
    Ok(())
}

fn request(seed: u64, extra: Value) -> ChatParams {
    let mut request = json!({
        "messages": [{"role": "user", "content": "What will the weather be in Paris this week?"}],
        "temperature": 1.0,
        "seed": seed,
        "max_tokens": 160,
    });
    request
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    ChatParams::from_json(request).unwrap()
}

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_forecast", "parameters": forecast_schema()}},
        {"type": "function", "function": {"name": "get_time", "parameters": {
            "type": "object", "properties": {"zone": {"enum": ["UTC", "CET"]}},
            "required": ["zone"], "additionalProperties": false}}},
    ])
}

/// The whole completion and the streamed chunks of one answer.
fn run(engine: &Engine, params: &ChatParams) -> (Value, Vec<Value>) {
    let mut chunks = Vec::new();
    let ids = ResponseIds::new("tiny", 0, 1);
    let completion = block_on(answer(
        engine,
        params,
        ids,
        &mut |c| chunks.push(c),
        &|| false,
    ));
    (completion.unwrap(), chunks)
}

#[test]
fn a_required_call_is_valid_for_every_seed() {
    let engine = tiny();
    for seed in 0..20 {
        let params = request(
            seed,
            json!({"tools": tools(), "tool_choice": {"type": "function", "function": {"name": "get_forecast"}}}),
        );
        let (completion, chunks) = run(&engine, &params);
        let choice = &completion["choices"][0];
        assert_eq!(
            choice["finish_reason"], "tool_calls",
            "seed {seed}: {completion}"
        );
        let calls = choice["message"]["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 1, "seed {seed}");
        assert_eq!(calls[0]["function"]["name"], "get_forecast");
        let text = calls[0]["function"]["arguments"].as_str().unwrap();
        let arguments: Value = serde_json::from_str(text).unwrap();
        validate_forecast(&arguments).unwrap_or_else(|e| panic!("seed {seed}: {e}: {text}"));
        // Streamed: the name first, then the arguments in pieces that add up to the same text.
        let deltas: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
            .collect();
        assert_eq!(deltas[0]["function"]["name"], "get_forecast");
        assert!(deltas.len() > 2, "seed {seed}: arguments in pieces");
        let streamed: String = deltas
            .iter()
            .map(|d| d["function"]["arguments"].as_str().unwrap())
            .collect();
        assert_eq!(streamed, text);
    }
}

#[test]
fn required_lets_the_model_choose_among_the_tools() {
    let engine = tiny();
    let mut names = std::collections::BTreeSet::new();
    for seed in 0..20 {
        let params = request(seed, json!({"tools": tools(), "tool_choice": "required"}));
        let (completion, _) = run(&engine, &params);
        let call = &completion["choices"][0]["message"]["tool_calls"][0]["function"];
        let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        match call["name"].as_str().unwrap() {
            "get_forecast" => validate_forecast(&arguments).unwrap(),
            "get_time" => assert!(["UTC", "CET"].contains(&arguments["zone"].as_str().unwrap())),
            other => panic!("seed {seed}: called {other}"),
        }
        names.insert(call["name"].as_str().unwrap().to_string());
    }
    assert_eq!(names.len(), 2, "both functions are reachable: {names:?}");
}

#[test]
fn strict_json_schema_output_validates_for_every_seed() {
    let engine = tiny();
    let format = json!({"response_format": {"type": "json_schema",
        "json_schema": {"name": "forecast", "schema": forecast_schema(), "strict": true}}});
    for seed in 0..20 {
        let (completion, _) = run(&engine, &request(seed, format.clone()));
        let choice = &completion["choices"][0];
        assert_eq!(choice["finish_reason"], "stop", "seed {seed}: {completion}");
        let text = choice["message"]["content"].as_str().unwrap();
        let value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        validate_forecast(&value).unwrap_or_else(|e| panic!("seed {seed}: {e}: {text}"));
    }
}

#[test]
fn without_the_grammar_the_same_seeds_give_no_valid_answer() {
    // The control: the constraint, not luck, makes the answers above valid.
    let engine = tiny();
    for seed in 0..5 {
        let params = request(seed, json!({"tools": tools(), "tool_choice": "auto"}));
        let (completion, _) = run(&engine, &params);
        let message = &completion["choices"][0]["message"];
        assert!(
            message.get("tool_calls").is_none(),
            "seed {seed}: {message}"
        );
        let text = message["content"].as_str().unwrap();
        let parsed: Option<Value> = serde_json::from_str(text).ok();
        assert!(
            parsed.is_none_or(|v| validate_forecast(&v).is_err()),
            "{text}"
        );
    }
}

#[test]
fn a_schema_that_does_not_compile_is_a_bad_request() {
    let engine = tiny();
    let format = json!({"response_format": {"type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}},
            "required": ["a"]}}}});
    let ids = ResponseIds::new("tiny", 0, 1);
    let error = block_on(answer(
        &engine,
        &request(0, format),
        ids,
        &mut |_| {},
        &|| false,
    ));
    let error = error.unwrap_err();
    assert_eq!(error.code, ErrorCode::BadRequest, "{error}");
    // And the engine goes on.
    let (completion, _) = run(&engine, &request(1, json!({"max_tokens": 3})));
    assert_eq!(completion["choices"][0]["finish_reason"], "length");
}

#[test]
fn logprobs_report_each_token_and_its_alternatives() {
    let engine = tiny();
    let params = request(
        0,
        json!({"temperature": 0, "max_tokens": 12, "logprobs": true, "top_logprobs": 3}),
    );
    let (completion, chunks) = run(&engine, &params);
    let choice = &completion["choices"][0];
    let entries = choice["logprobs"]["content"].as_array().unwrap();
    let generated = completion["usage"]["completion_tokens"].as_u64().unwrap() as usize;
    let ended_by_token = choice["finish_reason"] == "stop";
    assert_eq!(entries.len() + usize::from(ended_by_token), generated);
    let mut bytes = Vec::new();
    for entry in entries {
        let top = entry["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        let logprob = |v: &Value| v["logprob"].as_f64().unwrap();
        assert!(top.windows(2).all(|w| logprob(&w[0]) >= logprob(&w[1])));
        assert!(logprob(&top[0]) <= 0.0);
        // Greedy: the chosen token is the most likely one.
        assert_eq!(entry["token"], top[0]["token"]);
        assert_eq!(logprob(entry), logprob(&top[0]));
        let token_bytes: Vec<u8> = serde_json::from_value(entry["bytes"].clone()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&token_bytes),
            entry["token"].as_str().unwrap()
        );
        bytes.extend(token_bytes);
    }
    // The tiny model writes random bytes: the text shows them as the stream decoder does.
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        choice["message"]["content"].as_str().unwrap()
    );
    // Streamed, the same entries come on the chunks.
    let streamed: Vec<Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["logprobs"]["content"].as_array())
        .flatten()
        .cloned()
        .collect();
    assert_eq!(&streamed, entries);
    // Probabilities: the top alternatives' mass is at most 1.
    let mass: f64 = entries[0]["top_logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["logprob"].as_f64().unwrap().exp())
        .sum();
    assert!(mass <= 1.0 + 1e-6, "{mass}");
    // Not asked for: none.
    let (plain, _) = run(&engine, &request(0, json!({"max_tokens": 3})));
    assert!(plain["choices"][0].get("logprobs").is_none());
}
