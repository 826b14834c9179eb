//! The desired model: what the stack file asks for, validated.
//!
//! Built only by [`crate::config::load`]; every value here has already passed
//! the naming, reference and quota rules. Spans point back into the stack file
//! so that problems found later (at plan time) can still show where they come from.

use std::collections::BTreeMap;

use serde_json::Value;

use foldhash::{HashMap, HashMapExt};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use super::policy_doc::PolicyDocument;

/// The tag and label values that mark what irsa owns.
pub mod markers {
    /// IAM tag key: present on everything irsa created.
    pub const TAG_MANAGED_BY: &str = "irsa:managed-by";
    /// IAM tag key: the stack that owns the resource (its `[stack] name`, or
    /// for a file without one its cluster's name).
    pub const TAG_STACK: &str = "irsa:stack";
    /// Value of [`TAG_MANAGED_BY`] and [`LABEL_MANAGED_BY`].
    pub const MANAGED_BY: &str = "irsa";
    /// Kubernetes label key, the well-known one Helm and others use too.
    pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// Kubernetes annotation naming the owning stack.
    pub const ANNOTATION_STACK: &str = "irsa.dev/stack";
    /// The annotation the EKS pod identity webhook reads.
    pub const ANNOTATION_ROLE_ARN: &str = "eks.amazonaws.com/role-arn";
    /// The pod-template annotation `kubectl rollout restart` sets.
    pub const ANNOTATION_RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
    /// The audience IRSA tokens carry.
    pub const STS_AUDIENCE: &str = "sts.amazonaws.com";
}

/// The stack file's text, kept so that later errors can quote it.
#[derive(Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    /// Shared with the loader's diagnostics: a large stack file is held once.
    pub text: Arc<String>,
}

/// Byte range of an entry in the stack file.
pub type Span = Range<usize>;

#[derive(Debug, Clone)]
pub struct Desired {
    pub source: Arc<SourceFile>,
    /// The stack's identity: its markers, its lock, its trust statements.
    pub stack: Stack,
    /// The clusters the stack's ServiceAccounts live in, in key order: one
    /// for a `[cluster]` file (its key `None`), or each `[clusters.<key>]`.
    /// All are in one AWS account and partition (the loader checks).
    pub clusters: Vec<Cluster>,
    pub policies: BTreeMap<String, Policy>,
    pub roles: BTreeMap<String, Role>,
    pub bindings: Vec<Binding>,
    /// `[defaults] tags`, already merged into every policy's and owned
    /// role's tags; kept so that a quota they break alone is reported once,
    /// at the table, where the fix is.
    pub default_tags: DefaultTags,
    /// [`Desired::bindings_of`]'s index, built on first use.
    pub bindings_by_role: BindingIndex,
    /// The quotas and issuer the loader checked the stack against, when it
    /// passed: a plan under the same ones need not check again (that check
    /// generates every role's trust policy to measure it).
    pub quotas_passed: Option<(super::quotas::Quotas, Issuers)>,
}

/// Each cluster's OIDC issuer (`https://…`, no trailing `/`), by cluster key,
/// in cluster order: what trust statements are generated from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Issuers(pub Vec<(Option<String>, String)>);

impl Issuers {
    /// The issuer of the cluster of key `key`, when known.
    pub fn get(&self, key: Option<&str>) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.as_deref() == key).map(|(_, i)| i.as_str())
    }

    /// The issuers the stack file itself sets (clusters without one are left out).
    pub fn declared(desired: &Desired) -> Issuers {
        Issuers(
            desired
                .clusters
                .iter()
                .filter_map(|c| Some((c.key.clone(), c.oidc_issuer.as_deref()?.trim_end_matches('/').to_owned())))
                .collect(),
        )
    }
}

/// The tags every policy and owned role gets from `[defaults] tags`.
#[derive(Debug, Clone, Default)]
pub struct DefaultTags {
    /// The tag keys given there (each resource carries every one of them,
    /// with its own value where it sets the key itself).
    pub keys: Vec<String>,
    /// The `tags` key in `[defaults]`, when the file has one.
    pub span: Option<Span>,
}

