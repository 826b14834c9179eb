//! Carrying out cluster changes with kube.
//!
//! A write is guarded by exactly the fields its change depends on (the
//! change's `guard`): a ServiceAccount's annotations and labels that irsa
//! sets or removes, a Deployment's `serviceAccountName` and, for a restart,
//! its `restartedAt` annotation. Not by `resourceVersion`: that moves with
//! every write to the object, the Deployment controller's status writes
//! among them (several a second during a rollout, and during the IAM
//! settle wait), so guarding by it fails busy Deployments for nothing. An
//! object someone changed where it matters is never overwritten: the step
//! fails naming the object and the field, and the next plan re-reads it.
//! Only the fields irsa owns are written, so other annotations and labels,
//! Helm's among them, stay as they are.
//!
//! The writes are JSON Patches (RFC 6902): `test` operations on the guarded
//! fields, then the `add`/`remove` operations, applied by the API server as
//! one atomic update. Server-side apply was the alternative, and does not
//! fit: its conflicts are about which manager owns a field, not whether the
//! value is still the one irsa read; putting back an annotation someone
//! edited by hand (which a reviewed plan asks for) would need `force`, and
//! `force` drops the very check wanted.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::cluster::{FIELD_MANAGER, Kube, lost_on_the_way, read_again};
use crate::model::address::ResourceKind;
use crate::model::desired::markers;
use crate::plan::guard;
use crate::plan::{Action, Change};

/// How often a guarded write is tried when the API server refuses its
/// `test`s while a fresh read finds every guarded field as planned: the
/// server reads RFC 6902 strictly (the next attempts test absent members
/// another way), some other field changed shape in between (a map
/// appeared), or the patch is refused for another reason, which the last
/// answer then says.
const ATTEMPTS: usize = 3;

/// A failed cluster write.
#[derive(Debug, thiserror::Error)]
pub enum KubeWriteError {
    #[error(
        "{object}: {field} changed since it was read ({} → {}); irsa did not overwrite it: plan again",
        shown(.planned),
        shown(.now)
    )]
    FieldChanged { object: String, field: String, planned: Value, now: Value },
    #[error("{object} changed since it was read (someone else wrote it); irsa did not overwrite it: plan again")]
    Conflict { object: String },
    #[error("{object} was deleted since it was read; plan again")]
    Gone { object: String },
    #[error("{object} was created by someone else since it was read; plan again")]
    AlreadyExists { object: String },
    #[error("{what} failed: {source}")]
    Request {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("the plan has no {1} for {0}: it is damaged")]
    Damaged(String, &'static str),
}

/// A guarded value as the error shows it.
fn shown(v: &Value) -> String {
    match v {
        Value::Null => "absent".into(),
        other => other.to_string(),
    }
}

use crate::plan::Attrs;

fn text<'m>(m: &'m Attrs, key: &str) -> &'m str {
    m.get(key).and_then(Value::as_str).unwrap_or_default()
}

pub struct KubeApplier<'a> {
    pub kube: &'a Kube,
}

/// A JSON Patch under construction against the object it will apply to:
/// each operation is played on `doc` too, so later ones know which maps
/// exist by then.
struct JsonPatch {
    doc: Value,
    ops: Vec<Value>,
    /// Test absent members the RFC 6902 way; see [`JsonPatch::test`].
    strict: bool,
}

impl JsonPatch {
    fn new(doc: Value) -> JsonPatch {
        JsonPatch { doc, ops: Vec::new(), strict: false }
    }

    /// The first missing map on the way to `pointer`, if any; `None` when
    /// the parent of `pointer` exists.
    fn first_missing(&self, pointer: &str) -> Option<String> {
        let tokens = guard::tokens(pointer);
        let parents = &tokens[..tokens.len().saturating_sub(1)];
        (1..=parents.len()).map(|n| guard::pointer(&tokens_ref(&parents[..n]))).find(|p| self.doc.pointer(p).is_none())
    }

