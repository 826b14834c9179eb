//! A Kubernetes API server for tests: real HTTP/1.1 and JSON on 127.0.0.1,
//! so irsa's tests drive the real `kube` client (no kube-apiserver binary
//! can be installed here; see NOTES.md). It serves namespaces,
//! ServiceAccounts (and their `token` subresource), pods, Deployments,
//! ReplicaSets, Leases and MutatingWebhookConfigurations with the API
//! conventions irsa relies on (resourceVersion, conflicts, patches,
//! server-side apply, managedFields, Status errors), and runs, behind the
//! API, what a real cluster runs: kube-controller-manager's Deployment,
//! ReplicaSet and garbage collector controllers, a kubelet, and the EKS pod
//! identity webhook. It aims to be no kinder than a real cluster where irsa
//! could tell the difference.
//!
//! What it promises (each promise has a test in `tests.rs` or `rollouts.rs`):
//! - Every write bumps the object's `resourceVersion`, controllers' writes
//!   included, so a Deployment's version moves while its spec stands still
//!   (pods becoming Ready, a rescale, a new revision annotation). A write
//!   that changes nothing is no write. `metadata.generation` starts at 1 and
//!   moves only when `spec` changes.
//! - `status` is a subresource of namespaces, pods, Deployments and
//!   ReplicaSets: `GET/PUT/PATCH .../{name}/status`. A write to the main
//!   resource keeps the stored status; a write to `/status` keeps the stored
//!   spec and metadata and takes only `status`; its managedFields entry has
//!   `subresource: status`. Pods are created `Pending`, Deployments and
//!   ReplicaSets without status.
//! - Controllers act after the write is answered, never inside a request:
//!   a pass every 10 ms (`TICK`) while anything changed. The Deployment
//!   controller creates one ReplicaSet per pod template (`<deploy>-<hash>`,
//!   label `pod-template-hash`, ownerReference to the Deployment, annotation
//!   `deployment.kubernetes.io/revision`, copied to the Deployment) and
//!   rolls: the new ReplicaSet grows within maxSurge (default 25 %, rounded
//!   up), old ones shrink only while enough pods are available (maxUnavailable
//!   25 %, rounded down; 2 replicas roll one at a time); `Recreate` empties
//!   the old ones first. A template change (the `restartedAt` annotation
//!   too) rolls; a `spec.replicas` change only resizes. Its status:
//!   `observedGeneration`, `replicas`, `updatedReplicas`, `readyReplicas`,
//!   `availableReplicas`, `unavailableReplicas` (each omitted when zero, as
//!   `omitempty` does) and `Available`/`Progressing` conditions.
//! - The ReplicaSet controller keeps `spec.replicas` pods named
//!   `<rs>-<5 chars>` owned by it (removing not-Ready, then newest, first);
//!   when admission refuses a pod (its ServiceAccount does not exist) it
//!   sets a `ReplicaFailure` condition and retries on later passes.
//! - The garbage collector deletes objects whose owners are all gone, one
//!   level per pass (a deleted Deployment's ReplicaSets, then their pods).
//! - The kubelet stand-in starts a pod one pass after it saw it Pending:
//!   `Running`, Ready conditions, `startTime`, container statuses, pod IP,
//!   by a status write (manager `kubelet`). [`KubeApi::set_kubelet`] pauses
//!   it, which holds a rollout where it is.
//! - Admission defaults `spec.serviceAccountName` (and `serviceAccount`) to
//!   `default` and refuses pods of a ServiceAccount that does not exist
//!   (403). The pod identity webhook acts at pod CREATE only, from the
//!   ServiceAccount's `eks.amazonaws.com/role-arn` annotation at that
//!   moment, while its MutatingWebhookConfiguration (`pod-identity-webhook`,
//!   webhook `iam-for-pods.amazonaws.com`, pods CREATE) is registered, as
//!   v0.6 of the real one does: `AWS_ROLE_ARN` and
//!   `AWS_WEB_IDENTITY_TOKEN_FILE` in each container that sets neither,
//!   `AWS_STS_REGIONAL_ENDPOINTS=regional` (unless the ServiceAccount's
//!   `eks.amazonaws.com/sts-regional-endpoints` is `false`),
//!   `AWS_REGION`/`AWS_DEFAULT_REGION`, the `aws-iam-token` mount, skipping
//!   the containers of `eks.amazonaws.com/skip-containers`; and the
//!   projected token volume (audience: `eks.amazonaws.com/audience` or
//!   `sts.amazonaws.com`; lifetime: the pod's, else the ServiceAccount's
//!   `eks.amazonaws.com/token-expiration`, else 86400 s, never under 600).
//! - `POST .../serviceaccounts/{name}/token` (TokenRequest) answers a JWT
//!   whose `iss` is the issuer discovery names, `aud` the audiences asked,
//!   `sub` `system:serviceaccount:NS:NAME` (its signature is not real);
//!   under 600 s is refused (422) as kube-apiserver refuses it.
//! - Times (`creationTimestamp`, managedFields `time`, status times) have
//!   whole seconds, from a manual clock: 2026-01-01T00:00:00Z, moved only
//!   by [`KubeApi::advance_clock`], which first lets the controllers finish
//!   what they have to do (as they would in that time on a real cluster).
//!   Controllers never move the clock, so their timestamps are
//!   deterministic; how long a rollout takes in real time (a few 10 ms
//!   ticks per pod) is not.
//! - JSON patch `test` ops as kube-apiserver's evanphx/json-patch v4:
//!   `"value": null` passes on a missing member whose parent exists; a
//!   failed op answers 422 Invalid with the fixed message "the server
//!   rejected our request due to an error in our request".
//! - [`KubeApi::requests`] counts HTTP requests only, not controller work.
//!
//! Test hooks: [`KubeApi::deny`] (RBAC without one grant), [`KubeApi::set_kubelet`], [`KubeApi::touch_status`] (a
//! status write that moves the resourceVersion and nothing else),
//! [`KubeApi::set_status_churn`] (the same for every Deployment,
//! periodically), [`KubeApi::scale`], [`KubeApi::pods`],
//! [`KubeApi::replica_sets`], [`KubeApi::rollout_pending`] and
//! [`KubeApi::wait_rolled_out`].
//!
//! Layers: [`route`] maps a request to a resource, `store` does the writes,
//! `fields` the managedFields, `patch` the patch formats, `selector` the
//! label and field selectors, `controller` what runs behind the API.
//!
//! Simplified on purpose (a real cluster differs): strategic merge patch is
//! a merge patch (lists replaced); managedFields own lists whole; apply
//! bodies must be JSON, and apply to `/status` is refused; no watch; no
//! subresource but `status` (no `/scale`, `/log`, `/eviction`); a status
//! write keeps all metadata (a real Deployment's lets annotations through);
//! no graceful deletion or finalizers: a deleted pod is gone at once, never
//! `Terminating` (a real one lingers up to its grace period, 30 s, and
//! `sleep` ignores SIGTERM); no scheduler (`spec.nodeName` stays unset) and
//! the kubelet never fails a pod, runs no probes, and ignores
//! `minReadySeconds` (available = Ready); the Deployment controller ignores
//! `paused`, `progressDeadlineSeconds`, `revisionHistoryLimit` (old
//! ReplicaSets stay, scaled to 0) and proportional scaling during a
//! rollout, reports no `terminatingReplicas`, and its template hash is not
//! the real FNV one (same shape, different value); ReplicaSets adopt no
//! orphan pods; the webhook sees a ServiceAccount annotation at once (the
//! real one learns it through an informer, a moment later); `touch_status` changes no field, where a real controller
//! would change at least a time; DELETE always returns the object (real
//! servers return a `Status` for some kinds); PUT always requires a
//! resourceVersion (real servers allow unconditional updates of these
//! kinds); unknown fields are kept; `resourceVersion` on GET/list is ignored.

