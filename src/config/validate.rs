//! The rules of the stack file: shapes, names, references and quotas.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::path::Path;
use std::sync::Arc;

use toml::de::DeTable;

use super::diagnostic::{Problem, Problems, Source};
use super::raw::{Reporter, Sp, Span, Table};
use crate::model::desired::{
    Binding, Cluster, DEFAULT_MAX_SESSION, DefaultTags, Desired, Issuers, OwnedRole, Policy, PolicyRef, PresetOrigin,
    ReferencedRole, Role, SourceFile, Stack, markers,
};
use crate::model::names::{self, Invalid, closest};
use crate::model::policy_doc::{self, PolicyDocument};
use crate::model::presets::{self, ParamValue, Preset};
use crate::model::quotas::{self, Quotas};

const ROOT_KEYS: &[&str] =
    &["version", "stack", "cluster", "clusters", "defaults", "policies", "roles", "service_accounts"];
const STACK_KEYS: &[&str] = &["name"];
const CLUSTER_KEYS: &[&str] = &["name", "region", "account_id", "oidc_issuer", "context", "oidc_thumbprints"];
const DEFAULTS_KEYS: &[&str] = &["role_path", "permissions_boundary", "tags"];
const POLICY_KEYS: &[&str] = &["description", "path", "document", "document_file", "tags", "adopt"];
/// `arn` and `manage_trust` (a role referenced by ARN) first: the rest are
/// [`OWNED_ONLY_ROLE_KEYS`].
const ROLE_KEYS: &[&str] = &[
    "arn",
    "manage_trust",
    "policies",
    "inline",
    "description",
    "path",
    "max_session_duration",
    "permissions_boundary",
    "tags",
    "adopt",
    "presets",
];
/// Keys that describe a role irsa owns, so an `arn =` role cannot take
/// them: every role key after the two that only a referenced role takes.
const OWNED_ONLY_ROLE_KEYS: &[&str] = ROLE_KEYS.split_at(2).1;
const INLINE_KEYS: &[&str] = &["document", "document_file"];
const BINDING_KEYS: &[&str] =
    &["cluster", "clusters", "namespace", "name", "role", "workloads", "annotations", "adopt"];

/// IAM's limits on a role's maximum session, in seconds.
const MAX_SESSION_RANGE: std::ops::RangeInclusive<i64> = 3600..=43_200;
/// IAM's limit on role and policy descriptions.
const DESCRIPTION_MAX: usize = 1000;
/// IAM keeps at most five thumbprints per OIDC provider.
const THUMBPRINTS_MAX: usize = 5;

/// The names of the file's policies or roles: a set to check references
/// against (once per reference, so a list scan was quadratic), and the list
/// in file order for "did you mean" (whose ties go to the first written).
struct Known {
    in_order: Vec<String>,
    set: HashSet<String>,
}

impl Known {
    fn new(names: impl Iterator<Item = String>) -> Self {
        let in_order: Vec<String> = names.collect();
        let set = in_order.iter().cloned().collect();
        Known { in_order, set }
    }

    fn contains(&self, name: &str) -> bool {
        self.set.contains(name)
    }

    fn in_order(&self) -> impl Iterator<Item = &str> {
        self.in_order.iter().map(String::as_str)
    }
}

struct Loader<'a> {
    r: Reporter,
    dir: &'a Path,
}

impl Loader<'_> {
    fn invalid(&mut self, code: &'static str, span: Span, e: Invalid) {
        self.r.error(code, span, e.message, "invalid", Some(e.help));
    }

    /// Run a naming check on a spanned value, reporting a failure.
    fn check(&mut self, code: &'static str, v: &Sp<String>, f: impl FnOnce(&str) -> Result<(), Invalid>) -> bool {
        match f(&v.v) {
            Ok(()) => true,
            Err(e) => {
                self.invalid(code, v.span.clone(), e);
                false
            }
        }
    }

    fn tags(&mut self, t: &Table<'_, '_>, base: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut tags = base.clone();
        for (k, v) in t.string_map(&mut self.r, "tags", "{ team = \"platform\" }").unwrap_or_default() {
            if let Err(e) = names::tag(&k.v, &v.v) {
                // Point at the value when the key alone is fine.
                let span = if names::tag(&k.v, "").is_ok() { v.span.clone() } else { k.span.clone() };
                self.invalid("irsa::config::tag", span, e);
            }
            tags.insert(k.v, v.v);
        }
        tags
    }

    fn description(&mut self, t: &Table<'_, '_>) -> Option<String> {
        let d = t.string(&mut self.r, "description", "\"what it is for\"")?;
        let len = d.v.chars().count();
        if len > DESCRIPTION_MAX {
            self.r.error(
                "irsa::config::description",
                d.span,
                format!("the description is {len} characters long; IAM allows {DESCRIPTION_MAX}"),
                "too long",
                Some("shorten it".into()),
            );
        }
        Some(d.v)
    }

    /// The policy document of a policy or inline policy: `document` or `document_file`, exactly one.
    fn document(&mut self, t: &Table<'_, '_>, what: &str) -> Option<PolicyDocument> {
        let inline = t.string(&mut self.r, "document", "'''{ \"Version\": \"2012-10-17\", … }'''");
        let file = t.string(&mut self.r, "document_file", "\"policies/name.json\"");
        match (inline, file) {
            (Some(_), Some(file)) => {
                self.r.error(
                    "irsa::config::document",
                    file.span,
                    format!("{what} has both `document` and `document_file`"),
                    "second document",
                    Some("keep one of the two".into()),
                );
                None
            }
            (None, None) => {
                if !t.has("document") && !t.has("document_file") {
                    self.r.error(
                        "irsa::config::document",
                        t.span.clone(),
                        format!("{what} has no policy document"),
                        "no document",
                        Some("add document_file = \"policies/name.json\" (relative to the stack file) or document = '''{…}'''".into()),
                    );
                }
                None
            }
            (Some(doc), None) => self.inline_document(&doc),
            (None, Some(file)) => self.file_document(&file, what),
        }
    }

    fn inline_document(&mut self, doc: &Sp<String>) -> Option<PolicyDocument> {
        match policy_doc::check_identity_policy(&doc.v) {
            Ok(d) => Some(d),
            Err(problems) => {
                // Point inside the TOML string when its text is the document
                // verbatim (literal strings); otherwise at the whole string.
                let raw = &self.r.source.text[doc.span.clone()];
                let offset = content_offset(raw, &doc.v).map(|o| doc.span.start + o);
                for p in problems {
                    let span = match offset {
                        Some(o) => o + p.span.start..o + p.span.end,
                        None => doc.span.clone(),
                    };
                    self.r.error(
                        "irsa::config::policy_document",
                        span,
                        format!("policy document: {}", p.message),
                        "here",
                        p.help,
                    );
                }
                None
            }
        }
    }

    /// `what` names the entry that uses the file: one file may serve several.
    fn file_document(&mut self, file: &Sp<String>, what: &str) -> Option<PolicyDocument> {
        let path = self.dir.join(&file.v);
        let shown = path.display().to_string();
        let text = match std::fs::metadata(&path) {
            Ok(m) if !m.is_file() => Err(format!("`{shown}` is not a file")),
            Ok(_) => std::fs::read_to_string(&path).map_err(|e| format!("cannot read `{shown}`: {e}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(format!("policy document `{shown}` does not exist"))
            }
            Err(e) => Err(format!("cannot read `{shown}`: {e}")),
        };
        let text = match text {
            Ok(t) => t,
            Err(message) => {
                self.r.error(
                    "irsa::config::document_file",
                    file.span.clone(),
                    message,
                    "this file",
                    Some("document_file is relative to the directory of the stack file".into()),
                );
                return None;
            }
        };
        match policy_doc::check_identity_policy(&text) {
            Ok(d) => Some(d),
            Err(problems) => {
                let source = Source::new(shown, text);
                for p in problems {
                    self.r.problems.push(Problem {
                        code: "irsa::config::policy_document",
                        message: format!("policy document: {}", p.message),
                        source: source.clone(),
                        span: p.span,
                        label: format!("in the document of {what}"),
                        help: p.help,
                    });
                }
                None
            }
        }
    }
}