    /// `test` that `pointer` holds `value`, `null` meaning absent.
    ///
    /// kube-apiserver's JSON Patch (evanphx/json-patch, v4 and v5) passes a
    /// test of `null` on a member that is absent, as long as its parent
    /// exists, and fails any test whose parent is missing: so an absent
    /// member under a missing map is tested as that map being absent. RFC
    /// 6902 read strictly fails a test of any absent member; in `strict`
    /// mode an absent member is tested through its nearest ancestor that
    /// exists, as a whole and as just read.
    fn test(&mut self, pointer: &str, value: &Value) {
        let absent = value.is_null() && self.doc.pointer(pointer).is_none();
        let (path, value) = match self.first_missing(pointer) {
            _ if !absent => (pointer.to_owned(), value.clone()),
            _ if self.strict => {
                let tokens = guard::tokens(pointer);
                let ancestor = (0..tokens.len())
                    .rev()
                    .map(|n| guard::pointer(&tokens_ref(&tokens[..n])))
                    .find(|p| self.doc.pointer(p).is_some())
                    .unwrap_or_default();
                let whole = self.doc.pointer(&ancestor).cloned().unwrap_or(Value::Null);
                (ancestor, whole)
            }
            Some(missing) => (missing, Value::Null),
            None => (pointer.to_owned(), Value::Null),
        };
        self.ops.push(json!({"op": "test", "path": path, "value": value}));
    }

    /// Set `pointer` to `value`, making the maps on the way.
    fn set(&mut self, pointer: &str, value: Value) {
        let (path, value) = match self.first_missing(pointer) {
            Some(missing) => {
                // Nest the value in the maps that do not exist yet.
                let depth = guard::tokens(&missing).len();
                let tokens = guard::tokens(pointer);
                let nested = tokens[depth..]
                    .iter()
                    .rev()
                    .fold(value, |inner, key| Value::Object(Map::from_iter([(key.clone(), inner)])));
                (missing, nested)
            }
            None => (pointer.to_owned(), value),
        };
        put(&mut self.doc, &path, Some(value.clone()));
        self.ops.push(json!({"op": "add", "path": path, "value": value}));
    }

    /// Remove `pointer` when it exists.
    fn remove(&mut self, pointer: &str) {
        if self.doc.pointer(pointer).is_some() {
            put(&mut self.doc, pointer, None);
            self.ops.push(json!({"op": "remove", "path": pointer}));
        }
    }
}

fn tokens_ref(tokens: &[String]) -> Vec<&str> {
    tokens.iter().map(String::as_str).collect()
}

/// Set or remove the member at `pointer` of a document whose parent exists.
fn put(doc: &mut Value, pointer: &str, value: Option<Value>) {
    let tokens = guard::tokens(pointer);
    let Some((last, parents)) = tokens.split_last() else { return };
    if let Some(Value::Object(parent)) = doc.pointer_mut(&guard::pointer(&tokens_ref(parents))) {
        match value {
            Some(v) => {
                parent.insert(last.clone(), v);
            }
            None => {
                parent.remove(last);
            }
        }
    }
}

/// The object as JSON, the document a JSON Patch applies to.
fn as_json<K: Serialize>(object: &K) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// The first guarded field whose value moved: `(pointer, planned, now)`.
fn moved(doc: &Value, guard: &Map<String, Value>) -> Option<(String, Value, Value)> {
    guard.iter().find_map(|(pointer, planned)| {
        let now = doc.pointer(pointer).cloned().unwrap_or(Value::Null);
        (now != *planned).then(|| (pointer.clone(), planned.clone(), now))
    })
}