/// The positions in [`Desired::bindings`] of each role's bindings, in file
/// order, built once on first use: the planner and the quota check ask for
/// every role's bindings, and filtering all bindings per role was quadratic.
///
/// Built from the bindings as they are when first asked; a `Desired` whose
/// bindings change afterwards (nothing does that: the loader builds it whole)
/// falls back to filtering, see [`Desired::bindings_of`].
#[derive(Debug, Clone, Default)]
pub struct BindingIndex {
    cell: OnceLock<(usize, HashMap<String, Vec<usize>>)>,
}

impl BindingIndex {
    fn get(&self, bindings: &[Binding]) -> &(usize, HashMap<String, Vec<usize>>) {
        self.cell.get_or_init(|| {
            let mut by_role: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, b) in bindings.iter().enumerate() {
                by_role.entry(b.role.clone()).or_default().push(i);
            }
            (bindings.len(), by_role)
        })
    }
}

/// Who a stack is. Several stack files (one per team) may manage one
/// cluster; each touches only what carries its own name.
#[derive(Debug, Clone)]
pub struct Stack {
    /// `[stack] name`, else the cluster's name: stacks made before stacks had
    /// names of their own were tagged with it, and keep meaning it.
    pub name: String,
    /// Whether the file says `[stack] name` (false: the cluster's name stands in).
    pub explicit: bool,
    /// `--rename-from OLD`: what carries stack OLD's markers is this stack's,
    /// and is planned to carry this stack's markers instead. Set by the
    /// command line, never by the file: a rename is asked for once.
    pub renamed_from: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    /// The `<key>` of `[clusters.<key>]`, which bindings name and addresses
    /// carry (`sa/<key>/…`); `None` for the one-cluster `[cluster]` form,
    /// whose addresses name no cluster.
    pub key: Option<String>,
    /// The EKS cluster; names the OIDC provider's address in the one-cluster
    /// form. The stack's own name is [`Stack::name`].
    pub name: String,
    pub region: String,
    pub account_id: String,
    /// `aws`, `aws-cn` or `aws-us-gov`, from the region.
    pub partition: String,
    /// `https://…`; `None` means "discover it from the cluster".
    pub oidc_issuer: Option<String>,
    pub oidc_issuer_span: Option<Span>,
    pub context: Option<String>,
    pub oidc_thumbprints: Vec<String>,
    pub span: Span,
}

impl Cluster {
    /// What the cluster's OIDC provider address names: the key in a stack
    /// of several clusters, the EKS cluster's name in a `[cluster]` file.
    pub fn address_name(&self) -> &str {
        self.key.as_deref().unwrap_or(&self.name)
    }

    /// The table that declares the cluster, for messages.
    pub fn table(&self) -> String {
        match &self.key {
            Some(k) => format!("[clusters.{k}]"),
            None => "[cluster]".into(),
        }
    }
}

/// A customer-managed policy the stack owns.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub path: String,
    pub description: Option<String>,
    pub document: PolicyDocument,
    /// User tags: `[defaults] tags` merged with the policy's own.
    pub tags: BTreeMap<String, String>,
    pub adopt: bool,
    /// Where the entry is written: its `[policies.<name>]` key, or for a
    /// preset's policy the `"preset:…"` string in its role's list.
    pub span: Span,
    /// The preset the policy was made from, for a `preset:` entry.
    pub preset: Option<PresetOrigin>,
}

/// Which preset (and which of irsa's versions of it) made a policy, and for
/// which role: said in plan reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresetOrigin {
    pub preset: &'static str,
    pub version: u32,
    pub role: String,
}

#[derive(Debug, Clone)]
pub enum Role {
    Owned(OwnedRole),
    Referenced(ReferencedRole),
}

impl Role {
    pub fn span(&self) -> &Span {
        match self {
            Role::Owned(r) => &r.span,
            Role::Referenced(r) => &r.span,
        }
    }
}

/// A managed policy a role uses: one of the stack's, or any policy by ARN.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PolicyRef {
    Stack(String),
    Arn(String),
}

impl PolicyRef {
    /// The name used in the attachment's address.
    pub fn address_name(&self) -> &str {
        match self {
            PolicyRef::Stack(name) | PolicyRef::Arn(name) => name,
        }
    }
}

