//! The objects and every write to them: create, replace, patch, apply,
//! delete, and the status subresource's replace and patch. Objects are
//! plain JSON; the server's bookkeeping (metadata, managedFields, admission
//! and the pod identity webhook) happens here, under the one lock the HTTP
//! layer and the controllers (`controller.rs`) take turns holding.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::errors::ApiError;
use super::fields::{self, Conflict, Writer};
use super::kinds::{DEPLOYMENTS, Kind, MUTATING_WEBHOOK_CONFIGURATIONS, NAMESPACES, PODS, SERVICE_ACCOUNTS};
use super::patch::{self, JsonPatchError};
use super::selector;

/// (plural, namespace or "" for cluster-scoped kinds, name); the map's
/// order is the order of lists, as etcd's keys are.
pub type Key = (&'static str, String, String);

pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
const TOKEN_DIR: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";

#[derive(Debug, Clone)]
pub struct State {
    pub(super) objects: BTreeMap<Key, Value>,
    resource_version: u64,
    uids: u64,
    generated_names: u64,
    pub now: jiff::Timestamp,
    pub issuer: Option<String>,
    /// RBAC limited to namespaces: lists across all namespaces are forbidden.
    pub namespaced_only: bool,
    /// RBAC without these (verb, resource) grants, e.g. ("list", "deployments.apps").
    pub denied: BTreeSet<(String, String)>,
    /// The kubelet stand-in runs pods (on at start).
    pub kubelet: bool,
    /// Pods the kubelet saw Pending on its last pass: it starts them on the
    /// next one, so a pod is Pending for at least one controller tick.
    pub(super) kubelet_seen: BTreeSet<Key>,
    /// The resourceVersion after the controllers' last pass that wrote
    /// nothing: until something writes, they have nothing to do.
    pub(super) settled_at: Option<u64>,
    /// Controllers rewrite every Deployment's status this often.
    pub(super) status_churn: Option<std::time::Duration>,
    pub(super) last_churn: Option<std::time::Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Strategic,
    Json,
    Apply,
}

/// A PATCH: its format (from Content-Type), body and query parameters.
#[derive(Debug, Clone, Copy)]
pub struct PatchRequest<'a> {
    pub patch_type: PatchType,
    pub body: &'a [u8],
    pub field_manager: Option<&'a str>,
    pub force: bool,
}

#[derive(Debug, Default)]
pub struct ListOptions<'a> {
    pub label_selector: Option<&'a str>,
    pub field_selector: Option<&'a str>,
    pub limit: Option<&'a str>,
    pub continue_token: Option<&'a str>,
}

/// Who becomes the owner of the fields a write sets.
enum Ownership<'a> {
    Update(&'a str),
    Apply { manager: &'a str, config: &'a Value, conflicts: Vec<Conflict> },
}

pub fn key(kind: &Kind, ns: &str, name: &str) -> Key {
    (kind.plural, if kind.namespaced { ns.to_string() } else { String::new() }, name.to_string())
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str)
}

fn object_mut(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("made an object above"),
    }
}

pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    object_mut(object_mut(obj).entry("metadata").or_insert_with(|| json!({})))
}

