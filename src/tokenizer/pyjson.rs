//! JSON exactly as Python's `json.dumps` writes it, which is what HF transformers' `tojson`
//! filter produces: keys in their given order, non-ASCII kept (`ensure_ascii=False`),
//! `", "` and `": "` separators (`","` at line ends with `indent`), Python float repr.

use serde_json::Value;

/// `json.dumps(value, ensure_ascii=False, indent=indent)`.
pub fn dumps(value: &Value, indent: Option<usize>) -> String {
    let mut out = String::new();
    write_value(&mut out, value, indent, 0);
    out
}

fn write_value(out: &mut String, value: &Value, indent: Option<usize>, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&python_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            write_container(out, '[', ']', items.iter(), indent, depth, |out, v, d| {
                write_value(out, v, indent, d)
            })
        }
        Value::Object(map) => write_container(
            out,
            '{',
            '}',
            map.iter(),
            indent,
            depth,
            |out, (k, v), d| {
                write_string(out, k);
                out.push_str(": ");
                write_value(out, v, indent, d);
            },
        ),
    }
}

fn write_container<T>(
    out: &mut String,
    open: char,
    close: char,
    items: impl ExactSizeIterator<Item = T>,
    indent: Option<usize>,
    depth: usize,
    mut write_item: impl FnMut(&mut String, T, usize),
) {
    out.push(open);
    if items.len() == 0 {
        out.push(close);
        return;
    }
    let newline = |out: &mut String, level: usize| {
        if let Some(width) = indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', width * level));
        }
    };
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(if indent.is_some() { "," } else { ", " });
        }
        newline(out, depth + 1);
        write_item(out, item, depth + 1);
    }
    newline(out, depth);
    out.push(close);
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: shortest round-trip digits, positional for exponents in -4..16,
/// scientific (`1e-05`, `1.5e+16`) otherwise, always with a `.0` or an exponent.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let sci = format!("{f:e}"); // e.g. "1.5e16", "-2e-5"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if f == 0.0 || (-4..16).contains(&exp) {
        let s = format!("{f}");
        if s.contains('.') { s } else { s + ".0" }
    } else {
        format!(
            "{mantissa}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compact_and_indented_like_python() {
        let v = json!({"b": [1, 2.5, {}], "a": "é\"\n", "c": [], "d": null, "e": true});
        assert_eq!(
            dumps(&v, None),
            r#"{"b": [1, 2.5, {}], "a": "é\"\n", "c": [], "d": null, "e": true}"#
        );
        assert_eq!(
            dumps(&json!({"x": [1, {"y": "z"}]}), Some(4)),
            "{\n    \"x\": [\n        1,\n        {\n            \"y\": \"z\"\n        }\n    ]\n}"
        );
    }

    #[test]
    fn floats_like_python_repr() {
        for (f, s) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (0.0001, "0.0001"),
            (123456.789, "123456.789"),
            (-2.0, "-2.0"),
            (1e15, "1000000000000000.0"),
        ] {
            assert_eq!(python_float(f), s);
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            dumps(&json!("a\u{01}\u{08}\u{0c}\t/"), None),
            "\"a\\u0001\\b\\f\\t/\""
        );
    }
}
