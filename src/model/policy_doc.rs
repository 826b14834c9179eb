//! IAM policy documents, compared by meaning rather than by text.
//!
//! IAM hands documents back reformatted: statements and list entries
//! reordered, one-element lists collapsed to strings, account ids expanded to
//! root ARNs, booleans turned into strings. Comparing text would show those
//! as perpetual diffs (as in Terraform's AWS provider and ACK), so every
//! document is brought to one canonical form first, and equality compares
//! canonical forms with action names folded to lower case.

use foldhash::{HashSet, HashSetExt};
use std::borrow::Cow;
use std::ops::Range;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
#[cfg(test)]
use serde_json::Map;
use serde_json::Value;

use super::json_span::{self, Member, Node, Spanned, SyntaxError};

/// A policy document in canonical form; `==` is semantic equality.
///
/// Held as its canonical compact text, the tree parsed from it on first
/// use: most documents of a large stack (and of its snapshot) are only
/// compared and measured, and a `Value` tree of a small document (a
/// B-tree node per object) is ten times its text. A 10,000-binding stack
/// holds some 80,000 of them between the file and the snapshot.
pub struct PolicyDocument {
    /// Canonical compact JSON, as serde_json writes the canonical tree.
    /// Shared: a plan's change carries the stack's or the snapshot's
    /// document, and a copy of each made the documents a ninth of a
    /// 10,000-binding plan's memory.
    text: std::sync::Arc<str>,
    /// The canonical tree, parsed back from `text` when first asked for.
    /// A `OnceBox` (one pointer), so that a document is 24 bytes: a change's
    /// attribute, which may be a document, then fits in 32 (`plan::attrs`).
    tree: once_cell::race::OnceBox<Value>,
}

impl Clone for PolicyDocument {
    /// The text, shared; not the tree, which a copy rarely needs and
    /// parses again when it does.
    fn clone(&self) -> Self {
        PolicyDocument { text: self.text.clone(), tree: once_cell::race::OnceBox::new() }
    }
}

impl std::fmt::Debug for PolicyDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyDocument").field("canonical", &self.text).finish()
    }
}

/// One problem found in a document, located by byte offsets into the text checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DocProblem {
    /// Byte range of the offending key or value. A missing element is
    /// reported at the opening `{` of the object that lacks it.
    pub span: Range<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it, where there is something useful to say.
    pub help: Option<String>,
}

impl DocProblem {
    fn new(span: Range<usize>, message: impl Into<String>) -> Self {
        DocProblem { span, message: message.into(), help: None }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl From<SyntaxError> for DocProblem {
    fn from(error: SyntaxError) -> Self {
        DocProblem::new(error.span, error.message)
    }
}

impl PolicyDocument {
    /// Parses a document read back from IAM or from a snapshot: decodes it
    /// if percent-encoded (see [`decode`]), then accepts any JSON object.
    /// An error's span is a byte range of the decoded text.
    pub fn parse(text: &str) -> Result<Self, DocProblem> {
        let text = decode(text);
        let root = json_span::parse(&text)?;
        if let Some(duplicate) = root.duplicate_keys().first() {
            return Err(duplicate_key(duplicate));
        }
        if root.members().is_none() {
            return Err(not_an_object(&root));
        }
        Ok(Self::from_tree(&root))
    }

    /// The document of a parsed tree, written in canonical form.
    fn from_tree(tree: &impl Tree) -> Self {
        PolicyDocument { text: canonical_text(tree), tree: once_cell::race::OnceBox::new() }
    }

    /// Canonicalizes an already-parsed document. Elements irsa does not
    /// understand are kept as they are.
    pub fn from_value(value: Value) -> Self {
        Self::from_tree(&value)
    }

    /// The canonical form: statements and lists sorted, singletons as lists.
    pub fn canonical(&self) -> &Value {
        // Text serde_json wrote from a Value parses back to that Value
        // (floats round-trip through ryu); `Null` cannot happen.
        self.tree.get_or_init(|| Box::new(serde_json::from_str(&self.text).unwrap_or(Value::Null)))
    }

    /// Canonical pretty JSON (2-space indent, sorted keys), for diffs.
    pub fn to_pretty(&self) -> String {
        // Re-indented from the text: what `{:#}` of the tree writes, without the tree.
        let mut out = Vec::with_capacity(self.text.len() * 2);
        super::json_pretty::compact_to_pretty(&mut out, &self.text, 0);
        String::from_utf8(out).expect("re-indented UTF-8 is UTF-8")
    }

    /// The canonical tree, parsed afresh and not kept: for a document
    /// looked at once (the review of a plan of 100,000 bindings), whose
    /// tree would otherwise stay in memory as long as the plan.
    pub fn tree(&self) -> Value {
        match self.tree.get() {
            Some(tree) => Value::clone(tree),
            None => serde_json::from_str(&self.text).unwrap_or(Value::Null),
        }
    }

    /// The canonical compact text, as [`to_compact`](Self::to_compact) without a copy.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Canonical compact JSON: what irsa sends to IAM.
    pub fn to_compact(&self) -> String {
        self.text.to_string()
    }

    /// The size IAM checks against its quotas: characters of the compact
    /// form, not counting whitespace (inside strings neither, as IAM counts).
    pub fn size(&self) -> usize {
        match ascii_spaces(self.text.as_bytes()) {
            // In canonical compact ASCII text the only whitespace is spaces
            // inside strings (serde_json escapes the rest).
            Some(spaces) => self.text.len() - spaces,
            None => self.text.chars().filter(|c| !c.is_whitespace()).count(),
        }
    }

    /// The canonical statement list (empty if the document has none).
    pub fn statements(&self) -> &[Value] {
        match self.canonical().get("Statement") {
            Some(Value::Array(statements)) => statements,
            _ => &[],
        }
    }

    /// Whether an Allow statement names `provider_arn` as its federated
    /// principal: the role can be assumed through that OIDC provider.
    pub fn names_federated(&self, provider_arn: &str) -> bool {
        self.statements_naming_federated(provider_arn).next().is_some()
    }

    /// The Allow statements that name `provider_arn` as a federated principal.
    pub fn statements_naming_federated<'a>(&'a self, provider_arn: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.statements().iter().filter(move |s| {
            s.get("Effect").and_then(Value::as_str) == Some("Allow")
                && s.pointer("/Principal/Federated")
                    .and_then(Value::as_array)
                    .is_some_and(|ids| ids.iter().any(|v| v.as_str() == Some(provider_arn)))
        })
    }
}

impl PartialEq for PolicyDocument {
    fn eq(&self, other: &Self) -> bool {
        // Equal canonical forms have equal keys; only differing ones need
        // the keys (copies with actions folded to lower case) to be built.
        self.text == other.text || document_key(self.canonical()) == document_key(other.canonical())
    }
}

impl Eq for PolicyDocument {}

impl Serialize for PolicyDocument {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.canonical().serialize(s)
    }
}

impl<'de> Deserialize<'de> for PolicyDocument {
    /// Accepts a JSON object, or a string holding one (possibly
    /// percent-encoded, as IAM returns it).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // A light tree, not a `Value`: a snapshot holds tens of thousands of
        // documents, and only their canonical text is kept.
        match Light::deserialize(d)? {
            Light::String(text) => PolicyDocument::parse(&text).map_err(|p| {
                D::Error::custom(format_args!("invalid policy document: {} (at byte {})", p.message, p.span.start))
            }),
            tree @ Light::Object(_) => Ok(PolicyDocument::from_tree(&tree)),
            _ => Err(D::Error::custom("expected a policy document: a JSON object, or a string holding one")),
        }
    }
}

/// Decodes a document as IAM returns it. IAM percent-encodes documents
/// (RFC 3986) in some API calls (GetRolePolicy, GetPolicyVersion, the trust
/// policy in GetRole) and not in others, so text whose first non-blank
/// character is not `{` is decoded and plain JSON is left untouched: a
/// literal `%` inside it must survive.
pub fn decode(text: &str) -> Cow<'_, str> {
    if text.trim_start().starts_with('{') {
        Cow::Borrowed(text)
    } else {
        percent_encoding::percent_decode_str(text).decode_utf8_lossy()
    }
}

// ---------------------------------------------------------------------------
// Canonical form
//
// The canonical form is defined by the tree functions below
// (`canonical_document` and its helpers, kept for the tests as the
// reference); `canonical_text` writes the same text straight from the
// document as parsed, without building the canonical tree: no copy of every
// node, no B-tree inserts, no freeing of the tree taken apart. The test
// `canonical_text_is_the_text_of_the_canonical_tree` holds the two to the
// same bytes.

/// The compact JSON text of the canonical tree of `value` (what
/// `canonical_document` makes of it as a `Value`), written from `value` itself.
fn canonical_text<N: Tree>(value: &N) -> std::sync::Arc<str> {
    thread_local! {
        /// Written into, then copied out at its exact length: one allocation
        /// per document instead of a growing buffer shrunk at the end.
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| {
        // `try_borrow_mut`: nothing here re-enters, but a fresh buffer is
        // the answer if anything ever does.
        let mut fresh = Vec::new();
        let mut borrowed = scratch.try_borrow_mut();
        let out = match borrowed.as_deref_mut() {
            Ok(out) => out,
            Err(_) => &mut fresh,
        };
        out.clear();
        write_document(value, out);
        // Only whole strings and serde_json's output go into `out`: UTF-8.
        std::str::from_utf8(out).map(std::sync::Arc::from).unwrap_or_else(|_| std::sync::Arc::from(""))
    })
}

/// A parsed JSON value the canonical form can be written from: a
/// `serde_json::Value`, a [`Light`] tree read from a snapshot, or a
/// document a user wrote as [`json_span`] parsed it. Objects are seen as a
/// `Value` holds them: keys in order, the last of repeated keys.
trait Tree: Sized {
    type Members<'a>: Iterator<Item = (&'a str, &'a Self)>
    where
        Self: 'a;
    fn members(&self) -> Option<Self::Members<'_>>;
    fn items(&self) -> Option<&[Self]>;
    fn as_str(&self) -> Option<&str>;
    fn as_bool(&self) -> Option<bool>;
    fn as_number(&self) -> Option<&serde_json::Number>;
    /// Writes the value as serde_json writes its `Value` (compact).
    fn write(&self, out: &mut Vec<u8>);
}

type ValueMembers<'a> = std::iter::Map<serde_json::map::Iter<'a>, fn((&'a String, &'a Value)) -> (&'a str, &'a Value)>;

impl Tree for Value {
    type Members<'a> = ValueMembers<'a>;
    fn members(&self) -> Option<ValueMembers<'_>> {
        let pair: for<'a> fn((&'a String, &'a Value)) -> (&'a str, &'a Value) = |(k, v)| (k.as_str(), v);
        self.as_object().map(|m| m.iter().map(pair))
    }
    fn items(&self) -> Option<&[Value]> {
        self.as_array().map(Vec::as_slice)
    }
    fn as_str(&self) -> Option<&str> {
        Value::as_str(self)
    }
    fn as_bool(&self) -> Option<bool> {
        Value::as_bool(self)
    }
    fn as_number(&self) -> Option<&serde_json::Number> {
        match self {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Value::String(s) => write_str(s, out),
            // Writing a `Value` into memory cannot fail.
            other => drop(serde_json::to_writer(&mut *out, other)),
        }
    }
}

/// A JSON value as a snapshot's document is read: strings borrowed from
/// the text where they have no escapes, objects as a list sorted by key.
/// Canonicalizing it needs no B-tree of every object, and freeing it is a
/// few frees, not one per node.
#[derive(Debug)]
enum Light<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Cow<'a, str>),
    Array(Vec<Light<'a>>),
    /// Sorted by key; of repeated keys only the last, as in a `Value`.
    Object(Vec<(Cow<'a, str>, Light<'a>)>),
}