impl State {
    /// A fresh cluster: the namespaces (each with its `default`
    /// ServiceAccount) that every real cluster starts with.
    pub fn new() -> State {
        let mut state = State {
            objects: BTreeMap::new(),
            resource_version: 0,
            uids: 0,
            generated_names: 0,
            now: jiff::Timestamp::from_second(1_767_225_600).unwrap_or(jiff::Timestamp::UNIX_EPOCH), // 2026-01-01T00:00:00Z
            issuer: None,
            namespaced_only: false,
            denied: BTreeSet::new(),
            kubelet: true,
            kubelet_seen: BTreeSet::new(),
            settled_at: None,
            status_churn: None,
            last_churn: None,
        };
        for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
            let _ = state.create(&NAMESPACES, "", json!({"metadata": {"name": ns}}), "kube-apiserver");
        }
        let _ = state.create(&MUTATING_WEBHOOK_CONFIGURATIONS, "", pod_identity_webhook_config(), "eks");
        state
    }

    /// Whether the pod identity webhook is registered: a
    /// MutatingWebhookConfiguration holding its webhook, with a rule for
    /// pod CREATE. The API server calls only the webhooks registered.
    pub fn pod_identity_webhook(&self) -> bool {
        let covers = |list: Option<&Value>, want: &str| {
            list.and_then(Value::as_array).is_some_and(|l| l.iter().any(|v| v == want || v == "*"))
        };
        self.objects.iter().filter(|((plural, _, _), _)| *plural == MUTATING_WEBHOOK_CONFIGURATIONS.plural).any(
            |(_, c)| {
                c.get("webhooks").and_then(Value::as_array).into_iter().flatten().any(|w| {
                    w.get("name").and_then(Value::as_str) == Some(POD_IDENTITY_WEBHOOK)
                        && w.get("rules")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .any(|r| covers(r.get("resources"), "pods") && covers(r.get("operations"), "CREATE"))
                })
            },
        )
    }

    /// `POST .../serviceaccounts/{name}/token` (TokenRequest), as
    /// kube-apiserver answers it: a JWT for the audiences asked (the API
    /// server's own, its issuer, when none), `iss` the
    /// `--service-account-issuer` (what discovery names), `sub`
    /// `system:serviceaccount:NS:NAME`. Its signature is not a real one:
    /// nothing here verifies it, and irsa never does.
    pub fn token_request(&self, ns: &str, name: &str, body: &Value) -> Result<Value, ApiError> {
        let sa = self.get(&SERVICE_ACCOUNTS, ns, name)?;
        let expiration = body.pointer("/spec/expirationSeconds").and_then(Value::as_i64).unwrap_or(3600);
        if expiration < 600 {
            let detail = format!("Invalid value: {expiration}: may not specify a duration less than 10 minutes");
            let message =
                format!("TokenRequest.authentication.k8s.io \"{name}\" is invalid: spec.expirationSeconds: {detail}");
            let details = json!({"name": name, "group": "authentication.k8s.io", "kind": "TokenRequest",
                "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": "spec.expirationSeconds"}]});
            return Err(ApiError::new(422, "Invalid", message, details));
        }
        let issuer = self.issuer.clone().unwrap_or_else(|| "https://kubernetes.default.svc".to_owned());
        let audiences = match body.pointer("/spec/audiences").and_then(Value::as_array) {
            Some(a) if !a.is_empty() => Value::Array(a.clone()),
            _ => json!([issuer]),
        };
        let iat = self.now.as_second();
        let claims = json!({
            "aud": audiences,
            "exp": iat + expiration,
            "iat": iat,
            "nbf": iat,
            "iss": issuer,
            "jti": format!("{:016x}", mix(self.resource_version + iat.unsigned_abs())),
            "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": name, "uid": meta_str(&sa, "uid")}},
            "sub": format!("system:serviceaccount:{ns}:{name}"),
        });
        use base64::Engine;
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!(
            "{}.{}.{}",
            b64(br#"{"alg":"RS256","kid":"irsa-test"}"#),
            b64(claims.to_string().as_bytes()),
            b64(b"not-a-signature")
        );
        let expires = self.now.checked_add(jiff::SignedDuration::from_secs(expiration)).unwrap_or(self.now);
        Ok(json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": null},
            "spec": {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": null},
            "status": {"token": token, "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()},
        }))
    }

    /// Kubernetes times (`metav1.Time`) are RFC 3339 with whole seconds.
    pub fn now_text(&self) -> String {
        self.now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    pub fn resource_version(&self) -> String {
        self.resource_version.to_string()
    }

    pub(super) fn resource_version_number(&self) -> u64 {
        self.resource_version
    }

    pub fn get(&self, kind: &Kind, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects.get(&key(kind, ns, name)).cloned().ok_or_else(|| ApiError::not_found(kind, name))
    }

    /// A `<Kind>List`; `ns` None lists every namespace. `limit` and
    /// `continue` page in key order; the token is the last key returned.
    pub fn list(&self, kind: &Kind, ns: Option<&str>, options: &ListOptions) -> Result<Value, ApiError> {
        let labels = selector::parse(options.label_selector.unwrap_or_default()).map_err(ApiError::bad_request)?;
        let field_reqs =
            selector::parse_fields(options.field_selector.unwrap_or_default()).map_err(ApiError::bad_request)?;
        let limit = match options.limit {
            None | Some("") | Some("0") => None,
            Some(text) => {
                Some(text.parse::<usize>().map_err(|_| ApiError::bad_request(format!("invalid limit {text:?}")))?)
            }
        };
        let after = options.continue_token.filter(|t| !t.is_empty()).map(|t| t.split_once('/').unwrap_or(("", t)));
        let matching: Vec<(&Key, &Value)> = self
            .objects
            .iter()
            .filter(|((plural, obj_ns, _), _)| *plural == kind.plural && ns.is_none_or(|ns| obj_ns == ns))
            .filter(|((_, obj_ns, name), _)| {
                after.is_none_or(|(a_ns, a_name)| (obj_ns.as_str(), name.as_str()) > (a_ns, a_name))
            })
            .filter(|(_, obj)| {
                let empty = Map::new();
                let obj_labels = obj.pointer("/metadata/labels").and_then(Value::as_object).unwrap_or(&empty);
                selector::matches_all(&labels, obj_labels) && selector::fields_match(&field_reqs, obj)
            })
            .collect();
        let taken = limit.unwrap_or(matching.len()).min(matching.len());
        let mut metadata = json!({"resourceVersion": self.resource_version()});
        if taken < matching.len()
            && let Some(((_, last_ns, last_name), _)) = matching.get(taken.wrapping_sub(1))
        {
            metadata["continue"] = json!(format!("{last_ns}/{last_name}"));
            metadata["remainingItemCount"] = json!(matching.len() - taken);
        }
        let items: Vec<Value> = matching.into_iter().take(taken).map(|(_, obj)| obj.clone()).collect();
        Ok(
            json!({"kind": format!("{}List", kind.kind), "apiVersion": kind.api_version(), "metadata": metadata, "items": items}),
        )
    }

    pub fn create(&mut self, kind: &'static Kind, ns: &str, mut body: Value, manager: &str) -> Result<Value, ApiError> {
        check_shape(&body)?;
        check_type(kind, &mut body, false)?;
        check_namespace(kind, ns, &mut body)?;
        if meta_str(&body, "resourceVersion").is_some_and(|rv| !rv.is_empty()) {
            return Err(ApiError::bad_request("resourceVersion should not be set on objects to be created"));
        }
        let name = match (meta_str(&body, "name"), meta_str(&body, "generateName")) {
            (Some(name), _) if !name.is_empty() => name.to_string(),
            (_, Some(prefix)) if !prefix.is_empty() => self.generate_name(prefix),
            _ => {
                let detail = "Required value: name or generateName is required";
                return Err(ApiError::invalid(kind, "", "metadata.name", "FieldValueRequired", detail));
            }
        };
        validate_name(kind, &name)?;
        self.require_namespace(kind, ns)?;
        if self.objects.contains_key(&key(kind, ns, &name)) {
            return Err(ApiError::already_exists(kind, &name));
        }
        self.commit(kind, ns, &name, None, body, Ownership::Update(manager))
    }

    /// The checks of a PUT, on the object or its status: a well-formed body
    /// of this kind, namespace and name, carrying the stored resourceVersion
    /// (optimistic concurrency). Returns the stored object.
    fn checked_update(&self, kind: &'static Kind, ns: &str, name: &str, body: &mut Value) -> Result<Value, ApiError> {
        check_shape(body)?;
        check_type(kind, body, false)?;
        check_namespace(kind, ns, body)?;
        check_name(name, body)?;
        let old = self.get(kind, ns, name)?;
        match meta_str(body, "resourceVersion") {
            None | Some("") => {
                let detail = "Invalid value: 0x0: must be specified for an update";
                Err(ApiError::invalid(kind, name, "metadata.resourceVersion", "FieldValueInvalid", detail))
            }
            Some(rv) if Some(rv) != meta_str(&old, "resourceVersion") => Err(ApiError::modified(kind, name)),
            Some(_) => Ok(old),
        }
    }

    /// PUT: the body must carry the stored resourceVersion (optimistic
    /// concurrency); there is no create-on-update for these kinds.
    pub fn replace(
        &mut self,
        kind: &'static Kind,
        ns: &str,
        name: &str,
        mut body: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let old = self.checked_update(kind, ns, name, &mut body)?;
        self.commit(kind, ns, name, Some(old), body, Ownership::Update(manager))
    }

    /// PATCH; returns the HTTP status (201 when an apply created the object).
    pub fn patch(
        &mut self,
        kind: &'static Kind,
        ns: &str,
        name: &str,
        request: PatchRequest,
    ) -> Result<(u16, Value), ApiError> {
        let PatchRequest { patch_type, field_manager, .. } = request;
        if patch_type == PatchType::Apply {
            return self.apply(kind, ns, name, request);
        }
        let (old, new) = self.patched(kind, ns, name, request)?;
        let manager = field_manager.filter(|m| !m.is_empty()).unwrap_or("unknown");
        Ok((200, self.commit(kind, ns, name, Some(old), new, Ownership::Update(manager))?))
    }

    /// The stored object and what a merge, strategic or JSON patch makes of it.
    fn patched(&self, kind: &Kind, ns: &str, name: &str, request: PatchRequest) -> Result<(Value, Value), ApiError> {
        let PatchRequest { patch_type, body, .. } = request;
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
        let old = self.get(kind, ns, name)?;
        let mut new = old.clone();
        match patch_type {
            PatchType::Json => patch::json_patch(&mut new, &patch).map_err(|e| match e {
                JsonPatchError::Malformed(m) => ApiError::bad_request(m),
                JsonPatchError::DoesNotApply => ApiError::unprocessable(),
            })?,
            _ if !patch.is_object() => return Err(ApiError::bad_request("a merge patch must be a JSON object")),
            _ => patch::merge(&mut new, &patch),
        }
        check_shape(&new)?;
        check_type(kind, &mut new, true)?;
        if meta_str(&new, "name") != Some(name) || meta_str(&new, "namespace") != meta_str(&old, "namespace") {
            return Err(ApiError::bad_request("a patch cannot change metadata.name or metadata.namespace"));
        }
        // A resourceVersion the patch sets is a precondition on the stored one.
        if meta_str(&new, "resourceVersion") != meta_str(&old, "resourceVersion")
            && meta_str(&new, "resourceVersion").is_some()
        {
            return Err(ApiError::modified(kind, name));
        }
        Ok((old, new))
    }

    /// PUT `.../{name}/status`: only `status` is taken from the body; spec
    /// and metadata stay as stored. The resourceVersion must match.
    pub fn replace_status(
        &mut self,
        kind: &'static Kind,
        ns: &str,
        name: &str,
        mut body: Value,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let old = self.checked_update(kind, ns, name, &mut body)?;
        self.commit_status(kind, ns, name, old, body.get("status").cloned(), manager, false)
    }

    /// PATCH `.../{name}/status` (merge, strategic or JSON patch; not apply).
    pub fn patch_status(
        &mut self,
        kind: &'static Kind,
        ns: &str,
        name: &str,
        request: PatchRequest,
    ) -> Result<(u16, Value), ApiError> {
        if request.patch_type == PatchType::Apply {
            return Err(ApiError::bad_request("server-side apply to /status is not supported by the test API server"));
        }
        let (old, new) = self.patched(kind, ns, name, request)?;
        let manager = request.field_manager.filter(|m| !m.is_empty()).unwrap_or("unknown");
        Ok((200, self.commit_status(kind, ns, name, old, new.get("status").cloned(), manager, false)?))
    }

    /// Every status write ends here (clients' and controllers'): the stored
    /// object with `status` replaced, a new resourceVersion, and
    /// managedFields recording `manager` for the status subresource. A write
    /// that changes nothing is skipped unless `touch` (a test's hook).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn commit_status(
        &mut self,
        kind: &Kind,
        ns: &str,
        name: &str,
        old: Value,
        status: Option<Value>,
        manager: &str,
        touch: bool,
    ) -> Result<Value, ApiError> {
        if !kind.has_status() {
            return Err(ApiError::not_found(kind, name));
        }
        let mut new = old.clone();
        match status {
            Some(status) if !status.is_null() => object_mut(&mut new).insert("status".into(), status),
            _ => object_mut(&mut new).remove("status"),
        };
        let now = self.now_text();
        let old_entries = fields::parse(&old);
        let mut entries = old_entries.clone();
        let api_version = kind.api_version();
        let writer = Writer { manager, api_version: &api_version, now: &now };
        fields::record_status_update(&mut entries, &old, &new, writer, touch);
        if !touch && new == old && entries == old_entries {
            return Ok(old);
        }
        self.resource_version += 1;
        let rv = self.resource_version();
        let meta = meta_mut(&mut new);
        meta.insert("resourceVersion".into(), json!(rv));
        meta.insert("managedFields".into(), fields::render(&entries));
        self.objects.insert(key(kind, ns, name), new.clone());
        Ok(new)
    }

    /// A write to the main resource by a controller: `change` edits a copy
    /// of the stored object.
    pub(super) fn update_as(
        &mut self,
        kind: &'static Kind,
        ns: &str,
        name: &str,
        manager: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        let old = self.get(kind, ns, name)?;
        let mut new = old.clone();
        change(&mut new);
        self.commit(kind, ns, name, Some(old), new, Ownership::Update(manager))
    }

    /// Server-side apply (the body as JSON; YAML is not parsed here).
    fn apply(
        &mut self,
        kind: &'static Kind,
        ns: &str,
        name: &str,
        request: PatchRequest,
    ) -> Result<(u16, Value), ApiError> {
        let PatchRequest { body, field_manager, force, .. } = request;
        let Some(manager) = field_manager.filter(|m| !m.is_empty()) else {
            return Err(ApiError::bad_request("PATCH, application/apply-patch+yaml requires fieldManager to be set"));
        };
        let mut config: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("apply patch is not JSON (this test server does not read YAML): {e}"))
        })?;
        check_shape(&config)?;
        check_type(kind, &mut config, true)?;
        check_namespace(kind, ns, &mut config)?;
        check_name(name, &mut config)?;
        let precondition = meta_str(&config, "resourceVersion").map(str::to_string);
        for field in ["resourceVersion", "managedFields", "uid", "creationTimestamp", "generation"] {
            meta_mut(&mut config).remove(field);
        }
        let Some(old) = self.objects.get(&key(kind, ns, name)).cloned() else {
            validate_name(kind, name)?;
            self.require_namespace(kind, ns)?;
            let created = self.commit(
                kind,
                ns,
                name,
                None,
                config.clone(),
                Ownership::Apply { manager, config: &config, conflicts: Vec::new() },
            )?;
            return Ok((201, created));
        };
        if precondition.is_some_and(|rv| Some(rv.as_str()) != meta_str(&old, "resourceVersion")) {
            return Err(ApiError::modified(kind, name));
        }
        let entries = fields::parse(&old);
        let conflicts = fields::apply_conflicts(&entries, manager, &old, &config);
        if !conflicts.is_empty() && !force {
            return Err(ApiError::apply_conflicts(kind, name, &conflicts));
        }
        let mut new = old.clone();
        for path in fields::dropped_by_apply(&entries, manager, &config) {
            fields::remove_path(&mut new, &path);
        }
        patch::merge(&mut new, &config);
        let updated =
            self.commit(kind, ns, name, Some(old), new, Ownership::Apply { manager, config: &config, conflicts })?;
        Ok((200, updated))
    }

    /// DELETE: immediate (no graceful deletion, no finalizers); returns the
    /// object as it was. A namespace takes its contents with it; what an
    /// object owns (ownerReferences) the garbage collector deletes soon after.
    pub fn delete(&mut self, kind: &Kind, ns: &str, name: &str, options: &[u8]) -> Result<Value, ApiError> {
        let options: Value = if options.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(options)
                .map_err(|e| ApiError::bad_request(format!("DeleteOptions is not valid JSON: {e}")))?
        };
        let old = self.get(kind, ns, name)?;
        for (field, label) in [("resourceVersion", "ResourceVersion"), ("uid", "UID")] {
            let wanted = options.get("preconditions").and_then(|p| p.get(field)).and_then(Value::as_str);
            let actual = meta_str(&old, field).unwrap_or_default();
            if let Some(wanted) = wanted.filter(|w| *w != actual) {
                let why =
                    format!("Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {actual}");
                return Err(ApiError::conflict(kind, name, &why));
            }
        }
        self.objects.remove(&key(kind, ns, name));
        self.resource_version += 1;
        if *kind == NAMESPACES {
            self.objects.retain(|(_, obj_ns, _), _| obj_ns != name);
        }
        self.kubelet_seen.remove(&key(kind, ns, name));
        Ok(old)
    }

    /// DELETE on a collection: every object the selectors match, as a list.
    pub fn delete_collection(&mut self, kind: &Kind, ns: &str, options: &ListOptions) -> Result<Value, ApiError> {
        let ns_filter = if kind.namespaced { Some(ns) } else { None };
        let mut list = self.list(kind, ns_filter, &ListOptions { limit: None, continue_token: None, ..*options })?;
        if let Some(items) = list.get("items").and_then(Value::as_array) {
            for item in items {
                let (obj_ns, name) =
                    (meta_str(item, "namespace").unwrap_or_default(), meta_str(item, "name").unwrap_or_default());
                self.delete(kind, obj_ns, name, b"")?;
            }
        }
        list["metadata"]["resourceVersion"] = json!(self.resource_version());
        Ok(list)
    }

    /// Every write ends here. Sets the server's metadata, records field
    /// ownership, and skips the write entirely when nothing changed (a
    /// real API server does not bump resourceVersion for a no-op update).
    fn commit(
        &mut self,
        kind: &'static Kind,
        ns: &str,
        name: &str,
        old: Option<Value>,
        mut new: Value,
        ownership: Ownership,
    ) -> Result<Value, ApiError> {
        let now = self.now_text();
        self.normalize(kind, ns, name, old.as_ref(), &mut new);
        validate_object(kind, name, old.as_ref(), &new)?;
        if *kind == PODS && old.is_none() {
            self.admit_pod(ns, name, &mut new)?;
        }
        let object_changed = old.as_ref() != Some(&new);
        let old_entries = old.as_ref().map(fields::parse).unwrap_or_default();
        let mut entries = old_entries.clone();
        let api_version = kind.api_version();
        match ownership {
            Ownership::Update(manager) => {
                let writer = Writer { manager, api_version: &api_version, now: &now };
                fields::record_update(&mut entries, old.as_ref(), &new, writer);
            }
            Ownership::Apply { manager, config, conflicts } => {
                let writer = Writer { manager, api_version: &api_version, now: &now };
                fields::record_apply(&mut entries, &conflicts, config, &new, object_changed, writer);
            }
        }
        if let Some(old) = &old
            && !object_changed
            && entries == old_entries
        {
            return Ok(old.clone());
        }
        let generation = match &old {
            None => 1,
            Some(old) => {
                let previous = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
                // metadata.generation counts changes to the desired state (spec).
                if old.get("spec") != new.get("spec") { previous + 1 } else { previous }
            }
        };
        self.resource_version += 1;
        let rv = self.resource_version();
        let meta = meta_mut(&mut new);
        meta.insert("generation".into(), json!(generation));
        meta.insert("resourceVersion".into(), json!(rv));
        meta.insert("managedFields".into(), fields::render(&entries));
        self.objects.insert(key(kind, ns, name), new.clone());
        if *kind == NAMESPACES && old.is_none() {
            let sa = json!({"metadata": {"name": "default"}});
            let _ = self.create(&SERVICE_ACCOUNTS, name, sa, "kube-controller-manager");
        }
        Ok(new)
    }

    /// The fields a client cannot set: identity and bookkeeping come from
    /// the stored object (or are new on create), and `status` belongs to
    /// the status subresource.
    fn normalize(&mut self, kind: &Kind, ns: &str, name: &str, old: Option<&Value>, new: &mut Value) {
        let qos = qos_class(new);
        let root = object_mut(new);
        root.insert("apiVersion".into(), json!(kind.api_version()));
        root.insert("kind".into(), json!(kind.kind));
        if kind.has_status() {
            let status = match old {
                Some(old) => old.get("status").cloned(),
                None if kind.plural == "namespaces" => Some(json!({"phase": "Active"})),
                // As the pod strategy's PrepareForCreate: the kubelet runs it later.
                None if kind.plural == "pods" => Some(json!({"phase": "Pending", "qosClass": qos})),
                None => None,
            };
            match status {
                Some(status) => root.insert("status".into(), status),
                None => root.remove("status"),
            };
        }
        let (uid, created) = match old {
            Some(old) => {
                (meta_str(old, "uid").map(str::to_string), meta_str(old, "creationTimestamp").map(str::to_string))
            }
            None => {
                self.uids += 1;
                (Some(format!("00000000-0000-4000-8000-{:012x}", self.uids)), Some(self.now_text()))
            }
        };
        let meta = meta_mut(new);
        meta.insert("name".into(), json!(name));
        if kind.namespaced {
            meta.insert("namespace".into(), json!(ns));
        }
        for (field, value) in [("uid", uid), ("creationTimestamp", created)] {
            meta.insert(field.into(), json!(value));
        }
        for field in ["resourceVersion", "generation", "managedFields"] {
            match old.and_then(|o| o.get("metadata")).and_then(|m| m.get(field)) {
                Some(value) => meta.insert(field.into(), value.clone()),
                None => meta.remove(field),
            };
        }
    }

    fn require_namespace(&self, kind: &Kind, ns: &str) -> Result<(), ApiError> {
        if kind.namespaced && !self.objects.contains_key(&key(&NAMESPACES, "", ns)) {
            return Err(ApiError::not_found(&NAMESPACES, ns));
        }
        Ok(())
    }

    /// `generateName` plus five characters from the alphabet Kubernetes
    /// uses for random suffixes (no vowels, so no words): a counter through
    /// a mixing function, so they look random yet repeat from run to run.
    fn generate_name(&mut self, prefix: &str) -> String {
        self.generated_names += 1;
        format!("{prefix}{}", safe_suffix(mix(self.generated_names), 5))
    }

    /// The ServiceAccount admission plugin and the EKS pod identity webhook,
    /// both of which act once, when a pod is created.
    fn admit_pod(&self, ns: &str, name: &str, pod: &mut Value) -> Result<(), ApiError> {
        let spec = object_mut(object_mut(pod).entry("spec").or_insert_with(|| json!({})));
        let sa_name = match spec.get("serviceAccountName").and_then(Value::as_str) {
            Some(sa) if !sa.is_empty() => sa.to_string(),
            _ => "default".to_string(),
        };
        spec.insert("serviceAccountName".into(), json!(sa_name));
        spec.insert("serviceAccount".into(), json!(sa_name));
        let Some(sa) = self.objects.get(&key(&SERVICE_ACCOUNTS, ns, &sa_name)) else {
            let why =
                format!("error looking up service account {ns}/{sa_name}: serviceaccount \"{sa_name}\" not found");
            return Err(ApiError::forbidden(&PODS, name, &why));
        };
        let sa_annotations = sa.pointer("/metadata/annotations").cloned().unwrap_or_else(|| json!({}));
        let Some(role) = sa_annotations.get(ROLE_ARN_ANNOTATION).and_then(Value::as_str) else { return Ok(()) };
        if !self.pod_identity_webhook() {
            return Ok(());
        }
        let pod_annotations = pod.pointer("/metadata/annotations").cloned().unwrap_or_else(|| json!({}));
        let annotation = |on: &Value, key: &str| {
            on.get(format!("eks.amazonaws.com/{key}")).and_then(Value::as_str).map(str::to_owned)
        };
        let seconds = |text: Option<String>| text.and_then(|t| t.parse::<i64>().ok()).map(|n| n.max(600));
        let identity = Identity {
            role: role.to_owned(),
            audience: annotation(&sa_annotations, "audience").unwrap_or_else(|| "sts.amazonaws.com".into()),
            // EKS runs the webhook with regional endpoints on (1.22 and
            // later); the ServiceAccount's annotation overrides it.
            regional: annotation(&sa_annotations, "sts-regional-endpoints").is_none_or(|v| v != "false"),
            // Pod annotation > ServiceAccount annotation > 86400, never under 600.
            expiration: seconds(annotation(&pod_annotations, "token-expiration"))
                .or_else(|| seconds(annotation(&sa_annotations, "token-expiration")))
                .unwrap_or(86400),
            skip: annotation(&pod_annotations, "skip-containers")
                .map(|s| s.split(',').map(|c| c.trim().to_owned()).collect())
                .unwrap_or_default(),
        };
        let spec = object_mut(object_mut(pod).entry("spec").or_insert_with(|| json!({})));
        inject_web_identity(spec, &identity);
        Ok(())
    }
}

