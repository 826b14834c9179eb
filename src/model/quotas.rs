//! IAM quotas irsa checks before making any call.
//!
//! One table: the defaults below are AWS's documented defaults; a live refresh
//! replaces them with the account's own values (`GetAccountSummary`), so the
//! same checks run at load time (defaults) and at plan time (live values).

use serde::{Deserialize, Serialize};

/// The quotas that a stack file can violate.
/// In a snapshot, a missing field keeps its default and an unknown one is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// Managed policies attached to one role (`AttachedPoliciesPerRoleQuota`).
    pub attached_policies_per_role: usize,
    /// Characters of a role's trust policy, whitespace not counted (`AssumeRolePolicySizeQuota`).
    pub trust_policy_size: usize,
    /// Characters of one managed policy document (`PolicySizeQuota`).
    pub managed_policy_size: usize,
    /// Characters of all inline policies of one role together (`RolePolicySizeQuota`).
    pub inline_policies_size_per_role: usize,
    /// Tags on one IAM resource, irsa's two ownership tags included.
    pub tags_per_resource: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            attached_policies_per_role: 10,
            trust_policy_size: 2048,
            managed_policy_size: 6144,
            inline_policies_size_per_role: 10_240,
            tags_per_resource: 50,
        }
    }
}

impl Quotas {
    /// The `GetAccountSummary` key behind each quota, named in messages so a
    /// user knows which Service Quotas entry to raise.
    pub const ATTACHED_POLICIES_KEY: &'static str = "AttachedPoliciesPerRoleQuota";
    pub const TRUST_SIZE_KEY: &'static str = "AssumeRolePolicySizeQuota";
    pub const POLICY_SIZE_KEY: &'static str = "PolicySizeQuota";
    pub const INLINE_SIZE_KEY: &'static str = "RolePolicySizeQuota";
}

use super::desired::{Binding, Desired, Issuers, Role, Span};
use super::trust;

/// A quota the desired stack would exceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The stack-file entry at fault.
    pub span: Span,
    pub message: String,
    pub help: String,
}

/// Every quota violation of `desired` under `quotas`. The trust policy size
/// needs the issuer, which is not known before discovery when the stack
/// omits it; pass `None` then, and check again once it is known.
pub fn check(desired: &Desired, quotas: &Quotas, issuers: &Issuers) -> Vec<Violation> {
    let mut out = Vec::new();
    let raise = |key: &str| {
        format!(
            "stay within the quota, or raise {key} for the account in Service Quotas (irsa reads the live value when it can reach the account)"
        )
    };
    // Tags from [defaults] are on every policy and owned role: when they
    // break the quota alone, that is one problem, at the table.
    let from_defaults = desired.default_tags.keys.len();
    let defaults_too_many =
        from_defaults + OWNERSHIP_TAGS > quotas.tags_per_resource && desired.default_tags.span.is_some();
    if defaults_too_many && let Some(span) = &desired.default_tags.span {
        out.push(Violation {
            span: span.clone(),
            message: format!(
                "[defaults] tags has {from_defaults} tags, so every policy and role would carry {} (irsa's {OWNERSHIP_TAGS} ownership tags included); IAM allows {}",
                from_defaults + OWNERSHIP_TAGS,
                quotas.tags_per_resource
            ),
            help: format!(
                "keep at most {} tags in [defaults] tags, and set the others on the resources that need them",
                quotas.tags_per_resource - OWNERSHIP_TAGS
            ),
        });
    }
    // A resource's tags are too many by its own fault when they are even
    // without the defaults' share, or when the defaults alone fit.
    let too_many = |tags: usize| {
        let own = tags - from_defaults.min(tags);
        tags + OWNERSHIP_TAGS > quotas.tags_per_resource
            && (!defaults_too_many || own + OWNERSHIP_TAGS > quotas.tags_per_resource)
    };
    for policy in desired.policies.values() {
        let size = policy.document.size();
        if size > quotas.managed_policy_size {
            out.push(Violation {
                span: policy.span.clone(),
                message: format!(
                    "policy `{}` is {size} characters long (whitespace not counted); IAM allows {} for a managed policy",
                    policy.name, quotas.managed_policy_size
                ),
                help: format!("split it into several policies, or use wildcards; {}", raise(Quotas::POLICY_SIZE_KEY)),
            });
        }
        if too_many(policy.tags.len()) {
            out.push(too_many_tags(&policy.span, "policy", &policy.name, policy.tags.len(), from_defaults, quotas));
        }
    }
    let clusters = cluster_bounds(desired, issuers);
    for role in desired.roles.values() {
        let Role::Owned(role) = role else { continue };
        if role.policies.len() > quotas.attached_policies_per_role {
            out.push(Violation {
                span: role.span.clone(),
                message: format!(
                    "role `{}` has {} managed policies; IAM allows {} per role",
                    role.name,
                    role.policies.len(),
                    quotas.attached_policies_per_role
                ),
                help: format!(
                    "merge some policies into one, or move statements into inline policies; {}",
                    raise(Quotas::ATTACHED_POLICIES_KEY)
                ),
            });
        }
        let inline: usize = role.inline.values().map(|d| d.size()).sum();
        if inline > quotas.inline_policies_size_per_role {
            out.push(Violation {
                span: role.span.clone(),
                message: format!(
                    "the inline policies of role `{}` total {inline} characters (whitespace not counted); IAM allows {} per role",
                    role.name, quotas.inline_policies_size_per_role
                ),
                help: format!("move statements into managed policies; {}", raise(Quotas::INLINE_SIZE_KEY)),
            });
        }
        if too_many(role.tags.len()) {
            out.push(too_many_tags(&role.span, "role", &role.name, role.tags.len(), from_defaults, quotas));
        }
        // Most roles are far below the quota: a bound on the policy's size
        // from its parts settles them without generating it.
        if trust_size_bound(&clusters, desired.bindings_of(&role.name)) <= quotas.trust_policy_size {
            continue;
        }
        let statements = trust::role_statements(desired, &role.name, desired.account_id(), |k| issuers.get(k));
        if !statements.is_empty() {
            let subjects: Vec<String> = desired.bindings_of(&role.name).map(|b| b.subject()).collect();
            let clusters = statements.len();
            let size = trust::owned_trust_policy(statements).size();
            if size > quotas.trust_policy_size {
                let over = trust::subjects_that_fit(quotas.trust_policy_size, size, &subjects) + 1;
                let across =
                    if clusters > 1 { format!(" in {clusters} clusters, one statement each") } else { String::new() };
                out.push(Violation {
                    span: role.span.clone(),
                    message: format!(
                        "the trust policy generated for role `{}` ({} service accounts{across}) is {size} characters long; IAM allows {}",
                        role.name,
                        subjects.len(),
                        quotas.trust_policy_size
                    ),
                    help: format!(
                        "bind about {over} fewer service account{} to this role and give the others a role of their own; {}",
                        if over == 1 { "" } else { "s" },
                        raise(Quotas::TRUST_SIZE_KEY)
                    ),
                });
            }
        }
    }
    out
}

