//! Carrying out cluster changes with kube.
//!
//! Every write is guarded by the `resourceVersion` the plan was made
//! against: a ServiceAccount or Deployment that someone changed since it was
//! read is never overwritten blindly; the step fails with a Conflict naming
//! the object, and the next plan re-reads it. Only the fields irsa owns are
//! written (JSON merge patches), so other annotations and labels, Helm's
//! among them, stay as they are.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::{Map, Value, json};

use crate::model::address::ResourceKind;
use crate::model::desired::markers;
use crate::plan::{Action, Change};
use crate::refresh::kube::{Kube, lost_on_the_way, read_again};

/// The field manager irsa writes as, visible in `managedFields`.
pub const FIELD_MANAGER: &str = "irsa";

/// A failed cluster write.
#[derive(Debug, thiserror::Error)]
pub enum KubeWriteError {
    #[error("{object} changed since it was read (someone else wrote it); irsa did not overwrite it: plan again")]
    Conflict { object: String },
    #[error("{object} was created by someone else since it was read; plan again")]
    AlreadyExists { object: String },
    #[error("{what} failed: {source}")]
    Request {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("the plan has no attributes for {0}: it is damaged")]
    Damaged(String),
}

type Attrs = Map<String, Value>;

fn text<'m>(m: &'m Attrs, key: &str) -> &'m str {
    m.get(key).and_then(Value::as_str).unwrap_or_default()
}

pub struct KubeApplier<'a> {
    pub kube: &'a Kube,
}

impl KubeApplier<'_> {
    fn fail(&self, object: String, what: &str) -> impl FnOnce(kube::Error) -> KubeWriteError {
        let what = what.to_owned();
        move |source| match &source {
            kube::Error::Api(e) if e.code == 409 && e.reason == "AlreadyExists" => {
                KubeWriteError::AlreadyExists { object }
            }
            kube::Error::Api(e) if e.code == 409 => KubeWriteError::Conflict { object },
            _ => KubeWriteError::Request { what: format!("{what} {object}"), source },
        }
    }

    pub async fn remove(&self, change: &Change) -> Result<(), KubeWriteError> {
        let before = change.before.as_ref().ok_or_else(|| KubeWriteError::Damaged(change.address.to_string()))?;
        let (ns, name) = (text(before, "namespace"), text(before, "name"));
        let object = format!("serviceaccount {ns}/{name}");
        if change.kind != ResourceKind::ServiceAccount {
            return Err(KubeWriteError::Damaged(change.address.to_string()));
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.kube.client.clone(), ns);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(text(before, "resource_version").to_owned()).filter(|v| !v.is_empty()),
                uid: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => Ok(()),
            // Already gone: deletes are idempotent.
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) if lost_on_the_way(&e) && matches!(read_again(|| api.get_opt(name)).await, Ok(None)) => Ok(()),
            Err(e) => Err(self.fail(object, "deleting")(e)),
        }
    }

    pub async fn make(&self, change: &Change) -> Result<(), KubeWriteError> {
        let after = change.after.as_ref().ok_or_else(|| KubeWriteError::Damaged(change.address.to_string()))?;
        let (ns, name) = (text(after, "namespace"), text(after, "name"));
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        let version = change.before.as_ref().map(|b| text(b, "resource_version").to_owned()).unwrap_or_default();
        match change.kind {
            ResourceKind::ServiceAccount => {
                let object = format!("serviceaccount {ns}/{name}");
                let api: Api<ServiceAccount> = Api::namespaced(self.kube.client.clone(), ns);
                if change.actions.contains(&Action::Create) {
                    let sa: ServiceAccount = serde_json::from_value(json!({
                        "apiVersion": "v1",
                        "kind": "ServiceAccount",
                        "metadata": { "name": name, "namespace": ns, "annotations": after.get("annotations"), "labels": after.get("labels") }
                    }))
                    .map_err(|_| KubeWriteError::Damaged(change.address.to_string()))?;
                    let post = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
                    return match api.create(&post, &sa).await {
                        Ok(_) => Ok(()),
                        Err(e) if lost_on_the_way(&e) && sa_landed(&api, name, after).await => Ok(()),
                        Err(e) => Err(self.fail(object, "creating")(e)),
                    };
                }
                let patch = sa_patch(change.before.as_ref(), after, &version);
                match api.patch(name, &params, &Patch::Merge(&patch)).await {
                    Ok(_) => Ok(()),
                    Err(e) if lost_on_the_way(&e) && sa_landed(&api, name, after).await => Ok(()),
                    Err(e) => Err(self.fail(object, "patching")(e)),
                }
            }
            ResourceKind::Deployment => {
                let object = format!("deployment {ns}/{name}");
                let api: Api<Deployment> = Api::namespaced(self.kube.client.clone(), ns);
                let restarted_at = Timestamp::now().to_string();
                let wanted_sa = text(after, "service_account_name");
                let restart = change.actions.contains(&Action::Restart);
                let patch = if restart {
                    // What `kubectl rollout restart` does: a new pod-template
                    // annotation makes the Deployment roll its pods.
                    json!({
                        "metadata": { "resourceVersion": version },
                        "spec": { "template": { "metadata": { "annotations": {
                            markers::ANNOTATION_RESTARTED_AT: restarted_at
                        } } } }
                    })
                } else {
                    json!({
                        "metadata": { "resourceVersion": version },
                        "spec": { "template": { "spec": { "serviceAccountName": wanted_sa } } }
                    })
                };
                match api.patch(name, &params, &Patch::Merge(&patch)).await {
                    Ok(_) => Ok(()),
                    // The answer was lost: look whether the write landed.
                    Err(e) if lost_on_the_way(&e) => match read_again(|| api.get(name)).await {
                        Ok(d) => {
                            let template = &d.spec.template;
                            let landed = if restart {
                                template
                                    .metadata
                                    .as_ref()
                                    .and_then(|m| m.annotations.as_ref())
                                    .and_then(|a| a.get(markers::ANNOTATION_RESTARTED_AT))
                                    == Some(&restarted_at)
                            } else {
                                template.spec.as_ref().and_then(|s| s.service_account_name.as_deref())
                                    == Some(wanted_sa)
                            };
                            if landed { Ok(()) } else { Err(self.fail(object, "patching")(e)) }
                        }
                        Err(_) => Err(self.fail(object, "patching")(e)),
                    },
                    Err(e) => Err(self.fail(object, "patching")(e)),
                }
            }
            _ => Err(KubeWriteError::Damaged(change.address.to_string())),
        }
    }
}