/// Where the text of a TOML string starts inside its source, when the source
/// holds it verbatim: literal strings, and basic strings without escapes.
fn content_offset(raw: &str, value: &str) -> Option<usize> {
    for delim in ["'''", "\"\"\"", "'", "\""] {
        if let Some(body) = raw.strip_prefix(delim).and_then(|b| b.strip_suffix(delim)) {
            let mut start = delim.len();
            // TOML drops a newline right after an opening triple quote.
            let body = if delim.len() == 3 {
                let trimmed = body.strip_prefix("\r\n").or_else(|| body.strip_prefix('\n')).unwrap_or(body);
                start += body.len() - trimmed.len();
                trimmed
            } else {
                body
            };
            return (body == value).then_some(start);
        }
    }
    None
}

pub(super) fn load_str(path: &Path, text: String) -> Result<Desired, Problems> {
    let source = Source::new(path.display().to_string(), text);
    let text = Arc::clone(&source.text);
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut l = Loader { r: Reporter::new(source), dir };
    // Problems are reported in reading order: the stack file top to bottom,
    // then each document file.
    let fail = |l: Loader<'_>| {
        let mut problems = l.r.problems;
        let stack = l.r.source.name.clone();
        problems.sort_by(|a, b| {
            (a.source.name != stack, &a.source.name, a.span.start).cmp(&(
                b.source.name != stack,
                &b.source.name,
                b.span.start,
            ))
        });
        Problems { path: path.to_owned(), problems }
    };

    let (doc, errors) = DeTable::parse_recoverable(&text);
    if !errors.is_empty() {
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            l.r.error(
                "irsa::config::toml_syntax",
                span,
                format!("invalid TOML: {}", e.message().trim_end()),
                "here",
                Some("fix the TOML syntax; see https://toml.io for the format".into()),
            );
        }
        return Err(fail(l));
    }
    let root = Table::new(doc.get_ref(), "the stack file", 0..0, ROOT_KEYS, &mut l.r);

    match root.integer(&mut l.r, "version", "1") {
        Some(v) if v.v != 1 => l.r.error(
            "irsa::config::version",
            v.span,
            format!("stack file version {} is not supported", v.v),
            "unknown version",
            Some("this irsa reads version = 1".into()),
        ),
        None if !root.has("version") => root.missing(&mut l.r, "version", "1 (at the top of the file)"),
        _ => {}
    }

    let stack_name = load_stack(&mut l, &root);
    let clusters = load_clusters(&mut l, &root);
    if let Some(key) = root.key_span("clusters")
        && !root.has("stack")
    {
        l.r.error(
            "irsa::config::stack_name",
            key,
            "a stack of several clusters needs a name of its own",
            "no [stack] name",
            Some("add [stack] name = \"…\" (a stack of one [cluster] may go without: it is then named after its cluster)".into()),
        );
    }
    let role_clusters = clusters.as_ref().map(|c| bound_clusters(&l, &root, c)).unwrap_or_default();
    let (role_path, boundary, default_tags, default_tags_span) = load_defaults(&mut l, &root);

    // Policies.
    let mut policies = BTreeMap::new();
    let mut policy_folded: HashMap<String, Span> = HashMap::new();
    for (name, t) in root.named_tables(&mut l.r, "policies") {
        let t = Table::new(t, ["[policies.", &name.v, "]"].concat(), name.span.clone(), POLICY_KEYS, &mut l.r);
        l.check("irsa::config::name", &name, names::policy_name);
        unique_ignoring_case(&mut l, &mut policy_folded, &name, "policy");
        let description = l.description(&t);
        let path = load_path(&mut l, &t).unwrap_or_else(|| "/".into());
        let tags = l.tags(&t, &default_tags);
        let adopt = t.boolean(&mut l.r, "adopt").is_some_and(|b| b.v);
        let document = l.document(&t, &["policy `", &name.v, "`"].concat());
        if let Some(document) = document {
            policies.insert(
                name.v.clone(),
                Policy { name: name.v, path, description, document, tags, adopt, span: name.span, preset: None },
            );
        }
    }
    let policy_names =
        Known::new(root.named_tables(&mut Reporter::new(l.r.source.clone()), "policies").into_iter().map(|(n, _)| n.v));

    // Roles.
    let mut roles = BTreeMap::new();
    let mut folded: HashMap<String, Span> = HashMap::new();
    let role_tables = root.named_tables(&mut l.r, "roles");
    let role_keys = Known::new(role_tables.iter().map(|(n, _)| n.v.clone()));
    let mut preset_policies: Vec<Policy> = Vec::new();
    for (key, t) in role_tables {
        let t = Table::new(t, ["[roles.", &key.v, "]"].concat(), key.span.clone(), ROLE_KEYS, &mut l.r);
        if let Some(arn) = t.string(&mut l.r, "arn", "\"arn:aws:iam::123456789012:role/name\"") {
            if let Some(role) = load_referenced_role(&mut l, &t, key, arn) {
                roles.insert(role.key.clone(), Role::Referenced(role));
            }
        } else if !t.has("arn") {
            l.check("irsa::config::name", &key, names::role_name);
            unique_ignoring_case(&mut l, &mut folded, &key, "role");
            let defaults = RoleDefaults { path: &role_path, boundary: &boundary, tags: &default_tags };
            let bound_in: Vec<&Cluster> = match (&clusters, role_clusters.get(&key.v)) {
                (Some(all), Some(keys)) => all.iter().filter(|c| keys.contains(&c.key)).collect(),
                (Some(all), None) => all.iter().collect(),
                (None, _) => Vec::new(),
            };
            let presets = PresetTarget { clusters: bound_in, policies: &mut preset_policies };
            if let Some(role) = load_owned_role(&mut l, &t, key, &policy_names, &defaults, presets) {
                roles.insert(role.name.clone(), Role::Owned(role));
            }
        }
    }
    // A preset's policy is an ordinary stack policy from here on; its name
    // must not be taken by one the file defines.
    for policy in preset_policies {
        let folded = policy.name.to_ascii_lowercase();
        if let Some(first) = policy_folded.get(&folded) {
            let (line, _) = l.r.source.line_col(first.start);
            let origin = policy.preset.as_ref().expect("made from a preset");
            l.r.error(
                "irsa::config::preset_name",
                policy.span.clone(),
                format!(
                    "preset `{}` of role `{}` makes policy `{}`, whose name the policy on line {line} already has",
                    origin.preset, origin.role, policy.name
                ),
                "name taken",
                Some(format!("rename that policy, or remove \"{}{}\"", presets::PREFIX, origin.preset)),
            );
            continue;
        }
        policy_folded.insert(folded, policy.span.clone());
        policies.insert(policy.name.clone(), policy);
    }

    // Service accounts.
    let mut bindings: Vec<Binding> = Vec::new();
    // Roles named by any binding, even one with problems of its own: a role
    // is not "bound to no service account" because its binding has a typo.
    let mut used_roles: HashSet<String> = HashSet::new();
    let mut bound: HashMap<BindingKey, Span> = HashMap::new();
    let mut workloads: HashMap<BindingKey, Span> = HashMap::new();
    for (span, t) in root.table_array(&mut l.r, "service_accounts") {
        let header = header_span(&l.r.source.text, &span);
        let t = Table::new(t, "[[service_accounts]]", header, BINDING_KEYS, &mut l.r);
        if let Some(role) = t.string(&mut Reporter::new(l.r.source.clone()), "role", "") {
            used_roles.insert(role.v);
        }
        bindings.extend(load_binding(&mut l, &t, &role_keys, clusters.as_deref(), &mut bound, &mut workloads));
    }

    // An owned role nobody uses would get an empty trust policy, which IAM rejects.
    for role in roles.values() {
        if let Role::Owned(role) = role
            && !used_roles.contains(&role.name)
        {
            l.r.error(
                "irsa::config::unbound_role",
                role.span.clone(),
                format!("role `{}` is bound to no service account, so its trust policy would be empty", role.name),
                "unused role",
                Some(format!("bind it in a [[service_accounts]] entry with role = \"{}\", or remove it", role.name)),
            );
        }
    }

    let (Some(clusters), true) = (clusters, l.r.problems.is_empty()) else {
        return Err(fail(l));
    };
    // The TOML tree has been read: freed before the quota check builds trust
    // policies, it does not add to the load's peak.
    drop(root);
    drop(doc);
    // Rebuilt in one sorted pass: a B-tree filled by inserting names in
    // order leaves every node about half empty, and these two maps live as
    // long as the plan (7 MB of a 10,000-binding plan's peak); one built
    // from a sorted sequence packs its nodes full.
    let policies: BTreeMap<String, Policy> = policies.into_iter().collect();
    let roles: BTreeMap<String, Role> = roles.into_iter().collect();
    let stack = match stack_name {
        Some(name) => Stack { name, explicit: true, renamed_from: None },
        None => Stack { name: clusters[0].name.clone(), explicit: false, renamed_from: None },
    };
    let mut desired = Desired {
        source: Arc::new(SourceFile { path: path.to_owned(), text }),
        stack,
        clusters,
        policies,
        roles,
        bindings,
        default_tags: DefaultTags { keys: default_tags.into_keys().collect(), span: default_tags_span },
        bindings_by_role: Default::default(),
        quotas_passed: None,
    };

    // Trust sizes are measured with the issuers the file sets; the plan
    // measures again when a cluster's issuer comes from the cluster.
    let issuers = Issuers::declared(&desired);
    let violations = quotas::check(&desired, &Quotas::default(), &issuers);
    if violations.is_empty() && issuers.0.len() == desired.clusters.len() {
        desired.quotas_passed = Some((Quotas::default(), issuers));
    }
    for v in violations {
        l.r.error("irsa::config::quota", v.span, v.message, "over the IAM quota", Some(v.help));
    }
    if l.r.problems.is_empty() { Ok(desired) } else { Err(fail(l)) }
}