/// Characters of a generated trust policy besides its statements (`{"Statement":[`,
/// `],"Version":"2012-10-17"}`: 39), with room to spare.
const TRUST_DOCUMENT_BOUND: usize = 64;
/// Characters of one statement of [`trust::web_identity_statement`] besides
/// its sid, provider ARN, issuer (twice) and subjects, in canonical form:
/// its keys, `sts:AssumeRoleWithWebIdentity`, `Allow`, the audience,
/// quotes, brackets of lists, braces (about 200), with room to spare.
const TRUST_STATEMENT_BOUND: usize = 256;

/// The most characters `s` takes in JSON text, quotes aside: an escape is at
/// most six characters (`\u001f`) for one byte.
fn json_len_bound(s: &str) -> usize {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') { s.len() } else { 6 * s.len() }
}

/// Per cluster of the stack, by key: the bound on the characters of its
/// statement in a role's trust policy without the subjects, or `None` when
/// its issuer is unknown (the cluster gets no statement).
fn cluster_bounds<'d>(desired: &'d Desired, issuers: &Issuers) -> Vec<(Option<&'d str>, Option<usize>)> {
    let account = desired.account_id();
    desired
        .clusters
        .iter()
        .map(|cluster| {
            let key = cluster.key.as_deref();
            let bound = issuers.get(key).map(|issuer| {
                let provider = desired.oidc_provider_arn(account, issuer);
                let sid = trust::cluster_sid(&desired.stack.name, key);
                let host_path = json_len_bound(Desired::issuer_host_path(issuer)) + ":aud".len();
                TRUST_STATEMENT_BOUND + json_len_bound(&sid) + json_len_bound(&provider) + 2 * host_path
            });
            (key, bound)
        })
        .collect()
}

/// An upper bound on [`PolicyDocument::size`](super::policy_doc::PolicyDocument::size)
/// of the trust policy [`trust::owned_trust_policy`] makes of the statements
/// [`trust::role_statements`] makes for a role bound by `bindings`: each
/// string as long as it can be written, each subject with its quotes and comma,
/// every repeated subject counted. Zero when there would be no statement.
fn trust_size_bound<'b>(
    clusters: &[(Option<&str>, Option<usize>)],
    bindings: impl Iterator<Item = &'b Binding>,
) -> usize {
    const SUBJECT_PREFIX: usize = "system:serviceaccount:".len() + ":".len();
    // Per cluster (as in `clusters`): the subjects' characters, if any are bound there.
    let mut subjects: Vec<Option<usize>> = vec![None; clusters.len()];
    for b in bindings {
        let Some(i) = clusters.iter().position(|(k, _)| *k == b.cluster.as_deref()) else { continue };
        let len = SUBJECT_PREFIX + json_len_bound(&b.namespace) + json_len_bound(&b.name) + "\"\",".len();
        *subjects[i].get_or_insert(0) += len;
    }
    // Each statement with the comma after it.
    let total: usize =
        clusters.iter().zip(&subjects).filter_map(|((_, fixed), subjects)| Some((*fixed)? + (*subjects)? + 1)).sum();
    if total == 0 { 0 } else { TRUST_DOCUMENT_BOUND + total }
}

