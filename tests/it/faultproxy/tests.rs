//! Tests of the fault proxy, through the real clients irsa uses: aws-sdk-iam
//! against moto and kube against [`KubeApi`]. They also record how those
//! clients' own retries react to each fault, which decides what irsa must
//! handle itself:
//!
//! - aws-sdk-iam (standard retry mode): retries throttling, 5xx and dropped
//!   connections, so a drop *after* forwarding makes it send a write twice
//!   (`CreateRole` then fails with `EntityAlreadyExists` though the role was
//!   created by the first attempt).
//! - kube 5 (`Config::default_retry`, on for clients built from a
//!   kubeconfig): retries 429 (honouring `Retry-After`), 503 and 504, up to
//!   15 times, but not dropped connections: those reach the caller as
//!   errors, whether or not the write was applied.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::operation::RequestId;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::{FaultProxy, Faults, ProxyStats, Upstream, with_server};
use crate::kubeapi::KubeApi;
use crate::support::Moto;

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// An IAM client as irsa configures one (standard retry mode, 5 attempts),
/// pointed at `endpoint`.
fn iam_client(endpoint: &str, max_attempts: u32) -> aws_sdk_iam::Client {
    let creds = aws_sdk_iam::config::Credentials::new("testing", "testing", None, None, "tests");
    let config = aws_sdk_iam::config::Builder::new()
        .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
        .region(aws_sdk_iam::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_iam::config::retry::RetryConfig::standard().with_max_attempts(max_attempts))
        .build();
    aws_sdk_iam::Client::from_conf(config)
}

/// A kube client as irsa builds one: from a kubeconfig file and a context,
/// here the proxy's.
async fn kube_client(proxy: &FaultProxy, api: &KubeApi) -> kube::Client {
    let dir = tempfile::tempdir().unwrap();
    let path = proxy.write_kubeconfig(api, dir.path(), "proxied");
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let options = KubeConfigOptions { context: Some("proxied".into()), ..Default::default() };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.unwrap();
    assert_eq!(config.cluster_url.to_string(), format!("{}/", proxy.url()));
    assert!(config.default_retry, "kube clients from a kubeconfig retry by default");
    kube::Client::try_from(config).unwrap()
}

fn namespace(name: &str) -> Namespace {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
}

async fn create_role(iam: &aws_sdk_iam::Client, name: &str) -> Result<(), String> {
    iam.create_role().role_name(name).assume_role_policy_document(TRUST).send().await.map(|_| ()).map_err(|e| {
        let e = e.into_service_error();
        format!("{}: {}", e.code().unwrap_or("no code"), e.message().unwrap_or(""))
    })
}

/// One request on a fresh connection, bypassing any client: the raw answer.
fn raw(url: &str, request: &[u8]) -> String {
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// What kube returns for a connection closed without an answer:
/// `Service(hyper_util…Error(SendRequest, hyper::Error(IncompleteMessage)))`.
fn is_incomplete_message<T>(result: &Result<T, kube::Error>) -> bool {
    match result {
        Err(kube::Error::Service(e)) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
            while let Some(e) = source {
                if e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_incomplete_message) {
                    return true;
                }
                source = e.source();
            }
            false
        }
        _ => false,
    }
}

fn outcomes(log: &[String]) -> Vec<&str> {
    log.iter().map(|line| line.split_once(" -> ").map_or("", |(_, outcome)| outcome)).collect()
}

#[test]
fn forwards_iam_calls_and_keeps_connections_alive() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint, Upstream::Iam, Faults::none());
    let iam = iam_client(&proxy.url(), 5);
    moto.block_on(async {
        create_role(&iam, "backend").await.unwrap();
        create_role(&iam, "frontend").await.unwrap();
        let roles = iam.list_roles().send().await.unwrap();
        let mut names: Vec<&str> = roles.roles().iter().map(|r| r.role_name()).collect();
        names.sort_unstable();
        assert_eq!(names, ["backend", "frontend"]);
    });
    let stats = proxy.stats();
    assert_eq!(stats, ProxyStats { connections: 1, requests: 3, forwarded: 3, ..ProxyStats::default() });
    assert_eq!(
        proxy.log(),
        [
            "POST / Action=CreateRole -> forwarded 200",
            "POST / Action=CreateRole -> forwarded 200",
            "POST / Action=ListRoles -> forwarded 200",
        ]
    );
}

#[test]
fn forwards_kube_calls_and_keeps_connections_alive() {
    let api = KubeApi::start();
    let proxy = FaultProxy::start(&api.url(), Upstream::Kube, Faults::none());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = kube_client(&proxy, &api).await;
        let namespaces: Api<Namespace> = Api::all(client);
        namespaces.create(&PostParams::default(), &namespace("team-a")).await.unwrap();
        let got = namespaces.get("team-a").await.unwrap();
        assert_eq!(got.metadata.name.as_deref(), Some("team-a"));
        let all = namespaces.list(&ListParams::default()).await.unwrap();
        assert!(all.items.iter().any(|n| n.metadata.name.as_deref() == Some("team-a")));
    });
    assert_eq!(api.requests(), 3);
    assert_eq!(proxy.stats(), ProxyStats { connections: 1, requests: 3, forwarded: 3, ..ProxyStats::default() });
    assert_eq!(
        proxy.log(),
        [
            "POST /api/v1/namespaces -> forwarded 201",
            "GET /api/v1/namespaces/team-a -> forwarded 200",
            "GET /api/v1/namespaces -> forwarded 200",
        ]
    );
}