/// Where a `[[service_accounts]]` entry is introduced, for "missing key"
/// errors. toml gives an entry written as a section the span of its own
/// `[[service_accounts]]` header; an inline table in an array keeps its own
/// span.
fn header_span(text: &str, entry: &Span) -> Span {
    let written = text.get(entry.clone()).unwrap_or_default();
    match written.strip_prefix("[[").and_then(|_| written.find("]]")) {
        Some(end) => entry.start..entry.start + end + 2,
        None => entry.clone(),
    }
}

fn unique_ignoring_case(l: &mut Loader<'_>, seen: &mut HashMap<String, Span>, name: &Sp<String>, what: &str) {
    if let Some(first) = seen.get(&name.v.to_ascii_lowercase()) {
        let (line, _) = l.r.source.line_col(first.start);
        l.r.error(
            "irsa::config::duplicate",
            name.span.clone(),
            format!(
                "{what} `{}` differs only in case from the {what} on line {line}; IAM names are case-insensitive",
                name.v
            ),
            "same name as another",
            Some(format!("give the {what} a distinct name")),
        );
    } else {
        seen.insert(name.v.to_ascii_lowercase(), name.span.clone());
    }
}

fn load_path(l: &mut Loader<'_>, t: &Table<'_, '_>) -> Option<String> {
    let p = t.string(&mut l.r, "path", "\"/irsa/\"")?;
    l.check("irsa::config::path", &p, names::iam_path).then_some(p.v)
}

/// `[stack] name`, when the file gives one (and it is valid).
fn load_stack(l: &mut Loader<'_>, root: &Table<'_, '_>) -> Option<String> {
    let (key, t) = root.table(&mut l.r, "stack")?;
    let t = Table::new(t, "[stack]", key.span.clone(), STACK_KEYS, &mut l.r);
    let name = t.required_string(&mut l.r, "name", "\"team-a\"")?;
    l.check("irsa::config::name", &name, names::stack_name).then_some(name.v)
}

/// `[cluster]`, or the `[clusters.<key>]` tables: one form or the other.
fn load_clusters(l: &mut Loader<'_>, root: &Table<'_, '_>) -> Option<Vec<Cluster>> {
    let example = "{ name = \"…\", region = \"…\", account_id = \"…\" } (a [cluster] section, or [clusters.<name>] sections for several)";
    match (root.key_span("cluster"), root.key_span("clusters")) {
        (None, None) => {
            root.missing(&mut l.r, "cluster", example);
            None
        }
        (Some(_), Some(both)) => {
            l.r.error(
                "irsa::config::clusters",
                both,
                "the stack file has both [cluster] and [clusters.<name>] tables",
                "one form or the other",
                Some("move [cluster] into a [clusters.<name>] table of its own (the bindings then name their cluster), or remove these".into()),
            );
            None
        }
        (Some(_), None) => {
            let (key, t) = root.table(&mut l.r, "cluster")?;
            let t = Table::new(t, "[cluster]", key.span.clone(), CLUSTER_KEYS, &mut l.r);
            load_cluster(l, &t, None, key.span).map(|c| vec![c])
        }
        (None, Some(span)) => {
            let tables = root.named_tables(&mut l.r, "clusters");
            if tables.is_empty() {
                l.r.error(
                    "irsa::config::clusters",
                    span,
                    "`clusters` names no cluster",
                    "empty",
                    Some("add a [clusters.<name>] table with name, region and account_id".into()),
                );
                return None;
            }
            let mut clusters: Vec<Cluster> = Vec::new();
            let mut ok = true;
            let mut sids: HashMap<String, Sp<String>> = HashMap::new();
            for (key, t) in tables {
                let t = Table::new(t, format!("[clusters.{}]", key.v), key.span.clone(), CLUSTER_KEYS, &mut l.r);
                if !l.check("irsa::config::name", &key, names::cluster_key) {
                    ok = false;
                    continue;
                }
                // The key goes into trust-statement Sids, which keep only letters and digits.
                let sid = crate::model::trust::cluster_sid("", Some(&key.v));
                if let Some(first) = sids.get(&sid) {
                    l.r.error(
                        "irsa::config::duplicate",
                        key.span.clone(),
                        format!(
                            "clusters `{}` and `{}` differ only in `-`, and would share a trust statement Sid",
                            first.v, key.v
                        ),
                        "same Sid as another",
                        Some("give the clusters names that differ in letters or digits".into()),
                    );
                    ok = false;
                    continue;
                }
                sids.insert(sid, key.clone());
                match load_cluster(l, &t, Some(&key), key.span.clone()) {
                    Some(c) => clusters.push(c),
                    None => ok = false,
                }
            }
            if !ok {
                return None;
            }
            same_account(l, &clusters);
            clusters.sort_by(|a, b| a.key.cmp(&b.key));
            Some(clusters)
        }
    }
}

