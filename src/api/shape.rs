//! The shape an answer must take, as the request asks: `tool_choice` (with the `tools` it
//! names) and `response_format`, checked for both backends; the local backend enforces them by
//! constrained decoding (`ChatParams::grammar`).

use serde_json::Value;

/// `tool_choice`: OpenAI's default is `auto` with tools and `none` without.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    /// No call: the local backend renders no tools and reads no calls.
    None,
    /// The model decides; calls it writes become `tool_calls`.
    Auto,
    /// The model must call one of the tools (enforced by constrained decoding locally).
    Required,
    /// The model must call this function.
    Function(String),
}

/// `response_format`.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON valid against `schema` (`json_schema.schema`; `strict` is honoured either way:
    /// constrained decoding cannot produce anything else).
    JsonSchema(Value),
}

/// The function names of `tools`, each checked (`{type: "function", function: {name, …}}`).
pub(super) fn tool_names(tools: Option<&Value>) -> Result<Vec<String>, String> {
    let list = tools
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    list.iter()
        .enumerate()
        .map(|(i, tool)| {
            let function = tool
                .get("function")
                .filter(|_| tool.get("type").and_then(Value::as_str) == Some("function"))
                .ok_or(format!(
                    "tools[{i}] must be {{type: \"function\", function: {{…}}}}"
                ))?;
            if function
                .get("parameters")
                .is_some_and(|p| !p.is_object() && !p.is_boolean())
            {
                return Err(format!(
                    "tools[{i}].function.parameters must be a JSON schema"
                ));
            }
            match function.get("name").and_then(Value::as_str) {
                Some(name) if !name.is_empty() => Ok(name.to_string()),
                _ => Err(format!(
                    "tools[{i}].function.name must be a non-empty string"
                )),
            }
        })
        .collect()
}

/// `tool_choice`, checked against the tools' `names`.
pub(super) fn tool_choice(value: Option<&Value>, names: &[String]) -> Result<ToolChoice, String> {
    let choice = match value {
        None | Some(Value::Null) if names.is_empty() => ToolChoice::None,
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(s)) if s == "none" => ToolChoice::None,
        Some(Value::String(s)) if s == "auto" => ToolChoice::Auto,
        Some(Value::String(s)) if s == "required" => ToolChoice::Required,
        Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
            Some(name) if v.get("type").and_then(Value::as_str) == Some("function") => {
                if !names.iter().any(|n| n == name) {
                    return Err(format!(
                        "`tool_choice` names `{name}`, which is not in `tools`"
                    ));
                }
                ToolChoice::Function(name.to_string())
            }
            _ => {
                return Err(format!(
                    "`tool_choice` must be \"none\", \"auto\", \"required\" or {{type: \"function\", function: {{name}}}}, not {v}"
                ));
            }
        },
    };
    if names.is_empty() && matches!(choice, ToolChoice::Required | ToolChoice::Auto) {
        return Err("`tool_choice` asks for a call but `tools` is empty".into());
    }
    Ok(choice)
}

/// `response_format`: `{type: "text" | "json_object"}` or `{type: "json_schema", json_schema:
/// {name, schema, strict}}`.
pub(super) fn response_format(value: Option<&Value>) -> Result<ResponseFormat, String> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(ResponseFormat::Text);
    };
    match value.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => match value.pointer("/json_schema/schema") {
            Some(schema @ (Value::Object(_) | Value::Bool(_))) => {
                Ok(ResponseFormat::JsonSchema(schema.clone()))
            }
            _ => Err("`response_format.json_schema.schema` must be a JSON schema".into()),
        },
        _ => Err(format!(
            "`response_format.type` must be \"text\", \"json_object\" or \"json_schema\", not {value}"
        )),
    }
}
