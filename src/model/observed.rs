//! The observed model: what exists in IAM and in the cluster.
//!
//! Live refresh fills it, and so does a snapshot file (`irsa refresh --export`,
//! `irsa plan --observed`): this type *is* the snapshot format, documented in
//! `docs/snapshot.md`. Everything the planner needs to decide must be here, so
//! that a plan from a snapshot equals a plan from a live refresh.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt, HashSet};
use std::ops::Deref;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::policy_doc::PolicyDocument;
use super::quotas::Quotas;
use super::strmap::StrMap;

/// The snapshot format's version; readers refuse newer ones.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observed {
    pub format_version: u32,
    /// When the state was read (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<Timestamp>,
    /// How the state was read: the refresh strategy and its request counts.
    #[serde(default)]
    pub refresh: RefreshStats,
    pub iam: ObservedIam,
    /// The cluster of a `[cluster]` stack file. (Empty for a stack of
    /// several clusters, whose state is in `clusters`.)
    #[serde(default)]
    pub cluster: ObservedCluster,
    /// Each cluster of a stack file with `[clusters.<key>]` tables, by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clusters: BTreeMap<String, ObservedCluster>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshStats {
    /// `bulk`, `per-resource` or `snapshot`.
    #[serde(default)]
    pub strategy: String,
    #[serde(default)]
    pub iam_calls: u64,
    #[serde(default)]
    pub kube_requests: u64,
}

/// The account's IAM state. Roles and policies are *all* those the refresh
/// could see, so a name missing here does not exist.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedIam {
    #[serde(default)]
    pub oidc_providers: Vec<OidcProvider>,
    #[serde(default)]
    pub roles: Vec<ObservedRole>,
    #[serde(default)]
    pub policies: Vec<ObservedPolicy>,
    /// Live quotas (`GetAccountSummary`); the defaults apply when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<Quotas>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    pub arn: String,
    /// The issuer without `https://`, as IAM reports it.
    pub url: String,
    #[serde(default)]
    pub client_ids: Vec<String>,
    #[serde(default)]
    pub thumbprints: Vec<String>,
    #[serde(default)]
    pub tags: StrMap,
    /// Names of the roles in the account whose trust policy names this
    /// provider (any stack's, or no stack's), sorted: a provider is shared
    /// by every stack of its cluster, and none deletes it while another's
    /// roles still trust it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_by: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedRole {
    pub name: String,
    #[serde(default = "root_path")]
    pub path: String,
    pub arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "default_max_session")]
    pub max_session_duration: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<String>,
    pub trust_policy: PolicyDocument,
    #[serde(default)]
    pub tags: StrMap,
    /// ARNs of the attached managed policies.
    #[serde(default)]
    pub attached_policies: Vec<String>,
    #[serde(default)]
    pub inline_policies: BTreeMap<String, PolicyDocument>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedPolicy {
    pub name: String,
    #[serde(default = "root_path")]
    pub path: String,
    pub arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The default version's document.
    pub document: PolicyDocument,
    #[serde(default = "default_version")]
    pub default_version_id: String,
    /// How many versions exist (IAM keeps at most five).
    #[serde(default = "one")]
    pub version_count: u32,
    #[serde(default)]
    pub tags: StrMap,
}

/// The cluster's state, for the namespaces the stack names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedCluster {
    /// What the cluster's `/.well-known/openid-configuration` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_issuer: Option<String>,
    /// The namespaces that exist, of those the stack names.
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub service_accounts: Vec<ObservedServiceAccount>,
    #[serde(default)]
    pub deployments: Vec<ObservedDeployment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedServiceAccount {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub resource_version: String,
    #[serde(default)]
    pub annotations: StrMap,
    #[serde(default)]
    pub labels: StrMap,
    /// When the `eks.amazonaws.com/role-arn` annotation got its current value
    /// (from `managedFields`); pods older than this hold stale credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn_set_at: Option<Timestamp>,
    /// The annotations irsa's field manager wrote (from `managedFields`):
    /// one the stack file no longer names is removed, any other is left.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub irsa_annotations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedDeployment {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub resource_version: String,
    /// `spec.template.spec.serviceAccountName`; Kubernetes uses `default` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// The pod template's `kubectl.kubernetes.io/restartedAt` annotation: a
    /// restart writes it, and is guarded by the value it read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<String>,
    /// Where the Deployment's rollout stands; absent in snapshots made
    /// before irsa read it, and before the controller first reported.
    #[serde(default, skip_serializing_if = "Rollout::is_unknown")]
    pub rollout: Rollout,
    /// The running pods, found through the Deployment's selector.
    #[serde(default)]
    pub pods: Vec<ObservedPod>,
}

