//! What follows `<|python_tag|>` in a Llama 3.1 answer: JSON calls, a built-in tool's
//! `name.call(key=value, …)` with Python literals, or code for the interpreter.

use serde_json::{Map, Value};

/// The calls after `<|python_tag|>`: JSON calls, or one built-in `tool.call(key=value, …)`.
pub(super) fn python_tag_calls(text: &str) -> Option<Vec<(String, Value)>> {
    let text = text.trim();
    if text.starts_with('{') {
        let mut calls = Vec::new();
        for part in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            let call = part.ok()?;
            let name = call.get("name")?.as_str()?.to_string();
            let arguments = call.get("parameters").or(call.get("arguments"))?;
            calls.push((name, arguments.clone()));
        }
        return Some(calls);
    }
    let (name, rest) = text.split_once(".call(")?;
    let valid_name = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    let arguments = rest.strip_suffix(')')?;
    valid_name.then(|| Some(vec![(name.to_string(), keyword_arguments(arguments)?)]))?
}

/// `key="value", n=3, flag=True` (Python literals) as a JSON object.
fn keyword_arguments(text: &str) -> Option<Value> {
    let mut object = Map::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim();
        let is_name = !key.is_empty() && key.chars().all(|c| c.is_alphanumeric() || c == '_');
        is_name.then_some(())?;
        let (value, after) = python_literal(after.trim_start())?;
        object.insert(key.to_string(), value);
        let after = after.trim_start();
        rest = match after.strip_prefix(',') {
            Some(next) => next.trim_start(),
            None if after.is_empty() => after,
            None => return None,
        };
    }
    Some(Value::Object(object))
}

/// A Python string, number, `True`/`False`/`None` at the start of `text`, and what follows.
fn python_literal(text: &str) -> Option<(Value, &str)> {
    if let Some(quote) = text.chars().next().filter(|&q| q == '"' || q == '\'') {
        let mut value = String::new();
        let mut chars = text.char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.push(match chars.next()?.1 {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    other => other,
                }),
                c if c == quote => return Some((Value::String(value), &text[i + 1..])),
                c => value.push(c),
            }
        }
        return None;
    }
    let end = text.find(',').unwrap_or(text.len());
    let value = match text[..end].trim() {
        "True" => Value::Bool(true),
        "False" => Value::Bool(false),
        "None" => Value::Null,
        number => Value::Number(serde_json::from_str(number).ok()?),
    };
    Some((value, &text[end..]))
}

/// Code for the interpreter, as the `python` tool's arguments.
pub(super) fn code_arguments(code: &str) -> Value {
    serde_json::json!({ "code": code.trim() })
}
