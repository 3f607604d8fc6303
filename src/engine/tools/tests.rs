//! The tool-call parser over every split of streamed text (as the SSE parser's tests split
//! bytes), in both formats and both release modes.

use super::*;

const PYTHON_TAG: u32 = 7;

/// What an answer came to: its content and its calls (name, arguments text).
#[derive(Debug, PartialEq)]
struct Answer {
    content: String,
    calls: Vec<(String, String)>,
}

fn parser(stream: bool) -> ToolCallParser {
    let names = ["get_weather", "get_time"].map(String::from).to_vec();
    ToolCallParser::new(names, Some(PYTHON_TAG), stream)
}

/// Feeds `pieces` (a `None` piece is the python tag token) and collects the events, checking
/// that every call starts before its arguments come, in order.
fn run(mut parser: ToolCallParser, pieces: &[Option<&str>]) -> Answer {
    let mut events = Vec::new();
    for piece in pieces {
        let delta = match piece {
            Some(text) => Delta {
                id: Some(1),
                text: text.to_string(),
                ..Delta::default()
            },
            None => Delta {
                id: Some(PYTHON_TAG),
                ..Delta::default()
            },
        };
        events.extend(parser.push(&delta));
    }
    events.extend(parser.finish());
    let mut answer = Answer {
        content: String::new(),
        calls: Vec::new(),
    };
    for event in events {
        match event {
            ToolEvent::Content(text) => answer.content.push_str(&text),
            ToolEvent::CallStart { index, name } => {
                assert_eq!(index, answer.calls.len(), "calls start in order");
                answer.calls.push((name, String::new()));
            }
            ToolEvent::Arguments { index, text } => {
                assert_eq!(index + 1, answer.calls.len(), "arguments of the last call");
                answer.calls[index].1.push_str(&text);
            }
        }
    }
    assert_eq!(parser.calls(), answer.calls.len());
    answer
}

/// Every way to cut `text` in two and in three, and one character at a time, in both modes.
fn every_split(text: &str, expected: &Answer) {
    let cuts: Vec<usize> = (0..=text.len())
        .filter(|&i| text.is_char_boundary(i))
        .collect();
    for stream in [false, true] {
        for &a in &cuts {
            let pieces = [Some(&text[..a]), Some(&text[a..])];
            assert_eq!(&run(parser(stream), &pieces), expected, "cut at {a}");
            for &b in cuts.iter().filter(|&&b| b >= a).step_by(7) {
                let pieces = [Some(&text[..a]), Some(&text[a..b]), Some(&text[b..])];
                assert_eq!(&run(parser(stream), &pieces), expected, "cuts {a}, {b}");
            }
        }
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let pieces: Vec<Option<&str>> = chars.iter().map(|c| Some(c.as_str())).collect();
        assert_eq!(&run(parser(stream), &pieces), expected, "char by char");
    }
}

fn calls(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, a)| (n.to_string(), a.to_string()))
        .collect()
}

fn content(text: &str) -> Answer {
    Answer {
        content: text.into(),
        calls: vec![],
    }
}

#[test]
fn a_json_call_with_nested_arguments_in_every_split() {
    let arguments = r#"{"city": "Paris \"centre\" {x}", "days": [1, {"deep": "}]"}], "n": {}}"#;
    let text = format!(" \n{{\"name\": \"get_weather\", \"parameters\": {arguments}}}");
    every_split(
        &text,
        &Answer {
            content: String::new(),
            calls: calls(&[("get_weather", arguments)]),
        },
    );
}

