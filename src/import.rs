//! `irsa import`: a stack file for what exists, such that its plan only adopts.
//!
//! Pure, like the planner: from what was read (a namespace's
//! ServiceAccounts and Deployments, their roles and the customer-managed
//! policies attached to them) to the text of a stack file and its policy
//! documents. Reading is [`crate::refresh`]'s (the same bulk readers);
//! writing the files is `cli/import.rs`'s.
//!
//! Every decision mirrors what the planner will do with the file, so that
//! its plan changes nothing but ownership markers:
//!
//! - a role whose whole trust policy is the one irsa generates for its
//!   service accounts (with or without irsa's Sid) is owned (`adopt = true`);
//! - a role with other statements besides exactly that one is `arn =` with
//!   `manage_trust = true`: the planner keeps the other statements;
//! - a role that admits its service accounts some other way (a wildcard
//!   subject, one statement for several roles' subjects) is `arn =` with
//!   `manage_trust = false`: irsa then only checks that it admits them;
//! - a customer-managed policy is the stack's (`adopt = true`) unless
//!   something outside the stack's owned roles uses it too: then it is
//!   referenced by ARN, so the stack never changes or deletes it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::Value;

use crate::model::desired::markers;
use crate::model::observed::{ObservedDeployment, ObservedPolicy, ObservedRole, ObservedServiceAccount};
use crate::model::policy_doc;
use crate::model::{names, trust};

/// The label value eksctl puts on the ServiceAccounts it makes.
pub const EKSCTL: &str = "eksctl";
/// The tag CloudFormation puts on what its stacks make (eksctl's roles too).
pub const CFN_STACK_TAG: &str = "aws:cloudformation:stack-name";

/// What was read, and where it belongs.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    pub namespace: &'a str,
    pub cluster_name: &'a str,
    pub region: &'a str,
    pub account_id: &'a str,
    /// `https://…`, without a trailing `/`.
    pub issuer: &'a str,
    /// The kubeconfig context the import read through, when one was named.
    pub context: Option<&'a str>,
    pub stack: &'a str,
    /// The ServiceAccounts to import: every one carries the role annotation.
    pub service_accounts: &'a [ObservedServiceAccount],
    pub deployments: &'a [ObservedDeployment],
    /// The roles the ServiceAccounts name that exist.
    pub roles: &'a [ObservedRole],
    /// The customer-managed policies attached to those roles.
    pub policies: &'a [ObservedPolicy],
    /// How many entities each policy is attached to, by ARN.
    pub attachment_counts: &'a BTreeMap<String, u32>,
    /// The roles of the account each managed policy is attached to, by ARN.
    pub role_users: &'a BTreeMap<String, Vec<String>>,
    /// Whether the issuer's OIDC provider exists.
    pub provider_exists: bool,
}

/// The stack file and its documents, and what to tell the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    pub stack_toml: String,
    /// Documents by path relative to the stack file's directory.
    pub files: BTreeMap<String, String>,
    /// What the user should know (flags, skips), one line each, for stderr.
    pub notes: Vec<String>,
    pub owned_roles: usize,
    pub referenced_roles: usize,
    pub policies: usize,
    pub bindings: usize,
}

/// How the stack file takes a role.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Take {
    /// Owned: irsa generates its whole trust policy.
    Owned,
    /// `arn =` with `manage_trust`; the comment says why.
    Referenced { manage_trust: bool, why: Vec<String> },
}

/// A TOML basic string on one line, escaped as TOML wants (toml's own
/// writer would choose a multi-line string for a description with a newline).
fn s(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when it can be, else quoted.
fn key(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        text.to_owned()
    } else {
        s(text)
    }
}

fn inline_table(map: &BTreeMap<String, String>) -> String {
    let items: Vec<String> = map.iter().map(|(k, v)| format!("{} = {}", key(k), s(v))).collect();
    format!("{{ {} }}", items.join(", "))
}