mod controller;
mod errors;
mod fields;
mod kinds;
mod patch;
mod rollouts;
mod selector;
mod store;
mod tests;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::{Value, json};

use errors::ApiError;
use kinds::Kind;
use store::{ListOptions, PatchRequest, PatchType, State};

/// The bearer token of the written kubeconfig; other tokens get 401.
const TOKEN: &str = "irsa-test-token";

struct Shared {
    state: Mutex<State>,
    requests: AtomicU64,
    /// `METHOD path` of every request, in order, as an audit log has them.
    log: Mutex<Vec<String>>,
}

impl Shared {
    /// A panic in another test thread must not take the server down too.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The server, for one test; it stops when dropped.
pub struct KubeApi {
    shared: Arc<Shared>,
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KubeApi {
    /// Listens on 127.0.0.1 and a free port, served by its own thread and
    /// tokio runtime; accepts connections as soon as it returns.
    pub fn start() -> KubeApi {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for the Kubernetes test API");
        let port = listener.local_addr().expect("the listener's address").port();
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            requests: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("kubeapi-{port}"))
            .spawn(move || runtime.block_on(serve(listener, serving, stopped)))
            .expect("a thread for the Kubernetes test API");
        KubeApi { shared, port, stop: Some(stop), thread: Some(thread) }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The text of a kubeconfig with one cluster (this server), one user
    /// (a bearer token) and one context, the current one.
    pub fn kubeconfig(&self, context: &str) -> String {
        // JSON strings are YAML flow scalars, so any context name is safe.
        let context = Value::from(context).to_string();
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: irsa-test\n  cluster:\n    server: {url}\nusers:\n- name: irsa-test\n  user:\n    token: {TOKEN}\ncontexts:\n- name: {context}\n  context:\n    cluster: irsa-test\n    user: irsa-test\n    namespace: default\ncurrent-context: {context}\n",
            url = self.url()
        )
    }