/// A role irsa creates and owns.
#[derive(Debug, Clone)]
pub struct OwnedRole {
    pub name: String,
    pub path: String,
    pub description: Option<String>,
    pub max_session_duration: u32,
    pub permissions_boundary: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub policies: Vec<PolicyRef>,
    pub inline: BTreeMap<String, PolicyDocument>,
    pub adopt: bool,
    pub span: Span,
}

/// A role that exists already and that irsa does not own.
#[derive(Debug, Clone)]
pub struct ReferencedRole {
    /// The key in the stack file (`[roles.<key>]`), used in addresses.
    pub key: String,
    pub arn: String,
    /// The role's own name, from the ARN.
    pub name: String,
    /// Add and keep irsa's trust statement (true), or only verify (false).
    pub manage_trust: bool,
    pub span: Span,
}

/// One `[[service_accounts]]` entry.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The key of the cluster the ServiceAccount is in (`None`: the file's
    /// one `[cluster]`), as [`Cluster::key`].
    pub cluster: Option<String>,
    pub namespace: String,
    pub name: String,
    /// Key of the role in `[roles]`.
    pub role: String,
    /// Names of the Deployments that run as this service account.
    pub deployments: Vec<String>,
    /// Extra annotations besides the role ARN.
    pub annotations: BTreeMap<String, String>,
    pub adopt: bool,
    pub span: Span,
}

/// Default maximum session duration of a role, as IAM's own default.
pub const DEFAULT_MAX_SESSION: u32 = 3600;

impl Desired {
    /// The issuer without `https://`, as IAM names the provider and its condition keys.
    pub fn issuer_host_path(issuer: &str) -> &str {
        issuer.strip_prefix("https://").unwrap_or(issuer)
    }

    /// The AWS account every cluster of the stack names (the loader checks they agree).
    pub fn account_id(&self) -> &str {
        &self.clusters[0].account_id
    }

    /// The partition of the stack's region(s): `aws`, `aws-cn` or `aws-us-gov`.
    pub fn partition(&self) -> &str {
        &self.clusters[0].partition
    }

    /// Whether the file has `[clusters.<key>]` tables (addresses then name the cluster).
    pub fn multi_cluster(&self) -> bool {
        self.clusters[0].key.is_some()
    }

    /// The cluster of key `key` (as a binding or an address names it).
    pub fn cluster(&self, key: Option<&str>) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.key.as_deref() == key)
    }

    /// The ARN IAM gives the cluster's OIDC provider in `account`.
    pub fn oidc_provider_arn(&self, account: &str, issuer: &str) -> String {
        // `concat`, not `format!`: ARNs are built several times per binding.
        ["arn:", self.partition(), ":iam::", account, ":oidc-provider/", Self::issuer_host_path(issuer)].concat()
    }

    /// The ARN of an owned role.
    pub fn role_arn(&self, role: &OwnedRole) -> String {
        ["arn:", self.partition(), ":iam::", self.account_id(), ":role", &role.path, &role.name].concat()
    }

    /// The ARN of a stack policy.
    pub fn policy_arn(&self, policy: &Policy) -> String {
        ["arn:", self.partition(), ":iam::", self.account_id(), ":policy", &policy.path, &policy.name].concat()
    }

    /// The ARN a policy reference resolves to.
    pub fn policy_ref_arn(&self, policy: &PolicyRef) -> String {
        match policy {
            PolicyRef::Arn(arn) => arn.clone(),
            PolicyRef::Stack(name) => self.policy_arn(&self.policies[name]),
        }
    }

    /// The ARN of whatever role a binding names.
    pub fn binding_role_arn(&self, binding: &Binding) -> String {
        match &self.roles[&binding.role] {
            Role::Owned(r) => self.role_arn(r),
            Role::Referenced(r) => r.arn.clone(),
        }
    }

    /// The bindings that use a role, in file order.
    pub fn bindings_of<'a>(&'a self, role: &'a str) -> impl Iterator<Item = &'a Binding> + 'a {
        let (len, by_role) = self.bindings_by_role.get(&self.bindings);
        // A stale index (bindings pushed after the first call) is not
        // trusted: filter as before, slowly but correctly.
        let (indexed, scanned) = if *len == self.bindings.len() {
            (Some(by_role.get(role).map_or(&[][..], Vec::as_slice).iter().map(|i| &self.bindings[*i])), None)
        } else {
            (None, Some(self.bindings.iter().filter(move |b| b.role == role)))
        };
        indexed.into_iter().flatten().chain(scanned.into_iter().flatten())
    }

    /// irsa's two ownership tags for this stack.
    pub fn ownership_tags(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (markers::TAG_MANAGED_BY.to_owned(), markers::MANAGED_BY.to_owned()),
            (markers::TAG_STACK.to_owned(), self.stack.name.clone()),
        ])
    }
}

