//! A small JSON parser that remembers where every key and value came from.
//!
//! serde_json reports no positions for values, and policy problems must point
//! at the offending text, so policy documents a user wrote are parsed here.
//! Objects keep their members in source order, duplicates included: IAM
//! rejects repeated keys, and the caller decides how to report them.
//!
//! # Why not a library
//!
//! Replacing this file with a maintained parser was evaluated against the
//! tests below, the policy_doc tests and tests/bad (2026-12); none keeps
//! every diagnostic and serde_json's strictness, so this parser stays.
//!
//! - `jsonc-parser` 0.34 (dprint, deno; no dependencies, ranges on every
//!   node), with every `ParseOptions` leniency turned off, still accepts
//!   what serde_json rejects: raw tabs, control characters and line breaks
//!   inside strings (`["a<TAB>b"]`, `{"a": "b<LF>"}`), Unicode whitespace
//!   between tokens (`{}<U+00A0>`, `[1]<U+2028>`), and the empty text
//!   (`Ok` with no value). A missing closing quote is not caught at the
//!   string: `{"Action": "s3:Get,<LF> "Resource": "x"}` becomes "unexpected
//!   token" at `Resource` instead of "unterminated string" at `"s3:Get,`.
//!   Its errors are a kind and a range that often differ from ours: a
//!   missing comma is an empty range at the end of the previous value
//!   (`[1 2]`: 2..2, not `2` at 3..4), `[01]` is "expected comma" rather
//!   than a leading zero, `{"a": 1` is "unterminated object" over 0..7,
//!   `\u12G4` spans 2..7. Its depth limit is a fixed 512 (513 levels
//!   parse). An adapter that restored our messages would have to re-scan
//!   strings, whitespace and the text after each error: a second lexer
//!   on top of the first, tied to a 0.x crate's error kinds.
//! - `json-syntax` 0.12 is strict, keeps duplicate keys and does not
//!   recurse, but its errors are only "unexpected character at byte N"
//!   (a trailing comma is reported at the `}` after it, so
//!   tests/bad/policies/syntax-error.json would move from 7:47 to 8:5), it
//!   accepts `1e400`, and it would add 21 crates to `cargo tree -e normal`
//!   (syn 1, proc-macro-error, seven lexical crates, ahash, hashbrown 0.12,
//!   indexmap 1, …).
//! - `json-spanned-value` 0.2 runs serde_json underneath, so its errors
//!   are serde_json's (line and column, "trailing comma"); objects are a
//!   `BTreeMap`, so repeated keys are either dropped or one "Duplicate
//!   field" error, not every repeat with its own span in source order.
//!
//! Numbers are handed to serde_json, so they become exactly the `Number`
//! serde_json would make.

use foldhash::{HashSet, HashSetExt};
use std::ops::Range;

use serde_json::{Number, Value};

/// serde_json's default recursion limit: deeper input is an error, not a
/// stack overflow.
const MAX_DEPTH: usize = 128;

/// A JSON value and the byte range of `text` it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    pub span: Range<usize>,
    pub node: Node,
}

/// The kinds of JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Spanned>),
    /// Members in source order, repeated keys included.
    Object(Vec<Member>),
}

/// One `"key": value` member of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub key: String,
    /// The key's string literal, quotes included.
    pub key_span: Range<usize>,
    pub value: Spanned,
}

/// Why the text is not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub span: Range<usize>,
    pub message: String,
}

/// Parses one JSON value that makes up the whole of `text` (surrounding
/// whitespace aside).
pub fn parse(text: &str) -> Result<Spanned, SyntaxError> {
    let mut parser = Parser { text, pos: 0, depth: 0 };
    parser.skip_whitespace();
    let value = parser.value()?;
    parser.skip_whitespace();
    if parser.pos < text.len() {
        return Err(parser.unexpected("the end of the text after the JSON value"));
    }
    Ok(value)
}

