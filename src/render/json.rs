//! The JSON plan: [`Plan`] serialised as it is, pretty-printed with a final
//! newline. Its fields are documented in `docs/plan-format.md`.
//!
//! [`render`] is serde_json's pretty text of the model and the definition of
//! the format. [`write`] makes the same bytes (its tests hold it to them)
//! without going through serde for the changes: a plan from nothing of
//! 100,000 bindings is 800,000 changes and 700 MB of JSON, most of it policy
//! documents, which are written from their canonical text as they are
//! held (see `plan::attrs`) rather than parsed into trees to be written again.

use std::fmt::Write as _;
use std::io::Write;

use crate::model::json_pretty::{compact_to_pretty, newline, write_object, write_serialized, write_str, write_value};
use crate::plan::{Action, Attr, Attrs, Change, Plan};

pub fn render(plan: &Plan) -> String {
    // Serialising plain data with string keys cannot fail.
    let mut out = serde_json::to_string_pretty(plan).expect("a plan serialises to JSON");
    out.push('\n');
    out
}

/// [`render`] written straight to `out`, a change at a time: the text of a
/// large plan is never held whole.
pub fn write(plan: &Plan, out: &mut impl Write) -> std::io::Result<()> {
    // Every field of `Plan`, in its order; a field added there and not here
    // fails `written_is_rendered` on the fixtures, which set every field.
    let Plan { format_version, irsa_version, stack, refresh, summary, changes, warnings, findings, targets } = plan;
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    buf.extend_from_slice(b"{");
    key(&mut buf, 1, "format_version", true);
    write_str(&mut buf, format_version);
    key(&mut buf, 1, "irsa_version", false);
    write_str(&mut buf, irsa_version);
    key(&mut buf, 1, "stack", false);
    write_str(&mut buf, stack);
    key(&mut buf, 1, "refresh", false);
    write_serialized(&mut buf, refresh, 1);
    key(&mut buf, 1, "summary", false);
    write_serialized(&mut buf, summary, 1);
    key(&mut buf, 1, "changes", false);
    if changes.is_empty() {
        buf.extend_from_slice(b"[]");
    } else {
        buf.push(b'[');
        let mut scratch = String::new();
        for (i, change) in changes.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            newline(&mut buf, 2);
            write_change(&mut buf, change, &mut scratch);
            if buf.len() >= 1 << 16 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        newline(&mut buf, 1);
        buf.push(b']');
    }
    key(&mut buf, 1, "warnings", false);
    write_list(&mut buf, out, warnings)?;
    key(&mut buf, 1, "findings", false);
    write_list(&mut buf, out, findings)?;
    if !targets.is_empty() {
        key(&mut buf, 1, "targets", false);
        write_serialized(&mut buf, targets, 1);
    }
    buf.extend_from_slice(b"\n}\n");
    out.write_all(&buf)
}

/// A top-level member's list, written item by item and flushed as it goes:
/// serialised whole, a large plan's findings (one per new trust subject)
/// were held twice, as text and as its copy, at the end of the run.
fn write_list<T: serde::Serialize>(buf: &mut Vec<u8>, out: &mut impl Write, items: &[T]) -> std::io::Result<()> {
    if items.is_empty() {
        buf.extend_from_slice(b"[]");
        return Ok(());
    }
    buf.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        newline(buf, 2);
        write_serialized(buf, item, 2);
        if buf.len() >= 1 << 16 {
            out.write_all(buf)?;
            buf.clear();
        }
    }
    newline(buf, 1);
    buf.push(b']');
    Ok(())
}

/// An object member's key at nesting level `level`, after a comma unless first.
fn key(buf: &mut Vec<u8>, level: usize, name: &str, first: bool) {
    if !first {
        buf.push(b',');
    }
    newline(buf, level);
    write_str(buf, name);
    buf.extend_from_slice(b": ");
}

/// A list of strings (or of anything written as one) at nesting level `level`.
fn strings<T>(buf: &mut Vec<u8>, items: &[T], level: usize, mut each: impl FnMut(&mut Vec<u8>, &T)) {
    if items.is_empty() {
        buf.extend_from_slice(b"[]");
        return;
    }
    buf.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        newline(buf, level + 1);
        each(buf, item);
    }
    newline(buf, level);
    buf.push(b']');
}

