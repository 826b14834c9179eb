//! Reading the cluster through kube: ServiceAccounts, Deployments and their
//! pods (the connection itself is [`crate::cluster`]).
//!
//! One LIST per kind and namespace the stack names, one cluster-wide LIST of
//! the ServiceAccounts irsa made (to find those a stack dropped from
//! namespaces it no longer names), and one LIST of pods per bound Deployment
//! through its selector: the request count grows with namespaces and
//! Deployments, never with objects.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, ListParams};

use crate::cluster::{FIELD_MANAGER, Kube, KubeError, read_again, request};
use crate::model::desired::{Desired, markers};
use crate::model::observed::{
    ObservedCluster, ObservedContainer, ObservedDeployment, ObservedPod, ObservedServiceAccount, Rollout,
};

impl Kube {
    /// Read what the stack's bindings in the cluster of key `cluster` need.
    pub async fn refresh(&self, desired: &Desired, cluster: Option<&str>) -> Result<ObservedCluster, KubeError> {
        let here = || desired.bindings.iter().filter(move |b| b.cluster.as_deref() == cluster);
        let wanted: BTreeSet<&str> = here().map(|b| b.namespace.as_str()).collect();
        let all_params = ListParams::default();
        let all_ns: Api<Namespace> = Api::all(self.client.clone());
        let namespaces: Vec<String> = match read_again(|| all_ns.list(&all_params)).await {
            Ok(listed) => listed
                .items
                .iter()
                .filter_map(|n| n.metadata.name.clone())
                .filter(|n| wanted.contains(n.as_str()))
                .collect(),
            // Credentials limited to some namespaces may not list them all:
            // ask for each one the stack names instead.
            Err(kube::Error::Api(e)) if e.code == 403 => {
                let mut found = Vec::new();
                for ns in &wanted {
                    if read_again(|| all_ns.get_opt(ns))
                        .await
                        .map_err(request(format!("reading namespace {ns}")))?
                        .is_some()
                    {
                        found.push((*ns).to_owned());
                    }
                }
                found
            }
            Err(e) => return Err(request("listing namespaces")(e)),
        };

        let mut service_accounts = BTreeMap::new();
        let mut deployments = Vec::new();
        for ns in &namespaces {
            let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
            let listed = read_again(|| api.list(&all_params)).await;
            for sa in listed.map_err(request(format!("listing service accounts in {ns}")))?.items {
                let o = observe_sa(&sa.metadata);
                service_accounts.insert((o.namespace.clone(), o.name.clone()), o);
            }
            let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
            let listed = read_again(|| api.list(&all_params)).await;
            deployments.extend(listed.map_err(request(format!("listing deployments in {ns}")))?.items);
        }
        // ServiceAccounts irsa made for this stack in namespaces the file no longer names.
        let selector = format!("{}={}", markers::LABEL_MANAGED_BY, markers::MANAGED_BY);
        let all_sa: Api<ServiceAccount> = Api::all(self.client.clone());
        let mine_params = ListParams::default().labels(&selector);
        let mine = match read_again(|| all_sa.list(&mine_params)).await {
            Ok(list) => list.items,
            // Without cluster-wide read, service accounts the stack left in
            // namespaces it no longer names cannot be found; say so, go on.
            Err(kube::Error::Api(e)) if e.code == 403 => {
                tracing::warn!(
                    "cannot list service accounts across namespaces (forbidden): ones this stack made in namespaces it no longer names will not be cleaned up"
                );
                Vec::new()
            }
            Err(e) => return Err(request("listing irsa's service accounts")(e)),
        };
        for sa in mine {
            let o = observe_sa(&sa.metadata);
            let stack = o.annotations.get(markers::ANNOTATION_STACK);
            if stack == Some(&desired.stack.name) || stack.is_some() && stack == desired.stack.renamed_from.as_ref() {
                service_accounts.entry((o.namespace.clone(), o.name.clone())).or_insert(o);
            }
        }

        let bound: BTreeSet<(&str, &str)> =
            here().flat_map(|b| b.deployments.iter().map(move |d| (b.namespace.as_str(), d.as_str()))).collect();
        let mut observed_deployments = Vec::new();
        for d in deployments {
            let ns = d.metadata.namespace.clone().unwrap_or_default();
            let name = d.metadata.name.clone().unwrap_or_default();
            let spec = &d.spec;
            let mut pods = Vec::new();
            if bound.contains(&(ns.as_str(), name.as_str()))
                && let Some(selector) = selector_string(&spec.selector)
            {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
                let params = ListParams::default().labels(&selector);
                let listed = read_again(|| api.list(&params))
                    .await
                    .map_err(request(format!("listing the pods of deployment {ns}/{name}")))?;
                pods = listed.items.iter().filter_map(observe_pod).collect();
            }
            observed_deployments.push(observe_deployment(&d, pods));
        }
        Ok(ObservedCluster {
            oidc_issuer: None,
            namespaces,
            service_accounts: service_accounts.into_values().collect(),
            deployments: observed_deployments,
        })
    }
}

impl Kube {
    /// The ServiceAccounts and Deployments of one namespace, for `irsa
    /// import`: one LIST of each, no pods, nothing written.
    pub async fn read_namespace(
        &self,
        ns: &str,
    ) -> Result<(Vec<ObservedServiceAccount>, Vec<ObservedDeployment>), KubeError> {
        let params = ListParams::default();
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let listed =
            read_again(|| api.list(&params)).await.map_err(request(format!("listing service accounts in {ns}")))?;
        let mut service_accounts: Vec<ObservedServiceAccount> =
            listed.items.iter().map(|sa| observe_sa(&sa.metadata)).collect();
        service_accounts.sort_by(|a, b| a.name.cmp(&b.name));
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), ns);
        let listed = read_again(|| api.list(&params)).await.map_err(request(format!("listing deployments in {ns}")))?;
        let mut deployments: Vec<ObservedDeployment> =
            listed.items.iter().map(|d| observe_deployment(d, Vec::new())).collect();
        deployments.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((service_accounts, deployments))
    }
}

