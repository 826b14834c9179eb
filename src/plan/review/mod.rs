//! The security review of a plan: what each change does to access, and the
//! findings a reviewer of an IAM change should see before reading the diff.
//!
//! Pure and offline: every rule reads only a change's `before` and `after`
//! (the observed and desired documents the plan already holds), so a plan
//! made from a snapshot, a saved plan and a live plan are reviewed alike.
//! Each change is reviewed on its own, once, in time linear in the size of
//! its documents; no-op resources are not in the plan and cost nothing.
//!
//! What a finding is about is always what the change *adds*: a risky grant
//! that was there before and stays is not reported again (the rules compare
//! each finding's key against the same rule run on `before`), except for
//! trust statements of other parties and wildcard subjects, which a reviewer
//! must know about whenever the role's trust changes. Every rule is
//! documented, with an example, in `docs/security-review.md`.

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Attr, Attrs, Change};
use crate::model::Address;
use crate::model::address::ResourceKind;
use crate::model::policy_doc::glob;
use crate::model::trust::is_stack_sid;

/// How much a finding matters, lowest first (so `>=` reads "at least").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }

    /// Highest first, for listings.
    pub const DESCENDING: [Severity; 4] = [Severity::High, Severity::Medium, Severity::Low, Severity::Info];
}

/// What a change does to access, as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Something may do more than before (even if other things may do less).
    Widens,
    /// The change only removes access.
    Narrows,
    /// No grant changes: tags, descriptions, Kubernetes objects, restarts.
    Same,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Widens => "widens",
            Access::Narrows => "narrows",
            Access::Same => "same",
        }
    }
}

/// The rules, each documented in `docs/security-review.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// AdministratorAccess, PowerUserAccess, IAMFullAccess or any `*FullAccess` newly attached.
    BroadManagedPolicy,
    /// `"Action": "*"` in an Allow statement.
    ActionWildcard,
    /// `"Action": "<service>:*"` in an Allow statement.
    ServiceWildcard,
    /// An Allow statement with `NotAction`: every action but those.
    AllowNotAction,
    /// An Allow statement with `NotResource`: every resource but those.
    AllowNotResource,
    /// A write or permission-management action on every resource.
    WriteOnAnyResource,
    /// An action that lets its holder grant itself more.
    PrivilegeEscalation,
    /// A Deny statement that stood before is gone.
    DenyRemoved,
    /// A role loses its permissions boundary.
    BoundaryRemoved,
    /// A role's permissions boundary is another policy now.
    BoundaryChanged,
    /// A trust statement that admits any ServiceAccount or any principal.
    TrustWildcardSubject,
    /// A trust statement irsa does not manage, on a role whose trust it changes.
    TrustOtherParty,
    /// A ServiceAccount that may assume the role and could not before.
    TrustSubjectAdded,
    /// An existing role that more ServiceAccounts may assume than before.
    TrustMoreServiceAccounts,
}

impl Rule {
    pub const ALL: [Rule; 14] = [
        Rule::BroadManagedPolicy,
        Rule::ActionWildcard,
        Rule::ServiceWildcard,
        Rule::AllowNotAction,
        Rule::AllowNotResource,
        Rule::WriteOnAnyResource,
        Rule::PrivilegeEscalation,
        Rule::DenyRemoved,
        Rule::BoundaryRemoved,
        Rule::BoundaryChanged,
        Rule::TrustWildcardSubject,
        Rule::TrustOtherParty,
        Rule::TrustSubjectAdded,
        Rule::TrustMoreServiceAccounts,
    ];

    /// The rule's name as the JSON plan writes it.
    pub fn id(self) -> &'static str {
        match self {
            Rule::BroadManagedPolicy => "broad-managed-policy",
            Rule::ActionWildcard => "action-wildcard",
            Rule::ServiceWildcard => "service-wildcard",
            Rule::AllowNotAction => "allow-not-action",
            Rule::AllowNotResource => "allow-not-resource",
            Rule::WriteOnAnyResource => "write-on-any-resource",
            Rule::PrivilegeEscalation => "privilege-escalation",
            Rule::DenyRemoved => "deny-removed",
            Rule::BoundaryRemoved => "boundary-removed",
            Rule::BoundaryChanged => "boundary-changed",
            Rule::TrustWildcardSubject => "trust-wildcard-subject",
            Rule::TrustOtherParty => "trust-other-party",
            Rule::TrustSubjectAdded => "trust-subject-added",
            Rule::TrustMoreServiceAccounts => "trust-more-service-accounts",
        }
    }
}

