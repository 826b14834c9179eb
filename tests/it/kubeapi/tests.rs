//! Tests of the Kubernetes test API server, through the real kube client
//! built from the kubeconfig the server writes.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

use super::KubeApi;

const ROLE: &str = "arn:aws:iam::123456789012:role/backend";

/// A client as irsa builds one: from a kubeconfig file and a context.
async fn client(api: &KubeApi) -> kube::Client {
    let dir = tempfile::tempdir().unwrap();
    let path = api.write_kubeconfig(dir.path(), "ekshandson");
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let options = KubeConfigOptions { context: Some("ekshandson".into()), ..Default::default() };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.unwrap();
    assert_eq!(config.cluster_url.to_string(), format!("{}/", api.url()));
    kube::Client::try_from(config).unwrap()
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> (u16, String, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason.clone(), status.message.clone()),
        other => panic!("expected kube::Error::Api, got {other:?}"),
    }
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

fn namespace(name: &str) -> Namespace {
    from_json(json!({"metadata": {"name": name}}))
}

fn service_account(name: &str, annotations: &[(&str, &str)]) -> ServiceAccount {
    let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    from_json(json!({"metadata": {"name": name, "annotations": annotations, "labels": {"app": name}}}))
}

fn deployment(name: &str, service_account: &str, replicas: i32) -> Deployment {
    from_json(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"serviceAccountName": service_account, "containers": [{"name": "app", "image": "busybox"}]},
            },
        },
    }))
}

fn pod(name: &str, labels: Value, service_account: &str) -> Pod {
    from_json(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"serviceAccountName": service_account, "containers": [{"name": "app", "image": "busybox"}]},
    }))
}

fn names<K: kube::Resource>(list: &[K]) -> Vec<String> {
    list.iter().map(|o| o.meta().name.clone().unwrap_or_default()).collect()
}

fn rv<K: kube::Resource>(obj: &K) -> u64 {
    obj.meta().resource_version.as_deref().unwrap().parse().unwrap()
}

async fn create_namespace(client: &kube::Client, name: &str) {
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace(name)).await.unwrap();
}

/// A raw HTTP/1.0 request without credentials; returns status and body.
fn raw(api: &KubeApi, method: &str, path: &str, headers: &str, body: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(api.url().trim_start_matches("http://")).unwrap();
    let request =
        format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n{headers}\r\n{body}", body.len());
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head[9..12].parse().unwrap(), serde_json::from_str(body).unwrap())
}

const AUTH: &str = "Authorization: Bearer irsa-test-token\r\n";

#[tokio::test]
async fn a_kube_client_works_in_a_process_that_also_builds_an_aws_sdk_client() {
    // NOTES.md "TLS provider trap": both must agree on one rustls provider.
    let creds = aws_sdk_iam::config::Credentials::new("testing", "testing", None, None, "tests");
    let iam_config = aws_sdk_iam::config::Builder::new()
        .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
        .region(aws_sdk_iam::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .build();
    let _iam = aws_sdk_iam::Client::from_conf(iam_config);
    let api = KubeApi::start();
    let client = client(&api).await;
    let version = client.apiserver_version().await.unwrap();
    assert_eq!((version.major.as_str(), version.minor.as_str()), ("1", "34"));
    // The convenience client reaches the same server.
    let other = api.client().await;
    assert!(Api::<Namespace>::all(other).get("default").await.is_ok());
}

#[tokio::test]
async fn namespaces_are_created_read_and_listed_in_name_order() {
    let api = KubeApi::start();
    let client = client(&api).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let created = namespaces.create(&PostParams::default(), &namespace("backend")).await.unwrap();
    assert_eq!(created.metadata.creation_timestamp.unwrap().0.to_string(), "2026-01-01T00:00:00Z");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some());
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let got = namespaces.get("backend").await.unwrap();
    assert_eq!(got.metadata.resource_version, created.metadata.resource_version);
    let list = namespaces.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&list.items), ["backend", "default", "kube-node-lease", "kube-public", "kube-system"]);
    // As in a real cluster, every namespace gets a `default` ServiceAccount.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "backend");
    assert_eq!(names(&sas.list(&ListParams::default()).await.unwrap().items), ["default"]);
    // Deleting a namespace is immediate and takes its contents along.
    let deleted = namespaces.delete("backend", &DeleteParams::default()).await.unwrap();
    assert_eq!(deleted.left().unwrap().metadata.name.as_deref(), Some("backend"));
    assert_eq!(api_error(namespaces.get("backend").await).0, 404);
    assert_eq!(api_error(sas.get("default").await).0, 404);
}