/// A member of a [`Light`] object.
type LightMember<'b> = (Cow<'b, str>, Light<'b>);

type LightMembers<'a, 'b> =
    std::iter::Map<std::slice::Iter<'a, LightMember<'b>>, fn(&'a LightMember<'b>) -> (&'a str, &'a Light<'b>)>;

impl<'b> Tree for Light<'b> {
    type Members<'a>
        = LightMembers<'a, 'b>
    where
        Self: 'a;
    fn members(&self) -> Option<LightMembers<'_, 'b>> {
        let pair: for<'a> fn(&'a LightMember<'b>) -> (&'a str, &'a Light<'b>) = |(k, v)| (k.as_ref(), v);
        match self {
            Light::Object(members) => Some(members.iter().map(pair)),
            _ => None,
        }
    }
    fn items(&self) -> Option<&[Light<'b>]> {
        match self {
            Light::Array(items) => Some(items),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Light::String(s) => Some(s),
            _ => None,
        }
    }
    fn as_bool(&self) -> Option<bool> {
        match self {
            Light::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn as_number(&self) -> Option<&serde_json::Number> {
        match self {
            Light::Number(n) => Some(n),
            _ => None,
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Light::Null => out.extend_from_slice(b"null"),
            Light::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Light::Number(n) => drop(serde_json::to_writer(&mut *out, n)),
            Light::String(s) => write_str(s, out),
            Light::Array(items) => write_items(items, out),
            Light::Object(members) => write_members(members.iter().map(|(k, v)| (k.as_ref(), v)), out),
        }
    }
}

impl<'de> Deserialize<'de> for Light<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Light<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Light<'de>, E> {
                Ok(Light::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Light<'de>, E> {
                Ok(Light::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Light<'de>, E> {
                Ok(Light::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Light<'de>, E> {
                // As serde_json's `Value` does: a float JSON cannot hold is null.
                Ok(serde_json::Number::from_f64(n).map_or(Light::Null, Light::Number))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Light<'de>, E> {
                Ok(Light::String(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Light<'de>, E> {
                Ok(Light::String(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Light<'de>, E> {
                Ok(Light::String(Cow::Owned(s)))
            }
            fn visit_unit<E>(self) -> Result<Light<'de>, E> {
                Ok(Light::Null)
            }
            fn visit_none<E>(self) -> Result<Light<'de>, E> {
                Ok(Light::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Light<'de>, D::Error> {
                Light::deserialize(d)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Light<'de>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Light::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Light<'de>, A::Error> {
                let mut members: Vec<(Cow<'de, str>, Light<'de>)> = Vec::new();
                while let Some(key) = map.next_key::<CowStr<'de>>()? {
                    members.push((key.0, map.next_value()?));
                }
                Ok(Light::Object(sorted_members(members)))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A key, borrowed from the text when it can be.
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Owned(s)))
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// Members sorted by key, keeping the last of repeated keys (what inserting
/// them into a `Value`'s map one after another leaves).
fn sorted_members<K: AsRef<str>, V>(mut members: Vec<(K, V)>) -> Vec<(K, V)> {
    if members.windows(2).all(|w| w[0].0.as_ref() < w[1].0.as_ref()) {
        return members;
    }
    // Stable: repeated keys stay in source order, and the last is kept.
    members.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
    let mut out: Vec<(K, V)> = Vec::with_capacity(members.len());
    for member in members {
        match out.last_mut() {
            Some(last) if last.0.as_ref() == member.0.as_ref() => *last = member,
            _ => out.push(member),
        }
    }
    out
}

impl Tree for Spanned {
    type Members<'a> = std::vec::IntoIter<(&'a str, &'a Spanned)>;
    fn members(&self) -> Option<Self::Members<'_>> {
        let members = self.members()?;
        Some(sorted_members(members.iter().map(|m| (m.key.as_str(), &m.value)).collect()).into_iter())
    }
    fn items(&self) -> Option<&[Spanned]> {
        match &self.node {
            json_span::Node::Array(items) => Some(items),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        Spanned::as_str(self)
    }
    fn as_bool(&self) -> Option<bool> {
        match self.node {
            json_span::Node::Bool(b) => Some(b),
            _ => None,
        }
    }
    fn as_number(&self) -> Option<&serde_json::Number> {
        match &self.node {
            json_span::Node::Number(n) => Some(n),
            _ => None,
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        match &self.node {
            json_span::Node::Null => out.extend_from_slice(b"null"),
            json_span::Node::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            json_span::Node::Number(n) => drop(serde_json::to_writer(&mut *out, n)),
            json_span::Node::String(s) => write_str(s, out),
            json_span::Node::Array(items) => write_items(items, out),
            json_span::Node::Object(_) => write_members(Tree::members(self).into_iter().flatten(), out),
        }
    }
}

fn write_items<N: Tree>(items: &[N], out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item.write(out);
    }
    out.push(b']');
}

fn write_members<'a, N: Tree + 'a>(members: impl Iterator<Item = (&'a str, &'a N)>, out: &mut Vec<u8>) {
    out.push(b'{');
    let mut first = true;
    for (key, value) in members {
        write_key(key, &mut first, out);
        value.write(out);
    }
    out.push(b'}');
}

/// Writes a JSON string as serde_json does; one that needs no escapes (the
/// usual actions, ARNs, keys) is copied between quotes in one go.
fn write_str(s: &str, out: &mut Vec<u8>) {
    if needs_escape(s) {
        drop(serde_json::to_writer(&mut *out, s));
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// How many bytes of `bytes` are spaces, or `None` if it is not all ASCII;
/// eight bytes at a time in one pass: the byte-wise fold is not vectorised
/// for the baseline x86-64 target, and `size` runs for every document of a
/// stack at load (the quota checks).
fn ascii_spaces(bytes: &[u8]) -> Option<usize> {
    const SPACES: u64 = u64::from_ne_bytes([b' '; 8]);
    const LOW: u64 = u64::from_ne_bytes([0x7f; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    const BYTE_LANES: u64 = u64::from_ne_bytes([0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0]);
    let mut chunks = bytes.chunks_exact(8);
    let (mut spaces, mut lanes, mut in_lanes, mut seen) = (0, 0u64, 0, 0u64);
    for chunk in &mut chunks {
        let x = u64::from_ne_bytes(chunk.try_into().unwrap_or_default());
        seen |= x;
        // Where every byte is below 0x80, so is its xor with a space, and
        // adding 0x7f carries into the byte's high bit exactly when it is
        // not zero (never into the next byte): a clear high bit is a space,
        // counted as a 1 in that byte's lane. (Other text is found by `seen`.)
        lanes += (!(x ^ SPACES).wrapping_add(LOW) & HIGH) >> 7;
        in_lanes += 1;
        if in_lanes == 255 {
            spaces += sum_lanes(lanes, BYTE_LANES);
            (lanes, in_lanes) = (0, 0);
        }
    }
    let rest = chunks.remainder();
    if seen & HIGH != 0 || !rest.is_ascii() {
        return None;
    }
    Some(spaces + sum_lanes(lanes, BYTE_LANES) + rest.iter().filter(|&&b| b == b' ').count())
}

/// The sum of the eight byte lanes of `lanes` (each at most 255).
fn sum_lanes(lanes: u64, byte_lanes: u64) -> usize {
    let pairs = (lanes & byte_lanes) + ((lanes >> 8) & byte_lanes);
    (pairs.wrapping_mul(0x0001_0001_0001_0001) >> 48) as usize
}

/// Whether serde_json escapes something in `s` (a control character, `"`
/// or `\`): eight bytes at a time, by the usual "has a zero byte" test.
fn needs_escape(s: &str) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte of `x` is below `n` (for n <= 0x80) where this sets its high bit
    // (for bytes below 0x80; bytes at or above it are cleared by `!x`).
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let bytes = s.as_bytes();
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let x = u64::from_ne_bytes(chunk.try_into().unwrap_or_default());
        if below(x, 0x20) | zero(x ^ (ONES * u64::from(b'"'))) | zero(x ^ (ONES * u64::from(b'\\'))) != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Writes an object's `"key":`.
fn write_key(key: &str, first: &mut bool, out: &mut Vec<u8>) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    write_str(key, out);
    out.push(b':');
}

fn write_document<N: Tree>(value: &N, out: &mut Vec<u8>) {
    let Some(members) = value.members() else {
        return value.write(out);
    };
    let statement = value.members().into_iter().flatten().find(|(k, _)| *k == "Statement").map(|(_, v)| v);
    let statements = match statement {
        Some(single) if single.members().is_some() => std::slice::from_ref(single),
        Some(list) if list.items().is_some() => list.items().unwrap_or_default(),
        _ => return value.write(out),
    };
    out.push(b'{');
    let mut first = true;
    for (key, element) in members {
        write_key(key, &mut first, out);
        if key != "Statement" {
            element.write(out);
            continue;
        }
        // Statement order carries no meaning in IAM, and a repeated
        // statement adds nothing: a set, keyed by the statement with its
        // actions folded to lower case.
        let list = out.len();
        out.push(b'[');
        let mut items = Vec::with_capacity(statements.len());
        for (i, statement) in statements.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let start = out.len();
            write_statement(statement, false, out);
            let key = if statements.len() > 1 {
                let mut key = Vec::new();
                write_statement(statement, true, &mut key);
                if key[..] == out[start..] { Key::Text } else { Key::Owned(key) }
            } else {
                Key::Text
            };
            items.push(Item { range: start..out.len(), key });
        }
        out.push(b']');
        into_set(out, list, items);
    }
    out.push(b'}');
}

/// A statement in canonical form; `fold` writes its actions in lower case,
/// as the key that orders statements compares them.
fn write_statement<N: Tree>(value: &N, fold: bool, out: &mut Vec<u8>) {
    let Some(statement) = value.members() else {
        return value.write(out);
    };
    out.push(b'{');
    let mut first = true;
    for (name, element) in statement {
        // IAM drops an empty Sid (Terraform used to emit one).
        if name == "Sid" && element.as_str() == Some("") {
            continue;
        }
        write_key(name, &mut first, out);
        match name {
            "Action" | "NotAction" => write_list(element, same, if fold { Keys::Folded } else { Keys::Actions }, out),
            "Resource" | "NotResource" => write_list(element, same, Keys::Text, out),
            "Principal" | "NotPrincipal" => write_principal(element, out),
            "Condition" => write_condition(element, out),
            _ => element.write(out),
        }
    }
    out.push(b'}');
}

fn write_principal<N: Tree>(value: &N, out: &mut Vec<u8>) {
    if value.as_str() == Some("*") {
        // IAM documents `"Principal": "*"` as the same as `{"AWS": "*"}`.
        return out.extend_from_slice(br#"{"AWS":["*"]}"#);
    }
    let Some(principal) = value.members() else {
        return value.write(out);
    };
    out.push(b'{');
    let mut first = true;
    for (kind, ids) in principal {
        write_key(kind, &mut first, out);
        match kind {
            "AWS" => write_list(ids, account_root_of, Keys::Text, out),
            "Federated" | "Service" | "CanonicalUser" => write_list(ids, same, Keys::Text, out),
            _ => ids.write(out),
        }
    }
    out.push(b'}');
}

fn write_condition<N: Tree>(value: &N, out: &mut Vec<u8>) {
    let Some(operators) = value.members() else {
        return value.write(out);
    };
    out.push(b'{');
    let mut first = true;
    for (operator, keys) in operators {
        write_key(operator, &mut first, out);
        let Some(keys) = keys.members() else {
            keys.write(out);
            continue;
        };
        out.push(b'{');
        let mut first = true;
        for (key, values) in keys {
            write_key(key, &mut first, out);
            // The values of one key are alternatives, so a set.
            write_list(values, condition_string_of, Keys::Text, out);
        }
        out.push(b'}');
    }
    out.push(b'}');
}

/// A list member after the canonical form's mapping: the value itself, or a
/// string made from it.
enum Mapped<'a, N> {
    Tree(&'a N),
    String(String),
}

impl<N: Tree> Mapped<'_, N> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Mapped::Tree(n) => n.as_str(),
            Mapped::String(s) => Some(s),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Mapped::Tree(n) => n.write(out),
            Mapped::String(s) => write_str(s, out),
        }
    }
}

fn same<N: Tree>(value: &N) -> Mapped<'_, N> {
    Mapped::Tree(value)
}

/// IAM stores a bare account id as that account's root ARN. The partition is
/// not in the document; irsa assumes the commercial `aws` partition.
fn account_root_of<N: Tree>(id: &N) -> Mapped<'_, N> {
    match id.as_str() {
        Some(s) if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) => {
            Mapped::String(format!("arn:aws:iam::{s}:root"))
        }
        _ => Mapped::Tree(id),
    }
}

/// IAM returns condition booleans and numbers as strings (`true` as
/// `"true"`, `5` as `"5"`).
fn condition_string_of<N: Tree>(value: &N) -> Mapped<'_, N> {
    if let Some(b) = value.as_bool() {
        Mapped::String(b.to_string())
    } else if let Some(n) = value.as_number() {
        Mapped::String(n.to_string())
    } else {
        Mapped::Tree(value)
    }
}

/// How the members of a list are keyed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// By their text.
    Text,
    /// Actions: by their text with the name folded to lower case (IAM's
    /// action names are case-insensitive).
    Actions,
    /// Actions, written as their keys (the key of a statement).
    Folded,
}

/// The key of a member of a set, as JSON text.
enum Key {
    /// The member's own text.
    Text,
    /// The member's text in ASCII lower case (a string without escapes).
    AsciiFolded,
    /// Some other text.
    Owned(Vec<u8>),
}

/// A member of a set written into the output: where, and its key.
struct Item {
    range: Range<usize>,
    key: Key,
}

/// A scalar (after `map`) becomes a one-element list if it is a string, a
/// list becomes a set of its items after `map`; anything else is written as
/// it is.
fn write_list<N: Tree>(value: &N, map: fn(&N) -> Mapped<'_, N>, keys: Keys, out: &mut Vec<u8>) {
    let items: &[N] = match value.items() {
        Some(items) => items,
        None if map(value).as_str().is_some() => std::slice::from_ref(value),
        None => return map(value).write(out),
    };
    let list = out.len();
    out.push(b'[');
    let mut members = Vec::with_capacity(if items.len() > 1 { items.len() } else { 0 });
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let start = out.len();
        let item = map(item);
        let key = match (item.as_str(), keys) {
            (Some(s), Keys::Actions | Keys::Folded) if !s.bytes().any(|b| b.is_ascii_uppercase() || b >= 0x80) => {
                write_str(s, out);
                Key::Text
            }
            (Some(s), Keys::Actions) if s.is_ascii() && !needs_escape(s) => {
                write_str(s, out);
                Key::AsciiFolded
            }
            (Some(s), Keys::Actions) => {
                write_str(s, out);
                let mut key = Vec::new();
                write_str(&s.to_lowercase(), &mut key);
                Key::Owned(key)
            }
            (Some(s), Keys::Folded) => {
                write_str(&s.to_lowercase(), out);
                Key::Text
            }
            _ => {
                item.write(out);
                Key::Text
            }
        };
        if items.len() > 1 {
            members.push(Item { range: start..out.len(), key });
        }
    }
    out.push(b']');
    into_set(out, list, members);
}

