//! Tests of what the server does behind the client's back, as a real
//! cluster's controllers, kubelet and pod identity webhook do: status
//! writes that move resourceVersions, the status subresource, rollouts
//! through ReplicaSets that wait for Ready pods, and the test hooks that
//! hold a rollout or race a client.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::KubeApi;

const ROLE: &str = "arn:aws:iam::123456789012:role/backend";
const NS: &str = "backend";
const WAIT: Duration = Duration::from_secs(10);

/// Polls `check` every 10 ms until it holds; panics after 10 s.
pub async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < WAIT, "condition not reached within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn deployment(name: &str, service_account: Option<&str>, replicas: i32) -> Deployment {
    let mut spec = json!({"containers": [{"name": "app", "image": "busybox"}]});
    if let Some(sa) = service_account {
        spec["serviceAccountName"] = json!(sa);
    }
    from_json(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }))
}

fn rv<K: kube::Resource>(obj: &K) -> u64 {
    obj.meta().resource_version.as_deref().unwrap().parse().unwrap()
}

fn env_of(pod: &Pod) -> BTreeMap<String, String> {
    let container = &pod.spec.as_ref().unwrap().containers[0];
    container.env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect()
}

fn ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.into_iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True")
}

fn owner_uid<K: kube::Resource>(obj: &K) -> String {
    obj.meta().owner_references.as_ref().unwrap()[0].uid.clone()
}

fn restart(at: &str) -> Patch<Value> {
    Patch::Strategic(
        json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": at}}}}}),
    )
}

struct Setup {
    api: KubeApi,
    client: kube::Client,
}

impl Setup {
    async fn new() -> Setup {
        let api = KubeApi::start();
        let client = api.client().await;
        let ns: Namespace = from_json(json!({"metadata": {"name": NS}}));
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
        Setup { api, client }
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), NS)
    }

    fn sas(&self) -> Api<ServiceAccount> {
        Api::namespaced(self.client.clone(), NS)
    }

    async fn service_account(&self, name: &str, role: Option<&str>) {
        let mut sa = json!({"metadata": {"name": name}});
        if let Some(role) = role {
            sa["metadata"]["annotations"] = json!({"eks.amazonaws.com/role-arn": role});
        }
        self.sas().create(&PostParams::default(), &from_json(sa)).await.unwrap();
    }

    async fn create(&self, d: &Deployment) -> Deployment {
        self.deployments().create(&PostParams::default(), d).await.unwrap()
    }

    async fn rolled_out(&self, name: &str) -> Deployment {
        self.api.wait_rolled_out(NS, name, WAIT).await;
        self.deployments().get(name).await.unwrap()
    }

    /// The pods of `name`'s ReplicaSets, by ReplicaSet name.
    fn pods_by_replica_set(&self) -> BTreeMap<String, Vec<Pod>> {
        let sets = self.api.replica_sets(NS);
        let mut out = BTreeMap::new();
        for pod in self.api.pods(NS) {
            let Some(owner) = pod.metadata.owner_references.as_ref().and_then(|o| o.first()) else { continue };
            let rs = sets.iter().find(|rs| rs.metadata.uid.as_deref() == Some(owner.uid.as_str())).unwrap();
            out.entry(rs.metadata.name.clone().unwrap()).or_insert_with(Vec::new).push(pod);
        }
        out
    }
}