#[tokio::test]
async fn serviceaccounts_pods_deployments_and_leases_are_stored_and_listed() {
    let api = KubeApi::start();
    let client = client(&api).await;
    create_namespace(&client, "backend").await;
    create_namespace(&client, "frontend").await;
    let pp = PostParams::default();
    for ns in ["backend", "frontend"] {
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        sas.create(&pp, &service_account("web", &[("team", ns)])).await.unwrap();
    }
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "backend");
    let sa = sas.get("web").await.unwrap();
    assert_eq!(sa.metadata.annotations.unwrap()["team"], "backend");
    assert_eq!(sa.metadata.namespace.as_deref(), Some("backend"));

    let all: Vec<(String, String)> = Api::<ServiceAccount>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|sa| (sa.metadata.namespace.clone().unwrap(), sa.metadata.name.clone().unwrap()))
        .collect();
    let expected = [("backend", "default"), ("backend", "web"), ("default", "default"), ("frontend", "default")];
    assert!(expected.iter().all(|(ns, n)| all.contains(&(ns.to_string(), n.to_string()))), "{all:?}");
    let position = |ns: &str, n: &str| all.iter().position(|x| x.0 == ns && x.1 == n).unwrap();
    assert!(position("backend", "web") < position("frontend", "web"));

    let pods: Api<Pod> = Api::namespaced(client.clone(), "backend");
    pods.create(&pp, &pod("old-0", json!({"app": "web"}), "web")).await.unwrap();
    let stored = pods.get("old-0").await.unwrap();
    // Pending when created; the kubelet stand-in runs it a moment later.
    assert_eq!(stored.status.unwrap().phase.as_deref(), Some("Pending"));
    let running = super::rollouts::eventually(|| {
        let pods = pods.clone();
        async move { pods.get("old-0").await.unwrap().status.unwrap().phase.as_deref() == Some("Running") }
    });
    running.await;
    assert_eq!(Api::<Pod>::all(client.clone()).list(&ListParams::default()).await.unwrap().items.len(), 1);

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "backend");
    deployments.create(&pp, &deployment("web", "web", 1)).await.unwrap();
    let all_deployments = Api::<Deployment>::all(client.clone()).list(&ListParams::default()).await.unwrap();
    assert_eq!(names(&all_deployments.items), ["web"]);

    let leases: Api<Lease> = Api::namespaced(client.clone(), "backend");
    let lease: Lease = from_json(json!({
        "metadata": {"name": "irsa-lock"},
        "spec": {"holderIdentity": "runner-1", "leaseDurationSeconds": 60, "acquireTime": "2026-01-01T00:00:00.000000Z"},
    }));
    leases.create(&pp, &lease).await.unwrap();
    let got = leases.get("irsa-lock").await.unwrap();
    assert_eq!(got.spec.unwrap().holder_identity.as_deref(), Some("runner-1"));
    let deleted = leases.delete("irsa-lock", &DeleteParams::default()).await.unwrap().left().unwrap();
    assert_eq!(deleted.metadata.name.as_deref(), Some("irsa-lock"));
    assert_eq!(api_error(leases.delete("irsa-lock", &DeleteParams::default()).await).0, 404);
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let api = KubeApi::start();
    let client = client(&api).await;
    create_namespace(&client, "apps").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "apps");
    let pp = PostParams::default();
    pods.create(&pp, &pod("a", json!({"app": "web", "tier": "front"}), "default")).await.unwrap();
    pods.create(&pp, &pod("b", json!({"app": "web", "tier": "back"}), "default")).await.unwrap();
    pods.create(&pp, &pod("c", json!({"app": "db"}), "default")).await.unwrap();
    let select = |labels: &'static str| {
        let pods = pods.clone();
        async move { names(&pods.list(&ListParams::default().labels(labels)).await.unwrap().items) }
    };
    assert_eq!(select("app=web").await, ["a", "b"]);
    assert_eq!(select("app==web,tier=back").await, ["b"]);
    assert_eq!(select("tier!=front").await, ["b", "c"]);
    assert_eq!(select("tier in (front,back)").await, ["a", "b"]);
    assert_eq!(select("app notin (web)").await, ["c"]);
    assert_eq!(select("tier").await, ["a", "b"]);
    assert_eq!(select("!tier").await, ["c"]);
    assert_eq!(select("app in (web, db),!tier").await, ["c"]);
    let by_name = pods.list(&ListParams::default().fields("metadata.name=b")).await.unwrap();
    assert_eq!(names(&by_name.items), ["b"]);
    let not_name = pods.list(&ListParams::default().fields("metadata.name!=b,metadata.namespace=apps")).await.unwrap();
    assert_eq!(names(&not_name.items), ["a", "c"]);
    // Paging: limit, then the continue token.
    let first = pods.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(names(&first.items), ["a", "b"]);
    let token = first.metadata.continue_.clone().unwrap();
    let rest = pods.list(&ListParams::default().limit(2).continue_token(&token)).await.unwrap();
    assert_eq!(names(&rest.items), ["c"]);
    assert_eq!(rest.metadata.continue_, None);
    // Bad selectors are 400s, not panics.
    let (code, reason, _) = api_error(pods.list(&ListParams::default().labels("app in (web")).await);
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    let (code, _, message) = api_error(pods.list(&ListParams::default().fields("spec.nodeName=x")).await);
    assert_eq!((code, message.as_str()), (400, "field label not supported: spec.nodeName"));
}

