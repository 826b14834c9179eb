//! A Deployment controller that acts at once, since there is no kubelet
//! nor ReplicaSet controller: a new pod template (a created Deployment, a
//! changed image, `kubectl rollout restart`'s annotation) replaces every
//! pod; a changed `replicas` alone scales.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::kinds::PODS;
use super::store::{State, key, meta_str, safe_suffix};

const MANAGER: &str = "kube-controller-manager";

impl State {
    pub(super) fn reconcile_deployment(&mut self, ns: &str, old: Option<&Value>, new: &Value) {
        let Some(name) = meta_str(new, "name") else { return };
        let template = new.pointer("/spec/template").cloned().unwrap_or_else(|| json!({}));
        let replicas = new.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
        let replicas = usize::try_from(replicas).unwrap_or(usize::MAX);
        let hash = template_hash(&template);
        if old.is_none_or(|old| old.pointer("/spec/template") != Some(&template)) {
            self.delete_pods_of(ns, new);
        }
        let mut pods = self.pods_of(ns, new);
        while pods.len() > replicas {
            if let Some(extra) = pods.pop() {
                let _ = self.delete(&PODS, ns, &extra, b"");
            }
        }
        let mut index = 0;
        while pods.len() < replicas {
            let pod_name = format!("{name}-{hash}-{index}");
            index += 1;
            if self.objects.contains_key(&key(&PODS, ns, &pod_name)) {
                continue;
            }
            // Admission can refuse (a ServiceAccount that does not exist):
            // then, as with a real ReplicaSet, the Deployment has no pods.
            match self.create(&PODS, ns, pod_from_template(&template, &pod_name, &hash), MANAGER) {
                Ok(_) => pods.push(pod_name),
                Err(_) => break,
            }
        }
    }
}

/// Ten characters from Kubernetes' safe alphabet, like `pod-template-hash`.
fn template_hash(template: &Value) -> String {
    let digest = Sha256::digest(template.to_string().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    safe_suffix(u64::from_be_bytes(first), 10)
}

fn pod_from_template(template: &Value, name: &str, hash: &str) -> Value {
    let mut labels = template.pointer("/metadata/labels").and_then(Value::as_object).cloned().unwrap_or_default();
    labels.insert("pod-template-hash".into(), json!(hash));
    let mut metadata = json!({"name": name, "labels": labels});
    if let Some(annotations) = template.pointer("/metadata/annotations") {
        metadata["annotations"] = annotations.clone();
    }
    let spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}