/// One thing a reviewer should look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The change it is about.
    pub address: Address,
    pub severity: Severity,
    pub rule: Rule,
    /// What it means, as a sentence.
    pub message: String,
    /// The statement concerned: its `Sid`, or `#N` (1-based, in the order
    /// the plan shows the document: canonical, statements sorted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// The action, action pattern or policy ARN concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The trust subject concerned (`system:serviceaccount:<ns>:<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// One change's review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub access: Access,
    pub findings: Vec<Finding>,
}

/// Reviews every change of a plan of stack `stack`: sets each change's
/// `access` and gives the findings, in the changes' order.
pub fn review_all(stack: &str, changes: &mut [Box<Change>]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for change in changes {
        let review = review(stack, change);
        change.access = Some(review.access);
        findings.extend(review.findings);
    }
    findings
}

/// Reviews one change of a plan of stack `stack`.
pub fn review(stack: &str, change: &Change) -> Review {
    let mut r = Reviewer { address: &change.address, findings: Vec::new(), widens: false, narrows: false };
    let before = change.before.as_ref();
    let after = change.after.as_ref();
    match change.kind {
        ResourceKind::Policy | ResourceKind::RoleInlinePolicy => {
            let (b, a) = (document(before, "document"), document(after, "document"));
            r.permissions(b.as_deref(), a.as_deref());
        }
        ResourceKind::RolePolicyAttachment => r.attachment(change),
        ResourceKind::Role => {
            // A role that is deleted takes its trust with it; one that is
            // replaced is compared as before and after, like an update.
            let (b, a) = (document(before, "trust_policy"), document(after, "trust_policy"));
            r.trust(stack, b.as_deref(), a.as_deref(), before.is_some());
            r.boundary(before, after);
        }
        ResourceKind::OidcProvider => {
            fn ids(side: Option<&Attrs>) -> BTreeSet<&str> {
                side.map(|m| strings(m.get("client_ids")).into_iter().collect()).unwrap_or_default()
            }
            // A provider by itself grants nothing; an audience more or less
            // changes which tokens the roles trusting it accept.
            if before.is_some() {
                let (b, a) = (ids(before), ids(after));
                r.widens |= after.is_some() && a.difference(&b).next().is_some();
                r.narrows |= b.difference(&a).next().is_some();
            }
        }
        // Kubernetes objects choose which of the roles a trust policy already
        // admits a pod uses; what that role may do is reviewed on the role.
        ResourceKind::ServiceAccount | ResourceKind::Deployment => {}
    }
    let access = if r.widens {
        Access::Widens
    } else if r.narrows {
        Access::Narrows
    } else {
        Access::Same
    };
    Review { access, findings: r.findings }
}

/// A document as a tree for the review alone: the plan keeps its text, and
/// a tree kept per document would double a large plan's memory.
fn document<'a>(side: Option<&'a Attrs>, key: &str) -> Option<Cow<'a, Value>> {
    side.and_then(|m| m.attr(key)).map(Attr::tree).filter(|v| !v.is_null())
}

/// A string or a list of strings, as policy elements are written.
fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// A statement of a document, with the label a reviewer can find it by.
struct Statement<'a> {
    value: &'a Value,
    /// Its position in the document, for a statement without a Sid.
    index: usize,
    allow: bool,
    /// Lower case, as IAM compares action names.
    actions: Vec<String>,
    /// As written, for messages.
    actions_shown: Vec<&'a str>,
    not_action: bool,
    resources: Vec<&'a str>,
    not_resource: bool,
    condition: Option<&'a Value>,
}

