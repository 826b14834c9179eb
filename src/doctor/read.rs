//! The live reads of `irsa doctor`, into [`super::facts`].
//!
//! IAM is read in bulk, whatever the number of ServiceAccounts:
//! `ListOpenIDConnectProviders` and one `GetOpenIDConnectProvider` (the
//! issuer's), `ListRoles` (every role with its trust policy, 1,000 to a
//! page) and `GetAccountSummary` (the trust-size quota): 4 calls for an
//! account of up to 1,000 roles. The cluster: one LIST of ServiceAccounts,
//! Deployments and pods per namespace, one LIST of
//! MutatingWebhookConfigurations, the discovery document when the stack
//! names no issuer, and one TokenRequest per ServiceAccount (a token is
//! per ServiceAccount by nature). A read that is refused becomes the check
//! that needed it saying "could not check", and the others still run.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams, PostParams};

use super::checks::{ANNOTATION_AUDIENCE, MIN_EXPIRATION};
use super::facts::{self, Read};
use super::jwt;
use crate::cluster::{Kube, KubeError, read_again, request};
use crate::model::desired::markers::{ANNOTATION_ROLE_ARN, STS_AUDIENCE};
use crate::model::policy_doc::PolicyDocument;
use crate::refresh::aws::{CallError, Iam, call};
use crate::refresh::kube::role_arn_set_at;

/// An IAM refusal or failure, as a check says it.
fn iam_failure(e: &CallError, permission: &str) -> String {
    if e.code.as_deref().is_some_and(|c| c.contains("AccessDenied") || c == "UnauthorizedOperation") {
        format!("forbidden (needs {permission})")
    } else {
        e.to_string()
    }
}

/// IAM, in bulk.
pub async fn iam(iam: &Iam, issuer: Option<&str>) -> facts::Iam {
    let mut account = None;
    let provider = match issuer {
        None => Read::Got(None),
        Some(issuer) => match provider(iam, super::checks::host_path(issuer), &mut account).await {
            Ok(p) => Read::Got(p),
            Err((e, permission)) => Read::Failed(iam_failure(&e, permission)),
        },
    };
    let roles = match roles(iam).await {
        Ok(roles) => {
            if account.is_none() {
                account = roles.first().and_then(|r| r.arn.split(':').nth(4)).map(str::to_owned);
            }
            Read::Got(roles)
        }
        Err(e) => Read::Failed(iam_failure(&e, "iam:ListRoles")),
    };
    let quotas = match iam.quotas().await {
        Ok(q) => q,
        Err(e) => {
            tracing::warn!("cannot read the account's quotas ({e}); checking trust sizes against the defaults");
            Default::default()
        }
    };
    facts::Iam { account, provider, roles, quotas }
}

async fn provider(
    iam: &Iam,
    host: &str,
    account: &mut Option<String>,
) -> Result<Option<facts::Provider>, (CallError, &'static str)> {
    let list = call("ListOpenIDConnectProviders", iam.client.list_open_id_connect_providers().send().await)
        .map_err(|e| (e, "iam:ListOpenIDConnectProviders"))?;
    let arns: Vec<&str> = list.open_id_connect_provider_list().iter().filter_map(|p| p.arn()).collect();
    *account = arns.first().and_then(|a| a.split(':').nth(4)).map(str::to_owned);
    let Some(arn) = arns.iter().find(|a| a.ends_with(&format!(":oidc-provider/{host}"))) else { return Ok(None) };
    let got = call(
        "GetOpenIDConnectProvider",
        iam.client.get_open_id_connect_provider().open_id_connect_provider_arn(*arn).send().await,
    )
    .map_err(|e| (e, "iam:GetOpenIDConnectProvider"))?;
    Ok(Some(facts::Provider { arn: (*arn).to_owned(), client_ids: got.client_id_list().to_vec() }))
}

async fn roles(iam: &Iam) -> Result<Vec<facts::Role>, CallError> {
    let mut roles = Vec::new();
    let mut pages = iam.client.list_roles().max_items(1000).into_paginator().send();
    while let Some(page) = pages.next().await {
        for r in call("ListRoles", page)?.roles() {
            let trust = match r.assume_role_policy_document() {
                Some(text) => PolicyDocument::parse(text).map_err(|p| p.message),
                None => Err("IAM returned no trust policy".to_owned()),
            };
            roles.push(facts::Role {
                name: r.role_name().to_owned(),
                path: r.path().to_owned(),
                arn: r.arn().to_owned(),
                trust,
            });
        }
    }
    Ok(roles)
}

/// A Kubernetes refusal or failure, as a check says it.
fn kube_failure(e: &kube::Error, verb: &str, resource: &str, namespace: Option<&str>) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => match namespace {
            Some(ns) => format!("forbidden (needs {verb} on {resource} in namespace {ns})"),
            None => format!("forbidden (needs {verb} on {resource})"),
        },
        other => format!("{verb} {resource}: {other}"),
    }
}

