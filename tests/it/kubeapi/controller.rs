//! What runs behind the API server: the garbage collector, the ReplicaSet
//! and Deployment controllers of kube-controller-manager, and a kubelet
//! stand-in. [`State::tick`] is one pass of all of them; the server's
//! runtime calls it every few milliseconds (see `mod.rs`), never inside a
//! request, so clients see what they would on a real cluster: a write is
//! answered at once, and the objects it sets in motion change afterwards,
//! each change a write of its own with a new resourceVersion.
//!
//! The Deployment controller follows kube-controller-manager's rolling
//! update: one ReplicaSet per pod template (named `<deployment>-<hash>`,
//! labelled `pod-template-hash`), the new one scaled up within
//! `maxSurge`, the old ones scaled down only as far as `maxUnavailable`
//! allows given the pods that are available (Ready); `Recreate` scales the
//! old ones to zero first. A change of `spec.replicas` alone resizes the
//! current ReplicaSet. The ReplicaSet controller creates pods named
//! `<replicaset>-<5 chars>` owned by it, and retries on later passes when
//! admission refuses one (a missing ServiceAccount).

use std::cmp::Reverse;
use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::kinds::{DEPLOYMENTS, Kind, PODS, REPLICA_SETS};
use super::store::{Key, State, key, meta_mut, meta_str, mix, safe_suffix};

pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";
const KUBELET: &str = "kubelet";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const HASH_LABEL: &str = "pod-template-hash";

fn int(value: Option<&Value>) -> i64 {
    value.and_then(Value::as_i64).unwrap_or(0)
}

fn uid(obj: &Value) -> String {
    meta_str(obj, "uid").unwrap_or_default().to_string()
}

fn name(obj: &Value) -> String {
    meta_str(obj, "name").unwrap_or_default().to_string()
}

fn spec_replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

fn status_count(obj: &Value, field: &str) -> i64 {
    int(obj.get("status").and_then(|s| s.get(field)))
}

pub fn is_ready(pod: &Value) -> bool {
    let conditions = pod.pointer("/status/conditions").and_then(Value::as_array);
    conditions.into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// `maxSurge` or `maxUnavailable`: a number, or a percentage of `replicas`
/// rounded up (surge) or down (unavailable).
fn int_or_percent(value: Option<&Value>, default: &str, replicas: i64, round_up: bool) -> i64 {
    let text = match value {
        Some(Value::Number(n)) => return n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.as_str(),
        _ => default,
    };
    let Some(percent) = text.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
        return text.parse().unwrap_or(0);
    };
    let scaled = percent * replicas;
    if round_up { (scaled + 99) / 100 } else { scaled / 100 }
}

/// (maxSurge, maxUnavailable) of a RollingUpdate Deployment; both zero is
/// not allowed, and the controller then takes one unavailable.
fn rolling_limits(deployment: &Value, replicas: i64) -> (i64, i64) {
    let rolling = deployment.pointer("/spec/strategy/rollingUpdate");
    let surge = int_or_percent(rolling.and_then(|r| r.get("maxSurge")), "25%", replicas, true);
    let unavailable = int_or_percent(rolling.and_then(|r| r.get("maxUnavailable")), "25%", replicas, false);
    if surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) }
}

/// Ten characters from Kubernetes' safe alphabet, like `pod-template-hash`.
fn template_hash(template: &Value) -> String {
    let digest = Sha256::digest(template.to_string().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    safe_suffix(u64::from_be_bytes(first), 10)
}

fn owner_reference(kind: &Kind, owner: &Value) -> Value {
    json!({"apiVersion": kind.api_version(), "kind": kind.kind, "name": name(owner), "uid": uid(owner),
        "controller": true, "blockOwnerDeletion": true})
}

/// A condition as controllers keep them: its transition time moves only
/// when its status does.
fn condition(old_status: Option<&Value>, kind: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    let previous = old_status
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind));
    let transition = match previous {
        Some(p) if p["status"] == status => p["lastTransitionTime"].as_str().unwrap_or(now).to_string(),
        _ => now.to_string(),
    };
    let update = match previous {
        Some(p) if p["status"] == status && p["reason"] == reason => {
            p["lastUpdateTime"].as_str().unwrap_or(now).to_string()
        }
        _ => now.to_string(),
    };
    json!({"type": kind, "status": status, "lastUpdateTime": update, "lastTransitionTime": transition,
        "reason": reason, "message": message})
}