#[tokio::test]
async fn errors_come_back_as_kube_api_errors_with_code_and_reason() {
    let api = KubeApi::start();
    let client = client(&api).await;
    let pp = PostParams::default();
    let missing: Api<ServiceAccount> = Api::namespaced(client.clone(), "nowhere");
    let (code, reason, message) = api_error(missing.get("web").await);
    assert_eq!((code, reason.as_str(), message.as_str()), (404, "NotFound", "serviceaccounts \"web\" not found"));
    let (code, reason, message) = api_error(missing.create(&pp, &service_account("web", &[])).await);
    assert_eq!((code, reason.as_str(), message.as_str()), (404, "NotFound", "namespaces \"nowhere\" not found"));

    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    sas.create(&pp, &service_account("web", &[])).await.unwrap();
    let (code, reason, message) = api_error(sas.create(&pp, &service_account("web", &[])).await);
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (409, "AlreadyExists", "serviceaccounts \"web\" already exists")
    );
    let (code, reason, message) = api_error(sas.create(&pp, &service_account("Bad_Name", &[])).await);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(message.starts_with("ServiceAccount \"Bad_Name\" is invalid: metadata.name: Invalid value"), "{message}");
    let (code, reason, _) = api_error(sas.create(&pp, &from_json(json!({"metadata": {}}))).await);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert_eq!(api_error(namespaces.create(&pp, &namespace("a.b")).await).0, 422, "namespaces are DNS labels");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let (code, _, message) = api_error(deployments.get("web").await);
    assert_eq!((code, message.as_str()), (404, "deployments.apps \"web\" not found"));
    let mut bad = deployment("web", "default", 1);
    bad.spec.selector.match_labels = Some([("app".to_string(), "other".to_string())].into());
    let (code, reason, message) = api_error(deployments.create(&pp, &bad).await);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(message.contains("`selector` does not match template `labels`"), "{message}");

    // No credentials: 401. Malformed bodies: 400. Unknown paths: 404.
    let (code, body) = raw(&api, "GET", "/api/v1/namespaces", "", "");
    assert_eq!((code, body["reason"].as_str()), (401, Some("Unauthorized")));
    let json_header = format!("{AUTH}Content-Type: application/json\r\n");
    let (code, body) = raw(&api, "POST", "/api/v1/namespaces/default/serviceaccounts", &json_header, "{not json");
    assert_eq!((code, body["kind"].as_str(), body["reason"].as_str()), (400, Some("Status"), Some("BadRequest")));
    let (code, _) = raw(&api, "POST", "/api/v1/namespaces/default/serviceaccounts", &json_header, "[1, 2]");
    assert_eq!(code, 400);
    let (code, _) = raw(
        &api,
        "POST",
        "/api/v1/namespaces/default/serviceaccounts",
        &json_header,
        r#"{"metadata": {"name": "x", "labels": {"a": 1}}}"#,
    );
    assert_eq!(code, 400);
    let (code, _) = raw(&api, "GET", "/api/v1/namespaces/default/configmaps", AUTH, "");
    assert_eq!(code, 404);
    let (code, body) = raw(&api, "POST", "/api/v1/pods", &json_header, "{}");
    assert_eq!((code, body["reason"].as_str()), (405, Some("MethodNotAllowed")));
    let patch_header = format!("{AUTH}Content-Type: text/plain\r\n");
    let (code, _) = raw(&api, "PATCH", "/api/v1/namespaces/default/serviceaccounts/web", &patch_header, "{}");
    assert_eq!(code, 415);
    let (code, _) = raw(
        &api,
        "PATCH",
        "/api/v1/namespaces/default/serviceaccounts/web?fieldManager=x",
        &format!("{AUTH}Content-Type: application/apply-patch+yaml\r\n"),
        "kind: ServiceAccount",
    );
    assert_eq!(code, 400);

    // A pod whose ServiceAccount does not exist is refused by admission.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let (code, reason, _) = api_error(pods.create(&pp, &pod("p", json!({}), "ghost")).await);
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
}