/// The webhook's name in its MutatingWebhookConfiguration on EKS.
pub const POD_IDENTITY_WEBHOOK: &str = "iam-for-pods.amazonaws.com";

/// The configuration EKS registers for the pod identity webhook, which runs
/// beside its API server (`failurePolicy: Ignore`: a pod is created
/// unmutated when the webhook cannot be reached).
pub fn pod_identity_webhook_config() -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "pod-identity-webhook"},
        "webhooks": [{
            "name": POD_IDENTITY_WEBHOOK,
            "admissionReviewVersions": ["v1beta1"],
            "clientConfig": {"url": "https://127.0.0.1:23443/mutate"},
            "failurePolicy": "Ignore",
            "matchPolicy": "Equivalent",
            "namespaceSelector": {},
            "reinvocationPolicy": "IfNeeded",
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"], "scope": "*"}],
            "sideEffects": "None",
            "timeoutSeconds": 10
        }]
    })
}

/// What the webhook reads from the ServiceAccount and the pod.
struct Identity {
    role: String,
    audience: String,
    regional: bool,
    expiration: i64,
    skip: Vec<String>,
}

/// What the EKS pod identity webhook (v0.6) adds, container by container
/// (init containers too) but those named in `eks.amazonaws.com/skip-containers`:
/// `AWS_STS_REGIONAL_ENDPOINTS=regional` when regional and unset,
/// `AWS_DEFAULT_REGION` and `AWS_REGION` when no region is set,
/// `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE` unless the container
/// sets either itself, and the `aws-iam-token` mount unless it has it
/// (a container that has all three kinds of variable is left alone); and
/// the projected token volume to the pod unless it has one.
fn inject_web_identity(spec: &mut Map<String, Value>, identity: &Identity) {
    let env = |name: &str, value: &str| json!({"name": name, "value": value});
    let mount = json!({"name": "aws-iam-token", "mountPath": TOKEN_DIR, "readOnly": true});
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(containers)) = spec.get_mut(list) else { continue };
        for container in containers.iter_mut().filter(|c| c.is_object()) {
            let container = object_mut(container);
            let name = container.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
            if identity.skip.contains(&name) {
                continue;
            }
            let has = |names: &[&str]| {
                container.get("env").and_then(Value::as_array).is_some_and(|items| {
                    items.iter().any(|i| i.get("name").and_then(Value::as_str).is_some_and(|n| names.contains(&n)))
                })
            };
            let (own_identity, own_region, own_regional) = (
                has(&["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"]),
                has(&["AWS_REGION", "AWS_DEFAULT_REGION"]),
                has(&["AWS_STS_REGIONAL_ENDPOINTS"]),
            );
            if own_identity && own_region && own_regional {
                continue;
            }
            let mut added = Vec::new();
            if !own_regional && identity.regional {
                added.push(env("AWS_STS_REGIONAL_ENDPOINTS", "regional"));
            }
            if !own_region {
                added.extend([env("AWS_DEFAULT_REGION", WEBHOOK_REGION), env("AWS_REGION", WEBHOOK_REGION)]);
            }
            if !own_identity {
                added.extend([
                    env("AWS_ROLE_ARN", &identity.role),
                    env("AWS_WEB_IDENTITY_TOKEN_FILE", &format!("{TOKEN_DIR}/token")),
                ]);
            }
            push_named(container, "env", &added);
            push_named(container, "volumeMounts", std::slice::from_ref(&mount));
        }
    }
    let volume = json!({"name": "aws-iam-token", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {
        "audience": identity.audience, "expirationSeconds": identity.expiration, "path": "token"}}]}});
    push_named(spec, "volumes", &[volume]);
}

