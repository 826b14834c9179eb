//! Resource addresses: the stable names irsa gives every node of the graph,
//! used in plans, `--target` prefixes and the apply journal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One resource irsa plans for. The variants' order is the order of the
/// dependency chain, which keeps sorted output readable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Address {
    /// `oidc/<cluster>`: the cluster's IAM OIDC identity provider.
    Oidc { cluster: String },
    /// `policy/<name>`: a customer-managed policy of the stack.
    Policy { name: String },
    /// `role/<name>`: a role, owned or referenced by ARN.
    Role { name: String },
    /// `role/<role>/attach/<policy>`: a managed policy attached to a role;
    /// `policy` is the stack's policy name, or the ARN of a policy the stack
    /// does not own (an AWS-managed one, say).
    Attach { role: String, policy: String },
    /// `role/<role>/inline/<name>`: an inline policy of a role.
    Inline { role: String, name: String },
    /// `sa/<namespace>/<name>`: a ServiceAccount; `sa/<cluster>/<namespace>/<name>`
    /// in a stack of several clusters (`[clusters.<cluster>]`).
    ServiceAccount { cluster: Option<String>, namespace: String, name: String },
    /// `deploy/<namespace>/<name>` (or `deploy/<cluster>/<namespace>/<name>`):
    /// a Deployment that uses a bound ServiceAccount.
    Deployment { cluster: Option<String>, namespace: String, name: String },
}

/// The kind of resource behind an address, as named in the JSON plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    OidcProvider,
    Policy,
    Role,
    RolePolicyAttachment,
    RoleInlinePolicy,
    ServiceAccount,
    Deployment,
}

impl ResourceKind {
    /// Whether the resource lives in IAM (as opposed to the cluster).
    pub fn is_iam(self) -> bool {
        !matches!(self, ResourceKind::ServiceAccount | ResourceKind::Deployment)
    }
}

impl Address {
    pub fn kind(&self) -> ResourceKind {
        match self {
            Address::Oidc { .. } => ResourceKind::OidcProvider,
            Address::Policy { .. } => ResourceKind::Policy,
            Address::Role { .. } => ResourceKind::Role,
            Address::Attach { .. } => ResourceKind::RolePolicyAttachment,
            Address::Inline { .. } => ResourceKind::RoleInlinePolicy,
            Address::ServiceAccount { .. } => ResourceKind::ServiceAccount,
            Address::Deployment { .. } => ResourceKind::Deployment,
        }
    }

