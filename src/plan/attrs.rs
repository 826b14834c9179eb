//! A change's attributes: what a resource is before and after a change.
//!
//! On the wire (`before`/`after` in the JSON plan) this is a JSON object with
//! sorted keys, exactly as a `serde_json::Map` would be. In memory it is a
//! sorted vector whose policy documents stay [`PolicyDocument`]s (canonical
//! compact text) rather than `Value` trees: a plan from nothing of 10,000
//! bindings has 80,000 changes and 40,000 documents, and a B-tree node per
//! JSON object made that plan's peak three times the stack's. The JSON plan
//! writer re-indents the documents' text (`render::json`); whoever needs a
//! document as a tree gets it from [`Attrs::get`].

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::model::policy_doc::PolicyDocument;

/// One attribute's value.
#[derive(Debug, Clone)]
pub enum Attr {
    Value(Value),
    /// A policy document, held as its canonical text.
    Document(PolicyDocument),
    /// An object of strings (tags, annotations, labels), in key order: a
    /// B-tree node per such object was a fifth of a large plan's memory.
    Strings(Strings),
}

/// An object whose members are all strings, sorted by key. Shared: equal
/// objects in one plan (the ownership tags every resource carries) can be
/// one allocation ([`StringsPool`]).
#[derive(Debug, Clone, Default)]
pub struct Strings(Arc<StringsInner>);

#[derive(Debug, Default)]
struct StringsInner {
    entries: Vec<(String, String)>,
    /// The object as a tree, made when first asked for.
    tree: std::sync::OnceLock<Box<Value>>,
}

impl Strings {
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.entries.is_empty()
    }

    fn to_value(&self) -> Value {
        Value::Object(self.0.entries.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
    }
}

impl PartialEq for Strings {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.entries == other.0.entries
    }
}

impl Eq for Strings {}

impl std::hash::Hash for Strings {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.entries.hash(h);
    }
}

/// The string objects of one plan, each held once: a 10,000-binding plan
/// from nothing carries the same two ownership tags on 40,000 resources,
/// and a copy of them per resource was a tenth of its memory.
#[derive(Default)]
pub struct StringsPool(foldhash::HashSet<Strings>);

impl StringsPool {
    fn share(&mut self, s: &mut Strings) {
        match self.0.get(s) {
            Some(shared) => *s = shared.clone(),
            None => {
                self.0.insert(s.clone());
            }
        }
    }
}

impl Attr {
    /// The value as a JSON tree (a document's or an object's made and kept on first use).
    pub fn value(&self) -> &Value {
        match self {
            Attr::Value(v) => v,
            Attr::Document(d) => d.canonical(),
            Attr::Strings(s) => s.0.tree.get_or_init(|| Box::new(s.to_value())),
        }
    }

    /// The value as a JSON tree that is not kept: see [`PolicyDocument::tree`].
    pub fn tree(&self) -> Cow<'_, Value> {
        match self {
            Attr::Value(v) => Cow::Borrowed(v),
            Attr::Document(d) => Cow::Owned(d.tree()),
            Attr::Strings(s) => match s.0.tree.get() {
                Some(tree) => Cow::Borrowed(tree),
                None => Cow::Owned(s.to_value()),
            },
        }
    }

    /// The value of attribute `key`: a JSON object of strings is held as
    /// [`Strings`], unless it is a document (compared by meaning, not value).
    fn of(key: &str, value: Value) -> Attr {
        match value {
            Value::Object(map)
                if map.values().all(Value::is_string) && !crate::plan::DOCUMENT_ATTRIBUTES.contains(&key) =>
            {
                Attr::Strings(Strings(Arc::new(StringsInner {
                    entries: map
                        .into_iter()
                        .map(|(k, v)| match v {
                            Value::String(v) => (k, v),
                            _ => unreachable!("every member is a string"),
                        })
                        .collect(),
                    tree: std::sync::OnceLock::new(),
                })))
            }
            other => Attr::Value(other),
        }
    }
}

impl PartialEq for Attr {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Attr::Value(a), Attr::Value(b)) => a == b,
            (Attr::Document(a), Attr::Document(b)) => a.text() == b.text(),
            (Attr::Strings(a), Attr::Strings(b)) => a == b,
            (a, b) => *a.tree() == *b.tree(),
        }
    }
}

/// Attributes by name, sorted by name.
#[derive(Clone, Default, PartialEq)]
pub struct Attrs {
    entries: Vec<(Key, Attr)>,
}

/// An attribute's name: one of [`NAMES`], by position, or a name of its own
/// (read from a saved plan). 16 bytes, not a `Cow`'s 24: a plan holds
/// 400,000 of these.
#[derive(Clone, PartialEq)]
enum Key {
    Known(u8),
    Other(Box<str>),
}

impl Key {
    fn as_str(&self) -> &str {
        match self {
            Key::Known(i) => NAMES[usize::from(*i)],
            Key::Other(name) => name,
        }
    }

    fn of(name: Cow<'static, str>) -> Key {
        match NAMES.binary_search(&name.as_ref()) {
            Ok(i) => Key::Known(u8::try_from(i).expect("fewer than 256 names")),
            Err(_) => Key::Other(name.into_owned().into_boxed_str()),
        }
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl std::fmt::Debug for Attrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.entries.iter().map(|(k, v)| (k, v))).finish()
    }
}