#[tokio::test]
async fn resource_versions_increase_on_every_write_and_stale_writes_conflict() {
    let api = KubeApi::start();
    let client = client(&api).await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let created = sas.create(&PostParams::default(), &service_account("web", &[])).await.unwrap();
    let mut changed = created.clone();
    changed.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    let replaced = sas.replace("web", &PostParams::default(), &changed).await.unwrap();
    assert!(rv(&replaced) > rv(&created));

    // The same stale object again: the stored resourceVersion moved on.
    let (code, reason, message) = api_error(sas.replace("web", &PostParams::default(), &changed).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert_eq!(
        message,
        "Operation cannot be fulfilled on serviceaccounts \"web\": the object has been modified; please apply your changes to the latest version and try again"
    );
    // PUT requires a resourceVersion.
    let mut unversioned = replaced.clone();
    unversioned.metadata.resource_version = None;
    assert_eq!(api_error(sas.replace("web", &PostParams::default(), &unversioned).await).0, 422);

    // A resourceVersion in a merge patch is a precondition.
    let stale = json!({"metadata": {"resourceVersion": created.metadata.resource_version, "labels": {"team": "b"}}});
    let (code, reason, _) = api_error(sas.patch("web", &PatchParams::default(), &Patch::Merge(&stale)).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    let fresh = json!({"metadata": {"resourceVersion": replaced.metadata.resource_version, "labels": {"team": "b"}}});
    let patched = sas.patch("web", &PatchParams::default(), &Patch::Merge(&fresh)).await.unwrap();
    assert!(rv(&patched) > rv(&replaced));
    let strategic = json!({"metadata": {"annotations": {"x": "y"}}});
    let patched2 = sas.patch("web", &PatchParams::default(), &Patch::Strategic(&strategic)).await.unwrap();
    assert!(rv(&patched2) > rv(&patched));
    assert_eq!(patched2.metadata.labels.as_ref().unwrap()["team"], "b");

    // A write that changes nothing is no write: the resourceVersion stays.
    let again = sas.patch("web", &PatchParams::default(), &Patch::Merge(&strategic)).await.unwrap();
    assert_eq!(rv(&again), rv(&patched2));
    // Lists carry the latest resourceVersion; delete preconditions are checked.
    let list = sas.list(&ListParams::default()).await.unwrap();
    assert!(list.metadata.resource_version.unwrap().parse::<u64>().unwrap() >= rv(&again));
    let stale_delete = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: created.metadata.resource_version,
            uid: None,
        }),
        ..Default::default()
    };
    let (code, reason, message) = api_error(sas.delete("web", &stale_delete).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(message.contains("Precondition failed: ResourceVersion in precondition"), "{message}");
    let fresh_delete = DeleteParams {
        preconditions: Some(kube::api::Preconditions { resource_version: again.metadata.resource_version, uid: None }),
        ..Default::default()
    };
    sas.delete("web", &fresh_delete).await.unwrap();
}