    /// The text of a kubeconfig with several servers, one cluster and one
    /// context for each (named by `context`), as a kubeconfig merged from
    /// two `aws eks update-kubeconfig` runs has them; the first context is
    /// the current one. Every server takes the one test token.
    pub fn kubeconfig_of(servers: &[(&KubeApi, &str)]) -> String {
        let (mut clusters, mut contexts) = (String::new(), String::new());
        for (server, context) in servers {
            let name = Value::from(*context).to_string();
            clusters.push_str(&format!("- name: {name}\n  cluster:\n    server: {}\n", server.url()));
            contexts.push_str(&format!(
                "- name: {name}\n  context:\n    cluster: {name}\n    user: irsa-test\n    namespace: default\n"
            ));
        }
        let current = servers.first().map(|(_, c)| Value::from(*c).to_string()).unwrap_or_else(|| "\"\"".into());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n{clusters}users:\n- name: irsa-test\n  user:\n    token: {TOKEN}\ncontexts:\n{contexts}current-context: {current}\n"
        )
    }

    /// Writes [`KubeApi::kubeconfig`] to `dir/kubeconfig` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path, context: &str) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(&path, self.kubeconfig(context))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// A kube client for this server, for tests that set the cluster up.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig =
            kube::config::Kubeconfig::from_yaml(&self.kubeconfig("irsa-test")).expect("our kubeconfig parses");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .expect("a kube config from our kubeconfig");
        kube::Client::try_from(config).expect("a kube client")
    }

    /// What `/.well-known/openid-configuration` names as issuer (404 until set).
    pub fn set_issuer(&self, issuer: &str) {
        self.shared.state().issuer = Some(issuer.to_string());
    }

    /// The server's clock starts at 2026-01-01T00:00:00Z and moves only
    /// here. Time passing lets the controllers catch up, as a real cluster's
    /// do within a second: they first finish all they have to do (at the
    /// old time: a Deployment created just before has its pods, Ready
    /// unless the kubelet is paused), then the clock moves.
    pub fn advance_clock(&self, by: std::time::Duration) {
        let mut state = self.shared.state();
        state.settle();
        state.now = state.now.checked_add(by).expect("the test clock stays within jiff's range");
    }

    /// The server's clock as Kubernetes writes times (`2026-01-01T00:00:00Z`).
    pub fn now(&self) -> String {
        self.shared.state().now_text()
    }

    /// The simulated EKS pod identity webhook (on at start): on, its
    /// MutatingWebhookConfiguration `pod-identity-webhook` is registered,
    /// as EKS registers it; off, it is deleted (as deleting it through the
    /// API does). It changes the pods created while registered, and only those.
    pub fn set_webhook(&self, on: bool) {
        let mut state = self.shared.state();
        let (kind, name) = (&kinds::MUTATING_WEBHOOK_CONFIGURATIONS, "pod-identity-webhook");
        if on {
            let _ = state.create(kind, "", store::pod_identity_webhook_config(), "eks");
        } else {
            let _ = state.delete(kind, "", name, b"");
        }
    }

    /// Credentials limited to namespaces, as RBAC often grants a CI role:
    /// every list across all namespaces (namespaces included) is forbidden.
    pub fn set_namespaced_only(&self, on: bool) {
        self.shared.state().namespaced_only = on;
    }

    /// Take one grant away from the test user's RBAC: `verb` (get, list,
    /// create, update, patch, delete, deletecollection) on `resource` as
    /// RBAC names it (`pods`, `deployments.apps`, `serviceaccounts/token`);
    /// such requests get 403 as kube-apiserver's authorizer answers them.
    pub fn deny(&self, verb: &str, resource: &str) {
        self.shared.state().denied.insert((verb.to_owned(), resource.to_owned()));
    }

    /// The kubelet stand-in (on at start) starts pods a tick after they are
    /// created: Running and Ready. Off, new pods stay Pending and not
    /// Ready, so a rollout holds where it is (old pods are kept while the
    /// new ones are not Ready) until it is back on.
    pub fn set_kubelet(&self, on: bool) {
        let mut state = self.shared.state();
        state.kubelet = on;
        state.settled_at = None;
    }

    /// A controller's status write at this moment: the object's
    /// resourceVersion moves, its spec, metadata and status do not (a real
    /// controller would change something, e.g. a condition's time). `kind`
    /// is the plural: `deployments`, `replicasets`, `pods`, `namespaces`.
    /// Returns the new resourceVersion.
    pub fn touch_status(&self, kind: &str, ns: &str, name: &str) -> String {
        let kind = Kind::find_plural(kind).filter(|k| k.has_status()).expect("a kind with a status subresource");
        self.shared.state().touch_status(kind, ns, name).unwrap_or_else(|| panic!("no {} {ns}/{name}", kind.plural))
    }

    /// With `Some(every)`, the controllers rewrite every Deployment's status
    /// (as [`KubeApi::touch_status`]) at that period, so any client's
    /// read-then-write of a Deployment races a resourceVersion change.
    pub fn set_status_churn(&self, every: Option<Duration>) {
        let mut state = self.shared.state();
        state.status_churn = every;
        state.last_churn = None;
    }

    /// What `kubectl scale` does: a write of `spec.replicas` (manager `kubectl`).
    pub fn scale(&self, ns: &str, name: &str, replicas: i64) {
        let mut state = self.shared.state();
        let scaled =
            state.update_as(&kinds::DEPLOYMENTS, ns, name, "kubectl", |d| d["spec"]["replicas"] = json!(replicas));
        scaled.unwrap_or_else(|e| panic!("cannot scale {ns}/{name}: {}", e.message));
    }

    /// The pods of a namespace, in name order, as the store has them now.
    pub fn pods(&self, ns: &str) -> Vec<k8s_openapi::api::core::v1::Pod> {
        self.objects(&kinds::PODS, ns)
    }

    /// The ReplicaSets of a namespace, in name order.
    pub fn replica_sets(&self, ns: &str) -> Vec<k8s_openapi::api::apps::v1::ReplicaSet> {
        self.objects(&kinds::REPLICA_SETS, ns)
    }

    fn objects<T: serde::de::DeserializeOwned>(&self, kind: &Kind, ns: &str) -> Vec<T> {
        let state = self.shared.state();
        let list = state.list(kind, Some(ns), &ListOptions::default()).expect("a list without selectors");
        serde_json::from_value(list["items"].clone()).expect("stored objects decode")
    }

    /// None when the Deployment has rolled out: its controller observed
    /// the current generation, `replicas`, `updatedReplicas`,
    /// `readyReplicas` and `availableReplicas` all equal `spec.replicas`,
    /// and no pod of an older ReplicaSet is left. Else what is missing.
    pub fn rollout_pending(&self, ns: &str, name: &str) -> Option<String> {
        self.shared.state().rollout_pending(ns, name)
    }

    /// Waits until [`KubeApi::rollout_pending`] is None; panics after `timeout`.
    pub async fn wait_rolled_out(&self, ns: &str, name: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let Some(pending) = self.rollout_pending(ns, name) else { return };
            assert!(start.elapsed() < timeout, "Deployment {ns}/{name} not rolled out after {timeout:?}: {pending}");
            tokio::time::sleep(TICK).await;
        }
    }

    /// HTTP requests served since the start or the last reset.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    pub fn reset_requests(&self) {
        self.shared.requests.store(0, Ordering::SeqCst);
        self.shared.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// `METHOD path` of every request since the start or the last reset.
    pub fn request_log(&self) -> Vec<String> {
        self.shared.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How often the controllers and the kubelet look at the objects.
const TICK: Duration = Duration::from_millis(10);

/// The controllers, between requests: a pass every [`TICK`] while anything
/// changed since the last pass that wrote nothing (or the kubelet has a pod
/// to start, or status churn is on).
async fn run_controllers(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let mut state = shared.state();
        if let Some(every) = state.status_churn {
            let due = state.last_churn.is_none_or(|last| last.elapsed() >= every);
            if due {
                state.last_churn = Some(Instant::now());
                state.touch_deployments();
            }
        }
        let before = state.resource_version_number();
        if state.settled_at == Some(before) && state.kubelet_seen.is_empty() {
            continue;
        }
        state.tick();
        let after = state.resource_version_number();
        state.settled_at = (after == before).then_some(after);
    }
}

