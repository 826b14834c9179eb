//! A fault-injecting HTTP/1.1 reverse proxy for tests: it sits between irsa
//! (or an SDK client) and moto or [`KubeApi`], forwards every request, and on
//! a seeded random schedule answers with the faults the real services send
//! instead: throttling, 5xx, or a connection dropped before or after the
//! request reached the upstream. The faults are in the services' own formats
//! (AWS query XML errors, Kubernetes `Status` objects) so that the clients'
//! own retry logic reacts as it would in production, and irsa's handling of
//! what is left over can be tested against it.
//!
//! One uniform draw per request decides its fate, in a fixed order (throttle,
//! server error, drop, drop after forwarding), and one more draw its jitter,
//! so a seed and the order in which requests arrive fix the whole sequence.
//! Concurrent requests arrive in an order the scheduler picks: only a client
//! that sends one request at a time gets a reproducible sequence.

mod tests;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::Notify;

use crate::kubeapi::KubeApi;

/// Which service is behind the proxy: it decides the shape of injected errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// IAM (moto): AWS query protocol, XML error bodies.
    Iam,
    /// Kubernetes ([`KubeApi`]): JSON `Status` error bodies.
    Kube,
}

/// What the proxy does to requests. The probabilities are per request; one
/// uniform draw is compared against them in turn, so each fault gets its own
/// probability as long as they sum to at most 1.
#[derive(Clone, Debug)]
pub struct Faults {
    pub seed: u64,
    /// Throttling. IAM: 400 with AWS query XML, code `Throttling`; Kube: 429,
    /// a `Status` with reason `TooManyRequests`, and `Retry-After: 1`.
    pub throttle: f64,
    /// IAM: 503 with code `ServiceUnavailable`; Kube: 503, a `Status` with
    /// reason `ServiceUnavailable`.
    pub server_error: f64,
    /// Close the connection without an answer, before forwarding: the
    /// upstream never sees the request.
    pub drop: f64,
    /// Forward the request (so the upstream applies it), wait for the whole
    /// answer, then close the connection instead of answering: the client
    /// cannot know whether its write happened.
    pub drop_after: f64,
    /// Latency added to every request, faulty or not.
    pub delay: Duration,
    /// Extra random latency in `0..jitter`.
    pub jitter: Duration,
    /// Stop injecting after this many faults, so a run can finish. Latency
    /// still applies afterwards.
    pub max_faults: Option<u64>,
}

impl Faults {
    /// A transparent proxy.
    pub fn none() -> Faults {
        Faults {
            seed: 0,
            throttle: 0.0,
            server_error: 0.0,
            drop: 0.0,
            drop_after: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            max_faults: None,
        }
    }

    /// Only a fixed latency per request (the benchmarks use 50 ms).
    pub fn latency(delay: Duration) -> Faults {
        Faults { delay, ..Faults::none() }
    }

    /// A moderate mix: 5% throttling, 3% 5xx, 2% drops before and 2% after
    /// forwarding, up to 20 ms jitter.
    pub fn random(seed: u64) -> Faults {
        Faults {
            seed,
            throttle: 0.05,
            server_error: 0.03,
            drop: 0.02,
            drop_after: 0.02,
            jitter: Duration::from_millis(20),
            ..Faults::none()
        }
    }
}

/// Counts since the proxy started (not reset by [`FaultProxy::set_faults`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// TCP connections accepted: with keep-alive working, far fewer than requests.
    pub connections: u64,
    /// Requests received (each gets one line in the log).
    pub requests: u64,
    /// Requests sent to the upstream, including those of `dropped_after`.
    pub forwarded: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub dropped: u64,
    pub dropped_after: u64,
    /// Requests answered 502 because the upstream could not be reached (not
    /// an injected fault).
    pub bad_gateway: u64,
}

impl ProxyStats {
    /// Faults injected, of all kinds.
    pub fn faults(&self) -> u64 {
        self.throttled + self.server_errors + self.dropped + self.dropped_after
    }
}