#[tokio::test]
async fn json_patch_adds_replaces_removes_and_tests() {
    let api = KubeApi::start();
    let client = client(&api).await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    sas.create(&PostParams::default(), &service_account("web", &[("a", "1")])).await.unwrap();
    // kube's Patch::Json needs its `jsonpatch` feature; the raw request is the same.
    let send = |ops: Value| {
        let request = http::Request::patch("/api/v1/namespaces/default/serviceaccounts/web?fieldManager=ops")
            .header("Content-Type", "application/json-patch+json")
            .body(serde_json::to_vec(&ops).unwrap())
            .unwrap();
        let client = client.clone();
        async move { client.request::<ServiceAccount>(request).await }
    };
    let patched = send(json!([
        {"op": "test", "path": "/metadata/annotations/a", "value": "1"},
        {"op": "add", "path": "/metadata/annotations/eks.amazonaws.com~1role-arn", "value": ROLE},
        {"op": "replace", "path": "/metadata/labels/app", "value": "api"},
        {"op": "remove", "path": "/metadata/annotations/a"},
    ]))
    .await
    .unwrap();
    let annotations = patched.metadata.annotations.clone().unwrap();
    assert_eq!(
        annotations.into_iter().collect::<Vec<_>>(),
        [("eks.amazonaws.com/role-arn".to_string(), ROLE.to_string())]
    );
    assert_eq!(patched.metadata.labels.unwrap()["app"], "api");
    // A failed test: 422 Invalid with the API server's fixed message (it
    // drops json-patch's own) and empty details.
    let (code, reason, message) =
        api_error(send(json!([{"op": "test", "path": "/metadata/labels/app", "value": "web"}])).await);
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (422, "Invalid", "the server rejected our request due to an error in our request")
    );
    // As evanphx/json-patch v4: `"value": null` tests that a member is
    // absent (or null), but its parent must exist.
    let absent = json!([{"op": "test", "path": "/metadata/annotations/nope", "value": null}]);
    assert!(send(absent).await.is_ok());
    let present = json!([{"op": "test", "path": "/metadata/labels/app", "value": null}]);
    assert_eq!(api_error(send(present).await).0, 422);
    let no_parent = json!([{"op": "test", "path": "/metadata/nothing/here", "value": null}]);
    assert_eq!(api_error(send(no_parent).await).0, 422);
    let out_of_range = json!([{"op": "test", "path": "/metadata/managedFields/9", "value": null}]);
    assert_eq!(api_error(send(out_of_range).await).0, 422);
    let whole = json!([{"op": "test", "path": "/metadata/labels", "value": {"app": "api"}}]);
    assert!(send(whole).await.is_ok());
    let (code, _, _) = api_error(send(json!([{"op": "remove", "path": "/metadata/labels/none"}])).await);
    assert_eq!(code, 422);
    let (code, reason, _) = api_error(send(json!({"op": "add"})).await);
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    let stale = json!([{"op": "replace", "path": "/metadata/resourceVersion", "value": "1"}]);
    assert_eq!(api_error(send(stale).await).0, 409);
}