/// A Deployment's rollout, from `metadata.generation`, `spec.replicas` and
/// what the Deployment controller reports in `status`. Every field is
/// optional: a Deployment the controller has not seen yet has no status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// `metadata.generation`: moves with every change of the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// `status.observedGeneration`: the generation the controller acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `spec.replicas` (Kubernetes defaults it to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// `status.replicas`: pods of every ReplicaSet of the Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_replicas: Option<i32>,
    /// `status.updatedReplicas`: pods of the current template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
}

impl Rollout {
    pub fn is_unknown(&self) -> bool {
        *self == Rollout::default()
    }

    /// Why the rollout is under way, or `None` when it has settled (or
    /// nothing says otherwise). Pods are being replaced then: those of the
    /// old ReplicaSets are on their way out, so they are not stale, and a
    /// restart now would only start the rollout over.
    pub fn under_way(&self) -> Option<String> {
        if let (Some(generation), Some(observed)) = (self.generation, self.observed_generation)
            && observed < generation
        {
            return Some(format!("the controller has not acted on generation {generation} yet (it saw {observed})"));
        }
        // The controller leaves out counts that are zero (`omitempty`):
        // once it has reported at all, a missing count is 0.
        let reported =
            self.observed_generation.is_some() || self.status_replicas.is_some() || self.updated_replicas.is_some();
        if !reported {
            return None;
        }
        let (total, updated) = (self.status_replicas.unwrap_or(0), self.updated_replicas.unwrap_or(0));
        if let Some(wanted) = self.replicas
            && updated < wanted
        {
            return Some(format!("{updated} of {wanted} pods run the current template"));
        }
        if total > updated {
            let old = total - updated;
            return Some(format!(
                "{old} pod{} of an older template still run{}",
                if old == 1 { "" } else { "s" },
                if old == 1 { "s" } else { "" }
            ));
        }
        None
    }
}

