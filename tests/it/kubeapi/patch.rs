//! Patch formats: JSON merge patch (RFC 7386) and JSON patch (RFC 6902).
//!
//! Strategic merge patch is served by [`merge`] too. That is a deliberate
//! simplification: the real one merges some lists by key (containers by
//! `name`, env by `name`, …) and honours `$patch` directives, while a merge
//! patch replaces every list. irsa only patches maps (annotations, labels,
//! `serviceAccountName`, the restart annotation), where the two agree.

use serde_json::{Map, Value};

/// RFC 7386: objects merge recursively, `null` removes a key, anything else
/// (lists included) replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Why a JSON patch was refused: the API server answers 400 for a patch it
/// cannot decode and 422 for one that does not apply to the object (the
/// reason stays here; the answer carries the API server's fixed message).
#[derive(Debug)]
pub enum JsonPatchError {
    Malformed(String),
    /// json-patch's own message (in `apply_op`) goes nowhere, as there.
    DoesNotApply,
}

/// RFC 6902 with `add`, `remove`, `replace`, `test`, `move` and `copy`.
/// Applied to a copy: on error `doc` is unchanged.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), JsonPatchError> {
    use JsonPatchError::{DoesNotApply, Malformed};
    let ops = ops.as_array().ok_or_else(|| Malformed("a JSON patch is an array of operations".into()))?;
    let mut work = doc.clone();
    for op in ops {
        let field = |name: &str| op.get(name).and_then(Value::as_str);
        let (Some(kind), Some(path)) = (field("op"), field("path")) else {
            return Err(Malformed(format!("operation {op} needs string fields \"op\" and \"path\"")));
        };
        let path = pointer(path).map_err(Malformed)?;
        let operation = match kind {
            "add" | "replace" | "test" => {
                let value =
                    op.get("value").cloned().ok_or_else(|| Malformed(format!("operation {op} needs \"value\"")))?;
                match kind {
                    "add" => Op::Add(value),
                    "replace" => Op::Replace(value),
                    _ => Op::Test(value),
                }
            }
            "remove" => Op::Remove,
            "move" | "copy" => {
                let from = pointer(field("from").unwrap_or_default()).map_err(Malformed)?;
                if kind == "move" { Op::Move(from) } else { Op::Copy(from) }
            }
            other => return Err(Malformed(format!("unknown JSON patch operation {other:?}"))),
        };
        apply_op(&mut work, &path, operation).map_err(|_| DoesNotApply)?;
    }
    *doc = work;
    Ok(())
}

enum Op {
    Add(Value),
    Remove,
    Replace(Value),
    Test(Value),
    Move(Vec<String>),
    Copy(Vec<String>),
}

fn apply_op(doc: &mut Value, path: &[String], op: Op) -> Result<(), String> {
    match op {
        Op::Add(value) => add(doc, path, value),
        Op::Remove => remove(doc, path).map(drop),
        // The root ("") can be replaced, though not removed.
        Op::Replace(value) if path.is_empty() => {
            *doc = value;
            Ok(())
        }
        Op::Replace(value) => {
            remove(doc, path)?;
            add(doc, path, value)
        }
        Op::Test(expected) => test(doc, path, &expected),
        Op::Move(from) => {
            let moved = remove(doc, &from)?;
            add(doc, path, moved)
        }
        Op::Copy(from) => {
            let copied = get(doc, &from).cloned().ok_or_else(|| format!("{} does not exist", join(&from)))?;
            add(doc, path, copied)
        }
    }
}

/// `test` as evanphx/json-patch v4 (kube-apiserver's) does it: the parent
/// must exist, but a missing member equals `null` (so `"value": null`
/// tests that a key is absent); a member that is `null` equals `null`
/// only; an array index out of range fails.
fn test(doc: &Value, path: &[String], expected: &Value) -> Result<(), String> {
    let failed = || Err(format!("testing value {} failed: test failed", join(path)));
    let Some((last, parents)) = path.split_last() else {
        return if doc == expected { Ok(()) } else { failed() };
    };
    let actual = match get(doc, parents) {
        Some(Value::Object(map)) => map.get(last),
        Some(Value::Array(items)) => match last.parse::<usize>().ok().and_then(|i| items.get(i)) {
            Some(item) => Some(item),
            None => return Err(format!("error in test for path: '{}': unable to access invalid index", join(path))),
        },
        _ => return Err(format!("test operation does not apply: is missing path: {}: missing value", join(path))),
    };
    match (actual.filter(|v| !v.is_null()), expected) {
        (None, Value::Null) => Ok(()),
        (Some(actual), expected) if actual == expected => Ok(()),
        _ => failed(),
    }
}

/// RFC 6901 JSON pointer into its reference tokens.
fn pointer(text: &str) -> Result<Vec<String>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let rest = text.strip_prefix('/').ok_or_else(|| format!("JSON pointer {text:?} does not start with '/'"))?;
    Ok(rest.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect())
}

fn join(path: &[String]) -> String {
    path.iter().map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1"))).collect()
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, token| match v {
        Value::Object(m) => m.get(token),
        Value::Array(a) => token.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn parent_mut<'a>(doc: &'a mut Value, path: &[String]) -> Result<(&'a mut Value, String), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("the root cannot be the target of this operation".into());
    };
    let mut node = doc;
    for token in parents {
        node = match node {
            Value::Object(m) => m.get_mut(token),
            Value::Array(a) => token.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("{} does not exist", join(path)))?;
    }
    Ok((node, last.clone()))
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent_mut(doc, path)?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) if last == "-" => {
            a.push(value);
            Ok(())
        }
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i <= a.len() => {
                a.insert(i, value);
                Ok(())
            }
            _ => Err(format!("array index {} is out of range", join(path))),
        },
        _ => Err(format!("the parent of {} is not an object or an array", join(path))),
    }
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, String> {
    let (parent, last) = parent_mut(doc, path)?;
    let removed = match parent {
        Value::Object(m) => m.remove(&last),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Some(a.remove(i)),
            _ => None,
        },
        _ => None,
    };
    removed.ok_or_else(|| format!("{} does not exist", join(path)))
}
