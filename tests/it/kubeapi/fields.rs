//! `metadata.managedFields`: which field manager owns which fields.
//!
//! Simplification: a field set is a set of leaf paths through maps; a list
//! is one leaf, owned as a whole (the real structured-merge-diff tracks
//! associative-list items by key, `k:{"name":"app"}`). The serialized
//! `fieldsV1` is the real format for maps (`{"f:metadata": {"f:labels":
//! {"f:app": {}}}}`), without the `".": {}` markers for owned parents.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// Keys from the object's root to a leaf value.
pub type Path = Vec<String>;

/// Fields the server sets or that identify the object: nobody owns them.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub time: String,
    pub fields: BTreeSet<Path>,
    /// `Some("status")` for writes through the status subresource, which
    /// own paths under `status` only.
    pub subresource: Option<String>,
}

impl Entry {
    /// An entry of the main resource (not a subresource's).
    fn is(&self, manager: &str, operation: Operation) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.is_none()
    }
}

/// Who writes, with which API version, when.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub now: &'a str,
}

/// A field that another manager owns with a value the apply would change.
#[derive(Debug, Clone)]
pub struct Conflict {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub path: Path,
}

impl Conflict {
    /// The field as structured-merge-diff prints it: `.metadata.labels.app`.
    pub fn field(&self) -> String {
        self.path.iter().map(|k| format!(".{k}")).collect()
    }
}

/// The owned leaves of an object and their values. `apiVersion`, `kind`,
/// `status` and the server's metadata are not fields anyone manages.
pub fn leaves(obj: &Value) -> BTreeMap<Path, &Value> {
    let mut out = BTreeMap::new();
    let Value::Object(root) = obj else { return out };
    for (key, value) in root {
        match (key.as_str(), value) {
            ("apiVersion" | "kind" | "status", _) => {}
            ("metadata", Value::Object(meta)) => {
                for (mkey, mvalue) in meta.iter().filter(|(k, _)| !SERVER_METADATA.contains(&k.as_str())) {
                    walk(mvalue, vec![key.clone(), mkey.clone()], &mut out);
                }
            }
            _ => walk(value, vec![key.clone()], &mut out),
        }
    }
    out
}

fn walk<'a>(value: &'a Value, path: Path, out: &mut BTreeMap<Path, &'a Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let mut child_path = path.clone();
                child_path.push(key.clone());
                walk(child, child_path, out);
            }
        }
        _ => {
            out.insert(path, value);
        }
    }
}

pub fn get_path<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, key| v.get(key))
}

pub fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let parent = parents.iter().try_fold(obj, |v, key| v.get_mut(key));
    if let Some(Value::Object(map)) = parent {
        map.remove(last);
    }
}

/// Two paths overlap when one owns the other (equal, or an ancestor).
fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

pub fn parse(obj: &Value) -> Vec<Entry> {
    let entries = obj.pointer("/metadata/managedFields").and_then(Value::as_array);
    entries
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            let operation = match text("operation")?.as_str() {
                "Apply" => Operation::Apply,
                _ => Operation::Update,
            };
            let mut fields = BTreeSet::new();
            if let Some(v1) = e.get("fieldsV1") {
                parse_fields_v1(v1, &Vec::new(), &mut fields);
            }
            Some(Entry {
                manager: text("manager").unwrap_or_default(),
                operation,
                api_version: text("apiVersion").unwrap_or_default(),
                time: text("time").unwrap_or_default(),
                fields,
                subresource: text("subresource"),
            })
        })
        .collect()
}

fn parse_fields_v1(node: &Value, prefix: &Path, out: &mut BTreeSet<Path>) {
    let Value::Object(map) = node else { return };
    for (key, child) in map {
        if key == "." {
            continue;
        }
        let Some(name) = key.strip_prefix("f:") else {
            // `k:`, `v:`, `i:` keys address list items; we own lists whole.
            out.insert(prefix.clone());
            continue;
        };
        let mut path = prefix.clone();
        path.push(name.to_string());
        match child {
            Value::Object(m) if !m.is_empty() => parse_fields_v1(child, &path, out),
            _ => {
                out.insert(path);
            }
        }
    }
}

pub fn render(entries: &[Entry]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|e| {
                let mut root = Map::new();
                for path in &e.fields {
                    let mut node = &mut root;
                    for key in path {
                        let child = node.entry(format!("f:{key}")).or_insert_with(|| json!({}));
                        if !child.is_object() {
                            *child = json!({});
                        }
                        let Value::Object(next) = child else { unreachable!("made an object above") };
                        node = next;
                    }
                }
                let mut entry = json!({
                    "manager": e.manager,
                    "operation": e.operation.as_str(),
                    "apiVersion": e.api_version,
                    "time": e.time,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": root,
                });
                if let Some(subresource) = &e.subresource {
                    entry["subresource"] = json!(subresource);
                }
                entry
            })
            .collect(),
    )
}

/// An Update-type write (create, PUT, non-apply PATCH, the controller):
/// `manager` gains every leaf the write set or changed, and other managers
/// lose those leaves. Fields that no longer exist leave every set.
pub fn record_update(entries: &mut Vec<Entry>, old: Option<&Value>, new: &Value, writer: Writer) {
    let old_leaves = old.map(leaves).unwrap_or_default();
    record(entries, (&old_leaves, &leaves(new)), new, writer, None, false);
}