/// One change, an element of `changes` (nesting level 2).
fn write_change(buf: &mut Vec<u8>, change: &Change, scratch: &mut String) {
    let Change { address, kind, actions, reasons, before, after, changed, depends_on, guard, access } = change;
    let mut display = |buf: &mut Vec<u8>, item: &dyn std::fmt::Display| {
        scratch.clear();
        write!(scratch, "{item}").expect("writing to a String cannot fail");
        write_str(buf, scratch);
    };
    buf.push(b'{');
    key(buf, 3, "address", true);
    display(buf, address);
    key(buf, 3, "kind", false);
    write_serialized(buf, kind, 3);
    key(buf, 3, "actions", false);
    strings(buf, actions, 3, |buf, a| write_str(buf, action_name(*a)));
    key(buf, 3, "reasons", false);
    strings(buf, reasons, 3, |buf, r| write_str(buf, r));
    key(buf, 3, "before", false);
    write_attrs(buf, before.as_ref());
    key(buf, 3, "after", false);
    write_attrs(buf, after.as_ref());
    key(buf, 3, "changed", false);
    strings(buf, changed, 3, |buf, c| write_str(buf, c));
    key(buf, 3, "depends_on", false);
    strings(buf, depends_on, 3, |buf, d| display(buf, d));
    if !guard.is_empty() {
        key(buf, 3, "guard", false);
        write_object(buf, guard, 3);
    }
    if let Some(access) = access {
        key(buf, 3, "access", false);
        write_serialized(buf, access, 3);
    }
    newline(buf, 2);
    buf.push(b'}');
}

/// A change's `before` or `after` (the value of a member at level 3).
fn write_attrs(buf: &mut Vec<u8>, attrs: Option<&Attrs>) {
    let Some(attrs) = attrs else {
        buf.extend_from_slice(b"null");
        return;
    };
    if attrs.is_empty() {
        buf.extend_from_slice(b"{}");
        return;
    }
    buf.push(b'{');
    for (i, (name, attr)) in attrs.iter().enumerate() {
        key(buf, 4, name, i == 0);
        match attr {
            Attr::Value(v) => write_value(buf, v, 4),
            Attr::Document(d) => compact_to_pretty(buf, d.text(), 4),
            Attr::Strings(s) if s.is_empty() => buf.extend_from_slice(b"{}"),
            Attr::Strings(s) => {
                buf.push(b'{');
                for (i, (k, v)) in s.iter().enumerate() {
                    key(buf, 5, k, i == 0);
                    write_str(buf, v);
                }
                newline(buf, 4);
                buf.push(b'}');
            }
        }
    }
    newline(buf, 3);
    buf.push(b'}');
}

/// An action as serde names it (`rename_all = "snake_case"`).
fn action_name(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Delete => "delete",
        Action::Restart => "restart",
        Action::Adopt => "adopt",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_named_as_serde_names_them() {
        for a in [Action::Create, Action::Update, Action::Delete, Action::Restart, Action::Adopt] {
            assert_eq!(serde_json::to_value(a).unwrap(), action_name(a));
        }
    }

    fn written(plan: &Plan) -> String {
        let mut out = Vec::new();
        write(plan, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn written_is_rendered() {
        // Every plans/ scenario planned from its snapshot and from nothing:
        // every kind of change, guards, findings, warnings, documents.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut checked = 0;
        for entry in std::fs::read_dir(root.join("plans")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let Ok(desired) = crate::config::load(&path) else { continue };
            let snapshot = path.with_extension("observed.json");
            let observed = match crate::refresh::snapshot::load(&snapshot) {
                Ok(o) => o,
                Err(_) => continue,
            };
            let targeted = crate::plan::PlanOptions { targets: vec!["sa/".into()], ..Default::default() };
            let destroy = crate::plan::PlanOptions { destroy: true, ..Default::default() };
            let gone = desired.for_destroy();
            for (desired, opts) in [(&desired, Default::default()), (&desired, targeted), (&gone, destroy)] {
                let Ok(plan) = crate::plan::plan(desired, &observed, &opts) else { continue };
                assert_eq!(written(&plan), render(&plan), "{}", path.display());
                // Read back (a saved plan): documents as trees, the same bytes.
                let back: Plan = serde_json::from_str(&render(&plan)).unwrap();
                assert_eq!(written(&back), render(&plan), "{}", path.display());
                checked += 1;
            }
        }
        assert!(checked >= 12, "only {checked} plans checked");
    }

    #[test]
    fn an_empty_plan_is_written_as_rendered() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let desired = crate::config::load(&root.join("plans/ekshandson.toml")).unwrap();
        let observed = crate::refresh::snapshot::load(&root.join("plans/ekshandson.observed.json")).unwrap();
        let mut plan = crate::plan::plan(&desired, &observed, &Default::default()).unwrap();
        plan.changes.clear();
        plan.findings.clear();
        plan.warnings.clear();
        assert_eq!(written(&plan), render(&plan));
    }
}