/// Whether the ServiceAccount now carries what `after` asks of irsa's
/// fields: a write whose answer was lost may well have landed.
async fn sa_landed(api: &Api<ServiceAccount>, name: &str, after: &Attrs) -> bool {
    let Ok(Some(sa)) = read_again(|| api.get_opt(name)).await else { return false };
    let matches = |want: Option<&Value>, have: Option<&std::collections::BTreeMap<String, String>>| {
        want.and_then(Value::as_object)
            .into_iter()
            .flatten()
            .all(|(k, v)| have.and_then(|h| h.get(k)).map(String::as_str) == v.as_str())
    };
    matches(after.get("annotations"), sa.metadata.annotations.as_ref())
        && matches(after.get("labels"), sa.metadata.labels.as_ref())
}

/// A merge patch that sets irsa's annotations and labels and removes the
/// ones it owned and no longer wants, guarded by `version`.
fn sa_patch(before: Option<&Attrs>, after: &Attrs, version: &str) -> Value {
    let mut patch = json!({ "metadata": { "resourceVersion": version } });
    for field in ["annotations", "labels"] {
        let mut values: Map<String, Value> = after.get(field).and_then(Value::as_object).cloned().unwrap_or_default();
        let old = before.and_then(|b| b.get(field)).and_then(Value::as_object);
        for key in old.into_iter().flat_map(|o| o.keys()) {
            // A merge patch deletes a key set to null.
            values.entry(key.clone()).or_insert(Value::Null);
        }
        if !values.is_empty() {
            patch["metadata"][field] = Value::Object(values);
        }
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_sets_ours_and_nulls_what_we_no_longer_want() {
        let before =
            json!({"annotations": {"eks.amazonaws.com/role-arn": "old", "irsa.dev/stack": "s"}}).as_object().cloned();
        let after = json!({"annotations": {}}).as_object().cloned().unwrap();
        let patch = sa_patch(before.as_ref(), &after, "42");
        assert_eq!(
            patch,
            json!({"metadata": {"resourceVersion": "42", "annotations": {"eks.amazonaws.com/role-arn": null, "irsa.dev/stack": null}}})
        );
        let after = json!({"annotations": {"eks.amazonaws.com/role-arn": "new"}, "labels": {"app.kubernetes.io/managed-by": "irsa"}})
            .as_object()
            .cloned()
            .unwrap();
        let patch = sa_patch(None, &after, "7");
        assert_eq!(patch["metadata"]["annotations"], json!({"eks.amazonaws.com/role-arn": "new"}));
        assert_eq!(patch["metadata"]["labels"], json!({"app.kubernetes.io/managed-by": "irsa"}));
    }
}