/// Puts the counts that are not zero into `status` (Deployment and
/// ReplicaSet status fields are `omitempty`).
fn counts(status: &mut Map<String, Value>, fields: &[(&str, i64)]) {
    for (field, value) in fields {
        if *value != 0 {
            status.insert((*field).into(), json!(value));
        }
    }
}

impl State {
    /// One pass of every controller and the kubelet.
    pub(super) fn tick(&mut self) {
        self.collect_garbage();
        for (ns, rs) in self.names(&REPLICA_SETS) {
            self.sync_replica_set(&ns, &rs);
        }
        for (ns, deployment) in self.names(&DEPLOYMENTS) {
            self.sync_deployment(&ns, &deployment);
        }
        // The ReplicaSets just scaled get their pods in the same pass.
        for (ns, rs) in self.names(&REPLICA_SETS) {
            self.sync_replica_set(&ns, &rs);
        }
        self.run_kubelet();
    }

    /// Passes until the controllers and the kubelet have nothing left to
    /// do (bounded, in case two of them keep undoing each other).
    pub(super) fn settle(&mut self) {
        for _ in 0..1000 {
            let before = self.resource_version_number();
            self.tick();
            if self.resource_version_number() == before && (!self.kubelet || self.kubelet_seen.is_empty()) {
                self.settled_at = Some(before);
                return;
            }
        }
    }

    fn names(&self, kind: &Kind) -> Vec<(String, String)> {
        self.objects
            .keys()
            .filter(|(plural, _, _)| *plural == kind.plural)
            .map(|(_, ns, n)| (ns.clone(), n.clone()))
            .collect()
    }

    /// The objects of `kind` in `ns` whose controller is `owner_uid`, oldest first.
    pub(super) fn owned(&self, kind: &Kind, ns: &str, owner_uid: &str) -> Vec<Value> {
        let mut owned: Vec<Value> = self
            .objects
            .iter()
            .filter(|((plural, obj_ns, _), _)| *plural == kind.plural && obj_ns == ns)
            .map(|(_, obj)| obj)
            .filter(|obj| {
                let refs = obj.pointer("/metadata/ownerReferences").and_then(Value::as_array);
                refs.into_iter().flatten().any(|r| r["uid"] == owner_uid && r["controller"] == true)
            })
            .cloned()
            .collect();
        // uids count up, so their order is the order of creation.
        owned.sort_by_key(uid);
        owned
    }

    /// The garbage collector: an object whose owners are all gone is
    /// deleted, one level of ownership per pass (Deployment, then its
    /// ReplicaSets, then their pods), as background propagation does.
    fn collect_garbage(&mut self) {
        let uids: BTreeSet<String> = self.objects.values().map(uid).collect();
        let orphans: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, obj)| {
                let refs = obj.pointer("/metadata/ownerReferences").and_then(Value::as_array);
                refs.is_some_and(|refs| {
                    !refs.is_empty() && refs.iter().all(|r| !uids.contains(r["uid"].as_str().unwrap_or_default()))
                })
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (plural, ns, obj_name) in orphans {
            if let Some(kind) = Kind::find_plural(plural) {
                let _ = self.delete(kind, &ns, &obj_name, b"");
            }
        }
    }