impl KubeApplier<'_> {
    fn fail(&self, object: String, what: &str) -> impl FnOnce(kube::Error) -> KubeWriteError {
        let what = what.to_owned();
        move |source| match &source {
            kube::Error::Api(e) if e.code == 409 && e.reason == "AlreadyExists" => {
                KubeWriteError::AlreadyExists { object }
            }
            kube::Error::Api(e) if e.code == 409 => KubeWriteError::Conflict { object },
            kube::Error::Api(e) if e.code == 404 => KubeWriteError::Gone { object },
            _ => KubeWriteError::Request { what: format!("{what} {object}"), source },
        }
    }

    /// Send a JSON Patch: kube's `Patch::Json` needs the `json-patch` crate
    /// for a type irsa does not need, so the request is made here.
    async fn send_json_patch<K>(&self, ns: &str, name: &str, ops: &[Value]) -> Result<K, kube::Error>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        let url = format!("{}/{name}?fieldManager={FIELD_MANAGER}", K::url_path(&(), Some(ns)));
        let body = serde_json::to_vec(ops).map_err(kube::Error::SerdeError)?;
        let request = http::Request::patch(url)
            .header(http::header::CONTENT_TYPE, "application/json-patch+json")
            .body(body)
            .map_err(|e| kube::Error::BuildRequest(kube::core::request::Error::BuildRequest(e)))?;
        self.kube.client.request::<K>(request).await
    }

    /// Read the object, check its guarded fields against the plan (a moved
    /// one fails the step, naming it), and send `test`s of them followed by
    /// the operations `write` adds. The `test`s make the check and the write
    /// one atomic update: the read only shapes the patch and the message.
    async fn guarded_patch<K>(
        &self,
        api: &Api<K>,
        (ns, name, object): (&str, &str, &str),
        guard: &Map<String, Value>,
        write: impl Fn(&mut JsonPatch),
        landed: impl Fn(&Value) -> bool,
    ) -> Result<K, KubeWriteError>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned + Serialize + Clone + std::fmt::Debug,
    {
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            let current = read_again(|| api.get(name)).await.map_err(self.fail(object.to_owned(), "reading"))?;
            let doc = as_json(&current);
            if let Some((pointer, planned, now)) = moved(&doc, guard) {
                return Err(KubeWriteError::FieldChanged {
                    object: object.to_owned(),
                    field: guard::field_name(&pointer),
                    planned,
                    now,
                });
            }
            let mut patch = JsonPatch::new(doc);
            // Refused although nothing guarded moved: the server may read
            // RFC 6902 strictly about absent members (see `JsonPatch::test`).
            patch.strict = attempt > 0;
            for (pointer, planned) in guard {
                patch.test(pointer, planned);
            }
            write(&mut patch);
            match self.send_json_patch::<K>(ns, name, &patch.ops).await {
                Ok(written) => return Ok(written),
                // A failed `test` is 422 Invalid; kube-apiserver's message
                // then is only "the server rejected our request due to an
                // error in our request", so read again to learn which field
                // moved, if any.
                Err(kube::Error::Api(status)) if status.code == 422 => last = Some(kube::Error::Api(status)),
                // The answer was lost: look whether the write landed.
                Err(e) if lost_on_the_way(&e) => {
                    return match read_again(|| api.get(name)).await {
                        Ok(now) if landed(&as_json(&now)) => Ok(now),
                        _ => Err(self.fail(object.to_owned(), "patching")(e)),
                    };
                }
                Err(e) => return Err(self.fail(object.to_owned(), "patching")(e)),
            }
        }
        Err(match last {
            Some(e) => self.fail(object.to_owned(), "patching")(e),
            None => KubeWriteError::Conflict { object: object.to_owned() },
        })
    }

    pub async fn remove(&self, change: &Change) -> Result<(), KubeWriteError> {
        let damaged = |what| KubeWriteError::Damaged(change.address.to_string(), what);
        let before = change.before.as_ref().ok_or_else(|| damaged("attributes"))?;
        let (ns, name) = (text(before, "namespace"), text(before, "name"));
        let object = format!("serviceaccount {ns}/{name}");
        if change.kind != ResourceKind::ServiceAccount {
            return Err(damaged("attributes"));
        }
        if change.guard.is_empty() {
            return Err(damaged("guard"));
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.kube.client.clone(), ns);
        // A DELETE takes only a uid or resourceVersion precondition, and a
        // ServiceAccount's resourceVersion moves with any write by anyone.
        // So the markers the delete was decided on are tested first, by a
        // patch of `test`s only (which writes nothing), and the delete is
        // conditioned on the version that patch saw: it removes the object
        // exactly as checked, or nothing.
        for _ in 0..ATTEMPTS {
            let checked = match self.guarded_patch(&api, (ns, name, &object), &change.guard, |_| {}, |_| false).await {
                Ok(sa) => sa,
                // Already gone: deletes are idempotent.
                Err(KubeWriteError::Gone { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            let params = DeleteParams {
                preconditions: Some(Preconditions { resource_version: checked.metadata.resource_version, uid: None }),
                ..Default::default()
            };
            match api.delete(name, &params).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
                // Written in between: check the markers again.
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) if lost_on_the_way(&e) && matches!(read_again(|| api.get_opt(name)).await, Ok(None)) => {
                    return Ok(());
                }
                Err(e) => return Err(self.fail(object, "deleting")(e)),
            }
        }
        Err(KubeWriteError::Conflict { object })
    }

    pub async fn make(&self, change: &Change) -> Result<(), KubeWriteError> {
        let damaged = |what| KubeWriteError::Damaged(change.address.to_string(), what);
        let after = change.after.as_ref().ok_or_else(|| damaged("attributes"))?;
        let (ns, name) = (text(after, "namespace"), text(after, "name"));
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
                    .map_err(|_| damaged("attributes"))?;
                    let post = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
                    return match api.create(&post, &sa).await {
                        Ok(_) => Ok(()),
                        Err(e) if lost_on_the_way(&e) && sa_landed(&api, name, after).await => Ok(()),
                        Err(e) => Err(self.fail(object, "creating")(e)),
                    };
                }
                if change.guard.is_empty() {
                    return Err(damaged("guard"));
                }
                let write = |patch: &mut JsonPatch| sa_write(patch, change.before.as_ref(), after);
                let landed = |doc: &Value| landed_in(doc, after);
                self.guarded_patch(&api, (ns, name, &object), &change.guard, write, landed).await.map(drop)
            }
            ResourceKind::Deployment => {
                let object = format!("deployment {ns}/{name}");
                let api: Api<Deployment> = Api::namespaced(self.kube.client.clone(), ns);
                if change.guard.is_empty() {
                    return Err(damaged("guard"));
                }
                let (pointer, value) = if change.actions.contains(&Action::Restart) {
                    // What `kubectl rollout restart` does: a new pod-template
                    // annotation makes the Deployment roll its pods.
                    let restarted_at = Timestamp::now().to_string();
                    (guard::template_annotation(markers::ANNOTATION_RESTARTED_AT), json!(restarted_at))
                } else {
                    (guard::SERVICE_ACCOUNT_NAME.to_owned(), json!(text(after, "service_account_name")))
                };
                let write = |patch: &mut JsonPatch| patch.set(&pointer, value.clone());
                let landed = |doc: &Value| doc.pointer(&pointer) == Some(&value);
                self.guarded_patch(&api, (ns, name, &object), &change.guard, write, landed).await.map(drop)
            }
            _ => Err(damaged("attributes")),
        }
    }
}