#[tokio::test]
async fn server_side_apply_conflicts_between_managers_unless_forced() {
    let api = KubeApi::start();
    let client = client(&api).await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let config = |role: &str| {
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web",
            "annotations": {"eks.amazonaws.com/role-arn": role}, "labels": {"app.kubernetes.io/managed-by": "irsa"}}})
    };
    // An apply creates the object when it does not exist.
    let created = sas.patch("web", &PatchParams::apply("helm"), &Patch::Apply(config(ROLE))).await.unwrap();
    let entries = created.metadata.managed_fields.clone().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].manager.as_deref(), entries[0].operation.as_deref()), (Some("helm"), Some("Apply")));
    assert_eq!(
        entries[0].fields_v1.as_ref().unwrap().0,
        json!({"f:metadata": {"f:annotations": {"f:eks.amazonaws.com/role-arn": {}}, "f:labels": {"f:app.kubernetes.io/managed-by": {}}}})
    );

    // The same values from another manager: shared ownership, no conflict.
    sas.patch("web", &PatchParams::apply("irsa"), &Patch::Apply(config(ROLE))).await.unwrap();
    // A different value for a field helm owns: 409 naming the field.
    let other = "arn:aws:iam::123456789012:role/other";
    let err = sas.patch("web", &PatchParams::apply("irsa"), &Patch::Apply(config(other))).await;
    let Err(kube::Error::Api(status)) = err else { panic!("expected a conflict, got {err:?}") };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    let causes = status.details.as_ref().unwrap().causes.clone();
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].field, ".metadata.annotations.eks.amazonaws.com/role-arn");
    assert_eq!(causes[0].message, "conflict with \"helm\" using v1");
    assert!(status.message.starts_with("Apply failed with 1 conflict"), "{}", status.message);

    // Forced: irsa takes the field; helm keeps only what it still shares.
    let forced = sas.patch("web", &PatchParams::apply("irsa").force(), &Patch::Apply(config(other))).await.unwrap();
    assert_eq!(forced.metadata.annotations.as_ref().unwrap()["eks.amazonaws.com/role-arn"], other);
    let helm = forced.metadata.managed_fields.iter().flatten().find(|e| e.manager.as_deref() == Some("helm")).unwrap();
    assert_eq!(
        helm.fields_v1.as_ref().unwrap().0,
        json!({"f:metadata": {"f:labels": {"f:app.kubernetes.io/managed-by": {}}}})
    );

    // A field irsa stops applying, which nobody else owns, is removed.
    let mut smaller = config(other);
    smaller["metadata"]["annotations"]["extra"] = json!("1");
    sas.patch("web", &PatchParams::apply("irsa"), &Patch::Apply(&smaller)).await.unwrap();
    let without_extra = sas.patch("web", &PatchParams::apply("irsa"), &Patch::Apply(config(other))).await.unwrap();
    assert!(!without_extra.metadata.annotations.unwrap().contains_key("extra"));

    // An Update-type write also owns fields: a merge patch by `kubectl-edit`.
    let edit = json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": ROLE}}});
    sas.patch(
        "web",
        &PatchParams { field_manager: Some("kubectl-edit".into()), ..Default::default() },
        &Patch::Merge(&edit),
    )
    .await
    .unwrap();
    let (code, _, message) =
        api_error(sas.patch("web", &PatchParams::apply("irsa"), &Patch::Apply(config(other))).await);
    assert_eq!(code, 409);
    assert!(message.contains("conflict with \"kubectl-edit\""), "{message}");

    // Apply without fieldManager is a 400 (kube itself refuses to send it).
    let no_manager = format!("{AUTH}Content-Type: application/apply-patch+yaml\r\n");
    let (code, _) =
        raw(&api, "PATCH", "/api/v1/namespaces/default/serviceaccounts/web", &no_manager, &config(ROLE).to_string());
    assert_eq!(code, 400);
}

#[tokio::test]
async fn the_role_arn_annotation_time_follows_the_server_clock() {
    let api = KubeApi::start();
    let client = client(&api).await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    sas.create(&PostParams::default(), &service_account("web", &[])).await.unwrap();
    api.advance_clock(Duration::from_secs(90));
    assert_eq!(api.now(), "2026-01-01T00:01:30Z");
    let annotate = |role: &str| json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": role}}});
    let params = PatchParams { field_manager: Some("irsa".into()), ..Default::default() };
    sas.patch("web", &params, &Patch::Merge(annotate(ROLE))).await.unwrap();
    let role_arn_owner_time = |sa: &ServiceAccount| {
        sa.metadata
            .managed_fields
            .iter()
            .flatten()
            .find(|e| {
                e.fields_v1
                    .as_ref()
                    .and_then(|f| f.0.pointer("/f:metadata/f:annotations/f:eks.amazonaws.com~1role-arn"))
                    .is_some()
            })
            .map(|e| (e.manager.clone().unwrap(), e.time.as_ref().unwrap().0.to_string()))
    };
    let sa = sas.get("web").await.unwrap();
    assert_eq!(role_arn_owner_time(&sa), Some(("irsa".to_string(), "2026-01-01T00:01:30Z".to_string())));
    let creator =
        sa.metadata.managed_fields.iter().flatten().find(|e| e.manager.as_deref() == Some("unknown")).unwrap();
    assert_eq!(creator.time.as_ref().unwrap().0.to_string(), "2026-01-01T00:00:00Z");

    // The same value again is no change: the time stays.
    api.advance_clock(Duration::from_secs(3600));
    sas.patch("web", &params, &Patch::Merge(annotate(ROLE))).await.unwrap();
    let sa = sas.get("web").await.unwrap();
    assert_eq!(role_arn_owner_time(&sa).unwrap().1, "2026-01-01T00:01:30Z");
    // A new value by another manager moves the field and its time to it.
    let other = PatchParams { field_manager: Some("kubectl".into()), ..Default::default() };
    sas.patch("web", &other, &Patch::Merge(annotate("arn:aws:iam::123456789012:role/new"))).await.unwrap();
    let sa = sas.get("web").await.unwrap();
    assert_eq!(role_arn_owner_time(&sa), Some(("kubectl".to_string(), "2026-01-01T01:01:30Z".to_string())));
    assert!(
        sa.metadata.managed_fields.iter().flatten().all(|e| e.manager.as_deref() != Some("irsa")),
        "irsa owns nothing left"
    );
}

