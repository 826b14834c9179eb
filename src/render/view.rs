//! What a reviewer sees of each change, independent of how it is drawn.

use serde_json::Value;
use similar::TextDiff;

use super::Options;
use crate::model::address::ResourceKind;
use crate::model::desired::markers;
use crate::model::policy_doc::PolicyDocument;
use crate::plan::review::{self, Access, Finding, Severity};
use crate::plan::{Action, Attr, Attrs, Change, DOCUMENT_ATTRIBUTES, Plan};

/// One line under a change's heading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `key: value` of a resource being created, deleted or unchanged.
    Value { key: String, value: String },
    /// `key: before -> after`, with an optional note such as "(rolls the pods)".
    Changed { key: String, before: String, after: String, note: Option<String> },
    /// A key of a map attribute (tags, annotations) that is added, removed or changed.
    Entry { sign: char, key: String, value: String },
    /// A document: a unified diff, or the whole document with every line added/removed.
    Document { key: String, diff: Vec<DiffLine> },
    /// A document summarised in one line: "(12 lines, shown with --diff)".
    Summary { key: String, text: String },
    /// Why the change happens.
    Reason(String),
}

/// One line of a document diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    /// `+`, `-`, ` ` or `@` (a hunk header).
    pub sign: char,
    pub text: String,
}

/// A change as shown.
#[derive(Debug, Clone)]
pub struct ChangeView {
    pub symbol: &'static str,
    pub verb: &'static str,
    pub address: String,
    pub lines: Vec<Line>,
    pub removes: bool,
}

/// Attribute keys the address already says, or that only irsa cares about.
fn hidden(kind: ResourceKind, key: &str) -> bool {
    matches!(key, "name" | "namespace" | "arn" | "resource_version")
        || (matches!(kind, ResourceKind::RolePolicyAttachment | ResourceKind::RoleInlinePolicy) && key == "role")
}

/// How an attribute is named for reviewers who know the Kubernetes field names.
fn display_key(key: &str) -> &str {
    match key {
        "service_account_name" => "serviceAccountName",
        "trust_policy" => "trust",
        other => other,
    }
}

pub fn symbol(change: &Change) -> &'static str {
    match change.actions.as_slice() {
        [Action::Create] => "+",
        [Action::Update] => "~",
        [Action::Delete] => "-",
        [Action::Restart] => "↻",
        [Action::Adopt] => "⇐",
        _ if change.is_replace() => "-/+",
        _ => "?",
    }
}

pub fn changes(plan: &Plan, options: Options) -> Vec<ChangeView> {
    plan.changes.iter().map(|c| change(c, options)).collect()
}

fn change(c: &Change, options: Options) -> ChangeView {
    let mut lines = Vec::new();
    match (&c.before, &c.after) {
        (None, Some(after)) => whole(c.kind, after, '+', options, &mut lines),
        (Some(before), None) => whole(c.kind, before, '-', options, &mut lines),
        (Some(before), Some(after)) => {
            for key in ordered(c.changed.iter().map(String::as_str)) {
                if hidden(c.kind, key) && key != "arn" {
                    continue;
                }
                changed(
                    c,
                    key,
                    before.get(key).unwrap_or(&Value::Null),
                    after.get(key).unwrap_or(&Value::Null),
                    &mut lines,
                );
            }
        }
        (None, None) => {}
    }
    // "not present" under every `+` is noise; every other action says why.
    if c.actions != [Action::Create] {
        lines.extend(c.reasons.iter().map(|r| Line::Reason(r.clone())));
    }
    ChangeView {
        symbol: symbol(c),
        verb: c.verb(),
        address: c.address.to_string(),
        lines,
        removes: c.actions.contains(&Action::Delete),
    }
}

/// The order attributes are listed in: identity first, documents and tags last.
const ATTRIBUTE_ORDER: &[&str] = &[
    "url",
    "client_ids",
    "thumbprints",
    "path",
    "description",
    "max_session_duration",
    "permissions_boundary",
    "policy_arn",
    "service_account_name",
    "annotations",
    "labels",
    "document",
    "trust_policy",
    "tags",
];

/// `keys` in [`ATTRIBUTE_ORDER`], unknown keys last in their own order.
fn ordered<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut keys: Vec<&str> = keys.collect();
    keys.sort_by_key(|k| ATTRIBUTE_ORDER.iter().position(|o| o == k).unwrap_or(usize::MAX));
    keys
}

