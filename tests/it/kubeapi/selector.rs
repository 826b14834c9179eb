//! Label and field selectors, as the API server parses them from
//! `labelSelector` / `fieldSelector` query parameters and from a
//! Deployment's `spec.selector`.

use serde_json::{Map, Value};

/// One requirement of a label selector; a selector is their conjunction.
#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Requirement {
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        let value = |key: &str| labels.get(key).and_then(Value::as_str);
        match self {
            Requirement::Eq(k, v) => value(k) == Some(v),
            // Kubernetes: `a!=b` also matches objects that have no label `a`.
            Requirement::NotEq(k, v) => value(k) != Some(v),
            Requirement::In(k, vs) => value(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => value(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        }
    }
}

pub fn matches_all(reqs: &[Requirement], labels: &Map<String, Value>) -> bool {
    reqs.iter().all(|r| r.matches(labels))
}

/// Parses the string form: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
/// `a notin (x)`, `a`, `!a`, comma-separated (AND). An empty selector
/// matches everything.
pub fn parse(text: &str) -> Result<Vec<Requirement>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    split_top_level(text)?.into_iter().map(parse_requirement).collect()
}

/// Splits on the commas that separate requirements, not those inside `( )`.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(format!("unbalanced parentheses in selector {text:?}"));
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced parentheses in selector {text:?}"));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    let part = part.trim();
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(key_of(key, part)?));
    }
    // `!=` before `==` before `=`, since each contains the next.
    if let Some((k, v)) = part.split_once("!=") {
        return Ok(Requirement::NotEq(key_of(k, part)?, value_of(v, part)?));
    }
    if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::Eq(key_of(k, part)?, value_of(v, part)?));
    }
    if let Some((head, rest)) = part.split_once('(') {
        let inner = rest.strip_suffix(')').ok_or_else(|| format!("expected ')' at the end of {part:?}"))?;
        let values = inner.split(',').map(|v| value_of(v, part)).collect::<Result<Vec<_>, _>>()?;
        let mut words = head.split_whitespace();
        let (Some(key), Some(op), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("expected `key in (…)` or `key notin (…)`, found {part:?}"));
        };
        let key = key_of(key, part)?;
        return match op {
            "in" => Ok(Requirement::In(key, values)),
            "notin" => Ok(Requirement::NotIn(key, values)),
            _ => Err(format!("unknown selector operator {op:?} in {part:?}")),
        };
    }
    Ok(Requirement::Exists(key_of(part, part)?))
}

fn key_of(key: &str, part: &str) -> Result<String, String> {
    let key = key.trim();
    let valid = !key.is_empty()
        && key.len() <= 317
        && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && key.matches('/').count() <= 1;
    if valid { Ok(key.to_string()) } else { Err(format!("invalid label key {key:?} in selector {part:?}")) }
}

fn value_of(value: &str, part: &str) -> Result<String, String> {
    let value = value.trim();
    let valid = value.len() <= 63 && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid { Ok(value.to_string()) } else { Err(format!("invalid label value {value:?} in selector {part:?}")) }
}

/// A metav1.LabelSelector (`matchLabels`, `matchExpressions`) as requirements.
pub fn from_label_selector(selector: &Value) -> Result<Vec<Requirement>, String> {
    let mut reqs = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            let v = v.as_str().ok_or_else(|| format!("matchLabels.{k} is not a string"))?;
            reqs.push(Requirement::Eq(k.clone(), v.to_string()));
        }
    }
    for expr in selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = expr.get("key").and_then(Value::as_str).ok_or("matchExpressions[].key is required")?.to_string();
        let values: Vec<String> = expr
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        reqs.push(match expr.get("operator").and_then(Value::as_str) {
            Some("In") => Requirement::In(key, values),
            Some("NotIn") => Requirement::NotIn(key, values),
            Some("Exists") => Requirement::Exists(key),
            Some("DoesNotExist") => Requirement::NotExists(key),
            other => return Err(format!("unknown matchExpressions operator {other:?}")),
        });
    }
    Ok(reqs)
}

/// A field selector over the fields every kind supports:
/// `metadata.name` and `metadata.namespace`, with `=`, `==` or `!=`.
#[derive(Debug)]
pub struct FieldRequirement {
    field: String,
    value: String,
    equal: bool,
}

pub fn parse_fields(text: &str) -> Result<Vec<FieldRequirement>, String> {
    let mut reqs = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            (f, v, true)
        } else {
            return Err(format!("invalid field selector {part:?}: expected field=value"));
        };
        let field = field.trim();
        if field != "metadata.name" && field != "metadata.namespace" {
            // The message real API servers give for an unsupported field label.
            return Err(format!("field label not supported: {field}"));
        }
        reqs.push(FieldRequirement { field: field.to_string(), value: value.trim().to_string(), equal });
    }
    Ok(reqs)
}

pub fn fields_match(reqs: &[FieldRequirement], obj: &Value) -> bool {
    reqs.iter().all(|r| {
        let key = r.field.trim_start_matches("metadata.");
        let actual = obj.get("metadata").and_then(|m| m.get(key)).and_then(Value::as_str).unwrap_or("");
        (actual == r.value) == r.equal
    })
}
