//! AWS IAM through aws-sdk-iam: connecting, counting calls, and reading the
//! observed IAM state in bulk or resource by resource.
//!
//! Bulk is the default: `GetAccountAuthorizationDetails` returns every role
//! with its trust policy, attachments, inline policies, boundary and tags, and
//! every customer-managed policy with all its versions, 1,000 to a page;
//! `ListRoles` adds what that call leaves out (description, maximum session).
//! Neither returns a managed policy's tags, so those are read per policy, for
//! the stack's policies only. Per-resource reads each desired resource with
//! its own calls, the way Terraform's AWS provider does; it is the baseline
//! the benchmarks compare against and must yield the same model.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_config::BehaviorVersion;
use aws_sdk_iam::Client;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::operation::get_account_authorization_details::GetAccountAuthorizationDetailsOutput;
use aws_sdk_iam::types::{EntityType, SummaryKeyType, Tag};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use crate::model::desired::{Desired, Role, markers};
use crate::model::observed::{ObservedIam, ObservedPolicy, ObservedRole, OidcProvider};
use crate::model::policy_doc::{self, PolicyDocument};
use crate::model::quotas::Quotas;
use crate::model::strmap::StrMap;

/// How `refresh` reads IAM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// A few paginated account-wide calls, whatever the size of the stack.
    #[default]
    Bulk,
    /// Calls per desired resource, as Terraform's AWS provider reads them.
    PerResource,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Bulk => "bulk",
            Strategy::PerResource => "per-resource",
        }
    }
}

/// Counts IAM calls (operations, not retried attempts), per operation name.
#[derive(Debug, Default)]
pub struct CallCounter {
    total: AtomicU64,
    by_operation: Mutex<BTreeMap<String, u64>>,
}

impl CallCounter {
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// `ListRoles×2, GetAccountSummary×1, …`, for `-v`.
    pub fn breakdown(&self) -> String {
        let map = self.by_operation.lock().map(|m| m.clone()).unwrap_or_default();
        map.iter().map(|(op, n)| format!("{op}×{n}")).collect::<Vec<_>>().join(", ")
    }
}

#[derive(Debug, Clone)]
struct CountCalls(Arc<CallCounter>);

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "irsa::CountCalls"
    }

    // Once per operation, retries excluded, and late enough that the
    // operation's metadata (its name) is in the config bag.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.total.fetch_add(1, Ordering::Relaxed);
        let name = cfg.load::<Metadata>().map_or("unknown", |m| m.name()).to_owned();
        if let Ok(mut map) = self.0.by_operation.lock() {
            *map.entry(name).or_default() += 1;
        }
        Ok(())
    }
}

/// An IAM client that counts its calls.
#[derive(Debug, Clone)]
pub struct Iam {
    pub client: Client,
    pub calls: Arc<CallCounter>,
}

/// Where and how to reach IAM.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub region: String,
    /// `--endpoint-url`; the SDK also reads `AWS_ENDPOINT_URL` itself.
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
}

impl Iam {
    /// The standard credential chain (environment, `AWS_PROFILE`, SSO, web
    /// identity, instance role) and the SDK's standard retry mode, which
    /// retries throttling with backoff.
    pub async fn connect(conn: &Connection) -> Iam {
        let shared = sdk_config(conn).await;
        let calls = Arc::new(CallCounter::default());
        let config = aws_sdk_iam::config::Builder::from(&shared).interceptor(CountCalls(calls.clone())).build();
        Iam { client: Client::from_conf(config), calls }
    }
}

/// The SDK configuration of a [`Connection`], for IAM and any other service.
pub async fn sdk_config(conn: &Connection) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(conn.region.clone()))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(5));
    if let Some(url) = &conn.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(profile) = &conn.profile {
        loader = loader.profile_name(profile);
    }
    loader.load().await
}

/// A failed IAM call: the operation, AWS's error code and message.
#[derive(Debug, Clone, thiserror::Error)]
pub struct CallError {
    pub operation: &'static str,
    pub code: Option<String>,
    pub message: String,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} failed: {code}: {}", self.operation, self.message),
            None => write!(f, "{} failed: {}", self.operation, self.message),
        }
    }
}