/// The proxy, on 127.0.0.1 and a free port with its own thread and tokio
/// runtime; it stops when dropped, closing the connections still open.
pub struct FaultProxy {
    shared: Arc<Shared>,
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Proxies to `upstream_url` (`http://host:port`, optionally with a path
    /// prefix); accepts connections as soon as it returns.
    pub fn start(upstream_url: &str, kind: Upstream, faults: Faults) -> FaultProxy {
        let upstream: Uri = upstream_url.parse().unwrap_or_else(|e| panic!("bad upstream URL {upstream_url:?}: {e}"));
        assert_eq!(upstream.scheme_str(), Some("http"), "the fault proxy forwards to http:// only: {upstream_url}");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for the fault proxy");
        let port = listener.local_addr().expect("the listener's address").port();
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        let shared = Arc::new(Shared {
            upstream: upstream_url.trim_end_matches('/').to_string(),
            kind,
            state: Mutex::new(State::new(faults)),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("faultproxy-{port}"))
            .spawn(move || runtime.block_on(serve(listener, serving, stopped)))
            .expect("a thread for the fault proxy");
        FaultProxy { shared, port, stop: Some(stop), thread: Some(thread) }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces the faults from the next request on, e.g. none for the
    /// converging rerun. The random sequence restarts from `faults.seed` and
    /// `max_faults` counts from zero again; stats and log go on.
    pub fn set_faults(&self, faults: Faults) {
        let mut state = self.shared.state();
        state.rng = SplitMix64(faults.seed);
        state.injected = 0;
        state.faults = faults;
    }

    pub fn stats(&self) -> ProxyStats {
        self.shared.state().stats.clone()
    }

    /// One line per request in order of arrival: method, path, the IAM
    /// `Action` if any, and what happened (`in flight` until decided). No
    /// times or ids, so two runs with one seed give equal logs.
    pub fn log(&self) -> Vec<String> {
        self.shared
            .state()
            .log
            .iter()
            .map(|(request, outcome)| format!("{request} -> {}", outcome.as_deref().unwrap_or("in flight")))
            .collect()
    }

    /// [`KubeApi::kubeconfig`], its server this proxy.
    pub fn kubeconfig(&self, api: &KubeApi, context: &str) -> String {
        with_server(&api.kubeconfig(context), &self.url())
    }

    /// Writes [`FaultProxy::kubeconfig`] to `dir/kubeconfig` and returns its path.
    pub fn write_kubeconfig(&self, api: &KubeApi, dir: &Path, context: &str) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(&path, self.kubeconfig(api, context))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A kubeconfig's text with every cluster's `server:` replaced by `server`
/// (kubeconfigs written by [`KubeApi`] have one `server: URL` line per cluster).
pub fn with_server(kubeconfig: &str, server: &str) -> String {
    kubeconfig
        .lines()
        .map(|line| match line.find("server:") {
            Some(at) if line[..at].trim().is_empty() => format!("{}server: {server}\n", &line[..at]),
            _ => format!("{line}\n"),
        })
        .collect()
}

struct Shared {
    /// Without a trailing slash; request paths are appended.
    upstream: String,
    kind: Upstream,
    state: Mutex<State>,
}

impl Shared {
    /// A panic in a test thread must not take the proxy down too.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct State {
    faults: Faults,
    rng: SplitMix64,
    /// Faults injected since the last `set_faults`, for `max_faults`.
    injected: u64,
    stats: ProxyStats,
    /// The request and, once known, what happened to it.
    log: Vec<(String, Option<String>)>,
}

impl State {
    fn new(faults: Faults) -> State {
        State { rng: SplitMix64(faults.seed), faults, injected: 0, stats: ProxyStats::default(), log: Vec::new() }
    }

    /// Draws this request's fate and latency. Always two draws, whatever the
    /// outcome, so that the sequence depends only on the seed and the number
    /// of requests before, not on what happened to them.
    fn decide(&mut self) -> (Fate, Duration) {
        let roll = self.rng.next_f64();
        let jitter = self.faults.jitter.mul_f64(self.rng.next_f64());
        let f = &self.faults;
        let exhausted = f.max_faults.is_some_and(|max| self.injected >= max);
        let mut fate = Fate::Forward;
        if !exhausted {
            let mut threshold = 0.0;
            for (p, candidate) in [
                (f.throttle, Fate::Throttle),
                (f.server_error, Fate::ServerError),
                (f.drop, Fate::Drop),
                (f.drop_after, Fate::DropAfter),
            ] {
                threshold += p;
                if roll < threshold {
                    fate = candidate;
                    break;
                }
            }
        }
        if fate != Fate::Forward {
            self.injected += 1;
        }
        (fate, f.delay + jitter)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Forward,
    Throttle,
    ServerError,
    Drop,
    DropAfter,
}

/// splitmix64: tiny, seedable, good enough for choosing faults.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1): the top 53 bits as a double's mantissa.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;
type UpstreamClient = Client<HttpConnector, Full<Bytes>>;

/// Accepts connections until told to stop; dropping the runtime afterwards
/// ends the connections still open.
async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
    // One pooled client for all downstream connections: upstream connections
    // are kept alive too, as a real load balancer's are.
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let client: UpstreamClient = Client::builder(TokioExecutor::new()).build(connector);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                shared.state().stats.connections += 1;
                tokio::spawn(serve_connection(stream, shared.clone(), client.clone()));
            }
        }
    }
}

/// Serves one downstream connection (keep-alive: many requests) until the
/// client closes it or a request's fate is to drop it.
async fn serve_connection(stream: tokio::net::TcpStream, shared: Arc<Shared>, client: UpstreamClient) {
    // A handler that drops the connection notifies this and never answers;
    // the `select!` below then drops the connection, closing the socket
    // with the request unanswered, as a crashed or reset server does.
    let kill = Arc::new(Notify::new());
    let handler_kill = kill.clone();
    let service =
        hyper::service::service_fn(move |req| handle(shared.clone(), client.clone(), handler_kill.clone(), req));
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        _ = kill.notified() => {}
    }
}