impl Desired {
    /// A hash of everything the stack file asks for, policy documents
    /// included (by meaning, so reformatting a document changes nothing).
    pub fn fingerprint(&self) -> String {
        use serde_json::json;
        let roles: BTreeMap<&String, serde_json::Value> = self
            .roles
            .iter()
            .map(|(k, r)| {
                let v = match r {
                    Role::Owned(r) => json!({
                        "name": r.name, "path": r.path, "description": r.description,
                        "max_session_duration": r.max_session_duration, "permissions_boundary": r.permissions_boundary,
                        "tags": r.tags, "adopt": r.adopt,
                        "policies": r.policies.iter().map(PolicyRef::address_name).collect::<Vec<_>>(),
                        "inline": r.inline,
                    }),
                    Role::Referenced(r) => json!({ "arn": r.arn, "manage_trust": r.manage_trust }),
                };
                (k, v)
            })
            .collect();
        let cluster = |c: &Cluster| {
            json!({
                "name": c.name, "region": c.region, "account_id": c.account_id,
                "oidc_issuer": c.oidc_issuer, "context": c.context,
                "oidc_thumbprints": c.oidc_thumbprints,
            })
        };
        let mut model = json!({
            "stack": self.stack.name, "renamed_from": self.stack.renamed_from,
            "policies": self.policies.values().map(|p| json!({
                "name": p.name, "path": p.path, "description": p.description, "document": p.document,
                "tags": p.tags, "adopt": p.adopt,
            })).collect::<Vec<_>>(),
            "roles": roles,
            "bindings": self.bindings.iter().map(|b| {
                let mut v = json!({
                    "namespace": b.namespace, "name": b.name, "role": b.role, "deployments": b.deployments,
                    "annotations": b.annotations, "adopt": b.adopt,
                });
                if let Some(c) = &b.cluster {
                    v["cluster"] = json!(c);
                }
                v
            }).collect::<Vec<_>>(),
        });
        // A `[cluster]` file hashes as it did before stacks had several clusters.
        if self.multi_cluster() {
            let clusters: BTreeMap<&str, Value> =
                self.clusters.iter().map(|c| (c.address_name(), cluster(c))).collect();
            model["clusters"] = json!(clusters);
        } else {
            model["cluster"] = cluster(&self.clusters[0]);
        }
        super::sha256_hex(model.to_string().as_bytes())
    }

    /// What is left of the stack when it is destroyed: nothing it owns. Roles
    /// referenced by ARN stay, bound to nothing, so that irsa takes its own
    /// trust statement out of those it manages and leaves the rest alone.
    pub fn for_destroy(&self) -> Desired {
        Desired {
            source: self.source.clone(),
            stack: self.stack.clone(),
            clusters: self.clusters.clone(),
            policies: BTreeMap::new(),
            roles: self
                .roles
                .iter()
                .filter(|(_, r)| matches!(r, Role::Referenced(_)))
                .map(|(k, r)| (k.clone(), r.clone()))
                .collect(),
            bindings: Vec::new(),
            default_tags: self.default_tags.clone(),
            bindings_by_role: BindingIndex::default(),
            quotas_passed: None,
        }
    }
}