/// `# text`, wrapped at about 100 columns.
fn comment(out: &mut String, text: &str) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + word.len() > 98 && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

/// The tags a stack file may name: not AWS's own (`aws:`), not irsa's markers.
fn user_tags(tags: &crate::model::strmap::StrMap) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, v)| !k.starts_with("irsa:") && names::tag(k, v).is_ok())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn account_of(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or_default()
}

/// A subject pattern with `*` or `?` that a statement trusts, or "any
/// subject" when it trusts the provider with no `sub` condition at all.
fn wildcard_subject(statement: &Value, provider_arn: &str, host: &str) -> Option<String> {
    let federated = match statement.get("Principal").and_then(|p| p.get("Federated")) {
        Some(Value::String(p)) => p == provider_arn,
        Some(Value::Array(ps)) => ps.iter().any(|p| p.as_str() == Some(provider_arn)),
        _ => false,
    };
    if !federated || statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
        return None;
    }
    let sub_key = format!("{host}:sub").to_ascii_lowercase();
    let mut has_sub = false;
    if let Some(Value::Object(conditions)) = statement.get("Condition") {
        for (operator, keys) in conditions {
            let Value::Object(keys) = keys else { continue };
            for (k, v) in keys {
                if k.to_ascii_lowercase() != sub_key {
                    continue;
                }
                has_sub = true;
                let values: Vec<&str> = match v {
                    Value::String(v) => vec![v.as_str()],
                    Value::Array(vs) => vs.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                if operator.to_ascii_lowercase().contains("stringlike")
                    && let Some(w) = values.iter().find(|v| v.contains('*') || v.contains('?'))
                {
                    return Some((*w).to_owned());
                }
            }
        }
    }
    (!has_sub).then(|| "any subject (no sub condition)".to_owned())
}

struct Ctx<'f> {
    f: &'f Found<'f>,
    partition: &'static str,
    host: String,
    sid: String,
}

impl Ctx<'_> {
    fn provider_arn(&self, account: &str) -> String {
        format!("arn:{}:iam::{account}:oidc-provider/{}", self.partition, self.host)
    }

    /// How to take `role`, bound to `subjects` (sorted).
    fn take(&self, role: &ObservedRole, subjects: &[String]) -> Take {
        let account = account_of(&role.arn);
        let provider = self.provider_arn(account);
        let statement = trust::web_identity_statement(&self.sid, &provider, &self.host, subjects);
        let by_hand = trust::without_sid(&statement);
        let doc = &role.trust_policy;
        let admitted = |s: &String| policy_doc::admits_web_identity(doc, &provider, &self.host, s);
        let refused: Vec<&String> = subjects.iter().filter(|s| !admitted(s)).collect();
        let not_admitted = if refused.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "It does not admit {} now: the plan will say so.",
                refused.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )]
        };
        let owner = role.tags.get(markers::TAG_STACK).filter(|_| role.tags.contains_key(markers::TAG_MANAGED_BY));
        if let Some(owner) = owner.filter(|o| o.as_str() != self.f.stack) {
            let mut why = vec![format!(
                "It belongs to irsa stack `{owner}`, which writes its whole trust policy: this stack only checks that it admits its service accounts; bind them in stack `{owner}` to have them trusted."
            )];
            why.extend(not_admitted);
            return Take::Referenced { manage_trust: false, why };
        }
        if let Some(pattern) = doc.statements().iter().find_map(|st| wildcard_subject(st, &provider, &self.host)) {
            let mut why = vec![format!(
                "Its trust policy admits a wildcard ({pattern}); irsa writes only exact subjects, so it leaves this trust policy as it is (manage_trust = false) and checks that it admits the service accounts below. To have irsa own it, replace the wildcard by the exact subjects and import again."
            )];
            why.extend(not_admitted);
            return Take::Referenced { manage_trust: false, why };
        }
        let owned_form = |s: Value| trust::owned_trust_policy(vec![s]);
        if account == self.f.account_id
            && (*doc == owned_form(statement.clone()) || *doc == owned_form(by_hand.clone()))
        {
            return Take::Owned;
        }
        let ours = doc
            .statements()
            .iter()
            .any(|st| trust::same_statement(st, &statement) || trust::same_statement(st, &by_hand));
        if ours {
            return Take::Referenced {
                manage_trust: true,
                why: vec![format!(
                    "Its trust policy has {} besides the one for its service accounts: irsa keeps {} as {} and manages only its own (manage_trust = true).",
                    if doc.statements().len() == 2 {
                        "1 other statement".to_owned()
                    } else {
                        format!("{} other statements", doc.statements().len() - 1)
                    },
                    if doc.statements().len() == 2 { "it" } else { "them" },
                    if doc.statements().len() == 2 { "it is" } else { "they are" },
                )],
            };
        }
        if refused.is_empty() {
            return Take::Referenced {
                manage_trust: false,
                why: vec!["Its trust policy admits its service accounts through statements irsa did not write (several subjects or conditions in one): irsa leaves it as it is (manage_trust = false) and checks that it admits them. manage_trust = true would add irsa's own statement beside them.".into()],
            };
        }
        Take::Referenced {
            manage_trust: true,
            why: vec![format!(
                "Its trust policy does not admit {}: with manage_trust = true the plan adds irsa's statement for them (an update, the only change this file asks for), keeping every other statement.",
                refused.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )],
        }
    }
}