#[test]
fn type_function_and_arguments_key_are_read_too() {
    let text = r#"{"type": "function", "name": "get_time", "arguments": {"zone": "UTC"}}"#;
    every_split(
        text,
        &Answer {
            content: String::new(),
            calls: calls(&[("get_time", r#"{"zone": "UTC"}"#)]),
        },
    );
}

#[test]
fn several_calls_separated_by_semicolons_or_new_lines() {
    let text = r#"{"name": "get_weather", "parameters": {"city": "Oslo"}}; {"name": "get_time", "parameters": {}}
{"name": "get_time", "parameters": {"zone": "CET"}}"#;
    every_split(
        text,
        &Answer {
            content: String::new(),
            calls: calls(&[
                ("get_weather", r#"{"city": "Oslo"}"#),
                ("get_time", "{}"),
                ("get_time", r#"{"zone": "CET"}"#),
            ]),
        },
    );
}

#[test]
fn prose_and_json_that_is_not_a_call_are_content_unchanged() {
    for text in [
        "  The weather in Paris is {sunny}.",
        r#"{"answer": 42, "name": "get_weather"}"#,
        r#"{"name": "delete_everything", "parameters": {"now": true}}"#,
        r#"{"name": "get_weather", "parameters": "Paris"}"#,
        r#"{"name": "get_weather"}"#,
        "{}",
        "",
        " \n ",
    ] {
        every_split(text, &content(text));
    }
}

#[test]
fn malformed_json_is_content_when_calls_are_given_whole() {
    // Unclosed (the answer ended), and invalid inside the arguments: never a crash, never a call.
    for text in [
        r#"{"name": "get_weather", "parameters": {"city": "Paris""#,
        r#"{"name": "get_weather", "parameters": {"city": Paris}}"#,
        r#"{"name": "get_weather", "parameters": {"city": "Paris",}}"#,
        r#"{"name": "get_weather", "parameters": {"a": 1}} and then some text"#,
    ] {
        let answer = run(parser(false), &[Some(text)]);
        if answer.calls.is_empty() {
            assert_eq!(answer, content(text));
        } else {
            // The last one: a valid call, and the prose after it is content.
            assert_eq!(answer.calls, calls(&[("get_weather", r#"{"a": 1}"#)]));
            assert_eq!(answer.content, "and then some text");
        }
    }
}

#[test]
fn a_streamed_call_cut_short_keeps_what_streamed() {
    // With the grammar's guarantee the call streams; cut by max_tokens it stays a call with the
    // arguments so far (OpenAI's finish_reason "length" case).
    let text = r#"{"name": "get_weather", "parameters": {"city": "Par"#;
    let answer = run(parser(true), &[Some(text)]);
    assert_eq!(answer.calls, calls(&[("get_weather", r#"{"city": "Par"#)]));
    assert_eq!(answer.content, "");
}

#[test]
fn python_tag_builtin_calls_in_every_split() {
    let text = r#"brave_search.call(query="latest \"Rust\" release", count=3, fresh=True)"#;
    let cuts: Vec<usize> = (0..=text.len()).collect();
    for stream in [false, true] {
        for &a in &cuts {
            let pieces = [None, Some(&text[..a]), Some(&text[a..])];
            let answer = run(parser(stream), &pieces);
            assert_eq!(
                answer,
                Answer {
                    content: String::new(),
                    calls: calls(&[(
                        "brave_search",
                        r#"{"query":"latest \"Rust\" release","count":3,"fresh":true}"#
                    )]),
                },
                "cut at {a}"
            );
        }
    }
}

#[test]
fn python_tag_json_calls_and_code() {
    let json = r#"{"name": "get_time", "parameters": {"zone": "UTC"}}"#;
    assert_eq!(
        run(parser(false), &[Some("Let me check. "), None, Some(json)]),
        Answer {
            content: "Let me check. ".into(),
            calls: calls(&[("get_time", r#"{"zone":"UTC"}"#)]),
        }
    );
    let code = "import math\nprint(math.sqrt(2))\n";
    assert_eq!(
        run(parser(true), &[None, Some(code)]),
        Answer {
            content: String::new(),
            calls: calls(&[("python", r#"{"code":"import math\nprint(math.sqrt(2))"}"#)]),
        }
    );
    assert_eq!(run(parser(false), &[None, Some("  ")]), content(""));
}

#[test]
fn the_call_header_is_read_incrementally() {
    assert_eq!(call_header(r#"{"na"#), Header::Incomplete);
    assert_eq!(
        call_header(r#"{ "name" : "f" , "param"#),
        Header::Incomplete
    );
    assert_eq!(call_header(r#"{"name": "f", "x"#), Header::Incomplete);
    assert_eq!(call_header(r#"{"name": "f", "x": "#), Header::NotACall);
    assert_eq!(call_header(r#"{"name": "f", "y": 1"#), Header::NotACall);
    assert_eq!(call_header(r#"{"id": 1"#), Header::NotACall);
    let text = r#"{"name": "f\u0021", "parameters": {"#;
    assert_eq!(call_header(text), Header::Call("f!".into(), text.len() - 1));
}