/// Makes the list written at `out[list..]` (its members at `items`) a set:
/// sorted by key (ties broken by the member's text, so the spelling kept is
/// deterministic), keeping the first member of each key. Texts compare as
/// the written JSON does, which is the order of the tree's sets. A list
/// already in order, the usual case, is left where it is.
fn into_set(out: &mut Vec<u8>, list: usize, mut items: Vec<Item>) {
    /// The key's text, and whether it is to be read in ASCII lower case.
    fn key<'a>(item: &'a Item, text: &'a [u8]) -> (&'a [u8], bool) {
        match &item.key {
            Key::Text => (&text[item.range.clone()], false),
            Key::AsciiFolded => (&text[item.range.clone()], true),
            Key::Owned(k) => (k, false),
        }
    }
    fn key_cmp(a: &Item, b: &Item, text: &[u8]) -> std::cmp::Ordering {
        let ((a, fold_a), (b, fold_b)) = (key(a, text), key(b, text));
        let a = a.iter().map(|&c| if fold_a { c.to_ascii_lowercase() } else { c });
        a.cmp(b.iter().map(|&c| if fold_b { c.to_ascii_lowercase() } else { c }))
    }
    let ordered =
        |items: &[Item], text: &[u8]| items.windows(2).all(|w| key_cmp(&w[0], &w[1], text) == std::cmp::Ordering::Less);
    if items.len() < 2 || ordered(&items, out) {
        return;
    }
    let text = out.split_off(list);
    let base = list;
    for item in &mut items {
        item.range = item.range.start - base..item.range.end - base;
    }
    items.sort_by(|a, b| key_cmp(a, b, &text).then_with(|| text[a.range.clone()].cmp(&text[b.range.clone()])));
    items.dedup_by(|later, earlier| key_cmp(later, earlier, &text) == std::cmp::Ordering::Equal);
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&text[item.range.clone()]);
    }
    out.push(b']');
}

/// Compact JSON text of `value`, the same text as its `Display` writes.
#[cfg(test)]
fn compact(value: &Value) -> String {
    // Serializing a `Value` into memory cannot fail (its keys are strings).
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
fn canonical_document(value: Value) -> Value {
    let Value::Object(mut doc) = value else {
        return value;
    };
    let statements = match doc.remove("Statement") {
        None => return Value::Object(doc),
        Some(single @ Value::Object(_)) => vec![single],
        Some(Value::Array(statements)) => statements,
        Some(other) => {
            doc.insert("Statement".to_owned(), other);
            return Value::Object(doc);
        }
    };
    let statements = statements.into_iter().map(canonical_statement).collect();
    // Statement order carries no meaning in IAM, and a repeated statement
    // adds nothing.
    doc.insert("Statement".to_owned(), Value::Array(sorted_set(statements, statement_key)));
    Value::Object(doc)
}

#[cfg(test)]
fn canonical_statement(value: Value) -> Value {
    let Value::Object(mut statement) = value else {
        return value;
    };
    // IAM drops an empty Sid (Terraform used to emit one).
    if statement.get("Sid").and_then(Value::as_str) == Some("") {
        statement.remove("Sid");
    }
    for (name, element) in statement.iter_mut() {
        let taken = element.take();
        *element = match name.as_str() {
            "Action" | "NotAction" => canonical_list(taken, action_key),
            "Resource" | "NotResource" => canonical_list(taken, Value::clone),
            "Principal" | "NotPrincipal" => canonical_principal(taken),
            "Condition" => canonical_condition(taken),
            _ => taken,
        };
    }
    Value::Object(statement)
}

#[cfg(test)]
fn canonical_principal(value: Value) -> Value {
    let mut principal = match value {
        // IAM documents `"Principal": "*"` as the same as `{"AWS": "*"}`.
        Value::String(s) if s == "*" => Map::from_iter([("AWS".to_owned(), Value::String(s))]),
        Value::Object(principal) => principal,
        other => return other,
    };
    for (kind, ids) in principal.iter_mut() {
        match kind.as_str() {
            "AWS" => *ids = canonical_list(map_items(ids.take(), account_root), Value::clone),
            "Federated" | "Service" | "CanonicalUser" => {
                *ids = canonical_list(ids.take(), Value::clone);
            }
            _ => {}
        }
    }
    Value::Object(principal)
}

#[cfg(test)]
/// IAM stores a bare account id as that account's root ARN. The partition is
/// not in the document; irsa assumes the commercial `aws` partition.
fn account_root(id: Value) -> Value {
    match id {
        Value::String(s) if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) => {
            Value::String(format!("arn:aws:iam::{s}:root"))
        }
        other => other,
    }
}

#[cfg(test)]
fn canonical_condition(value: Value) -> Value {
    let Value::Object(mut operators) = value else {
        return value;
    };
    for keys in operators.values_mut() {
        if let Value::Object(keys) = keys {
            for values in keys.values_mut() {
                // The values of one key are alternatives, so a set.
                *values = canonical_list(map_items(values.take(), condition_string), Value::clone);
            }
        }
    }
    Value::Object(operators)
}

#[cfg(test)]
/// IAM returns condition booleans and numbers as strings (`true` as
/// `"true"`, `5` as `"5"`).
fn condition_string(value: Value) -> Value {
    match value {
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        other => other,
    }
}

#[cfg(test)]
/// Applies `f` to a scalar, or to each item of a list.
fn map_items(value: Value, f: fn(Value) -> Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(f).collect()),
        other => f(other),
    }
}

#[cfg(test)]
/// A string becomes a one-element list; a list becomes a set sorted and
/// deduplicated by `key`. Anything else is kept as it is.
fn canonical_list(value: Value, key: fn(&Value) -> Value) -> Value {
    match value {
        Value::String(_) => Value::Array(vec![value]),
        Value::Array(items) => Value::Array(sorted_set(items, key)),
        other => other,
    }
}

#[cfg(test)]
/// Sorts `items` by `key` (ties broken by the item itself, so the spelling
/// kept is deterministic) and keeps the first item of each key.
fn sorted_set(items: Vec<Value>, key: fn(&Value) -> Value) -> Vec<Value> {
    if items.len() < 2 {
        return items;
    }
    match sorted_string_set(items, key) {
        Ok(set) => set,
        Err(items) => sorted_set_by_text(items, key),
    }
}

#[cfg(test)]
/// [`sorted_set`] of anything: each item and key written as JSON to compare.
fn sorted_set_by_text(items: Vec<Value>, key: fn(&Value) -> Value) -> Vec<Value> {
    let mut keyed: Vec<(String, String, Value)> =
        items.into_iter().map(|item| (compact(&key(&item)), compact(&item), item)).collect();
    keyed.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    keyed.dedup_by(|later, earlier| later.0 == earlier.0);
    keyed.into_iter().map(|(_, _, item)| item).collect()
}

#[cfg(test)]
/// [`sorted_set`] of strings that JSON writes without escapes (the usual
/// actions, resources, ARNs and condition values), without writing them:
/// such a string is written as its text between quotes, so comparing the
/// text followed by the closing quote orders as the written JSON does.
/// Gives the items back when one of them or of their keys is not such a string.
fn sorted_string_set(items: Vec<Value>, key: fn(&Value) -> Value) -> Result<Vec<Value>, Vec<Value>> {
    fn plain(v: &Value) -> bool {
        v.as_str().is_some_and(|s| !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'))
    }
    fn written(v: &Value) -> impl Iterator<Item = u8> + '_ {
        v.as_str().unwrap_or_default().bytes().chain(std::iter::once(b'"'))
    }
    if !items.iter().all(plain) {
        return Err(items);
    }
    let keys: Vec<Value> = items.iter().map(key).collect();
    if !keys.iter().all(plain) {
        return Err(items);
    }
    let mut keyed: Vec<(Value, Value)> = keys.into_iter().zip(items).collect();
    keyed.sort_by(|a, b| written(&a.0).cmp(written(&b.0)).then_with(|| written(&a.1).cmp(written(&b.1))));
    keyed.dedup_by(|later, earlier| later.0 == earlier.0);
    Ok(keyed.into_iter().map(|(_, item)| item).collect())
}

/// Action names are case-insensitive in IAM (`s3:GetObject` is
/// `s3:getobject`); the key folds case, the document keeps the spelling.
fn action_key(action: &Value) -> Value {
    match action {
        Value::String(s) => Value::String(s.to_lowercase()),
        other => other.clone(),
    }
}