impl Attrs {
    pub fn new() -> Self {
        Attrs::default()
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// Sets `key` (replacing what it had).
    pub fn set(&mut self, key: impl Into<Cow<'static, str>>, attr: Attr) {
        let key = key.into();
        match self.position(&key) {
            Ok(i) => self.entries[i].1 = attr,
            Err(i) => {
                // One more, not twice as many: a plan holds 160,000 of these.
                self.entries.reserve_exact(1);
                self.entries.insert(i, (Key::of(key), attr));
            }
        }
    }

    /// Sets `key` to a value.
    pub fn insert(&mut self, key: impl Into<Cow<'static, str>>, value: Value) {
        let key = key.into();
        let attr = Attr::of(&key, value);
        self.set(key, attr);
    }

    /// With `key` set to the document `doc`.
    pub fn with_document(mut self, key: &'static str, doc: &PolicyDocument) -> Self {
        self.set(key, Attr::Document(doc.clone()));
        self
    }

    /// Its string objects shared with the equal ones `pool` has seen.
    pub fn pool_strings(&mut self, pool: &mut StringsPool) {
        for (_, attr) in &mut self.entries {
            if let Attr::Strings(s) = attr {
                pool.share(s);
            }
        }
    }

    pub fn attr(&self, key: &str) -> Option<&Attr> {
        self.position(key).ok().map(|i| &self.entries[i].1)
    }

    /// The value of `key` as a JSON tree (see [`Attr::value`]).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.attr(key).map(Attr::value)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// The attributes in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Attr)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The attributes as a JSON object (documents as trees).
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter().map(|(k, v)| (k.to_owned(), v.tree().into_owned())).collect()
    }
}

impl std::ops::Index<&str> for Attrs {
    type Output = Value;

    /// The value of `key`, `null` when absent (as indexing a `Value` gives).
    fn index(&self, key: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(key).unwrap_or(&NULL)
    }
}

impl From<Attrs> for Map<String, Value> {
    fn from(attrs: Attrs) -> Self {
        attrs.to_map()
    }
}

/// The attribute names the planner writes, so that a name read from a JSON
/// object is not one more allocation per attribute of every change.
const NAMES: &[&str] = &[
    "annotations",
    "arn",
    "client_ids",
    "description",
    "document",
    "labels",
    "max_session_duration",
    "name",
    "namespace",
    "path",
    "permissions_boundary",
    "policy_arn",
    "role",
    "service_account_name",
    "stale_credentials",
    "tags",
    "thumbprints",
    "trust_policy",
    "url",
];

impl From<Map<String, Value>> for Attrs {
    fn from(map: Map<String, Value>) -> Self {
        // A serde_json Map iterates in key order: already sorted.
        Attrs {
            entries: map
                .into_iter()
                .map(|(k, v)| {
                    let attr = Attr::of(&k, v);
                    (Key::of(Cow::Owned(k)), attr)
                })
                .collect(),
        }
    }
}

impl From<Value> for Attrs {
    /// The members of a JSON object; anything else has none.
    fn from(value: Value) -> Self {
        match value {
            Value::Object(map) => map.into(),
            _ => Attrs::new(),
        }
    }
}

impl Serialize for Attrs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            match v {
                Attr::Value(v) => map.serialize_entry(k.as_str(), v)?,
                Attr::Document(d) => map.serialize_entry(k.as_str(), &d.tree())?,
                Attr::Strings(s) => map.serialize_entry(k.as_str(), &StringsMap(s))?,
            }
        }
        map.end()
    }
}

/// [`Strings`] serialised as the object it stands for.
struct StringsMap<'a>(&'a Strings);

impl Serialize for StringsMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter())
    }
}

impl<'de> Deserialize<'de> for Attrs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Map::<String, Value>::deserialize(d)?.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> PolicyDocument {
        PolicyDocument::parse(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#,
        )
        .unwrap()
    }

    #[test]
    fn written_as_the_json_object_it_stands_for() {
        let attrs =
            Attrs::from(json!({ "name": "a", "tags": {"k": "v"}, "arn": "x" })).with_document("document", &doc());
        let object = json!({ "name": "a", "tags": {"k": "v"}, "arn": "x", "document": doc().canonical() });
        assert_eq!(serde_json::to_value(&attrs).unwrap(), object);
        assert_eq!(serde_json::to_string_pretty(&attrs).unwrap(), serde_json::to_string_pretty(&object).unwrap());
        assert_eq!(attrs.keys().collect::<Vec<_>>(), ["arn", "document", "name", "tags"]);
        // Read back (a saved plan), the document is a plain value, and equal.
        let back: Attrs = serde_json::from_value(object).unwrap();
        assert!(matches!(back.attr("document"), Some(Attr::Value(_))));
        assert!(matches!(back.attr("tags"), Some(Attr::Strings(_))));
        assert_eq!(back.get("tags"), Some(&json!({"k": "v"})));
        assert_eq!(back, attrs);
        assert_eq!(back.get("document"), attrs.get("document"));
    }

    #[test]
    fn set_keeps_keys_sorted_and_unique() {
        let mut attrs = Attrs::new();
        for k in ["b", "a", "c", "a"] {
            attrs.insert(k, json!(k));
        }
        attrs.insert("a", json!(1));
        assert_eq!(attrs.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(attrs.get("a"), Some(&json!(1)));
        assert_eq!(attrs.get("z"), None);
        assert!(!attrs.contains_key("z"));
        assert_eq!(attrs.to_map(), json!({"a": 1, "b": "b", "c": "c"}).as_object().cloned().unwrap());
    }

    #[test]
    fn known_names_are_not_held_as_strings_of_their_own() {
        let attrs = Attrs::from(json!({ "name": "a", "odd": 1 }));
        let names: Vec<bool> = attrs.entries.iter().map(|(k, _)| matches!(k, Key::Known(_))).collect();
        assert_eq!(names, [true, false]);
        // Every name is listed once, sorted (the list is read by people).
        assert!(NAMES.windows(2).all(|w| w[0] < w[1]));
    }
}
