//! Tool calls in a model's streamed answer, in Llama 3.1's two formats:
//!
//! - the JSON its template asks for with custom tools: the answer *is* a call,
//!   `{"name": "get_weather", "parameters": {"city": "Paris"}}` (an optional `"type":
//!   "function"` first, `"arguments"` for `"parameters"`), possibly several separated by `;`
//!   or new lines;
//! - `<|python_tag|>` followed by a built-in tool call (`brave_search.call(query="…")`), a JSON
//!   call, or Python code for the code interpreter (a call to `python` with `{"code": …}`),
//!   ended by `<|eom_id|>`.
//!
//! [`ToolCallParser`] reads the text deltas as they come and gives [`ToolEvent`]s: content,
//! the start of a call (its name) and its arguments. Text that is not a call — a JSON object
//! that is not a call to a known function, malformed JSON, plain prose — comes out as content,
//! unchanged. A call is recognised only at the start of the answer (or after another call),
//! as Llama 3.1 writes them. While a JSON object is open its text is held back; when the
//! answer is constrained to a call ([`super::constrain::Grammar::ToolCall`]) its validity is
//! certain, so the arguments stream out as they come (`stream_arguments`); otherwise the call
//! is given whole once it parses.

mod python_tag;

use serde_json::Value;

use super::Delta;
use python_tag::{code_arguments, python_tag_calls};

/// What the parser found in the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolEvent {
    /// Text for the answer's `content`.
    Content(String),
    /// Call number `index` (from 0) begins: the function's name.
    CallStart {
        /// The call's number in this answer.
        index: usize,
        /// The function called.
        name: String,
    },
    /// More of call `index`'s arguments (JSON text; the pieces of one call concatenate).
    Arguments {
        /// The call's number in this answer.
        index: usize,
        /// The next piece.
        text: String,
    },
}

/// Reads tool calls out of one answer's deltas (see the module docs).
#[derive(Debug, Clone)]
pub struct ToolCallParser {
    /// Functions a JSON call may name (a call to another name is content).
    names: Vec<String>,
    /// The `<|python_tag|>` token, when the model has one.
    python_tag: Option<u32>,
    stream_arguments: bool,
    mode: Mode,
    calls: usize,
}

#[derive(Debug, Clone)]
enum Mode {
    /// Only whitespace so far (held back).
    Start(String),
    /// Everything is content.
    Content,
    /// A JSON object that may be a call.
    Json(JsonCall),
    /// After a call: whitespace and separators, held back.
    AfterCall,
    /// After `<|python_tag|>`: the text, held back to the end.
    PythonTag(String),
}

/// An open JSON object and how far it has been read.
#[derive(Debug, Clone, Default)]
struct JsonCall {
    text: String,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Once the object's start reads as a call: the name and where its arguments begin.
    header: Option<(String, usize)>,
    /// Where the arguments' object closed.
    arguments_end: Option<usize>,
    /// Bytes of the arguments given so far (streaming).
    sent: usize,
}

impl ToolCallParser {
    /// A parser for calls to `names` (`python_tag`: the model's `<|python_tag|>` id).
    pub fn new(names: Vec<String>, python_tag: Option<u32>, stream_arguments: bool) -> Self {
        Self {
            names,
            python_tag,
            stream_arguments,
            mode: Mode::Start(String::new()),
            calls: 0,
        }
    }

    /// Calls found so far.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Reads one delta.
    pub fn push(&mut self, delta: &Delta) -> Vec<ToolEvent> {
        let mut events = Vec::new();
        if delta.id.is_some() && delta.id == self.python_tag {
            self.flush(&mut events);
            self.mode = Mode::PythonTag(String::new());
        }
        for c in delta.text.chars() {
            self.push_char(c, &mut events);
        }
        if let (Mode::Json(call), true) = (&mut self.mode, self.stream_arguments) {
            call.stream_arguments(self.calls, &mut events);
        }
        merge_content(events)
    }

    /// The end of the answer: what is held back, as calls or content.
    pub fn finish(&mut self) -> Vec<ToolEvent> {
        let mut events = Vec::new();
        match std::mem::replace(&mut self.mode, Mode::Content) {
            Mode::PythonTag(text) => match python_tag_calls(&text) {
                Some(calls) => calls
                    .into_iter()
                    .for_each(|(name, arguments)| self.whole_call(name, arguments, &mut events)),
                None if text.trim().is_empty() => {}
                None => self.whole_call("python".into(), code_arguments(&text), &mut events),
            },
            held => {
                self.mode = held;
                self.flush(&mut events);
            }
        }
        merge_content(events)
    }