fn statements(doc: Option<&Value>) -> Vec<Statement<'_>> {
    let list: Vec<&Value> = match doc.and_then(|d| d.get("Statement")) {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    list.into_iter()
        .enumerate()
        .map(|(i, s)| {
            let not_action = s.get("NotAction").is_some();
            let actions_shown = strings(s.get(if not_action { "NotAction" } else { "Action" }));
            let not_resource = s.get("NotResource").is_some();
            Statement {
                value: s,
                index: i,
                allow: s.get("Effect").and_then(Value::as_str) == Some("Allow"),
                actions: actions_shown.iter().map(|a| a.to_ascii_lowercase()).collect(),
                actions_shown,
                not_action,
                resources: strings(s.get(if not_resource { "NotResource" } else { "Resource" })),
                not_resource,
                condition: s.get("Condition").filter(|c| c.as_object().is_some_and(|c| !c.is_empty())),
            }
        })
        .collect()
}

impl Statement<'_> {
    /// How a reviewer finds it: its Sid, quoted, or `#N` in document order.
    fn label(&self) -> String {
        match self.value.get("Sid").and_then(Value::as_str) {
            Some(sid) if !sid.is_empty() => format!("\"{sid}\""),
            _ => format!("#{}", self.index + 1),
        }
    }

    fn condition_key(&self) -> String {
        self.condition.map(Value::to_string).unwrap_or_default()
    }

    /// " (under a condition)" when the statement has one: a reviewer weighs
    /// a conditional grant differently, but it is still a grant.
    fn conditional(&self) -> &'static str {
        if self.condition.is_some() { " (under a condition)" } else { "" }
    }

    /// Every resource, or every one but a few: no resource scoping to speak of.
    fn any_resource(&self) -> bool {
        self.not_resource || self.resources.contains(&"*")
    }

    fn resources_shown(&self) -> String {
        if self.not_resource {
            format!("every resource except {}", quoted(&self.resources))
        } else if self.resources.contains(&"*") {
            "every resource (\"*\")".into()
        } else {
            quoted(&self.resources)
        }
    }

    /// A key for "the same statement", actions folded to lower case.
    fn key(&self) -> String {
        let mut v = self.value.clone();
        if let Some(name) = ["Action", "NotAction"].into_iter().find(|n| v.get(*n).is_some()) {
            v[name] = Value::from(self.actions.clone());
        }
        v.to_string()
    }
}

fn quoted(items: &[&str]) -> String {
    let shown: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    shown.join(", ")
}

// ---------------------------------------------------------------------------
// Tables

/// Managed policies that grant broad power, with what they grant. Any other
/// policy whose name ends in `FullAccess` is reported at medium severity.
const BROAD_POLICIES: &[(&str, &str)] = &[
    ("AdministratorAccess", "every action on every resource"),
    (
        "PowerUserAccess",
        "every action on every resource except the management of IAM users, groups and the organization",
    ),
    ("IAMFullAccess", "full control of IAM, enough to grant itself any other permission"),
];

/// Actions that let their holder give itself more than it was given. The
/// first two are ordinary on a named resource and dangerous on all of them.
const ESCALATION: &[(&str, bool, &str)] = &[
    ("iam:PassRole", true, "hand any role to an AWS service it starts, and act with that role's permissions"),
    ("sts:AssumeRole", true, "assume any role that trusts this account"),
    ("iam:CreatePolicyVersion", false, "rewrite a managed policy, one attached to itself included"),
    ("iam:SetDefaultPolicyVersion", false, "switch a managed policy to another, possibly broader, version"),
    ("iam:AttachRolePolicy", false, "attach any managed policy, AdministratorAccess too, to a role"),
    ("iam:AttachUserPolicy", false, "attach any managed policy, AdministratorAccess too, to a user"),
    ("iam:AttachGroupPolicy", false, "attach any managed policy, AdministratorAccess too, to a group"),
    ("iam:PutRolePolicy", false, "write any inline policy into a role"),
    ("iam:PutUserPolicy", false, "write any inline policy into a user"),
    ("iam:PutGroupPolicy", false, "write any inline policy into a group"),
    ("iam:UpdateAssumeRolePolicy", false, "change who may assume a role"),
    ("iam:CreateAccessKey", false, "create access keys for other users and sign in as them"),
    ("iam:CreateLoginProfile", false, "set a console password for another user"),
    ("iam:UpdateLoginProfile", false, "change another user's console password"),
    ("iam:AddUserToGroup", false, "join any group and get its permissions"),
    ("iam:PutRolePermissionsBoundary", false, "replace a role's permissions boundary"),
    ("iam:DeleteRolePermissionsBoundary", false, "lift a role's permissions boundary"),
];

