//! A Kubernetes API server for tests: real HTTP/1.1 and JSON on 127.0.0.1,
//! so irsa's tests drive the real `kube` client (no kube-apiserver binary
//! can be installed here; see NOTES.md). It serves namespaces,
//! ServiceAccounts, pods, Deployments and Leases with the API conventions
//! irsa relies on (resourceVersion, conflicts, patches, server-side apply,
//! managedFields, Status errors), a Deployment controller that replaces
//! pods at once, and the EKS pod identity webhook.
//!
//! Layers: [`route`] maps a request to a resource, `store` does the writes,
//! `fields` the managedFields, `patch` the patch formats, `selector` the
//! label and field selectors, `controller` the Deployment controller.
//!
//! Simplified on purpose (a real cluster differs): strategic merge patch is
//! a merge patch (lists replaced); managedFields own lists whole; apply
//! bodies must be JSON; no watch, no subresources, no graceful deletion or
//! finalizers; DELETE always returns the object (real servers return a
//! `Status` for some kinds); PUT always requires a resourceVersion (real
//! servers allow unconditional updates of these kinds); unknown fields are
//! kept; `resourceVersion` on GET/list is ignored.

mod controller;
mod errors;
mod fields;
mod kinds;
mod patch;
mod selector;
mod store;
mod tests;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

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
        let shared = Arc::new(Shared { state: Mutex::new(State::new()), requests: AtomicU64::new(0) });
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

    /// The server's clock starts at 2026-01-01T00:00:00Z and moves only here.
    pub fn advance_clock(&self, by: std::time::Duration) {
        let mut state = self.shared.state();
        state.now = state.now.checked_add(by).expect("the test clock stays within jiff's range");
    }

    /// The server's clock as Kubernetes writes times (`2026-01-01T00:00:00Z`).
    pub fn now(&self) -> String {
        self.shared.state().now_text()
    }

    /// The simulated EKS pod identity webhook (on at start): it changes the
    /// pods created while it is on, and only those.
    pub fn set_webhook(&self, on: bool) {
        self.shared.state().webhook = on;
    }

    /// Credentials limited to namespaces, as RBAC often grants a CI role:
    /// every list across all namespaces (namespaces included) is forbidden.
    pub fn set_namespaced_only(&self, on: bool) {
        self.shared.state().namespaced_only = on;
    }

    /// HTTP requests served since the start or the last reset.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    pub fn reset_requests(&self) {
        self.shared.requests.store(0, Ordering::SeqCst);
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

/// Accepts connections until told to stop; dropping the runtime afterwards
/// ends the connections still open.
async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
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

/// `{plural}`, `{plural}/{name}` for cluster-scoped kinds,
/// `namespaces/{ns}/{plural}[/{name}]` for namespaced ones. Subresources
/// (`/status`, `/scale`, …) are not served.
fn resource_target(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let kind = |plural: &str| Kind::find(group, version, plural);
    let namespaced = |plural: &str| kind(plural).filter(|k| k.namespaced);
    let owned = |s: &str| s.to_string();
    Some(match rest {
        [plural] => Target::Collection { kind: kind(plural)?, ns: None },
        [plural, name] => {
            Target::Item { kind: kind(plural).filter(|k| !k.namespaced)?, ns: String::new(), name: owned(name) }
        }
        ["namespaces", ns, plural] => Target::Collection { kind: namespaced(plural)?, ns: Some(owned(ns)) },
        ["namespaces", ns, plural, name] => {
            Target::Item { kind: namespaced(plural)?, ns: owned(ns), name: owned(name) }
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
    }
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