impl CallError {
    pub fn from_sdk<E, R>(operation: &'static str, e: SdkError<E, R>) -> CallError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: fmt::Debug,
    {
        let code = e.code().map(str::to_owned);
        let message = match e.message() {
            Some(m) => m.to_owned(),
            // No service message: a connection or credentials problem; the
            // full chain says which.
            None => aws_sdk_iam::error::DisplayErrorContext(&e).to_string(),
        };
        CallError { operation, code, message }
    }

    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

/// Shorthand for mapping an SDK result.
pub(crate) fn call<T, E, R>(operation: &'static str, r: Result<T, SdkError<E, R>>) -> Result<T, CallError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    r.map_err(|e| CallError::from_sdk(operation, e))
}

/// What a refresh must look for.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub stack: String,
    /// The stack's old name, when it is renamed: its resources are read too.
    pub renamed_from: Option<String>,
    /// Each cluster's issuer without `https://`, of those known.
    pub issuer_host_paths: Vec<String>,
    /// Read every provider of the account, not only the issuers': a stack of
    /// several clusters finds the provider it made for a cluster it no
    /// longer names (to delete it) only among them all.
    pub all_providers: bool,
    /// Names of owned roles, and of referenced roles (from their ARNs).
    pub role_names: Vec<String>,
    pub policy_names: Vec<String>,
    /// The ARN each stack policy has when it exists as the file says.
    pub policy_arns: Vec<String>,
    /// `role_names` and `policy_names` lower-cased, to check each role and
    /// policy of the account against (a scan of the lists per item was
    /// quadratic in a bulk read).
    role_names_folded: HashSet<String>,
    policy_names_folded: HashSet<String>,
}

impl Scope {
    pub fn of<'i>(desired: &Desired, issuers: impl IntoIterator<Item = &'i str>) -> Scope {
        let role_names: Vec<String> = desired
            .roles
            .values()
            .map(|r| match r {
                Role::Owned(r) => r.name.clone(),
                Role::Referenced(r) => r.name.clone(),
            })
            .collect();
        let fold = |names: &[String]| -> HashSet<String> { names.iter().map(|n| n.to_ascii_lowercase()).collect() };
        let policy_names: Vec<String> = desired.policies.keys().cloned().collect();
        Scope {
            role_names_folded: fold(&role_names),
            policy_names_folded: fold(&policy_names),
            stack: desired.stack.name.clone(),
            renamed_from: desired.stack.renamed_from.clone(),
            issuer_host_paths: issuers
                .into_iter()
                .map(|i| Desired::issuer_host_path(i).trim_end_matches('/').to_owned())
                .collect(),
            all_providers: desired.multi_cluster(),
            role_names,
            policy_names,
            policy_arns: desired.policies.values().map(|p| desired.policy_arn(p)).collect(),
        }
    }

    fn wants_role(&self, name: &str, tags: &StrMap) -> bool {
        self.role_names_folded.contains(&name.to_ascii_lowercase()) || self.owns(tags)
    }

    /// Whether `tags` are this stack's markers, under its name or its old one.
    fn owns(&self, tags: &StrMap) -> bool {
        is_ours(tags, &self.stack) || self.renamed_from.as_deref().is_some_and(|old| is_ours(tags, old))
    }

    fn wants_policy(&self, name: &str) -> bool {
        self.policy_names_folded.contains(&name.to_ascii_lowercase())
    }
}

/// One order for everything IAM lists in an order of its own (attachments
/// come back in attach order, which parallel applies make arbitrary), so
/// that two reads of one state are one model.
fn normalized(
    mut roles: Vec<ObservedRole>,
    mut policies: Vec<ObservedPolicy>,
) -> (Vec<ObservedRole>, Vec<ObservedPolicy>) {
    for r in &mut roles {
        r.attached_policies.sort();
    }
    roles.sort_by(|a, b| a.name.cmp(&b.name));
    policies.sort_by(|a, b| a.name.cmp(&b.name));
    (roles, policies)
}