async fn handle(
    shared: Arc<Shared>,
    client: UpstreamClient,
    kill: Arc<Notify>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let (parts, body) = req.into_parts();
    // Request bodies are small (IAM forms, Kubernetes objects) and must be
    // read anyway to log the IAM Action, so they are buffered; answers are
    // streamed.
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => return Ok(plain(StatusCode::BAD_REQUEST, format!("fault proxy: cannot read the request body: {e}"))),
    };
    let mut request = format!("{} {}", parts.method, parts.uri.path());
    if shared.kind == Upstream::Iam
        && let Some(action) = iam_action(parts.uri.query().unwrap_or("").as_bytes()).or_else(|| iam_action(&body))
    {
        request.push_str(&format!(" Action={action}"));
    }

    let (index, fate, delay) = {
        let mut state = shared.state();
        let (fate, delay) = state.decide();
        state.stats.requests += 1;
        state.log.push((request, None));
        (state.log.len() - 1, fate, delay)
    };
    let outcome = |text: String, count: fn(&mut ProxyStats)| {
        let mut state = shared.state();
        count(&mut state.stats);
        state.log[index].1 = Some(text);
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }

    match fate {
        Fate::Throttle => {
            let response = throttling(shared.kind, index);
            outcome(format!("throttled {}", response.status().as_u16()), |s| s.throttled += 1);
            return Ok(response);
        }
        Fate::ServerError => {
            let response = server_error(shared.kind, index);
            outcome(format!("server error {}", response.status().as_u16()), |s| s.server_errors += 1);
            return Ok(response);
        }
        Fate::Drop => {
            outcome("dropped before forwarding".to_string(), |s| s.dropped += 1);
            kill.notify_one();
            return std::future::pending().await;
        }
        Fate::Forward | Fate::DropAfter => {}
    }

    let upstream = match forward(&shared.upstream, &client, parts, body).await {
        Ok(response) => response,
        Err(e) => {
            outcome(format!("upstream unreachable, 502: {e}"), |s| s.bad_gateway += 1);
            return Ok(plain(
                StatusCode::BAD_GATEWAY,
                format!("fault proxy: upstream {} unreachable: {e}\n", shared.upstream),
            ));
        }
    };
    let status = upstream.status().as_u16();
    if fate == Fate::DropAfter {
        // Read the whole answer first, so the upstream has surely finished
        // applying the request before the client loses the connection.
        let (_, body) = upstream.into_parts();
        let _ = body.collect().await;
        outcome(format!("forwarded {status}, then dropped"), |s| {
            s.forwarded += 1;
            s.dropped_after += 1;
        });
        kill.notify_one();
        return std::future::pending().await;
    }
    outcome(format!("forwarded {status}"), |s| s.forwarded += 1);
    let (mut parts, body) = upstream.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, body.boxed()))
}