fn observe_deployment(d: &Deployment, pods: Vec<ObservedPod>) -> ObservedDeployment {
    let spec = &d.spec;
    let template_annotations = spec.template.metadata.as_ref().and_then(|m| m.annotations.as_ref());
    let status = d.status.as_ref();
    ObservedDeployment {
        namespace: d.metadata.namespace.clone().unwrap_or_default(),
        name: d.metadata.name.clone().unwrap_or_default(),
        resource_version: d.metadata.resource_version.clone().unwrap_or_default(),
        service_account_name: spec
            .template
            .spec
            .as_ref()
            .and_then(|p| p.service_account_name.clone().or_else(|| p.service_account.clone())),
        restarted_at: template_annotations.and_then(|a| a.get(markers::ANNOTATION_RESTARTED_AT)).cloned(),
        rollout: Rollout {
            generation: d.metadata.generation,
            observed_generation: status.and_then(|s| s.observed_generation),
            replicas: spec.replicas,
            status_replicas: status.and_then(|s| s.replicas),
            updated_replicas: status.and_then(|s| s.updated_replicas),
        },
        pods,
    }
}

fn observe_sa(meta: &ObjectMeta) -> ObservedServiceAccount {
    ObservedServiceAccount {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default().into_iter().collect(),
        labels: meta.labels.clone().unwrap_or_default().into_iter().collect(),
        role_arn_set_at: role_arn_set_at(meta),
        irsa_annotations: annotations_written_by(meta, FIELD_MANAGER),
    }
}

/// The annotation keys `manager` owns, from `managedFields`.
pub fn annotations_written_by(meta: &ObjectMeta, manager: &str) -> Vec<String> {
    let mut keys: Vec<String> = meta
        .managed_fields
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|e| e.manager.as_deref() == Some(manager))
        .filter_map(|e| e.fields_v1.as_ref()?.0.get("f:metadata")?.get("f:annotations")?.as_object())
        .flat_map(|a| a.keys().filter_map(|k| k.strip_prefix("f:")).map(str::to_owned))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// When the role annotation got its current value: the time of the
/// managedFields entry that owns it (the manager that last wrote it).
pub fn role_arn_set_at(meta: &ObjectMeta) -> Option<Timestamp> {
    let key = format!("f:{}", markers::ANNOTATION_ROLE_ARN);
    meta.managed_fields
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|e| {
            e.fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:metadata"))
                .and_then(|m| m.get("f:annotations"))
                .is_some_and(|a| a.get(&key).is_some())
        })
        .filter_map(|e| e.time.as_ref().map(|t| t.0))
        .max()
}

/// A Deployment's selector as a LIST `labelSelector`.
fn selector_string(selector: &LabelSelector) -> Option<String> {
    let mut parts: Vec<String> =
        selector.match_labels.as_ref().map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect()).unwrap_or_default();
    for e in selector.match_expressions.as_deref().unwrap_or_default() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            _ => return None,
        });
    }
    // An empty selector would select every pod of the namespace.
    (!parts.is_empty()).then(|| parts.join(","))
}

/// A running pod's identity and injected credentials; `None` for pods on
/// their way out, which hold no credentials that matter.
fn observe_pod(pod: &Pod) -> Option<ObservedPod> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return None;
    }
    let spec = pod.spec.as_ref()?;
    let env = |c: &k8s_openapi::api::core::v1::Container, name: &str| {
        c.env.as_deref().unwrap_or_default().iter().find(|e| e.name == name).and_then(|e| e.value.clone())
    };
    Some(ObservedPod {
        name: pod.metadata.name.clone().unwrap_or_default(),
        created_at: pod.metadata.creation_timestamp.as_ref().map(|t| t.0)?,
        service_account_name: spec.service_account_name.clone(),
        containers: spec
            .containers
            .iter()
            .map(|c| ObservedContainer {
                name: c.name.clone(),
                aws_role_arn: env(c, "AWS_ROLE_ARN"),
                aws_web_identity_token_file: env(c, "AWS_WEB_IDENTITY_TOKEN_FILE"),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        FieldsV1, LabelSelectorRequirement, ManagedFieldsEntry, Time,
    };

    use super::*;

    #[test]
    fn the_role_annotation_time_is_its_owners_latest_write() {
        let entry = |manager: &str, time: &str, fields: serde_json::Value| ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            time: Some(Time(time.parse().unwrap())),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        };
        let meta = ObjectMeta {
            managed_fields: Some(vec![
                entry("helm", "2026-01-01T00:00:00Z", serde_json::json!({"f:metadata": {"f:labels": {"f:app": {}}}})),
                entry(
                    "irsa",
                    "2026-02-01T00:00:00Z",
                    serde_json::json!({"f:metadata": {"f:annotations": {"f:eks.amazonaws.com/role-arn": {}}}}),
                ),
            ]),
            ..Default::default()
        };
        assert_eq!(role_arn_set_at(&meta), Some("2026-02-01T00:00:00Z".parse().unwrap()));
        assert_eq!(role_arn_set_at(&ObjectMeta::default()), None);
    }

    #[test]
    fn selectors_become_label_selector_strings() {
        let s = LabelSelector {
            match_labels: Some([("app".to_owned(), "backend".to_owned())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["api".into(), "web".into()]),
            }]),
        };
        assert_eq!(selector_string(&s).unwrap(), "app=backend,tier in (api,web)");
        assert_eq!(selector_string(&LabelSelector::default()), None);
    }
}