/// [`ESCALATION`]'s names in lower case, as actions are matched.
fn escalation_keys() -> &'static [String] {
    static KEYS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| ESCALATION.iter().map(|(name, _, _)| name.to_ascii_lowercase()).collect())
}

/// Services all of whose writes manage permissions.
const PERMISSION_SERVICES: &[&str] = &["iam", "organizations", "sso"];

/// Writes elsewhere that change who may do what (resource policies, grants).
const PERMISSION_ACTIONS: &[&str] = &[
    "kms:CreateGrant",
    "kms:PutKeyPolicy",
    "s3:PutBucketPolicy",
    "s3:PutBucketAcl",
    "s3:PutObjectAcl",
    "lambda:AddPermission",
    "sqs:AddPermission",
    "sns:AddPermission",
    "secretsmanager:PutResourcePolicy",
    "ecr:SetRepositoryPolicy",
];

/// Action name prefixes of reads. Everything else is treated as a write:
/// IAM's own access levels count `kms:Decrypt` or `sqs:ReceiveMessage` as
/// writes too, and a list of all actions is not something irsa ships.
const READ_PREFIXES: &[&str] =
    &["get", "list", "describe", "head", "lookup", "search", "select", "scan", "query", "view", "batchget"];

/// Whether `pattern` (lower case, `service:name`, maybe with wildcards) can
/// match a write. A wildcard counts as a read only after a whole read verb
/// (`s3:Get*`), not before one (`s3:*Object`).
fn may_write(pattern: &str) -> bool {
    let name = pattern.split_once(':').map_or(pattern, |(_, n)| n);
    let literal = name.split(['*', '?']).next().unwrap_or_default();
    !READ_PREFIXES.iter().any(|p| literal.starts_with(p))
}

fn service(pattern: &str) -> &str {
    pattern.split_once(':').map_or(pattern, |(s, _)| s)
}

/// The actions of `list` that `pattern` matches, as `list` spells them.
fn matching<'t>(pattern: &str, list: impl Iterator<Item = &'t str>) -> Vec<&'t str> {
    list.filter(|a| glob(pattern, &a.to_ascii_lowercase())).collect()
}

// ---------------------------------------------------------------------------
// The rules

struct Reviewer<'a> {
    address: &'a Address,
    findings: Vec<Finding>,
    widens: bool,
    narrows: bool,
}

/// A finding before it is known to be new: `key` says what it is about,
/// whichever statement says it.
struct Candidate {
    key: String,
    finding: Finding,
}