/// Accepts connections until told to stop; dropping the runtime afterwards
/// ends the connections still open, and the controllers.
async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    tokio::spawn(run_controllers(shared.clone()));
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        }
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut log) = shared.log.lock() {
        log.push(format!("{} {}", req.method(), req.uri().path()));
    }
    let (parts, body) = req.into_parts();
    let result = match body.collect().await {
        Ok(body) => respond(&shared, &parts, &body.to_bytes()),
        Err(e) => Err(ApiError::bad_request(format!("cannot read the request body: {e}"))),
    };
    let (code, body) = match result {
        Ok(ok) => ok,
        Err(e) => (e.code, e.to_json()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    Ok(response)
}

/// What a request addresses.
enum Target {
    Document(Value),
    OidcDiscovery,
    /// `ns` None: a cluster-scoped kind, or a list across all namespaces.
    Collection {
        kind: &'static Kind,
        ns: Option<String>,
    },
    Item {
        kind: &'static Kind,
        ns: String,
        name: String,
    },
    /// `POST namespaces/{ns}/serviceaccounts/{name}/token`: a TokenRequest.
    Token {
        ns: String,
        name: String,
    },
    /// `.../{name}/status` of a kind with a status subresource.
    Status {
        kind: &'static Kind,
        ns: String,
        name: String,
    },
}

fn route(path: &str) -> Result<Target, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let not_found = || ApiError::path_not_found(path);
    let document = |doc: Option<Value>| doc.map(Target::Document).ok_or_else(not_found);
    match segments.as_slice() {
        ["version"] => Ok(Target::Document(kinds::version())),
        [".well-known", "openid-configuration"] => Ok(Target::OidcDiscovery),
        ["api"] => Ok(Target::Document(kinds::core_versions())),
        ["apis"] => Ok(Target::Document(kinds::group_list())),
        ["api", version] => document(kinds::resource_list("", version)),
        ["apis", group, version] => document(kinds::resource_list(group, version)),
        ["api", version, rest @ ..] => resource_target("", version, rest).ok_or_else(not_found),
        ["apis", group, version, rest @ ..] => resource_target(group, version, rest).ok_or_else(not_found),
        _ => Err(not_found()),
    }
}