/// IAM answers an empty description for one never set (moto does too):
/// that is no description, or every plan would replace the policy.
fn description(d: Option<&str>) -> Option<String> {
    d.filter(|d| !d.is_empty()).map(str::to_owned)
}

/// Roles by name with their trust policies, as IAM returned them.
type Trusts = Vec<(String, String)>;
type RoleListing = (RoleExtras, Trusts);

/// The names of the roles whose trust policy names `provider_arn` as a
/// federated principal, sorted. Only documents that mention an OIDC
/// provider at all are parsed (the account's other roles are none of the
/// stack's business); one that mentions one and cannot be read counts as
/// trusting it, so that a provider in use is never deleted for want of
/// reading a document.
fn trusting(trusts: &Trusts, provider_arn: &str) -> Vec<String> {
    let mut names: Vec<String> = trusts
        .iter()
        .filter(|(_, text)| {
            let text = policy_doc::decode(text);
            text.contains(":oidc-provider")
                && PolicyDocument::parse(&text).map_or(true, |doc| doc.names_federated(provider_arn))
        })
        .map(|(n, _)| n.clone())
        .collect();
    names.sort();
    names
}

fn is_ours(tags: &StrMap, stack: &str) -> bool {
    tags.get(markers::TAG_STACK).is_some_and(|s| s == stack)
        && tags.get(markers::TAG_MANAGED_BY).is_some_and(|m| m == markers::MANAGED_BY)
}

fn tag_map(tags: &[Tag]) -> StrMap {
    tags.iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
}

/// What `irsa import` read of IAM ([`Iam::read_for_import`]).
#[derive(Debug, Clone, Default)]
pub struct ImportedIam {
    /// The roles asked for that exist, by name.
    pub roles: Vec<ObservedRole>,
    /// The customer-managed policies attached to them, by name.
    pub policies: Vec<ObservedPolicy>,
    /// How many entities (roles, users, groups) each of those policies is
    /// attached to, by ARN, as IAM counts them.
    pub attachment_counts: BTreeMap<String, u32>,
    /// The roles of the account each managed policy is attached to, by ARN, sorted.
    pub role_users: BTreeMap<String, Vec<String>>,
    /// The provider of the issuer, when it exists.
    pub oidc_providers: Vec<OidcProvider>,
}

type RoleExtras = HashMap<String, (Option<String>, u32)>;

/// A role as the authorization details describe it, with what ListRoles adds.
fn role_from_details(r: &aws_sdk_iam::types::RoleDetail, extras: &RoleExtras) -> Result<ObservedRole, CallError> {
    let name = r.role_name().unwrap_or_default().to_owned();
    let (description, max_session_duration) = extras.get(&name).cloned().unwrap_or((None, 3600));
    let mut inline_policies = BTreeMap::new();
    for p in r.role_policy_list() {
        let doc = document("GetAccountAuthorizationDetails", p.policy_document())?;
        inline_policies.insert(p.policy_name().unwrap_or_default().to_owned(), doc);
    }
    Ok(ObservedRole {
        path: r.path().unwrap_or("/").to_owned(),
        arn: r.arn().unwrap_or_default().to_owned(),
        description,
        max_session_duration,
        permissions_boundary: r.permissions_boundary().and_then(|b| b.permissions_boundary_arn()).map(str::to_owned),
        trust_policy: document("GetAccountAuthorizationDetails", r.assume_role_policy_document())?,
        tags: tag_map(r.tags()),
        attached_policies: r
            .attached_managed_policies()
            .iter()
            .filter_map(|a| a.policy_arn().map(str::to_owned))
            .collect(),
        inline_policies,
        name,
    })
}