    fn sync_replica_set(&mut self, ns: &str, rs_name: &str) {
        let Ok(rs) = self.get(&REPLICA_SETS, ns, rs_name) else { return };
        let want = usize::try_from(spec_replicas(&rs)).unwrap_or(0);
        let mut pods = self.owned(&PODS, ns, &uid(&rs));
        let mut failure = None;
        while pods.len() < want {
            match self.create(&PODS, ns, pod_from_replica_set(&rs), CONTROLLER_MANAGER) {
                Ok(pod) => pods.push(pod),
                Err(e) => {
                    // As the real controller: a condition now, a retry on a later pass.
                    failure = Some(e.message);
                    break;
                }
            }
        }
        if pods.len() > want {
            // Not-ready pods go first, then the newest.
            let mut ranked = pods.clone();
            ranked.sort_by_key(|p| (is_ready(p), Reverse(uid(p))));
            for victim in &ranked[..pods.len() - want] {
                let _ = self.delete(&PODS, ns, &name(victim), b"");
            }
            let victims: BTreeSet<String> = ranked[..pods.len() - want].iter().map(uid).collect();
            pods.retain(|p| !victims.contains(&uid(p)));
        }
        let total = i64::try_from(pods.len()).unwrap_or(i64::MAX);
        let ready = i64::try_from(pods.iter().filter(|p| is_ready(p)).count()).unwrap_or(i64::MAX);
        let generation = int(rs.pointer("/metadata/generation"));
        let mut status = Map::new();
        // `replicas` is the one count a ReplicaSet's status always has.
        status.insert("replicas".into(), json!(total));
        counts(&mut status, &[("fullyLabeledReplicas", total), ("readyReplicas", ready), ("availableReplicas", ready)]);
        status.insert("observedGeneration".into(), json!(generation));
        if let Some(message) = failure {
            let now = self.now_text();
            let c = condition(rs.get("status"), "ReplicaFailure", "True", "FailedCreate", &message, &now);
            status.insert("conditions".into(), json!([c]));
        }
        let _ =
            self.commit_status(&REPLICA_SETS, ns, rs_name, rs, Some(Value::Object(status)), CONTROLLER_MANAGER, false);
    }

    fn set_replicas(&mut self, ns: &str, rs_name: &str, replicas: i64) {
        let _ = self.update_as(&REPLICA_SETS, ns, rs_name, CONTROLLER_MANAGER, |rs| {
            rs["spec"]["replicas"] = json!(replicas);
        });
    }