#[test]
fn the_sdk_retries_throttling() {
    let moto = Moto::start();
    let faults = Faults { throttle: 1.0, max_faults: Some(2), ..Faults::none() };
    let proxy = FaultProxy::start(&moto.endpoint, Upstream::Iam, faults);
    let iam = iam_client(&proxy.url(), 5);
    moto.block_on(create_role(&iam, "backend")).unwrap();
    let stats = proxy.stats();
    assert_eq!((stats.throttled, stats.faults(), stats.forwarded), (2, 2, 1));
    assert_eq!(
        proxy.log(),
        [
            "POST / Action=CreateRole -> throttled 400",
            "POST / Action=CreateRole -> throttled 400",
            "POST / Action=CreateRole -> forwarded 200",
        ]
    );
}

#[test]
fn the_sdk_retries_server_errors_and_drops_before_forwarding() {
    let moto = Moto::start();
    let faults = Faults { server_error: 1.0, max_faults: Some(1), ..Faults::none() };
    let proxy = FaultProxy::start(&moto.endpoint, Upstream::Iam, faults);
    let iam = iam_client(&proxy.url(), 5);
    moto.block_on(create_role(&iam, "backend")).unwrap();
    proxy.set_faults(Faults { drop: 1.0, max_faults: Some(1), ..Faults::none() });
    moto.block_on(create_role(&iam, "frontend")).unwrap();
    assert_eq!(
        proxy.log(),
        [
            "POST / Action=CreateRole -> server error 503",
            "POST / Action=CreateRole -> forwarded 200",
            "POST / Action=CreateRole -> dropped before forwarding",
            "POST / Action=CreateRole -> forwarded 200",
        ]
    );
    let stats = proxy.stats();
    assert_eq!((stats.server_errors, stats.dropped, stats.forwarded), (1, 1, 2));
    // The SDK closes a connection after a transient error (a 5xx or a drop;
    // not throttling) rather than reuse it: "connection poisoning".
    assert_eq!(stats.connections, 3);
}

/// The nasty case: the role is created, the answer lost, and the SDK's retry
/// of the CreateRole fails because the role now exists.
#[test]
fn drop_after_forwarding_applies_the_request_and_the_sdk_retries_it() {
    let moto = Moto::start();
    let faults = Faults { drop_after: 1.0, max_faults: Some(1), ..Faults::none() };
    let proxy = FaultProxy::start(&moto.endpoint, Upstream::Iam, faults);
    let iam = iam_client(&proxy.url(), 5);
    let result = moto.block_on(create_role(&iam, "backend"));
    let error = result.expect_err("the retried CreateRole finds the role the first attempt made");
    assert!(error.starts_with("EntityAlreadyExists"), "{error}");
    assert_eq!(
        proxy.log(),
        ["POST / Action=CreateRole -> forwarded 200, then dropped", "POST / Action=CreateRole -> forwarded 409",]
    );
    let role = moto.block_on(moto.iam.get_role().role_name("backend").send()).unwrap();
    assert_eq!(role.role().map(|r| r.role_name()), Some("backend"));
    assert_eq!(proxy.stats().dropped_after, 1);
}

/// One client request at a time, no SDK retries: the proxy sees the same
/// request sequence, so one seed gives one fault sequence.
#[test]
fn a_seed_fixes_the_fault_sequence() {
    let moto = Moto::start();
    let faults = |seed| Faults { throttle: 0.2, server_error: 0.2, drop: 0.1, drop_after: 0.1, ..Faults::random(seed) };
    let run = |seed| {
        let proxy = FaultProxy::start(&moto.endpoint, Upstream::Iam, faults(seed));
        let iam = iam_client(&proxy.url(), 1);
        moto.block_on(async {
            for _ in 0..30 {
                let _ = iam.list_roles().send().await;
            }
        });
        (proxy.log(), proxy.stats())
    };
    let (first, stats) = run(7);
    let (second, _) = run(7);
    let (other, _) = run(8);
    assert_eq!(first.len(), 30);
    assert_eq!(outcomes(&first), outcomes(&second));
    assert_ne!(outcomes(&first), outcomes(&other));
    assert!(
        stats.throttled > 0 && stats.server_errors > 0 && stats.dropped > 0 && stats.dropped_after > 0,
        "{stats:?}"
    );
    assert_eq!(stats.requests, 30);
    assert_eq!(stats.forwarded, 30 - stats.throttled - stats.server_errors - stats.dropped);
}

