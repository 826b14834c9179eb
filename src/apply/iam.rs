//! Carrying out IAM changes with aws-sdk-iam.
//!
//! Each change is executed from the plan's own data (its `before` and `after`
//! attributes), so a saved plan applies exactly what was reviewed. Every
//! operation is idempotent: a delete of something already gone succeeds, and
//! an update writes the planned values whatever is there now.

use std::collections::BTreeMap;

use aws_sdk_iam::types::Tag;
use serde_json::Value;

use super::retry::{Patience, Transient, retrying};
use crate::model::address::ResourceKind;
use crate::model::desired::markers;
use crate::model::policy_doc::PolicyDocument;
use crate::plan::{Action, Change};
use crate::refresh::aws::{CallError, Iam, call};

/// Applies IAM changes.
pub struct IamApplier<'a> {
    pub iam: &'a Iam,
    pub patience: Patience,
}

use crate::plan::{Attr, Attrs};

fn text<'m>(m: &'m Attrs, key: &str) -> Option<&'m str> {
    m.get(key).and_then(Value::as_str)
}

fn doc(m: &Attrs, key: &str) -> String {
    match m.attr(key) {
        // Planned now: already canonical text.
        Some(Attr::Document(d)) => d.to_compact(),
        // Read back from a saved plan: a tree.
        other => PolicyDocument::from_value(other.map_or(Value::Null, |a| a.value().clone())).to_compact(),
    }
}

fn strings(m: &Attrs, key: &str) -> Vec<String> {
    m.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn tags(m: Option<&Attrs>) -> BTreeMap<String, String> {
    m.and_then(|m| m.get("tags"))
        .and_then(Value::as_object)
        .map(|t| t.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned()))).collect())
        .unwrap_or_default()
}

fn iam_tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
}

fn iam_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect()
}