/// The region the webhook was started with (`--aws-default-region`; EKS
/// passes the cluster's).
const WEBHOOK_REGION: &str = "us-east-1";

/// Appends the items whose `name` the list does not have yet.
fn push_named(parent: &mut Map<String, Value>, list: &str, items: &[Value]) {
    let entry = parent.entry(list).or_insert_with(|| json!([]));
    if !entry.is_array() {
        *entry = json!([]);
    }
    if let Value::Array(existing) = entry {
        for item in items {
            if !existing.iter().any(|e| e.get("name") == item.get("name")) {
                existing.push(item.clone());
            }
        }
    }
}

/// The pod's QoS class as the API server computes it at create, roughly:
/// BestEffort without any requests or limits, else Burstable.
fn qos_class(pod: &Value) -> &'static str {
    let containers = pod.pointer("/spec/containers").and_then(Value::as_array);
    let sized = containers.into_iter().flatten().any(|c| {
        ["requests", "limits"]
            .iter()
            .any(|k| c.pointer(&format!("/resources/{k}")).and_then(Value::as_object).is_some_and(|m| !m.is_empty()))
    });
    if sized { "Burstable" } else { "BestEffort" }
}

/// splitmix64: spreads a counter over 64 bits.
pub fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub fn safe_suffix(mut n: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = String::new();
    for _ in 0..len {
        out.push(char::from(ALPHABET[(n % ALPHABET.len() as u64) as usize]));
        n /= ALPHABET.len() as u64;
    }
    out
}