#[tokio::test]
async fn a_deployment_rolls_out_after_its_create_is_answered_and_its_resource_version_moves_on_its_own() {
    let s = Setup::new().await;
    s.api.set_kubelet(false);
    let created = s.create(&deployment("web", None, 2)).await;
    // The answer comes before any controller acted: no status yet.
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.status.is_none(), "{:?}", created.status);
    assert!(created.metadata.annotations.is_none());
    // The controllers act afterwards: a ReplicaSet, its pods (Pending, as no kubelet runs them).
    eventually(|| async { s.api.pods(NS).len() == 2 }).await;
    let pending = s.api.pods(NS);
    assert!(pending.iter().all(|p| p.status.as_ref().unwrap().phase.as_deref() == Some("Pending")));
    assert!(pending.iter().all(|p| !ready(p)));
    s.api.set_kubelet(true);
    let done = s.rolled_out("web").await;
    assert!(rv(&done) > rv(&created), "status writes moved the resourceVersion");
    assert_eq!(done.metadata.generation, Some(1), "status and metadata writes leave generation");
    assert_eq!(done.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"], "1");
    assert_eq!(done.spec, created.spec);
    let status = done.status.unwrap();
    assert_eq!(
        (status.observed_generation, status.replicas, status.updated_replicas, status.ready_replicas),
        (Some(1), Some(2), Some(2), Some(2))
    );
    assert_eq!((status.available_replicas, status.unavailable_replicas), (Some(2), None), "zero counts are omitted");
    let conditions: Vec<(String, String, String)> = status
        .conditions
        .unwrap()
        .into_iter()
        .map(|c| (c.type_, c.status, c.reason.unwrap_or_default()))
        .map(|(t, st, r)| (t.unwrap_or_default(), st.unwrap_or_default(), r))
        .collect();
    assert_eq!(
        conditions,
        [
            ("Available".into(), "True".into(), "MinimumReplicasAvailable".into()),
            ("Progressing".into(), "True".into(), "NewReplicaSetAvailable".into())
        ]
    );

    // One ReplicaSet `<deployment>-<hash>`, owned by the Deployment, with
    // pods `<replicaset>-<5 chars>` owned by it; served as apps/v1.
    let sets: Vec<ReplicaSet> =
        Api::<ReplicaSet>::namespaced(s.client.clone(), NS).list(&ListParams::default()).await.unwrap().items;
    assert_eq!(sets.len(), 1);
    let rs = &sets[0];
    let hash = rs.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(rs.metadata.name.as_deref(), Some(format!("web-{hash}").as_str()));
    assert_eq!(owner_uid(rs), done.metadata.uid.clone().unwrap());
    assert_eq!(rs.spec.selector.match_labels.as_ref().unwrap()["pod-template-hash"], hash);
    assert_eq!(rs.status.as_ref().unwrap().ready_replicas, Some(2));
    let pods = s.pods().list(&ListParams::default().labels("app=web")).await.unwrap().items;
    assert_eq!(pods.len(), 2);
    for pod in &pods {
        let name = pod.metadata.name.clone().unwrap();
        let suffix = name.strip_prefix(&format!("web-{hash}-")).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(suffix.len(), 5, "{name}");
        assert_eq!(owner_uid(pod), rs.metadata.uid.clone().unwrap());
        assert_eq!(pod.metadata.labels.as_ref().unwrap()["pod-template-hash"], hash);
        // Admission defaults the ServiceAccount; the kubelet reports the pod running.
        assert_eq!(pod.spec.as_ref().unwrap().service_account_name.as_deref(), Some("default"));
        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.start_time.as_ref().unwrap().0.to_string(), "2026-01-01T00:00:00Z");
        assert!(ready(pod));
        let kubelet = pod.metadata.managed_fields.iter().flatten().find(|e| e.manager.as_deref() == Some("kubelet"));
        assert_eq!(kubelet.unwrap().subresource.as_deref(), Some("status"));
    }
    assert_ne!(pods[0].metadata.name, pods[1].metadata.name);
}