/// `{plural}`, `{plural}/{name}[/status]` for cluster-scoped kinds,
/// `namespaces/{ns}/{plural}[/{name}[/status]]` for namespaced ones. The
/// only subresource served is `status` (no `/scale`, `/log`, …).
fn resource_target(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let kind = |plural: &str| Kind::find(group, version, plural);
    let namespaced = |plural: &str| kind(plural).filter(|k| k.namespaced);
    let cluster = |plural: &str| kind(plural).filter(|k| !k.namespaced);
    let with_status = |kind: Option<&'static Kind>| kind.filter(|k| k.has_status());
    let owned = |s: &str| s.to_string();
    Some(match rest {
        [plural] => Target::Collection { kind: kind(plural)?, ns: None },
        [plural, name] => Target::Item { kind: cluster(plural)?, ns: String::new(), name: owned(name) },
        [plural, name, "status"] => {
            Target::Status { kind: with_status(cluster(plural))?, ns: String::new(), name: owned(name) }
        }
        ["namespaces", ns, plural] => Target::Collection { kind: namespaced(plural)?, ns: Some(owned(ns)) },
        ["namespaces", ns, plural, name] => {
            Target::Item { kind: namespaced(plural)?, ns: owned(ns), name: owned(name) }
        }
        ["namespaces", ns, "serviceaccounts", name, "token"] if group.is_empty() => {
            Target::Token { ns: owned(ns), name: owned(name) }
        }
        ["namespaces", ns, plural, name, "status"] => {
            Target::Status { kind: with_status(namespaced(plural))?, ns: owned(ns), name: owned(name) }
        }
        _ => return None,
    })
}