/// What decoding into the typed object would refuse: a body that is not an
/// object, a `metadata` that is not one, labels or annotations that are not
/// string maps.
fn check_shape(obj: &Value) -> Result<(), ApiError> {
    let Value::Object(root) = obj else { return Err(ApiError::bad_request("the body must be a JSON object")) };
    for field in ["apiVersion", "kind"] {
        if root.get(field).is_some_and(|v| !v.is_string()) {
            return Err(ApiError::bad_request(format!("{field} must be a string")));
        }
    }
    let meta = match root.get("metadata") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(meta)) => meta,
        Some(_) => return Err(ApiError::bad_request("metadata must be an object")),
    };
    for field in ["name", "namespace", "generateName", "resourceVersion", "uid"] {
        if meta.get(field).is_some_and(|v| !v.is_string() && !v.is_null()) {
            return Err(ApiError::bad_request(format!("metadata.{field} must be a string")));
        }
    }
    for field in ["labels", "annotations"] {
        match meta.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) if map.values().all(Value::is_string) => {}
            Some(_) => return Err(ApiError::bad_request(format!("metadata.{field} must be a map of strings"))),
        }
    }
    Ok(())
}

/// `apiVersion` and `kind` in a body must be the URL's; when absent they
/// are filled in, except where the API requires them (apply, patches).
fn check_type(kind: &Kind, obj: &mut Value, required: bool) -> Result<(), ApiError> {
    let expected = [("apiVersion", kind.api_version()), ("kind", kind.kind.to_string())];
    for (field, want) in expected {
        match obj.get(field).and_then(Value::as_str) {
            Some(got) if got == want => {}
            Some(got) => {
                return Err(ApiError::bad_request(format!(
                    "the {field} in the data ({got}) does not match the expected {field} ({want})"
                )));
            }
            None if required => return Err(ApiError::bad_request(format!("{field} must be set"))),
            None => {
                object_mut(obj).insert(field.into(), json!(want));
            }
        }
    }
    Ok(())
}