/// The clusters of one stack share its account and partition: its roles and
/// policies live in one account, where every cluster's OIDC provider is made.
fn same_account(l: &mut Loader<'_>, clusters: &[Cluster]) {
    let first = &clusters[0];
    let mut issuers: HashMap<String, &Cluster> = HashMap::new();
    for c in clusters {
        if c.account_id != first.account_id {
            l.r.error(
                "irsa::config::account",
                c.span.clone(),
                format!(
                    "{} is in account {}, but {} is in {}: a stack's roles and providers are in one account",
                    c.table(),
                    c.account_id,
                    first.table(),
                    first.account_id
                ),
                "another account",
                Some("write a stack file per account, or give every cluster the account where the roles are".into()),
            );
        } else if c.partition != first.partition {
            l.r.error(
                "irsa::config::region",
                c.span.clone(),
                format!(
                    "{} is in partition {}, but {} is in {}",
                    c.table(),
                    c.partition,
                    first.table(),
                    first.partition
                ),
                "another partition",
                Some("write a stack file per partition".into()),
            );
        }
        if let Some(issuer) = &c.oidc_issuer {
            let norm = issuer.trim_end_matches('/').to_owned();
            if let Some(other) = issuers.get(&norm) {
                l.r.error(
                    "irsa::config::issuer",
                    c.oidc_issuer_span.clone().unwrap_or(c.span.clone()),
                    format!(
                        "{} has the OIDC issuer of {}: each cluster has an issuer of its own",
                        c.table(),
                        other.table()
                    ),
                    "same issuer",
                    Some(
                        "copy each cluster's issuer from aws eks describe-cluster --query cluster.identity.oidc.issuer"
                            .into(),
                    ),
                );
            } else {
                issuers.insert(norm, c);
            }
        }
    }
}

/// One cluster's table; `key` is `[clusters.<key>]`'s (`None` for `[cluster]`,
/// whose `name` is required; a keyed cluster's name defaults to its key).
fn load_cluster(l: &mut Loader<'_>, t: &Table<'_, '_>, key: Option<&Sp<String>>, span: Span) -> Option<Cluster> {
    let name = match key {
        None => t.required_string(&mut l.r, "name", "\"my-cluster\""),
        Some(k) => t.string(&mut l.r, "name", "\"my-cluster\"").or_else(|| Some(k.clone())),
    };
    let region = t.required_string(&mut l.r, "region", "\"us-east-1\"");
    let account = t.required_string(&mut l.r, "account_id", "\"123456789012\"");
    let issuer = t.string(&mut l.r, "oidc_issuer", "\"https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE\"");
    let context = t.string(&mut l.r, "context", "\"my-cluster\"");
    let thumbprints = t.string_list(&mut l.r, "oidc_thumbprints", "[\"9e99a48a9960b14926bb7f3b02e22da2b0ab7280\"]");
    let ok_name = name.as_ref().is_some_and(|n| l.check("irsa::config::name", n, names::cluster_name));
    let ok_region = region.as_ref().is_some_and(|r| l.check("irsa::config::region", r, names::region));
    let ok_account = account.as_ref().is_some_and(|a| l.check("irsa::config::account", a, names::account_id));
    if let Some(i) = &issuer {
        l.check("irsa::config::issuer", i, names::issuer_url);
    }
    let mut prints = Vec::new();
    if let Some(list) = thumbprints {
        if list.v.len() > THUMBPRINTS_MAX {
            l.r.error(
                "irsa::config::thumbprints",
                list.span.clone(),
                format!("{} thumbprints given; IAM keeps at most {THUMBPRINTS_MAX}", list.v.len()),
                "too many",
                Some("keep the thumbprints of the certificates in use".into()),
            );
        }
        for tp in list.v {
            if l.check("irsa::config::thumbprint", &tp, names::thumbprint) {
                prints.push(tp.v.to_ascii_lowercase());
            }
        }
    }
    let (name, region, account) = (name?, region?, account?);
    if !(ok_name && ok_region && ok_account) {
        return None;
    }
    Some(Cluster {
        key: key.map(|k| k.v.clone()),
        partition: names::partition_of(&region.v).to_owned(),
        name: name.v,
        region: region.v,
        account_id: account.v,
        oidc_issuer_span: issuer.as_ref().map(|i| i.span.clone()),
        oidc_issuer: issuer.map(|i| i.v),
        context: context.map(|c| c.v),
        oidc_thumbprints: prints,
        span,
    })
}

/// The clusters each role is bound in, by a quiet first look at the
/// `[[service_accounts]]` entries (their own problems are reported when
/// they are loaded): a role's presets take their cluster defaults from there.
fn bound_clusters(
    l: &Loader<'_>,
    root: &Table<'_, '_>,
    clusters: &[Cluster],
) -> HashMap<String, BTreeSet<Option<String>>> {
    // The same reading of `cluster`/`clusters` as the bindings' own, into a
    // reporter nobody reads.
    let mut quiet = Loader { r: Reporter::new(l.r.source.clone()), dir: l.dir };
    let mut out: HashMap<String, BTreeSet<Option<String>>> = HashMap::new();
    for (span, t) in root.table_array(&mut quiet.r, "service_accounts") {
        let t = Table::new(t, "[[service_accounts]]", span, BINDING_KEYS, &mut quiet.r);
        let Some(role) = t.string(&mut quiet.r, "role", "") else { continue };
        if let Some(keys) = binding_clusters(&mut quiet, &t, Some(clusters)) {
            out.entry(role.v).or_default().extend(keys);
        }
    }
    out
}

fn load_defaults(
    l: &mut Loader<'_>,
    root: &Table<'_, '_>,
) -> (String, Option<String>, BTreeMap<String, String>, Option<Span>) {
    let Some((key, t)) = root.table(&mut l.r, "defaults") else {
        return ("/".into(), None, BTreeMap::new(), None);
    };
    let t = Table::new(t, "[defaults]", key.span, DEFAULTS_KEYS, &mut l.r);
    let path = t
        .string(&mut l.r, "role_path", "\"/irsa/\"")
        .and_then(|p| l.check("irsa::config::path", &p, names::iam_path).then_some(p.v));
    let boundary = load_boundary(l, &t);
    let tags = l.tags(&t, &BTreeMap::new());
    (path.unwrap_or_else(|| "/".into()), boundary, tags, t.key_span("tags"))
}

fn load_boundary(l: &mut Loader<'_>, t: &Table<'_, '_>) -> Option<String> {
    let b = t.string(&mut l.r, "permissions_boundary", "\"arn:aws:iam::123456789012:policy/boundary\"")?;
    l.check("irsa::config::arn", &b, |a| names::policy_arn(a).map(drop)).then_some(b.v)
}

fn load_referenced_role(
    l: &mut Loader<'_>,
    t: &Table<'_, '_>,
    key: Sp<String>,
    arn: Sp<String>,
) -> Option<ReferencedRole> {
    for k in OWNED_ONLY_ROLE_KEYS {
        if let Some(span) = t.key_span(k) {
            l.r.error(
                "irsa::config::referenced_role",
                span,
                format!("[roles.{}] is referenced by `arn`, so it cannot take `{k}`: irsa does not own it", key.v),
                "not for arn = roles",
                Some(format!("remove `{k}`, or remove `arn` to let irsa create and own the role")),
            );
        }
    }
    let manage_trust = t.boolean(&mut l.r, "manage_trust").is_some_and(|b| b.v);
    let name = match names::role_arn(&arn.v) {
        Ok(parsed) => parsed.name.to_owned(),
        Err(e) => {
            l.invalid("irsa::config::arn", arn.span.clone(), e);
            return None;
        }
    };
    Some(ReferencedRole { key: key.v, arn: arn.v, name, manage_trust, span: key.span })
}