/// A customer-managed policy as the authorization details describe it.
fn policy_from_details(p: &aws_sdk_iam::types::ManagedPolicyDetail, tags: StrMap) -> Result<ObservedPolicy, CallError> {
    let arn = p.arn().unwrap_or_default();
    // A policy's name is the last part of its ARN. moto 5.2.5 leaves
    // PolicyName out of these details; real IAM sends it.
    let name = p.policy_name().unwrap_or_else(|| arn.rsplit('/').next().unwrap_or_default());
    let default = p.policy_version_list().iter().find(|v| v.is_default_version());
    Ok(ObservedPolicy {
        name: name.to_owned(),
        path: p.path().unwrap_or("/").to_owned(),
        arn: arn.to_owned(),
        description: description(p.description()),
        document: document("GetAccountAuthorizationDetails", default.and_then(|v| v.document()))?,
        default_version_id: p.default_version_id().unwrap_or("v1").to_owned(),
        version_count: u32::try_from(p.policy_version_list().len()).unwrap_or(u32::MAX),
        tags,
    })
}

fn document(operation: &'static str, text: Option<&str>) -> Result<PolicyDocument, CallError> {
    let text = text.unwrap_or("{}");
    PolicyDocument::parse(text).map_err(|p| CallError {
        operation,
        code: None,
        message: format!("IAM returned a policy document irsa cannot read: {}", p.message),
    })
}

impl Iam {
    /// Read the observed IAM state for `scope` with `strategy`.
    pub async fn refresh(&self, scope: &Scope, strategy: Strategy) -> Result<ObservedIam, CallError> {
        let mut oidc_providers = self.oidc_providers(scope).await?;
        let (roles, policies, trusts) = match strategy {
            Strategy::Bulk => self.bulk(scope).await?,
            Strategy::PerResource => {
                let (roles, policies) = self.per_resource(scope).await?;
                // Which roles trust the provider is an account-wide question:
                // one paginated listing answers it, and only when there is a provider.
                let trusts = if oidc_providers.is_empty() { Vec::new() } else { self.list_roles().await?.1 };
                (roles, policies, trusts)
            }
        };
        for p in &mut oidc_providers {
            p.trusted_by = trusting(&trusts, &p.arn);
        }
        let quotas = Some(self.quotas().await?);
        Ok(ObservedIam { oidc_providers, roles, policies, quotas })
    }

    /// The providers of the stack's issuers. Providers carry no stack in
    /// their ARN, and listing them returns no tags, so only the issuers'
    /// providers are read (an account has one provider per cluster), or
    /// every one for a stack of several clusters ([`Scope::all_providers`]).
    async fn oidc_providers(&self, scope: &Scope) -> Result<Vec<OidcProvider>, CallError> {
        if scope.issuer_host_paths.is_empty() && !scope.all_providers {
            return Ok(Vec::new());
        }
        let list = call("ListOpenIDConnectProviders", self.client.list_open_id_connect_providers().send().await)?;
        let mut out = Vec::new();
        for entry in list.open_id_connect_provider_list() {
            let Some(arn) = entry.arn() else { continue };
            let Some(host) = arn.split_once(":oidc-provider/").map(|(_, h)| h) else { continue };
            if !scope.all_providers && !scope.issuer_host_paths.iter().any(|h| h == host) {
                continue;
            }
            let p = call(
                "GetOpenIDConnectProvider",
                self.client.get_open_id_connect_provider().open_id_connect_provider_arn(arn).send().await,
            )?;
            let url = p.url().unwrap_or(host);
            out.push(OidcProvider {
                arn: arn.to_owned(),
                url: url.strip_prefix("https://").unwrap_or(url).to_owned(),
                client_ids: p.client_id_list().to_vec(),
                thumbprints: p.thumbprint_list().to_vec(),
                tags: tag_map(p.tags()),
                trusted_by: Vec::new(),
            });
        }
        Ok(out)
    }

    /// Live quotas, with the default table for any the account does not report.
    pub(crate) async fn quotas(&self) -> Result<Quotas, CallError> {
        let summary = call("GetAccountSummary", self.client.get_account_summary().send().await)?;
        let mut q = Quotas::default();
        if let Some(map) = summary.summary_map() {
            let get = |k: SummaryKeyType| map.get(&k).and_then(|v| usize::try_from(*v).ok());
            q.attached_policies_per_role =
                get(SummaryKeyType::AttachedPoliciesPerRoleQuota).unwrap_or(q.attached_policies_per_role);
            q.trust_policy_size = get(SummaryKeyType::AssumeRolePolicySizeQuota).unwrap_or(q.trust_policy_size);
            q.managed_policy_size = get(SummaryKeyType::PolicySizeQuota).unwrap_or(q.managed_policy_size);
            q.inline_policies_size_per_role =
                get(SummaryKeyType::RolePolicySizeQuota).unwrap_or(q.inline_policies_size_per_role);
        }
        Ok(q)
    }