/// One namespace: its ServiceAccounts (name → facts), its Deployments with their pods.
pub struct Namespace {
    pub service_accounts: BTreeMap<String, facts::ServiceAccount>,
    pub deployments: Read<Vec<facts::Deployment>>,
}

/// A namespace's ServiceAccounts, Deployments and pods: three LISTs. When
/// listing ServiceAccounts is forbidden, those of `names` (a stack's) are
/// read one by one; without them nothing can be checked: an error.
pub async fn namespace(kube: &Kube, ns: &str, names: Option<&[String]>) -> Result<Namespace, KubeError> {
    let all = ListParams::default();
    let api: Api<ServiceAccount> = Api::namespaced(kube.client.clone(), ns);
    let what = || format!("listing the ServiceAccounts of namespace {ns}");
    let items = match (read_again(|| api.list(&all)).await, names) {
        (Ok(listed), _) => listed.items,
        (Err(kube::Error::Api(e)), Some(names)) if e.code == 403 => {
            let mut found = Vec::new();
            for name in names {
                let got = read_again(|| api.get_opt(name)).await;
                found.extend(
                    got.map_err(request(format!("reading ServiceAccount {ns}/{name} (listing is forbidden)")))?,
                );
            }
            found
        }
        (Err(e), _) => return Err(request(what())(e)),
    };
    let service_accounts = items
        .iter()
        .map(|sa| {
            let facts = facts::ServiceAccount {
                annotations: sa.metadata.annotations.clone().unwrap_or_default().into_iter().collect(),
                role_arn_set_at: role_arn_set_at(&sa.metadata),
            };
            (sa.metadata.name.clone().unwrap_or_default(), facts)
        })
        .collect();
    let api: Api<Deployment> = Api::namespaced(kube.client.clone(), ns);
    let deployments = match read_again(|| api.list(&all)).await {
        Err(e) => Read::Failed(kube_failure(&e, "list", "deployments.apps", Some(ns))),
        Ok(deployments) => {
            let api: Api<Pod> = Api::namespaced(kube.client.clone(), ns);
            match read_again(|| api.list(&all)).await {
                Err(e) => Read::Failed(kube_failure(&e, "list", "pods", Some(ns))),
                Ok(pods) => Read::Got(deployments.items.iter().map(|d| deployment(d, &pods.items)).collect()),
            }
        }
    };
    Ok(Namespace { service_accounts, deployments })
}