#[tokio::test]
async fn openid_configuration_names_the_issuer_once_set() {
    let api = KubeApi::start();
    let client = client(&api).await;
    let request = || http::Request::get("/.well-known/openid-configuration").body(Vec::new()).unwrap();
    assert_eq!(api_error(client.request::<Value>(request()).await).0, 404);
    let issuer = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
    api.set_issuer(issuer);
    let doc: Value = client.request(request()).await.unwrap();
    assert_eq!(doc["issuer"], issuer);
    assert_eq!(doc["jwks_uri"], format!("{issuer}/keys"));
    assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["RS256"]));
    let (code, raw_doc) = raw(&api, "GET", "/.well-known/openid-configuration", "", "");
    assert_eq!((code, raw_doc), (200, doc));
}

#[tokio::test]
async fn discovery_documents_and_request_counts() {
    let api = KubeApi::start();
    let client = client(&api).await;
    api.reset_requests();
    let core: Value = client.request(http::Request::get("/api/v1").body(Vec::new()).unwrap()).await.unwrap();
    let core_names: Vec<&str> =
        core["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        core_names,
        ["namespaces", "namespaces/status", "serviceaccounts", "serviceaccounts/token", "pods", "pods/status"]
    );
    let apps: Value = client.request(http::Request::get("/apis/apps/v1").body(Vec::new()).unwrap()).await.unwrap();
    assert_eq!(apps["resources"][0]["kind"], "Deployment");
    let groups = client.list_api_groups().await.unwrap();
    assert_eq!(
        groups.groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["apps", "coordination.k8s.io", "admissionregistration.k8s.io"]
    );
    let versions = client.list_core_api_versions().await.unwrap();
    assert_eq!(versions.versions, ["v1"]);
    let leases: Value =
        client.request(http::Request::get("/apis/coordination.k8s.io/v1").body(Vec::new()).unwrap()).await.unwrap();
    assert_eq!(leases["resources"][0]["name"], "leases");
    assert_eq!(api.requests(), 5);
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let api = KubeApi::start();
    let client = client(&api).await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let dry = PostParams { dry_run: true, ..Default::default() };
    let answer = sas.create(&dry, &service_account("web", &[])).await.unwrap();
    assert_eq!(answer.metadata.name.as_deref(), Some("web"));
    assert_eq!(api_error(sas.get("web").await).0, 404);
}