impl Reviewer<'_> {
    fn finding(&self, severity: Severity, rule: Rule, message: String) -> Finding {
        Finding { address: self.address.clone(), severity, rule, message, statement: None, action: None, subject: None }
    }

    fn attachment(&mut self, change: &Change) {
        let arn = |side: &Option<Attrs>| {
            side.as_ref().and_then(|m| m.get("policy_arn")).and_then(Value::as_str).map(str::to_owned)
        };
        let (before, after) = (arn(&change.before), arn(&change.after));
        if before == after {
            // A replace detaches and attaches the same policy again.
            return;
        }
        self.narrows |= before.is_some();
        let Some(arn) = after else { return };
        self.widens = true;
        let name = arn.rsplit('/').next().unwrap_or(&arn);
        let (severity, what) = match BROAD_POLICIES.iter().find(|(n, _)| *n == name) {
            Some((_, what)) => (Severity::High, *what),
            None if name.ends_with("FullAccess") => {
                (Severity::Medium, "full access to a whole service, on every resource")
            }
            None => return,
        };
        let mut f = self.finding(severity, Rule::BroadManagedPolicy, format!("attaches {name}: {what}"));
        f.action = Some(arn);
        self.findings.push(f);
    }

    /// Identity-policy documents: a policy's or an inline policy's.
    fn permissions(&mut self, before: Option<&Value>, after: Option<&Value>) {
        let (b, a) = (statements(before), statements(after));
        let old: BTreeSet<String> = b.iter().flat_map(|s| permission_candidates(self, s)).map(|c| c.key).collect();
        for s in &a {
            for c in permission_candidates(self, s) {
                if !old.contains(&c.key) {
                    self.findings.push(c.finding);
                }
            }
        }
        // Deny statements that stood before and are gone.
        let denies = |list: &[Statement<'_>]| -> BTreeSet<String> {
            list.iter().filter(|s| !s.allow).map(Statement::key).collect()
        };
        if b.iter().chain(&a).all(|s| s.allow) {
            // The usual documents: no Deny to compare.
            self.grants(&b, &a);
            return;
        }
        let (old_denies, new_denies) = (denies(&b), denies(&a));
        for s in b.iter().filter(|s| !s.allow) {
            if !new_denies.contains(&s.key()) {
                let mut f = self.finding(
                    Severity::Low,
                    Rule::DenyRemoved,
                    format!(
                        "removes the Deny statement {} of {}: what it denied may now be allowed by other policies",
                        s.label(),
                        quoted(&s.actions_shown)
                    ),
                );
                f.statement = Some(s.label());
                self.findings.push(f);
                self.widens = true;
            }
        }
        self.narrows |= new_denies.difference(&old_denies).next().is_some();
        self.grants(&b, &a);
    }

    fn grants(&mut self, b: &[Statement<'_>], a: &[Statement<'_>]) {
        // Grants: widened when a grant of `after` is not covered by one of
        // `before`, narrowed when one of `before` is not covered by `after`.
        // A document that appears or goes grants or takes all it allows.
        if b.is_empty() || a.is_empty() {
            self.widens |= a.iter().any(|s| s.allow);
            self.narrows |= b.iter().any(|s| s.allow);
            return;
        }
        let (old_grants, new_grants) = (grants(b), grants(a));
        self.widens |= new_grants.iter().any(|g| !old_grants.iter().any(|o| o.covers(g)));
        self.narrows |= old_grants.iter().any(|g| !new_grants.iter().any(|n| n.covers(g)));
    }

    /// Trust policies. `existed`: the role was there before (an update or
    /// replace, not a create).
    fn trust(&mut self, stack: &str, before: Option<&Value>, after: Option<&Value>, existed: bool) {
        let after_statements = statements(after);
        let (b, a) = (trust_facts(&statements(before)), trust_facts(&after_statements));
        self.widens |= a.units.difference(&b.units).next().is_some();
        self.narrows |= b.units.difference(&a.units).next().is_some();
        self.widens |= b.denies.difference(&a.denies).next().is_some();
        self.narrows |= a.denies.difference(&b.denies).next().is_some();
        if after.is_none() {
            return;
        }
        for s in after_statements.iter().filter(|s| s.allow) {
            let ours = s.value.get("Sid").and_then(Value::as_str).is_some_and(|sid| is_stack_sid(sid, stack));
            if let Some(what) = wildcard_subject(s) {
                let mut f = self.finding(
                    Severity::High,
                    Rule::TrustWildcardSubject,
                    format!("may be assumed by {what} (trust statement {})", s.label()),
                );
                f.statement = Some(s.label());
                self.findings.push(f);
            } else if !ours {
                let mut f = self.finding(
                    Severity::Medium,
                    Rule::TrustOtherParty,
                    format!(
                        "is also trusted by {} (trust statement {}), which irsa does not manage: whoever it \
                         admits gets every permission of the role",
                        principal_shown(s.value),
                        s.label()
                    ),
                );
                f.statement = Some(s.label());
                self.findings.push(f);
            }
        }
        for subject in a.subjects.difference(&b.subjects) {
            let mut f =
                self.finding(Severity::Info, Rule::TrustSubjectAdded, format!("{subject} may now assume the role"));
            f.subject = Some(subject.clone());
            self.findings.push(f);
        }
        if existed && a.subjects.len() > b.subjects.len() {
            self.findings.push(self.finding(
                Severity::Low,
                Rule::TrustMoreServiceAccounts,
                format!(
                    "may now be assumed by {} ServiceAccount{} ({} before): the pods of each get every \
                     permission of the role",
                    a.subjects.len(),
                    if a.subjects.len() == 1 { "" } else { "s" },
                    b.subjects.len()
                ),
            ));
        }
    }

    fn boundary(&mut self, before: Option<&Attrs>, after: Option<&Attrs>) {
        let (Some(before), Some(after)) = (before, after) else { return };
        let get = |m: &Attrs| m.get("permissions_boundary").and_then(Value::as_str).map(str::to_owned);
        let (b, a) = (get(before), get(after));
        if !after.contains_key("permissions_boundary") || a == b {
            // An `arn =` role's attributes other than trust are not irsa's.
            return;
        }
        match (b, a) {
            (Some(old), None) => {
                self.widens = true;
                self.findings.push(self.finding(
                    Severity::Medium,
                    Rule::BoundaryRemoved,
                    format!("removes the permissions boundary {old}: the role's policies are no longer capped"),
                ));
            }
            (Some(old), Some(new)) => {
                // Which of two policies allows more cannot be told from names.
                self.widens = true;
                self.findings.push(self.finding(
                    Severity::Low,
                    Rule::BoundaryChanged,
                    format!(
                        "the permissions boundary changes from {old} to {new}: what the role may do is capped \
                         by the new one, review it"
                    ),
                ));
            }
            (None, Some(_)) => self.narrows = true,
            (None, None) => {}
        }
    }
}

