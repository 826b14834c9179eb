//! The checks: facts in, one [`ServiceAccountReport`] out, no I/O.
//!
//! The order is the chain a pod walks to get credentials: the provider, the
//! annotation, the role, its trust (as STS evaluates it, with the claims of
//! a real token when there is one), the token, the workloads and their
//! pods, the webhook. Each failing check says how to fix it: a command, a
//! stack-file change, or the policy statement to add.

use std::collections::BTreeMap;

use serde_json::json;

use super::facts::{Cluster, Context, Deployment, Iam, Read, Subject};
use super::trust::{self, Breadth, Decision, WebIdentity};
use super::{Check, ServiceAccountReport};
use crate::model::desired::markers::{ANNOTATION_ROLE_ARN, STS_AUDIENCE};
use crate::model::names;

pub const ANNOTATION_AUDIENCE: &str = "eks.amazonaws.com/audience";
pub const ANNOTATION_REGIONAL: &str = "eks.amazonaws.com/sts-regional-endpoints";
pub const ANNOTATION_EXPIRATION: &str = "eks.amazonaws.com/token-expiration";
pub const ANNOTATION_SKIP: &str = "eks.amazonaws.com/skip-containers";
/// The shortest token lifetime the webhook (and the kubelet) accept.
pub const MIN_EXPIRATION: i64 = 600;

/// Regions that must be enabled per account: a session token of the global
/// STS endpoint is not valid in them, so pods there need the regional one.
const OPT_IN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-west-1",
    "eu-central-2",
    "eu-south-1",
    "eu-south-2",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
];

/// The issuer's host and path, as IAM names the provider.
pub fn host_path(issuer: &str) -> &str {
    issuer.strip_prefix("https://").unwrap_or(issuer).trim_end_matches('/')
}

/// The region of an EKS issuer (`oidc.eks.<region>.amazonaws.com/id/…`).
pub fn issuer_region(issuer: &str) -> Option<String> {
    let host = host_path(issuer).split('/').next()?;
    let rest = host.strip_prefix("oidc.eks.")?;
    let region = rest.split('.').next()?;
    names::region(region).is_ok().then(|| region.to_owned())
}

struct Run<'a> {
    ctx: &'a Context,
    iam: &'a Iam,
    cluster: &'a Cluster,
    s: &'a Subject,
    checks: Vec<Check>,
}

/// Every check of one ServiceAccount.
pub fn check(ctx: &Context, iam: &Iam, cluster: &Cluster, s: &Subject) -> ServiceAccountReport {
    let role_arn = s.service_account.as_ref().and_then(|sa| sa.annotations.get(ANNOTATION_ROLE_ARN).cloned());
    let mut run = Run { ctx, iam, cluster, s, checks: Vec::new() };
    run.all();
    ServiceAccountReport::new(&s.namespace, &s.name, role_arn, run.checks)
}