/// What `[defaults]` gives every owned role.
struct RoleDefaults<'a> {
    path: &'a str,
    boundary: &'a Option<String>,
    tags: &'a BTreeMap<String, String>,
}

/// Where a role's presets go: the clusters their defaults come from (those
/// the role is bound in; none when the clusters are invalid: the parameters
/// are still checked, nothing is rendered) and the policies they make.
struct PresetTarget<'a> {
    clusters: Vec<&'a Cluster>,
    policies: &'a mut Vec<Policy>,
}

fn load_owned_role(
    l: &mut Loader<'_>,
    t: &Table<'_, '_>,
    key: Sp<String>,
    policy_names: &Known,
    defaults: &RoleDefaults<'_>,
    presets: PresetTarget<'_>,
) -> Option<OwnedRole> {
    let (default_path, default_boundary, default_tags) = (defaults.path, defaults.boundary, defaults.tags);
    if let Some(span) = t.key_span("manage_trust") {
        l.r.error(
            "irsa::config::manage_trust",
            span,
            format!(
                "`manage_trust` belongs only to roles referenced by `arn`; irsa always manages the trust of [roles.{}]",
                key.v
            ),
            "not for owned roles",
            Some("remove `manage_trust`".into()),
        );
    }
    let description = l.description(t);
    let path = load_path(l, t).unwrap_or_else(|| default_path.to_owned());
    let boundary = load_boundary(l, t).or_else(|| default_boundary.clone());
    let tags = l.tags(t, default_tags);
    let adopt = t.boolean(&mut l.r, "adopt").is_some_and(|b| b.v);
    let max_session = match t.integer(&mut l.r, "max_session_duration", "3600") {
        Some(v) if !MAX_SESSION_RANGE.contains(&v.v) => {
            l.r.error(
                "irsa::config::max_session_duration",
                v.span,
                format!("max_session_duration is {} seconds; IAM allows 3600 (1 hour) to 43200 (12 hours)", v.v),
                "out of range",
                Some("use a number of seconds from 3600 to 43200".into()),
            );
            DEFAULT_MAX_SESSION
        }
        Some(v) => u32::try_from(v.v).unwrap_or(DEFAULT_MAX_SESSION),
        None => DEFAULT_MAX_SESSION,
    };

    let mut policies: Vec<PolicyRef> = Vec::new();
    let mut params = preset_params(l, t, &key);
    let mut listed_presets: Vec<&'static str> = Vec::new();
    let list = t.string_list(&mut l.r, "policies", "[\"messages-read\", \"arn:aws:iam::aws:policy/ReadOnlyAccess\"]");
    for p in list.map(|l| l.v).unwrap_or_default() {
        if let Some(name) = p.v.strip_prefix(presets::PREFIX) {
            let Some(preset) = known_preset(l, &key, &p, name) else { continue };
            if listed_presets.contains(&preset.name) {
                l.r.error(
                    "irsa::config::duplicate",
                    p.span.clone(),
                    format!("preset `{name}` is listed twice for role `{}`", key.v),
                    "listed again",
                    Some("remove the second entry".into()),
                );
                continue;
            }
            listed_presets.push(preset.name);
            let table = params.remove(preset.name);
            let ctx = PresetRole { role: &key.v, path: &path, tags: default_tags, adopt };
            for policy in load_preset(l, preset, &p, table, &ctx, &presets.clusters) {
                policies.push(PolicyRef::Stack(policy.name.clone()));
                presets.policies.push(policy);
            }
            continue;
        }
        let reference = if p.v.starts_with("arn:") {
            if !l.check("irsa::config::arn", &p, |a| names::policy_arn(a).map(drop)) {
                continue;
            }
            PolicyRef::Arn(p.v.clone())
        } else if policy_names.contains(&p.v) {
            PolicyRef::Stack(p.v.clone())
        } else {
            let help = match closest(&p.v, policy_names.in_order()) {
                Some(c) => format!("did you mean `{c}`? Define [policies.{}], or use a policy ARN", p.v),
                None => {
                    format!("define [policies.{}] in this file, or use the policy's ARN (arn:aws:iam::…:policy/…)", p.v)
                }
            };
            l.r.error(
                "irsa::config::dangling_reference",
                p.span.clone(),
                format!("role `{}` uses policy `{}`, which is not defined", key.v, p.v),
                "no such policy",
                Some(help),
            );
            continue;
        };
        if policies.contains(&reference) {
            l.r.error(
                "irsa::config::duplicate",
                p.span.clone(),
                format!("policy `{}` is listed twice for role `{}`", p.v, key.v),
                "listed again",
                Some("remove the second entry".into()),
            );
            continue;
        }
        policies.push(reference);
    }
    // Parameters of a preset the role does not use are a mistake: most
    // likely the preset was meant to be listed.
    let mut unused: Vec<(Sp<String>, &str)> = params.into_iter().map(|(n, (k, _))| (k, n)).collect();
    unused.sort_by_key(|(k, _)| k.span.start);
    for (k, name) in unused {
        l.r.error(
            "irsa::config::preset_unused",
            k.span,
            format!(
                "[roles.{}.presets.{name}] gives parameters for preset `{name}`, which role `{}` does not list",
                key.v, key.v
            ),
            "preset not in `policies`",
            Some(format!("add \"{}{name}\" to the role's `policies`, or remove the table", presets::PREFIX)),
        );
    }

    let mut inline = BTreeMap::new();
    for (name, it) in t.named_tables(&mut l.r, "inline") {
        let it =
            Table::new(it, format!("[roles.{}.inline.{}]", key.v, name.v), name.span.clone(), INLINE_KEYS, &mut l.r);
        l.check("irsa::config::name", &name, names::inline_policy_name);
        if let Some(doc) = l.document(&it, &format!("inline policy `{}` of role `{}`", name.v, key.v)) {
            inline.insert(name.v, doc);
        }
    }

    Some(OwnedRole {
        name: key.v,
        path,
        description,
        max_session_duration: max_session,
        permissions_boundary: boundary,
        tags,
        policies,
        inline,
        adopt,
        span: key.span,
    })
}

/// The parameter tables of a role's presets (`[roles.<role>.presets.<name>]`),
/// by preset: a table for a preset irsa does not have, or for one that takes
/// no parameters, is reported here.
fn preset_params<'t, 'i>(
    l: &mut Loader<'_>,
    t: &Table<'t, 'i>,
    role: &Sp<String>,
) -> BTreeMap<&'static str, (Sp<String>, &'t DeTable<'i>)> {
    let mut out = BTreeMap::new();
    for (name, table) in t.named_tables(&mut l.r, "presets") {
        match presets::find(&name.v) {
            Some(p) if p.params.is_empty() => l.r.error(
                "irsa::config::preset_parameter",
                name.span.clone(),
                format!("preset `{}` takes no parameters", p.name),
                "no parameters",
                Some(format!(
                    "remove [roles.{}.presets.{}]; the presets that take parameters are: {}",
                    role.v,
                    p.name,
                    presets::WITH_PARAMS.join(", ")
                )),
            ),
            Some(p) => {
                out.insert(p.name, (name, table));
            }
            None => {
                let help = match closest(&name.v, presets::WITH_PARAMS.iter().copied()) {
                    Some(c) => format!(
                        "did you mean `{c}`? The presets that take parameters are: {}",
                        presets::WITH_PARAMS.join(", ")
                    ),
                    None => format!("the presets that take parameters are: {}", presets::WITH_PARAMS.join(", ")),
                };
                l.r.error(
                    "irsa::config::unknown_preset",
                    name.span.clone(),
                    format!(
                        "[roles.{}.presets.{}] is for preset `{}`, which irsa does not have",
                        role.v, name.v, name.v
                    ),
                    "no such preset",
                    Some(help),
                );
            }
        }
    }
    out
}