/// The findings one Allow statement of an identity policy would give.
fn permission_candidates(r: &Reviewer<'_>, s: &Statement<'_>) -> Vec<Candidate> {
    let mut out = Vec::new();
    if !s.allow {
        return out;
    }
    // What a finding is about, whichever statement says it: built only for
    // the findings there are, most statements have none.
    let mut push = |detail: &str, severity: Severity, rule: Rule, action: Option<&str>, message: String| {
        let mut finding = r.finding(severity, rule, message);
        finding.statement = Some(s.label());
        finding.action = action.map(str::to_owned);
        let key = format!("{}|{detail}|{}|{}", rule.id(), s.resources.join(","), s.condition_key());
        out.push(Candidate { key, finding });
    };
    let not_actions = if s.not_action { s.actions.join(",") } else { String::new() };
    if s.not_action {
        push(
            &not_actions,
            Severity::High,
            Rule::AllowNotAction,
            None,
            format!(
                "statement {} allows every action except {} on {}{}",
                s.label(),
                quoted(&s.actions_shown),
                s.resources_shown(),
                s.conditional()
            ),
        );
    }
    if s.not_resource {
        push(
            &format!("{}{}", not_actions, s.actions.join(",")),
            Severity::Medium,
            Rule::AllowNotResource,
            None,
            format!(
                "statement {} allows {} on every resource except {}{}",
                s.label(),
                if s.not_action { "those actions".to_owned() } else { quoted(&s.actions_shown) },
                quoted(&s.resources),
                s.conditional()
            ),
        );
    }
    if s.not_action {
        return out;
    }
    for (action, shown) in s.actions.iter().zip(&s.actions_shown) {
        let key = action.as_str();
        if action == "*" || action == "*:*" {
            push(
                key,
                Severity::High,
                Rule::ActionWildcard,
                Some(shown),
                format!(
                    "statement {} allows every action (\"{shown}\") on {}{}",
                    s.label(),
                    s.resources_shown(),
                    s.conditional()
                ),
            );
            continue;
        }
        let svc = service(action);
        if action.ends_with(":*") {
            let permission = PERMISSION_SERVICES.contains(&svc);
            push(
                key,
                if permission { Severity::High } else { Severity::Medium },
                Rule::ServiceWildcard,
                Some(shown),
                format!(
                    "statement {} allows every {svc} action (\"{shown}\") on {}{}{}",
                    s.label(),
                    s.resources_shown(),
                    s.conditional(),
                    if permission { ": that includes granting permissions" } else { "" }
                ),
            );
            continue;
        }
        // Every escalation action is of iam or sts: others need no matching.
        let escalations: Vec<&(&str, bool, &str)> = if matches!(svc, "iam" | "sts") || svc.contains(['*', '?']) {
            ESCALATION
                .iter()
                .zip(escalation_keys())
                .filter(|((_, broad_only, _), key)| glob(action, key) && (!broad_only || s.broad()))
                .map(|(e, _)| e)
                .collect()
        } else {
            Vec::new()
        };
        if let Some((first, _, why)) = escalations.first() {
            let names: Vec<&str> = escalations.iter().map(|(n, _, _)| *n).collect();
            let what = if names.len() == 1 && first.eq_ignore_ascii_case(shown) {
                format!("\"{shown}\"")
            } else {
                format!("\"{shown}\" (which includes {})", names.join(", "))
            };
            push(
                key,
                if s.broad() { Severity::High } else { Severity::Medium },
                Rule::PrivilegeEscalation,
                Some(shown),
                format!(
                    "statement {} allows {what} on {}{}: its holder can {why}",
                    s.label(),
                    s.resources_shown(),
                    s.conditional()
                ),
            );
            continue;
        }
        if s.any_resource() && may_write(action) {
            let managed: Vec<&str> = if PERMISSION_SERVICES.contains(&svc) {
                vec![*shown]
            } else {
                matching(action, PERMISSION_ACTIONS.iter().copied())
            };
            let (severity, tail) = if managed.is_empty() {
                (Severity::Medium, String::new())
            } else if managed == [*shown] {
                (Severity::High, ": it manages permissions".to_owned())
            } else {
                (Severity::High, format!(": that includes {}, which manage permissions", managed.join(", ")))
            };
            push(
                key,
                severity,
                Rule::WriteOnAnyResource,
                Some(shown),
                format!(
                    "statement {} allows the write \"{shown}\" on {}{}{tail}",
                    s.label(),
                    s.resources_shown(),
                    s.conditional()
                ),
            );
        }
    }
    out
}

