//! Stacks of several clusters (`[clusters.<key>]`), end to end: the built
//! CLI against moto and two clusters at once, `blue` and `green`.
//!
//! Each scenario runs against two Kubernetes test API servers (each its
//! own issuer, webhook and controllers, one kubeconfig with a context for
//! each), and again against two real clusters with `cargo test --
//! --ignored`: `KUBECONFIG` with both contexts, `IRSA_TEST_CONTEXT` for
//! blue and `IRSA_TEST_SECOND_CONTEXT` for green (IAM stays on moto; the
//! issuers are discovered). As in `cluster.rs`, a real-cluster scenario
//! works in a fresh namespace of its own, made in both clusters and deleted
//! at the end, as a stack named like that namespace.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::kubeapi::KubeApi;
use crate::support::{Moto, plan_shape as shape, run_irsa_owned_env};
use crate::world::{Cluster, wait_for};

const BLUE: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/BLUE";
const GREEN: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/GREEN";
const ACCOUNT: &str = "123456789012";
/// The owned role of the scenarios, and what its ServiceAccounts are annotated with.
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/app";

/// Two clusters of one stack, each reached through its own context of one kubeconfig.
struct Pair {
    blue: Cluster,
    green: Cluster,
    kubeconfig: PathBuf,
    /// The contexts of blue and green, as the stack file names them.
    contexts: [String; 2],
    /// What each cluster's discovery document names as issuer.
    issuers: [String; 2],
    /// The scenario's namespace, the same in both clusters (the lock's too).
    namespace: String,
    stack_name: String,
    dir: tempfile::TempDir,
}