fn check_namespace(kind: &Kind, ns: &str, obj: &mut Value) -> Result<(), ApiError> {
    if !kind.namespaced {
        return Ok(());
    }
    match meta_str(obj, "namespace") {
        Some(given) if !given.is_empty() && given != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => Ok(()),
    }
}

fn check_name(name: &str, obj: &mut Value) -> Result<(), ApiError> {
    match meta_str(obj, "name") {
        Some(given) if !given.is_empty() && given != name => Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        ))),
        _ => {
            meta_mut(obj).insert("name".into(), json!(name));
            Ok(())
        }
    }
}

/// Namespaces are DNS-1123 labels, the other kinds DNS-1123 subdomains.
fn validate_name(kind: &Kind, name: &str) -> Result<(), ApiError> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let (valid, rule) = if *kind == NAMESPACES {
        (
            label_ok(name),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        )
    } else {
        (
            name.len() <= 253 && name.split('.').all(label_ok),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )
    };
    if valid {
        return Ok(());
    }
    Err(ApiError::invalid(
        kind,
        name,
        "metadata.name",
        "FieldValueInvalid",
        &format!("Invalid value: {name:?}: {rule}"),
    ))
}

/// Kind-specific validation: a Deployment needs a selector that matches its
/// template's labels, and (apps/v1) may never change that selector.
fn validate_object(kind: &Kind, name: &str, old: Option<&Value>, obj: &Value) -> Result<(), ApiError> {
    if *kind != DEPLOYMENTS {
        return Ok(());
    }
    // The pod template decodes like a pod's metadata would.
    if let Some(template) = obj.pointer("/spec/template") {
        check_shape(template)?;
    }
    let selector_value = obj.pointer("/spec/selector");
    let invalid = |field: &str, reason: &str, detail: &str| ApiError::invalid(kind, name, field, reason, detail);
    let Some(selector_value) = selector_value else {
        return Err(invalid("spec.selector", "FieldValueRequired", "Required value"));
    };
    let reqs =
        selector::from_label_selector(selector_value).map_err(|e| invalid("spec.selector", "FieldValueInvalid", &e))?;
    if reqs.is_empty() {
        return Err(invalid(
            "spec.selector",
            "FieldValueInvalid",
            "Invalid value: {}: empty selector is invalid for deployment",
        ));
    }
    let empty = Map::new();
    let labels = obj.pointer("/spec/template/metadata/labels").and_then(Value::as_object).unwrap_or(&empty);
    if !selector::matches_all(&reqs, labels) {
        let detail =
            format!("Invalid value: {}: `selector` does not match template `labels`", Value::Object(labels.clone()));
        return Err(invalid("spec.template.metadata.labels", "FieldValueInvalid", &detail));
    }
    if let Some(old) = old
        && old.pointer("/spec/selector") != Some(selector_value)
    {
        let detail = format!("Invalid value: {selector_value}: field is immutable");
        return Err(invalid("spec.selector", "FieldValueInvalid", &detail));
    }
    Ok(())
}