/// One role of the import, decided.
struct RoleEntry<'a> {
    role: &'a ObservedRole,
    bindings: Vec<&'a ObservedServiceAccount>,
    take: Take,
}

/// Write the stack file for what was found.
pub fn generate(f: &Found<'_>) -> Imported {
    let host = f.issuer.strip_prefix("https://").unwrap_or(f.issuer).trim_end_matches('/').to_owned();
    let cx = Ctx { f, partition: names::partition_of(f.region), sid: trust::irsa_sid(f.stack), host };
    let mut out = Imported::default();

    // Roles by ARN, and the bindings of each; ServiceAccounts whose role does not exist are left out.
    let role_by_arn: BTreeMap<&str, &ObservedRole> = f.roles.iter().map(|r| (r.arn.as_str(), r)).collect();
    let mut by_role: BTreeMap<&str, Vec<&ObservedServiceAccount>> = BTreeMap::new();
    let mut skipped = Vec::new();
    for sa in f.service_accounts {
        let arn = sa.annotations.get(markers::ANNOTATION_ROLE_ARN).map(String::as_str).unwrap_or_default();
        match role_by_arn.get(arn) {
            Some(r) => by_role.entry(r.arn.as_str()).or_default().push(sa),
            None => skipped.push(format!(
                "service account {}/{} names role {arn}, which does not exist in this account: not imported",
                sa.namespace, sa.name
            )),
        }
    }
    let mut roles: Vec<RoleEntry<'_>> = by_role
        .into_iter()
        .map(|(arn, mut bindings)| {
            bindings.sort_by(|a, b| a.name.cmp(&b.name));
            let role = role_by_arn[arn];
            let subjects: Vec<String> =
                bindings.iter().map(|b| format!("system:serviceaccount:{}:{}", b.namespace, b.name)).collect();
            let take = cx.take(role, &subjects);
            RoleEntry { role, bindings, take }
        })
        .collect();
    roles.sort_by(|a, b| a.role.name.cmp(&b.role.name).then(a.role.arn.cmp(&b.role.arn)));

    // Policies: the stack's, unless something outside its owned roles uses them.
    let owned: BTreeSet<&str> = roles.iter().filter(|r| r.take == Take::Owned).map(|r| r.role.name.as_str()).collect();
    let policy_by_arn: BTreeMap<&str, &ObservedPolicy> = f.policies.iter().map(|p| (p.arn.as_str(), p)).collect();
    // Why a policy is referenced by ARN rather than the stack's, by ARN.
    let mut shared: BTreeMap<&str, String> = BTreeMap::new();
    let mut stack_policies: BTreeMap<&str, &ObservedPolicy> = BTreeMap::new();
    for r in roles.iter().filter(|r| r.take == Take::Owned) {
        for arn in &r.role.attached_policies {
            let Some(p) = policy_by_arn.get(arn.as_str()) else { continue };
            if shared.contains_key(arn.as_str()) || stack_policies.get(p.name.as_str()).is_some_and(|q| q.arn == p.arn)
            {
                continue;
            }
            let users = f.role_users.get(arn).map(Vec::as_slice).unwrap_or_default();
            let others: Vec<&str> = users.iter().map(String::as_str).filter(|u| !owned.contains(u)).collect();
            let inside = users.len() - others.len();
            let count = f.attachment_counts.get(arn).copied().map_or(inside, |c| c as usize);
            let owner = p.tags.get(markers::TAG_STACK).filter(|_| p.tags.contains_key(markers::TAG_MANAGED_BY));
            let why = if let Some(owner) = owner.filter(|o| o.as_str() != f.stack) {
                Some(format!("{} belongs to irsa stack `{owner}`: referenced by its ARN", p.name))
            } else if !others.is_empty() {
                Some(format!(
                    "{} is also attached to role{} {}, which this stack does not own: referenced by its ARN, so this stack never changes or deletes it",
                    p.name,
                    if others.len() == 1 { "" } else { "s" },
                    others.join(", ")
                ))
            } else if count > inside {
                Some(format!(
                    "{} is also attached to {} user{} or group{} outside this import: referenced by its ARN, so this stack never changes or deletes it",
                    p.name,
                    count - inside,
                    if count - inside == 1 { "" } else { "s" },
                    if count - inside == 1 { "" } else { "s" }
                ))
            } else {
                stack_policies.get(p.name.as_str()).map(|other| {
                    format!(
                        "{} has the same name as {}: a stack names each policy once, so it is referenced by its ARN",
                        p.arn, other.arn
                    )
                })
            };
            match why {
                Some(why) => {
                    shared.insert(arn.as_str(), why);
                }
                None => {
                    stack_policies.insert(p.name.as_str(), p);
                }
            }
        }
    }

    // The file.
    let t = &mut out.stack_toml;
    comment(
        t,
        &format!(
            "Written by `irsa import` from namespace {} of cluster {} (account {}). `irsa plan` on this file adopts what exists (it adds irsa's ownership markers) and changes nothing else; comments say where each entry came from.",
            f.namespace, f.cluster_name, f.account_id
        ),
    );
    t.push_str("version = 1\n\n[stack]\n");
    let _ = writeln!(t, "name = {}\n", s(f.stack));
    t.push_str("[cluster]\n");
    let _ = writeln!(t, "name = {}", s(f.cluster_name));
    let _ = writeln!(t, "region = {}", s(f.region));
    let _ = writeln!(t, "account_id = {}", s(f.account_id));
    let _ = writeln!(t, "oidc_issuer = {}", s(f.issuer));
    if let Some(context) = f.context {
        let _ = writeln!(t, "context = {}", s(context));
    }
    if !f.provider_exists {
        comment(t, &format!("No IAM OIDC provider exists for {}: the plan creates it.", f.issuer));
        out.notes.push(format!("no IAM OIDC provider exists for {}: the plan will create it", f.issuer));
    }

    for (name, p) in &stack_policies {
        t.push('\n');
        comment(t, &format!("From {}.", p.arn));
        let _ = writeln!(t, "[policies.{}]", key(name));
        if p.path != "/" {
            let _ = writeln!(t, "path = {}", s(&p.path));
        }
        if let Some(d) = &p.description {
            let _ = writeln!(t, "description = {}", s(d));
        }
        let file = format!("policies/{name}.json");
        let _ = writeln!(t, "document_file = {}", s(&file));
        let tags = user_tags(&p.tags);
        if !tags.is_empty() {
            let _ = writeln!(t, "tags = {}", inline_table(&tags));
        }
        t.push_str("adopt = true\n");
        out.files.insert(file, p.document.to_pretty() + "\n");
        out.policies += 1;
    }

    for r in &roles {
        let role = r.role;
        t.push('\n');
        let sas: Vec<String> = r.bindings.iter().map(|b| format!("{}/{}", b.namespace, b.name)).collect();
        comment(
            t,
            &format!(
                "From {}, the role of service account{} {}.",
                role.arn,
                if sas.len() == 1 { "" } else { "s" },
                sas.join(", ")
            ),
        );
        if let Some(cfn) = role.tags.get(CFN_STACK_TAG) {
            comment(
                t,
                &format!(
                    "CloudFormation stack {cfn} made this role (as `eksctl create iamserviceaccount` does): once irsa changes it, that stack has drifted, and deleting the stack deletes the role. To hand the role to irsa for good, set `DeletionPolicy: Retain` on it in the stack's template, update the stack, then delete the stack; until then change the role through only one of the two."
                ),
            );
            out.notes
                .push(format!("role {} belongs to CloudFormation stack {cfn}: see the comment in the file", role.name));
        }
        let _ = writeln!(t, "[roles.{}]", key(&role.name));
        match &r.take {
            Take::Referenced { manage_trust, why } => {
                for w in why {
                    comment(t, w);
                }
                let mut unmanaged: Vec<String> = role.attached_policies.clone();
                unmanaged.extend(role.inline_policies.keys().map(|n| format!("inline {n}")));
                if !unmanaged.is_empty() {
                    comment(
                        t,
                        &format!(
                            "irsa does not own this role: its policies ({}) stay as they are, outside this file.",
                            unmanaged.join(", ")
                        ),
                    );
                }
                let _ = writeln!(t, "arn = {}", s(&role.arn));
                let _ = writeln!(t, "manage_trust = {manage_trust}");
                out.referenced_roles += 1;
            }
            Take::Owned => {
                if role.path != "/" {
                    let _ = writeln!(t, "path = {}", s(&role.path));
                }
                if let Some(d) = &role.description {
                    let _ = writeln!(t, "description = {}", s(d));
                }
                if role.max_session_duration != crate::model::desired::DEFAULT_MAX_SESSION {
                    let _ = writeln!(t, "max_session_duration = {}", role.max_session_duration);
                }
                if let Some(b) = &role.permissions_boundary {
                    let _ = writeln!(t, "permissions_boundary = {}", s(b));
                }
                let tags = user_tags(&role.tags);
                if !tags.is_empty() {
                    let _ = writeln!(t, "tags = {}", inline_table(&tags));
                }
                if !role.attached_policies.is_empty() {
                    t.push_str("policies = [\n");
                    let mut attached = role.attached_policies.clone();
                    attached.sort();
                    for arn in &attached {
                        match (shared.get(arn.as_str()), policy_by_arn.get(arn.as_str())) {
                            (Some(why), _) => {
                                let mut c = String::new();
                                comment(&mut c, why);
                                for line in c.lines() {
                                    let _ = writeln!(t, "  {line}");
                                }
                                let _ = writeln!(t, "  {},", s(arn));
                            }
                            (None, Some(p)) if stack_policies.get(p.name.as_str()).is_some_and(|q| q.arn == p.arn) => {
                                let _ = writeln!(t, "  {},", s(&p.name));
                            }
                            _ => {
                                let _ = writeln!(t, "  {},", s(arn));
                            }
                        }
                    }
                    t.push_str("]\n");
                }
                t.push_str("adopt = true\n");
                for (name, doc) in &role.inline_policies {
                    let file = format!("policies/inline/{}/{name}.json", role.name);
                    let _ = writeln!(t, "\n[roles.{}.inline.{}]", key(&role.name), key(name));
                    let _ = writeln!(t, "document_file = {}", s(&file));
                    out.files.insert(file, doc.to_pretty() + "\n");
                }
                out.owned_roles += 1;
            }
        }
    }

    let mut bindings: Vec<(&ObservedServiceAccount, &ObservedRole)> =
        roles.iter().flat_map(|r| r.bindings.iter().map(move |b| (*b, r.role))).collect();
    bindings.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    for (sa, role) in bindings {
        t.push('\n');
        comment(t, &format!("From service account {}/{} (role {}).", sa.namespace, sa.name, role.arn));
        if sa.labels.get(markers::LABEL_MANAGED_BY).is_some_and(|m| m == EKSCTL) {
            comment(
                t,
                &format!(
                    "eksctl made this service account (label {}: eksctl); its CloudFormation stack, if it has one (eksctl-{}-addon-iamserviceaccount-{}-{}), holds the role eksctl made for it. irsa adopts the service account and keeps eksctl's label. Take it out of your eksctl configuration and stop running `eksctl create/delete iamserviceaccount` for it: eksctl would overwrite or delete what this stack now manages.",
                    markers::LABEL_MANAGED_BY,
                    f.cluster_name,
                    sa.namespace,
                    sa.name
                ),
            );
            out.notes.push(format!(
                "service account {}/{} was made by eksctl: see the comment in the file",
                sa.namespace, sa.name
            ));
        }
        t.push_str("[[service_accounts]]\n");
        let _ = writeln!(t, "namespace = {}", s(&sa.namespace));
        let _ = writeln!(t, "name = {}", s(&sa.name));
        let _ = writeln!(t, "role = {}", s(&role.name));
        let mut workloads: Vec<String> = f
            .deployments
            .iter()
            .filter(|d| d.namespace == sa.namespace && d.effective_service_account() == sa.name)
            .map(|d| s(&format!("deployment/{}", d.name)))
            .collect();
        workloads.sort();
        if !workloads.is_empty() {
            let _ = writeln!(t, "workloads = [{}]", workloads.join(", "));
        }
        // The webhook's other annotations are part of how the pods get
        // credentials; the role's is irsa's to write, the stack's its own.
        let extra: BTreeMap<String, String> = sa
            .annotations
            .iter()
            .filter(|(k, _)| k.starts_with("eks.amazonaws.com/") && k.as_str() != markers::ANNOTATION_ROLE_ARN)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !extra.is_empty() {
            let _ = writeln!(t, "annotations = {}", inline_table(&extra));
        }
        t.push_str("adopt = true\n");
        out.bindings += 1;
    }

    if !skipped.is_empty() {
        t.push('\n');
        for line in &skipped {
            comment(t, &format!("Not imported: {line}."));
        }
        out.notes.extend(skipped);
    }
    out
}

