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
        let need = |var: &str| {
            std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
                panic!(
                    "set KUBECONFIG, IRSA_TEST_CONTEXT and IRSA_TEST_SECOND_CONTEXT (two contexts of that kubeconfig, \
                     for two different clusters) to run the two-cluster tests; {var} is not set"
                )
            })
        };
        let kubeconfig = PathBuf::from(need("KUBECONFIG"));
        Pair::as_real(kubeconfig, [need("IRSA_TEST_CONTEXT"), need("IRSA_TEST_SECOND_CONTEXT")])
    }

    /// Two clusters treated as real ones: a fresh namespace in each,
    /// deleted at the end, the issuers discovered, no test hooks.
    fn as_real(kubeconfig: PathBuf, contexts: [String; 2]) -> Pair {
        static SCENARIOS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
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
        Pair {
            blue,
            green,
            kubeconfig,
            contexts,
            issuers,
            namespace: namespace.clone(),
            stack_name: namespace,
            dir: tempfile::tempdir().unwrap(),
        }
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
                "[clusters.{key}]\nname = \"eks-{key}\"\nregion = \"us-east-1\"\naccount_id = \"{ACCOUNT}\"\ncontext = {}\n",
                // A JSON string is a TOML basic string: any context name is safe.
                Value::from(self.contexts[i].as_str())
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

/// A statement as IAM reads it: a single `Action` or principal is the same
/// as a list of one (irsa writes the list form back).
fn same_grant(statement: &Value) -> Value {
    let list = |v: &Value| if v.is_string() { json!([v]) } else { v.clone() };
    let mut s = statement.clone();
    s["Action"] = list(&s["Action"]);
    if let Some(principal) = s["Principal"].as_object_mut() {
        for v in principal.values_mut() {
            *v = list(v);
        }
    }
    s
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

fn removing_a_cluster(p: &Pair) {
    let moto = Moto::start();
    applied_in_both(p, &moto);
    let before = trust_statements(&moto, "app");
    // Green is gone from the file: its table, and the bindings there.
    let stack = p.stack(&["blue"], &shared_app(r#"["blue"]"#));
    let plan = p.plan_json(&moto, &stack);
    let green_provider = format!("oidc/{}", p.host_path(1));
    assert_eq!(shape(&plan), [format!("{green_provider} delete"), "role/app update".to_owned()], "{plan:#}");
    let changes = plan["changes"].as_array().unwrap();
    assert_eq!(changes[0]["reasons"], json!(["no cluster of the stack file has this issuer any more"]));
    assert_eq!(changes[1]["changed"], json!(["trust_policy"]));
    let warnings = plan["warnings"].to_string();
    assert!(
        warnings.contains("are not read or removed"),
        "the green ServiceAccounts are left, and said so: {warnings}"
    );

    let (code, _, stderr) = p.irsa(&moto, &["apply", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(providers(&moto).iter().map(|(url, _)| url.as_str()).collect::<Vec<_>>(), [p.host_path(0)]);
    let after = trust_statements(&moto, "app");
    assert_eq!(after, before[..1], "blue's statement stays as it was, and only it");
    // Blue is untouched; green keeps what it had (irsa no longer reads it).
    let sa = p.blue.sa("app").unwrap();
    assert_eq!(sa.metadata.annotations.unwrap()["eks.amazonaws.com/role-arn"], ROLE_ARN);
    assert!(p.green.sa("app").is_some());
    p.advance(60);
    p.no_changes(&moto, &stack);
}

#[test]
fn removing_a_cluster_deletes_its_provider_and_exactly_its_statement() {
    removing_a_cluster(&Pair::test_servers());
}

#[test]
#[ignore = "needs two clusters"]
fn removing_a_cluster_deletes_its_provider_and_exactly_its_statement_on_real_clusters() {
    removing_a_cluster(&Pair::real());
}

/// A role made by hand (`arn =`) whose trust irsa manages beside a statement of someone else's.
fn shared_legacy(clusters: &str) -> String {
    format!(
        r#"[roles.legacy]
arn = "arn:aws:iam::{ACCOUNT}:role/Legacy"
manage_trust = true
[[service_accounts]]
clusters = {clusters}
namespace = "{{ns}}"
name = "legacy"
role = "legacy"
"#
    )
}

fn shared_role_across_clusters(p: &Pair) {
    let moto = Moto::start();
    moto.hand_made_role("Legacy");
    let ec2 = trust_statements(&moto, "Legacy");
    assert_eq!(ec2.len(), 1);
    let stack = p.stack(&["blue", "green"], &shared_legacy(r#"["blue", "green"]"#));
    let (code, _, stderr) = p.irsa(&moto, &["apply", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    let both = trust_statements(&moto, "Legacy");
    assert_eq!(both.len(), 3, "{both:#?}");
    assert_eq!(same_grant(&both[0]), same_grant(&ec2[0]), "the statement made by hand is kept, first, as it was");
    assert_statement_of(p, &both[1], 0, "legacy");
    assert_statement_of(p, &both[2], 1, "legacy");
    for c in p.both() {
        let annotations = c.sa("legacy").unwrap().metadata.annotations.unwrap();
        assert_eq!(annotations["eks.amazonaws.com/role-arn"], format!("arn:aws:iam::{ACCOUNT}:role/Legacy"));
    }
    p.advance(60);
    p.no_changes(&moto, &stack);

    // Green goes: exactly its statement goes with it.
    let stack = p.stack(&["blue"], &shared_legacy(r#"["blue"]"#));
    let plan = p.plan_json(&moto, &stack);
    assert_eq!(shape(&plan), [format!("oidc/{} delete", p.host_path(1)), "role/legacy update".to_owned()]);
    let reasons = plan["changes"][1]["reasons"].to_string();
    assert!(reasons.contains(&format!("{} removed", p.sid("green"))), "{reasons}");
    let (code, _, stderr) = p.irsa(&moto, &["apply", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(trust_statements(&moto, "Legacy"), both[..2]);
    p.advance(60);
    p.no_changes(&moto, &stack);
}

#[test]
fn a_shared_role_gets_a_statement_per_cluster_and_keeps_the_foreign_one() {
    shared_role_across_clusters(&Pair::test_servers());
}

#[test]
#[ignore = "needs two clusters"]
fn a_shared_role_gets_a_statement_per_cluster_and_keeps_the_foreign_one_on_real_clusters() {
    shared_role_across_clusters(&Pair::real());
}

fn snapshot_of_both_clusters(p: &Pair) {
    let moto = Moto::start();
    for c in p.both() {
        c.deployment(None);
    }
    p.advance(60);
    let stack = p.stack(&["blue", "green"], &shared_app(r#"["blue", "green"]"#));
    let snap = p.dir.path().join("snap.json");
    let (code, _, stderr) = p.irsa(&moto, &["refresh", &stack, "--export", snap.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let snapshot: Value = serde_json::from_str(&std::fs::read_to_string(&snap).unwrap()).unwrap();
    let clusters = snapshot["clusters"].as_object().expect("a clusters map");
    assert_eq!(clusters.keys().collect::<Vec<_>>(), ["blue", "green"], "{snapshot:#}");
    for (i, key) in ["blue", "green"].iter().enumerate() {
        assert_eq!(clusters[*key]["oidc_issuer"], p.issuers[i], "{snapshot:#}");
        let deployments = clusters[*key]["deployments"].to_string();
        assert!(deployments.contains("\"backend\""), "{key}: {deployments}");
    }
    assert_eq!(snapshot["cluster"]["oidc_issuer"], Value::Null, "{snapshot:#}");

    let live = p.plan_json(&moto, &stack);
    let (code, stdout, stderr) =
        p.irsa(&moto, &["plan", &stack, "--observed", snap.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let offline: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(offline["refresh"]["kube_requests"], 0);
    assert!(shape(&live).len() > 5, "{live:#}");
    assert_eq!(shape(&offline), shape(&live));
    assert_eq!(offline["changes"], live["changes"], "the same changes, reasons, befores, afters and guards");
    assert_eq!(offline["warnings"], live["warnings"]);

    // A snapshot that lacks a cluster of the file is refused, by name.
    let mut partial = snapshot.clone();
    partial["clusters"].as_object_mut().unwrap().remove("green");
    let partial_path = p.dir.path().join("partial.json");
    std::fs::write(&partial_path, partial.to_string()).unwrap();
    let (code, _, stderr) = p.irsa(&moto, &["plan", &stack, "--observed", partial_path.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("the observed state has no state for [clusters.green]"), "{stderr}");
}

#[test]
fn a_snapshot_of_two_clusters_plans_as_the_live_read_does() {
    snapshot_of_both_clusters(&Pair::test_servers());
}

#[test]
#[ignore = "needs two clusters"]
fn a_snapshot_of_two_clusters_plans_as_the_live_read_does_on_real_clusters() {
    snapshot_of_both_clusters(&Pair::real());
}

fn lock_held_in_the_second_cluster(p: &Pair) {
    let moto = Moto::start();
    for c in p.both() {
        c.deployment(None);
    }
    p.advance(60);
    let stack = p.stack(&["blue", "green"], &shared_app(r#"["blue", "green"]"#));
    // Another apply holds green's lock, for an hour.
    let now = jiff::Timestamp::now().to_string();
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": p.lease(), "namespace": p.namespace},
        "spec": {"holderIdentity": "irsa@other-runner/pid-7/7", "leaseDurationSeconds": 3600,
                 "acquireTime": now, "renewTime": now}
    }))
    .unwrap();
    let leases: Api<Lease> = Api::namespaced(p.green.client.clone(), &p.namespace);
    p.green.rt.block_on(leases.create(&PostParams::default(), &lease)).unwrap();
    if let Some(s) = &p.blue.server {
        s.reset_requests();
    }

    let (code, stdout, stderr) = p.irsa(&moto, &["apply", &stack, "--auto-approve", "--lock-timeout", "1"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "it planned nothing: {stdout}");
    assert!(
        stderr.contains(&format!(
            "stack {} is locked by irsa@other-runner/pid-7/7 (lease {}/{} in cluster green",
            p.stack_name,
            p.namespace,
            p.lease()
        )),
        "{stderr}"
    );
    // Blue's lock was taken first, and given back.
    assert!(p.lease_in(&p.blue).is_none(), "blue's lease is released");
    if let Some(s) = &p.blue.server {
        let log = s.request_log();
        let leases = format!("/apis/coordination.k8s.io/v1/namespaces/{}/leases", p.namespace);
        assert!(log.contains(&format!("POST {leases}")), "{log:#?}");
        assert!(log.contains(&format!("DELETE {leases}/{}", p.lease())), "{log:#?}");
    }
    let green = p.lease_in(&p.green).unwrap().spec.unwrap();
    assert_eq!(green.holder_identity.as_deref(), Some("irsa@other-runner/pid-7/7"), "green's holder keeps it");
    // Nothing was written, in IAM or in either cluster.
    assert!(providers(&moto).is_empty());
    assert!(moto.block_on(moto.iam.get_role().role_name("app").send()).is_err());
    for c in p.both() {
        assert!(c.sa("app").is_none());
        assert_eq!(c.get_deployment().spec.template.spec.unwrap().service_account_name, None);
    }
}

#[test]
fn a_lock_held_in_the_second_cluster_fails_the_apply_and_frees_the_first() {
    lock_held_in_the_second_cluster(&Pair::test_servers());
}

#[test]
#[ignore = "needs two clusters"]
fn a_lock_held_in_the_second_cluster_fails_the_apply_and_frees_the_first_on_real_clusters() {
    lock_held_in_the_second_cluster(&Pair::real());
}

/// The twins' harness, [`Pair::as_real`], run against two test API servers
/// as if they were real clusters (issuers discovered, a fresh namespace and
/// a stack named after it, time passing for real): what the twins do is
/// checked here too, where no two real clusters are at hand.
#[test]
fn the_real_cluster_harness_works_against_two_test_servers() {
    let (blue, green) = (KubeApi::start(), KubeApi::start());
    blue.set_issuer(BLUE);
    green.set_issuer(GREEN);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, KubeApi::kubeconfig_of(&[(&blue, "kind-blue"), (&green, "kind-green")])).unwrap();
    let contexts = || ["kind-blue".to_owned(), "kind-green".to_owned()];
    let p = Pair::as_real(kubeconfig.clone(), contexts());
    assert!(p.stack_name.starts_with("irsa-it2-") && p.issuers == [BLUE, GREEN]);
    removing_a_cluster(&p);
    drop(p);
    lock_held_in_the_second_cluster(&Pair::as_real(kubeconfig, contexts()));
}

fn destroy_in_both_clusters(p: &Pair) {
    let moto = Moto::start();
    let stack = applied_in_both(p, &moto);
    let (code, stdout, stderr) = p.irsa(&moto, &["destroy", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    let ns = &p.namespace;
    for line in [
        "- oidc/blue".to_owned(),
        "- oidc/green".to_owned(),
        format!("- sa/blue/{ns}/app"),
        format!("- sa/green/{ns}/app"),
    ] {
        assert!(stdout.contains(&line), "{line} not in {stdout}");
    }
    assert!(providers(&moto).is_empty());
    assert!(moto.block_on(moto.iam.get_role().role_name("app").send()).is_err());
    for c in p.both() {
        assert!(c.sa("app").is_none());
        assert!(p.lease_in(c).is_none(), "the lock is released in every cluster");
        // Deployments are never irsa's: each stays, still naming the service account.
        assert_eq!(c.get_deployment().spec.template.spec.unwrap().service_account_name.as_deref(), Some("app"));
    }
    let (code, stdout, stderr) = p.irsa(&moto, &["destroy", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("No changes."), "{stdout}");
}

#[test]
fn destroy_removes_the_stack_from_both_clusters() {
    destroy_in_both_clusters(&Pair::test_servers());
}

#[test]
#[ignore = "needs two clusters"]
fn destroy_removes_the_stack_from_both_clusters_on_real_clusters() {
    destroy_in_both_clusters(&Pair::real());
}

/// Both contexts of the file reach one cluster (a copy-paste slip), the
/// issuers left to discovery: the apply is refused before it takes any
/// lock (it took blue's, then waited for itself in "green", before
/// `clusters_reached_twice` ran ahead of the locks).
#[test]
fn two_contexts_that_reach_one_cluster_are_refused() {
    let p = Pair::test_servers();
    let moto = Moto::start();
    let text = std::fs::read_to_string(p.stack(&["blue", "green"], &shared_app(r#"["blue", "green"]"#))).unwrap();
    let one: String = text
        .lines()
        .filter(|l| !l.starts_with("oidc_issuer"))
        .map(|l| if l == "context = \"green\"" { "context = \"blue\"\n".to_owned() } else { format!("{l}\n") })
        .collect();
    let stack = p.dir.path().join("one.toml");
    std::fs::write(&stack, one).unwrap();
    let (code, stdout, stderr) = p.irsa(&moto, &["apply", stack.to_str().unwrap(), "--auto-approve"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("clusters blue and green have one OIDC issuer, {BLUE}: they are one cluster")),
        "{stderr}"
    );
    assert!(stderr.contains("one.toml:"), "it points at the file: {stderr}");
    assert!(!stderr.contains("is locked by"), "the run does not wait for itself: {stderr}");
    assert!(p.lease_in(&p.blue).is_none(), "no lock was taken");
    assert!(providers(&moto).is_empty() && p.blue.sa("app").is_none());
}

/// The checks of a doctor report that are not ok, as `check status: message`;
/// a real cluster may lack the pod identity webhook, and that is expected there.
fn doctor_problems(p: &Pair, report: &Value) -> Vec<String> {
    let checks = report["service_accounts"].as_array().unwrap().iter().flat_map(|sa| sa["checks"].as_array().unwrap());
    checks
        .filter(|c| c["status"] != "ok")
        .map(|c| format!("{} {}: {}", c["check"].as_str().unwrap(), c["status"].as_str().unwrap(), c["message"]))
        .filter(|m| p.has_webhook() || !(m.starts_with("webhook error") || m.contains("have no AWS_ROLE_ARN")))
        .collect()
}

fn doctor_one_cluster_at_a_time(p: &Pair) {
    let moto = Moto::start();
    let stack = applied_in_both(p, &moto);
    if p.has_webhook() {
        for c in p.both() {
            assert!(c.wait_rolled_out(Duration::from_secs(30)));
        }
    }
    for (i, key) in ["blue", "green"].iter().enumerate() {
        let (code, stdout, stderr) = p.irsa(&moto, &["doctor", &stack, "--cluster", key, "--format", "json"]);
        let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        assert_eq!(doctor_problems(p, &report), Vec::<String>::new(), "{key}: {report:#}");
        if p.has_webhook() {
            assert_eq!(code, 0, "{report:#}");
        }
        let sas = report["service_accounts"].as_array().unwrap();
        assert_eq!(sas.len(), 1, "only {key}'s service account: {report:#}");
        // The token of this cluster, matched by this cluster's statement.
        let trust = format!("statement {} admits system:serviceaccount:{}:app", p.sid(key), p.namespace);
        assert!(sas[0]["checks"].to_string().contains(&trust), "{trust} not in {report:#}");
        assert!(report.to_string().contains(p.host_path(i)), "{key}'s issuer: {report:#}");
    }
    // Without --cluster, doctor says which it could check.
    let (code, _, stderr) = p.irsa(&moto, &["doctor", &stack]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("the stack has clusters blue, green: doctor checks one at a time"), "{stderr}");
    assert!(stderr.contains("--cluster blue"), "{stderr}");
}

#[test]
fn doctor_checks_the_cluster_it_is_told() {
    doctor_one_cluster_at_a_time(&Pair::test_servers());
}

#[test]
#[ignore = "needs two clusters"]
fn doctor_checks_the_cluster_it_is_told_on_real_clusters() {
    doctor_one_cluster_at_a_time(&Pair::real());
}