/// What to tag and untag to go from `before` to `after`.
fn tag_diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> (Vec<Tag>, Vec<String>) {
    let set: BTreeMap<String, String> =
        after.iter().filter(|(k, v)| before.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    let unset = before.keys().filter(|k| !after.contains_key(*k)).cloned().collect();
    (iam_tags(&set), unset)
}

/// The role a change is about: `role` on attachments and inline policies
/// (whose `name` is the policy's), `name` on a role, else the ARN's last part.
fn role_name(m: &Attrs) -> String {
    text(m, "role")
        .or_else(|| text(m, "name"))
        .map(str::to_owned)
        .or_else(|| text(m, "arn").and_then(|a| a.rsplit('/').next()).map(str::to_owned))
        .unwrap_or_default()
}

fn missing_attrs(change: &Change) -> CallError {
    CallError {
        operation: "apply",
        code: None,
        message: format!("the plan has no attributes for {}: it is damaged", change.address),
    }
}

fn gone(e: &CallError) -> bool {
    e.is("NoSuchEntity")
}

/// Treat "already gone" as done: deletes are idempotent.
fn ok_if_gone(r: Result<(), CallError>) -> Result<(), CallError> {
    match r {
        Err(e) if gone(&e) => Ok(()),
        other => other,
    }
}

impl IamApplier<'_> {
    /// The delete half of a change: `Delete` and the first half of a replace.
    pub async fn remove(&self, change: &Change) -> Result<(), CallError> {
        let before = change.before.as_ref().ok_or_else(|| missing_attrs(change))?;
        match change.kind {
            ResourceKind::OidcProvider => self.delete_oidc(before).await,
            ResourceKind::Policy => self.delete_policy(before).await,
            ResourceKind::Role => self.delete_role(&role_name(before)).await,
            ResourceKind::RolePolicyAttachment => {
                let (role, arn) = (role_name(before), text(before, "policy_arn").unwrap_or_default().to_owned());
                ok_if_gone(
                    retrying(self.patience, Transient::Deleting, || async {
                        call(
                            "DetachRolePolicy",
                            self.iam.client.detach_role_policy().role_name(&role).policy_arn(&arn).send().await,
                        )
                        .map(drop)
                    })
                    .await,
                )
            }
            ResourceKind::RoleInlinePolicy => {
                let (role, name) = (role_name(before), text(before, "name").unwrap_or_default().to_owned());
                ok_if_gone(
                    call(
                        "DeleteRolePolicy",
                        self.iam.client.delete_role_policy().role_name(&role).policy_name(&name).send().await,
                    )
                    .map(drop),
                )
            }
            ResourceKind::ServiceAccount | ResourceKind::Deployment => Err(not_iam(change)),
        }
    }

    /// The make half of a change: create, update or adopt.
    pub async fn make(&self, change: &Change) -> Result<(), CallError> {
        let after = change.after.as_ref().ok_or_else(|| missing_attrs(change))?;
        let creating = change.actions.contains(&Action::Create);
        match change.kind {
            ResourceKind::OidcProvider if creating => {
                self.ours_if_exists(self.create_oidc(after).await, change.kind, after).await
            }
            ResourceKind::OidcProvider => self.update_oidc(change, after).await,
            ResourceKind::Policy if creating => {
                self.ours_if_exists(self.create_policy(after).await, change.kind, after).await
            }
            ResourceKind::Policy => self.update_policy(change, after).await,
            ResourceKind::Role if creating => {
                self.ours_if_exists(self.create_role(after).await, change.kind, after).await
            }
            ResourceKind::Role => self.update_role(change, after).await,
            ResourceKind::RolePolicyAttachment => {
                let (role, arn) = (role_name(after), text(after, "policy_arn").unwrap_or_default().to_owned());
                retrying(self.patience, Transient::FreshEntity, || async {
                    call(
                        "AttachRolePolicy",
                        self.iam.client.attach_role_policy().role_name(&role).policy_arn(&arn).send().await,
                    )
                    .map(drop)
                })
                .await
            }
            ResourceKind::RoleInlinePolicy => {
                let (role, name, document) =
                    (role_name(after), text(after, "name").unwrap_or_default().to_owned(), doc(after, "document"));
                retrying(self.patience, Transient::FreshEntity, || async {
                    call(
                        "PutRolePolicy",
                        self.iam
                            .client
                            .put_role_policy()
                            .role_name(&role)
                            .policy_name(&name)
                            .policy_document(&document)
                            .send()
                            .await,
                    )
                    .map(drop)
                })
                .await
            }
            ResourceKind::ServiceAccount | ResourceKind::Deployment => Err(not_iam(change)),
        }
    }

    /// A create that answers EntityAlreadyExists may have succeeded on an
    /// earlier attempt whose answer was lost (the SDK retried it after a
    /// dropped connection), or in a run that was killed. If what exists
    /// carries this stack's tags, it is ours: the create is done, and the
    /// next plan shows anything about it that differs. Anything else is a
    /// name clash, reported as it is.
    async fn ours_if_exists(
        &self,
        created: Result<(), CallError>,
        kind: ResourceKind,
        after: &Attrs,
    ) -> Result<(), CallError> {
        let Err(e) = created else { return Ok(()) };
        if !e.is("EntityAlreadyExists") {
            return Err(e);
        }
        let wanted = tags(Some(after));
        let existing = match kind {
            ResourceKind::Role => {
                let name = role_name(after);
                call("GetRole", self.iam.client.get_role().role_name(&name).send().await)
                    .map(|r| r.role().map(|r| iam_tag_map(r.tags())).unwrap_or_default())
            }
            ResourceKind::Policy => {
                let arn = text(after, "arn").unwrap_or_default();
                call("GetPolicy", self.iam.client.get_policy().policy_arn(arn).send().await)
                    .map(|p| p.policy().map(|p| iam_tag_map(p.tags())).unwrap_or_default())
            }
            _ => {
                let arn = text(after, "arn").unwrap_or_default();
                call(
                    "GetOpenIDConnectProvider",
                    self.iam.client.get_open_id_connect_provider().open_id_connect_provider_arn(arn).send().await,
                )
                .map(|p| iam_tag_map(p.tags()))
            }
        };
        let ours = |t: &BTreeMap<String, String>| {
            [markers::TAG_MANAGED_BY, markers::TAG_STACK]
                .iter()
                .all(|k| t.get(*k).is_some() && t.get(*k) == wanted.get(*k))
        };
        match existing {
            Ok(found) if ours(&found) => {
                tracing::info!("already created by an earlier attempt of this stack; taking it as done");
                Ok(())
            }
            _ => Err(e),
        }
    }

    async fn create_oidc(&self, after: &Attrs) -> Result<(), CallError> {
        let url = text(after, "url").unwrap_or_default();
        let mut req = self
            .iam
            .client
            .create_open_id_connect_provider()
            .url(url)
            .set_client_id_list(Some(strings(after, "client_ids")))
            .set_tags(Some(iam_tags(&tags(Some(after)))));
        // Without thumbprints IAM secures the connection with its own trust
        // store, as it does for EKS issuers; given ones are kept as given.
        let thumbprints = strings(after, "thumbprints");
        if !thumbprints.is_empty() {
            req = req.set_thumbprint_list(Some(thumbprints));
        }
        call("CreateOpenIDConnectProvider", req.send().await).map(drop)
    }

    async fn update_oidc(&self, change: &Change, after: &Attrs) -> Result<(), CallError> {
        let arn = text(after, "arn").unwrap_or_default();
        let before = change.before.as_ref();
        let had = before.map(|b| strings(b, "client_ids")).unwrap_or_default();
        for id in strings(after, "client_ids").iter().filter(|id| !had.contains(id)) {
            call(
                "AddClientIDToOpenIDConnectProvider",
                self.iam
                    .client
                    .add_client_id_to_open_id_connect_provider()
                    .open_id_connect_provider_arn(arn)
                    .client_id(id)
                    .send()
                    .await,
            )?;
        }
        if change.changed.iter().any(|k| k == "thumbprints") {
            call(
                "UpdateOpenIDConnectProviderThumbprint",
                self.iam
                    .client
                    .update_open_id_connect_provider_thumbprint()
                    .open_id_connect_provider_arn(arn)
                    .set_thumbprint_list(Some(strings(after, "thumbprints")))
                    .send()
                    .await,
            )?;
        }
        let (set, unset) = tag_diff(&tags(before), &tags(Some(after)));
        if !set.is_empty() {
            call(
                "TagOpenIDConnectProvider",
                self.iam
                    .client
                    .tag_open_id_connect_provider()
                    .open_id_connect_provider_arn(arn)
                    .set_tags(Some(set))
                    .send()
                    .await,
            )?;
        }
        if !unset.is_empty() {
            call(
                "UntagOpenIDConnectProvider",
                self.iam
                    .client
                    .untag_open_id_connect_provider()
                    .open_id_connect_provider_arn(arn)
                    .set_tag_keys(Some(unset))
                    .send()
                    .await,
            )?;
        }
        Ok(())
    }

    async fn delete_oidc(&self, before: &Attrs) -> Result<(), CallError> {
        let arn = text(before, "arn").unwrap_or_default();
        ok_if_gone(
            call(
                "DeleteOpenIDConnectProvider",
                self.iam.client.delete_open_id_connect_provider().open_id_connect_provider_arn(arn).send().await,
            )
            .map(drop),
        )
    }

    async fn create_policy(&self, after: &Attrs) -> Result<(), CallError> {
        let req = self
            .iam
            .client
            .create_policy()
            .policy_name(text(after, "name").unwrap_or_default())
            .path(text(after, "path").unwrap_or("/"))
            .set_description(text(after, "description").map(str::to_owned))
            .policy_document(doc(after, "document"))
            .set_tags(Some(iam_tags(&tags(Some(after)))));
        call("CreatePolicy", req.send().await).map(drop)
    }

    async fn update_policy(&self, change: &Change, after: &Attrs) -> Result<(), CallError> {
        let arn = text(after, "arn").unwrap_or_default();
        if change.changed.iter().any(|k| k == "document") {
            self.prune_versions(arn, 4).await?;
            let document = doc(after, "document");
            retrying(self.patience, Transient::Concurrency, || async {
                call(
                    "CreatePolicyVersion",
                    self.iam
                        .client
                        .create_policy_version()
                        .policy_arn(arn)
                        .policy_document(&document)
                        .set_as_default(true)
                        .send()
                        .await,
                )
                .map(drop)
            })
            .await?;
        }
        let (set, unset) = tag_diff(&tags(change.before.as_ref()), &tags(Some(after)));
        if !set.is_empty() {
            call("TagPolicy", self.iam.client.tag_policy().policy_arn(arn).set_tags(Some(set)).send().await)?;
        }
        if !unset.is_empty() {
            call("UntagPolicy", self.iam.client.untag_policy().policy_arn(arn).set_tag_keys(Some(unset)).send().await)?;
        }
        Ok(())
    }

    /// Delete the oldest non-default versions until at most `keep` remain.
    /// IAM keeps five versions, so a new one needs room first.
    async fn prune_versions(&self, arn: &str, keep: usize) -> Result<(), CallError> {
        let listed = call("ListPolicyVersions", self.iam.client.list_policy_versions().policy_arn(arn).send().await)?;
        let mut old: Vec<_> = listed.versions().iter().filter(|v| !v.is_default_version()).collect();
        old.sort_by_key(|v| v.create_date().map(|d| (d.secs(), d.subsec_nanos())));
        let excess = listed.versions().len().saturating_sub(keep);
        for v in old.into_iter().take(excess) {
            let id = v.version_id().unwrap_or_default();
            ok_if_gone(
                call(
                    "DeletePolicyVersion",
                    self.iam.client.delete_policy_version().policy_arn(arn).version_id(id).send().await,
                )
                .map(drop),
            )?;
        }
        Ok(())
    }

    async fn delete_policy(&self, before: &Attrs) -> Result<(), CallError> {
        let arn = text(before, "arn").unwrap_or_default();
        match self.prune_versions(arn, 1).await {
            Err(e) if gone(&e) => return Ok(()),
            other => other?,
        }
        ok_if_gone(
            retrying(self.patience, Transient::Deleting, || async {
                call("DeletePolicy", self.iam.client.delete_policy().policy_arn(arn).send().await).map(drop)
            })
            .await,
        )
    }

    async fn create_role(&self, after: &Attrs) -> Result<(), CallError> {
        let trust = doc(after, "trust_policy");
        let max = after.get("max_session_duration").and_then(Value::as_i64).and_then(|m| i32::try_from(m).ok());
        // Right after the OIDC provider is created, IAM may not yet accept it
        // as a principal: "Invalid principal in policy".
        retrying(self.patience, Transient::FreshEntity, || async {
            let req = self
                .iam
                .client
                .create_role()
                .role_name(text(after, "name").unwrap_or_default())
                .path(text(after, "path").unwrap_or("/"))
                .set_description(text(after, "description").map(str::to_owned))
                .set_max_session_duration(max)
                .set_permissions_boundary(text(after, "permissions_boundary").map(str::to_owned))
                .assume_role_policy_document(&trust)
                .set_tags(Some(iam_tags(&tags(Some(after)))));
            call("CreateRole", req.send().await).map(drop)
        })
        .await
    }

    async fn update_role(&self, change: &Change, after: &Attrs) -> Result<(), CallError> {
        let name = role_name(after);
        let changed = |k: &str| change.changed.iter().any(|c| c == k);
        if changed("trust_policy") {
            let trust = doc(after, "trust_policy");
            retrying(self.patience, Transient::FreshEntity, || async {
                call(
                    "UpdateAssumeRolePolicy",
                    self.iam.client.update_assume_role_policy().role_name(&name).policy_document(&trust).send().await,
                )
                .map(drop)
            })
            .await?;
        }
        if changed("description") || changed("max_session_duration") {
            let max = after.get("max_session_duration").and_then(Value::as_i64).and_then(|m| i32::try_from(m).ok());
            // An empty description clears it; leaving it out would keep the old one.
            let description = text(after, "description").unwrap_or("").to_owned();
            call(
                "UpdateRole",
                self.iam
                    .client
                    .update_role()
                    .role_name(&name)
                    .description(description)
                    .set_max_session_duration(max)
                    .send()
                    .await,
            )?;
        }
        if changed("permissions_boundary") {
            match text(after, "permissions_boundary") {
                Some(boundary) => call(
                    "PutRolePermissionsBoundary",
                    self.iam
                        .client
                        .put_role_permissions_boundary()
                        .role_name(&name)
                        .permissions_boundary(boundary)
                        .send()
                        .await,
                )
                .map(drop)?,
                None => ok_if_gone(
                    call(
                        "DeleteRolePermissionsBoundary",
                        self.iam.client.delete_role_permissions_boundary().role_name(&name).send().await,
                    )
                    .map(drop),
                )?,
            }
        }
        if changed("tags") {
            let (set, unset) = tag_diff(&tags(change.before.as_ref()), &tags(Some(after)));
            if !set.is_empty() {
                call("TagRole", self.iam.client.tag_role().role_name(&name).set_tags(Some(set)).send().await)?;
            }
            if !unset.is_empty() {
                call(
                    "UntagRole",
                    self.iam.client.untag_role().role_name(&name).set_tag_keys(Some(unset)).send().await,
                )?;
            }
        }
        Ok(())
    }

    /// IAM deletes a role only once nothing hangs on it: detach its policies
    /// and delete its inline policies first, whatever the plan listed (a
    /// policy attached since the plan was made would block the delete).
    async fn delete_role(&self, name: &str) -> Result<(), CallError> {
        let attached = match call(
            "ListAttachedRolePolicies",
            self.iam.client.list_attached_role_policies().role_name(name).send().await,
        ) {
            Err(e) if gone(&e) => return Ok(()),
            other => other?,
        };
        for p in attached.attached_policies() {
            let arn = p.policy_arn().unwrap_or_default();
            ok_if_gone(
                retrying(self.patience, Transient::Deleting, || async {
                    call(
                        "DetachRolePolicy",
                        self.iam.client.detach_role_policy().role_name(name).policy_arn(arn).send().await,
                    )
                    .map(drop)
                })
                .await,
            )?;
        }
        let inline = call("ListRolePolicies", self.iam.client.list_role_policies().role_name(name).send().await)?;
        for p in inline.policy_names() {
            ok_if_gone(
                call(
                    "DeleteRolePolicy",
                    self.iam.client.delete_role_policy().role_name(name).policy_name(p).send().await,
                )
                .map(drop),
            )?;
        }
        ok_if_gone(
            retrying(self.patience, Transient::Deleting, || async {
                call("DeleteRole", self.iam.client.delete_role().role_name(name).send().await).map(drop)
            })
            .await,
        )
    }
}