    fn sync_deployment(&mut self, ns: &str, deployment_name: &str) {
        let Ok(deployment) = self.get(&DEPLOYMENTS, ns, deployment_name) else { return };
        let replicas = spec_replicas(&deployment);
        let template = deployment.pointer("/spec/template").cloned().unwrap_or_else(|| json!({}));
        let hash = template_hash(&template);
        let owned = self.owned(&REPLICA_SETS, ns, &uid(&deployment));
        let is_new =
            |rs: &&Value| rs.pointer(&format!("/metadata/labels/{HASH_LABEL}")).and_then(Value::as_str) == Some(&hash);
        let olds: Vec<Value> = owned.iter().filter(|rs| !is_new(rs)).cloned().collect();
        let recreate = deployment.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate");
        let (surge, max_unavailable) = rolling_limits(&deployment, replicas);
        let old_sum: i64 = olds.iter().map(spec_replicas).sum();
        let new_rs = match owned.iter().find(is_new) {
            Some(rs) => rs.clone(),
            None => {
                let initial = if recreate { 0 } else { (replicas + surge - old_sum).clamp(0, replicas) };
                let revision = olds
                    .iter()
                    .filter_map(|rs| rs.pointer("/metadata/annotations").and_then(|a| a.get(REVISION)))
                    .filter_map(|r| r.as_str().and_then(|r| r.parse::<u64>().ok()))
                    .max()
                    .unwrap_or(0)
                    + 1;
                let rs = replica_set(&deployment, &template, &hash, initial, revision);
                match self.create(&REPLICA_SETS, ns, rs, CONTROLLER_MANAGER) {
                    Ok(rs) => rs,
                    Err(_) => return,
                }
            }
        };
        let new_name = name(&new_rs);
        let mut new_spec = spec_replicas(&new_rs);
        if recreate {
            let old_pods: usize = olds.iter().map(|rs| self.owned(&PODS, ns, &uid(rs)).len()).sum();
            for rs in olds.iter().filter(|rs| spec_replicas(rs) > 0) {
                self.set_replicas(ns, &name(rs), 0);
            }
            if old_pods == 0 && new_spec != replicas {
                self.set_replicas(ns, &new_name, replicas);
            }
        } else {
            let scaled_up = if new_spec > replicas {
                self.set_replicas(ns, &new_name, replicas);
                new_spec = replicas;
                false
            } else {
                let room = (replicas + surge - old_sum - new_spec).max(0);
                let target = new_spec + room.min(replicas - new_spec);
                if target != new_spec {
                    self.set_replicas(ns, &new_name, target);
                    new_spec = target;
                }
                target > spec_replicas(&new_rs)
            };
            if !scaled_up && old_sum > 0 {
                self.scale_down_old(ns, &olds, &new_rs, new_spec, replicas, max_unavailable);
            }
        }
        // The Deployment names its current revision, as kubectl rollout history reads it.
        let revision = new_rs.pointer("/metadata/annotations").and_then(|a| a.get(REVISION)).cloned();
        let deployment = match revision {
            Some(revision)
                if deployment.pointer("/metadata/annotations").and_then(|a| a.get(REVISION)) != Some(&revision) =>
            {
                let update = self.update_as(&DEPLOYMENTS, ns, deployment_name, CONTROLLER_MANAGER, |d| {
                    let meta = meta_mut(d);
                    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
                    annotations[REVISION] = revision;
                });
                update.unwrap_or(deployment)
            }
            _ => deployment,
        };
        self.deployment_status(ns, deployment, &new_name, replicas, max_unavailable);
    }

