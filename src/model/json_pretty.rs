//! Pretty JSON written byte for byte as serde_json's `to_writer_pretty`
//! writes it (two-space indent, `": "`, empty containers as `{}`/`[]`), but
//! straight into a buffer and from compact text as well as from values.
//!
//! Why not serde_json itself: the JSON plan of 100,000 bindings is some
//! 700 MB, most of it policy documents that irsa holds as canonical compact
//! text (`PolicyDocument`). Through serde each document would first be
//! parsed into a `Value` tree (a B-tree node per object) only to be
//! written out again; [`compact_to_pretty`] re-indents the text as it is.
//! The tests hold every function here to serde_json's bytes.

use serde::Serialize;
use serde_json::{Map, Value};

/// Which bytes serde_json escapes, and how: `0` none, `b'u'` as `\u00XX`,
/// anything else as a backslash and that byte (`\"`, `\\`, `\n`, ...).
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// `s` as a JSON string, quotes included.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most strings (names, ARNs, actions) need no escape: one scan the
    // compiler vectorises (a table lookup it cannot), then one copy.
    if !bytes.iter().fold(false, |any, &b| any | (b < 0x20) | (b == b'"') | (b == b'\\')) {
        out.extend_from_slice(bytes);
    } else {
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape = ESCAPE[b as usize];
            if escape == 0 {
                continue;
            }
            out.extend_from_slice(&bytes[start..i]);
            if escape == b'u' {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            } else {
                out.push(b'\\');
                out.push(escape);
            }
            start = i + 1;
        }
        out.extend_from_slice(&bytes[start..]);
    }
    out.push(b'"');
}

/// A newline and the indentation of nesting level `level`.
pub fn newline(out: &mut Vec<u8>, level: usize) {
    out.push(b'\n');
    for _ in 0..level {
        out.extend_from_slice(b"  ");
    }
}

/// `value` as pretty JSON whose first line continues the current one and
/// whose other lines sit at nesting level `level`.
pub fn write_value(out: &mut Vec<u8>, value: &Value, level: usize) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // serde_json's own digits (itoa, ryu): a Number written by serde is
        // the reference, and numbers are rare here.
        Value::Number(n) => serde_json::to_writer(&mut *out, n).expect("writing to a Vec cannot fail"),
        Value::String(s) => write_str(out, s),
        Value::Array(items) if items.is_empty() => out.extend_from_slice(b"[]"),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                newline(out, level + 1);
                write_value(out, item, level + 1);
            }
            newline(out, level);
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map, level),
    }
}

/// A JSON object as [`write_value`] writes it, from the map alone (no
/// `Value` around it to build).
pub fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>, level: usize) {
    if map.is_empty() {
        out.extend_from_slice(b"{}");
        return;
    }
    out.push(b'{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        newline(out, level + 1);
        write_str(out, k);
        out.extend_from_slice(b": ");
        write_value(out, v, level + 1);
    }
    newline(out, level);
    out.push(b'}');
}

/// The compact JSON text `compact` (as serde_json's `to_string` writes it:
/// no whitespace outside strings) as pretty JSON at nesting level `level`,
/// exactly what serde_json's pretty writer makes of the value it holds.
pub fn compact_to_pretty(out: &mut Vec<u8>, compact: &str, level: usize) {
    let bytes = compact.as_bytes();
    let mut depth = level;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'{' | b'[' => {
                let close = if b == b'{' { b'}' } else { b']' };
                if bytes.get(i + 1) == Some(&close) {
                    out.push(b);
                    out.push(close);
                    i += 2;
                    continue;
                }
                out.push(b);
                depth += 1;
                newline(out, depth);
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(out, depth);
                out.push(b);
            }
            b',' => {
                out.push(b',');
                newline(out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            b'"' => {
                // Copied as it is, escapes and all, to the closing quote.
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                let end = (i + 1).min(bytes.len());
                out.extend_from_slice(&bytes[start..end]);
            }
            _ => out.push(b),
        }
        i += 1;
    }
}

/// Anything serialisable, pretty at nesting level `level`: serde_json's own
/// pretty text with each line after the first indented. Newlines in that text
/// are all structural (a string's are escaped), so this is exact. For the
/// small, rare parts of a plan (its summary, findings, warnings).
pub fn write_serialized<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T, level: usize) {
    let text = serde_json::to_vec_pretty(value).expect("plain data serialises to JSON");
    let mut start = 0;
    for (i, &b) in text.iter().enumerate() {
        if b == b'\n' {
            out.extend_from_slice(&text[start..i]);
            newline(out, level);
            start = i + 1;
        }
    }
    out.extend_from_slice(&text[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn samples() -> Vec<Value> {
        let mut all: String = (0u8..=0x7f).map(char::from).collect();
        all.push_str("é☃𝄞\u{2028}");
        vec![
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-17),
            json!(u64::MAX),
            json!(1.5),
            json!(1e300),
            json!(-0.000001),
            json!(""),
            json!(all),
            json!("a\"b\\c/d"),
            json!([]),
            json!({}),
            json!([[]]),
            json!({"a": {}}),
            json!({"a": [], "b": [{}], "c": [[], [1, [2, {}]]]}),
            json!({"Statement": [{"Action": ["s3:GetObject"], "Condition": {"StringEquals": {"k:sub": ["system:serviceaccount:a:b"]}}, "Effect": "Allow", "Principal": {"Federated": ["arn:aws:iam::1:oidc-provider/x"]}, "Resource": ["*"], "Sid": "a,b:{c}[d]"}], "Version": "2012-10-17"}),
            json!({"k\"ey": "v\\\"", "\n": ["\t", "\u{1}"], "{": "}", "[": ":", ",": ","}),
        ]
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        for v in samples() {
            let mut out = Vec::new();
            write_value(&mut out, &v, 0);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string_pretty(&v).unwrap(), "{v}");
        }
    }

    #[test]
    fn compact_text_is_reindented_as_serde_json_writes_its_value() {
        for v in samples() {
            let compact = serde_json::to_string(&v).unwrap();
            let mut out = Vec::new();
            compact_to_pretty(&mut out, &compact, 0);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string_pretty(&v).unwrap(), "{compact}");
        }
    }

    #[test]
    fn nested_writes_indent_every_line_after_the_first() {
        // Each way of writing, inside an object at level 1, is serde_json's
        // pretty text of the whole.
        for v in samples() {
            let whole = serde_json::to_string_pretty(&json!({ "x": v })).unwrap();
            let compact = serde_json::to_string(&v).unwrap();
            type Writer = Box<dyn Fn(&mut Vec<u8>)>;
            let writers: Vec<Writer> = vec![
                Box::new({
                    let v = v.clone();
                    move |out| write_value(out, &v, 1)
                }),
                Box::new(move |out| compact_to_pretty(out, &compact, 1)),
                Box::new({
                    let v = v.clone();
                    move |out| write_serialized(out, &v, 1)
                }),
            ];
            for write in writers {
                let mut out = b"{\n  \"x\": ".to_vec();
                write(&mut out);
                out.extend_from_slice(b"\n}");
                assert_eq!(String::from_utf8(out).unwrap(), whole);
            }
        }
    }

    #[test]
    fn every_character_is_escaped_as_serde_json_escapes_it() {
        for c in (0u32..0x800).chain([0x2028, 0xfeff, 0x1f600]).filter_map(char::from_u32) {
            let s = format!("a{c}b{c}");
            let mut out = Vec::new();
            write_str(&mut out, &s);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&s).unwrap(), "U+{:04X}", c as u32);
        }
    }
}