#[tokio::test]
async fn status_is_a_subresource_and_generation_counts_spec_changes_only() {
    let s = Setup::new().await;
    s.create(&deployment("web", None, 1)).await;
    let d = s.deployments().get("web").await.unwrap();
    s.api.wait_rolled_out(NS, "web", WAIT).await;
    let d2 = s.deployments().get("web").await.unwrap();
    assert!(rv(&d2) > rv(&d));

    // A write to the main resource ignores status; labels are metadata (no new generation).
    let mut edited = d2.clone();
    edited.status.as_mut().unwrap().replicas = Some(99);
    edited.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    let replaced = s.deployments().replace("web", &PostParams::default(), &edited).await.unwrap();
    assert_eq!(replaced.status.as_ref().unwrap().replicas, Some(1));
    assert_eq!(replaced.metadata.generation, Some(1));
    assert!(rv(&replaced) > rv(&d2));

    // A write to /status ignores spec and metadata.
    let mut via_status = replaced.clone();
    via_status.spec.replicas = Some(5);
    via_status.metadata.labels = Some([("team".to_string(), "b".to_string())].into());
    via_status.status.as_mut().unwrap().ready_replicas = Some(7);
    let written = s.deployments().replace_status("web", &PostParams::default(), &via_status).await.unwrap();
    assert_eq!(written.spec.replicas, Some(1));
    assert_eq!(written.metadata.labels.as_ref().unwrap()["team"], "a");
    assert_eq!(written.status.as_ref().unwrap().ready_replicas, Some(7));
    assert!(rv(&written) > rv(&replaced));
    let entry = written.metadata.managed_fields.iter().flatten().find(|e| e.subresource.as_deref() == Some("status"));
    assert!(entry.is_some(), "{:?}", written.metadata.managed_fields);
    // A stale status PUT conflicts as a main one does.
    let stale = s.deployments().replace_status("web", &PostParams::default(), &via_status).await;
    assert!(matches!(stale, Err(kube::Error::Api(e)) if e.code == 409));
    // The controller puts its own count back soon.
    eventually(|| async { s.deployments().get_status("web").await.unwrap().status.unwrap().ready_replicas == Some(1) })
        .await;
    // A merge patch to /status: status only, even if it says otherwise.
    let patch =
        json!({"metadata": {"labels": {"team": "c"}}, "spec": {"replicas": 4}, "status": {"collisionCount": 3}});
    let patched = s.deployments().patch_status("web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    assert_eq!(patched.status.as_ref().unwrap().collision_count, Some(3));
    assert_eq!(patched.spec.replicas, Some(1));
    assert_eq!(patched.metadata.labels.as_ref().unwrap()["team"], "a");
    // Only a spec change moves generation; the controller then observes it.
    let scaled =
        s.deployments().patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 2}}))).await;
    assert_eq!(scaled.unwrap().metadata.generation, Some(2));
    let done = s.rolled_out("web").await;
    assert_eq!(done.status.unwrap().observed_generation, Some(2));
    // Pods have the status subresource too (the kubelet writes through it).
    let pod = s.api.pods(NS)[0].metadata.name.clone().unwrap();
    let got = s.pods().get_status(&pod).await.unwrap();
    assert_eq!(got.status.unwrap().phase.as_deref(), Some("Running"));
}

#[tokio::test]
async fn a_rollout_keeps_old_pods_until_new_ones_are_ready_one_at_a_time_for_two_replicas() {
    let s = Setup::new().await;
    s.create(&deployment("web", None, 2)).await;
    let first = s.rolled_out("web").await;
    let old_rs = s.api.replica_sets(NS)[0].metadata.name.clone().unwrap();
    let old_pods: Vec<String> = s.api.pods(NS).iter().map(|p| p.metadata.name.clone().unwrap()).collect();

    // `kubectl rollout restart` is a template change: a new ReplicaSet.
    s.api.set_kubelet(false);
    s.api.advance_clock(Duration::from_secs(60));
    let restarted = s.deployments().patch("web", &PatchParams::default(), &restart("2026-01-01T00:01:00Z")).await;
    assert_eq!(restarted.unwrap().metadata.generation, Some(2));
    // maxSurge 1 (25 % of 2, up), maxUnavailable 0 (down): one new pod, both old ones kept.
    eventually(|| async { s.api.pods(NS).len() == 3 }).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let by_rs = s.pods_by_replica_set();
    assert_eq!(by_rs.len(), 2, "{:?}", by_rs.keys());
    assert_eq!(by_rs[&old_rs].len(), 2, "no old pod goes while no new one is Ready");
    let new_rs = by_rs.keys().find(|k| **k != old_rs).unwrap().clone();
    assert_eq!(by_rs[&new_rs].len(), 1);
    assert!(!ready(&by_rs[&new_rs][0]));
    assert!(s.api.rollout_pending(NS, "web").is_some());
    let mid = s.deployments().get("web").await.unwrap();
    let status = mid.status.unwrap();
    assert_eq!((status.replicas, status.updated_replicas, status.ready_replicas), (Some(3), Some(1), Some(2)));
    assert_eq!(mid.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"], "2");

    // The kubelet back: the rollout completes, old pods gone, old ReplicaSet kept at 0.
    s.api.set_kubelet(true);
    let done = s.rolled_out("web").await;
    assert!(rv(&done) > rv(&first));
    let pods = s.api.pods(NS);
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| !old_pods.contains(p.metadata.name.as_ref().unwrap())));
    assert!(pods.iter().all(|p| p.metadata.name.as_ref().unwrap().starts_with(&format!("{new_rs}-"))));
    assert!(
        pods.iter().all(|p| p.metadata.creation_timestamp.as_ref().unwrap().0.to_string() == "2026-01-01T00:01:00Z")
    );
    let sets = s.api.replica_sets(NS);
    let replicas = |name: &str| {
        let rs = sets.iter().find(|rs| rs.metadata.name.as_deref() == Some(name)).unwrap();
        rs.spec.replicas
    };
    assert_eq!((replicas(&old_rs), replicas(&new_rs)), (Some(0), Some(2)));
}