/// Attributes of a resource that appears or disappears as a whole.
fn whole(kind: ResourceKind, attrs: &Attrs, sign: char, options: Options, lines: &mut Vec<Line>) {
    for key in ordered(attrs.keys()) {
        let Some(attr) = attrs.attr(key) else { continue };
        // A document's tree only for as long as it is looked at (see `Attrs`).
        let value = attr.tree();
        let value = value.as_ref();
        if hidden(kind, key) || value.is_null() {
            continue;
        }
        let shown = display_key(key).to_owned();
        if DOCUMENT_ATTRIBUTES.contains(&key) {
            let pretty = match attr {
                Attr::Document(d) => d.to_pretty(),
                other => PolicyDocument::from_value(other.value().clone()).to_pretty(),
            };
            if options.full_documents {
                let diff = pretty.lines().map(|l| DiffLine { sign, text: l.to_owned() }).collect();
                lines.push(Line::Document { key: shown, diff });
            } else {
                let text = match (key, trust_summary(value)) {
                    ("trust_policy", Some(s)) => s,
                    _ => format!("({} lines, shown with --diff)", pretty.lines().count()),
                };
                lines.push(Line::Summary { key: shown, text });
            }
            continue;
        }
        match (key, value) {
            ("tags", Value::Object(tags)) => {
                let own: Vec<String> = tags
                    .iter()
                    .filter(|(k, _)| !k.starts_with("irsa:"))
                    .map(|(k, v)| format!("{k} = {}", scalar(v)))
                    .collect();
                if !own.is_empty() {
                    lines.push(Line::Value { key: shown, value: format!("{{{}}}", own.join(", ")) });
                }
            }
            // A ServiceAccount's annotations are what the webhook reads: list
            // them one per line; irsa's own markers are left out as noise.
            ("annotations", Value::Object(map)) => {
                for (k, v) in map {
                    if k != markers::ANNOTATION_STACK {
                        lines.push(Line::Value { key: k.clone(), value: scalar_bare(v) });
                    }
                }
            }
            ("labels", _) => {}
            _ => lines.push(Line::Value { key: shown, value: scalar_bare(value) }),
        }
    }
}

fn changed(c: &Change, key: &str, before: &Value, after: &Value, lines: &mut Vec<Line>) {
    let shown = display_key(key).to_owned();
    if DOCUMENT_ATTRIBUTES.contains(&key) {
        let b = doc_text(before);
        let a = doc_text(after);
        lines.push(Line::Document { key: shown, diff: unified(&b, &a) });
        return;
    }
    if let (Value::Object(b), Value::Object(a)) = (before, after) {
        for (k, av) in a {
            match b.get(k) {
                None => lines.push(Line::Entry { sign: '+', key: format!("{shown}.{k}"), value: scalar(av) }),
                Some(bv) if bv != av => lines.push(Line::Changed {
                    key: format!("{shown}.{k}"),
                    before: scalar(bv),
                    after: scalar(av),
                    note: None,
                }),
                Some(_) => {}
            }
        }
        for (k, bv) in b {
            if !a.contains_key(k) {
                lines.push(Line::Entry { sign: '-', key: format!("{shown}.{k}"), value: scalar(bv) });
            }
        }
        return;
    }
    let note =
        (c.kind == ResourceKind::Deployment && key == "service_account_name").then(|| "(rolls the pods)".to_owned());
    lines.push(Line::Changed { key: shown, before: scalar(before), after: scalar(after), note });
}

fn doc_text(v: &Value) -> String {
    if v.is_null() { String::new() } else { PolicyDocument::from_value(v.clone()).to_pretty() + "\n" }
}

/// A unified diff of two pretty documents, three lines of context.
pub fn unified(before: &str, after: &str) -> Vec<DiffLine> {
    let diff = TextDiff::from_lines(before, after);
    let mut out = Vec::new();
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        out.push(DiffLine { sign: '@', text: hunk.header().to_string() });
        for change in hunk.iter_changes() {
            let sign = match change.tag() {
                similar::ChangeTag::Delete => '-',
                similar::ChangeTag::Insert => '+',
                similar::ChangeTag::Equal => ' ',
            };
            out.push(DiffLine { sign, text: change.value().trim_end_matches('\n').to_owned() });
        }
    }
    out
}