/// irsa's `irsa:managed-by` and `irsa:stack` tags, on every resource it owns.
const OWNERSHIP_TAGS: usize = 2;

/// `tags` counts the resource's tags of its own and from `[defaults]`
/// (`from_defaults` of them), not irsa's.
fn too_many_tags(span: &Span, what: &str, name: &str, tags: usize, from_defaults: usize, quotas: &Quotas) -> Violation {
    let count = tags + OWNERSHIP_TAGS;
    let share =
        if from_defaults > 0 { format!(", {from_defaults} of them from [defaults] tags") } else { String::new() };
    Violation {
        span: span.clone(),
        message: format!(
            "{what} `{name}` would carry {count} tags (irsa's {OWNERSHIP_TAGS} ownership tags included{share}); IAM allows {}",
            quotas.tags_per_resource
        ),
        help: format!(
            "use at most {} tags of your own, counting [defaults] tags",
            quotas.tags_per_resource - OWNERSHIP_TAGS
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The bound is never below the size of the policy it stands for, and
    /// not so far above it that it would not settle the usual role.
    #[test]
    fn the_trust_size_bound_is_at_least_the_generated_policys_size() {
        let mut text = String::from(
            "version = 1\n[stack]\nname = \"pay-ments\"\n\
             [clusters.blue]\nname = \"b\"\nregion = \"eu-west-1\"\naccount_id = \"456789012345\"\n\
             oidc_issuer = \"https://oidc.eks.eu-west-1.amazonaws.com/id/B10E0000000000000000000000000001\"\n\
             [clusters.green-2]\nname = \"g\"\nregion = \"eu-west-1\"\naccount_id = \"456789012345\"\n\
             oidc_issuer = \"https://oidc.eks.eu-west-1.amazonaws.com/id/6EE40000000000000000000000000002\"\n\
             [clusters.red]\nname = \"r\"\nregion = \"eu-west-1\"\naccount_id = \"456789012345\"\n\
             ",
        );
        for role in ["a", "b", "c"] {
            text += &format!("[roles.{role}]\n");
        }
        // `a` in one cluster, `b` in two, `c` in the one without an issuer.
        for (role, cluster, ns) in [("a", "blue", "x"), ("b", "blue", "y"), ("b", "green-2", "y"), ("c", "red", "z")] {
            text += &format!(
                "[[service_accounts]]\ncluster = \"{cluster}\"\nnamespace = \"{ns}\"\nname = \"sa\"\nrole = \"{role}\"\n"
            );
        }
        let mut desired = crate::config::parse(Path::new("s.toml"), text).unwrap();
        let issuers = Issuers::declared(&desired);
        let check = |desired: &Desired| {
            let clusters = cluster_bounds(desired, &issuers);
            // `lone`: no role, so no bindings.
            for role in ["lone", "a", "b", "c"] {
                let bindings: Vec<&Binding> = desired.bindings_of(role).collect();
                let bound = trust_size_bound(&clusters, bindings.iter().copied());
                let statements = trust::role_statements(desired, role, desired.account_id(), |k| issuers.get(k));
                if statements.is_empty() {
                    assert_eq!(bound, 0, "{role}");
                    continue;
                }
                let (count, size) = (statements.len(), trust::owned_trust_policy(statements).size());
                assert!(bound >= size, "{role}: bound {bound} < size {size}");
                // Repeated subjects are in the bound, not in the policy.
                let mut seen = std::collections::HashSet::new();
                let repeated: usize = bindings
                    .iter()
                    .filter(|b| !seen.insert((&b.cluster, b.subject())))
                    .map(|b| b.subject().len() + 3)
                    .sum();
                let slack = 64 + 128 * count + repeated;
                assert!(bound <= size + slack, "{role}: bound {bound} for size {size}");
            }
        };
        check(&desired);
        // More subjects, up to well past the quota, a repeated one among them
        // (counted twice by the bound, once in the policy).
        let template = desired.bindings[1].clone();
        for i in 0..80 {
            let mut more = template.clone();
            (more.namespace, more.name) = (format!("team-{i}"), "service-account-with-a-long-name".into());
            more.cluster = Some(if i % 3 == 0 { "green-2" } else { "blue" }.into());
            desired.bindings.push(more);
            if i % 10 == 0 {
                desired.bindings.push(desired.bindings.last().unwrap().clone());
            }
            check(&desired);
        }
    }

    #[test]
    fn a_string_with_escapes_is_bounded_by_six_characters_a_byte() {
        for s in ["plain", "é", "a\"b", "back\\slash", "tab\there", "\u{1f}"] {
            let written = serde_json::to_string(s).unwrap().len() - 2;
            assert!(json_len_bound(s) >= written, "{s:?}");
        }
        assert_eq!(json_len_bound("system:serviceaccount:ns:sa"), 27);
    }
}