/// The leaves under `status`, as the status subresource's writers own them.
fn status_leaves(obj: &Value) -> BTreeMap<Path, &Value> {
    let mut out = BTreeMap::new();
    if let Some(status) = obj.get("status") {
        walk(status, vec!["status".to_string()], &mut out);
    }
    out
}

/// An Update through the status subresource: like [`record_update`], over
/// the paths under `status`, in an entry marked `subresource: status`.
/// `touched` refreshes the entry's time even when no field changed (a
/// write that bumped the resourceVersion anyway).
pub fn record_status_update(entries: &mut Vec<Entry>, old: &Value, new: &Value, writer: Writer, touched: bool) {
    record(entries, (&status_leaves(old), &status_leaves(new)), new, writer, Some("status"), touched);
}

/// The Update entry of `writer` (on the object, or on `subresource`) gains
/// the leaves that changed from the old to the new ones, and every other
/// entry loses them.
fn record(
    entries: &mut Vec<Entry>,
    (old_leaves, new_leaves): (&BTreeMap<Path, &Value>, &BTreeMap<Path, &Value>),
    new: &Value,
    writer: Writer,
    subresource: Option<&str>,
    touched: bool,
) {
    let Writer { manager, api_version, now } = writer;
    let changed: BTreeSet<Path> =
        new_leaves.iter().filter(|(p, v)| old_leaves.get(*p) != Some(*v)).map(|(p, _)| p.clone()).collect();
    let removed = old_leaves.keys().any(|p| !new_leaves.contains_key(p));
    let mine =
        |e: &Entry| e.manager == manager && e.operation == Operation::Update && e.subresource.as_deref() == subresource;
    for entry in entries.iter_mut().filter(|e| !mine(e)) {
        entry.fields.retain(|f| !changed.iter().any(|c| overlaps(f, c)));
    }
    if !changed.is_empty() || removed || touched {
        match entries.iter_mut().find(|e| mine(e)) {
            Some(entry) => {
                entry.fields.extend(changed);
                entry.time = now.to_string();
                entry.api_version = api_version.to_string();
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: Operation::Update,
                api_version: api_version.to_string(),
                time: now.to_string(),
                fields: changed,
                subresource: subresource.map(str::to_owned),
            }),
        }
    }
    prune(entries, new);
}

/// Server-side apply: the fields of `config` that other managers own with a
/// different value in `current`.
pub fn apply_conflicts(entries: &[Entry], manager: &str, current: &Value, config: &Value) -> Vec<Conflict> {
    let mut conflicts = Vec::new();
    for (path, value) in leaves(config) {
        if get_path(current, &path) == Some(value) {
            continue;
        }
        for entry in entries.iter().filter(|e| !e.is(manager, Operation::Apply)) {
            if entry.fields.iter().any(|f| overlaps(f, &path)) {
                conflicts.push(Conflict {
                    manager: entry.manager.clone(),
                    operation: entry.operation,
                    api_version: entry.api_version.clone(),
                    path: path.clone(),
                });
            }
        }
    }
    conflicts
}

/// Fields `manager` applied before, omits from `config` now and nobody else
/// owns: server-side apply removes them from the object.
pub fn dropped_by_apply(entries: &[Entry], manager: &str, config: &Value) -> Vec<Path> {
    let applied = leaves(config);
    let Some(mine) = entries.iter().find(|e| e.is(manager, Operation::Apply)) else { return Vec::new() };
    mine.fields
        .iter()
        .filter(|p| !applied.keys().any(|a| overlaps(a, p)))
        .filter(|p| {
            !entries
                .iter()
                .filter(|e| !e.is(manager, Operation::Apply))
                .any(|e| e.fields.iter().any(|f| overlaps(f, p)))
        })
        .cloned()
        .collect()
}

/// Records an apply: `manager` owns exactly the fields of `config`; forced
/// conflicts take the field from their previous owner, while managers that
/// already had the applied value keep sharing it.
pub fn record_apply(
    entries: &mut Vec<Entry>,
    conflicts: &[Conflict],
    config: &Value,
    new: &Value,
    object_changed: bool,
    writer: Writer,
) {
    let Writer { manager, api_version, now } = writer;
    for conflict in conflicts {
        for entry in entries.iter_mut().filter(|e| e.is(&conflict.manager, conflict.operation)) {
            entry.fields.retain(|f| !overlaps(f, &conflict.path));
        }
    }
    let applied: BTreeSet<Path> = leaves(config).into_keys().collect();
    match entries.iter_mut().find(|e| e.is(manager, Operation::Apply)) {
        Some(entry) => {
            if object_changed || entry.fields != applied {
                entry.time = now.to_string();
            }
            entry.fields = applied;
            entry.api_version = api_version.to_string();
        }
        None => entries.push(Entry {
            manager: manager.to_string(),
            operation: Operation::Apply,
            api_version: api_version.to_string(),
            time: now.to_string(),
            fields: applied,
            subresource: None,
        }),
    }
    prune(entries, new);
}

/// Keeps only leaves that exist (under `status` for status entries), and
/// only entries that own something.
fn prune(entries: &mut Vec<Entry>, obj: &Value) {
    let (main, status) = (leaves(obj), status_leaves(obj));
    for entry in entries.iter_mut() {
        let present = if entry.subresource.is_some() { &status } else { &main };
        entry.fields.retain(|f| present.contains_key(f));
    }
    entries.retain(|e| !e.fields.is_empty());
}