#[tokio::test]
async fn bad_input_gets_a_4xx_status_and_the_server_keeps_serving() {
    let api = KubeApi::start();
    let client = client(&api).await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    sas.create(&PostParams::default(), &service_account("web", &[])).await.unwrap();
    let sa = "/api/v1/namespaces/default/serviceaccounts/web";
    let with = |content_type: &str| format!("{AUTH}Content-Type: {content_type}\r\n");
    let (merge, json_patch, apply) = (
        with("application/merge-patch+json"),
        with("application/json-patch+json"),
        with("application/apply-patch+yaml"),
    );
    let cases: &[(&str, &str, &str, &str, u16)] = &[
        ("PATCH", sa, &merge, r#"{"metadata": "x"}"#, 400),
        ("PATCH", sa, &merge, r#"{"metadata": {"name": "other"}}"#, 400),
        ("PATCH", sa, &merge, r#"{"kind": "Pod"}"#, 400),
        ("PATCH", sa, &merge, "[]", 400),
        ("PATCH", sa, &json_patch, r#"[{"op": "replace", "path": "", "value": 5}]"#, 400),
        ("PATCH", sa, &json_patch, r#"[{"op": "add", "path": "/a/b/c", "value": 1}]"#, 422),
        ("PATCH", sa, &json_patch, r#"[{"op": "add", "path": "no-slash", "value": 1}]"#, 400),
        ("PATCH", sa, &json_patch, r#"[{"op": "move", "from": "/nope", "path": "/x"}]"#, 422),
        ("PATCH", &format!("{sa}?fieldManager=m"), &apply, r#"{"metadata": {"name": "web"}}"#, 400),
        ("PATCH", &format!("{sa}?fieldManager=m"), &apply, r#"{"apiVersion": "v1", "kind": "Pod"}"#, 400),
        ("PUT", sa, &with("application/json"), r#"{"metadata": {"name": "other", "resourceVersion": "1"}}"#, 400),
        ("PUT", sa, &with("application/json"), "null", 400),
        ("DELETE", sa, &with("application/json"), "{", 400),
        ("GET", "/api/v1/namespaces/default/serviceaccounts?limit=x", AUTH, "", 400),
        ("GET", "/api/v1/namespaces/default/serviceaccounts?watch=true", AUTH, "", 400),
        ("GET", "/api/v1/namespaces/default/serviceaccounts/web/status", AUTH, "", 404),
        ("GET", "/apis/apps/v2/deployments", AUTH, "", 404),
        ("GET", "/api/v1/namespaces/default/namespaces", AUTH, "", 404),
        (
            "POST",
            "/api/v1/namespaces/default/serviceaccounts",
            &with("application/json"),
            r#"{"metadata": {"name": "x", "resourceVersion": "3"}}"#,
            400,
        ),
        (
            "POST",
            "/api/v1/namespaces/default/serviceaccounts",
            &with("application/json"),
            r#"{"metadata": {"name": "x", "namespace": "kube-system"}}"#,
            400,
        ),
        (
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            &with("application/json"),
            r#"{"metadata": {"name": "d"}, "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, "template": {"metadata": {"labels": "x"}}}}"#,
            400,
        ),
        (
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            &with("application/json"),
            r#"{"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": "x"}}}}"#,
            201,
        ),
    ];
    for (method, path, headers, body, expected) in cases {
        let (code, status) = raw(&api, method, path, headers, body);
        assert_eq!(code, *expected, "{method} {path} {body}: {status}");
        if code >= 400 {
            assert_eq!(
                (status["kind"].as_str(), status["code"].as_u64()),
                (Some("Status"), Some(u64::from(code))),
                "{status}"
            );
        }
    }
    // Still serving, and the object is as it was.
    let web = sas.get("web").await.unwrap();
    assert_eq!(web.metadata.labels.unwrap()["app"], "web");
    // generateName: a counted suffix from Kubernetes' alphabet.
    let generated =
        sas.create(&PostParams::default(), &from_json(json!({"metadata": {"generateName": "runner-"}}))).await.unwrap();
    assert_eq!(generated.metadata.name.unwrap().len(), "runner-".len() + 5);
}

#[tokio::test]
async fn a_denied_grant_is_forbidden_as_rbac_answers_it() {
    let api = KubeApi::start();
    let client = client(&api).await;
    api.deny("list", "deployments.apps");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let e = deployments.list(&Default::default()).await.unwrap_err();
    let kube::Error::Api(status) = e else { panic!("{e}") };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        "deployments.apps is forbidden: User \"irsa-test\" cannot list resource \"deployments\" in API group \"apps\" in the namespace \"default\""
    );
    // Only that verb: a get of one is still allowed (and finds nothing).
    assert_eq!(api_error(deployments.get("web").await).0, 404);
}