/// The decoded query string (`application/x-www-form-urlencoded`, as kube
/// writes it: `+` for spaces).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Query {
        let decode =
            |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
        let pairs = raw.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, "")));
        Query(pairs.map(|(k, v)| (decode(k), decode(v))).collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn list_options(&self) -> ListOptions<'_> {
        ListOptions {
            label_selector: self.get("labelSelector"),
            field_selector: self.get("fieldSelector"),
            limit: self.get("limit"),
            continue_token: self.get("continue"),
        }
    }
}

/// The HTTP status and JSON body of a success, or a Status failure.
type Reply = Result<(u16, Value), ApiError>;

fn respond(shared: &Shared, parts: &http::request::Parts, body: &[u8]) -> Reply {
    let path = parts.uri.path();
    let query = Query::parse(parts.uri.query().unwrap_or_default());
    let target = route(path)?;
    // Version and issuer discovery are public on EKS; the rest needs the token.
    let public = matches!(target, Target::OidcDiscovery) || path == "/version";
    let bearer = parts.headers.get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if !public && bearer != Some(&format!("Bearer {TOKEN}")) {
        return Err(ApiError::unauthorized());
    }
    let method = &parts.method;
    if let Target::Collection { ns: None, kind } = &target
        && shared.state().namespaced_only
    {
        return Err(ApiError::forbidden_list(kind));
    }
    if let Some((verb, kind, resource, ns, name)) = rbac(&target, method) {
        let denied = shared.state().denied.contains(&(verb.to_owned(), resource.clone()));
        if denied {
            let subject = if name.is_empty() {
                resource.split('/').next().unwrap_or_default().to_owned()
            } else {
                format!("{} \"{name}\"", kind.qualified())
            };
            let scope =
                if ns.is_empty() { "at the cluster scope".to_owned() } else { format!("in the namespace \"{ns}\"") };
            let message = format!(
                "{subject} is forbidden: User \"irsa-test\" cannot {verb} resource \"{}\" in API group \"{}\" {scope}",
                resource.split_once('.').map_or(resource.as_str(), |(r, _)| r),
                kind.group
            );
            return Err(ApiError::new(403, "Forbidden", message, json!({"name": name, "kind": kind.plural})));
        }
    }
    let manager = query.get("fieldManager");
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    // A dry run is the same write against a copy of the state.
    let write = |f: &mut dyn FnMut(&mut State) -> Reply| {
        let mut state = shared.state();
        if dry_run { f(&mut state.clone()) } else { f(&mut state) }
    };
    match target {
        Target::Document(doc) if method == Method::GET => Ok((200, doc)),
        Target::OidcDiscovery if method == Method::GET => {
            let issuer = shared.state().issuer.clone().ok_or_else(|| ApiError::path_not_found(path))?;
            Ok((200, oidc_discovery(&issuer)))
        }
        Target::Document(_) | Target::OidcDiscovery => Err(ApiError::method_not_allowed(method.as_str())),
        Target::Collection { kind, ns } => {
            // Writes to a namespaced kind need its namespace in the path.
            let scoped = !kind.namespaced || ns.is_some();
            let ns = ns.unwrap_or_default();
            match *method {
                Method::GET if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
                    Err(ApiError::bad_request("watch is not supported by the test API server"))
                }
                Method::GET => {
                    let ns_filter = if kind.namespaced && scoped { Some(ns.as_str()) } else { None };
                    Ok((200, shared.state().list(kind, ns_filter, &query.list_options())?))
                }
                Method::POST if scoped => {
                    let obj = parse_json(body)?;
                    let manager = manager.unwrap_or("unknown");
                    write(&mut |s| Ok((201, s.create(kind, &ns, obj.clone(), manager)?)))
                }
                Method::DELETE if scoped => {
                    write(&mut |s| Ok((200, s.delete_collection(kind, &ns, &query.list_options())?)))
                }
                _ => Err(ApiError::method_not_allowed(method.as_str())),
            }
        }
        Target::Item { kind, ns, name } => match *method {
            Method::GET => Ok((200, shared.state().get(kind, &ns, &name)?)),
            Method::PUT => {
                let obj = parse_json(body)?;
                let manager = manager.unwrap_or("unknown");
                write(&mut |s| Ok((200, s.replace(kind, &ns, &name, obj.clone(), manager)?)))
            }
            Method::PATCH => {
                let patch_type = patch_type(parts)?;
                let force = query.get("force").is_some_and(|f| f == "true");
                let request = PatchRequest { patch_type, body, field_manager: manager, force };
                write(&mut |s| s.patch(kind, &ns, &name, request))
            }
            Method::DELETE => write(&mut |s| Ok((200, s.delete(kind, &ns, &name, body)?))),
            _ => Err(ApiError::method_not_allowed(method.as_str())),
        },
        Target::Token { ns, name } => match *method {
            Method::POST => Ok((201, shared.state().token_request(&ns, &name, &parse_json(body)?)?)),
            _ => Err(ApiError::method_not_allowed(method.as_str())),
        },
        Target::Status { kind, ns, name } => match *method {
            Method::GET => Ok((200, shared.state().get(kind, &ns, &name)?)),
            Method::PUT => {
                let obj = parse_json(body)?;
                let manager = manager.unwrap_or("unknown");
                write(&mut |s| Ok((200, s.replace_status(kind, &ns, &name, obj.clone(), manager)?)))
            }
            Method::PATCH => {
                let patch_type = patch_type(parts)?;
                let force = query.get("force").is_some_and(|f| f == "true");
                let request = PatchRequest { patch_type, body, field_manager: manager, force };
                write(&mut |s| s.patch_status(kind, &ns, &name, request))
            }
            _ => Err(ApiError::method_not_allowed(method.as_str())),
        },
    }
}