    /// kube-controller-manager's `reconcileOldReplicaSets`: first the old
    /// pods that are not available, then available ones, never below
    /// `replicas - maxUnavailable` available pods.
    fn scale_down_old(
        &mut self,
        ns: &str,
        olds: &[Value],
        new_rs: &Value,
        new_spec: i64,
        replicas: i64,
        max_unavailable: i64,
    ) {
        let old_sum: i64 = olds.iter().map(spec_replicas).sum();
        let all = old_sum + new_spec;
        let min_available = replicas - max_unavailable;
        let new_unavailable = (new_spec - status_count(new_rs, "availableReplicas")).max(0);
        let mut max_scaled_down = all - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return;
        }
        let mut specs: Vec<i64> = olds.iter().map(spec_replicas).collect();
        for (i, rs) in olds.iter().enumerate() {
            if max_scaled_down <= 0 {
                break;
            }
            let unhealthy = specs[i] - status_count(rs, "availableReplicas");
            if unhealthy > 0 {
                let down = unhealthy.min(max_scaled_down);
                specs[i] -= down;
                max_scaled_down -= down;
            }
        }
        let available: i64 = olds.iter().map(|rs| status_count(rs, "availableReplicas")).sum::<i64>()
            + status_count(new_rs, "availableReplicas");
        let mut to_scale_down = (available - min_available).max(0);
        for spec in specs.iter_mut() {
            if to_scale_down <= 0 {
                break;
            }
            let down = (*spec).min(to_scale_down);
            *spec -= down;
            to_scale_down -= down;
        }
        for (rs, spec) in olds.iter().zip(specs) {
            if spec != spec_replicas(rs) {
                self.set_replicas(ns, &name(rs), spec);
            }
        }
    }

    fn deployment_status(&mut self, ns: &str, deployment: Value, new_name: &str, replicas: i64, max_unavailable: i64) {
        let owned = self.owned(&REPLICA_SETS, ns, &uid(&deployment));
        let sum = |field: &str| owned.iter().map(|rs| status_count(rs, field)).sum::<i64>();
        let (total, ready, available) = (sum("replicas"), sum("readyReplicas"), sum("availableReplicas"));
        let updated =
            owned.iter().filter(|rs| name(rs) == new_name).map(|rs| status_count(rs, "replicas")).sum::<i64>();
        let mut status = Map::new();
        let generation = int(deployment.pointer("/metadata/generation"));
        counts(
            &mut status,
            &[
                ("observedGeneration", generation),
                ("replicas", total),
                ("updatedReplicas", updated),
                ("readyReplicas", ready),
                ("availableReplicas", available),
                ("unavailableReplicas", (replicas - available).max(0)),
            ],
        );
        let now = self.now_text();
        let old_status = deployment.get("status");
        let (available_status, available_reason) = if available >= replicas - max_unavailable {
            ("True", "MinimumReplicasAvailable")
        } else {
            ("False", "MinimumReplicasUnavailable")
        };
        let available_message = if available_status == "True" {
            "Deployment has minimum availability."
        } else {
            "Deployment does not have minimum availability."
        };
        let complete = updated == replicas && available == replicas && total == replicas;
        let (reason, message) = if complete {
            ("NewReplicaSetAvailable", format!("ReplicaSet \"{new_name}\" has successfully progressed."))
        } else {
            ("ReplicaSetUpdated", format!("ReplicaSet \"{new_name}\" is progressing."))
        };
        let conditions = [
            condition(old_status, "Available", available_status, available_reason, available_message, &now),
            condition(old_status, "Progressing", "True", reason, &message, &now),
        ];
        status.insert("conditions".into(), json!(conditions));
        let dname = name(&deployment);
        let _ = self.commit_status(
            &DEPLOYMENTS,
            ns,
            &dname,
            deployment,
            Some(Value::Object(status)),
            CONTROLLER_MANAGER,
            false,
        );
    }

    /// The kubelet stand-in: a pod it saw Pending on its previous pass
    /// starts now: Running, Ready, with start times (a status write).
    fn run_kubelet(&mut self) {
        if !self.kubelet {
            return;
        }
        let pending: Vec<Key> = self
            .objects
            .iter()
            .filter(|((plural, _, _), pod)| {
                *plural == PODS.plural && pod.pointer("/status/phase") == Some(&json!("Pending"))
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut still = BTreeSet::new();
        for k in pending {
            if !self.kubelet_seen.contains(&k) {
                still.insert(k);
                continue;
            }
            let Some(pod) = self.objects.get(&k).cloned() else { continue };
            let status = self.running_status(&pod);
            let _ = self.commit_status(&PODS, &k.1, &k.2, pod, Some(status), KUBELET, false);
        }
        self.kubelet_seen = still;
    }

    fn running_status(&self, pod: &Value) -> Value {
        let now = self.now_text();
        let n = mix(u64::from_str_radix(uid(pod).rsplit('-').next().unwrap_or("0"), 16).unwrap_or(0));
        let pod_ip = format!("10.1.{}.{}", (n >> 8) % 256, n % 254 + 1);
        let conditions: Vec<Value> =
            ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
                .iter()
                .map(|t| json!({"type": t, "status": "True", "lastTransitionTime": now}))
                .collect();
        let containers = pod.pointer("/spec/containers").and_then(Value::as_array);
        let container_statuses: Vec<Value> = containers
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| {
                json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": true, "started": true,
                    "restartCount": 0, "containerID": format!("containerd://{:016x}{i:048x}", mix(n)),
                    "state": {"running": {"startedAt": now}}, "lastState": {}})
            })
            .collect();
        let qos = pod.pointer("/status/qosClass").cloned().unwrap_or_else(|| json!("BestEffort"));
        json!({"phase": "Running", "conditions": conditions, "hostIP": "10.0.0.10", "hostIPs": [{"ip": "10.0.0.10"}],
            "podIP": pod_ip, "podIPs": [{"ip": pod_ip}], "startTime": now, "containerStatuses": container_statuses,
            "qosClass": qos})
    }

    /// The test hook: a status write that changes no field but moves the
    /// resourceVersion, as a controller's write at an unlucky moment does.
    pub(super) fn touch_status(&mut self, kind: &'static Kind, ns: &str, obj_name: &str) -> Option<String> {
        let obj = self.objects.get(&key(kind, ns, obj_name)).cloned()?;
        let status = obj.get("status").cloned();
        let touched = self.commit_status(kind, ns, obj_name, obj, status, CONTROLLER_MANAGER, true).ok()?;
        meta_str(&touched, "resourceVersion").map(str::to_string)
    }

    pub(super) fn touch_deployments(&mut self) {
        for (ns, deployment) in self.names(&DEPLOYMENTS) {
            self.touch_status(&DEPLOYMENTS, &ns, &deployment);
        }
    }

    /// None when the Deployment has rolled out; else what is still missing.
    pub(super) fn rollout_pending(&self, ns: &str, deployment_name: &str) -> Option<String> {
        let Ok(d) = self.get(&DEPLOYMENTS, ns, deployment_name) else {
            return Some(format!("no Deployment {ns}/{deployment_name}"));
        };
        let replicas = spec_replicas(&d);
        let generation = int(d.pointer("/metadata/generation"));
        let observed = status_count(&d, "observedGeneration");
        let (updated, ready, available, total) = (
            status_count(&d, "updatedReplicas"),
            status_count(&d, "readyReplicas"),
            status_count(&d, "availableReplicas"),
            status_count(&d, "replicas"),
        );
        let hash = template_hash(&d.pointer("/spec/template").cloned().unwrap_or_else(|| json!({})));
        let old_pods: usize = self
            .owned(&REPLICA_SETS, ns, &uid(&d))
            .iter()
            .filter(|rs| rs.pointer(&format!("/metadata/labels/{HASH_LABEL}")).and_then(Value::as_str) != Some(&hash))
            .map(|rs| self.owned(&PODS, ns, &uid(rs)).len())
            .sum();
        let done = observed == generation
            && [updated, ready, available, total].iter().all(|n| *n == replicas)
            && old_pods == 0;
        (!done).then(|| {
            format!("generation {generation}, observed {observed}; replicas {replicas}: {total} in status, {updated} updated, {ready} ready, {available} available; {old_pods} old pods")
        })
    }
}