fn deployment(d: &Deployment, pods: &[Pod]) -> facts::Deployment {
    let template = d.spec.template.spec.as_ref();
    let service_account = template
        .and_then(|t| t.service_account_name.clone().or_else(|| t.service_account.clone()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    let own_role_arns = template
        .into_iter()
        .flat_map(|t| t.containers.iter().chain(t.init_containers.iter().flatten()))
        .filter_map(|c| env(c, "AWS_ROLE_ARN").map(|v| (c.name.clone(), v)))
        .collect();
    let selector = Some(&d.spec.selector);
    let pods = pods
        .iter()
        .filter(|p| selector.is_some_and(|s| selects(s, p.metadata.labels.as_ref())))
        .filter_map(pod)
        .collect();
    facts::Deployment { name: d.metadata.name.clone().unwrap_or_default(), service_account, own_role_arns, pods }
}

fn env(c: &k8s_openapi::api::core::v1::Container, name: &str) -> Option<String> {
    c.env.as_deref().unwrap_or_default().iter().find(|e| e.name == name).and_then(|e| e.value.clone())
}

/// A running pod; `None` for one on its way out or finished.
fn pod(p: &Pod) -> Option<facts::Pod> {
    if p.metadata.deletion_timestamp.is_some()
        || matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
    {
        return None;
    }
    let spec = p.spec.as_ref()?;
    Some(facts::Pod {
        name: p.metadata.name.clone().unwrap_or_default(),
        created_at: p.metadata.creation_timestamp.as_ref()?.0,
        host_network: spec.host_network.unwrap_or(false),
        annotations: p.metadata.annotations.clone().unwrap_or_default().into_iter().collect(),
        containers: spec
            .containers
            .iter()
            .map(|c| facts::Container {
                name: c.name.clone(),
                role_arn: env(c, "AWS_ROLE_ARN"),
                token_file: env(c, "AWS_WEB_IDENTITY_TOKEN_FILE"),
            })
            .collect(),
    })
}

/// Whether a label selector selects these labels (an empty selector
/// selects nothing here: a Deployment always has one).
pub fn selects(selector: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    let match_labels = selector.match_labels.as_ref();
    let expressions = selector.match_expressions.as_deref().unwrap_or_default();
    if match_labels.is_none_or(BTreeMap::is_empty) && expressions.is_empty() {
        return false;
    }
    match_labels.into_iter().flatten().all(|(k, v)| labels.get(k) == Some(v))
        && expressions.iter().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// The MutatingWebhookConfigurations that run the pod identity webhook on
/// pod CREATE: named for it (EKS: `pod-identity-webhook`, webhook
/// `iam-for-pods.amazonaws.com`) with a rule covering pods.
pub async fn webhook(kube: &Kube) -> Read<Vec<String>> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(kube.client.clone());
    let params = ListParams::default();
    let listed = match read_again(|| api.list(&params)).await {
        Ok(l) => l,
        Err(e) => {
            return Read::Failed(kube_failure(
                &e,
                "list",
                "mutatingwebhookconfigurations.admissionregistration.k8s.io",
                None,
            ));
        }
    };
    let mut names = Vec::new();
    for config in &listed.items {
        let config_name = config.metadata.name.clone().unwrap_or_default();
        let serves = config.webhooks.iter().flatten().any(|w| {
            let named = ["pod-identity", "iam-for-pods"].iter().any(|n| w.name.contains(n) || config_name.contains(n));
            let pods = w.rules.iter().flatten().any(|r| {
                let has = |list: &Option<Vec<String>>, want: &str| {
                    list.iter().flatten().any(|x| x == want || x == "*" || (want == "pods" && x == "pods/*"))
                };
                has(&r.resources, "pods") && has(&r.operations, "CREATE")
            });
            named && pods
        });
        if serves {
            names.push(config_name);
        }
    }
    Read::Got(names)
}

/// A ServiceAccount token, held only to hand to STS with `--assume`:
/// never printed, not even by `{:?}`.
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// A token of the ServiceAccount for its audience, as the kubelet asks for
/// one, and its claims. The token itself is never shown.
pub async fn token(
    kube: &Kube,
    ns: &str,
    name: &str,
    sa: &facts::ServiceAccount,
) -> (Read<jwt::Claims>, Option<Token>) {
    let audience = sa.annotations.get(ANNOTATION_AUDIENCE).cloned().unwrap_or_else(|| STS_AUDIENCE.to_owned());
    let api: Api<ServiceAccount> = Api::namespaced(kube.client.clone(), ns);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec![audience]),
            // The shortest a token may live: this one is only read.
            expiration_seconds: Some(MIN_EXPIRATION),
            ..Default::default()
        }),
        ..Default::default()
    };
    match api.create_token_request(name, &PostParams::default(), &request).await {
        Err(e) => (Read::Failed(kube_failure(&e, "create", "serviceaccounts/token", Some(ns))), None),
        Ok(answer) => match answer.status.and_then(|s| s.token) {
            None => (Read::Failed("the API server answered the TokenRequest without a token".into()), None),
            Some(token) => match jwt::claims(&token) {
                Ok(claims) => (Read::Got(claims), Some(Token(token))),
                Err(e) => (Read::Failed(e.to_string()), None),
            },
        },
    }
}

/// `--assume`: what the pod's SDK does with the token. The caller's ARN,
/// or STS's refusal (its code and message).
pub async fn assume(sts: &aws_sdk_sts::Client, role_arn: &str, token: &Token) -> Read<String> {
    use aws_sdk_sts::error::ProvideErrorMetadata;
    let answer = sts
        .assume_role_with_web_identity()
        .role_arn(role_arn)
        .role_session_name("irsa-doctor")
        .web_identity_token(&token.0)
        .duration_seconds(900)
        .send()
        .await;
    match answer {
        Ok(a) => match a.assumed_role_user() {
            Some(user) => Read::Got(user.arn().to_owned()),
            None => Read::Failed("STS answered without an assumed-role user".into()),
        },
        Err(e) => Read::Failed(match (e.code(), e.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            _ => aws_sdk_sts::error::DisplayErrorContext(&e).to_string(),
        }),
    }
}

/// Whether `sa` carries a role annotation at all (namespace mode checks only those).
pub fn annotated(sa: &facts::ServiceAccount) -> bool {
    sa.annotations.contains_key(ANNOTATION_ROLE_ARN)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    #[test]
    fn selectors_select_as_kubernetes_does() {
        let labels = BTreeMap::from([("app".to_owned(), "web".to_owned()), ("tier".to_owned(), "front".to_owned())]);
        let by_labels = |pairs: &[(&str, &str)]| LabelSelector {
            match_labels: Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            match_expressions: None,
        };
        assert!(selects(&by_labels(&[("app", "web")]), Some(&labels)));
        assert!(!selects(&by_labels(&[("app", "api")]), Some(&labels)));
        assert!(!selects(&LabelSelector::default(), Some(&labels)), "an empty selector selects nothing here");
        let expr = |op: &str, values: &[&str]| LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: op.into(),
                values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
            }]),
        };
        assert!(selects(&expr("In", &["front", "back"]), Some(&labels)));
        assert!(!selects(&expr("NotIn", &["front"]), Some(&labels)));
        assert!(selects(&expr("Exists", &[]), Some(&labels)));
        assert!(!selects(&expr("DoesNotExist", &[]), Some(&labels)));
    }
}