/// What RBAC sees of a request: verb, kind, resource (`plural[.group][/sub]`),
/// namespace and name; `None` for the public and discovery documents.
fn rbac(target: &Target, method: &Method) -> Option<(&'static str, &'static Kind, String, String, String)> {
    let verb = |item: bool| match (method.as_str(), item) {
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", false) => "deletecollection",
        _ => "delete",
    };
    let qualified = |kind: &Kind| if kind.group.is_empty() { kind.plural.to_owned() } else { kind.qualified() };
    Some(match target {
        Target::Document(_) | Target::OidcDiscovery => return None,
        Target::Collection { kind, ns } => {
            (verb(false), *kind, qualified(kind), ns.clone().unwrap_or_default(), String::new())
        }
        Target::Item { kind, ns, name } => (verb(true), *kind, qualified(kind), ns.clone(), name.clone()),
        Target::Status { kind, ns, name } => {
            (verb(true), *kind, format!("{}/status", qualified(kind)), ns.clone(), name.clone())
        }
        Target::Token { ns, name } => {
            ("create", &kinds::SERVICE_ACCOUNTS, "serviceaccounts/token".into(), ns.clone(), name.clone())
        }
    })
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
}

fn patch_type(parts: &http::request::Parts) -> Result<PatchType, ApiError> {
    let content_type = parts.headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match media_type.as_str() {
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/apply-patch+yaml" => Ok(PatchType::Apply),
        _ => Err(ApiError::unsupported_media_type(content_type)),
    }
}

fn oidc_discovery(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/keys"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    })
}