impl Statement<'_> {
    /// A resource pattern that reaches beyond one named resource.
    fn broad(&self) -> bool {
        self.not_resource || self.resources.iter().any(|r| r.contains('*') || r.contains('?'))
    }
}

/// One thing an Allow statement grants, for "is this covered by that".
#[derive(Debug)]
struct Grant {
    action: String,
    resource: String,
    condition: String,
    /// NotAction / NotResource statements are compared whole.
    whole: Option<String>,
}

impl Grant {
    /// Whether `self` allows at least what `other` allows: its patterns
    /// match the other's, under no condition or the same one.
    fn covers(&self, other: &Grant) -> bool {
        match (&self.whole, &other.whole) {
            (Some(a), Some(b)) => a == b,
            (None, None) => {
                (self.condition.is_empty() || self.condition == other.condition)
                    && glob(&self.action, &other.action)
                    && glob(&self.resource, &other.resource)
            }
            _ => false,
        }
    }
}

fn grants(statements: &[Statement<'_>]) -> Vec<Grant> {
    let mut out = Vec::new();
    for s in statements.iter().filter(|s| s.allow) {
        if s.not_action || s.not_resource {
            out.push(Grant {
                action: String::new(),
                resource: String::new(),
                condition: String::new(),
                whole: Some(s.key()),
            });
            continue;
        }
        for a in &s.actions {
            for r in &s.resources {
                out.push(Grant {
                    action: a.clone(),
                    resource: (*r).to_owned(),
                    condition: s.condition_key(),
                    whole: None,
                });
            }
        }
    }
    out
}

/// What a trust policy admits.
#[derive(Default)]
struct TrustFacts {
    /// Exact `system:serviceaccount:…` subjects of web-identity statements.
    subjects: BTreeSet<String>,
    /// Everything it admits, one key each (a subject of a provider, a whole
    /// other statement): the sets are compared to tell widening from narrowing.
    units: BTreeSet<String>,
    /// Its Deny statements, which count the other way round.
    denies: BTreeSet<String>,
}

fn trust_facts(statements: &[Statement<'_>]) -> TrustFacts {
    let mut facts = TrustFacts::default();
    for s in statements {
        if !s.allow {
            facts.denies.insert(s.key());
            continue;
        }
        let federated = strings(s.value.pointer("/Principal/Federated"));
        let web_identity = !s.not_action && s.actions.iter().any(|a| glob(a, "sts:assumerolewithwebidentity"));
        let subs = sub_conditions(s.value);
        if web_identity && !federated.is_empty() && !subs.is_empty() && s.conditions_only_on_sub_and_aud() {
            for (operator, sub) in subs {
                for p in &federated {
                    facts.units.insert(format!("{p}|{operator}|{sub}"));
                }
                if operator == "StringEquals" {
                    facts.subjects.insert(sub.to_owned());
                }
            }
        } else {
            facts.units.insert(s.key());
        }
    }
    facts
}

impl Statement<'_> {
    /// Whether the statement's conditions are only on `sub` and `aud`: then
    /// its subjects say all it admits, and each can be compared on its own.
    fn conditions_only_on_sub_and_aud(&self) -> bool {
        let Some(Value::Object(operators)) = self.condition else { return true };
        operators.values().all(|keys| {
            keys.as_object().is_some_and(|keys| keys.keys().all(|k| k.ends_with(":sub") || k.ends_with(":aud")))
        })
    }
}

/// `(operator, value)` of every `…:sub` condition of a statement.
fn sub_conditions(statement: &Value) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    if let Some(Value::Object(operators)) = statement.get("Condition") {
        for (operator, keys) in operators {
            if let Value::Object(keys) = keys {
                for (key, values) in keys {
                    if key.to_ascii_lowercase().ends_with(":sub") {
                        out.extend(strings(Some(values)).into_iter().map(|v| (operator.as_str(), v)));
                    }
                }
            }
        }
    }
    out
}