impl Pair {
    fn test_servers() -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let (blue, green) = (KubeApi::start(), KubeApi::start());
        blue.set_issuer(BLUE);
        green.set_issuer(GREEN);
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, KubeApi::kubeconfig_of(&[(&blue, "blue"), (&green, "green")])).unwrap();
        // As on a real cluster, controllers rewrite the Deployments' status
        // all the time: every read irsa makes is stale a moment later.
        for server in [&blue, &green] {
            server.set_status_churn(Some(Duration::from_millis(25)));
        }
        let ns = "backend".to_owned();
        let cluster = |server, context: &str| {
            let own = tempfile::tempdir().unwrap();
            Cluster::with(Some(server), kubeconfig.clone(), Some(context.into()), ns.clone(), "shop".into(), own)
        };
        let (blue, green) = (cluster(blue, "blue"), cluster(green, "green"));
        Pair {
            blue,
            green,
            kubeconfig: kubeconfig.clone(),
            contexts: ["blue".into(), "green".into()],
            issuers: [BLUE.into(), GREEN.into()],
            namespace: ns,
            stack_name: "shop".into(),
            dir,
        }
    }

    /// The two real clusters the kubeconfig's contexts `IRSA_TEST_CONTEXT`
    /// (blue) and `IRSA_TEST_SECOND_CONTEXT` (green) point at.
    fn real() -> Pair {
        static SCENARIOS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let need = |var: &str| {
            std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
                panic!(
                    "set KUBECONFIG, IRSA_TEST_CONTEXT and IRSA_TEST_SECOND_CONTEXT (two contexts of that kubeconfig, \
                     for two different clusters) to run the two-cluster tests; {var} is not set"
                )
            })
        };
        let kubeconfig = PathBuf::from(need("KUBECONFIG"));
        let contexts = [need("IRSA_TEST_CONTEXT"), need("IRSA_TEST_SECOND_CONTEXT")];
        let urls = contexts.clone().map(|context| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let kc = kube::config::Kubeconfig::read_from(&kubeconfig)
                .unwrap_or_else(|e| panic!("cannot read KUBECONFIG {}: {e}", kubeconfig.display()));
            let options = kube::config::KubeConfigOptions { context: Some(context.clone()), ..Default::default() };
            let config = rt
                .block_on(kube::Config::from_custom_kubeconfig(kc, &options))
                .unwrap_or_else(|e| panic!("context {context} of {}: {e}", kubeconfig.display()));
            config.cluster_url.to_string()
        });
        assert_ne!(
            urls[0], urls[1],
            "IRSA_TEST_CONTEXT and IRSA_TEST_SECOND_CONTEXT point at one cluster ({}): the tests need two",
            urls[0]
        );
        let n = SCENARIOS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let namespace = format!("irsa-it2-{}-{n}", std::process::id());
        let cluster = |context: &str| {
            let own = tempfile::tempdir().unwrap();
            Cluster::with(None, kubeconfig.clone(), Some(context.into()), namespace.clone(), namespace.clone(), own)
        };
        let (blue, green) = (cluster(&contexts[0]), cluster(&contexts[1]));
        let issuers = [discovered_issuer(&blue), discovered_issuer(&green)];
        Pair { blue, green, kubeconfig, contexts, issuers, namespace: namespace.clone(), stack_name: namespace, dir: tempfile::tempdir().unwrap() }
    }

    fn both(&self) -> [&Cluster; 2] {
        [&self.blue, &self.green]
    }

    fn advance(&self, seconds: u64) {
        match (&self.blue.server, &self.green.server) {
            (Some(b), Some(g)) => {
                b.advance_clock(Duration::from_secs(seconds));
                g.advance_clock(Duration::from_secs(seconds));
            }
            _ => std::thread::sleep(Duration::from_secs(seconds.min(2))),
        }
    }

    fn has_webhook(&self) -> bool {
        self.blue.has_webhook() && self.green.has_webhook()
    }

    /// `issuer host/path` of blue (0) or green (1), as IAM names providers.
    fn host_path(&self, i: usize) -> &str {
        self.issuers[i].trim_start_matches("https://")
    }

    fn provider_arn(&self, i: usize) -> String {
        format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{}", self.host_path(i))
    }

    fn lease(&self) -> String {
        format!("irsa-{}", self.stack_name)
    }

    /// The Sid of the stack's trust statement for cluster `key`.
    fn sid(&self, key: &str) -> String {
        let stack: String = self.stack_name.chars().filter(char::is_ascii_alphanumeric).collect();
        format!("Irsa{stack}In{key}")
    }

    /// A stack file of the clusters `keys` (of `blue`, `green`) and `body`
    /// (roles and bindings; `{ns}` stands for the scenario's namespace).
    /// On real clusters the issuers are left out: irsa discovers them.
    fn stack(&self, keys: &[&str], body: &str) -> String {
        let mut text = format!("version = 1\n[stack]\nname = \"{}\"\n", self.stack_name);
        for key in keys {
            let i = usize::from(*key == "green");
            text.push_str(&format!(
                "[clusters.{key}]\nname = \"eks-{key}\"\nregion = \"us-east-1\"\naccount_id = \"{ACCOUNT}\"\ncontext = \"{}\"\n",
                self.contexts[i]
            ));
            if self.blue.server.is_some() {
                text.push_str(&format!("oidc_issuer = \"{}\"\n", self.issuers[i]));
            }
        }
        text.push_str(&body.replace("{ns}", &self.namespace));
        let path = self.dir.path().join("shop.toml");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// The arguments of an irsa run against both clusters: the kubeconfig
    /// (each cluster's context comes from the stack file); an apply keeps
    /// its lock in the scenario's namespace and, unless told, does not wait
    /// for IAM to settle.
    fn args(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend(["--kubeconfig".into(), self.kubeconfig.to_str().unwrap().to_owned()]);
        if args[0] == "apply" || args[0] == "destroy" {
            all.extend(["--lock-namespace".into(), self.namespace.clone()]);
            if !args.contains(&"--iam-settle-seconds") {
                all.extend(["--iam-settle-seconds".into(), "0".into()]);
            }
        }
        all
    }

    fn irsa(&self, moto: &Moto, args: &[&str]) -> (i32, String, String) {
        let all = self.args(args);
        moto.irsa(&all.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn spawn(&self, moto: &Moto, args: &[&str]) -> std::thread::JoinHandle<(i32, String, String)> {
        let (all, env) = (self.args(args), moto.env());
        std::thread::spawn(move || run_irsa_owned_env(&all.iter().map(String::as_str).collect::<Vec<_>>(), &env))
    }

    fn plan_json(&self, moto: &Moto, stack: &str) -> Value {
        let (code, stdout, stderr) = self.irsa(moto, &["plan", stack, "--format", "json"]);
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str(&stdout).unwrap()
    }

    /// The next plan has nothing to do (and, where pods get their role
    /// from a webhook, nothing to warn about).
    fn no_changes(&self, moto: &Moto, stack: &str) {
        let plan = self.plan_json(moto, stack);
        assert_eq!(shape(&plan), Vec::<String>::new(), "{plan:#}");
        if self.has_webhook() {
            assert_eq!(plan["warnings"], json!([]), "{plan:#}");
        }
    }

    /// The stack's Lease in `c`, if any.
    fn lease_in(&self, c: &Cluster) -> Option<Lease> {
        let leases: Api<Lease> = Api::namespaced(c.client.clone(), &self.namespace);
        c.rt.block_on(leases.get_opt(&self.lease())).unwrap()
    }
}

/// What the cluster's `/.well-known/openid-configuration` names as issuer.
fn discovered_issuer(c: &Cluster) -> String {
    let request = http::Request::get("/.well-known/openid-configuration").body(Vec::new()).unwrap();
    let text = c.rt.block_on(c.client.request_text(request)).expect("the cluster serves OIDC discovery");
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["issuer"].as_str().expect("the discovery document names an issuer").to_owned()
}

/// One owned role bound in `clusters` (a TOML array), for the Deployment `backend`.
fn shared_app(clusters: &str) -> String {
    format!(
        r#"[roles.app]
policies = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
[[service_accounts]]
clusters = {clusters}
namespace = "{{ns}}"
name = "app"
role = "app"
workloads = ["deployment/backend"]
"#
    )
}

fn decode(doc: &str) -> Value {
    let text = if doc.trim_start().starts_with('{') {
        doc.to_owned()
    } else {
        percent_encoding::percent_decode_str(doc).decode_utf8().unwrap().into_owned()
    };
    serde_json::from_str(&text).unwrap()
}

/// The statements of `role`'s trust policy as IAM holds it.
fn trust_statements(moto: &Moto, role: &str) -> Vec<Value> {
    let got = moto.block_on(moto.iam.get_role().role_name(role).send()).unwrap();
    let trust = decode(got.role().unwrap().assume_role_policy_document().unwrap());
    trust["Statement"].as_array().cloned().unwrap_or_default()
}

fn sids(statements: &[Value]) -> Vec<&str> {
    statements.iter().filter_map(|s| s["Sid"].as_str()).collect()
}

/// The providers IAM holds: (URL without scheme, tags).
fn providers(moto: &Moto) -> Vec<(String, Vec<(String, String)>)> {
    let list = moto.block_on(moto.iam.list_open_id_connect_providers().send()).unwrap();
    let mut out: Vec<_> = list
        .open_id_connect_provider_list()
        .iter()
        .map(|p| {
            let got = moto
                .block_on(moto.iam.get_open_id_connect_provider().open_id_connect_provider_arn(p.arn().unwrap()).send())
                .unwrap();
            let url = got.url().unwrap_or_default().trim_start_matches("https://").to_owned();
            let tags = got.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
            (url, tags)
        })
        .collect();
    out.sort();
    out
}

/// Each Sid names its cluster's provider and the ServiceAccount there.
fn assert_statement_of(p: &Pair, statement: &Value, i: usize, sa: &str) {
    let key = ["blue", "green"][i];
    assert_eq!(statement["Sid"], p.sid(key), "{statement:#}");
    assert_eq!(statement["Principal"]["Federated"], json!([p.provider_arn(i)]), "{statement:#}");
    let conditions = &statement["Condition"]["StringEquals"];
    let host = p.host_path(i);
    assert_eq!(
        conditions[format!("{host}:sub")],
        json!([format!("system:serviceaccount:{}:{sa}", p.namespace)]),
        "{statement:#}"
    );
    assert_eq!(conditions[format!("{host}:aud")], json!(["sts.amazonaws.com"]), "{statement:#}");
}

/// The backend Deployment in both clusters, running as `default`, then the
/// shared-role stack applied in one run: the state later scenarios start from.
fn applied_in_both(p: &Pair, moto: &Moto) -> String {
    for c in p.both() {
        c.deployment(None);
    }
    p.advance(60);
    let stack = p.stack(&["blue", "green"], &shared_app(r#"["blue", "green"]"#));
    let (code, _, stderr) = p.irsa(moto, &["apply", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    p.advance(60);
    stack
}

fn one_apply_serves_both_clusters(p: &Pair) {
    let moto = Moto::start();
    for c in p.both() {
        c.deployment(None);
    }
    p.advance(60);
    let stack = p.stack(&["blue", "green"], &shared_app(r#"["blue", "green"]"#));
    // IAM waits to settle after the trust is written: the moment to look at the locks.
    let run = p.spawn(&moto, &["apply", &stack, "--auto-approve", "--iam-settle-seconds", "3"]);
    wait_for(|| p.both().iter().all(|c| p.lease_in(c).is_some()));
    for c in p.both() {
        let lease = p.lease_in(c).unwrap();
        let holder = lease.spec.and_then(|s| s.holder_identity).unwrap_or_default();
        assert!(holder.starts_with("irsa@"), "{holder}");
    }
    let (code, stdout, stderr) = run.join().unwrap();
    assert_eq!(code, 0, "{stderr}");
    let ns = &p.namespace;
    for line in [
        "+ oidc/blue".to_owned(),
        "+ oidc/green".to_owned(),
        "+ role/app".to_owned(),
        format!("+ sa/blue/{ns}/app"),
        format!("+ sa/green/{ns}/app"),
        format!("~ deploy/blue/{ns}/backend"),
        format!("~ deploy/green/{ns}/backend"),
    ] {
        assert!(stdout.contains(&line), "{line} not in {stdout}");
    }
    for c in p.both() {
        assert!(p.lease_in(c).is_none(), "the lock is released in every cluster");
    }

    // IAM: a provider per cluster, each the stack's, and one role trusting both.
    let got = providers(&moto);
    let want: Vec<String> = vec![p.host_path(0).into(), p.host_path(1).into()];
    assert_eq!(got.iter().map(|(url, _)| url.clone()).collect::<Vec<_>>(), want);
    for (url, tags) in &got {
        assert!(tags.contains(&("irsa:managed-by".into(), "irsa".into())), "{url}: {tags:?}");
        assert!(tags.contains(&("irsa:stack".into(), p.stack_name.clone())), "{url}: {tags:?}");
    }
    let statements = trust_statements(&moto, "app");
    assert_eq!(statements.len(), 2, "{statements:#?}");
    assert_statement_of(p, &statements[0], 0, "app");
    assert_statement_of(p, &statements[1], 1, "app");

    // Each cluster: the ServiceAccount annotated, the Deployment running as it.
    for c in p.both() {
        let sa = c.sa("app").expect("the service account exists in each cluster");
        let annotations = sa.metadata.annotations.unwrap_or_default();
        assert_eq!(annotations.get("eks.amazonaws.com/role-arn").map(String::as_str), Some(ROLE_ARN));
        assert_eq!(annotations.get("irsa.dev/stack"), Some(&p.stack_name));
        let d = c.get_deployment();
        assert_eq!(d.spec.template.spec.unwrap().service_account_name.as_deref(), Some("app"));
    }
    if p.has_webhook() {
        // The new pods are made after the annotation: the webhook gives them the role.
        for c in p.both() {
            assert!(c.wait_rolled_out(Duration::from_secs(30)));
            let pods = c.pods();
            assert!(!pods.is_empty());
            for pod in pods {
                let spec = pod.spec.unwrap();
                assert_eq!(spec.service_account_name.as_deref(), Some("app"));
                let env = spec.containers[0].env.clone().unwrap_or_default();
                let role = env.iter().find(|e| e.name == "AWS_ROLE_ARN").and_then(|e| e.value.as_deref());
                assert_eq!(role, Some(ROLE_ARN), "{:?}", pod.metadata.name);
            }
        }
    }
    p.advance(60);
    let (code, stdout, stderr) = p.irsa(&moto, &["plan", &stack, "--detailed-exitcode"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("No changes."), "{stdout}");
}

#[test]
fn one_apply_creates_a_provider_per_cluster_and_a_statement_for_each() {
    one_apply_serves_both_clusters(&Pair::test_servers());
}

#[test]
#[ignore = "needs two clusters"]
fn one_apply_creates_a_provider_per_cluster_and_a_statement_for_each_on_real_clusters() {
    one_apply_serves_both_clusters(&Pair::real());
}