#[tokio::test]
async fn never_fewer_ready_pods_than_replicas_during_a_rollout_of_two() {
    let s = Setup::new().await;
    s.create(&deployment("web", None, 2)).await;
    s.rolled_out("web").await;
    s.deployments().patch("web", &PatchParams::default(), &restart("now")).await.unwrap();
    let start = Instant::now();
    while s.api.rollout_pending(NS, "web").is_some() {
        let ready_pods = s.api.pods(NS).iter().filter(|p| ready(p)).count();
        assert!(ready_pods >= 2, "maxUnavailable 0: {ready_pods} ready");
        assert!(s.api.pods(NS).len() <= 3, "maxSurge 1");
        assert!(start.elapsed() < WAIT);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn scaling_resizes_the_current_replica_set_without_a_rollout() {
    let s = Setup::new().await;
    s.create(&deployment("web", None, 2)).await;
    s.rolled_out("web").await;
    let before: Vec<String> = s.api.pods(NS).iter().map(|p| p.metadata.name.clone().unwrap()).collect();
    s.api.scale(NS, "web", 4);
    let scaled = s.rolled_out("web").await;
    assert_eq!(scaled.metadata.generation, Some(2));
    assert_eq!(s.api.replica_sets(NS).len(), 1, "no new ReplicaSet");
    let after: Vec<String> = s.api.pods(NS).iter().map(|p| p.metadata.name.clone().unwrap()).collect();
    assert_eq!(after.len(), 4);
    assert!(before.iter().all(|p| after.contains(p)), "the pods stay");
    s.deployments()
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 1}})))
        .await
        .unwrap();
    s.rolled_out("web").await;
    assert_eq!(s.api.pods(NS).len(), 1);
    assert_eq!(s.api.replica_sets(NS)[0].spec.replicas, Some(1));
}

#[tokio::test]
async fn touch_status_and_status_churn_move_the_resource_version_under_a_client() {
    let s = Setup::new().await;
    s.create(&deployment("web", None, 1)).await;
    let d = s.rolled_out("web").await;
    let touched = s.api.touch_status("deployments", NS, "web");
    assert!(touched.parse::<u64>().unwrap() > rv(&d));
    let after = s.deployments().get("web").await.unwrap();
    assert_eq!(after.metadata.resource_version.as_deref(), Some(touched.as_str()));
    assert_eq!((after.spec, after.status, after.metadata.generation), (d.spec.clone(), d.status.clone(), Some(1)));
    // A read-then-write with the read's resourceVersion now conflicts.
    let mut stale = d.clone();
    stale.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    let conflict = s.deployments().replace("web", &PostParams::default(), &stale).await;
    assert!(matches!(conflict, Err(kube::Error::Api(e)) if e.code == 409));
    // So does a JSON patch guarded by a `test` of it (422, as kube-apiserver answers).
    let guarded = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": d.metadata.resource_version},
        {"op": "add", "path": "/metadata/labels/x", "value": "y"},
    ]);
    let request = http::Request::patch(format!("/apis/apps/v1/namespaces/{NS}/deployments/web"))
        .header("Content-Type", "application/json-patch+json")
        .body(serde_json::to_vec(&guarded).unwrap())
        .unwrap();
    let failed = s.client.request::<Deployment>(request).await;
    assert!(matches!(failed, Err(kube::Error::Api(e)) if e.code == 422 && e.reason == "Invalid"));
    // Pods and ReplicaSets can be touched too.
    let pod = s.api.pods(NS)[0].clone();
    assert!(s.api.touch_status("pods", NS, pod.metadata.name.as_ref().unwrap()).parse::<u64>().unwrap() > rv(&pod));

    // Churn: the status is rewritten every few ms, spec untouched.
    s.api.set_status_churn(Some(Duration::from_millis(15)));
    let read = s.deployments().get("web").await.unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let later = s.deployments().get("web").await.unwrap();
    assert!(rv(&later) >= rv(&read) + 2, "{} then {}", rv(&read), rv(&later));
    assert_eq!(later.metadata.generation, Some(1));
    // A merge patch without a resourceVersion still applies.
    let label = json!({"metadata": {"labels": {"x": "z"}}});
    s.deployments().patch("web", &PatchParams::default(), &Patch::Merge(&label)).await.unwrap();
    s.api.set_status_churn(None);
    let still = s.deployments().get("web").await.unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(rv(&s.deployments().get("web").await.unwrap()), rv(&still), "churn off: nothing moves");
}

