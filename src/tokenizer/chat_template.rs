//! Chat templates: the model's own Jinja template (GGUF `tokenizer.chat_template`, or
//! tokenizer_config.json's `chat_template`) rendered with minijinja the way HF transformers'
//! `apply_chat_template` renders it, byte for byte.
//!
//! What HF's environment adds, and so do we: `trim_blocks` and `lstrip_blocks`, loop controls,
//! a `tojson` that keeps key order and does not escape (see the private `pyjson` module),
//! `raise_exception(msg)`, `strftime_now(fmt)`, and the variables `bos_token`, `eos_token`,
//! `add_generation_prompt`, `tools` and any extra keyword arguments (`date_string`,
//! `builtin_tools`, …). Python string methods (`.strip()`, `.startswith()`) come from
//! minijinja-contrib's pycompat.

use minijinja::value::{Kwargs, Value as JinjaValue};
use minijinja::{Environment, Error as JinjaError, ErrorKind};
use serde_json::{Map, Value};

use super::{Tokenizer, TokenizerError};
use crate::gguf::GgufHeader;

/// Why a template could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The model carries no chat template.
    #[error("the model has no chat template")]
    Missing,
    /// tokenizer_config.json is not JSON, or its fields have the wrong types.
    #[error("bad tokenizer_config.json: {detail}")]
    BadConfig {
        /// What is wrong.
        detail: String,
    },
    /// The model's template does not parse.
    #[error("the model's chat template does not parse: {0}")]
    Syntax(String),
    /// The template refused the messages while rendering (`raise_exception`: a role it does not
    /// take, turns out of order, …) — the request's fault.
    #[error("the chat template refused the messages: {0}")]
    Render(String),
    /// Reading the template or special tokens from the GGUF file failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// A chat template with the special-token strings it may print.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
}

/// What `apply_chat_template` is called with besides the messages.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// End with the assistant's header, ready for generation.
    pub add_generation_prompt: bool,
    /// Tool (function) definitions, OpenAI-shaped.
    pub tools: Option<Value>,
    /// Extra template variables, e.g. `date_string`, `builtin_tools`.
    pub extra: Map<String, Value>,
}

impl ChatTemplate {
    /// A template from its source and special-token strings.
    pub fn new(
        source: impl Into<String>,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Self {
        Self {
            source: source.into(),
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        }
    }

    /// The template a GGUF file carries (`tokenizer.chat_template`), with BOS/EOS strings from
    /// its tokenizer.
    pub fn from_gguf(header: &GgufHeader, tokenizer: &Tokenizer) -> Result<Self, TemplateError> {
        let source = header
            .get("tokenizer.chat_template")
            .and_then(|v| v.as_str())
            .ok_or(TemplateError::Missing)?;
        let text = |id: Option<u32>| {
            id.and_then(|id| tokenizer.id_to_token(id))
                .unwrap_or_default()
        };
        Ok(Self::new(
            source,
            text(tokenizer.bos_id()),
            text(tokenizer.eos_id()),
        ))
    }

    /// The template of an HF tokenizer_config.json (`chat_template`, `bos_token`,
    /// `eos_token`; tokens may be strings or `{"content": …}` objects).
    pub fn from_tokenizer_config(json: &[u8]) -> Result<Self, TemplateError> {
        let config: Value = serde_json::from_slice(json).map_err(|e| TemplateError::BadConfig {
            detail: e.to_string(),
        })?;
        let source = match &config["chat_template"] {
            Value::String(s) => s.clone(),
            Value::Null => return Err(TemplateError::Missing),
            _ => {
                return Err(TemplateError::BadConfig {
                    detail: "chat_template is not a string (named templates are not supported)"
                        .into(),
                });
            }
        };
        let token = |key: &str| match &config[key] {
            Value::String(s) => s.clone(),
            Value::Object(o) => o
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        };
        Ok(Self::new(source, token("bos_token"), token("eos_token")))
    }

    /// The template's source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders `messages` (a JSON array of OpenAI-shaped messages).
    pub fn render(
        &self,
        messages: &Value,
        options: &RenderOptions,
    ) -> Result<String, TemplateError> {
        let env = environment();
        let template = env
            .template_from_str(&self.source)
            .map_err(|e| TemplateError::Syntax(format!("{e:#}")))?;
        let mut context = options.extra.clone();
        context.insert("messages".into(), messages.clone());
        context.insert("bos_token".into(), Value::String(self.bos_token.clone()));
        context.insert("eos_token".into(), Value::String(self.eos_token.clone()));
        context.insert(
            "add_generation_prompt".into(),
            Value::Bool(options.add_generation_prompt),
        );
        if let Some(tools) = &options.tools {
            context.insert("tools".into(), tools.clone());
        }
        template
            .render(JinjaValue::from_serialize(&context))
            .map_err(render_error)
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("tojson", tojson);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env
}

fn render_error(e: JinjaError) -> TemplateError {
    TemplateError::Render(format!("{e:#}"))
}

/// HF's `tojson(x, indent=None)`: Python's `json.dumps` with `ensure_ascii=False`.
fn tojson(value: JinjaValue, kwargs: Kwargs) -> Result<JinjaValue, JinjaError> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| JinjaError::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    Ok(JinjaValue::from_safe_string(super::pyjson::dumps(
        &json, indent,
    )))
}

fn raise_exception(message: String) -> Result<JinjaValue, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, message))
}

/// `strftime_now(format)`: the current UTC time, for `%d %m %Y %y %b %B %H %M %S %%`.
fn strftime_now(format: String) -> Result<String, JinjaError> {
    strftime(&format, now_unix_seconds())
}

#[cfg(not(target_arch = "wasm32"))]
fn now_unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(target_arch = "wasm32")]
fn now_unix_seconds() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Formats a Unix time (UTC) with a subset of C's strftime.
pub(crate) fn strftime(format: &str, unix_seconds: i64) -> Result<String, JinjaError> {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('b') => out.push_str(&MONTHS[month as usize - 1][..3]),
            Some('B') => out.push_str(MONTHS[month as usize - 1]),
            Some('H') => out.push_str(&format!("{:02}", secs / 3600)),
            Some('M') => out.push_str(&format!("{:02}", secs / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", secs % 60)),
            Some('%') => out.push('%'),
            other => {
                return Err(JinjaError::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "strftime_now: unsupported directive %{}",
                        other.map(String::from).unwrap_or_default()
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_formats_known_dates() {
        assert_eq!(strftime("%d %b %Y", 1_721_952_000).unwrap(), "26 Jul 2024");
        assert_eq!(
            strftime("%Y-%m-%d %H:%M:%S", 0).unwrap(),
            "1970-01-01 00:00:00"
        );
        assert_eq!(
            strftime("%d %B %y %%", 951_782_400).unwrap(),
            "29 February 00 %"
        );
        assert!(strftime("%Q", 0).is_err());
    }

    #[test]
    fn a_template_that_does_not_parse_is_a_syntax_error() {
        let t = ChatTemplate::new("{% if %}", "", "");
        let result = t.render(&Value::Array(vec![]), &RenderOptions::default());
        assert!(
            matches!(result, Err(TemplateError::Syntax(_))),
            "{result:?}"
        );
    }

    #[test]
    fn raise_exception_is_a_render_error() {
        let t = ChatTemplate::new("{{ raise_exception('no system role') }}", "", "");
        match t.render(&Value::Array(vec![]), &RenderOptions::default()) {
            Err(TemplateError::Render(msg)) => assert!(msg.contains("no system role"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }
}