    /// Gives what is held back as content (a call already streaming stays a call).
    fn flush(&mut self, events: &mut Vec<ToolEvent>) {
        match std::mem::replace(&mut self.mode, Mode::Content) {
            Mode::Start(text) => events.push(ToolEvent::Content(text)),
            Mode::Json(call) if self.stream_arguments && call.header.is_some() => {}
            Mode::Json(call) => events.push(ToolEvent::Content(call.text)),
            Mode::PythonTag(text) => events.push(ToolEvent::Content(text)),
            Mode::Content | Mode::AfterCall => {}
        }
    }

    fn push_char(&mut self, c: char, events: &mut Vec<ToolEvent>) {
        match &mut self.mode {
            Mode::Content => events.push(ToolEvent::Content(c.to_string())),
            Mode::PythonTag(text) => text.push(c),
            Mode::Start(held) if c.is_whitespace() => held.push(c),
            Mode::AfterCall if c.is_whitespace() || c == ';' => {}
            Mode::Start(_) | Mode::AfterCall if c == '{' => {
                self.mode = Mode::Json(JsonCall::default());
                self.push_char(c, events);
            }
            Mode::Start(held) => {
                events.push(ToolEvent::Content(std::mem::take(held)));
                self.mode = Mode::Content;
                self.push_char(c, events);
            }
            Mode::AfterCall => {
                self.mode = Mode::Content;
                self.push_char(c, events);
            }
            Mode::Json(call) => {
                call.text.push(c);
                if !call.step(c) {
                    return;
                }
                if call.header.is_none() {
                    match call_header(&call.text) {
                        Header::Incomplete => return,
                        Header::Call(name, start) if self.names.contains(&name) => {
                            if self.stream_arguments {
                                events.push(ToolEvent::CallStart {
                                    index: self.calls,
                                    name: name.clone(),
                                });
                                self.calls += 1;
                            }
                            call.header = Some((name, start));
                        }
                        Header::Call(..) | Header::NotACall => {
                            let text = std::mem::take(&mut call.text);
                            events.push(ToolEvent::Content(text));
                            self.mode = Mode::Content;
                            return;
                        }
                    }
                }
                if call.depth == 1 && c == '}' && call.arguments_end.is_none() {
                    call.arguments_end = Some(call.text.len());
                }
                if call.depth == 0 {
                    self.close_call(events);
                }
            }
        }
    }

    /// The object just closed: a call (given whole unless it streamed) or content.
    fn close_call(&mut self, events: &mut Vec<ToolEvent>) {
        let Mode::Json(mut call) = std::mem::replace(&mut self.mode, Mode::AfterCall) else {
            return;
        };
        if self.stream_arguments {
            call.stream_arguments(self.calls, events);
            return;
        }
        let parsed = serde_json::from_str::<Value>(&call.text).ok();
        match (parsed, call.header, call.arguments_end) {
            (Some(Value::Object(_)), Some((name, start)), Some(end)) => {
                events.push(ToolEvent::CallStart {
                    index: self.calls,
                    name,
                });
                events.push(ToolEvent::Arguments {
                    index: self.calls,
                    text: call.text[start..end].to_string(),
                });
                self.calls += 1;
            }
            _ => {
                events.push(ToolEvent::Content(call.text));
                self.mode = Mode::Content;
            }
        }
    }

    fn whole_call(&mut self, name: String, arguments: Value, events: &mut Vec<ToolEvent>) {
        let index = self.calls;
        self.calls += 1;
        events.push(ToolEvent::CallStart { index, name });
        events.push(ToolEvent::Arguments {
            index,
            text: arguments.to_string(),
        });
    }
}

impl JsonCall {
    /// Gives the arguments' text not given yet (of call `calls - 1`, the one this object is).
    fn stream_arguments(&mut self, calls: usize, events: &mut Vec<ToolEvent>) {
        let Some((_, start)) = &self.header else {
            return;
        };
        let end = self.arguments_end.unwrap_or(self.text.len());
        if start + self.sent < end {
            let text = self.text[start + self.sent..end].to_string();
            self.sent = end - start;
            events.push(ToolEvent::Arguments {
                index: calls - 1,
                text,
            });
        }
    }