impl Run<'_> {
    fn push(&mut self, c: Check) {
        self.checks.push(c);
    }

    fn sa_ref(&self) -> String {
        format!("{}/{}", self.s.namespace, self.s.name)
    }

    fn subject(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.s.namespace, self.s.name)
    }

    fn audience(&self) -> String {
        self.s
            .service_account
            .as_ref()
            .and_then(|sa| sa.annotations.get(ANNOTATION_AUDIENCE).cloned())
            .unwrap_or_else(|| STS_AUDIENCE.to_owned())
    }

    /// `irsa apply FILE` with a stack, else `other`.
    fn apply_or(&self, other: String) -> String {
        match &self.ctx.stack {
            Some(stack) => format!("irsa apply {}", stack.file),
            None => other,
        }
    }

    fn account(&self) -> Option<String> {
        self.ctx.stack.as_ref().map(|s| s.account_id.clone()).or_else(|| self.iam.account.clone())
    }

    fn provider_arn(&self, issuer: &str) -> String {
        match self.iam.provider.got().and_then(Option::as_ref) {
            Some(p) => p.arn.clone(),
            None => format!(
                "arn:aws:iam::{}:oidc-provider/{}",
                self.account().unwrap_or_else(|| "ACCOUNT".into()),
                host_path(issuer)
            ),
        }
    }

    /// The statement that admits exactly this ServiceAccount.
    fn statement(&self, issuer: &str) -> String {
        let host = host_path(issuer);
        json!({
            "Effect": "Allow",
            "Principal": {"Federated": self.provider_arn(issuer)},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {format!("{host}:aud"): self.audience(), format!("{host}:sub"): self.subject()}}
        })
        .to_string()
    }

    fn all(&mut self) {
        let issuer = self.cluster.issuer.clone();
        self.provider(issuer.as_deref());
        let Some(role_arn) = self.annotation() else {
            self.webhook();
            return;
        };
        let role = self.role(&role_arn);
        if let (Some(issuer), Some(role)) = (issuer.as_deref(), role) {
            self.trust(issuer, &role);
        }
        if let Some(issuer) = issuer.as_deref() {
            self.token(issuer);
        }
        self.assumed();
        self.workloads(&role_arn);
        self.expiration();
        self.webhook();
        self.regional();
    }

    // 1. the provider and its client ids
    fn provider(&mut self, issuer: Option<&str>) {
        let Some(issuer) = issuer else {
            let fix = match &self.ctx.stack {
                Some(s) => format!("set [cluster] oidc_issuer in {} (aws eks describe-cluster --name NAME --query cluster.identity.oidc.issuer)", s.file),
                None => "give the stack file's [cluster] oidc_issuer, or let the API server serve /.well-known/openid-configuration".into(),
            };
            return self.push(Check::error(
                "provider",
                "the cluster's issuer is not known: it serves no OIDC discovery document",
                fix,
            ));
        };
        let audience = self.audience();
        let check = match &self.iam.provider {
            Read::Failed(why) => Check::unknown("provider", why.clone()),
            Read::Got(None) => Check::error(
                "provider",
                format!(
                    "no IAM OIDC provider for {} in account {}: STS cannot verify any token of the cluster",
                    host_path(issuer),
                    self.account().unwrap_or_else(|| "(unknown)".into())
                ),
                self.apply_or(format!(
                    "aws iam create-open-id-connect-provider --url {issuer} --client-id-list {audience}"
                )),
            ),
            Read::Got(Some(p)) if !p.client_ids.contains(&audience) => Check::error(
                "provider",
                format!(
                    "provider {} lacks the client id {audience} (it has {}): STS refuses the token's audience",
                    p.arn,
                    if p.client_ids.is_empty() { "none".into() } else { p.client_ids.join(", ") }
                ),
                format!(
                    "aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn {} --client-id {audience}",
                    p.arn
                ),
            ),
            Read::Got(Some(p)) => Check::ok("provider", format!("{} has client id {audience}", p.arn)),
        };
        self.push(check);
    }

    // 2. the annotation
    fn annotation(&mut self) -> Option<String> {
        let ns = self.s.namespace.clone();
        let name = self.s.name.clone();
        let Some(sa) = &self.s.service_account else {
            let fix = self.apply_or(format!("kubectl -n {ns} create serviceaccount {name}"));
            self.push(Check::error("annotation", format!("ServiceAccount {} does not exist", self.sa_ref()), fix));
            return None;
        };
        let expected = self.s.bound.as_ref().map(|b| b.role_arn.clone());
        let annotate = |arn: &str| {
            format!("kubectl -n {ns} annotate serviceaccount {name} --overwrite {ANNOTATION_ROLE_ARN}={arn}")
        };
        let Some(arn) = sa.annotations.get(ANNOTATION_ROLE_ARN).cloned() else {
            let fix = self.apply_or(annotate(expected.as_deref().unwrap_or("arn:aws:iam::ACCOUNT:role/NAME")));
            self.push(Check::error(
                "annotation",
                format!(
                    "ServiceAccount {} has no {ANNOTATION_ROLE_ARN} annotation: the webhook gives its pods nothing",
                    self.sa_ref()
                ),
                fix,
            ));
            return None;
        };
        if let Err(e) = names::role_arn(&arn) {
            let fix = self.apply_or(annotate(expected.as_deref().unwrap_or("arn:aws:iam::ACCOUNT:role/NAME")));
            self.push(Check::error(
                "annotation",
                format!("{ANNOTATION_ROLE_ARN} is not a role ARN: {}", e.message),
                fix,
            ));
            return None;
        }
        if let Some(expected) = expected.filter(|e| *e != arn) {
            self.push(Check::error(
                "annotation",
                format!("{ANNOTATION_ROLE_ARN} is {arn}, the stack binds {expected}"),
                self.apply_or(annotate(&expected)),
            ));
            return Some(arn);
        }
        self.push(Check::ok("annotation", format!("{ANNOTATION_ROLE_ARN} = {arn}")));
        Some(arn)
    }

    // 2. the role: exists, in the right account
    fn role(&mut self, arn: &str) -> Option<super::facts::Role> {
        let Ok(parsed) = names::role_arn(arn) else { return None };
        if let Some(account) = self.ctx.stack.as_ref().map(|s| s.account_id.clone())
            && parsed.account != account
        {
            self.push(Check::error(
                "role",
                format!("the role is in account {}, the stack's account is {account}", parsed.account),
                self.apply_or(String::new()),
            ));
            return None;
        }
        if let Some(account) = &self.iam.account
            && parsed.account != account
        {
            self.push(Check::unknown(
                "role",
                format!("the role is in account {}, the credentials read account {account}", parsed.account),
            ));
            return None;
        }
        let roles = match &self.iam.roles {
            Read::Failed(why) => {
                self.push(Check::unknown("role", why.clone()));
                return None;
            }
            Read::Got(roles) => roles,
        };
        let Some(role) = roles.iter().find(|r| r.name.eq_ignore_ascii_case(parsed.name)).cloned() else {
            let issuer = self.cluster.issuer.clone().unwrap_or_default();
            let trust = format!("{{\"Version\":\"2012-10-17\",\"Statement\":[{}]}}", self.statement(&issuer));
            let managed = self.s.bound.as_ref().is_some_and(|b| b.role_managed);
            let fix = if managed {
                self.apply_or(String::new())
            } else {
                format!(
                    "create it: aws iam create-role --role-name {}{} --assume-role-policy-document '{trust}' (or annotate the ServiceAccount with an existing role)",
                    parsed.name,
                    if parsed.path == "/" { String::new() } else { format!(" --path {}", parsed.path) }
                )
            };
            self.push(Check::error(
                "role",
                format!("role {} does not exist in account {}", parsed.name, parsed.account),
                fix,
            ));
            return None;
        };
        if role.path != parsed.path {
            self.push(Check::error(
                "role",
                format!("role {} has path {}, the annotation says {}", role.name, role.path, parsed.path),
                format!(
                    "kubectl -n {} annotate serviceaccount {} --overwrite {ANNOTATION_ROLE_ARN}={}",
                    self.s.namespace, self.s.name, role.arn
                ),
            ));
            return None;
        }
        self.push(Check::ok("role", format!("{} exists", role.arn)));
        Some(role)
    }

    // 3. the trust policy, as STS evaluates it
    fn trust(&mut self, issuer: &str, role: &super::facts::Role) {
        let doc = match &role.trust {
            Ok(doc) => doc,
            Err(why) => return self.push(Check::error("trust", format!("the trust policy cannot be read: {why}"), self.apply_or(format!("aws iam update-assume-role-policy --role-name {} --policy-document '{{\"Version\":\"2012-10-17\",\"Statement\":[{}]}}'", role.name, self.statement(issuer))))),
        };
        let provider_arn = self.provider_arn(issuer);
        let host = host_path(issuer);
        let expected_sub = self.subject();
        let expected_aud = vec![self.audience()];
        // What the pod will present: the real token's claims when there is one.
        let (sub, aud, source) = match self.s.token.as_ref().and_then(Read::got) {
            Some(c) => (c.sub.clone(), c.aud.clone(), "the token's"),
            None => (expected_sub.clone(), expected_aud, "the expected"),
        };
        let identity = WebIdentity { provider_arn: &provider_arn, issuer_host_path: host, sub: &sub, aud: &aud };
        let managed = self.s.bound.as_ref().is_some_and(|b| b.role_managed);
        let add = if managed {
            self.apply_or(String::new())
        } else {
            format!("add this statement to role {}'s trust policy: {}", role.name, self.statement(issuer))
        };
        let check = match trust::evaluate(doc, &identity) {
            Decision::Allowed(by) => Check::ok("trust", format!("{} admits {sub} ({source} claims)", by.join(", "))),
            Decision::Denied(by) => Check::error(
                "trust",
                format!("{by} of role {} denies {sub}: an explicit Deny wins over every Allow", role.name),
                format!("remove {by} from role {}'s trust policy, or narrow its condition", role.name),
            ),
            Decision::NotAllowed(why) if why.is_empty() => Check::error(
                "trust",
                format!("no statement of role {}'s trust policy trusts {provider_arn}", role.name),
                add,
            ),
            Decision::NotAllowed(why) => Check::error(
                "trust",
                format!("role {}'s trust policy does not admit {sub}: {}", role.name, why.join("; ")),
                add,
            ),
            Decision::Undecided(why) => Check::unknown("trust", format!("irsa cannot evaluate {why}")),
        };
        self.push(check);

        let mut broad = false;
        for (label, breadth) in trust::breadth(doc, &provider_arn, host) {
            broad = true;
            let exact = format!("\"StringEquals\": {{\"{host}:sub\": \"{expected_sub}\"}}");
            let check = match breadth {
                Breadth::AnySubject => Check::error(
                    "trust-subject",
                    format!(
                        "{label} of role {} has no {host}:sub condition: it admits every ServiceAccount of the cluster",
                        role.name
                    ),
                    if managed {
                        self.apply_or(String::new())
                    } else {
                        format!("add {exact} to the Condition of {label}")
                    },
                ),
                Breadth::Wildcard(pattern) => {
                    let others = self.admitted_besides(&pattern);
                    Check::warning(
                        "trust-subject",
                        format!(
                            "{label} of role {} admits `{pattern}`: {}{others}",
                            role.name,
                            trust::describe_pattern(&pattern)
                        ),
                        format!("replace StringLike `{pattern}` with {exact} (one subject per ServiceAccount)"),
                    )
                }
            };
            self.push(check);
        }
        if !broad {
            self.push(Check::ok("trust-subject", "every statement for the provider names exact subjects"));
        }
        if trust::constrains_audience(doc, &provider_arn, host) {
            self.push(Check::ok("trust-audience", "every statement for the provider names the audience"));
        } else {
            self.push(Check::warning(
                "trust-audience",
                format!("a statement of role {} for the provider has no {host}:aud condition", role.name),
                format!("add \"StringEquals\": {{\"{host}:aud\": \"{}\"}} to its Condition", self.audience()),
            ));
        }
        let (size, quota) = (doc.size(), self.iam.quotas.trust_policy_size);
        let check = if size > quota {
            Check::error(
                "trust-size",
                format!("the trust policy has {size} characters, over the account's quota of {quota}"),
                "move ServiceAccounts to another role, or raise AssumeRolePolicySizeQuota in Service Quotas",
            )
        } else if size * 10 >= quota * 9 {
            Check::warning(
                "trust-size",
                format!("the trust policy has {size} of {quota} characters: few more subjects fit"),
                "split the role's ServiceAccounts over two roles, or raise AssumeRolePolicySizeQuota",
            )
        } else {
            Check::ok("trust-size", format!("{size} of {quota} characters"))
        };
        self.push(check);
    }

    /// `; in namespace backend that is also a, b`: the other
    /// ServiceAccounts of the namespace a wildcard lets in.
    fn admitted_besides(&self, pattern: &str) -> String {
        let mut others = Vec::new();
        for (ns, names) in &self.cluster.service_accounts {
            for n in names {
                let sub = format!("system:serviceaccount:{ns}:{n}");
                if (ns != &self.s.namespace || n != &self.s.name) && crate::model::policy_doc::glob(pattern, &sub) {
                    others.push(format!("{ns}/{n}"));
                }
            }
        }
        if others.is_empty() { String::new() } else { format!("; today that includes {}", others.join(", ")) }
    }

    // 4. a real token
    fn token(&mut self, issuer: &str) {
        let Some(token) = &self.s.token else { return };
        let claims = match token {
            Read::Failed(why) => return self.push(Check::unknown("token", why.clone())),
            Read::Got(c) => c,
        };
        let audience = self.audience();
        let check = if host_path(&claims.iss) != host_path(issuer) {
            Check::error(
                "token",
                format!("the cluster's tokens carry iss {}, the provider is for {issuer}", claims.iss),
                match &self.ctx.stack {
                    Some(s) => {
                        format!("set [cluster] oidc_issuer = \"{}\" in {} and irsa apply it", claims.iss, s.file)
                    }
                    None => format!(
                        "aws iam create-open-id-connect-provider --url {} --client-id-list {audience}",
                        claims.iss
                    ),
                },
            )
        } else if !claims.aud.contains(&audience) {
            Check::error(
                "token",
                format!("the token's aud is {}, not {audience}", claims.aud.join(", ")),
                "the API server must accept the audience: check its --api-audiences",
            )
        } else if claims.sub != self.subject() {
            Check::error(
                "token",
                format!("the token's sub is {}, not {}", claims.sub, self.subject()),
                "the API server issues tokens for another subject: check its --service-account-issuer",
            )
        } else {
            Check::ok("token", format!("a token for {audience} carries iss {}, sub {}", claims.iss, claims.sub))
        };
        self.push(check);
    }

    fn assumed(&mut self) {
        let check = match &self.s.assumed {
            None => return,
            Some(Read::Failed(why)) => Check::error(
                "assume",
                format!("STS AssumeRoleWithWebIdentity refused the token: {why}"),
                "fix the errors above; IAM takes a few seconds to see a new trust policy",
            ),
            Some(Read::Got(arn)) => Check::ok("assume", format!("STS AssumeRoleWithWebIdentity answered as {arn}")),
        };
        self.push(check);
    }

    // 5. the Deployments and their pods
    fn workloads(&mut self, role_arn: &str) {
        let ns = self.s.namespace.clone();
        let deployments = match self.cluster.deployments.get(&ns) {
            None => return,
            Some(Read::Failed(why)) => return self.push(Check::unknown("workloads", why.clone())),
            Some(Read::Got(d)) => d,
        };
        let running: Vec<&Deployment> = match &self.s.bound {
            Some(bound) => {
                let mut found = Vec::new();
                for name in &bound.deployments {
                    match deployments.iter().find(|d| &d.name == name) {
                        None => self.push(Check::error(
                            "workloads",
                            format!("deployment/{name} does not exist in namespace {ns}"),
                            format!("deploy it, or drop deployment/{name} from the binding's workloads"),
                        )),
                        Some(d) if d.service_account != self.s.name => self.push(Check::error(
                            "workloads",
                            format!(
                                "deployment/{name} runs as ServiceAccount {}, not {}: its pods get none of this role",
                                d.service_account, self.s.name
                            ),
                            self.apply_or(format!(
                                "kubectl -n {ns} set serviceaccount deployment/{name} {}",
                                self.s.name
                            )),
                        )),
                        Some(d) => found.push(d),
                    }
                }
                found
            }
            None => deployments.iter().filter(|d| d.service_account == self.s.name).collect(),
        };
        if running.is_empty() && self.s.bound.as_ref().is_none_or(|b| b.deployments.is_empty()) {
            self.push(Check::ok("workloads", format!("no Deployment in namespace {ns} runs as {}", self.s.name)));
        }
        for d in running {
            self.push(Check::ok("workloads", format!("deployment/{} runs as {}", d.name, self.s.name)));
            self.pods(d, role_arn);
        }
    }

    fn pods(&mut self, d: &Deployment, role_arn: &str) {
        let ns = &self.s.namespace;
        let restart = format!("kubectl -n {ns} rollout restart deployment/{}", d.name);
        let set_at = self.s.service_account.as_ref().and_then(|sa| sa.role_arn_set_at);
        let list = |pods: &[&str]| -> String {
            let shown: Vec<&str> = pods.iter().take(5).copied().collect();
            let more = pods.len().saturating_sub(5);
            if more > 0 { format!("{} and {more} more", shown.join(", ")) } else { shown.join(", ") }
        };
        let total = d.pods.len();
        if total == 0 {
            return self.push(Check::ok("pods", format!("deployment/{} has no running pods to check", d.name)));
        }
        let (mut older, mut missing, mut other_role, mut no_file, mut host_network) =
            (vec![], vec![], vec![], vec![], vec![]);
        let mut skipped: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for pod in &d.pods {
            if pod.host_network {
                host_network.push(pod.name.as_str());
            }
            if let Some(at) = set_at
                && pod.created_at < at
            {
                older.push(pod.name.as_str());
                continue;
            }
            let skip: Vec<&str> =
                pod.annotations.get(ANNOTATION_SKIP).map(|s| s.split(',').map(str::trim).collect()).unwrap_or_default();
            for c in &pod.containers {
                if skip.contains(&c.name.as_str()) {
                    skipped.entry(c.name.clone()).or_default().push(pod.name.as_str());
                    continue;
                }
                if d.own_role_arns.contains_key(&c.name) {
                    continue;
                }
                match &c.role_arn {
                    None => missing.push(pod.name.as_str()),
                    Some(arn) if arn != role_arn => other_role.push((pod.name.as_str(), arn.clone())),
                    Some(_) if c.token_file.is_none() => no_file.push(pod.name.as_str()),
                    Some(_) => {}
                }
            }
        }
        let dedup = |v: &mut Vec<&str>| v.dedup();
        dedup(&mut missing);
        dedup(&mut no_file);
        let name = &d.name;
        let mut bad = false;
        if !older.is_empty() {
            bad = true;
            let at = set_at.map(|t| t.to_string()).unwrap_or_default();
            self.push(Check::error(
                "pods",
                format!(
                    "{} of {total} pods of deployment/{name} started before the role annotation was set ({at}): the webhook never gave them this role ({})",
                    older.len(),
                    list(&older)
                ),
                restart.clone(),
            ));
        }
        if !missing.is_empty() {
            bad = true;
            let webhook_missing = self.cluster.webhook.got().is_some_and(Vec::is_empty);
            self.push(Check::error(
                "pods",
                format!(
                    "{} of {total} pods of deployment/{name} have no AWS_ROLE_ARN: the pod identity webhook did not inject credentials ({})",
                    missing.len(),
                    list(&missing)
                ),
                if webhook_missing { format!("install the pod identity webhook, then {restart}") } else { restart.clone() },
            ));
        }
        if !other_role.is_empty() {
            bad = true;
            let pods: Vec<&str> = other_role.iter().map(|(p, _)| *p).collect();
            self.push(Check::error(
                "pods",
                format!(
                    "pods of deployment/{name} carry AWS_ROLE_ARN {}, the annotation says {role_arn} ({})",
                    other_role[0].1,
                    list(&pods)
                ),
                restart.clone(),
            ));
        }
        if !no_file.is_empty() {
            bad = true;
            self.push(Check::error(
                "pods",
                format!(
                    "pods of deployment/{name} have AWS_ROLE_ARN but no AWS_WEB_IDENTITY_TOKEN_FILE ({})",
                    list(&no_file)
                ),
                restart.clone(),
            ));
        }
        for (container, value) in &d.own_role_arns {
            if value != role_arn {
                self.push(Check::warning(
                    "pods",
                    format!("container {container} of deployment/{name} sets its own AWS_ROLE_ARN {value}: the webhook leaves it alone"),
                    format!("remove AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE from container {container}'s env"),
                ));
            }
        }
        for (container, pods) in &skipped {
            self.push(Check::warning(
                "pods",
                format!(
                    "container {container} of deployment/{name} is in {ANNOTATION_SKIP}: it gets no credentials ({})",
                    list(pods)
                ),
                format!("remove {container} from the pod template's {ANNOTATION_SKIP} annotation if it calls AWS"),
            ));
        }
        if !host_network.is_empty() {
            self.push(Check::warning(
                "pods",
                format!(
                    "pods of deployment/{name} use hostNetwork: they reach the node's instance metadata, so a tool without web identity support gets the node's role instead ({})",
                    list(&host_network)
                ),
                "set hostNetwork: false, or give the nodes IMDSv2 with a hop limit of 1",
            ));
        }
        if !bad {
            self.push(Check::ok(
                "pods",
                format!(
                    "{total} pod{} of deployment/{name} carry AWS_ROLE_ARN and the token file",
                    if total == 1 { "" } else { "s" }
                ),
            ));
        }
    }

    fn expiration(&mut self) {
        let sa = self.s.service_account.as_ref().and_then(|sa| sa.annotations.get(ANNOTATION_EXPIRATION));
        let Some(value) = sa else { return };
        let fix = format!(
            "kubectl -n {} annotate serviceaccount {} --overwrite {ANNOTATION_EXPIRATION}=86400",
            self.s.namespace, self.s.name
        );
        let check = match value.parse::<i64>() {
            Err(_) => Check::warning(
                "token-expiration",
                format!("{ANNOTATION_EXPIRATION} `{value}` is not a number of seconds: the webhook ignores it"),
                fix,
            ),
            Ok(n) if n < MIN_EXPIRATION => Check::warning(
                "token-expiration",
                format!(
                    "{ANNOTATION_EXPIRATION} is {n} s, under {MIN_EXPIRATION}: the webhook raises it to {MIN_EXPIRATION}"
                ),
                fix,
            ),
            Ok(n) => Check::ok("token-expiration", format!("tokens live {n} s")),
        };
        self.push(check);
    }

    // 6. the webhook
    fn webhook(&mut self) {
        let check = match &self.cluster.webhook {
            Read::Failed(why) => Check::unknown("webhook", why.clone()),
            Read::Got(names) if names.is_empty() => Check::error(
                "webhook",
                "no MutatingWebhookConfiguration runs the pod identity webhook on pods: no pod gets AWS_ROLE_ARN",
                "install the amazon-eks-pod-identity-webhook (EKS runs it for you), then restart the pods",
            ),
            Read::Got(names) => {
                Check::ok("webhook", format!("MutatingWebhookConfiguration {} mutates pods", names.join(", ")))
            }
        };
        self.push(check);
    }

    fn regional(&mut self) {
        let Some(region) = self.ctx.region.clone() else { return };
        let set = self
            .s
            .service_account
            .as_ref()
            .and_then(|sa| sa.annotations.get(ANNOTATION_REGIONAL))
            .is_some_and(|v| v == "true");
        let check = if set {
            Check::ok("sts-regional-endpoints", "pods use the regional STS endpoint")
        } else if OPT_IN_REGIONS.contains(&region.as_str()) {
            Check::warning(
                "sts-regional-endpoints",
                format!(
                    "{region} is an opt-in region: tokens of the global STS endpoint are not valid there unless the account enables them"
                ),
                format!(
                    "kubectl -n {} annotate serviceaccount {} {ANNOTATION_REGIONAL}=true, then restart its pods",
                    self.s.namespace, self.s.name
                ),
            )
        } else {
            Check::ok("sts-regional-endpoints", format!("{region} does not need the regional STS endpoint"))
        };
        self.push(check);
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use serde_json::json;

    use super::super::Status;
    use super::super::facts::{Container, Pod, Provider, Role, ServiceAccount};
    use super::super::jwt::Claims;
    use super::*;
    use crate::model::policy_doc::PolicyDocument;
    use crate::model::quotas::Quotas;

    const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC";
    const HOST: &str = "oidc.eks.us-east-1.amazonaws.com/id/ABC";
    const PROVIDER: &str = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC";
    const ROLE: &str = "arn:aws:iam::123456789012:role/app";

    struct World {
        ctx: Context,
        iam: Iam,
        cluster: Cluster,
        subject: Subject,
    }

    fn trust(condition: serde_json::Value) -> PolicyDocument {
        PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Federated": PROVIDER}, "Action": "sts:AssumeRoleWithWebIdentity", "Condition": condition}]}))
    }

    fn healthy() -> World {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let container = Container {
            name: "app".into(),
            role_arn: Some(ROLE.into()),
            token_file: Some("/var/run/secrets/eks.amazonaws.com/serviceaccount/token".into()),
        };
        let pod = Pod {
            name: "web-1".into(),
            created_at: at("2026-01-01T00:10:00Z"),
            host_network: false,
            annotations: BTreeMap::new(),
            containers: vec![container],
        };
        World {
            ctx: Context { stack: None, region: Some("us-east-1".into()) },
            iam: Iam {
                account: Some("123456789012".into()),
                provider: Read::Got(Some(Provider {
                    arn: PROVIDER.into(),
                    client_ids: vec!["sts.amazonaws.com".into()],
                })),
                roles: Read::Got(vec![Role {
                    name: "app".into(),
                    path: "/".into(),
                    arn: ROLE.into(),
                    trust: Ok(trust(
                        json!({"StringEquals": {format!("{HOST}:sub"): "system:serviceaccount:backend:app",
                        format!("{HOST}:aud"): "sts.amazonaws.com"}}),
                    )),
                }]),
                quotas: Quotas::default(),
            },
            cluster: Cluster {
                issuer: Some(ISSUER.into()),
                webhook: Read::Got(vec!["pod-identity-webhook".into()]),
                deployments: BTreeMap::from([(
                    "backend".to_owned(),
                    Read::Got(vec![Deployment {
                        name: "web".into(),
                        service_account: "app".into(),
                        own_role_arns: BTreeMap::new(),
                        pods: vec![pod],
                    }]),
                )]),
                service_accounts: BTreeMap::from([("backend".to_owned(), vec!["app".to_owned(), "other".to_owned()])]),
            },
            subject: Subject {
                namespace: "backend".into(),
                name: "app".into(),
                service_account: Some(ServiceAccount {
                    annotations: BTreeMap::from([(ANNOTATION_ROLE_ARN.to_owned(), ROLE.to_owned())]),
                    role_arn_set_at: Some(at("2026-01-01T00:00:00Z")),
                }),
                bound: None,
                token: Some(Read::Got(Claims {
                    iss: ISSUER.into(),
                    sub: "system:serviceaccount:backend:app".into(),
                    aud: vec!["sts.amazonaws.com".into()],
                    lifetime_seconds: Some(600),
                })),
                assumed: None,
            },
        }
    }

    fn run(w: &World) -> Vec<(String, Status, String)> {
        check(&w.ctx, &w.iam, &w.cluster, &w.subject)
            .checks
            .into_iter()
            .map(|c| (c.check.to_owned(), c.status, c.message + " | " + &c.fix.unwrap_or_default()))
            .collect()
    }

    fn problems(w: &World) -> Vec<(String, Status, String)> {
        run(w).into_iter().filter(|(_, s, _)| *s != Status::Ok).collect()
    }

    fn set_trust(w: &mut World, condition: serde_json::Value) {
        if let Read::Got(roles) = &mut w.iam.roles {
            roles[0].trust = Ok(trust(condition));
        }
    }

    fn pod(w: &mut World) -> &mut Pod {
        let Some(Read::Got(d)) = w.cluster.deployments.get_mut("backend") else { unreachable!() };
        &mut d[0].pods[0]
    }

    #[test]
    fn a_healthy_chain_is_all_ok() {
        let w = healthy();
        assert_eq!(problems(&w), vec![]);
        let checks: Vec<String> = run(&w).into_iter().map(|(c, _, _)| c).collect();
        assert_eq!(
            checks,
            [
                "provider",
                "annotation",
                "role",
                "trust",
                "trust-subject",
                "trust-audience",
                "trust-size",
                "token",
                "workloads",
                "pods",
                "webhook",
                "sts-regional-endpoints"
            ]
        );
    }

    /// Each broken link: (what is broken, the check, its status, words of the message and fix).
    #[test]
    fn each_broken_link_is_named_with_its_fix() {
        type Break = fn(&mut World);
        let table: Vec<(&str, Break, &str, Status, &str)> = vec![
            (
                "no provider",
                |w| w.iam.provider = Read::Got(None),
                "provider",
                Status::Error,
                "aws iam create-open-id-connect-provider --url https://oidc",
            ),
            (
                "no client id",
                |w| w.iam.provider = Read::Got(Some(Provider { arn: PROVIDER.into(), client_ids: vec![] })),
                "provider",
                Status::Error,
                "lacks the client id sts.amazonaws.com",
            ),
            (
                "another namespace",
                |w| {
                    set_trust(
                        w,
                        json!({"StringEquals": {format!("{HOST}:sub"): "system:serviceaccount:other:app", format!("{HOST}:aud"): "sts.amazonaws.com"}}),
                    )
                },
                "trust",
                Status::Error,
                "wants `system:serviceaccount:other:app`",
            ),
            (
                "no sub",
                |w| set_trust(w, json!({"StringEquals": {format!("{HOST}:aud"): "sts.amazonaws.com"}})),
                "trust-subject",
                Status::Error,
                "admits every ServiceAccount of the cluster",
            ),
            (
                "wildcard",
                |w| {
                    set_trust(
                        w,
                        json!({"StringLike": {format!("{HOST}:sub"): "system:serviceaccount:backend:*"}, "StringEquals": {format!("{HOST}:aud"): "sts.amazonaws.com"}}),
                    )
                },
                "trust-subject",
                Status::Warning,
                "every ServiceAccount of namespace backend; today that includes backend/other",
            ),
            (
                "missing role",
                |w| w.iam.roles = Read::Got(vec![]),
                "role",
                Status::Error,
                "aws iam create-role --role-name app",
            ),
            (
                "on default",
                |w| {
                    let Some(Read::Got(d)) = w.cluster.deployments.get_mut("backend") else { unreachable!() };
                    d[0].service_account = "default".into();
                    w.subject.bound = Some(super::super::facts::Bound {
                        role_arn: ROLE.into(),
                        role_managed: true,
                        deployments: vec!["web".into()],
                    });
                },
                "workloads",
                Status::Error,
                "kubectl -n backend set serviceaccount deployment/web app",
            ),
            (
                "older pods",
                |w| pod(w).created_at = "2025-12-31T23:00:00Z".parse().unwrap(),
                "pods",
                Status::Error,
                "started before the role annotation",
            ),
            (
                "no webhook",
                |w| w.cluster.webhook = Read::Got(vec![]),
                "webhook",
                Status::Error,
                "install the amazon-eks-pod-identity-webhook",
            ),
            (
                "no injection",
                |w| pod(w).containers[0] = Container { name: "app".into(), ..Default::default() },
                "pods",
                Status::Error,
                "have no AWS_ROLE_ARN",
            ),
            ("hostNetwork", |w| pod(w).host_network = true, "pods", Status::Warning, "hostNetwork"),
            (
                "skipped container",
                |w| {
                    pod(w).annotations.insert(ANNOTATION_SKIP.into(), "app".into());
                },
                "pods",
                Status::Warning,
                "gets no credentials",
            ),
            (
                "short tokens",
                |w| {
                    w.subject
                        .service_account
                        .as_mut()
                        .unwrap()
                        .annotations
                        .insert(ANNOTATION_EXPIRATION.into(), "300".into());
                },
                "token-expiration",
                Status::Warning,
                "raises it to 600",
            ),
            (
                "token of another issuer",
                |w| {
                    if let Some(Read::Got(c)) = &mut w.subject.token {
                        c.iss = "https://kubernetes.default.svc".into();
                    }
                },
                "token",
                Status::Error,
                "carry iss https://kubernetes.default.svc",
            ),
            (
                "forbidden webhook list",
                |w| {
                    w.cluster.webhook = Read::Failed(
                        "forbidden (needs list on mutatingwebhookconfigurations.admissionregistration.k8s.io)".into(),
                    )
                },
                "webhook",
                Status::Unknown,
                "could not check: forbidden (needs list on",
            ),
            (
                "opt-in region",
                |w| w.ctx.region = Some("af-south-1".into()),
                "sts-regional-endpoints",
                Status::Warning,
                "sts-regional-endpoints=true",
            ),
            (
                "explicit deny",
                |w| {
                    if let Read::Got(roles) = &mut w.iam.roles {
                        let mut doc = roles[0].trust.clone().unwrap().canonical().clone();
                        let mut deny = doc["Statement"][0].clone();
                        deny["Effect"] = json!("Deny");
                        deny["Sid"] = json!("Block");
                        doc["Statement"].as_array_mut().unwrap().push(deny);
                        roles[0].trust = Ok(PolicyDocument::from_value(doc));
                    }
                },
                "trust",
                Status::Error,
                "statement Block of role app denies",
            ),
        ];
        for (case, breaks, check, status, words) in table {
            let mut w = healthy();
            breaks(&mut w);
            let found = problems(&w);
            assert!(
                found.iter().any(|(c, s, text)| c == check && *s == status && text.contains(words)),
                "{case}: wanted {check} {status:?} with `{words}`, got {found:#?}"
            );
            // Errors come first in the report.
            let statuses: Vec<Status> = check_statuses(&w);
            assert!(statuses.windows(2).all(|p| p[0] <= p[1]), "{case}: {statuses:?}");
        }
    }

    fn check_statuses(w: &World) -> Vec<Status> {
        check(&w.ctx, &w.iam, &w.cluster, &w.subject).checks.iter().map(|c| c.status).collect()
    }

    #[test]
    fn regions_come_from_eks_issuers() {
        assert_eq!(issuer_region(ISSUER).as_deref(), Some("us-east-1"));
        assert_eq!(issuer_region("https://kubernetes.default.svc"), None);
    }
}