fn not_iam(change: &Change) -> CallError {
    CallError {
        operation: "apply",
        code: None,
        message: format!("{} is a cluster resource, not an IAM one", change.address),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_diffs_set_changed_and_new_keys_and_unset_removed_ones() {
        let before = BTreeMap::from([("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())]);
        let after = BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "3".to_owned()),
            ("c".to_owned(), "4".to_owned()),
        ]);
        let (set, unset) = tag_diff(&before, &after);
        assert_eq!(set.iter().map(|t| (t.key(), t.value())).collect::<Vec<_>>(), [("b", "3"), ("c", "4")]);
        assert!(unset.is_empty());
        let (set, unset) = tag_diff(&after, &before);
        assert_eq!(set.len(), 1);
        assert_eq!(unset, ["c"]);
    }

    #[test]
    fn role_names_come_from_the_attributes_or_the_arn() {
        let m = crate::plan::Attrs::from;
        assert_eq!(role_name(&m(serde_json::json!({"name": "app"}))), "app");
        assert_eq!(role_name(&m(serde_json::json!({"role": "app", "policy_arn": "x"}))), "app");
        assert_eq!(role_name(&m(serde_json::json!({"role": "app", "name": "inline-policy"}))), "app");
        assert_eq!(role_name(&m(serde_json::json!({"arn": "arn:aws:iam::1:role/team/Legacy"}))), "Legacy");
    }
}