impl ObservedDeployment {
    pub fn effective_service_account(&self) -> &str {
        self.service_account_name.as_deref().unwrap_or("default")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedPod {
    pub name: String,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// The credentials environment the pod identity webhook injected, per container.
    #[serde(default)]
    pub containers: Vec<ObservedContainer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedContainer {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_web_identity_token_file: Option<String>,
}

fn root_path() -> String {
    "/".into()
}
fn default_max_session() -> u32 {
    3600
}
fn default_version() -> String {
    "v1".into()
}
fn one() -> u32 {
    1
}

impl Observed {
    /// The state of the cluster of key `key` (`None`: the `[cluster]` one).
    pub fn cluster_state(&self, key: Option<&str>) -> Option<&ObservedCluster> {
        match key {
            None => Some(&self.cluster),
            Some(k) => self.clusters.get(k),
        }
    }

    /// Every cluster's state with its key: the `[cluster]` one (`None`),
    /// then those of `[clusters.<key>]`.
    pub fn cluster_states(&self) -> impl Iterator<Item = (Option<&str>, &ObservedCluster)> {
        std::iter::once((None, &self.cluster)).chain(self.clusters.iter().map(|(k, c)| (Some(k.as_str()), c)))
    }

    /// How many ServiceAccounts and Deployments were read, in every cluster.
    pub fn cluster_counts(&self) -> (usize, usize) {
        self.cluster_states().fold((0, 0), |(s, d), (_, c)| (s + c.service_accounts.len(), d + c.deployments.len()))
    }

    pub fn role(&self, name: &str) -> Option<&ObservedRole> {
        // IAM role names are unique case-insensitively.
        self.iam.roles.iter().find(|r| r.name.eq_ignore_ascii_case(name))
    }
    pub fn role_by_arn(&self, arn: &str) -> Option<&ObservedRole> {
        self.iam.roles.iter().find(|r| r.arn == arn)
    }
    pub fn policy(&self, name: &str) -> Option<&ObservedPolicy> {
        self.iam.policies.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }
    pub fn oidc_provider(&self, issuer_host_path: &str) -> Option<&OidcProvider> {
        self.iam.oidc_providers.iter().find(|p| p.url == issuer_host_path)
    }
    pub fn service_account(
        &self,
        cluster: Option<&str>,
        namespace: &str,
        name: &str,
    ) -> Option<&ObservedServiceAccount> {
        self.cluster_state(cluster)?.service_accounts.iter().find(|s| s.namespace == namespace && s.name == name)
    }
    pub fn deployment(&self, cluster: Option<&str>, namespace: &str, name: &str) -> Option<&ObservedDeployment> {
        self.cluster_state(cluster)?.deployments.iter().find(|d| d.namespace == namespace && d.name == name)
    }
    pub fn has_namespace(&self, cluster: Option<&str>, namespace: &str) -> bool {
        self.cluster_state(cluster).is_some_and(|c| c.namespaces.iter().any(|n| n == namespace))
    }

    /// The same lookups by index, for a caller that makes one per resource
    /// (the planner): built in one pass, then each lookup is a hash probe.
    pub fn index(&self) -> ObservedIndex<'_> {
        ObservedIndex::new(self)
    }
}

/// An [`Observed`] with maps over its lists, borrowed for as long as one
/// plan is made. The lookups have the names, signatures and answers of
/// [`Observed`]'s own (which scan a list per call: the planner made one per
/// role, policy, ServiceAccount and Deployment, so planning was quadratic);
/// everything else is reached through `Deref`. A map keeps the first entry
/// of a key, as the scans find the first.
///
/// Holding a borrow, the index cannot outlive a change of what it indexes.
pub struct ObservedIndex<'a> {
    o: &'a Observed,
    /// Lower-cased role name (IAM names are unique ignoring case).
    roles: HashMap<String, usize>,
    roles_by_arn: HashMap<&'a str, usize>,
    /// Lower-cased policy name.
    policies: HashMap<String, usize>,
    /// Keyed by (cluster key, namespace, name): [`Observed::cluster_states`]'
    /// clusters, each one's lists.
    service_accounts: HashMap<ObjectKey<'a>, &'a ObservedServiceAccount>,
    deployments: HashMap<ObjectKey<'a>, &'a ObservedDeployment>,
    namespaces: HashSet<(Option<&'a str>, &'a str)>,
    /// The Deployments running as (cluster, namespace, ServiceAccount), in list order.
    deployments_by_service_account: HashMap<ObjectKey<'a>, Vec<&'a ObservedDeployment>>,
    /// Positions of the roles that attach a policy ARN, in list order, each role once.
    roles_attaching: HashMap<&'a str, Vec<usize>>,
    /// Positions of the policies with an ARN, in list order.
    policies_by_arn: HashMap<&'a str, Vec<usize>>,
}

impl Deref for ObservedIndex<'_> {
    type Target = Observed;
    fn deref(&self) -> &Observed {
        self.o
    }
}

/// A cluster object's key in the index: (cluster key, namespace, name).
type ObjectKey<'a> = (Option<&'a str>, &'a str, &'a str);

/// Insert `key` unless present: the first of equal keys wins.
fn first<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K, i: usize) {
    map.entry(key).or_insert(i);
}

