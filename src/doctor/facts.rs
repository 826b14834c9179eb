//! What doctor read, as plain data: the input of the pure [`super::checks`].

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::jwt::Claims;
use crate::model::policy_doc::PolicyDocument;
use crate::model::quotas::Quotas;

/// A read that may have failed, the failure said as a check says it
/// (`forbidden (needs list on …)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read<T> {
    Got(T),
    Failed(String),
}

impl<T> Read<T> {
    pub fn as_ref(&self) -> Read<&T> {
        match self {
            Read::Got(t) => Read::Got(t),
            Read::Failed(why) => Read::Failed(why.clone()),
        }
    }

    pub fn got(&self) -> Option<&T> {
        match self {
            Read::Got(t) => Some(t),
            Read::Failed(_) => None,
        }
    }
}

/// The IAM OIDC provider of the issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub arn: String,
    pub client_ids: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    pub path: String,
    pub arn: String,
    /// The trust policy, or why it could not be read.
    pub trust: Result<PolicyDocument, String>,
}

/// IAM, read once for every ServiceAccount.
#[derive(Debug, Clone)]
pub struct Iam {
    /// The account the credentials read, when anything says (a provider's
    /// or a role's ARN).
    pub account: Option<String>,
    /// The provider of the issuer, `None` when there is none.
    pub provider: Read<Option<Provider>>,
    /// Every role of the account.
    pub roles: Read<Vec<Role>>,
    pub quotas: Quotas,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    pub role_arn: Option<String>,
    pub token_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub name: String,
    pub created_at: Timestamp,
    pub host_network: bool,
    pub annotations: BTreeMap<String, String>,
    pub containers: Vec<Container>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub name: String,
    /// `serviceAccountName` of the pod template; `default` when unset.
    pub service_account: String,
    /// Containers of the template that set `AWS_ROLE_ARN` themselves, with
    /// the value: the webhook leaves them alone.
    pub own_role_arns: BTreeMap<String, String>,
    /// Its running pods (not terminating, not finished).
    pub pods: Vec<Pod>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub annotations: BTreeMap<String, String>,
    /// When the role annotation got its value (managedFields).
    pub role_arn_set_at: Option<Timestamp>,
}

/// The cluster, read once per namespace.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The issuer the checks use (`https://…`), from the stack or discovery.
    pub issuer: Option<String>,
    /// The MutatingWebhookConfigurations that run the pod identity webhook on pods.
    pub webhook: Read<Vec<String>>,
    /// Per namespace: its Deployments.
    pub deployments: BTreeMap<String, Read<Vec<Deployment>>>,
    /// Per namespace: the names of its ServiceAccounts (what a wildcard admits).
    pub service_accounts: BTreeMap<String, Vec<String>>,
}

/// One ServiceAccount to check.
#[derive(Debug, Clone)]
pub struct Subject {
    pub namespace: String,
    pub name: String,
    /// `None`: it does not exist.
    pub service_account: Option<ServiceAccount>,
    /// With a stack: what the stack binds it to.
    pub bound: Option<Bound>,
    /// The TokenRequest's claims; `None` when none was asked for.
    pub token: Option<Read<Claims>>,
    /// `--assume`: the ARN STS answered with.
    pub assumed: Option<Read<String>>,
}

/// What the stack file says of a ServiceAccount.
#[derive(Debug, Clone)]
pub struct Bound {
    pub role_arn: String,
    /// The role is the stack's own (irsa writes its trust).
    pub role_managed: bool,
    pub deployments: Vec<String>,
}

/// The run: with a stack or without.
#[derive(Debug, Clone)]
pub struct Context {
    /// `irsa doctor FILE`: the file, for fixes (`irsa apply FILE`), and its account.
    pub stack: Option<StackContext>,
    /// The cluster's region (from the stack, or the issuer's host).
    pub region: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StackContext {
    pub file: String,
    pub account_id: String,
}