    /// Every role of the account, through ListRoles: its description and
    /// maximum session (which the authorization details lack), and its
    /// trust policy (name, document), for [`trusting`].
    async fn list_roles(&self) -> Result<RoleListing, CallError> {
        let mut extras: HashMap<String, (Option<String>, u32)> = HashMap::new();
        let mut trusts = Vec::new();
        let mut pages = self.client.list_roles().max_items(1000).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = call("ListRoles", page)?;
            for r in page.roles() {
                let max = r.max_session_duration().and_then(|m| u32::try_from(m).ok()).unwrap_or(3600);
                extras.insert(r.role_name().to_owned(), (description(r.description()), max));
                if let Some(text) = r.assume_role_policy_document() {
                    trusts.push((r.role_name().to_owned(), text.to_owned()));
                }
            }
        }
        Ok((extras, trusts))
    }

    async fn bulk(&self, scope: &Scope) -> Result<(Vec<ObservedRole>, Vec<ObservedPolicy>, Trusts), CallError> {
        // Description and maximum session are not in the authorization details.
        let (role_extras, trusts) = self.list_roles().await?;

        let mut roles = Vec::new();
        let mut policy_details = Vec::new();
        self.authorization_details(|page| {
            for r in page.role_detail_list() {
                let name = r.role_name().unwrap_or_default();
                if scope.wants_role(name, &tag_map(r.tags())) {
                    roles.push(role_from_details(r, &role_extras)?);
                }
            }
            policy_details.extend(page.policies().iter().cloned());
            Ok(())
        })
        .await?;

        // Policies: the stack's by name, and any attached to a role of the
        // stack (a policy dropped from the file is still attached there, or
        // was until the file changed). Only those need their tags.
        let attached: HashSet<&str> = roles
            .iter()
            .filter(|r| scope.owns(&r.tags))
            .flat_map(|r| r.attached_policies.iter().map(String::as_str))
            .collect();
        let mut policies = Vec::new();
        for p in &policy_details {
            let arn = p.arn().unwrap_or_default();
            // A policy's name is the last part of its ARN. moto 5.2.5 leaves
            // PolicyName out of these details; real IAM sends it.
            let name = p.policy_name().unwrap_or_else(|| arn.rsplit('/').next().unwrap_or_default());
            if !scope.wants_policy(name) && !attached.contains(arn) {
                continue;
            }
            let tags = self.policy_tags(arn).await?;
            if !scope.wants_policy(name) && !scope.owns(&tags) {
                continue;
            }
            policies.push(policy_from_details(p, tags)?);
        }
        let (roles, policies) = normalized(roles, policies);
        Ok((roles, policies, trusts))
    }

    /// What `irsa import` needs of IAM, read in bulk as a refresh reads
    /// it: the roles named `role_names` (from the ServiceAccounts'
    /// annotations), every customer-managed policy attached to one of them
    /// with its tags, how many entities each of those is attached to and
    /// which other roles of the account they are, and the provider of
    /// `issuer_host_path`. The same calls as a bulk refresh, plus one
    /// ListPolicyTags per policy found; nothing is written.
    pub async fn read_for_import(
        &self,
        role_names: &[String],
        issuer_host_path: Option<&str>,
    ) -> Result<ImportedIam, CallError> {
        let (role_extras, _) = self.list_roles().await?;
        let wanted: HashSet<&str> = role_names.iter().map(String::as_str).collect();
        let mut roles = Vec::new();
        let mut policy_details = Vec::new();
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        self.authorization_details(|page| {
            for r in page.role_detail_list() {
                let name = r.role_name().unwrap_or_default();
                for a in r.attached_managed_policies() {
                    if let Some(arn) = a.policy_arn() {
                        users.entry(arn.to_owned()).or_default().push(name.to_owned());
                    }
                }
                if wanted.contains(name) {
                    roles.push(role_from_details(r, &role_extras)?);
                }
            }
            policy_details.extend(page.policies().iter().cloned());
            Ok(())
        })
        .await?;
        let attached: HashSet<&str> =
            roles.iter().flat_map(|r| r.attached_policies.iter().map(String::as_str)).collect();
        let mut policies = Vec::new();
        let mut attachment_counts = BTreeMap::new();
        for p in &policy_details {
            let arn = p.arn().unwrap_or_default();
            if !attached.contains(arn) {
                continue;
            }
            let tags = self.policy_tags(arn).await?;
            attachment_counts.insert(arn.to_owned(), u32::try_from(p.attachment_count().unwrap_or(0)).unwrap_or(0));
            policies.push(policy_from_details(p, tags)?);
        }
        let (roles, policies) = normalized(roles, policies);
        for names in users.values_mut() {
            names.sort();
            names.dedup();
        }
        let scope = Scope {
            issuer_host_paths: issuer_host_path.map(|h| h.trim_end_matches('/').to_owned()).into_iter().collect(),
            ..Scope::default()
        };
        let oidc_providers = self.oidc_providers(&scope).await?;
        Ok(ImportedIam { roles, policies, attachment_counts, role_users: users, oidc_providers })
    }

    /// Every role and customer-managed policy of the account, a page at a
    /// time (GetAccountAuthorizationDetails, the bulk read's main call);
    /// `each` sees every page in order.
    async fn authorization_details(
        &self,
        mut each: impl FnMut(&GetAccountAuthorizationDetailsOutput) -> Result<(), CallError>,
    ) -> Result<(), CallError> {
        let mut pages = self
            .client
            .get_account_authorization_details()
            .filter(EntityType::Role)
            .filter(EntityType::LocalManagedPolicy)
            .max_items(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            each(&call("GetAccountAuthorizationDetails", page)?)?;
        }
        Ok(())
    }

    async fn policy_tags(&self, arn: &str) -> Result<StrMap, CallError> {
        let mut tags = StrMap::new();
        let mut pages = self.client.list_policy_tags().policy_arn(arn).into_paginator().send();
        while let Some(page) = pages.next().await {
            tags.extend(tag_map(call("ListPolicyTags", page)?.tags()));
        }
        Ok(tags)
    }

    async fn per_resource(&self, scope: &Scope) -> Result<(Vec<ObservedRole>, Vec<ObservedPolicy>), CallError> {
        let mut roles = Vec::new();
        for name in &scope.role_names {
            let role = match self.client.get_role().role_name(name).send().await {
                Ok(r) => r,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => continue,
                Err(e) => return Err(CallError::from_sdk("GetRole", e)),
            };
            let Some(r) = role.role() else { continue };
            let mut attached_policies = Vec::new();
            let mut pages = self.client.list_attached_role_policies().role_name(name).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = call("ListAttachedRolePolicies", page)?;
                attached_policies
                    .extend(page.attached_policies().iter().filter_map(|a| a.policy_arn().map(str::to_owned)));
            }
            let mut inline_policies = BTreeMap::new();
            let mut pages = self.client.list_role_policies().role_name(name).into_paginator().send();
            while let Some(page) = pages.next().await {
                for policy in call("ListRolePolicies", page)?.policy_names() {
                    let got = call(
                        "GetRolePolicy",
                        self.client.get_role_policy().role_name(name).policy_name(policy).send().await,
                    )?;
                    inline_policies.insert(policy.clone(), document("GetRolePolicy", Some(got.policy_document()))?);
                }
            }
            roles.push(ObservedRole {
                name: r.role_name().to_owned(),
                path: r.path().to_owned(),
                arn: r.arn().to_owned(),
                description: description(r.description()),
                max_session_duration: r.max_session_duration().and_then(|m| u32::try_from(m).ok()).unwrap_or(3600),
                permissions_boundary: r
                    .permissions_boundary()
                    .and_then(|b| b.permissions_boundary_arn())
                    .map(str::to_owned),
                trust_policy: document("GetRole", r.assume_role_policy_document())?,
                tags: tag_map(r.tags()),
                attached_policies,
                inline_policies,
            });
        }
        let mut policies = Vec::new();
        for (name, arn) in scope.policy_names.iter().zip(&scope.policy_arns) {
            // Terraform reads a policy by the ARN its state holds; irsa's
            // desired ARN plays that part here.
            let got = match self.client.get_policy().policy_arn(arn.as_str()).send().await {
                Ok(p) => p,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => continue,
                Err(e) => return Err(CallError::from_sdk("GetPolicy", e)),
            };
            let Some(p) = got.policy() else { continue };
            let default_version_id = p.default_version_id().unwrap_or("v1").to_owned();
            let version = call(
                "GetPolicyVersion",
                self.client.get_policy_version().policy_arn(arn.as_str()).version_id(&default_version_id).send().await,
            )?;
            let mut version_count = 0u32;
            let mut pages = self.client.list_policy_versions().policy_arn(arn.as_str()).into_paginator().send();
            while let Some(page) = pages.next().await {
                version_count += u32::try_from(call("ListPolicyVersions", page)?.versions().len()).unwrap_or(0);
            }
            policies.push(ObservedPolicy {
                name: p.policy_name().unwrap_or(name).to_owned(),
                path: p.path().unwrap_or("/").to_owned(),
                arn: p.arn().unwrap_or(arn).to_owned(),
                description: description(p.description()),
                document: document("GetPolicyVersion", version.policy_version().and_then(|v| v.document()))?,
                default_version_id,
                version_count,
                tags: tag_map(p.tags()),
            });
        }
        Ok(normalized(roles, policies))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_scope_matches_names_ignoring_case() {
        let text = r#"version = 1
[cluster]
name = "c"
region = "us-east-1"
account_id = "123456789012"
[policies.Read]
document = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}'
[roles.App]
policies = ["Read"]
[roles.legacy]
arn = "arn:aws:iam::123456789012:role/team/Legacy"
[[service_accounts]]
namespace = "ns"
name = "a"
role = "App"
[[service_accounts]]
namespace = "ns"
name = "b"
role = "legacy"
"#;
        let d = crate::config::parse(Path::new("s.toml"), text.into()).unwrap();
        let scope = Scope::of(&d, []);
        let none = StrMap::new();
        for name in ["App", "app", "APP", "Legacy", "legacy"] {
            assert!(scope.wants_role(name, &none), "{name}");
        }
        assert!(!scope.wants_role("Other", &none));
        let ours = StrMap::from([
            (markers::TAG_STACK.to_owned(), "c".to_owned()),
            (markers::TAG_MANAGED_BY.to_owned(), markers::MANAGED_BY.to_owned()),
        ]);
        assert!(scope.wants_role("Other", &ours), "a role carrying the stack's tag is read too");
        assert!(scope.wants_policy("read") && scope.wants_policy("Read") && !scope.wants_policy("write"));
    }

    #[test]
    fn trusting_roles_are_found_in_either_encoding_and_unreadable_ones_are_kept() {
        let arn = "arn:aws:iam::123456789012:oidc-provider/oidc.example/id/A";
        let trust = |provider: &str| {
            serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Federated": provider}, "Action": "sts:AssumeRoleWithWebIdentity"}]})
            .to_string()
        };
        let encoded =
            percent_encoding::utf8_percent_encode(&trust(arn), percent_encoding::NON_ALPHANUMERIC).to_string();
        let trusts: Trusts = vec![
            ("plain".into(), trust(arn)),
            ("encoded".into(), encoded),
            ("other-provider".into(), trust("arn:aws:iam::123456789012:oidc-provider/other")),
            (
                "ec2".into(),
                r#"{"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}}]}"#.into(),
            ),
            ("unreadable".into(), format!("{{\"oops\": \"{arn}\"")),
            ("unreadable-unrelated".into(), "{not json".into()),
        ];
        assert_eq!(trusting(&trusts, arn), ["encoded", "plain", "unreadable"]);
    }
}