fn replica_set(deployment: &Value, template: &Value, hash: &str, replicas: i64, revision: u64) -> Value {
    let mut template = template.clone();
    meta_mut(&mut template);
    let labels = template["metadata"].as_object_mut().map(|m| m.entry("labels").or_insert_with(|| json!({})));
    if let Some(labels) = labels {
        labels[HASH_LABEL] = json!(hash);
    }
    let mut selector = deployment.pointer("/spec/selector").cloned().unwrap_or_else(|| json!({}));
    if !selector.get("matchLabels").is_some_and(Value::is_object) {
        selector["matchLabels"] = json!({});
    }
    selector["matchLabels"][HASH_LABEL] = json!(hash);
    let labels = template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({}));
    json!({
        "metadata": {
            "name": format!("{}-{hash}", name(deployment)),
            "labels": labels,
            "annotations": {
                REVISION: revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": spec_replicas(deployment).to_string(),
            },
            "ownerReferences": [owner_reference(&DEPLOYMENTS, deployment)],
        },
        "spec": {"replicas": replicas, "selector": selector, "template": template},
    })
}

fn pod_from_replica_set(rs: &Value) -> Value {
    let template = rs.pointer("/spec/template").cloned().unwrap_or_else(|| json!({}));
    let mut metadata = json!({
        "generateName": format!("{}-", name(rs)),
        "labels": template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({})),
        "ownerReferences": [owner_reference(&REPLICA_SETS, rs)],
    });
    if let Some(annotations) = template.pointer("/metadata/annotations") {
        metadata["annotations"] = annotations.clone();
    }
    let spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}