fn statement_key(statement: &Value) -> Value {
    let mut key = statement.clone();
    for name in ["Action", "NotAction"] {
        if let Some(Value::Array(actions)) = key.get_mut(name) {
            for action in actions.iter_mut() {
                *action = action_key(action);
            }
        }
    }
    key
}

fn document_key(doc: &Value) -> Value {
    let mut key = doc.clone();
    if let Some(Value::Array(statements)) = key.get_mut("Statement") {
        for statement in statements.iter_mut() {
            *statement = statement_key(statement);
        }
    }
    key
}

// ---------------------------------------------------------------------------
// Validation of identity-based policies

const DOCUMENT_KEYS: &[&str] = &["Version", "Id", "Statement"];
const STATEMENT_KEYS: &[&str] =
    &["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"];
const VERSION_HELP: &str = "use \"2012-10-17\", the current policy language version \
     (\"2008-10-17\" is also accepted, but does not support policy variables)";
const ACTION_HELP: &str = "write an action as `<service prefix>:<action name>`, \
     e.g. `s3:GetObject`; the name may use the wildcards `*` and `?`, and `*` alone means every action";
const RESOURCE_HELP: &str = "a resource is `*` or an ARN, e.g. `arn:aws:s3:::my-bucket/*`";

/// Validates a policy a user wrote in the stack file, to be attached to a
/// role or embedded in it as an inline policy. Returns every problem found,
/// in text order, or the canonical document.
pub fn check_identity_policy(text: &str) -> Result<PolicyDocument, Vec<DocProblem>> {
    let root = json_span::parse(text).map_err(|e| vec![DocProblem::from(e)])?;
    let mut problems: Vec<DocProblem> = root.duplicate_keys().into_iter().map(duplicate_key).collect();
    check_document(&root, &mut problems);
    if problems.is_empty() {
        Ok(PolicyDocument::from_tree(&root))
    } else {
        problems.sort_by_key(|p| (p.span.start, p.span.end));
        Err(problems)
    }
}

fn duplicate_key(member: &Member) -> DocProblem {
    DocProblem::new(member.key_span.clone(), format!("duplicate key `{}`", member.key))
        .help("IAM rejects a document that repeats a key within one object; keep only one")
}

fn not_an_object(root: &Spanned) -> DocProblem {
    DocProblem::new(root.span.clone(), "a policy document must be a JSON object")
        .help("write it as {\"Version\": \"2012-10-17\", \"Statement\": [...]}")
}

/// Where to report an element missing from `object`: its opening brace.
fn opening(object: &Spanned) -> Range<usize> {
    object.span.start..object.span.start + 1
}

fn check_document(root: &Spanned, problems: &mut Vec<DocProblem>) {
    let Some(members) = root.members() else {
        problems.push(not_an_object(root));
        return;
    };
    check_keys(members, DOCUMENT_KEYS, "policy document", problems);
    match root.get("Version") {
        None => problems.push(
            DocProblem::new(opening(root), "the policy has no `Version`").help("add \"Version\": \"2012-10-17\""),
        ),
        Some(version) => {
            if !matches!(version.value.as_str(), Some("2012-10-17" | "2008-10-17")) {
                problems.push(
                    DocProblem::new(
                        version.value.span.clone(),
                        format!("unsupported policy version {}", version.value.to_value()),
                    )
                    .help(VERSION_HELP),
                );
            }
        }
    }
    if let Some(id) = root.get("Id")
        && id.value.as_str().is_none()
    {
        problems.push(DocProblem::new(id.value.span.clone(), "`Id` must be a string"));
    }
    let Some(statement) = root.get("Statement") else {
        problems.push(
            DocProblem::new(opening(root), "the policy has no `Statement`")
                .help("add \"Statement\": [{\"Effect\": \"Allow\", \"Action\": [...], \"Resource\": [...]}]"),
        );
        return;
    };
    let mut sids = HashSet::new();
    let value = &statement.value;
    match &value.node {
        Node::Object(_) => check_statement(value, &mut sids, problems),
        Node::Array(items) if items.is_empty() => problems
            .push(DocProblem::new(value.span.clone(), "`Statement` is empty").help("add at least one statement")),
        Node::Array(items) => {
            for item in items {
                if item.members().is_some() {
                    check_statement(item, &mut sids, problems);
                } else {
                    problems.push(DocProblem::new(item.span.clone(), "a statement must be a JSON object"));
                }
            }
        }
        _ => problems.push(DocProblem::new(value.span.clone(), "`Statement` must be an object or a list of objects")),
    }
}

/// Reports members whose key is not in `allowed`. IAM element names are
/// case-sensitive, so a near miss gets a pointed hint.
fn check_keys(members: &[Member], allowed: &[&str], context: &str, problems: &mut Vec<DocProblem>) {
    for member in members {
        if allowed.contains(&member.key.as_str()) {
            continue;
        }
        let help = match allowed.iter().find(|a| a.eq_ignore_ascii_case(&member.key)) {
            Some(near) => format!("element names are case-sensitive: did you mean `{near}`?"),
            None => format!("the allowed elements are {}", allowed.join(", ")),
        };
        problems.push(
            DocProblem::new(member.key_span.clone(), format!("unknown {context} element `{}`", member.key)).help(help),
        );
    }
}

fn check_statement<'a>(statement: &'a Spanned, sids: &mut HashSet<&'a str>, problems: &mut Vec<DocProblem>) {
    if let Some(members) = statement.members() {
        check_keys(members, STATEMENT_KEYS, "statement", problems);
    }
    for name in ["Principal", "NotPrincipal"] {
        if let Some(principal) = statement.get(name) {
            problems.push(
                DocProblem::new(
                    principal.key_span.clone(),
                    format!("`{name}` is not allowed in an identity-based policy"),
                )
                .help(
                    "remove it: an identity-based policy applies to the role it is attached to; \
                     principals belong in a trust policy or a resource-based policy",
                ),
            );
        }
    }
    if let Some(sid) = statement.get("Sid") {
        check_sid(&sid.value, sids, problems);
    }
    match statement.get("Effect") {
        None => problems.push(
            DocProblem::new(opening(statement), "the statement has no `Effect`")
                .help("add \"Effect\": \"Allow\" or \"Effect\": \"Deny\""),
        ),
        Some(effect) => check_effect(&effect.value, problems),
    }
    check_one_of(statement, ["Action", "NotAction"], action_problem, problems);
    check_one_of(statement, ["Resource", "NotResource"], resource_problem, problems);
    if let Some(condition) = statement.get("Condition") {
        check_condition(&condition.value, problems);
    }
}

fn check_sid<'a>(sid: &'a Spanned, sids: &mut HashSet<&'a str>, problems: &mut Vec<DocProblem>) {
    let Some(text) = sid.as_str() else {
        problems.push(DocProblem::new(sid.span.clone(), "`Sid` must be a string"));
        return;
    };
    if !text.bytes().all(|b| b.is_ascii_alphanumeric()) {
        problems.push(
            DocProblem::new(
                sid.span.clone(),
                format!("Sid `{text}` may contain only the letters A-Z, a-z and the digits 0-9"),
            )
            .help("remove spaces, dashes and other punctuation"),
        );
    }
    // IAM drops an empty Sid, so two of them do not clash.
    if !text.is_empty() && !sids.insert(text) {
        problems.push(
            DocProblem::new(sid.span.clone(), format!("duplicate Sid `{text}`"))
                .help("every Sid must be unique within the policy"),
        );
    }
}

fn check_effect(effect: &Spanned, problems: &mut Vec<DocProblem>) {
    let text = effect.as_str();
    if matches!(text, Some("Allow" | "Deny")) {
        return;
    }
    let help = match text {
        Some(t) if t.eq_ignore_ascii_case("allow") => "`Effect` is case-sensitive: write \"Allow\"",
        Some(t) if t.eq_ignore_ascii_case("deny") => "`Effect` is case-sensitive: write \"Deny\"",
        _ => "use \"Allow\" or \"Deny\"",
    };
    problems.push(DocProblem::new(effect.span.clone(), format!("invalid `Effect` {}", effect.to_value())).help(help));
}

