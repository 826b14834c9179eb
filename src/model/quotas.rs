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

use super::desired::{Desired, Issuers, Role, Span};
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
