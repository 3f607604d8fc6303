//! `chat.completions.create` parameters, as OpenAI defines them, checked once for both backends.

use serde_json::{Map, Value};

use super::error::{ApiError, ErrorCode};
pub use super::shape::{ResponseFormat, ToolChoice};
use super::shape::{response_format, tool_choice, tool_names};
use crate::engine::constrain::Grammar;

/// `max_tokens` when the caller gives none. IONOS's own default is 16 tokens, which cuts most
/// answers short, so a request always carries one.
pub const DEFAULT_MAX_TOKENS: usize = 1024;

/// A checked chat request. The original object is kept so the remote backend forwards every
/// field it does not know (OpenAI adds them often); the local backend reads the typed ones.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatParams {
    /// The conversation, OpenAI-shaped (`[{role, content, …}]`, never empty).
    pub messages: Value,
    /// Stream `chat.completion.chunk` objects instead of returning one `chat.completion`.
    pub stream: bool,
    /// At most this many new tokens (`max_tokens`, or `max_completion_tokens`).
    pub max_tokens: usize,
    /// Sampling temperature, 0..=2 (default 1, as OpenAI).
    pub temperature: f32,
    /// Nucleus mass, (0, 1] (default 1).
    pub top_p: f32,
    /// Keep the k most likely tokens (not OpenAI's; vLLM and llama.cpp accept it).
    pub top_k: Option<usize>,
    /// Seed for sampling.
    pub seed: Option<u64>,
    /// Stop strings (OpenAI allows a string or up to 4 strings).
    pub stop: Vec<String>,
    /// -2..=2.
    pub presence_penalty: f32,
    /// -2..=2.
    pub frequency_penalty: f32,
    /// Tool definitions (`[{type: "function", function: {name, parameters}}]`), passed to the
    /// chat template or the endpoint.
    pub tools: Option<Value>,
    /// Whether and which tool the model must call.
    pub tool_choice: ToolChoice,
    /// The shape of a text answer.
    pub response_format: ResponseFormat,
    /// `logprobs: true`: each token's log-probability and `top_logprobs` (0..=20) alternatives.
    pub logprobs: Option<usize>,
    /// `parallel_tool_calls` (default true): false keeps an answer to its first call.
    pub parallel_tool_calls: bool,
    /// The request as given (without `signal`), for the remote backend.
    pub raw: Map<String, Value>,
}