/// Checks that a statement has exactly one of `names` (such as `Action` and
/// `NotAction`), and checks its entries with `entry_problem`.
fn check_one_of(
    statement: &Spanned,
    names: [&str; 2],
    entry_problem: fn(&str) -> Option<(String, &'static str)>,
    problems: &mut Vec<DocProblem>,
) {
    let [name, not_name] = names;
    let member = match (statement.get(name), statement.get(not_name)) {
        (None, None) => {
            problems.push(
                DocProblem::new(opening(statement), format!("the statement has neither `{name}` nor `{not_name}`"))
                    .help(format!("add `{name}` (or `{not_name}`)")),
            );
            return;
        }
        (Some(_), Some(second)) => {
            problems.push(
                DocProblem::new(
                    second.key_span.clone(),
                    format!("`{name}` and `{not_name}` cannot both appear in one statement"),
                )
                .help("keep one of them"),
            );
            return;
        }
        (Some(member), None) | (None, Some(member)) => member,
    };
    let key = &member.key;
    let entries = match &member.value.node {
        Node::String(_) => std::slice::from_ref(&member.value),
        Node::Array(items) if items.is_empty() => {
            problems.push(DocProblem::new(member.value.span.clone(), format!("`{key}` must list at least one entry")));
            return;
        }
        Node::Array(items) => items.as_slice(),
        _ => {
            problems.push(DocProblem::new(
                member.value.span.clone(),
                format!("`{key}` must be a string or a list of strings"),
            ));
            return;
        }
    };
    for entry in entries {
        let problem = match entry.as_str() {
            None => Some(DocProblem::new(entry.span.clone(), format!("entries of `{key}` must be strings"))),
            Some(text) => {
                entry_problem(text).map(|(message, help)| DocProblem::new(entry.span.clone(), message).help(help))
            }
        };
        problems.extend(problem);
    }
}

fn action_problem(action: &str) -> Option<(String, &'static str)> {
    let well_formed = action == "*"
        || action.split_once(':').is_some_and(|(service, name)| {
            !service.is_empty()
                && service.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
        });
    (!well_formed).then(|| (format!("`{action}` is not an action of the form `service:Action`"), ACTION_HELP))
}

fn resource_problem(resource: &str) -> Option<(String, &'static str)> {
    let well_formed = resource == "*" || resource.starts_with("arn:");
    (!well_formed).then(|| (format!("`{resource}` is not a resource ARN or `*`"), RESOURCE_HELP))
}

fn check_condition(condition: &Spanned, problems: &mut Vec<DocProblem>) {
    let Some(operators) = condition.members() else {
        problems.push(
            DocProblem::new(condition.span.clone(), "`Condition` must be an object")
                .help("write it as {\"<operator>\": {\"<condition key>\": <value or list of values>}}"),
        );
        return;
    };
    for operator in operators {
        let Some(keys) = operator.value.members() else {
            problems.push(
                DocProblem::new(
                    operator.value.span.clone(),
                    format!("condition operator `{}` must map condition keys to values", operator.key),
                )
                .help(format!("write it as \"{}\": {{\"<condition key>\": <value or list of values>}}", operator.key)),
            );
            continue;
        };
        for key in keys {
            let scalar = |v: &Spanned| matches!(v.node, Node::String(_) | Node::Number(_) | Node::Bool(_));
            let well_formed = match &key.value.node {
                Node::Array(items) => items.iter().all(scalar),
                _ => scalar(&key.value),
            };
            if !well_formed {
                problems.push(DocProblem::new(
                    key.value.span.clone(),
                    format!(
                        "the value of condition key `{}` must be a string, number or boolean, or a list of them",
                        key.key
                    ),
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Web identity trust

const ASSUME_ROLE_WITH_WEB_IDENTITY: &str = "sts:assumerolewithwebidentity";
/// The audience EKS pod identity webhooks request tokens for.
const STS_AUDIENCE: &str = "sts.amazonaws.com";

/// Whether the trust policy `doc` lets the web identity `subject` (e.g.
/// `system:serviceaccount:backend:my-sa`) from the OIDC provider
/// `provider_arn` assume the role. `issuer` is the issuer URL without
/// `https://`, which prefixes the condition keys `<issuer>:sub` and
/// `<issuer>:aud`.
///
/// Conservative: an Allow statement counts only when irsa can tell it
/// applies (conditions only StringEquals / StringLike on `sub` and `aud`),
/// while a Deny statement blocks unless irsa can tell it does not apply.
pub fn admits_web_identity(doc: &PolicyDocument, provider_arn: &str, issuer: &str, subject: &str) -> bool {
    let issuer = issuer.strip_prefix("https://").unwrap_or(issuer).to_ascii_lowercase();
    let identity =
        WebIdentity { provider_arn, sub_key: format!("{issuer}:sub"), aud_key: format!("{issuer}:aud"), subject };
    let mut allowed = false;
    for statement in doc.statements() {
        let applies = identity.applies(statement);
        match statement.get("Effect").and_then(Value::as_str) {
            Some("Allow") => allowed |= applies == Applies::Yes,
            // An explicit Deny overrides every Allow.
            Some("Deny") if applies != Applies::No => return false,
            _ => {}
        }
    }
    allowed
}

/// Whether a statement applies to a request, when irsa can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applies {
    Yes,
    No,
    Unknown,
}

impl Applies {
    fn from_bool(yes: bool) -> Self {
        if yes { Applies::Yes } else { Applies::No }
    }

    fn and(self, other: Applies) -> Applies {
        match (self, other) {
            (Applies::No, _) | (_, Applies::No) => Applies::No,
            (Applies::Unknown, _) | (_, Applies::Unknown) => Applies::Unknown,
            _ => Applies::Yes,
        }
    }
}

struct WebIdentity<'a> {
    provider_arn: &'a str,
    /// Lower case: IAM condition key names are case-insensitive.
    sub_key: String,
    aud_key: String,
    subject: &'a str,
}

impl WebIdentity<'_> {
    fn applies(&self, statement: &Value) -> Applies {
        self.action(statement).and(self.principal(statement)).and(self.conditions(statement))
    }

    fn action(&self, statement: &Value) -> Applies {
        let listed = |actions: &Value| {
            actions.as_array().map(|actions| {
                actions
                    .iter()
                    .any(|a| a.as_str().is_some_and(|a| glob(&a.to_lowercase(), ASSUME_ROLE_WITH_WEB_IDENTITY)))
            })
        };
        match (statement.get("Action"), statement.get("NotAction")) {
            (Some(actions), None) => listed(actions).map_or(Applies::Unknown, Applies::from_bool),
            (None, Some(actions)) => listed(actions).map_or(Applies::Unknown, |l| Applies::from_bool(!l)),
            _ => Applies::Unknown,
        }
    }

    fn principal(&self, statement: &Value) -> Applies {
        let Some(Value::Object(principal)) = statement.get("Principal") else {
            return Applies::Unknown;
        };
        let names = |kind: &str, id: &str| {
            principal.get(kind).and_then(Value::as_array).is_some_and(|ids| ids.iter().any(|v| v.as_str() == Some(id)))
        };
        if names("Federated", self.provider_arn) {
            Applies::Yes
        } else if names("AWS", "*") {
            // Everyone, the web identity included; too broad to count as
            // the trust irsa looks for, but a Deny on it still applies.
            Applies::Unknown
        } else {
            Applies::No
        }
    }

    fn conditions(&self, statement: &Value) -> Applies {
        let Some(condition) = statement.get("Condition") else {
            return Applies::Yes;
        };
        let Value::Object(operators) = condition else {
            return Applies::Unknown;
        };
        let mut result = Applies::Yes;
        for (operator, keys) in operators {
            let Value::Object(keys) = keys else {
                result = result.and(Applies::Unknown);
                continue;
            };
            for (key, values) in keys {
                result = result.and(self.condition(operator, key, values));
            }
        }
        result
    }

    /// One condition key under one operator. Anything but StringEquals or
    /// StringLike on `sub` or `aud` is beyond irsa; a `ForAnyValue:` or
    /// `ForAllValues:` prefix, never needed for these single-valued keys,
    /// is treated the same way.
    fn condition(&self, operator: &str, key: &str, values: &Value) -> Applies {
        let key = key.to_ascii_lowercase();
        let claim = if key == self.sub_key {
            self.subject
        } else if key == self.aud_key {
            STS_AUDIENCE
        } else {
            return Applies::Unknown;
        };
        let matches: fn(&str, &str) -> bool = match operator {
            "StringEquals" => |pattern, claim| pattern == claim,
            "StringLike" => glob,
            _ => return Applies::Unknown,
        };
        let Some(values) = values.as_array() else {
            return Applies::Unknown;
        };
        Applies::from_bool(values.iter().any(|v| v.as_str().is_some_and(|pattern| matches(pattern, claim))))
    }
}

/// IAM's wildcard match: `*` is any run of characters, `?` any one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and how much text it has swallowed so far.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(value: Value) -> PolicyDocument {
        PolicyDocument::from_value(value)
    }

    fn statement(extra: Value) -> Value {
        let mut s = json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"});
        if let (Value::Object(s), Value::Object(extra)) = (&mut s, extra) {
            for (key, value) in extra {
                // `null` removes a default element.
                match value {
                    Value::Null => s.remove(&key),
                    value => s.insert(key, value),
                };
            }
        }
        json!({"Version": "2012-10-17", "Statement": s})
    }

    // ---- canonical form -------------------------------------------------

    /// Pairs of documents that IAM treats as the same.
    fn equivalent_pairs() -> Vec<(&'static str, Value, Value)> {
        vec![
            (
                "single statement object vs one-element list",
                json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}),
                json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
            ),
            (
                "statement order",
                json!({"Statement": [
                    {"Sid": "B", "Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                    {"Sid": "A", "Effect": "Deny", "Action": "iam:*", "Resource": "*"}]}),
                json!({"Statement": [
                    {"Sid": "A", "Effect": "Deny", "Action": "iam:*", "Resource": "*"},
                    {"Sid": "B", "Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
            ),
            (
                "duplicate statements collapse",
                json!({"Statement": [
                    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                    {"Effect": "Allow", "Action": ["s3:*"], "Resource": ["*"]}]}),
                json!({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
            ),
            (
                "Action string vs list",
                statement(json!({"Action": "s3:GetObject"})),
                statement(json!({"Action": ["s3:GetObject"]})),
            ),
            (
                "Action order and duplicates",
                statement(json!({"Action": ["s3:PutObject", "s3:GetObject", "s3:PutObject"]})),
                statement(json!({"Action": ["s3:GetObject", "s3:PutObject"]})),
            ),
            (
                "Action case",
                statement(json!({"Action": ["s3:GetObject", "S3:LISTBUCKET"]})),
                statement(json!({"Action": ["s3:listbucket", "s3:getobject"]})),
            ),
            (
                "Action case duplicates collapse",
                statement(json!({"Action": ["s3:GetObject", "s3:getobject"]})),
                statement(json!({"Action": "s3:GETOBJECT"})),
            ),
            (
                "statements differing only in action case collapse",
                json!({"Statement": [
                    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
                    {"Effect": "Allow", "Action": "s3:getObject", "Resource": "*"}]}),
                json!({"Statement": [{"Effect": "Allow", "Action": "S3:GetObject", "Resource": "*"}]}),
            ),
            (
                "NotAction string vs list",
                statement(json!({"Action": null, "NotAction": "iam:*"})),
                statement(json!({"Action": null, "NotAction": ["IAM:*"]})),
            ),
            (
                "Resource string vs list, order, duplicates",
                statement(json!({"Resource": ["arn:aws:s3:::b/*", "arn:aws:s3:::a", "arn:aws:s3:::b/*"]})),
                statement(json!({"Resource": ["arn:aws:s3:::a", "arn:aws:s3:::b/*"]})),
            ),
            (
                "NotResource string vs list",
                statement(json!({"NotResource": "arn:aws:s3:::a"})),
                statement(json!({"NotResource": ["arn:aws:s3:::a"]})),
            ),
            (
                "Principal AWS string vs list, order",
                statement(
                    json!({"Principal": {"AWS": ["arn:aws:iam::111111111111:role/b", "arn:aws:iam::111111111111:role/a"]}}),
                ),
                statement(
                    json!({"Principal": {"AWS": ["arn:aws:iam::111111111111:role/a", "arn:aws:iam::111111111111:role/b"]}}),
                ),
            ),
            (
                "Principal AWS single string",
                statement(json!({"Principal": {"AWS": "arn:aws:iam::111111111111:role/a"}})),
                statement(json!({"Principal": {"AWS": ["arn:aws:iam::111111111111:role/a"]}})),
            ),
            (
                "Principal * vs AWS *",
                statement(json!({"Principal": "*"})),
                statement(json!({"Principal": {"AWS": "*"}})),
            ),
            (
                "bare account id vs root ARN",
                statement(json!({"Principal": {"AWS": ["123456789012", "arn:aws:iam::210987654321:root"]}})),
                statement(json!({"Principal": {"AWS": ["arn:aws:iam::123456789012:root", "210987654321"]}})),
            ),
            (
                "NotPrincipal account id",
                statement(json!({"NotPrincipal": {"AWS": "123456789012"}})),
                statement(json!({"NotPrincipal": {"AWS": ["arn:aws:iam::123456789012:root"]}})),
            ),
            (
                "Federated string vs list",
                statement(json!({"Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/x"}})),
                statement(json!({"Principal": {"Federated": ["arn:aws:iam::123456789012:oidc-provider/x"]}})),
            ),
            (
                "Service order",
                statement(json!({"Principal": {"Service": ["lambda.amazonaws.com", "ec2.amazonaws.com"]}})),
                statement(json!({"Principal": {"Service": ["ec2.amazonaws.com", "lambda.amazonaws.com"]}})),
            ),
            (
                "CanonicalUser string vs list",
                statement(json!({"Principal": {"CanonicalUser": "79a59df9"}})),
                statement(json!({"Principal": {"CanonicalUser": ["79a59df9"]}})),
            ),
            (
                "Condition value string vs list",
                statement(json!({"Condition": {"StringEquals": {"aws:RequestedRegion": "us-east-1"}}})),
                statement(json!({"Condition": {"StringEquals": {"aws:RequestedRegion": ["us-east-1"]}}})),
            ),
            (
                "Condition value order and duplicates",
                statement(
                    json!({"Condition": {"StringEquals": {"aws:RequestedRegion": ["us-west-2", "us-east-1", "us-west-2"]}}}),
                ),
                statement(json!({"Condition": {"StringEquals": {"aws:RequestedRegion": ["us-east-1", "us-west-2"]}}})),
            ),
            (
                "Condition booleans and numbers as strings",
                statement(
                    json!({"Condition": {"Bool": {"aws:SecureTransport": true}, "NumericLessThan": {"s3:max-keys": [5, 10]}}}),
                ),
                statement(
                    json!({"Condition": {"Bool": {"aws:SecureTransport": "true"}, "NumericLessThan": {"s3:max-keys": ["10", "5"]}}}),
                ),
            ),
            (
                "Condition operator and key order",
                statement(json!({"Condition": {"StringLike": {"b": "1", "a": "2"}, "Bool": {"c": "true"}}})),
                statement(json!({"Condition": {"Bool": {"c": "true"}, "StringLike": {"a": "2", "b": "1"}}})),
            ),
            (
                "Version position",
                json!({"Version": "2012-10-17", "Statement": []}),
                json!({"Statement": [], "Version": "2012-10-17"}),
            ),
            ("empty Sid", statement(json!({"Sid": ""})), statement(json!({}))),
            (
                "unknown elements are compared as they are",
                statement(json!({"Future": {"b": [2, 1]}})),
                statement(json!({"Future": {"b": [2, 1]}})),
            ),
        ]
    }

    /// Pairs that look alike but differ in meaning.
    fn different_pairs() -> Vec<(&'static str, Value, Value)> {
        vec![
            ("Effect", statement(json!({"Effect": "Allow"})), statement(json!({"Effect": "Deny"}))),
            (
                "Resource case matters",
                statement(json!({"Resource": "arn:aws:s3:::Bucket"})),
                statement(json!({"Resource": "arn:aws:s3:::bucket"})),
            ),
            (
                "Action vs NotAction",
                statement(json!({"Action": "s3:*"})),
                statement(json!({"Action": null, "NotAction": "s3:*"})),
            ),
            (
                "condition value case matters",
                statement(json!({"Condition": {"StringEquals": {"k": "A"}}})),
                statement(json!({"Condition": {"StringEquals": {"k": "a"}}})),
            ),
            (
                "condition operator",
                statement(json!({"Condition": {"StringEquals": {"k": "a"}}})),
                statement(json!({"Condition": {"StringLike": {"k": "a"}}})),
            ),
            (
                "missing Version is not invented",
                json!({"Statement": []}),
                json!({"Version": "2012-10-17", "Statement": []}),
            ),
            ("non-empty Sid", statement(json!({"Sid": "A"})), statement(json!({}))),
            (
                "unknown element lists keep their order",
                statement(json!({"Future": [1, 2]})),
                statement(json!({"Future": [2, 1]})),
            ),
            (
                "principal kinds differ",
                statement(json!({"Principal": {"AWS": "arn:aws:iam::123456789012:root"}})),
                statement(json!({"Principal": {"Service": "arn:aws:iam::123456789012:root"}})),
            ),
        ]
    }

    #[test]
    fn equivalent_documents_are_equal() {
        for (name, a, b) in equivalent_pairs() {
            let (a, b) = (doc(a), doc(b));
            assert_eq!(a, b, "{name}");
            assert_eq!(b, a, "{name}");
        }
    }

    #[test]
    fn different_documents_are_not_equal() {
        for (name, a, b) in different_pairs() {
            assert_ne!(doc(a), doc(b), "{name}");
        }
    }

    /// The writer and the tree agree byte for byte: the fixtures above,
    /// documents in every odd shape, and many generated ones.
    #[test]
    fn canonical_text_is_the_text_of_the_canonical_tree() {
        let reference = |v: &Value| compact(&canonical_document(v.clone()));
        let mut samples: Vec<Value> =
            equivalent_pairs().into_iter().chain(different_pairs()).flat_map(|(_, a, b)| [a, b]).collect();
        samples.extend([
            json!(null),
            json!("text"),
            json!([1, 2]),
            json!({}),
            json!({"Version": "2012-10-17"}),
            json!({"Statement": "odd"}),
            json!({"Statement": 5, "Version": "2012-10-17"}),
            json!({"Statement": []}),
            json!({"Statement": ["b", "a", "b"]}),
            json!({"Statement": [{"Sid": ""}, {"Sid": ""}, 3, "x", null, {"Sid": "", "Action": "A"}]}),
            json!({"Statement": [
                {"Effect": "Allow", "Action": ["S3:Get", "s3:get", "s3:GET"], "Resource": ["b", "a", "b"]},
                {"Effect": "Allow", "Action": ["s3:get"], "Resource": ["a", "b"]},
                {"Effect": "Allow", "Action": "s3:Get", "Resource": ["a", "b"], "Sid": "X"},
                {"Effect": "Deny", "NotAction": ["Ä:ß", "ä:SS", "\u{3a3}:\u{3a3}\u{3a3}"], "NotResource": "*"},
            ]}),
            json!({"Statement": {"Effect": "Allow", "Action": [{"a": 1}, ["x"], 5, null, "Z", "z", "a\"q\\"],
                "Resource": [true, "x\ny", "x\u{1}", "x", {"k": "v"}]}}),
            json!({"Statement": {"Principal": "*", "NotPrincipal": {"AWS": ["123456789012", "arn:aws:iam::123456789012:root", 5],
                "Federated": "f", "Service": ["b", "a"], "CanonicalUser": 7, "Other": ["b", "a"]}}}),
            json!({"Statement": {"Principal": ["*"], "Condition": {
                "Bool": {"aws:SecureTransport": true, "k": [false, "false", true]},
                "NumericLessThan": {"n": [5, 5.5, "5", -1, 1e300]},
                "Null": {"x": null, "y": {"a": [2, 1]}, "z": []},
                "Odd": "string", "Odder": [1]}}}),
            json!({"Statement": {"Principal": {"AWS": "123456789012"}}, "Id": "x", "Zz": [3, 1]}),
            json!({"Statement": [{"Action": "\u{130}"}, {"Action": "i\u{307}"}, {"Action": "\u{3a3}"}, {"Action": "\u{3c3}"}]}),
            json!({"Statement": [{"Action": ["\n\u{3a3}", "\u{3a3}\n"]}, {"Action": "\n\u{3a3}"}]}),
        ]);
        // Generated documents: small alphabets, so that sets have duplicates,
        // case variants and prefixes of one another.
        struct Rng(u64);
        impl Rng {
            fn next(&mut self, n: usize) -> usize {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 % n as u64) as usize
            }
            fn atom(&mut self) -> Value {
                const ATOMS: [&str; 9] =
                    ["s3:Get", "s3:get", "S3:GET", "s3:Ge", "*", "a\"b", "123456789012", "ü", "x/y"];
                match self.next(12) {
                    0 => json!(true),
                    1 => json!(self.next(3)),
                    2 => json!(null),
                    _ => json!(ATOMS[self.next(ATOMS.len())]),
                }
            }
            fn list(&mut self) -> Value {
                if self.next(3) == 0 {
                    self.atom()
                } else {
                    let n = self.next(4);
                    Value::Array((0..n).map(|_| self.atom()).collect())
                }
            }
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let mut statements = Vec::new();
            for _ in 0..rng.next(4) {
                let mut st = Map::new();
                for (key, odds) in [("Action", 2), ("NotAction", 3), ("Resource", 2)] {
                    if rng.next(odds) == 0 {
                        st.insert(key.into(), rng.list());
                    }
                }
                if rng.next(3) == 0 {
                    st.insert("Sid".into(), json!(["", "A", "B"][rng.next(3)]));
                }
                if rng.next(3) == 0 {
                    let p = match rng.next(3) {
                        0 => json!("*"),
                        1 => json!({"AWS": rng.list(), "Service": rng.list()}),
                        _ => json!({"Federated": rng.list()}),
                    };
                    st.insert("Principal".into(), p);
                }
                if rng.next(3) == 0 {
                    st.insert("Condition".into(), json!({"StringLike": {"k": rng.list(), "j": rng.list()}}));
                }
                if rng.next(2) == 0 {
                    st.insert("Effect".into(), json!(["Allow", "Deny"][rng.next(2)]));
                }
                statements.push(Value::Object(st));
            }
            samples.push(json!({"Version": "2012-10-17", "Statement": statements}));
        }
        for sample in &samples {
            let want = reference(sample);
            assert_eq!(*canonical_text(sample), want, "{sample}");
            // The same document read as a snapshot's and as a user's.
            for text in [sample.to_string(), format!("{sample:#}")] {
                let light: Light = serde_json::from_str(&text).unwrap();
                assert_eq!(*canonical_text(&light), want, "{text}");
                assert_eq!(*canonical_text(&json_span::parse(&text).unwrap()), want, "{text}");
            }
        }
        // Repeated keys and escapes, as serde_json's `Value` reads them: the last one counts.
        for text in [
            r#"{"Statement": {"Action": "a", "Action": ["c", "b"], "Resource": "\u0041\n"}, "Version": 1, "Version": 2}"#,
            r#"{"b": 1, "a": {"y": [1.5, -2, 1e3], "x": null, "y": [3]}, "a": {"z": "\""}}"#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            let light: Light = serde_json::from_str(text).unwrap();
            assert_eq!(*canonical_text(&light), reference(&value), "{text}");
        }
    }

    #[test]
    fn needs_escape_finds_every_byte_serde_json_escapes() {
        for len in [1, 7, 8, 9, 16, 17] {
            for at in 0..len {
                for b in (0u8..0x80).chain([0xc3]) {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    if b == 0xc3 {
                        // A two-byte character, to stay UTF-8.
                        bytes.insert(at + 1, 0xa9);
                    }
                    let s = std::str::from_utf8(&bytes).unwrap();
                    let want = serde_json::to_string(s).unwrap().len() != s.len() + 2;
                    assert_eq!(needs_escape(s), want, "{s:?}");
                }
            }
        }
    }

    #[test]
    fn canonicalization_is_idempotent_and_stable() {
        let samples = equivalent_pairs().into_iter().chain(different_pairs()).flat_map(|(_, a, b)| [a, b]);
        for sample in samples {
            let once = doc(sample);
            let twice = doc(once.canonical().clone());
            assert_eq!(twice, once);
            assert_eq!(twice.canonical(), once.canonical());
            assert_eq!(twice.to_pretty(), once.to_pretty());
            assert_eq!(PolicyDocument::parse(&once.to_compact()).unwrap().canonical(), once.canonical());
        }
    }

    #[test]
    fn equality_is_transitive_across_spellings() {
        let spellings = [
            statement(json!({"Action": "s3:GetObject"})),
            statement(json!({"Action": ["S3:GETOBJECT"]})),
            statement(json!({"Action": ["s3:getobject", "s3:GetObject"]})),
        ];
        for a in &spellings {
            for b in &spellings {
                assert_eq!(doc(a.clone()), doc(b.clone()));
            }
        }
    }

    #[test]
    fn canonical_form_uses_lists_and_keeps_spelling() {
        let d = doc(json!({
            "Statement": {
                "Sid": "",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject"],
                "Resource": "arn:aws:s3:::b/*",
                "Principal": "*",
                "Condition": {"Bool": {"aws:SecureTransport": true}},
                "Extra": "kept"
            },
            "Version": "2012-10-17"
        }));
        assert_eq!(
            d.canonical(),
            &json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject"],
                    "Resource": ["arn:aws:s3:::b/*"],
                    "Principal": {"AWS": ["*"]},
                    "Condition": {"Bool": {"aws:SecureTransport": ["true"]}},
                    "Extra": "kept"
                }]
            })
        );
        assert_eq!(d.statements().len(), 1);
        assert!(d.to_pretty().starts_with("{\n  \"Statement\": [\n    {\n      \"Action\": ["));
        assert!(!d.to_compact().contains(char::is_whitespace));
    }

    #[test]
    fn documents_without_statements_are_kept() {
        let d = doc(json!({"Statement": "odd"}));
        assert_eq!(d.canonical(), &json!({"Statement": "odd"}));
        assert!(d.statements().is_empty());
        assert_eq!(doc(json!([1])).canonical(), &json!([1]));
    }

    #[test]
    fn string_sets_sort_as_their_json_text_does() {
        // A string that continues with a character below `"` (space, `!`)
        // sorts after its own prefix as JSON text, before it as text.
        let cases: &[&[&str]] = &[
            &["ab", "ab!", "ab ", "abc", "a", "AB", "Ab!"],
            &["s3:GetObject", "s3:getobject", "S3:GETOBJECT", "s3:PutObject", "s3:Get*", "s3:*"],
            &["arn:aws:s3:::b/*", "arn:aws:s3:::b", "arn:aws:s3:::b/", "arn:aws:s3:::b-2", "arn:aws:s3:::b#"],
            &["é", "e", "E", "z", "ǅ", "ǆ", "ÿ", "~", "}"],
            &["x", "x"],
        ];
        for items in cases {
            let values: Vec<Value> = items.iter().map(|s| json!(s)).collect();
            for key in [action_key as fn(&Value) -> Value, Value::clone] {
                let fast = sorted_string_set(values.clone(), key).expect("plain strings");
                assert_eq!(fast, sorted_set_by_text(values.clone(), key), "{items:?}");
            }
        }
        // Strings JSON escapes, and anything not a string, take the written way.
        for items in [vec![json!("a\"b"), json!("a")], vec![json!("a\\"), json!("a")], vec![json!(1), json!("a")]] {
            assert!(sorted_string_set(items.clone(), Value::clone).is_err());
            assert_eq!(sorted_set(items.clone(), Value::clone), sorted_set_by_text(items, Value::clone));
        }
    }

    #[test]
    fn size_ignores_whitespace() {
        let d = doc(
            json!({"Version": "2012-10-17", "Statement": [{"Sid": "a b", "Effect": "Allow", "Action": "*", "Resource": "*"}]}),
        );
        let compact = d.to_compact();
        assert_eq!(d.size(), compact.chars().count() - 1);
    }

    #[test]
    fn spaces_are_counted_eight_at_a_time_as_one_at_a_time() {
        // Every length around the chunk size, spaces at every offset and
        // next to the bytes closest to a space (0x1f, 0x21, 0x7f, NUL).
        let alphabet = [b' ', b'a', 0x1f, 0x21, 0x7f, 0, b'"'];
        for len in 0..40usize {
            for seed in 0..alphabet.len() * 3 {
                let bytes: Vec<u8> =
                    (0..len).map(|i| alphabet[(i * 7 + seed * (i % 3 + 1)) % alphabet.len()]).collect();
                let naive = bytes.iter().filter(|&&b| b == b' ').count();
                assert_eq!(ascii_spaces(&bytes), Some(naive), "{bytes:?}");
                // One byte that is not ASCII, anywhere, makes it `None`.
                for at in 0..len {
                    let mut other = bytes.clone();
                    other[at] |= 0x80;
                    assert_eq!(ascii_spaces(&other), None, "{other:?}");
                }
            }
            assert_eq!(ascii_spaces(&vec![b' '; len]), Some(len));
        }
        // Past the 255 chunks a byte lane holds.
        for len in [2039, 2040, 2041, 4096, 10_000] {
            assert_eq!(ascii_spaces(&vec![b' '; len]), Some(len));
            let mixed: Vec<u8> = (0..len).map(|i| if i % 3 == 0 { b' ' } else { b'x' }).collect();
            assert_eq!(ascii_spaces(&mixed), Some(len.div_ceil(3)));
        }
    }

    // ---- decoding, parsing, serde ---------------------------------------

    const ENCODED: &str = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Resource%22%3A%22*%22%7D%5D%7D";

    #[test]
    fn decode_handles_iam_encoding_and_leaves_plain_json_alone() {
        assert_eq!(
            decode(ENCODED),
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#
        );
        let plain = r#"  {"Condition": {"StringLike": {"k": "100%25 off"}}}"#;
        assert!(matches!(decode(plain), Cow::Borrowed(p) if p == plain));
        assert_eq!(decode("%0A%7B%7D"), "\n{}");
    }

    #[test]
    fn parse_accepts_encoded_and_plain_documents() {
        let encoded = PolicyDocument::parse(ENCODED).unwrap();
        let plain = PolicyDocument::parse(
            r#"{"Statement": {"Resource": "*", "Action": ["s3:getobject"], "Effect": "Allow"}, "Version": "2012-10-17"}"#,
        )
        .unwrap();
        assert_eq!(encoded, plain);
    }

    #[test]
    fn parse_errors_point_into_the_decoded_text() {
        let text = r#"{"Version": "2012-10-17", "Statement": [,]}"#;
        let err = PolicyDocument::parse(text).unwrap_err();
        assert_eq!(&text[err.span.clone()], ",");
        assert!(err.message.starts_with("expected a JSON value"), "{}", err.message);

        let err = PolicyDocument::parse("%7B%22a%22%3A1%2C%22a%22%3A2%7D").unwrap_err();
        assert_eq!(err.message, "duplicate key `a`");
        assert_eq!(err.span, 7..10);

        let err = PolicyDocument::parse("[]").unwrap_err();
        assert_eq!(err.message, "a policy document must be a JSON object");
    }

    #[test]
    fn serde_round_trip() {
        let d = doc(statement(json!({"Action": ["s3:PutObject", "s3:GetObject"]})));
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(&json, d.canonical());
        let back: PolicyDocument = serde_json::from_value(json).unwrap();
        assert_eq!(back, d);
        let from_string: PolicyDocument = serde_json::from_value(Value::String(d.to_compact())).unwrap();
        assert_eq!(from_string, d);
        let from_encoded: PolicyDocument = serde_json::from_value(Value::String(ENCODED.to_owned())).unwrap();
        assert_eq!(from_encoded, doc(statement(json!({}))));
        let err = serde_json::from_value::<PolicyDocument>(json!(5)).unwrap_err();
        assert!(err.to_string().contains("expected a policy document"));
        let err = serde_json::from_value::<PolicyDocument>(json!("{\"a\": }")).unwrap_err();
        assert!(err.to_string().contains("at byte 6"), "{err}");
    }

    // ---- check_identity_policy ------------------------------------------

    /// The problems of `text` as (spanned text, message, help).
    fn problems(text: &str) -> Vec<(&str, String, Option<String>)> {
        match check_identity_policy(text) {
            Ok(_) => vec![],
            Err(problems) => problems.into_iter().map(|p| (&text[p.span], p.message, p.help)).collect(),
        }
    }

    const VALID_STATEMENT: &str = r#"{"Effect": "Allow", "Action": "*", "Resource": "*"}"#;

    fn policy_with(statement: &str) -> String {
        format!(r#"{{"Version": "2012-10-17", "Statement": [{statement}]}}"#)
    }

    #[test]
    fn valid_identity_policies_pass_and_are_canonical() {
        let valid = [
            policy_with(r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}"#),
            policy_with(r#"{"Sid": "Read1", "Effect": "Deny", "NotAction": ["iam:*", "sts:Get?essionToken"], "NotResource": "*"}"#),
            policy_with(r#"{"Sid": "", "Effect": "Allow", "Action": "*", "Resource": ["*"],
                "Condition": {"StringEquals": {"aws:RequestedRegion": ["us-east-1", 5, true]}}}"#),
            policy_with(
                r#"{"Sid": "A", "Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*"},
                   {"Sid": "", "Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                   {"Sid": "", "Effect": "Allow", "Action": "ec2:*", "Resource": "*"}"#,
            ),
            r#"{"Version": "2008-10-17", "Id": "x", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}"#.to_owned(),
        ];
        for text in valid {
            let found = problems(&text);
            assert!(found.is_empty(), "{text}: {found:?}");
            let checked = check_identity_policy(&text).unwrap();
            assert_eq!(checked, PolicyDocument::parse(&text).unwrap());
        }
    }

    #[test]
    fn each_rule_reports_the_offending_element() {
        // (document, spanned text, start of message, start of help)
        let cases: Vec<(String, &str, &str, &str)> = vec![
            ("[]".into(), "[]", "a policy document must be a JSON object", "write it as"),
            (
                format!(r#"{{"Statement": {VALID_STATEMENT}}}"#),
                "{",
                "the policy has no `Version`",
                "add \"Version\"",
            ),
            (r#"{"Version": "2012-10-17"}"#.into(), "{", "the policy has no `Statement`", "add \"Statement\""),
            (
                r#"{"Version": "2012-10-18", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}"#.into(),
                r#""2012-10-18""#,
                "unsupported policy version \"2012-10-18\"",
                "use \"2012-10-17\"",
            ),
            (
                r#"{"Version": "2012-10-17", "Id": 1, "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}"#.into(),
                "1",
                "`Id` must be a string",
                "",
            ),
            (
                format!(r#"{{"Version": "2012-10-17", "id": "x", "Statement": {VALID_STATEMENT}}}"#),
                r#""id""#,
                "unknown policy document element `id`",
                "element names are case-sensitive: did you mean `Id`?",
            ),
            (
                format!(r#"{{"Version": "2012-10-17", "Statement": {VALID_STATEMENT}, "Extra": 1}}"#),
                r#""Extra""#,
                "unknown policy document element `Extra`",
                "the allowed elements are Version, Id, Statement",
            ),
            (r#"{"Version": "2012-10-17", "Statement": []}"#.into(), "[]", "`Statement` is empty", "add at least one"),
            (
                r#"{"Version": "2012-10-17", "Statement": "x"}"#.into(),
                r#""x""#,
                "`Statement` must be an object or a list of objects",
                "",
            ),
            (policy_with("1"), "1", "a statement must be a JSON object", ""),
            (
                policy_with(r#"{"Action": "*", "Resource": "*"}"#),
                "{",
                "the statement has no `Effect`",
                "add \"Effect\": \"Allow\"",
            ),
            (
                policy_with(r#"{"Effect": "allow", "Action": "*", "Resource": "*"}"#),
                r#""allow""#,
                "invalid `Effect` \"allow\"",
                "`Effect` is case-sensitive: write \"Allow\"",
            ),
            (
                policy_with(r#"{"Effect": "Permit", "Action": "*", "Resource": "*"}"#),
                r#""Permit""#,
                "invalid `Effect` \"Permit\"",
                "use \"Allow\" or \"Deny\"",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Resource": "*"}"#),
                "{",
                "the statement has neither `Action` nor `NotAction`",
                "add `Action`",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Action": "*", "NotAction": "s3:*", "Resource": "*"}"#),
                r#""NotAction""#,
                "`Action` and `NotAction` cannot both appear in one statement",
                "keep one",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Action": "*"}"#),
                "{",
                "the statement has neither `Resource` nor `NotResource`",
                "add `Resource`",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Action": "*", "Resource": "*", "NotResource": "*"}"#),
                r#""NotResource""#,
                "`Resource` and `NotResource` cannot both appear",
                "keep one",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Action": [], "Resource": "*"}"#),
                "[]",
                "`Action` must list at least one entry",
                "",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Action": {"s3": "*"}, "Resource": "*"}"#),
                r#"{"s3": "*"}"#,
                "`Action` must be a string or a list of strings",
                "",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Action": ["s3:GetObject", 3], "Resource": "*"}"#),
                "3",
                "entries of `Action` must be strings",
                "",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Action": "s3GetObject", "Resource": "*"}"#),
                r#""s3GetObject""#,
                "`s3GetObject` is not an action of the form `service:Action`",
                "write an action as",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Action": "s3:", "Resource": "*"}"#),
                r#""s3:""#,
                "`s3:` is not an action",
                "write an action as",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "NotAction": "s3:Get Object", "Resource": "*"}"#),
                r#""s3:Get Object""#,
                "`s3:Get Object` is not an action",
                "write an action as",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Action": "*", "Resource": "my-bucket"}"#),
                r#""my-bucket""#,
                "`my-bucket` is not a resource ARN or `*`",
                "a resource is `*` or an ARN",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Action": "*", "Resource": "*", "Principal": {"AWS": "*"}}"#),
                r#""Principal""#,
                "`Principal` is not allowed in an identity-based policy",
                "remove it",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Action": "*", "Resource": "*", "NotPrincipal": "*"}"#),
                r#""NotPrincipal""#,
                "`NotPrincipal` is not allowed in an identity-based policy",
                "remove it",
            ),
            (
                policy_with(r#"{"Sid": "read-only", "Effect": "Allow", "Action": "*", "Resource": "*"}"#),
                r#""read-only""#,
                "Sid `read-only` may contain only",
                "remove spaces",
            ),
            (
                policy_with(r#"{"Sid": 1, "Effect": "Allow", "Action": "*", "Resource": "*"}"#),
                "1",
                "`Sid` must be a string",
                "",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": []}"#),
                "[]",
                "`Condition` must be an object",
                "write it as",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Bool": true}}"#),
                "true",
                "condition operator `Bool` must map condition keys to values",
                "write it as \"Bool\": {",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Bool": {"k": {"x": 1}}}}"#),
                r#"{"x": 1}"#,
                "the value of condition key `k` must be",
                "",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Action": "*", "Resource": "*", "Effect2": 1}"#),
                r#""Effect2""#,
                "unknown statement element `Effect2`",
                "the allowed elements are Sid, Effect, Principal",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "action": "*", "Action": "*", "Resource": "*"}"#),
                r#""action""#,
                "unknown statement element `action`",
                "element names are case-sensitive: did you mean `Action`?",
            ),
            (
                policy_with(r#"{"Effect": "Allow", "Action": "*", "Resource": "*", "Resource": "*"}"#),
                r#""Resource""#,
                "duplicate key `Resource`",
                "IAM rejects",
            ),
            (policy_with(r#"{"Effect": "Allow",}"#), ",", "trailing comma is not allowed in JSON", ""),
        ];
        for (text, spanned, message, help) in cases {
            let found = problems(&text);
            assert_eq!(found.len(), 1, "{text}: {found:?}");
            let (got_span, got_message, got_help) = &found[0];
            assert_eq!(got_span, &spanned, "{text}: {got_message}");
            assert!(got_message.starts_with(message), "{text}: {got_message}");
            match got_help {
                Some(got) => assert!(!help.is_empty() && got.starts_with(help), "{text}: {got}"),
                None => assert!(help.is_empty(), "{text}: expected help {help}"),
            }
        }
    }

    #[test]
    fn all_problems_are_reported_in_text_order() {
        let text = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Same", "Effect": "allow", "Action": "s3GetObject", "Resource": "bucket"},
    {"Sid": "Same", "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}
  ],
  "Bogus": 1
}"#;
        let found: Vec<(&str, String)> = problems(text).into_iter().map(|(s, m, _)| (s, m)).collect();
        let expected = [
            (r#""allow""#, "invalid `Effect` \"allow\""),
            (r#""s3GetObject""#, "`s3GetObject` is not an action of the form `service:Action`"),
            (r#""bucket""#, "`bucket` is not a resource ARN or `*`"),
            (r#""Same""#, "duplicate Sid `Same`"),
            (r#""Principal""#, "`Principal` is not allowed in an identity-based policy"),
            (r#""Bogus""#, "unknown policy document element `Bogus`"),
        ];
        let expected: Vec<(&str, String)> = expected.iter().map(|(s, m)| (*s, m.to_string())).collect();
        assert_eq!(found, expected);
        let spans: Vec<usize> = check_identity_policy(text).unwrap_err().iter().map(|p| p.span.start).collect();
        assert_eq!(spans[3], text.rfind(r#""Same""#).unwrap());
    }

    // ---- admits_web_identity --------------------------------------------

    const PROVIDER: &str = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC123";
    const ISSUER: &str = "oidc.eks.us-east-1.amazonaws.com/id/ABC123";
    const SA: &str = "system:serviceaccount:backend:my-sa";

    fn trust(statements: Value) -> PolicyDocument {
        doc(json!({"Version": "2012-10-17", "Statement": statements}))
    }

    fn web_identity(condition: Value) -> Value {
        json!({
            "Effect": "Allow",
            "Principal": {"Federated": PROVIDER},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": condition
        })
    }

    #[test]
    fn trust_policies_admit_or_refuse_the_service_account() {
        let cases: Vec<(&str, Value, bool)> = vec![
            (
                "eksctl style: sub and aud StringEquals",
                web_identity(json!({"StringEquals": {
                    format!("{ISSUER}:sub"): SA, format!("{ISSUER}:aud"): "sts.amazonaws.com"}})),
                true,
            ),
            (
                "StringLike namespace wildcard",
                web_identity(json!({"StringLike": {format!("{ISSUER}:sub"): "system:serviceaccount:backend:*"}})),
                true,
            ),
            (
                "StringLike other namespace",
                web_identity(json!({"StringLike": {format!("{ISSUER}:sub"): "system:serviceaccount:frontend:*"}})),
                false,
            ),
            (
                "StringLike with ?",
                web_identity(json!({"StringLike": {format!("{ISSUER}:sub"): "system:serviceaccount:backend:my-s?"}})),
                true,
            ),
            (
                "StringEquals does not glob",
                web_identity(json!({"StringEquals": {format!("{ISSUER}:sub"): "system:serviceaccount:backend:*"}})),
                false,
            ),
            (
                "only sub, one of several values",
                web_identity(json!({"StringEquals": {format!("{ISSUER}:sub"): ["system:serviceaccount:a:b", SA]}})),
                true,
            ),
            (
                "only sub, another account",
                web_identity(json!({"StringEquals": {format!("{ISSUER}:sub"): "system:serviceaccount:backend:other"}})),
                false,
            ),
            ("aud only", web_identity(json!({"StringEquals": {format!("{ISSUER}:aud"): "sts.amazonaws.com"}})), true),
            ("wrong aud", web_identity(json!({"StringEquals": {format!("{ISSUER}:aud"): "example.com"}})), false),
            (
                "no condition at all",
                json!({"Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": "sts:AssumeRoleWithWebIdentity"}),
                true,
            ),
            (
                "condition key case is ignored",
                web_identity(json!({"StringEquals": {format!("{}:SUB", ISSUER.to_lowercase()): SA}})),
                true,
            ),
            (
                "condition on another issuer",
                web_identity(json!({"StringEquals": {"oidc.eks.us-east-1.amazonaws.com/id/OTHER:sub": SA}})),
                false,
            ),
            ("unknown operator", web_identity(json!({"StringEqualsIgnoreCase": {format!("{ISSUER}:sub"): SA}})), false),
            (
                "ForAnyValue prefix is not understood",
                web_identity(json!({"ForAnyValue:StringEquals": {format!("{ISSUER}:sub"): SA}})),
                false,
            ),
            (
                "extra condition key",
                web_identity(json!({"StringEquals": {format!("{ISSUER}:sub"): SA, "aws:SourceIp": "10.0.0.0/8"}})),
                false,
            ),
            (
                "wrong provider",
                json!({"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/other"},
                       "Action": "sts:AssumeRoleWithWebIdentity"}),
                false,
            ),
            (
                "AWS principal, not federated",
                json!({"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "sts:AssumeRoleWithWebIdentity"}),
                false,
            ),
            (
                "everyone is too broad to count",
                json!({"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRoleWithWebIdentity"}),
                false,
            ),
            (
                "wrong action",
                json!({"Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": "sts:AssumeRole"}),
                false,
            ),
            (
                "action wildcard and case",
                json!({"Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": ["STS:assumerole*"]}),
                true,
            ),
            ("action *", json!({"Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": "*"}), true),
            ("sts:*", json!({"Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": "sts:*"}), true),
            (
                "NotAction excluding something else",
                json!({"Effect": "Allow", "Principal": {"Federated": PROVIDER}, "NotAction": "s3:*"}),
                true,
            ),
            (
                "NotAction excluding the action",
                json!({"Effect": "Allow", "Principal": {"Federated": PROVIDER}, "NotAction": "sts:*"}),
                false,
            ),
            (
                "Deny effect alone",
                json!({"Effect": "Deny", "Principal": {"Federated": PROVIDER}, "Action": "sts:AssumeRoleWithWebIdentity"}),
                false,
            ),
        ];
        for (name, statement, expected) in cases {
            let policy = trust(json!([statement]));
            assert_eq!(admits_web_identity(&policy, PROVIDER, ISSUER, SA), expected, "{name}");
        }
    }

    #[test]
    fn deny_statements_override_allow() {
        let allow = web_identity(json!({"StringLike": {format!("{ISSUER}:sub"): "system:serviceaccount:backend:*"}}));
        let cases: Vec<(&str, Value, bool)> = vec![
            (
                "deny matching sub",
                json!({"Effect": "Deny", "Principal": {"Federated": PROVIDER}, "Action": "sts:AssumeRoleWithWebIdentity",
                       "Condition": {"StringEquals": {format!("{ISSUER}:sub"): SA}}}),
                false,
            ),
            (
                "deny for another service account",
                json!({"Effect": "Deny", "Principal": {"Federated": PROVIDER}, "Action": "sts:AssumeRoleWithWebIdentity",
                       "Condition": {"StringEquals": {format!("{ISSUER}:sub"): "system:serviceaccount:backend:other"}}}),
                true,
            ),
            (
                "deny for another provider",
                json!({"Effect": "Deny", "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/x"}, "Action": "*"}),
                true,
            ),
            (
                "deny another action",
                json!({"Effect": "Deny", "Principal": {"Federated": PROVIDER}, "Action": "sts:TagSession"}),
                true,
            ),
            ("deny everyone", json!({"Effect": "Deny", "Principal": "*", "Action": "sts:*"}), false),
            (
                "deny with a condition irsa cannot evaluate",
                json!({"Effect": "Deny", "Principal": {"Federated": PROVIDER}, "Action": "sts:*",
                       "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}),
                false,
            ),
        ];
        assert!(admits_web_identity(&trust(json!([allow.clone()])), PROVIDER, ISSUER, SA));
        for (name, deny, expected) in cases {
            let policy = trust(json!([allow.clone(), deny]));
            assert_eq!(admits_web_identity(&policy, PROVIDER, ISSUER, SA), expected, "{name}");
        }
    }

    #[test]
    fn admits_a_real_eksctl_trust_policy_as_iam_returns_it() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Federated%22%3A%22arn%3Aaws%3Aiam%3A%3A123456789012%3Aoidc-provider%2Foidc.eks.us-east-1.amazonaws.com%2Fid%2FABC123%22%7D%2C%22Action%22%3A%22sts%3AAssumeRoleWithWebIdentity%22%2C%22Condition%22%3A%7B%22StringEquals%22%3A%7B%22oidc.eks.us-east-1.amazonaws.com%2Fid%2FABC123%3Aaud%22%3A%22sts.amazonaws.com%22%2C%22oidc.eks.us-east-1.amazonaws.com%2Fid%2FABC123%3Asub%22%3A%22system%3Aserviceaccount%3Abackend%3Amy-sa%22%7D%7D%7D%5D%7D";
        let policy = PolicyDocument::parse(encoded).unwrap();
        assert!(admits_web_identity(&policy, PROVIDER, ISSUER, SA));
        assert!(admits_web_identity(&policy, PROVIDER, &format!("https://{ISSUER}"), SA));
        assert!(!admits_web_identity(&policy, PROVIDER, ISSUER, "system:serviceaccount:backend:other"));
    }

    #[test]
    fn glob_matches_like_iam() {
        let cases = [
            ("*", "", true),
            ("*", "abc", true),
            ("a*c", "abbbc", true),
            ("a*c", "abcd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*:*:b*", "x:y:bz", true),
            ("**a", "a", true),
            ("abc", "abd", false),
            ("a*b*c", "aXbYbZc", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob(pattern, text), expected, "{pattern} vs {text}");
        }
    }

    #[test]
    fn a_trust_policy_names_its_federated_provider_in_either_form() {
        let arn = "arn:aws:iam::123456789012:oidc-provider/oidc.example/id/A";
        let allow = |principal: Value| {
            PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRoleWithWebIdentity"}
            ]}))
        };
        assert!(allow(json!({"Federated": arn})).names_federated(arn));
        assert!(
            allow(json!({"Federated": [arn, "arn:aws:iam::123456789012:oidc-provider/other"]})).names_federated(arn)
        );
        assert!(!allow(json!({"Federated": "arn:aws:iam::123456789012:oidc-provider/other"})).names_federated(arn));
        assert!(!allow(json!({"Service": "ec2.amazonaws.com"})).names_federated(arn));
        let deny = PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Principal": {"Federated": arn}, "Action": "sts:AssumeRoleWithWebIdentity"}
        ]}));
        assert!(!deny.names_federated(arn), "a Deny grants nothing through the provider");
    }
}
