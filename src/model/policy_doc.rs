//! IAM policy documents, compared by meaning rather than by text.
//!
//! INTERFACE STUB: the real implementation replaces this file.

use std::borrow::Cow;
use std::ops::Range;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A policy document in canonical form; `==` is semantic equality.
#[derive(Debug, Clone)]
pub struct PolicyDocument {
    canonical: Value,
}

/// One problem found in a document, located by byte offsets into the text checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocProblem {
    pub span: Range<usize>,
    pub message: String,
    pub help: Option<String>,
}

impl PolicyDocument {
    pub fn parse(text: &str) -> Result<Self, DocProblem> {
        let text = decode(text);
        serde_json::from_str(&text).map(Self::from_value).map_err(|e| DocProblem {
            span: 0..0,
            message: e.to_string(),
            help: None,
        })
    }
    pub fn from_value(value: Value) -> Self {
        PolicyDocument { canonical: value }
    }
    pub fn canonical(&self) -> &Value {
        &self.canonical
    }
    pub fn to_pretty(&self) -> String {
        serde_json::to_string_pretty(&self.canonical).unwrap_or_default()
    }
    pub fn to_compact(&self) -> String {
        self.canonical.to_string()
    }
    pub fn size(&self) -> usize {
        self.to_compact().chars().filter(|c| !c.is_whitespace()).count()
    }
    pub fn statements(&self) -> &[Value] {
        match self.canonical.get("Statement") {
            Some(Value::Array(a)) => a,
            _ => &[],
        }
    }
}

impl PartialEq for PolicyDocument {
    fn eq(&self, other: &Self) -> bool {
        self.canonical == other.canonical
    }
}

impl Serialize for PolicyDocument {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.canonical.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PolicyDocument {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => PolicyDocument::parse(&s).map_err(|p| serde::de::Error::custom(p.message)),
            v => Ok(PolicyDocument::from_value(v)),
        }
    }
}

pub fn decode(text: &str) -> Cow<'_, str> {
    Cow::Borrowed(text)
}

pub fn check_identity_policy(text: &str) -> Result<PolicyDocument, Vec<DocProblem>> {
    PolicyDocument::parse(text).map_err(|p| vec![p])
}

pub fn admits_web_identity(_doc: &PolicyDocument, _provider_arn: &str, _issuer: &str, _subject: &str) -> bool {
    false
}