#[tokio::test]
async fn the_webhook_mutates_pods_at_create_from_the_service_account_at_that_moment() {
    let s = Setup::new().await;
    s.service_account("app", None).await;
    s.service_account("plain", None).await;
    s.create(&deployment("web", Some("app"), 1)).await;
    s.rolled_out("web").await;
    let first = s.api.pods(NS);
    assert!(!env_of(&first[0]).contains_key("AWS_ROLE_ARN"), "unannotated: nothing");
    assert!(first[0].spec.as_ref().unwrap().volumes.is_none());

    // Annotating the ServiceAccount later changes no existing pod.
    let annotate = json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": ROLE}}});
    s.sas().patch("app", &PatchParams::default(), &Patch::Merge(&annotate)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(s.api.pods(NS)[0].spec, first[0].spec);

    // New pods (a restart) get the role, the token file and the projected volume.
    s.deployments().patch("web", &PatchParams::default(), &restart("1")).await.unwrap();
    s.rolled_out("web").await;
    let second = &s.api.pods(NS)[0];
    let env = env_of(second);
    assert_eq!(env["AWS_ROLE_ARN"], ROLE);
    assert_eq!(env["AWS_WEB_IDENTITY_TOKEN_FILE"], "/var/run/secrets/eks.amazonaws.com/serviceaccount/token");
    let spec = second.spec.as_ref().unwrap();
    let mount = spec.containers[0].volume_mounts.iter().flatten().find(|m| m.name == "aws-iam-token").unwrap();
    assert_eq!(mount.mount_path, "/var/run/secrets/eks.amazonaws.com/serviceaccount");
    let volume = spec.volumes.iter().flatten().find(|v| v.name == "aws-iam-token").unwrap();
    let token = volume.projected.as_ref().unwrap().sources.as_ref().unwrap()[0].service_account_token.clone().unwrap();
    assert_eq!(
        (token.audience.as_deref(), token.expiration_seconds, token.path.as_str()),
        (Some("sts.amazonaws.com"), Some(86400), "token")
    );

    // Removing the annotation leaves running pods as they are.
    let remove = json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": null}}});
    s.sas().patch("app", &PatchParams::default(), &Patch::Merge(&remove)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(env_of(&s.api.pods(NS)[0])["AWS_ROLE_ARN"], ROLE);

    // A container that sets AWS_ROLE_ARN itself is left alone; its sibling is not.
    s.sas().patch("plain", &PatchParams::default(), &Patch::Merge(&annotate)).await.unwrap();
    let own: Pod = from_json(json!({
        "metadata": {"name": "own"},
        "spec": {"serviceAccountName": "plain", "containers": [
            {"name": "own", "image": "busybox", "env": [{"name": "AWS_ROLE_ARN", "value": "mine"}]},
            {"name": "other", "image": "busybox"},
        ]},
    }));
    let own = s.pods().create(&PostParams::default(), &own).await.unwrap();
    let containers = &own.spec.as_ref().unwrap().containers;
    let env = |i: usize| -> BTreeMap<String, String> {
        containers[i].env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect()
    };
    assert_eq!(env(0)["AWS_ROLE_ARN"], "mine");
    assert!(!env(0).contains_key("AWS_WEB_IDENTITY_TOKEN_FILE"));
    // As v0.6 of the real webhook: the region and the mount are still added.
    assert_eq!(env(0)["AWS_REGION"], "us-east-1");
    assert!(containers[0].volume_mounts.iter().flatten().any(|m| m.name == "aws-iam-token"));
    assert_eq!(env(1)["AWS_ROLE_ARN"], ROLE);
    // Pods of a ServiceAccount without the annotation get nothing.
    let bare: Pod =
        from_json(json!({"metadata": {"name": "bare"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}));
    let bare = s.pods().create(&PostParams::default(), &bare).await.unwrap();
    assert_eq!(bare.spec.as_ref().unwrap().service_account_name.as_deref(), Some("default"));
    assert!(env_of(&bare).is_empty());
    // The webhook off (a cluster without it): nothing for anyone.
    s.api.set_webhook(false);
    let unmutated: Pod = from_json(
        json!({"metadata": {"name": "off"}, "spec": {"serviceAccountName": "plain", "containers": [{"name": "c", "image": "busybox"}]}}),
    );
    let unmutated = s.pods().create(&PostParams::default(), &unmutated).await.unwrap();
    assert!(env_of(&unmutated).is_empty());
}

#[tokio::test]
async fn the_webhook_reads_audience_expiration_skips_and_its_registration() {
    let s = Setup::new().await;
    let sa = json!({"metadata": {"name": "app", "annotations": {
        "eks.amazonaws.com/role-arn": ROLE, "eks.amazonaws.com/audience": "example.com",
        "eks.amazonaws.com/token-expiration": "120", "eks.amazonaws.com/sts-regional-endpoints": "false"}}});
    s.sas().create(&PostParams::default(), &from_json(sa)).await.unwrap();
    let pod: Pod = from_json(json!({
        "metadata": {"name": "p", "annotations": {"eks.amazonaws.com/skip-containers": "sidecar"}},
        "spec": {"serviceAccountName": "app", "hostNetwork": true, "containers": [
            {"name": "app", "image": "busybox"}, {"name": "sidecar", "image": "busybox"}]},
    }));
    let pod = s.pods().create(&PostParams::default(), &pod).await.unwrap();
    let spec = pod.spec.as_ref().unwrap();
    let env = |i: usize| -> BTreeMap<String, String> {
        spec.containers[i].env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect()
    };
    assert_eq!(env(0)["AWS_ROLE_ARN"], ROLE);
    assert!(!env(0).contains_key("AWS_STS_REGIONAL_ENDPOINTS"), "the ServiceAccount turned regional endpoints off");
    assert!(env(1).is_empty(), "a skipped container gets nothing");
    let volume = spec.volumes.iter().flatten().find(|v| v.name == "aws-iam-token").unwrap();
    let token = volume.projected.as_ref().unwrap().sources.as_ref().unwrap()[0].service_account_token.clone().unwrap();
    assert_eq!(
        (token.audience.as_deref(), token.expiration_seconds),
        (Some("example.com"), Some(600)),
        "never under 600 s"
    );

    // Deleting its registration through the API is what stops it.
    let api: Api<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration> =
        Api::all(s.client.clone());
    let names: Vec<String> =
        api.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|c| c.metadata.name).collect();
    assert_eq!(names, ["pod-identity-webhook"]);
    api.delete("pod-identity-webhook", &DeleteParams::default()).await.unwrap();
    let bare: Pod = from_json(
        json!({"metadata": {"name": "q"}, "spec": {"serviceAccountName": "app", "containers": [{"name": "c", "image": "busybox"}]}}),
    );
    assert!(env_of(&s.pods().create(&PostParams::default(), &bare).await.unwrap()).is_empty());
}

#[tokio::test]
async fn token_requests_answer_a_jwt_of_the_issuer_for_the_audience() {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    let s = Setup::new().await;
    s.api.set_issuer("https://oidc.example/id/A");
    s.service_account("app", None).await;
    let ask = |audiences: Vec<String>, seconds: i64| TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(audiences),
            expiration_seconds: Some(seconds),
            ..Default::default()
        }),
        ..Default::default()
    };
    let answer = s
        .sas()
        .create_token_request("app", &PostParams::default(), &ask(vec!["sts.amazonaws.com".into()], 600))
        .await
        .unwrap();
    let token = answer.status.unwrap().token.unwrap();
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["iss"], "https://oidc.example/id/A");
    assert_eq!(claims["aud"], json!(["sts.amazonaws.com"]));
    assert_eq!(claims["sub"], format!("system:serviceaccount:{NS}:app"));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600);
    let short = s.sas().create_token_request("app", &PostParams::default(), &ask(vec![], 60)).await.unwrap_err();
    assert!(matches!(short, kube::Error::Api(e) if e.code == 422), "under 10 minutes is refused");
    let missing = s.sas().create_token_request("nobody", &PostParams::default(), &ask(vec![], 600)).await.unwrap_err();
    assert!(matches!(missing, kube::Error::Api(e) if e.code == 404));
}