#[test]
fn delay_slows_every_request() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint, Upstream::Iam, Faults::latency(Duration::from_millis(200)));
    let iam = iam_client(&proxy.url(), 5);
    let started = Instant::now();
    moto.block_on(iam.list_roles().send()).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());
}

/// kube retries 503 (and 429) itself: the caller sees only the success.
#[test]
fn kube_retries_server_errors_and_throttling() {
    let api = KubeApi::start();
    let faults = Faults { server_error: 1.0, max_faults: Some(2), ..Faults::none() };
    let proxy = FaultProxy::start(&api.url(), Upstream::Kube, faults);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let namespaces: Api<Namespace> = Api::all(kube_client(&proxy, &api).await);
        namespaces.create(&PostParams::default(), &namespace("team-a")).await.unwrap();
        proxy.set_faults(Faults { throttle: 1.0, max_faults: Some(1), ..Faults::none() });
        namespaces.get("team-a").await.unwrap();
    });
    assert_eq!(
        proxy.log(),
        [
            "POST /api/v1/namespaces -> server error 503",
            "POST /api/v1/namespaces -> server error 503",
            "POST /api/v1/namespaces -> forwarded 201",
            "GET /api/v1/namespaces/team-a -> throttled 429",
            "GET /api/v1/namespaces/team-a -> forwarded 200",
        ]
    );
}

/// kube does not retry a dropped connection, before or after forwarding:
/// the caller gets an error and must find out itself whether the write
/// happened.
#[test]
fn kube_does_not_retry_dropped_connections() {
    let api = KubeApi::start();
    let faults = Faults { drop: 1.0, max_faults: Some(1), ..Faults::none() };
    let proxy = FaultProxy::start(&api.url(), Upstream::Kube, faults);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let namespaces: Api<Namespace> = Api::all(kube_client(&proxy, &api).await);
        let dropped = namespaces.create(&PostParams::default(), &namespace("team-a")).await;
        assert!(is_incomplete_message(&dropped), "{dropped:?}");
        assert!(namespaces.get_opt("team-a").await.unwrap().is_none());

        proxy.set_faults(Faults { drop_after: 1.0, max_faults: Some(1), ..Faults::none() });
        let dropped = namespaces.create(&PostParams::default(), &namespace("team-b")).await;
        assert!(is_incomplete_message(&dropped), "{dropped:?}");
        assert!(namespaces.get_opt("team-b").await.unwrap().is_some(), "the dropped create was applied");
    });
    assert_eq!(
        proxy.log(),
        [
            "POST /api/v1/namespaces -> dropped before forwarding",
            "GET /api/v1/namespaces/team-a -> forwarded 404",
            "POST /api/v1/namespaces -> forwarded 201, then dropped",
            "GET /api/v1/namespaces/team-b -> forwarded 200",
        ]
    );
}

#[test]
fn kube_faults_are_status_objects() {
    let api = KubeApi::start();
    let proxy = FaultProxy::start(&api.url(), Upstream::Kube, Faults { throttle: 1.0, ..Faults::none() });
    let answer = raw(&proxy.url(), b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1\r\n"), "{answer}");
    let body: serde_json::Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "TooManyRequests");
    assert_eq!(body["code"], 429);
}

#[test]
fn iam_faults_are_query_protocol_errors() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint, Upstream::Iam, Faults { server_error: 1.0, ..Faults::none() });
    let iam = iam_client(&proxy.url(), 1);
    let error = moto.block_on(iam.list_roles().send()).unwrap_err().into_service_error();
    assert_eq!(error.code(), Some("ServiceUnavailable"));
    assert!(error.request_id().is_some_and(|id| id.len() == 36), "{error:?}");
    proxy.set_faults(Faults { throttle: 1.0, ..Faults::none() });
    let error = moto.block_on(iam.list_roles().send()).unwrap_err().into_service_error();
    assert_eq!((error.code(), error.message()), (Some("Throttling"), Some("Rate exceeded")));
}

/// No panics: an unreachable upstream gets 502, garbage gets hyper's 400.
#[test]
fn bad_upstream_and_bad_requests_get_answers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let proxy = FaultProxy::start(&format!("http://127.0.0.1:{port}"), Upstream::Iam, Faults::none());
    let answer = raw(
        &proxy.url(),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\nConnection: close\r\n\r\nAction=ListRoles",
    );
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert_eq!(proxy.stats().bad_gateway, 1);
    assert!(proxy.log()[0].starts_with("POST / Action=ListRoles -> upstream unreachable, 502"), "{:?}", proxy.log());

    let answer = raw(&proxy.url(), b"\x00\x01 not http\r\n\r\n");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(proxy.stats().requests, 1);
}

#[test]
fn kubeconfig_servers_are_rewritten() {
    let text =
        "clusters:\n- name: a\n  cluster:\n    server: http://127.0.0.1:1\n    certificate-authority-data: eA==\n";
    assert_eq!(
        with_server(text, "http://127.0.0.1:2"),
        "clusters:\n- name: a\n  cluster:\n    server: http://127.0.0.1:2\n    certificate-authority-data: eA==\n"
    );
}