/// Where the stack file declares what an address is about, for messages
/// found at plan time (warnings carry only an address): the policy, the role
/// (also for its attachments and inline policies), the binding (also for the
/// Deployments it lists), the `[cluster]` table for the OIDC provider.
/// Indexed once: a plan against an empty cluster warns about every
/// Deployment, and a scan of all bindings per warning was quadratic.
pub struct Locator<'d> {
    desired: &'d Desired,
    bindings: HashMap<(Option<&'d str>, &'d str, &'d str), &'d Span>,
    deployments: HashMap<(Option<&'d str>, &'d str, &'d str), &'d Span>,
}

impl<'d> Locator<'d> {
    pub fn new(desired: &'d Desired) -> Self {
        let mut bindings = HashMap::new();
        let mut deployments = HashMap::new();
        for b in &desired.bindings {
            let cluster = b.cluster.as_deref();
            bindings.insert((cluster, b.namespace.as_str(), b.name.as_str()), &b.span);
            for d in &b.deployments {
                deployments.insert((cluster, b.namespace.as_str(), d.as_str()), &b.span);
            }
        }
        Locator { desired, bindings, deployments }
    }

    /// `None` for what the file does not declare (an orphan, say).
    pub fn span_of(&self, address: &super::address::Address) -> Option<&'d Span> {
        use super::address::Address as A;
        let d = self.desired;
        match address {
            // `oidc/<cluster>`, or `oidc/<cluster>@<old issuer>` and a multi-cluster
            // stack's `oidc/<issuer>` of a cluster no longer in the file.
            A::Oidc { cluster } => {
                d.clusters.iter().find(|c| c.address_name() == cluster).or(d.clusters.first()).map(|c| &c.span)
            }
            A::Policy { name } => d.policies.get(name).map(|p| &p.span),
            A::Role { name } | A::Attach { role: name, .. } | A::Inline { role: name, .. } => {
                d.roles.get(name).map(Role::span)
            }
            A::ServiceAccount { cluster, namespace, name } => {
                self.bindings.get(&(cluster.as_deref(), namespace.as_str(), name.as_str())).copied()
            }
            A::Deployment { cluster, namespace, name } => {
                self.deployments.get(&(cluster.as_deref(), namespace.as_str(), name.as_str())).copied()
            }
        }
    }
}

impl Binding {
    /// The web identity subject the pods of this service account present.
    pub fn subject(&self) -> String {
        ["system:serviceaccount:", &self.namespace, ":", &self.name].concat()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn bindings_of_lists_a_roles_bindings_in_file_order() {
        let text = r#"version = 1
[cluster]
name = "c"
region = "us-east-1"
account_id = "123456789012"
[roles.a]
[roles.b]
[[service_accounts]]
namespace = "ns"
name = "z"
role = "a"
[[service_accounts]]
namespace = "ns"
name = "y"
role = "b"
[[service_accounts]]
namespace = "ns"
name = "x"
role = "a"
"#;
        let mut d = crate::config::parse(Path::new("s.toml"), text.into()).unwrap();
        let names = |d: &Desired, role: &str| d.bindings_of(role).map(|b| b.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&d, "a"), ["z", "x"]);
        assert_eq!(names(&d, "b"), ["y"]);
        assert!(names(&d, "nobody").is_empty());
        // A binding added after the index was built is still found.
        let mut extra = d.bindings[1].clone();
        extra.name = "w".into();
        d.bindings.push(extra);
        assert_eq!(names(&d, "b"), ["y", "w"]);
    }

    #[test]
    fn the_locator_finds_where_the_file_declares_an_address() {
        use crate::model::address::Address;
        let text = r#"version = 1
[cluster]
name = "c"
region = "us-east-1"
account_id = "123456789012"
[roles.a]
policies = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
[[service_accounts]]
namespace = "ns"
name = "z"
role = "a"
workloads = ["deployment/web"]
"#;
        let d = crate::config::parse(Path::new("s.toml"), text.into()).unwrap();
        let locator = Locator::new(&d);
        let at = |a: Address| locator.span_of(&a).map(|s| &text[s.clone()]);
        assert_eq!(at(Address::role("a")), Some("a"));
        assert_eq!(at(Address::attach("a", "arn:aws:iam::aws:policy/ReadOnlyAccess")), Some("a"));
        assert_eq!(at(Address::service_account(None, "ns", "z")), Some("\"z\""));
        assert_eq!(at(Address::deployment(None, "ns", "web")), Some("\"z\""));
        assert_eq!(at(Address::Oidc { cluster: "c".into() }), Some("cluster"));
        assert_eq!(at(Address::deployment(None, "other", "web")), None);
        assert_eq!(at(Address::deployment(Some("c"), "ns", "web")), None);
        assert_eq!(at(Address::Policy { name: "gone".into() }), None);
    }
}