    /// Follows `c` (already appended); `false` inside a string, where structure is not read.
    fn step(&mut self, c: char) -> bool {
        if self.in_string {
            match (self.escaped, c) {
                (true, _) => self.escaped = false,
                (false, '\\') => self.escaped = true,
                (false, '"') => self.in_string = false,
                _ => {}
            }
            return c == '"' && !self.in_string;
        }
        match c {
            '"' => self.in_string = true,
            '{' | '[' => self.depth += 1,
            '}' | ']' => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        true
    }
}

/// How the start of a JSON object reads.
#[derive(Debug, PartialEq)]
enum Header {
    /// Not enough text to tell.
    Incomplete,
    /// `{"name": NAME, "parameters": {` — the name, and where the arguments' `{` is.
    Call(String, usize),
    /// Anything else.
    NotACall,
}

/// Reads `{ ["type": "function",] "name": STRING, ("parameters"|"arguments"): {` at the start
/// of `text`.
fn call_header(text: &str) -> Header {
    let mut at = Cursor { text, at: 0 };
    let result = (|| {
        at.expect("{")?;
        let mut key = at.string()?;
        if key == "type" {
            at.expect(":")?;
            (at.string()? == "function").then_some(()).ok_or(false)?;
            at.expect(",")?;
            key = at.string()?;
        }
        (key == "name").then_some(()).ok_or(false)?;
        at.expect(":")?;
        let name = at.string()?;
        at.expect(",")?;
        let key = at.string()?;
        (key == "parameters" || key == "arguments")
            .then_some(())
            .ok_or(false)?;
        at.expect(":")?;
        at.expect("{")?;
        Ok((name, at.at - 1))
    })();
    match result {
        Ok((name, start)) => Header::Call(name, start),
        Err(true) => Header::Incomplete,
        Err(false) => Header::NotACall,
    }
}

/// A reader over the start of a JSON text; `Err(true)`: the text ended, `Err(false)`: mismatch.
struct Cursor<'t> {
    text: &'t str,
    at: usize,
}

impl Cursor<'_> {
    fn skip_whitespace(&mut self) {
        let rest = &self.text[self.at..];
        self.at += rest.len() - rest.trim_start().len();
    }

    fn expect(&mut self, token: &str) -> Result<(), bool> {
        self.skip_whitespace();
        let rest = &self.text[self.at..];
        if rest.starts_with(token) {
            self.at += token.len();
            Ok(())
        } else {
            Err(token.starts_with(rest))
        }
    }

    /// A JSON string, unescaped.
    fn string(&mut self) -> Result<String, bool> {
        self.expect("\"")?;
        let start = self.at - 1;
        let mut escaped = false;
        for (i, c) in self.text[self.at..].char_indices() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    self.at += i + 1;
                    return serde_json::from_str(&self.text[start..self.at]).map_err(|_| false);
                }
                _ => {}
            }
        }
        Err(true)
    }
}

/// OpenAI-shaped messages as chat templates read them: an assistant turn's
/// `tool_calls[].function.arguments` arrive as JSON *text* (OpenAI's shape, what the SDKs send
/// back) but templates print them with `tojson`, as HF's documented shape, a JSON object; text
/// that parses is given as the object it holds.
pub fn messages_for_template(messages: &Value) -> Value {
    let mut messages = messages.clone();
    let calls = messages
        .as_array_mut()
        .into_iter()
        .flatten()
        .filter_map(|m| m.get_mut("tool_calls")?.as_array_mut())
        .flatten();
    for call in calls {
        if let Some(arguments) = call.pointer_mut("/function/arguments")
            && let Some(parsed) = arguments
                .as_str()
                .and_then(|text| serde_json::from_str::<Value>(text).ok())
        {
            *arguments = parsed;
        }
    }
    messages
}

/// Joins neighbouring content events and drops empty ones.
fn merge_content(events: Vec<ToolEvent>) -> Vec<ToolEvent> {
    let mut merged: Vec<ToolEvent> = Vec::new();
    for event in events {
        match (merged.last_mut(), event) {
            (_, ToolEvent::Content(text)) if text.is_empty() => {}
            (Some(ToolEvent::Content(held)), ToolEvent::Content(text)) => held.push_str(&text),
            (_, event) => merged.push(event),
        }
    }
    merged
}

#[cfg(test)]
mod tests;