/// Whether the ServiceAccount now carries what `after` asks of irsa's
/// fields: a write whose answer was lost may well have landed.
async fn sa_landed(api: &Api<ServiceAccount>, name: &str, after: &Attrs) -> bool {
    match read_again(|| api.get_opt(name)).await {
        Ok(Some(sa)) => landed_in(&as_json(&sa), after),
        _ => false,
    }
}

fn landed_in(doc: &Value, after: &Attrs) -> bool {
    ["annotations", "labels"].iter().all(|field| {
        let have: BTreeMap<String, Value> = doc
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default();
        after.get(field).and_then(Value::as_object).into_iter().flatten().all(|(k, v)| have.get(k) == Some(v))
    })
}

/// Set irsa's annotations and labels and remove the ones it owned and no
/// longer wants.
fn sa_write(patch: &mut JsonPatch, before: Option<&Attrs>, after: &Attrs) {
    for (field, key_pointer) in
        [("annotations", guard::annotation as fn(&str) -> String), ("labels", guard::label as fn(&str) -> String)]
    {
        let wanted = after.get(field).and_then(Value::as_object);
        for (key, value) in wanted.into_iter().flatten() {
            patch.set(&key_pointer(key), value.clone());
        }
        let old = before.and_then(|b| b.get(field)).and_then(Value::as_object);
        for key in old.into_iter().flat_map(|o| o.keys()) {
            if !wanted.is_some_and(|w| w.contains_key(key)) {
                patch.remove(&key_pointer(key));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(v: Value) -> Attrs {
        Attrs::from(v)
    }

    #[test]
    fn a_service_account_patch_sets_ours_and_removes_what_we_no_longer_want() {
        let doc = json!({"metadata": {"name": "app", "annotations": {
            "eks.amazonaws.com/role-arn": "old", "irsa.dev/stack": "s", "team/owner": "x"
        }}});
        let before = attrs(json!({"annotations": {"eks.amazonaws.com/role-arn": "old", "irsa.dev/stack": "s"}}));
        let after = attrs(
            json!({"annotations": {"eks.amazonaws.com/role-arn": "new"}, "labels": {"app.kubernetes.io/managed-by": "irsa"}}),
        );
        let mut patch = JsonPatch::new(doc);
        patch.test(&guard::annotation("eks.amazonaws.com/role-arn"), &json!("old"));
        patch.test(&guard::label("app.kubernetes.io/managed-by"), &Value::Null);
        sa_write(&mut patch, Some(&before), &after);
        assert_eq!(
            patch.ops,
            [
                json!({"op": "test", "path": "/metadata/annotations/eks.amazonaws.com~1role-arn", "value": "old"}),
                // No labels at all: tested as the map being absent, then made whole.
                json!({"op": "test", "path": "/metadata/labels", "value": null}),
                json!({"op": "add", "path": "/metadata/annotations/eks.amazonaws.com~1role-arn", "value": "new"}),
                json!({"op": "remove", "path": "/metadata/annotations/irsa.dev~1stack"}),
                json!({"op": "add", "path": "/metadata/labels", "value": {"app.kubernetes.io/managed-by": "irsa"}}),
            ]
        );
        assert!(landed_in(&patch.doc, &after));
        assert_eq!(patch.doc["metadata"]["annotations"]["team/owner"], "x", "another tool's annotation stays");
    }

    #[test]
    fn a_restart_makes_the_template_annotations_when_there_are_none() {
        let doc = json!({"spec": {"template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": []}}}});
        let mut patch = JsonPatch::new(doc);
        let pointer = guard::template_annotation(markers::ANNOTATION_RESTARTED_AT);
        patch.test(guard::SERVICE_ACCOUNT_NAME, &Value::Null);
        patch.test(&pointer, &Value::Null);
        patch.set(&pointer, json!("now"));
        assert_eq!(
            patch.ops,
            [
                // The parent exists: evanphx/json-patch passes a null test of an absent key.
                json!({"op": "test", "path": "/spec/template/spec/serviceAccountName", "value": null}),
                json!({"op": "test", "path": "/spec/template/metadata/annotations", "value": null}),
                json!({"op": "add", "path": "/spec/template/metadata/annotations", "value": {"kubectl.kubernetes.io/restartedAt": "now"}}),
            ]
        );
    }

    #[test]
    fn strictly_an_absent_member_is_tested_through_its_nearest_ancestor() {
        let doc = json!({"metadata": {"annotations": {"team/owner": "x"}}});
        let mut patch = JsonPatch::new(doc);
        patch.strict = true;
        patch.test(&guard::annotation("eks.amazonaws.com/role-arn"), &Value::Null);
        patch.test(&guard::label("app.kubernetes.io/managed-by"), &Value::Null);
        patch.test(&guard::annotation("team/owner"), &json!("x"));
        assert_eq!(
            patch.ops,
            [
                json!({"op": "test", "path": "/metadata/annotations", "value": {"team/owner": "x"}}),
                json!({"op": "test", "path": "/metadata", "value": {"annotations": {"team/owner": "x"}}}),
                json!({"op": "test", "path": "/metadata/annotations/team~1owner", "value": "x"}),
            ]
        );
    }

    #[test]
    fn a_moved_guard_is_named_with_both_values() {
        let doc = json!({"spec": {"template": {"spec": {"serviceAccountName": "other"}}}});
        let guard = json!({"/spec/template/spec/serviceAccountName": null}).as_object().cloned().unwrap();
        let (pointer, planned, now) = moved(&doc, &guard).unwrap();
        let e = KubeWriteError::FieldChanged {
            object: "deployment backend/backend".into(),
            field: guard::field_name(&pointer),
            planned,
            now,
        };
        assert_eq!(
            e.to_string(),
            "deployment backend/backend: spec.template.spec.serviceAccountName changed since it was read (absent → \"other\"); irsa did not overwrite it: plan again"
        );
        let guard = json!({"/spec/template/spec/serviceAccountName": "other"}).as_object().cloned().unwrap();
        assert_eq!(moved(&doc, &guard), None);
    }
}