/// The region an EKS issuer names (`oidc.eks.<region>.amazonaws.com`).
pub fn region_of_issuer(issuer: &str) -> Option<&str> {
    let host = issuer.strip_prefix("https://").unwrap_or(issuer);
    let rest = host.strip_prefix("oidc.eks.")?;
    let region = rest.split('.').next()?;
    (!region.is_empty()).then_some(region)
}

/// The cluster name and region a kubeconfig cluster entry's name gives:
/// `aws eks update-kubeconfig` names it by the cluster's ARN, eksctl as
/// `<name>.<region>.eksctl.io`.
pub fn cluster_of_kubeconfig_name(name: &str) -> (String, Option<String>) {
    if let Some(rest) = name.strip_prefix("arn:")
        && let [_, "eks", region, _, resource] = rest.splitn(5, ':').collect::<Vec<_>>()[..]
        && let Some(cluster) = resource.strip_prefix("cluster/")
    {
        return (cluster.to_owned(), Some(region.to_owned()));
    }
    if let Some(rest) = name.strip_suffix(".eksctl.io")
        && let Some((cluster, region)) = rest.rsplit_once('.')
    {
        return (cluster.to_owned(), Some(region.to_owned()));
    }
    (name.to_owned(), None)
}

/// The one issuer the roles' trust policies name, when the cluster serves
/// no discovery document: `https://` and the provider's host and path.
pub fn issuer_from_trust(roles: &[ObservedRole]) -> Option<String> {
    let mut hosts = BTreeSet::new();
    for r in roles {
        for st in r.trust_policy.statements() {
            let principals = match st.get("Principal").and_then(|p| p.get("Federated")) {
                Some(Value::String(p)) => vec![p.clone()],
                Some(Value::Array(ps)) => ps.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect(),
                _ => Vec::new(),
            };
            for p in principals {
                if let Some((_, host)) = p.split_once(":oidc-provider/") {
                    hosts.insert(host.to_owned());
                }
            }
        }
    }
    (hosts.len() == 1).then(|| format!("https://{}", hosts.pop_first().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::policy_doc::PolicyDocument;
    use serde_json::json;

    fn doc(v: Value) -> PolicyDocument {
        PolicyDocument::from_value(v)
    }

    const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC";
    const HOST: &str = "oidc.eks.us-east-1.amazonaws.com/id/ABC";
    const PROVIDER: &str = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC";

    fn sa(name: &str, role: &str) -> ObservedServiceAccount {
        ObservedServiceAccount {
            namespace: "backend".into(),
            name: name.into(),
            resource_version: "1".into(),
            annotations: BTreeMap::from([(
                markers::ANNOTATION_ROLE_ARN.to_owned(),
                format!("arn:aws:iam::123456789012:role/{role}"),
            )])
            .into(),
            labels: BTreeMap::new().into(),
            role_arn_set_at: None,
            irsa_annotations: vec![],
        }
    }

    fn statement(subject: &str, operator: &str) -> Value {
        json!({"Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": "sts:AssumeRoleWithWebIdentity",
               "Condition": {operator: {format!("{HOST}:sub"): subject, format!("{HOST}:aud"): "sts.amazonaws.com"}}})
    }

    fn role(name: &str, statements: Vec<Value>) -> ObservedRole {
        ObservedRole {
            name: name.into(),
            path: "/".into(),
            arn: format!("arn:aws:iam::123456789012:role/{name}"),
            description: None,
            max_session_duration: 3600,
            permissions_boundary: None,
            trust_policy: doc(json!({"Version": "2012-10-17", "Statement": statements})),
            tags: BTreeMap::new().into(),
            attached_policies: vec![],
            inline_policies: BTreeMap::new(),
        }
    }

    fn found<'a>(
        sas: &'a [ObservedServiceAccount],
        roles: &'a [ObservedRole],
        empty: &'a BTreeMap<String, u32>,
        users: &'a BTreeMap<String, Vec<String>>,
    ) -> Found<'a> {
        Found {
            namespace: "backend",
            cluster_name: "demo",
            region: "us-east-1",
            account_id: "123456789012",
            issuer: ISSUER,
            context: None,
            stack: "backend",
            service_accounts: sas,
            deployments: &[],
            roles,
            policies: &[],
            attachment_counts: empty,
            role_users: users,
            provider_exists: true,
        }
    }

    fn take_of(r: ObservedRole) -> String {
        let sas = [sa("app", &r.name)];
        let roles = [r];
        let (c, u) = (BTreeMap::new(), BTreeMap::new());
        let text = generate(&found(&sas, &roles, &c, &u)).stack_toml;
        let mut lines =
            text.lines().filter(|l| l.starts_with("manage_trust") || l.starts_with("adopt") || l.starts_with("arn"));
        lines.next().unwrap_or_default().to_owned()
    }

    #[test]
    fn each_kind_of_trust_is_taken_as_the_planner_will_treat_it() {
        let sub = "system:serviceaccount:backend:app";
        assert_eq!(take_of(role("exact", vec![statement(sub, "StringEquals")])), "adopt = true");
        let ec2 = json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"});
        let extra = role("extra", vec![statement(sub, "StringEquals"), ec2]);
        assert_eq!(take_of(extra), "arn = \"arn:aws:iam::123456789012:role/extra\"");
        let wild = role("wild", vec![statement("system:serviceaccount:backend:*", "StringLike")]);
        let sas = [sa("app", "wild")];
        let roles = [wild];
        let (c, u) = (BTreeMap::new(), BTreeMap::new());
        let text = generate(&found(&sas, &roles, &c, &u)).stack_toml;
        assert!(text.contains("manage_trust = false"), "{text}");
        assert!(text.contains("wildcard (system:serviceaccount:backend:*)"), "{text}");
        let extra = role(
            "extra",
            vec![
                statement(sub, "StringEquals"),
                json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}),
            ],
        );
        let sas = [sa("app", "extra")];
        let roles = [extra];
        let text = generate(&found(&sas, &roles, &c, &u)).stack_toml;
        assert!(text.contains("manage_trust = true"), "{text}");
    }

    #[test]
    fn a_statement_for_more_subjects_than_the_import_binds_is_left_alone() {
        // Imported with --service-account app: the trust names another service account too.
        let both = json!(["system:serviceaccount:backend:app", "system:serviceaccount:backend:other"]);
        let mut st = statement("unused", "StringEquals");
        st["Condition"]["StringEquals"][format!("{HOST}:sub")] = both;
        let sas = [sa("app", "two")];
        let roles = [role("two", vec![st])];
        let (c, u) = (BTreeMap::new(), BTreeMap::new());
        let text = generate(&found(&sas, &roles, &c, &u)).stack_toml;
        assert!(text.contains("manage_trust = false"), "{text}");
        assert!(text.contains("through statements irsa did not write"), "{text}");
        // Imported whole, it is irsa's own.
        let sas = [sa("app", "two"), sa("other", "two")];
        let text = generate(&found(&sas, &roles, &c, &u)).stack_toml;
        assert!(text.contains("[roles.two]\nadopt = true"), "{text}");
    }

    #[test]
    fn names_that_are_not_bare_keys_are_quoted() {
        assert_eq!(key("messages-read"), "messages-read");
        assert_eq!(key("a.b@c"), "\"a.b@c\"");
        assert_eq!(s("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
        for text in ["say \"hi\"\n", "tab\tdel\u{7f} back\\slash", "ünïcode"] {
            let parsed: toml::Table = toml::from_str(&format!("k = {}", s(text))).unwrap();
            assert_eq!(parsed["k"].as_str(), Some(text));
        }
    }

    #[test]
    fn cluster_names_come_from_eks_and_eksctl_kubeconfig_names() {
        assert_eq!(
            cluster_of_kubeconfig_name("arn:aws:eks:eu-west-1:123456789012:cluster/prod"),
            ("prod".into(), Some("eu-west-1".into()))
        );
        assert_eq!(cluster_of_kubeconfig_name("prod.eu-west-1.eksctl.io"), ("prod".into(), Some("eu-west-1".into())));
        assert_eq!(cluster_of_kubeconfig_name("kind-dev"), ("kind-dev".into(), None));
        assert_eq!(region_of_issuer(ISSUER), Some("us-east-1"));
        assert_eq!(region_of_issuer("https://example.com/x"), None);
    }

    #[test]
    fn the_issuer_is_found_in_the_trust_when_only_one_provider_is_named() {
        let r = role("exact", vec![statement("system:serviceaccount:backend:app", "StringEquals")]);
        assert_eq!(issuer_from_trust(&[r]), Some(ISSUER.to_owned()));
        assert_eq!(issuer_from_trust(&[]), None);
    }
}