/// "sts:AssumeRoleWithWebIdentity for system:serviceaccount:ns:sa, …": what
/// a reviewer needs to know about a generated trust policy, in one line.
fn trust_summary(doc: &Value) -> Option<String> {
    let statements = doc.get("Statement")?.as_array()?;
    let mut subjects = Vec::new();
    for s in statements {
        let actions = s.get("Action").map(as_strings).unwrap_or_default();
        if !actions.iter().any(|a| a.eq_ignore_ascii_case("sts:AssumeRoleWithWebIdentity")) {
            continue;
        }
        let conditions = s.get("Condition").and_then(Value::as_object)?;
        for (_, keys) in conditions {
            for (k, v) in keys.as_object()? {
                if k.ends_with(":sub") {
                    subjects.extend(as_strings(v));
                }
            }
        }
    }
    (!subjects.is_empty() && statements.len() == 1)
        .then(|| format!("sts:AssumeRoleWithWebIdentity for {}", subjects.join(", ")))
}

fn as_strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// A value as JSON (strings quoted), on one line.
pub fn scalar(v: &Value) -> String {
    if v.is_null() { "(none)".into() } else { v.to_string() }
}

/// A string without quotes; anything else as JSON.
fn scalar_bare(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// "9 to create, 1 to update, …" for the summary line.
pub fn counts(plan: &Plan) -> String {
    let s = &plan.summary;
    let mut out = format!(
        "{} to create, {} to update, {} to replace, {} to delete, {} to restart",
        s.create, s.update, s.replace, s.delete, s.restart
    );
    if s.adopt > 0 {
        out.push_str(&format!(", {} to adopt", s.adopt));
    }
    out
}

/// Where the observed state came from, for the heading.
pub fn provenance(plan: &Plan) -> String {
    let r = &plan.refresh;
    match &r.snapshot {
        Some(path) => match &r.observed_at {
            Some(at) => format!("observed from {path} (read {at})"),
            None => format!("observed from {path}"),
        },
        None => format!(
            "refreshed {} IAM call{}, {} Kubernetes request{}",
            r.iam_calls,
            if r.iam_calls == 1 { "" } else { "s" },
            r.kube_requests,
            if r.kube_requests == 1 { "" } else { "s" }
        ),
    }
}

/// The security review as shown: findings highest severity first, and
/// which changes widen or only narrow access.
pub struct ReviewView<'p> {
    pub findings: Vec<&'p Finding>,
    pub widens: Vec<&'p Change>,
    pub narrows: Vec<&'p Change>,
    /// Changes that leave access as it is (or were planned before the review).
    pub same: usize,
}

pub fn review(plan: &Plan) -> ReviewView<'_> {
    let mut v = ReviewView { findings: review::by_severity(&plan.findings), widens: vec![], narrows: vec![], same: 0 };
    for c in &plan.changes {
        match c.access {
            Some(Access::Widens) => v.widens.push(c),
            Some(Access::Narrows) => v.narrows.push(c),
            _ => v.same += 1,
        }
    }
    v
}

impl ReviewView<'_> {
    /// "This plan widens access", or "only narrows" it, or leaves it.
    pub fn verdict(&self) -> &'static str {
        if !self.widens.is_empty() {
            "widens access"
        } else if !self.narrows.is_empty() {
            "only narrows access"
        } else {
            "leaves access as it is"
        }
    }

    /// "3 findings (1 medium, 1 low, 1 info)", or "no findings".
    pub fn tally(&self) -> String {
        if self.findings.is_empty() {
            return "no findings".into();
        }
        let parts: Vec<String> = Severity::DESCENDING
            .iter()
            .map(|s| (s, self.findings.iter().filter(|f| f.severity == *s).count()))
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{n} {}", s.as_str()))
            .collect();
        format!(
            "{} finding{} ({})",
            self.findings.len(),
            if self.findings.len() == 1 { "" } else { "s" },
            parts.join(", ")
        )
    }
}

/// The first `max` items shown by `show`, then "and N more".
pub fn capped<T>(items: &[T], max: usize, show: impl Fn(&T) -> String) -> String {
    let mut shown: Vec<String> = items.iter().take(max).map(show).collect();
    if items.len() > max {
        shown.push(format!("and {} more", items.len() - max));
    }
    shown.join(", ")
}