impl ChatParams {
    /// Checks an OpenAI-shaped request object.
    pub fn from_json(value: Value) -> Result<Self, ApiError> {
        let bad = |m: String| ApiError::new(ErrorCode::BadRequest, m);
        let Value::Object(mut raw) = value else {
            return Err(bad("the request must be an object".into()));
        };
        raw.remove("signal");
        let messages = raw.get("messages").cloned().unwrap_or(Value::Null);
        match &messages {
            Value::Array(list) if !list.is_empty() => {
                if let Some(i) = list
                    .iter()
                    .position(|m| !m.get("role").is_some_and(Value::is_string))
                {
                    return Err(bad(format!("messages[{i}] has no role")));
                }
            }
            _ => return Err(bad("`messages` must be a non-empty array".into())),
        }
        let number =
            |key: &str, default: f64, range: std::ops::RangeInclusive<f64>| match raw.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => match v.as_f64() {
                    Some(x) if range.contains(&x) => Ok(x),
                    _ => Err(bad(format!(
                        "`{key}` must be a number in {range:?}, not {v}"
                    ))),
                },
            };
        let count = |key: &str| match raw.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad(format!("`{key}` must be a non-negative integer, not {v}"))),
        };
        let max_tokens = match (count("max_tokens")?, count("max_completion_tokens")?) {
            (Some(0), _) | (None, Some(0)) => {
                return Err(bad("`max_tokens` must be at least 1".into()));
            }
            // u32 at most: on wasm32 a larger count would wrap (2^32 became 0).
            (Some(n), _) | (None, Some(n)) => u32::try_from(n)
                .map_err(|_| bad(format!("`max_tokens` {n} is beyond any context")))?
                as usize,
            (None, None) => DEFAULT_MAX_TOKENS,
        };
        if let Some(n) = count("n")?
            && n != 1
        {
            return Err(bad(format!("`n` must be 1, not {n}")));
        }
        let stop = match raw.get("stop") {
            None | Some(Value::Null) => vec![],
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(list)) if list.len() <= 4 && list.iter().all(Value::is_string) => {
                list.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            }
            Some(v) => {
                return Err(bad(format!(
                    "`stop` must be a string or up to 4 strings, not {v}"
                )));
            }
        };
        if stop.iter().any(String::is_empty) {
            return Err(bad("`stop` strings must not be empty".into()));
        }
        let stream = match raw.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(bad(format!("`stream` must be a boolean, not {v}"))),
        };
        let tools = match raw.get("tools") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Array(_)) => Some(v.clone()),
            Some(v) => return Err(bad(format!("`tools` must be an array, not {v}"))),
        };
        let names = tool_names(tools.as_ref()).map_err(bad)?;
        let tool_choice = tool_choice(raw.get("tool_choice"), &names).map_err(bad)?;
        let response_format = response_format(raw.get("response_format")).map_err(bad)?;
        let logprobs = match (raw.get("logprobs"), count("top_logprobs")?) {
            (None | Some(Value::Null | Value::Bool(false)), None) => None,
            (Some(Value::Bool(true)), top) if top.unwrap_or(0) <= 20 => {
                Some(top.unwrap_or(0) as usize)
            }
            (Some(Value::Bool(true)), Some(top)) => {
                return Err(bad(format!("`top_logprobs` must be 0..=20, not {top}")));
            }
            (Some(v), _) if !v.is_boolean() => {
                return Err(bad(format!("`logprobs` must be a boolean, not {v}")));
            }
            _ => return Err(bad("`top_logprobs` needs `logprobs: true`".into())),
        };
        let top_p = number("top_p", 1.0, 0.0..=1.0)? as f32;
        if top_p == 0.0 {
            return Err(bad("`top_p` must be above 0".into()));
        }
        Ok(Self {
            messages,
            stream,
            max_tokens,
            temperature: number("temperature", 1.0, 0.0..=2.0)? as f32,
            top_p,
            top_k: count("top_k")?.map(|k| usize::try_from(k).unwrap_or(usize::MAX)),
            seed: count("seed")?,
            stop,
            presence_penalty: number("presence_penalty", 0.0, -2.0..=2.0)? as f32,
            frequency_penalty: number("frequency_penalty", 0.0, -2.0..=2.0)? as f32,
            tools,
            tool_choice,
            response_format,
            logprobs,
            parallel_tool_calls: match raw.get("parallel_tool_calls") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(b)) => *b,
                Some(v) => {
                    return Err(bad(format!(
                        "`parallel_tool_calls` must be a boolean, not {v}"
                    )));
                }
            },
            raw,
        })
    }

    /// The functions the model may call (their names and parameter schemas) under
    /// `tool_choice`.
    pub fn callable_functions(&self) -> Vec<(String, Value)> {
        let functions = self
            .tools
            .iter()
            .flat_map(|tools| tools.as_array().into_iter().flatten())
            .filter_map(|tool| tool.get("function"))
            .filter_map(|f| {
                let name = f.get("name")?.as_str()?.to_string();
                let parameters = f
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
                Some((name, parameters))
            });
        match &self.tool_choice {
            ToolChoice::None => vec![],
            ToolChoice::Function(only) => functions.filter(|(name, _)| name == only).collect(),
            ToolChoice::Auto | ToolChoice::Required => functions.collect(),
        }
    }

    /// The tools the chat template shows the model: none under `tool_choice: "none"`.
    pub fn template_tools(&self) -> Option<Value> {
        match self.tool_choice {
            ToolChoice::None => None,
            _ => self.tools.clone(),
        }
    }

    /// What the local answer is constrained to: a call when one is required, else the
    /// response format's JSON (calls are then not possible), else nothing.
    pub fn grammar(&self) -> Option<Grammar> {
        match (&self.tool_choice, &self.response_format) {
            (ToolChoice::Required | ToolChoice::Function(_), _) => {
                Some(Grammar::ToolCall(self.callable_functions()))
            }
            (_, ResponseFormat::JsonObject) => Some(Grammar::JsonObject),
            (_, ResponseFormat::JsonSchema(schema)) => Some(Grammar::JsonSchema(schema.clone())),
            (_, ResponseFormat::Text) => None,
        }
    }

    /// The body to POST to an OpenAI-compatible endpoint: the request as given, with `model`
    /// set, `max_tokens` always present, and usage asked for at the end of a stream.
    pub fn remote_body(&self, model: &str) -> Value {
        let mut body = self.raw.clone();
        body.insert("model".into(), Value::from(model));
        body.remove("max_completion_tokens");
        body.insert("max_tokens".into(), Value::from(self.max_tokens));
        body.insert("stream".into(), Value::from(self.stream));
        if self.stream {
            body.insert(
                "stream_options".into(),
                serde_json::json!({ "include_usage": true }),
            );
        }
        Value::Object(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Result<ChatParams, ApiError> {
        ChatParams::from_json(v)
    }

    #[test]
    fn defaults_are_openais_and_max_tokens_is_always_sent() {
        let p = params(json!({"messages": [{"role": "user", "content": "hi"}]})).unwrap();
        assert_eq!((p.temperature, p.top_p, p.stream), (1.0, 1.0, false));
        assert_eq!(p.max_tokens, DEFAULT_MAX_TOKENS);
        let body = p.remote_body("m");
        assert_eq!(body["max_tokens"], json!(DEFAULT_MAX_TOKENS));
        assert_eq!(body["model"], json!("m"));
        assert!(body.get("stream_options").is_none());
    }

    #[test]
    fn unknown_fields_are_forwarded_and_stream_asks_for_usage() {
        let p = params(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "stream": true, "max_completion_tokens": 7, "response_format": {"type": "json_object"},
            "stop": "\n\n", "signal": {}
        }))
        .unwrap();
        assert_eq!(p.max_tokens, 7);
        assert_eq!(p.stop, vec!["\n\n".to_string()]);
        let body = p.remote_body("meta-llama/Meta-Llama-3.1-8B-Instruct");
        assert_eq!(body["response_format"], json!({"type": "json_object"}));
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert_eq!(body["max_tokens"], json!(7));
        assert!(body.get("signal").is_none() && body.get("max_completion_tokens").is_none());
    }

    #[test]
    fn bad_requests_are_typed() {
        for bad in [
            json!([]),
            json!({}),
            json!({"messages": []}),
            json!({"messages": [{"content": "no role"}]}),
            json!({"messages": [{"role": "user"}], "temperature": 3}),
            json!({"messages": [{"role": "user"}], "temperature": "hot"}),
            json!({"messages": [{"role": "user"}], "top_p": 0}),
            json!({"messages": [{"role": "user"}], "max_tokens": 0}),
            json!({"messages": [{"role": "user"}], "max_tokens": -3}),
            json!({"messages": [{"role": "user"}], "n": 2}),
            json!({"messages": [{"role": "user"}], "stop": ["a", "b", "c", "d", "e"]}),
            json!({"messages": [{"role": "user"}], "stop": [""]}),
            json!({"messages": [{"role": "user"}], "stream": "yes"}),
            json!({"messages": [{"role": "user"}], "tools": {}}),
            json!({"messages": [{"role": "user"}], "tools": [{"type": "function"}]}),
            json!({"messages": [{"role": "user"}], "tools": [{"type": "function", "function": {"name": ""}}]}),
            json!({"messages": [{"role": "user"}], "tools": [{"type": "function", "function": {"name": "f", "parameters": 3}}]}),
            json!({"messages": [{"role": "user"}], "tool_choice": "required"}),
            json!({"messages": [{"role": "user"}], "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "always"}),
            json!({"messages": [{"role": "user"}], "tools": [{"type": "function", "function": {"name": "f"}}],
                   "tool_choice": {"type": "function", "function": {"name": "g"}}}),
            json!({"messages": [{"role": "user"}], "response_format": {"type": "xml"}}),
            json!({"messages": [{"role": "user"}], "logprobs": "yes"}),
            json!({"messages": [{"role": "user"}], "logprobs": true, "top_logprobs": 21}),
            json!({"messages": [{"role": "user"}], "top_logprobs": 2}),
            json!({"messages": [{"role": "user"}], "parallel_tool_calls": "no"}),
            json!({"messages": [{"role": "user"}], "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
        ] {
            let err = params(bad.clone()).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadRequest, "{bad}: {err}");
        }
    }

    #[test]
    fn tool_choice_and_response_format_choose_the_grammar() {
        let weather = json!({"type": "object", "properties": {"city": {"type": "string"}}});
        let tools = json!([
            {"type": "function", "function": {"name": "get_weather", "parameters": weather}},
            {"type": "function", "function": {"name": "get_time"}},
        ]);
        let with = |extra: Value| {
            let mut request =
                json!({"messages": [{"role": "user", "content": "hi"}], "tools": tools});
            request
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            params(request).unwrap()
        };
        let auto = with(json!({}));
        assert_eq!(auto.tool_choice, ToolChoice::Auto);
        assert_eq!(auto.grammar(), None);
        assert_eq!(auto.callable_functions().len(), 2);
        let none = with(json!({"tool_choice": "none"}));
        assert!(none.callable_functions().is_empty());
        let required = with(json!({"tool_choice": "required"}));
        let Some(Grammar::ToolCall(functions)) = required.grammar() else {
            panic!("required is a call grammar")
        };
        assert_eq!(functions[0], ("get_weather".to_string(), weather.clone()));
        assert_eq!(functions[1].1, json!({"type": "object", "properties": {}}));
        let named =
            with(json!({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}));
        assert_eq!(
            named.grammar(),
            Some(Grammar::ToolCall(vec![(
                "get_weather".into(),
                weather.clone()
            )]))
        );
        let schema = with(
            json!({"tool_choice": "none", "response_format": {"type": "json_schema",
            "json_schema": {"name": "w", "schema": weather, "strict": true}}}),
        );
        assert_eq!(schema.grammar(), Some(Grammar::JsonSchema(weather)));
        let object = params(
            json!({"messages": [{"role": "user"}], "response_format": {"type": "json_object"}}),
        );
        assert_eq!(object.unwrap().grammar(), Some(Grammar::JsonObject));
        let plain = params(json!({"messages": [{"role": "user"}]})).unwrap();
        assert_eq!(
            (&plain.tool_choice, plain.grammar()),
            (&ToolChoice::None, None)
        );
    }
}