    pub fn oidc(cluster: &str) -> Self {
        Address::Oidc { cluster: cluster.to_owned() }
    }
    pub fn policy(name: &str) -> Self {
        Address::Policy { name: name.to_owned() }
    }
    pub fn role(name: &str) -> Self {
        Address::Role { name: name.to_owned() }
    }
    pub fn attach(role: &str, policy: &str) -> Self {
        Address::Attach { role: role.to_owned(), policy: policy.to_owned() }
    }
    pub fn inline(role: &str, name: &str) -> Self {
        Address::Inline { role: role.to_owned(), name: name.to_owned() }
    }
    /// `cluster` is the `[clusters.<key>]` the object is in, `None` in a
    /// stack of one `[cluster]` (whose addresses name no cluster).
    pub fn service_account(cluster: Option<&str>, namespace: &str, name: &str) -> Self {
        Address::ServiceAccount {
            cluster: cluster.map(str::to_owned),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
    pub fn deployment(cluster: Option<&str>, namespace: &str, name: &str) -> Self {
        Address::Deployment {
            cluster: cluster.map(str::to_owned),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The cluster a cluster resource is in (`None`: the only one, or an IAM resource).
    pub fn cluster(&self) -> Option<&str> {
        match self {
            Address::ServiceAccount { cluster, .. } | Address::Deployment { cluster, .. } => cluster.as_deref(),
            _ => None,
        }
    }

    /// Whether `--target PREFIX` selects this address. A prefix matches whole
    /// path segments or a leading part of the text, as Terraform's `-target`
    /// is used in practice: `role/backend` selects `role/backend` and
    /// `role/backend/attach/x`, and also `role/backend-2`, which is why the
    /// planner adds dependencies rather than trusting prefixes to be exact.
    pub fn matches_prefix(&self, prefix: &str) -> bool {
        self.to_string().starts_with(prefix)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Oidc { cluster } => write!(f, "oidc/{cluster}"),
            Address::Policy { name } => write!(f, "policy/{name}"),
            Address::Role { name } => write!(f, "role/{name}"),
            Address::Attach { role, policy } => write!(f, "role/{role}/attach/{policy}"),
            Address::Inline { role, name } => write!(f, "role/{role}/inline/{name}"),
            Address::ServiceAccount { cluster, namespace, name } => {
                write!(f, "sa/")?;
                in_cluster(f, cluster)?;
                write!(f, "{namespace}/{name}")
            }
            Address::Deployment { cluster, namespace, name } => {
                write!(f, "deploy/")?;
                in_cluster(f, cluster)?;
                write!(f, "{namespace}/{name}")
            }
        }
    }
}

/// `<cluster>/` for an object of a stack of several clusters, written in
/// place (addresses are formatted on hot paths: prefixes, output).
fn in_cluster(f: &mut fmt::Formatter<'_>, cluster: &Option<String>) -> fmt::Result {
    match cluster {
        Some(c) => write!(f, "{c}/"),
        None => Ok(()),
    }
}

/// A string that is not an address.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is not a resource address (expected oidc/<cluster>, policy/<name>, role/<name>, role/<role>/attach/<policy>, role/<role>/inline/<name>, sa/[<cluster>/]<namespace>/<name> or deploy/[<cluster>/]<namespace>/<name>)"
)]
pub struct AddressParseError(String);

impl FromStr for Address {
    type Err = AddressParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || AddressParseError(s.to_owned());
        let (kind, rest) = s.split_once('/').ok_or_else(err)?;
        let nonempty = |v: &str| if v.is_empty() { Err(err()) } else { Ok(v.to_owned()) };
        match kind {
            "oidc" => Ok(Address::Oidc { cluster: nonempty(rest)? }),
            "policy" => Ok(Address::Policy { name: nonempty(rest)? }),
            "role" => {
                // A role name has no `/`; an attached policy may be an ARN, which has.
                let (role, tail) = match rest.split_once('/') {
                    None => return Ok(Address::Role { name: nonempty(rest)? }),
                    Some(parts) => parts,
                };
                let role = nonempty(role)?;
                if let Some(policy) = tail.strip_prefix("attach/") {
                    Ok(Address::Attach { role, policy: nonempty(policy)? })
                } else if let Some(name) = tail.strip_prefix("inline/") {
                    Ok(Address::Inline { role, name: nonempty(name)? })
                } else {
                    Err(err())
                }
            }
            "sa" | "deploy" => {
                // Two segments in a stack of one cluster, three (the
                // cluster first) in one of several.
                let parts: Vec<&str> = rest.split('/').collect();
                let (cluster, ns, name) = match parts[..] {
                    [ns, name] => (None, ns, name),
                    [cluster, ns, name] => (Some(nonempty(cluster)?), ns, name),
                    _ => return Err(err()),
                };
                let (namespace, name) = (nonempty(ns)?, nonempty(name)?);
                Ok(if kind == "sa" {
                    Address::ServiceAccount { cluster, namespace, name }
                } else {
                    Address::Deployment { cluster, namespace, name }
                })
            }
            _ => Err(err()),
        }
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_text() {
        let cases = [
            Address::oidc("ekshandson"),
            Address::policy("messages-read"),
            Address::role("backend-messages"),
            Address::attach("backend-messages", "messages-read"),
            Address::attach("r", "arn:aws:iam::aws:policy/service-role/AmazonS3ReadOnlyAccess"),
            Address::inline("backend-messages", "kms-decrypt"),
            Address::service_account(None, "backend", "my-service-account"),
            Address::deployment(None, "backend", "backend"),
            Address::service_account(Some("blue"), "backend", "my-service-account"),
            Address::deployment(Some("green"), "backend", "backend"),
        ];
        for address in cases {
            let text = address.to_string();
            assert_eq!(text.parse::<Address>().unwrap(), address, "{text}");
        }
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for bad in [
            "",
            "role",
            "role/",
            "role/x/other/y",
            "sa/ns",
            "sa/c/ns/a/b",
            "sa//ns/a",
            "deploy/c/ns/",
            "bucket/x",
            "policy/",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn one_cluster_addresses_name_no_cluster() {
        assert_eq!(Address::service_account(None, "ns", "a").to_string(), "sa/ns/a");
        assert_eq!(Address::service_account(Some("blue"), "ns", "a").to_string(), "sa/blue/ns/a");
        assert_eq!(Address::deployment(Some("blue"), "ns", "web").to_string(), "deploy/blue/ns/web");
        assert_eq!("sa/blue/ns/a".parse::<Address>().unwrap().cluster(), Some("blue"));
        assert_eq!("sa/ns/a".parse::<Address>().unwrap().cluster(), None);
    }

    #[test]
    fn prefixes_select_a_subtree() {
        let attach = Address::attach("backend", "p");
        assert!(attach.matches_prefix("role/backend"));
        assert!(attach.matches_prefix("role/"));
        assert!(!attach.matches_prefix("sa/"));
    }
}