/// The preset a `"preset:<name>"` entry names, or a problem at the entry.
fn known_preset(l: &mut Loader<'_>, role: &Sp<String>, entry: &Sp<String>, name: &str) -> Option<&'static Preset> {
    if let Some(p) = presets::find(name) {
        return Some(p);
    }
    let all: Vec<&str> = presets::names().collect();
    let help = match closest(name, all.iter().copied()) {
        Some(c) => format!("did you mean `{}{c}`? irsa's presets are: {}", presets::PREFIX, all.join(", ")),
        None => format!("irsa's presets are: {} (see docs/presets.md)", all.join(", ")),
    };
    l.r.error(
        "irsa::config::unknown_preset",
        entry.span.clone(),
        format!("role `{}` uses preset `{name}`, which irsa does not have", role.v),
        "no such preset",
        Some(help),
    );
    None
}

/// What a preset's policies take from their role.
struct PresetRole<'a> {
    role: &'a str,
    path: &'a str,
    tags: &'a BTreeMap<String, String>,
    /// The role's `adopt`: its presets' policies are adopted with it.
    adopt: bool,
}

/// A preset listed by a role, with its parameter table when the file has
/// one: the policies it makes, or none when a parameter is wrong (each
/// problem reported).
fn load_preset(
    l: &mut Loader<'_>,
    preset: &'static Preset,
    entry: &Sp<String>,
    table: Option<(Sp<String>, &DeTable<'_>)>,
    role: &PresetRole<'_>,
    clusters: &[&Cluster],
) -> Vec<Policy> {
    let cluster = clusters.first().copied();
    let partition = cluster.map(|c| c.partition.as_str());
    let table = table.map(|(k, t)| {
        let name = format!("[roles.{}.presets.{}]", role.role, preset.name);
        Table::new(t, name, k.span, presets::param_keys(preset.name), &mut l.r)
    });
    let mut given: BTreeMap<&str, ParamValue> = BTreeMap::new();
    let mut ok = true;
    for param in preset.params {
        let present = table.as_ref().is_some_and(|t| t.has(param.name));
        let value = match &table {
            Some(t) if present => preset_value(l, t, param, partition),
            _ => None,
        };
        match value {
            Some(v) => {
                given.insert(param.name, v);
            }
            None if present => ok = false,
            None if param.default != presets::Default::Required => {}
            None => {
                ok = false;
                match &table {
                    Some(t) => t.missing(&mut l.r, param.name, param.example),
                    None => l.r.error(
                        "irsa::config::preset_parameter",
                        entry.span.clone(),
                        format!(
                            "preset `{}` of role `{}` needs the parameter `{}`",
                            preset.name, role.role, param.name
                        ),
                        "parameter missing",
                        Some(format!(
                            "add a table [roles.{}.presets.{}] with {} = {}",
                            role.role, preset.name, param.name, param.example
                        )),
                    ),
                }
            }
        }
    }
    let (true, Some(cluster)) = (ok, cluster) else { return Vec::new() };
    // A role bound in several clusters takes a cluster's name or region
    // from them only when they agree on it.
    for param in preset.params {
        let from_cluster = match param.default {
            presets::Default::ClusterName | presets::Default::KarpenterNodeRole => {
                !given.contains_key("cluster_name") && clusters.iter().any(|c| c.name != cluster.name)
            }
            presets::Default::Region => clusters.iter().any(|c| c.region != cluster.region),
            _ => false,
        };
        if from_cluster && !given.contains_key(param.name) {
            let names: Vec<&str> = clusters.iter().map(|c| c.address_name()).collect();
            l.r.error(
                "irsa::config::preset_parameter",
                entry.span.clone(),
                format!(
                    "preset `{}` of role `{}` takes `{}` from the role's cluster, and the role is bound in clusters {}",
                    preset.name,
                    role.role,
                    param.name,
                    names.join(" and ")
                ),
                "which cluster?",
                Some(format!(
                    "set it in [roles.{}.presets.{}]: {} = {}, or give each cluster a role of its own",
                    role.role, preset.name, param.name, param.example
                )),
            );
            return Vec::new();
        }
    }
    let ctx = presets::Context {
        partition: &cluster.partition,
        cluster_name: &cluster.name,
        region: &cluster.region,
        account_id: &cluster.account_id,
    };
    let mut values = given.clone();
    for param in preset.params {
        if !values.contains_key(param.name)
            && let Some(v) = presets::default_value(param, &given, &ctx)
        {
            values.insert(param.name, v);
        }
    }
    let mut out = Vec::new();
    for part in preset.parts {
        let name = presets::policy_name(role.role, preset, part);
        // Neither can fail for a shipped preset (its tests render every one,
        // and names fit); reported, not unwrapped, all the same.
        let document =
            presets::render(part.template, &values, &cluster.partition).map_err(|e| vec![e]).and_then(|text| {
                policy_doc::check_identity_policy(&text).map_err(|e| e.into_iter().map(|p| p.message).collect())
            });
        let document = match document {
            Ok(d) => d,
            Err(why) => {
                l.r.error(
                    "irsa::config::preset",
                    entry.span.clone(),
                    format!(
                        "irsa's preset `{}` v{} makes no valid policy: {}",
                        preset.name,
                        preset.version,
                        why.join("; ")
                    ),
                    "this preset",
                    Some(
                        "this is a bug in irsa; please report it, and use a [policies.<name>] of your own meanwhile"
                            .into(),
                    ),
                );
                continue;
            }
        };
        if !l.check("irsa::config::name", &Sp { v: name.clone(), span: entry.span.clone() }, names::policy_name) {
            continue;
        }
        out.push(Policy {
            description: Some(format!("{} (irsa preset {}) for role {}", preset.project, preset.name, role.role)),
            name,
            path: role.path.to_owned(),
            document,
            tags: role.tags.clone(),
            adopt: role.adopt,
            span: entry.span.clone(),
            preset: Some(PresetOrigin { preset: preset.name, version: preset.version, role: role.role.to_owned() }),
        });
    }
    out
}

/// One parameter's value from its table, each element checked; `None`
/// (with the problems reported) when it is wrong.
fn preset_value(
    l: &mut Loader<'_>,
    t: &Table<'_, '_>,
    param: &presets::Param,
    partition: Option<&str>,
) -> Option<ParamValue> {
    let check = |l: &mut Loader<'_>, v: &Sp<String>| {
        l.check("irsa::config::preset_parameter", v, |s| presets::check_value(param.kind, s, partition))
    };
    if param.kind == presets::Kind::HostedZoneArns {
        let list = t.string_list(&mut l.r, param.name, param.example)?;
        if list.v.is_empty() {
            l.r.error(
                "irsa::config::preset_parameter",
                list.span.clone(),
                format!("`{}` in {} is empty", param.name, t.name),
                "no hosted zones",
                Some(format!("list the zones the add-on may change: {} = {}", param.name, param.example)),
            );
            return None;
        }
        let mut all_ok = true;
        for v in &list.v {
            all_ok &= check(l, v);
        }
        return all_ok.then(|| ParamValue::List(list.v.into_iter().map(|v| v.v).collect()));
    }
    let v = t.string(&mut l.r, param.name, param.example)?;
    check(l, &v).then_some(ParamValue::One(v.v))
}

/// (cluster key, namespace, name) of a ServiceAccount or Deployment.
type BindingKey = (Option<String>, String, String);