/// Sends the request on to the upstream with its method, path, query,
/// headers (less hop-by-hop ones) and body. The `Host` header is kept as the
/// client sent it: AWS signatures cover it, and a transparent proxy must not
/// break them.
async fn forward(
    upstream: &str,
    client: &UpstreamClient,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<Response<Incoming>, String> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri: Uri = format!("{upstream}{path}").parse().map_err(|e| format!("bad upstream URI: {e}"))?;
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = parts.method;
    *request.uri_mut() = uri;
    *request.headers_mut() = parts.headers;
    strip_hop_by_hop(request.headers_mut());
    client.request(request).await.map_err(|e| {
        // The legacy client's own error says little ("client error
        // (Connect)"); its source says why.
        match std::error::Error::source(&e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        }
    })
}

/// Removes the headers that describe one hop's connection (RFC 9110 §7.6.1),
/// including those the `Connection` header names: each side of the proxy
/// has its own connection and framing.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// The `Action` of an AWS query request (form body or query string).
fn iam_action(form: &[u8]) -> Option<String> {
    let form = std::str::from_utf8(form).ok()?;
    form.split('&').find_map(|pair| pair.strip_prefix("Action=")).filter(|a| !a.is_empty()).map(str::to_string)
}

/// IAM answers throttling with 400 (a sender error) and code `Throttling`;
/// Kubernetes' API server with 429, reason `TooManyRequests` and a
/// `Retry-After` in seconds.
fn throttling(kind: Upstream, index: usize) -> Response<ProxyBody> {
    match kind {
        Upstream::Iam => iam_error(StatusCode::BAD_REQUEST, "Sender", "Throttling", "Rate exceeded", index),
        Upstream::Kube => {
            let mut response = kube_status(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests, please try again later.",
                Some(1),
            );
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

fn server_error(kind: Upstream, index: usize) -> Response<ProxyBody> {
    match kind {
        Upstream::Iam => iam_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Receiver",
            "ServiceUnavailable",
            "Service is unable to handle request.",
            index,
        ),
        Upstream::Kube => kube_status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
            None,
        ),
    }
}

/// An AWS query protocol error as IAM sends it, with a request id that
/// depends only on the request's place in the log.
fn iam_error(status: StatusCode, kind: &str, code: &str, message: &str, index: usize) -> Response<ProxyBody> {
    let mut ids = SplitMix64(index as u64);
    let (a, b) = (ids.next_u64(), ids.next_u64());
    let request_id = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    );
    let body = format!(
        "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{code}</Code>\n    <Message>{message}</Message>\n  </Error>\n  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n"
    );
    let mut response = full(status, body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// A `metav1.Status` failure as the API server writes it.
fn kube_status(status: StatusCode, reason: &str, message: &str, retry_after: Option<u64>) -> Response<ProxyBody> {
    let mut body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": status.as_u16(),
    });
    if let Some(seconds) = retry_after {
        body["details"] = serde_json::json!({"retryAfterSeconds": seconds});
    }
    let mut response = full(status, body.to_string());
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The proxy's own answers (502, unreadable request): plain text.
fn plain(status: StatusCode, text: String) -> Response<ProxyBody> {
    let mut response = full(status, text);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn full(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response
}