#[tokio::test]
async fn a_replica_set_whose_service_account_is_missing_has_no_pods_until_it_exists() {
    let s = Setup::new().await;
    s.create(&deployment("web", Some("late"), 2)).await;
    eventually(|| async { !s.api.replica_sets(NS).is_empty() }).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(s.api.pods(NS).is_empty(), "admission refuses pods of a missing ServiceAccount");
    let rs = &s.api.replica_sets(NS)[0];
    let failure = rs.status.as_ref().unwrap().conditions.clone().unwrap();
    assert_eq!(
        (failure[0].type_.as_deref(), failure[0].reason.as_deref()),
        (Some("ReplicaFailure"), Some("FailedCreate"))
    );
    assert!(s.api.rollout_pending(NS, "web").is_some());
    s.service_account("late", Some(ROLE)).await;
    s.rolled_out("web").await;
    let pods = s.api.pods(NS);
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| env_of(p)["AWS_ROLE_ARN"] == ROLE));
}

#[tokio::test]
async fn deleting_a_deployment_lets_the_garbage_collector_take_its_replica_sets_and_pods() {
    let s = Setup::new().await;
    s.create(&deployment("web", None, 2)).await;
    s.rolled_out("web").await;
    let loose: Pod = from_json(
        json!({"metadata": {"name": "loose", "labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    );
    s.pods().create(&PostParams::default(), &loose).await.unwrap();
    s.deployments().delete("web", &DeleteParams::default()).await.unwrap();
    eventually(|| async { s.api.replica_sets(NS).is_empty() && s.api.pods(NS).len() == 1 }).await;
    // A pod with the Deployment's labels but no owner is not the Deployment's.
    assert_eq!(s.api.pods(NS)[0].metadata.name.as_deref(), Some("loose"));
}

#[tokio::test]
async fn times_have_whole_seconds_and_follow_the_manual_clock() {
    let s = Setup::new().await;
    s.api.advance_clock(Duration::from_millis(1_700));
    assert_eq!(s.api.now(), "2026-01-01T00:00:01Z");
    s.create(&deployment("web", None, 1)).await;
    let d = s.rolled_out("web").await;
    assert_eq!(d.metadata.creation_timestamp.unwrap().0.to_string(), "2026-01-01T00:00:01Z");
    let times: Vec<String> =
        d.metadata.managed_fields.iter().flatten().map(|e| e.time.as_ref().unwrap().0.to_string()).collect();
    assert!(times.iter().all(|t| t == "2026-01-01T00:00:01Z"), "{times:?}");
    let pod = &s.api.pods(NS)[0];
    assert_eq!(pod.status.as_ref().unwrap().start_time.as_ref().unwrap().0.to_string(), "2026-01-01T00:00:01Z");
}

#[tokio::test]
async fn advancing_the_clock_lets_the_controllers_finish_first() {
    let s = Setup::new().await;
    s.create(&deployment("web", None, 2)).await;
    s.api.advance_clock(Duration::from_secs(60));
    assert_eq!(s.api.rollout_pending(NS, "web"), None, "a minute is enough to roll out");
    let pods = s.api.pods(NS);
    assert!(
        pods.iter().all(|p| p.metadata.creation_timestamp.as_ref().unwrap().0.to_string() == "2026-01-01T00:00:00Z")
    );
    // With the kubelet paused, the pods exist but are not Ready.
    s.api.set_kubelet(false);
    s.deployments().patch("web", &PatchParams::default(), &restart("1")).await.unwrap();
    s.api.advance_clock(Duration::from_secs(60));
    let by_rs = s.pods_by_replica_set();
    assert_eq!(by_rs.values().map(Vec::len).collect::<Vec<_>>().iter().sum::<usize>(), 3, "{by_rs:?}");
    assert!(s.api.rollout_pending(NS, "web").is_some());
}

#[tokio::test]
async fn controller_work_is_not_counted_as_requests() {
    let s = Setup::new().await;
    s.api.reset_requests();
    s.create(&deployment("web", None, 2)).await;
    s.api.wait_rolled_out(NS, "web", WAIT).await;
    s.api.set_status_churn(Some(Duration::from_millis(5)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(s.api.requests(), 1, "only the create");
}