/// The clusters a `[[service_accounts]]` entry is in: `cluster = "…"`, or
/// `clusters = [ … ]` (one ServiceAccount in each, during a move from one
/// cluster to another), or the stack's only cluster. `None` when they are
/// wrong (reported); `Some(vec![None])` in a `[cluster]` file.
fn binding_clusters(
    l: &mut Loader<'_>,
    t: &Table<'_, '_>,
    clusters: Option<&[Cluster]>,
) -> Option<Vec<Option<String>>> {
    let one = t.string(&mut l.r, "cluster", "\"blue\"");
    let many = t.string_list(&mut l.r, "clusters", "[\"blue\", \"green\"]");
    let clusters = clusters?;
    let given: Vec<Sp<String>> = match (one, many) {
        (Some(_), Some(list)) => {
            l.r.error(
                "irsa::config::binding_cluster",
                list.span,
                "the entry has both `cluster` and `clusters`",
                "one or the other",
                Some("keep `cluster = \"…\"` for one cluster or `clusters = [ … ]` for several".into()),
            );
            return None;
        }
        (Some(c), None) => vec![c],
        (None, Some(list)) if list.v.is_empty() => {
            l.r.error(
                "irsa::config::binding_cluster",
                list.span,
                "`clusters` is empty",
                "no cluster",
                Some("name the clusters the ServiceAccount is in, or remove the entry".into()),
            );
            return None;
        }
        (None, Some(list)) => list.v,
        (None, None) => {
            if clusters.len() > 1 {
                let keys: Vec<&str> = clusters.iter().map(Cluster::address_name).collect();
                t.missing(
                    &mut l.r,
                    "cluster",
                    &format!("\"{}\" (the stack has clusters {})", keys[0], keys.join(", ")),
                );
                return None;
            }
            return Some(vec![clusters[0].key.clone()]);
        }
    };
    let mut out: Vec<Option<String>> = Vec::new();
    let mut ok = true;
    for c in given {
        let found = clusters.iter().find(|k| match &k.key {
            Some(key) => *key == c.v,
            // A `[cluster]` file's bindings may name it, by its name.
            None => k.name == c.v,
        });
        match found {
            Some(k) if out.contains(&k.key) => {
                l.r.error(
                    "irsa::config::duplicate",
                    c.span.clone(),
                    format!("cluster `{}` is listed twice", c.v),
                    "listed again",
                    Some("remove the second entry".into()),
                );
                ok = false;
            }
            Some(k) => out.push(k.key.clone()),
            None => {
                let keys: Vec<String> = clusters.iter().map(|k| k.address_name().to_owned()).collect();
                let help = match closest(&c.v, keys.iter().map(String::as_str)) {
                    Some(k) => format!("did you mean `{k}`? The stack's clusters are {}", keys.join(", ")),
                    None if clusters[0].key.is_none() => {
                        "the stack file has one [cluster]: remove `cluster`, or add [clusters.<name>] tables".into()
                    }
                    None => format!("define [clusters.{}], or use one of {}", c.v, keys.join(", ")),
                };
                l.r.error(
                    "irsa::config::dangling_reference",
                    c.span.clone(),
                    format!("service account is in cluster `{}`, which is not defined", c.v),
                    "no such cluster",
                    Some(help),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn load_binding(
    l: &mut Loader<'_>,
    t: &Table<'_, '_>,
    role_keys: &Known,
    clusters: Option<&[Cluster]>,
    bound: &mut HashMap<BindingKey, Span>,
    workloads: &mut HashMap<BindingKey, Span>,
) -> Vec<Binding> {
    let in_clusters = binding_clusters(l, t, clusters);
    let namespace = t.required_string(&mut l.r, "namespace", "\"backend\"");
    let name = t.required_string(&mut l.r, "name", "\"my-service-account\"");
    let role = t.required_string(&mut l.r, "role", "\"backend-messages\"");
    let adopt = t.boolean(&mut l.r, "adopt").is_some_and(|b| b.v);
    let ns_ok =
        namespace.as_ref().is_some_and(|n| l.check("irsa::config::name", n, |v| names::dns_label("namespace", v)));
    let name_ok = name
        .as_ref()
        .is_some_and(|n| l.check("irsa::config::name", n, |v| names::dns_subdomain("service account name", v)));
    let role_ok = role.as_ref().is_some_and(|r| {
        if role_keys.contains(&r.v) {
            return true;
        }
        let help = match closest(&r.v, role_keys.in_order()) {
            Some(c) => format!("did you mean `{c}`? Or define [roles.{}]", r.v),
            None => format!("define [roles.{}] in this file", r.v),
        };
        l.r.error(
            "irsa::config::dangling_reference",
            r.span.clone(),
            format!("service account uses role `{}`, which is not defined", r.v),
            "no such role",
            Some(help),
        );
        false
    });

    let mut annotations = BTreeMap::new();
    for (k, v) in t
        .string_map(&mut l.r, "annotations", "{ \"eks.amazonaws.com/sts-regional-endpoints\" = \"true\" }")
        .unwrap_or_default()
    {
        if k.v == markers::ANNOTATION_ROLE_ARN || k.v == markers::ANNOTATION_STACK {
            l.r.error(
                "irsa::config::reserved_annotation",
                k.span.clone(),
                format!("`{}` is irsa's to set; it cannot be given in annotations", k.v),
                "set by irsa",
                Some("remove it: irsa sets it from the binding's role".into()),
            );
            continue;
        }
        if let Err(e) = names::annotation_key(&k.v) {
            l.invalid("irsa::config::annotation", k.span.clone(), e);
            continue;
        }
        annotations.insert(k.v, v.v);
    }

    // The workloads are checked whatever else is wrong with the binding, so
    // that all of their problems show in the same run.
    let mut listed: Vec<Sp<String>> = Vec::new();
    let list = t.string_list(&mut l.r, "workloads", "[\"deployment/backend\"]");
    for w in list.map(|l| l.v).unwrap_or_default() {
        let Some(dep) = w.v.strip_prefix("deployment/") else {
            l.r.error(
                "irsa::config::workload",
                w.span.clone(),
                format!("workload `{}` is not of the form deployment/<name>", w.v),
                "unsupported workload",
                Some("irsa manages Deployments: write \"deployment/<name>\"".into()),
            );
            continue;
        };
        if let Err(e) = names::dns_subdomain("deployment name", dep) {
            l.invalid("irsa::config::name", w.span.clone(), e);
            continue;
        }
        if let Some(first) = listed.iter().find(|d| d.v == dep) {
            let (line, col) = l.r.source.line_col(first.span.start);
            l.r.error(
                "irsa::config::duplicate_workload",
                w.span.clone(),
                format!("workload `{}` is listed twice for this service account (first at {line}:{col})", w.v),
                "listed again",
                Some("remove the second entry".into()),
            );
            continue;
        }
        listed.push(Sp { v: dep.to_owned(), span: w.span.clone() });
    }

    let (Some(namespace), Some(name), Some(role), Some(in_clusters)) = (namespace, name, role, in_clusters) else {
        return Vec::new();
    };
    if !(ns_ok && name_ok && role_ok) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for cluster in in_clusters {
        let at = cluster.as_ref().map(|c| format!(" in cluster {c}")).unwrap_or_default();
        let key = (cluster.clone(), namespace.v.clone(), name.v.clone());
        if let Some(first) = bound.get(&key) {
            let (line, _) = l.r.source.line_col(first.start);
            l.r.error(
                "irsa::config::duplicate_binding",
                name.span.clone(),
                format!("service account {}/{}{at} is bound twice (first on line {line})", namespace.v, name.v),
                "bound again",
                Some("a service account has one role: keep one entry, or give one of them another name".into()),
            );
            continue;
        }
        bound.insert(key, name.span.clone());

        let mut deployments = Vec::new();
        for dep in &listed {
            let wkey = (cluster.clone(), namespace.v.clone(), dep.v.clone());
            if let Some(first) = workloads.get(&wkey) {
                let (line, _) = l.r.source.line_col(first.start);
                l.r.error(
                    "irsa::config::duplicate_workload",
                    dep.span.clone(),
                    format!(
                        "deployment {}/{}{at} is bound to two service accounts (first on line {line})",
                        namespace.v, dep.v
                    ),
                    "bound again",
                    Some("a Deployment runs as one service account: list it under one binding".into()),
                );
                continue;
            }
            workloads.insert(wkey, dep.span.clone());
            deployments.push(dep.v.clone());
        }

        out.push(Binding {
            cluster,
            namespace: namespace.v.clone(),
            name: name.v.clone(),
            role: role.v.clone(),
            deployments,
            annotations: annotations.clone(),
            adopt,
            span: name.span.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{content_offset, load_str};

    /// Lines 1 to 5 of a stack file: version and cluster.
    const HEAD: &str =
        "version = 1\n[cluster]\nname = \"demo\"\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\n";

    /// `line:col message` of every problem found in `body` (after [`HEAD`]).
    fn problems(body: &str) -> Vec<String> {
        match load_str(Path::new("s.toml"), format!("{HEAD}{body}")) {
            Ok(_) => Vec::new(),
            Err(p) => p
                .problems
                .iter()
                .map(|p| {
                    let (line, col) = p.source.line_col(p.span.start);
                    format!("{line}:{col} {}", p.message)
                })
                .collect(),
        }
    }

    #[test]
    fn workloads_are_checked_even_when_the_binding_has_other_problems() {
        let got = problems(
            "[roles.app]\n[[service_accounts]]\nnamespace = \"Backend\"\nname = \"app\"\nrole = \"app\"\nworkloads = [\"job/x\"]\n",
        );
        assert_eq!(
            got,
            [
                "8:13 namespace `Backend` is not a valid DNS-1123 label",
                "11:14 workload `job/x` is not of the form deployment/<name>",
            ]
        );
    }

    #[test]
    fn a_workload_listed_twice_in_one_binding_is_not_called_bound_to_two_service_accounts() {
        let got = problems(
            "[roles.app]\n[[service_accounts]]\nnamespace = \"backend\"\nname = \"app\"\nrole = \"app\"\nworkloads = [\"deployment/a\", \"deployment/a\"]\n",
        );
        assert_eq!(got, ["11:30 workload `deployment/a` is listed twice for this service account (first at 11:14)"]);
    }

    #[test]
    fn a_missing_key_points_at_the_header_of_its_own_service_account() {
        let entry = "[[service_accounts]]\nnamespace = \"backend\"\nrole = \"app\"\n";
        let got = problems(&format!("[roles.app]\n{entry}name = \"a\"\n{entry}"));
        assert_eq!(got, ["11:1 [[service_accounts]] is missing the required key `name`"]);
        let text = "service_accounts = [{ namespace = \"backend\", role = \"app\" }]\n";
        let e = load_str(Path::new("s.toml"), format!("{text}{HEAD}[roles.app]\n")).unwrap_err();
        assert_eq!(e.problems[0].location(), "s.toml:1:21");
        assert!(e.problems[0].message.contains("missing the required key `name`"));
    }

    #[test]
    fn names_differing_in_case_are_reported_at_the_later_one() {
        let bind = |role: &str, sa: &str| {
            format!("[[service_accounts]]\nnamespace = \"backend\"\nname = \"{sa}\"\nrole = \"{role}\"\n")
        };
        let got = problems(&format!("[roles.app]\n[roles.App]\n{}{}", bind("app", "a"), bind("App", "b")));
        assert_eq!(
            got,
            ["7:8 role `App` differs only in case from the role on line 6; IAM names are case-insensitive"]
        );
        let doc = "document = '{\"Version\": \"2012-10-17\", \"Statement\": [{\"Effect\": \"Allow\", \"Action\": \"s3:GetObject\", \"Resource\": \"*\"}]}'";
        let got = problems(&format!("[policies.read]\n{doc}\n[policies.Read]\n{doc}\n"));
        assert_eq!(
            got,
            ["8:11 policy `Read` differs only in case from the policy on line 6; IAM names are case-insensitive"]
        );
    }

    #[test]
    fn a_bad_tag_value_is_pointed_at_not_its_key() {
        let got = problems(&format!("[defaults]\ntags = {{ team = \"{}\" }}\n", "v".repeat(257)));
        assert_eq!(got, ["7:17 the value of tag `team` is longer than 256 characters"]);
        let got = problems("[defaults]\ntags = { team = \"a;b\", \"aws:x\" = \"y\" }\n");
        assert_eq!(
            got,
            [
                "7:17 tag `team` contains `;`, which IAM tags do not allow",
                "7:24 tag key `aws:x` uses the reserved `aws:` prefix"
            ]
        );
    }

    #[test]
    fn a_role_whose_binding_is_invalid_is_not_also_reported_unbound() {
        let got =
            problems("[roles.app]\n[[service_accounts]]\nnamespace = \"Backend\"\nname = \"app\"\nrole = \"app\"\n");
        assert_eq!(got, ["8:13 namespace `Backend` is not a valid DNS-1123 label"]);
    }

    /// The schema's tables take exactly the keys the loader takes: the
    /// schema is declared beside the loader, and this keeps them together.
    #[test]
    fn the_schema_takes_the_keys_the_loader_takes() {
        let schema = crate::config::schema::stack_file_schema();
        let keys = |table: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = table["properties"].as_object().expect("properties").keys().cloned().collect();
            k.sort();
            k
        };
        let sorted = |k: &[&str]| {
            let mut k: Vec<String> = k.iter().map(|s| (*s).to_owned()).collect();
            k.sort();
            k
        };
        let defs = &schema["definitions"];
        let tables: &[(&serde_json::Value, &[&str])] = &[
            (&schema, super::ROOT_KEYS),
            (&defs["StackTable"], super::STACK_KEYS),
            (&defs["ClusterTable"], super::CLUSTER_KEYS),
            (&defs["KeyedClusterTable"], super::CLUSTER_KEYS),
            (&defs["DefaultsTable"], super::DEFAULTS_KEYS),
            (&defs["PolicyTable"], super::POLICY_KEYS),
            (&defs["RoleTable"], super::ROLE_KEYS),
            (&defs["InlinePolicyTable"], super::INLINE_KEYS),
            (&defs["ServiceAccountTable"], super::BINDING_KEYS),
            (&defs["PresetsTable"], crate::model::presets::WITH_PARAMS),
            (&defs["HostedZonesPresetParams"], crate::model::presets::param_keys("external-dns")),
            (&defs["HostedZonesPresetParams"], crate::model::presets::param_keys("cert-manager")),
            (&defs["ClusterAutoscalerPresetParams"], crate::model::presets::param_keys("cluster-autoscaler")),
            (&defs["KarpenterPresetParams"], crate::model::presets::param_keys("karpenter")),
        ];
        for (table, loader) in tables {
            assert_eq!(keys(table), sorted(loader), "{table}");
            assert_eq!(table["additionalProperties"], false, "unknown keys are errors: {table}");
        }
    }

    #[test]
    fn string_content_offsets() {
        assert_eq!(content_offset("'''\n{}'''", "{}"), Some(4));
        assert_eq!(content_offset("'''{}'''", "{}"), Some(3));
        assert_eq!(content_offset("'{}'", "{}"), Some(1));
        assert_eq!(content_offset("\"{\\\"a\\\"}\"", "{\"a\"}"), None);
    }
}