/// What a trust statement admits that is a wildcard, if anything: any
/// principal at all, or any subject of an identity provider.
fn wildcard_subject(s: &Statement<'_>) -> Option<String> {
    let principal = s.value.get("Principal");
    if principal.and_then(Value::as_str) == Some("*") || strings(principal.and_then(|p| p.get("AWS"))).contains(&"*") {
        return Some("any AWS principal (\"Principal\": \"*\")".into());
    }
    let federated = strings(principal.and_then(|p| p.get("Federated")));
    if federated.is_empty() {
        return None;
    }
    let subs = sub_conditions(s.value);
    if subs.is_empty() {
        return Some(format!("any identity of {} (no `sub` condition)", federated.join(", ")));
    }
    let wild: Vec<&str> = subs
        .iter()
        .filter(|(op, v)| op.contains("StringLike") && (v.contains('*') || v.contains('?')))
        .map(|(_, v)| *v)
        .collect();
    (!wild.is_empty()).then(|| format!("any subject of {} matching {}", federated.join(", "), quoted(&wild)))
}

fn principal_shown(statement: &Value) -> String {
    match statement.get("Principal") {
        Some(Value::Object(kinds)) => {
            let parts: Vec<String> =
                kinds.iter().map(|(kind, ids)| format!("{kind} {}", strings(Some(ids)).join(", "))).collect();
            parts.join("; ")
        }
        Some(Value::String(s)) => s.clone(),
        _ => "a statement without a principal".into(),
    }
}

/// Whether any finding is at least `severity`.
pub fn any_at_least(findings: &[Finding], severity: Severity) -> bool {
    findings.iter().any(|f| f.severity >= severity)
}

/// How many findings there are of each severity, highest first.
pub fn counts(findings: &[Finding]) -> [(Severity, usize); 4] {
    Severity::DESCENDING.map(|s| (s, findings.iter().filter(|f| f.severity == s).count()))
}

/// The findings, highest severity first, in plan order within a severity.
pub fn by_severity(findings: &[Finding]) -> Vec<&Finding> {
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.severity));
    sorted
}