impl<'a> ObservedIndex<'a> {
    pub fn new(o: &'a Observed) -> Self {
        let mut ix = ObservedIndex {
            o,
            roles: HashMap::with_capacity(o.iam.roles.len()),
            roles_by_arn: HashMap::with_capacity(o.iam.roles.len()),
            policies: HashMap::with_capacity(o.iam.policies.len()),
            service_accounts: HashMap::with_capacity(o.cluster.service_accounts.len()),
            deployments: HashMap::with_capacity(o.cluster.deployments.len()),
            namespaces: HashSet::default(),
            deployments_by_service_account: HashMap::new(),
            roles_attaching: HashMap::new(),
            policies_by_arn: HashMap::new(),
        };
        for (i, r) in o.iam.roles.iter().enumerate() {
            first(&mut ix.roles, r.name.to_ascii_lowercase(), i);
            first(&mut ix.roles_by_arn, r.arn.as_str(), i);
            for arn in &r.attached_policies {
                let roles = ix.roles_attaching.entry(arn.as_str()).or_default();
                if roles.last() != Some(&i) {
                    roles.push(i);
                }
            }
        }
        for (i, p) in o.iam.policies.iter().enumerate() {
            first(&mut ix.policies, p.name.to_ascii_lowercase(), i);
            ix.policies_by_arn.entry(p.arn.as_str()).or_default().push(i);
        }
        for (cluster, c) in o.cluster_states() {
            ix.namespaces.extend(c.namespaces.iter().map(|n| (cluster, n.as_str())));
            for s in &c.service_accounts {
                ix.service_accounts.entry((cluster, s.namespace.as_str(), s.name.as_str())).or_insert(s);
            }
            for d in &c.deployments {
                ix.deployments.entry((cluster, d.namespace.as_str(), d.name.as_str())).or_insert(d);
                let key = (cluster, d.namespace.as_str(), d.effective_service_account());
                ix.deployments_by_service_account.entry(key).or_default().push(d);
            }
        }
        ix
    }