impl Spanned {
    /// The value without spans. Should a key repeat, the last one wins, as
    /// in serde_json.
    pub fn to_value(&self) -> Value {
        match &self.node {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::String(s) => Value::String(s.clone()),
            Node::Array(items) => Value::Array(items.iter().map(Spanned::to_value).collect()),
            Node::Object(members) => {
                Value::Object(members.iter().map(|m| (m.key.clone(), m.value.to_value())).collect())
            }
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.node {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    /// The members, if this is an object.
    pub fn members(&self) -> Option<&[Member]> {
        match &self.node {
            Node::Object(members) => Some(members),
            _ => None,
        }
    }

    /// The first member named `key`, if this is an object that has one.
    pub fn get(&self, key: &str) -> Option<&Member> {
        self.members()?.iter().find(|m| m.key == key)
    }

    /// Every member, at any depth, whose key already appeared earlier in the
    /// same object; in source order.
    pub fn duplicate_keys(&self) -> Vec<&Member> {
        let mut found = Vec::new();
        self.collect_duplicate_keys(&mut found);
        found
    }

    fn collect_duplicate_keys<'a>(&'a self, found: &mut Vec<&'a Member>) {
        match &self.node {
            Node::Array(items) => {
                for item in items {
                    item.collect_duplicate_keys(found);
                }
            }
            // A few members (every object of a usual policy) are compared
            // with those before them: cheaper than a hash set per object.
            Node::Object(members) if members.len() <= 16 => {
                for (i, member) in members.iter().enumerate() {
                    if members[..i].iter().any(|m| m.key == member.key) {
                        found.push(member);
                    }
                    member.value.collect_duplicate_keys(found);
                }
            }
            Node::Object(members) => {
                let mut seen = HashSet::new();
                for member in members {
                    if !seen.insert(member.key.as_str()) {
                        found.push(member);
                    }
                    member.value.collect_duplicate_keys(found);
                }
            }
            _ => {}
        }
    }
}

/// The length of the plain run at the start of `bytes`: up to the first
/// quote, backslash or control character (or the end), eight bytes at a
/// time. In each word the lowest byte flagged by the "has a zero byte" test
/// is exactly the first match: its false positives lie only above a true one.
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let found = (x.wrapping_sub(ONES * 0x20) & !x & HIGH)
            | zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    let rest = chunks.remainder();
    at + rest.iter().position(|b| matches!(b, b'"' | b'\\' | 0..=0x1f)).unwrap_or(rest.len())
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn peek_char(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    /// An error at the current position, naming what was found there: a
    /// whole word (`True`, `None`) when it is one, otherwise one character.
    fn unexpected(&self, expected: &str) -> SyntaxError {
        let rest = &self.text[self.pos..];
        let word = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let len = match rest.chars().next() {
            None => {
                return SyntaxError {
                    span: self.pos..self.pos,
                    message: format!("expected {expected}, found the end of the text"),
                };
            }
            Some(_) if word > 0 => word,
            Some(c) => c.len_utf8(),
        };
        let found = &rest[..len];
        let found = match found {
            "'" => "`'` (JSON strings use double quotes)".to_owned(),
            _ if found.chars().any(char::is_control) => format!("{found:?}"),
            _ => format!("`{found}`"),
        };
        SyntaxError { span: self.pos..self.pos + len, message: format!("expected {expected}, found {found}") }
    }

    fn error(span: Range<usize>, message: impl Into<String>) -> SyntaxError {
        SyntaxError { span, message: message.into() }
    }

    fn value(&mut self) -> Result<Spanned, SyntaxError> {
        let start = self.pos;
        let node = match self.peek() {
            Some(b'{') => return self.object(),
            Some(b'[') => return self.array(),
            Some(b'"') => Node::String(self.string()?),
            Some(b'-' | b'0'..=b'9') => Node::Number(self.number()?),
            Some(b't') => self.literal("true", Node::Bool(true))?,
            Some(b'f') => self.literal("false", Node::Bool(false))?,
            Some(b'n') => self.literal("null", Node::Null)?,
            _ => return Err(self.unexpected("a JSON value")),
        };
        Ok(Spanned { span: start..self.pos, node })
    }

    fn literal(&mut self, word: &str, node: Node) -> Result<Node, SyntaxError> {
        if !self.text[self.pos..].starts_with(word) {
            return Err(self.unexpected("a JSON value"));
        }
        self.pos += word.len();
        Ok(node)
    }

    fn enter(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Self::error(self.pos..self.pos + 1, format!("nesting is deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn object(&mut self) -> Result<Spanned, SyntaxError> {
        let start = self.pos;
        self.enter()?;
        self.pos += 1;
        let mut members = Vec::new();
        self.skip_whitespace();
        if !self.eat(b'}') {
            loop {
                self.skip_whitespace();
                if self.peek() != Some(b'"') {
                    return Err(self.unexpected("a string key"));
                }
                let key_start = self.pos;
                let key = self.string()?;
                let key_span = key_start..self.pos;
                self.skip_whitespace();
                if !self.eat(b':') {
                    return Err(self.unexpected("`:` after an object key"));
                }
                self.skip_whitespace();
                let value = self.value()?;
                members.push(Member { key, key_span, value });
                self.skip_whitespace();
                let comma = self.pos;
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return Err(self.unexpected("`,` or `}` after an object member"));
                }
                self.skip_whitespace();
                if self.peek() == Some(b'}') {
                    return Err(Self::error(comma..comma + 1, "trailing comma is not allowed in JSON"));
                }
            }
        }
        self.depth -= 1;
        Ok(Spanned { span: start..self.pos, node: Node::Object(members) })
    }

    fn array(&mut self) -> Result<Spanned, SyntaxError> {
        let start = self.pos;
        self.enter()?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if !self.eat(b']') {
            loop {
                self.skip_whitespace();
                items.push(self.value()?);
                self.skip_whitespace();
                let comma = self.pos;
                if self.eat(b']') {
                    break;
                }
                if !self.eat(b',') {
                    return Err(self.unexpected("`,` or `]` after an array element"));
                }
                self.skip_whitespace();
                if self.peek() == Some(b']') {
                    return Err(Self::error(comma..comma + 1, "trailing comma is not allowed in JSON"));
                }
            }
        }
        self.depth -= 1;
        Ok(Spanned { span: start..self.pos, node: Node::Array(items) })
    }

    /// Parses the string literal at the current `"`.
    fn string(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        // The usual string is one plain run and its closing quote: taken
        // as it is, in a String of its exact length.
        let rest = &self.text.as_bytes()[self.pos..];
        let run = plain_run(rest);
        if rest.get(run) == Some(&b'"') {
            out.push_str(&self.text[self.pos..self.pos + run]);
            self.pos += run + 1;
            return Ok(out);
        }
        loop {
            // The plain run up to the next quote, backslash or control
            // character, copied at once: policy documents are mostly such
            // runs, and a character at a time was a third of the parse.
            let rest = &self.text.as_bytes()[self.pos..];
            let run = plain_run(rest);
            if run > 0 {
                // The run ends before an ASCII byte or at the end: a char boundary.
                out.push_str(&self.text[self.pos..self.pos + run]);
                self.pos += run;
            }
            match self.peek_char() {
                None => return Err(Self::error(start..self.pos, "unterminated string")),
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => out.push(self.escape()?),
                // JSON has no raw line breaks inside strings, so a line break
                // almost always means the closing quote is missing.
                Some('\n' | '\r') => {
                    return Err(Self::error(
                        start..self.pos,
                        "unterminated string (a line break inside a string must be written `\\n`)",
                    ));
                }
                Some(c) if c < ' ' => {
                    return Err(Self::error(
                        self.pos..self.pos + 1,
                        format!("control character {:?} must be escaped in a JSON string", c),
                    ));
                }
                Some(c) => {
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    /// Parses the escape sequence at the current `\`.
    fn escape(&mut self) -> Result<char, SyntaxError> {
        let start = self.pos;
        self.pos += 1;
        let Some(c) = self.peek_char() else {
            return Err(Self::error(start..self.pos, "unterminated string"));
        };
        self.pos += c.len_utf8();
        Ok(match c {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => return self.unicode_escape(start),
            _ => {
                return Err(Self::error(
                    start..self.pos,
                    format!("invalid escape `\\{c}`: JSON allows \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX"),
                ));
            }
        })
    }

    /// The rest of a `\uXXXX` escape that began at `start`, including the
    /// second half of a UTF-16 surrogate pair.
    fn unicode_escape(&mut self, start: usize) -> Result<char, SyntaxError> {
        let first = self.hex4(start)?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !self.text[self.pos..].starts_with("\\u") {
                    return Err(Self::error(start..self.pos, "unpaired UTF-16 surrogate in a `\\u` escape"));
                }
                self.pos += 2;
                let second = self.hex4(start)?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(Self::error(start..self.pos, "unpaired UTF-16 surrogate in a `\\u` escape"));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            _ => first,
        };
        char::from_u32(code).ok_or_else(|| Self::error(start..self.pos, "unpaired UTF-16 surrogate in a `\\u` escape"))
    }

    fn hex4(&mut self, start: usize) -> Result<u32, SyntaxError> {
        let digits = self.text.get(self.pos..self.pos + 4).filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        match digits.and_then(|d| u32::from_str_radix(d, 16).ok()) {
            Some(code) => {
                self.pos += 4;
                Ok(code)
            }
            None => Err(Self::error(start..self.pos, "a `\\u` escape needs four hexadecimal digits")),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Number, SyntaxError> {
        let start = self.pos;
        self.eat(b'-');
        let int_start = self.pos;
        match self.digits() {
            0 => return Err(self.unexpected("a digit")),
            n if n > 1 && self.text.as_bytes()[int_start] == b'0' => {
                return Err(Self::error(int_start..self.pos, "leading zeros are not allowed in JSON numbers"));
            }
            _ => {}
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(self.unexpected("a digit after the decimal point"));
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(self.unexpected("a digit in the exponent"));
            }
        }
        let literal = &self.text[start..self.pos];
        serde_json::from_str(literal)
            .map_err(|_| Self::error(start..self.pos, format!("number `{literal}` is out of range")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_plain_run_ends_where_a_byte_at_a_time_finds_its_end() {
        let slow = |b: &[u8]| b.iter().position(|b| matches!(b, b'"' | b'\\' | 0..=0x1f)).unwrap_or(b.len());
        // Each stop byte, and the bytes beside the ranges, at every offset
        // of texts around the word size, with a later stop behind it.
        let stops = [b'"', b'\\', 0, 0x1f, b'\n'];
        let others = [b'a', 0x20, 0x21, b'#', b'[', b']', 0x7f, 0x80, 0xc3, 0xff];
        for len in 0..40 {
            for &other in &others {
                let plain = vec![other; len];
                assert_eq!(plain_run(&plain), slow(&plain));
                for at in 0..len {
                    for &stop in &stops {
                        let mut bytes = plain.clone();
                        bytes[at] = stop;
                        if at + 2 < len {
                            bytes[at + 2] = b'"';
                        }
                        assert_eq!(plain_run(&bytes), slow(&bytes), "{bytes:?}");
                    }
                }
            }
        }
    }

    fn error(text: &str) -> (String, Range<usize>) {
        let err = parse(text).expect_err(text);
        (err.message, err.span)
    }

    #[test]
    fn values_match_serde_json() {
        let texts = [
            r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"]}]}"#,
            r#"  [1, -2, 3.5, 1e3, -0.25E-2, true, false, null, "", {}, []]  "#,
            r#"{"esc": "a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00 \u20ac", "ü": "日本"}"#,
            r#"{"k": 1, "k": 2}"#,
            "123",
        ];
        for text in texts {
            let expected: Value = serde_json::from_str(text).unwrap();
            assert_eq!(parse(text).unwrap().to_value(), expected, "{text}");
        }
    }

    #[test]
    fn spans_cover_keys_and_values() {
        let text = r#"{ "Effect" : "Allow", "Action": ["s3:Get*", 7] }"#;
        let root = parse(text).unwrap();
        assert_eq!(root.span, 0..text.len());
        let effect = root.get("Effect").unwrap();
        assert_eq!(&text[effect.key_span.clone()], r#""Effect""#);
        assert_eq!(&text[effect.value.span.clone()], r#""Allow""#);
        let Node::Array(items) = &root.get("Action").unwrap().value.node else {
            panic!("Action is an array");
        };
        assert_eq!(&text[items[0].span.clone()], r#""s3:Get*""#);
        assert_eq!(&text[items[1].span.clone()], "7");
        assert_eq!(items[0].as_str(), Some("s3:Get*"));
        assert!(root.get("Resource").is_none());
    }

    #[test]
    fn duplicate_keys_are_found_at_any_depth() {
        let text = r#"{"a": 1, "b": [{"c": 1, "c": 2}], "a": 3}"#;
        let root = parse(text).unwrap();
        let spans: Vec<&str> = root.duplicate_keys().iter().map(|m| &text[m.key_span.clone()]).collect();
        assert_eq!(spans, [r#""c""#, r#""a""#]);
        assert_eq!(root.duplicate_keys()[1].key_span, 34..37);
    }

    #[test]
    fn syntax_errors_say_what_was_expected_and_where() {
        let cases: &[(&str, &str, Range<usize>)] = &[
            (r#"{"a": 1 "b": 2}"#, "expected `,` or `}` after an object member, found `\"`", 8..9),
            (r#"{"a": 1,}"#, "trailing comma is not allowed in JSON", 7..8),
            ("[1, 2, ]", "trailing comma is not allowed in JSON", 5..6),
            ("[1 2]", "expected `,` or `]` after an array element, found `2`", 3..4),
            (r#"{"a": "b"#, "unterminated string", 6..8),
            ("{\"a\": \"b\n\"}", "unterminated string (a line break", 6..8),
            (r#"{"a" 1}"#, "expected `:` after an object key, found `1`", 5..6),
            (r#"{a: 1}"#, "expected a string key, found `a`", 1..2),
            (r#"{'a': 1}"#, "expected a string key, found `'` (JSON strings use double quotes)", 1..2),
            (r#"{"a": True}"#, "expected a JSON value, found `True`", 6..10),
            (r#"{"a": }"#, "expected a JSON value, found `}`", 6..7),
            ("", "expected a JSON value, found the end of the text", 0..0),
            (r#"{"a": 1"#, "expected `,` or `}` after an object member, found the end of the text", 7..7),
            (r#"{} {}"#, "expected the end of the text after the JSON value, found `{`", 3..4),
            (r#"["\x"]"#, "invalid escape `\\x`", 2..4),
            (r#"["\u12G4"]"#, "a `\\u` escape needs four hexadecimal digits", 2..4),
            (r#"["\ud800"]"#, "unpaired UTF-16 surrogate", 2..8),
            (r#"["\udc00"]"#, "unpaired UTF-16 surrogate", 2..8),
            ("[\"a\tb\"]", "control character '\\t' must be escaped", 3..4),
            ("[01]", "leading zeros are not allowed", 1..3),
            ("[1.]", "expected a digit after the decimal point, found `]`", 3..4),
            ("[1e]", "expected a digit in the exponent, found `]`", 3..4),
            ("[-]", "expected a digit, found `]`", 2..3),
            ("[1e400]", "number `1e400` is out of range", 1..6),
        ];
        for (text, message, span) in cases {
            let (got, got_span) = error(text);
            assert!(got.starts_with(message), "{text}: {got}");
            assert_eq!(&got_span, span, "{text}: {got}");
        }
    }

    /// What lenient parsers (JSONC, JSON5, even jsonc-parser with every
    /// leniency turned off) accept and serde_json, like this one, rejects.
    #[test]
    fn rejects_everything_serde_json_rejects() {
        let texts = [
            "",
            "  ",
            "// c\n{}",
            "{} /* c */",
            "{a: 1}",
            "{'a': 1}",
            "[1,]",
            "[0x1F]",
            "[+1]",
            "[.5]",
            "[Infinity]",
            "[NaN]",
            "[01]",
            "[-01]",
            r#"["\v"]"#,
            r#"["\x41"]"#,
            "[\"a\\\nb\"]",
            "[\"a\tb\"]",
            "[\"a\u{1}b\"]",
            "{\"a\": \"b\n\"}",
            "{}\u{a0}",
            "[1]\u{2028}",
            "\u{feff}{}",
            r#"["\ud800"]"#,
            "[1e400]",
        ];
        for text in texts {
            assert!(serde_json::from_str::<Value>(text).is_err(), "serde_json accepts {text:?}");
            assert!(parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn numbers_are_serde_json_numbers() {
        let text = "[12345678901234567890, -9223372036854775809, 1.0, 1E2, 0.1, 1e-400, -0, 1.7976931348623157e308]";
        let expected: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse(text).unwrap().to_value(), expected);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(error(&deep).0.contains("nesting"));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok).is_ok());
        let (message, span) = error(&"[".repeat(100_000));
        assert!(message.contains("nesting"));
        assert_eq!(span, MAX_DEPTH..MAX_DEPTH + 1);
    }

    #[test]
    fn multibyte_text_keeps_byte_spans() {
        let text = r#"{"ü": "日本", "x": x}"#;
        let (message, span) = error(text);
        assert_eq!(message, "expected a JSON value, found `x`");
        assert_eq!(&text[span], "x");
        let root = parse(r#"{"ü": "日本"}"#).unwrap();
        assert_eq!(root.to_value(), json!({"ü": "日本"}));
    }
}