    pub fn role(&self, name: &str) -> Option<&'a ObservedRole> {
        self.roles.get(&name.to_ascii_lowercase()).map(|i| &self.o.iam.roles[*i])
    }
    pub fn role_by_arn(&self, arn: &str) -> Option<&'a ObservedRole> {
        self.roles_by_arn.get(arn).map(|i| &self.o.iam.roles[*i])
    }
    pub fn policy(&self, name: &str) -> Option<&'a ObservedPolicy> {
        self.policies.get(&name.to_ascii_lowercase()).map(|i| &self.o.iam.policies[*i])
    }
    pub fn service_account(
        &self,
        cluster: Option<&str>,
        namespace: &str,
        name: &str,
    ) -> Option<&'a ObservedServiceAccount> {
        self.service_accounts.get(&(cluster, namespace, name)).copied()
    }
    pub fn deployment(&self, cluster: Option<&str>, namespace: &str, name: &str) -> Option<&'a ObservedDeployment> {
        self.deployments.get(&(cluster, namespace, name)).copied()
    }
    pub fn has_namespace(&self, cluster: Option<&str>, namespace: &str) -> bool {
        self.namespaces.contains(&(cluster, namespace))
    }

    /// The Deployments of `namespace` in `cluster` whose pods run as
    /// `service_account`, in list order.
    pub fn deployments_running_as(
        &self,
        cluster: Option<&str>,
        namespace: &str,
        service_account: &str,
    ) -> Vec<&'a ObservedDeployment> {
        self.deployments_by_service_account.get(&(cluster, namespace, service_account)).cloned().unwrap_or_default()
    }

    /// The roles that have the policy `arn` attached, in list order.
    pub fn roles_attaching(&self, arn: &str) -> Vec<&'a ObservedRole> {
        self.roles_attaching.get(arn).into_iter().flatten().map(|i| &self.o.iam.roles[*i]).collect()
    }

    /// The policies whose ARN is `arn`, in list order.
    pub fn policies_with_arn(&self, arn: &str) -> Vec<&'a ObservedPolicy> {
        self.policies_by_arn.get(arn).into_iter().flatten().map(|i| &self.o.iam.policies[*i]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, arn: &str, attached: &[&str]) -> ObservedRole {
        ObservedRole {
            name: name.into(),
            path: "/".into(),
            arn: arn.into(),
            description: None,
            max_session_duration: 3600,
            permissions_boundary: None,
            trust_policy: PolicyDocument::from_value(serde_json::json!({"Version": "2012-10-17", "Statement": []})),
            tags: BTreeMap::new().into(),
            attached_policies: attached.iter().map(|a| (*a).to_owned()).collect(),
            inline_policies: BTreeMap::new(),
        }
    }

    fn deployment(namespace: &str, name: &str, sa: Option<&str>) -> ObservedDeployment {
        ObservedDeployment {
            namespace: namespace.into(),
            name: name.into(),
            resource_version: String::new(),
            service_account_name: sa.map(str::to_owned),
            restarted_at: None,
            rollout: Rollout::default(),
            pods: vec![],
        }
    }

    #[test]
    fn the_index_answers_as_the_scans_do() {
        let mut o = Observed { format_version: 1, ..Default::default() };
        // Two roles equal ignoring case, and an ARN twice: the first wins, as with a scan.
        o.iam.roles = vec![
            role("App", "arn:r/App", &["arn:p/a", "arn:p/a", "arn:p/b"]),
            role("app", "arn:r/app", &["arn:p/a"]),
            role("Other", "arn:r/App", &[]),
        ];
        for (name, arn) in [("Read", "arn:p/a"), ("read", "arn:p/b"), ("Write", "arn:p/a")] {
            o.iam.policies.push(ObservedPolicy {
                name: name.into(),
                path: "/".into(),
                arn: arn.into(),
                description: None,
                document: PolicyDocument::from_value(serde_json::json!({"Version": "2012-10-17", "Statement": []})),
                default_version_id: "v1".into(),
                version_count: 1,
                tags: BTreeMap::new().into(),
            });
        }
        o.cluster.namespaces = vec!["ns".into(), "other".into()];
        for (ns, name, rv) in [("ns", "a", "1"), ("ns", "a", "2"), ("other", "a", "3")] {
            o.cluster.service_accounts.push(ObservedServiceAccount {
                namespace: ns.into(),
                name: name.into(),
                resource_version: rv.into(),
                annotations: BTreeMap::new().into(),
                labels: BTreeMap::new().into(),
                role_arn_set_at: None,
                irsa_annotations: vec![],
            });
        }
        o.cluster.deployments = vec![
            deployment("ns", "web", Some("a")),
            deployment("ns", "jobs", None),
            deployment("ns", "web", Some("b")),
            deployment("ns", "api", Some("a")),
        ];
        let ix = o.index();
        for name in ["App", "APP", "app", "other", "none"] {
            assert_eq!(ix.role(name), o.role(name), "{name}");
            assert_eq!(ix.policy(name), o.policy(name), "{name}");
        }
        for name in ["read", "READ", "write"] {
            assert_eq!(ix.policy(name), o.policy(name), "{name}");
        }
        for arn in ["arn:r/App", "arn:r/app", "arn:r/none"] {
            assert_eq!(ix.role_by_arn(arn), o.role_by_arn(arn), "{arn}");
        }
        // A second cluster's objects are its own.
        let mut blue = o.cluster.clone();
        blue.deployments.truncate(1);
        blue.namespaces = vec!["ns".into()];
        o.clusters.insert("blue".into(), blue);
        let ix = o.index();
        for cluster in [None, Some("blue"), Some("green")] {
            for (ns, name) in [("ns", "a"), ("other", "a"), ("ns", "b"), ("ns", "web"), ("ns", "jobs")] {
                let at = format!("{cluster:?} {ns}/{name}");
                assert_eq!(ix.service_account(cluster, ns, name), o.service_account(cluster, ns, name), "{at}");
                assert_eq!(ix.deployment(cluster, ns, name), o.deployment(cluster, ns, name), "{at}");
            }
            for ns in ["ns", "other", "none"] {
                assert_eq!(ix.has_namespace(cluster, ns), o.has_namespace(cluster, ns), "{cluster:?} {ns}");
            }
        }
        assert!(ix.has_namespace(None, "other") && !ix.has_namespace(Some("blue"), "other"));
        let names = |ds: Vec<&ObservedDeployment>| ds.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(ix.deployments_running_as(None, "ns", "a")), ["web", "api"]);
        assert_eq!(names(ix.deployments_running_as(Some("blue"), "ns", "a")), ["web"]);
        assert_eq!(names(ix.deployments_running_as(None, "ns", "default")), ["jobs"]);
        let roles = |rs: Vec<&ObservedRole>| rs.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        assert_eq!(roles(ix.roles_attaching("arn:p/a")), ["App", "app"], "each role once");
        let policies = |ps: Vec<&ObservedPolicy>| ps.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(policies(ix.policies_with_arn("arn:p/a")), ["Read", "Write"]);
        // Everything else is the observed state itself.
        assert_eq!(ix.iam.roles.len(), 3);
    }
}
