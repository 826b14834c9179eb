//! The harness of the cluster scenarios (`cluster.rs`, `rollout.rs`): a
//! cluster to run one scenario on, either the Kubernetes test API server of
//! `tests/it/kubeapi` or the real cluster `KUBECONFIG` points at, and irsa
//! run against it and moto.
//!
//! On a real cluster a scenario uses the kubeconfig's current context, or
//! `IRSA_TEST_CONTEXT`, and a fresh namespace of its own, deleted at the
//! end, as a stack named like that namespace, so scenarios running at once
//! (threads of one `cargo test`, or nextest's processes) never see each
//! other's resources as their own.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::kubeapi::KubeApi;
use crate::support::{Moto, plan_shape as shape, run_irsa_owned_env};

/// A cluster to run a scenario on.
pub struct Cluster {
    pub server: Option<KubeApi>,
    pub kubeconfig: PathBuf,
    /// `IRSA_TEST_CONTEXT` on a real cluster; else the kubeconfig's current one.
    pub context: Option<String>,
    pub namespace: String,
    /// The scenario's stack: `ekshandson` on the test server (one server a
    /// scenario), the namespace's name on a real cluster.
    pub stack_name: String,
    pub dir: tempfile::TempDir,
    pub rt: tokio::runtime::Runtime,
    pub client: kube::Client,
}

impl Cluster {
    pub fn test_server() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let server = KubeApi::start();
        server.set_issuer("https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE");
        // The example names `context = "ekshandson"`: the test server's
        // kubeconfig has it, so the stack's own context is what irsa uses.
        let kubeconfig = server.write_kubeconfig(dir.path(), "ekshandson");
        // As on a real cluster, controllers rewrite the Deployments' status
        // all the time: every read irsa makes is stale a moment later.
        server.set_status_churn(Some(Duration::from_millis(25)));
        Cluster::with(Some(server), kubeconfig, None, "backend".into(), "ekshandson".into(), dir)
    }

    /// The cluster `KUBECONFIG` points at (its current context, or
    /// `IRSA_TEST_CONTEXT`), in a fresh namespace of this scenario's own.
    pub fn real() -> Cluster {
        static SCENARIOS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let kubeconfig = PathBuf::from(std::env::var("KUBECONFIG").expect("set KUBECONFIG to run the cluster tests"));
        let context = std::env::var("IRSA_TEST_CONTEXT").ok().filter(|c| !c.is_empty());
        let n = SCENARIOS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let namespace = format!("irsa-it-{}-{n}", std::process::id());
        Cluster::with(None, kubeconfig, context, namespace.clone(), namespace, tempfile::tempdir().unwrap())
    }

    pub fn with(
        server: Option<KubeApi>,
        kubeconfig: PathBuf,
        context: Option<String>,
        namespace: String,
        stack_name: String,
        dir: tempfile::TempDir,
    ) -> Cluster {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = rt.block_on(async {
            let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
            let options = kube::config::KubeConfigOptions { context: context.clone(), ..Default::default() };
            let config = kube::Config::from_custom_kubeconfig(kc, &options).await.unwrap();
            kube::Client::try_from(config).unwrap()
        });
        let cluster = Cluster { server, kubeconfig, context, namespace, stack_name, dir, rt, client };
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": cluster.namespace}})).unwrap();
        let api: Api<Namespace> = Api::all(cluster.client.clone());
        cluster.rt.block_on(api.create(&PostParams::default(), &ns)).unwrap();
        cluster
    }

    /// Let time pass, so that what happens next is later to the second.
    pub fn advance(&self, seconds: u64) {
        match &self.server {
            Some(s) => s.advance_clock(Duration::from_secs(seconds)),
            None => std::thread::sleep(Duration::from_secs(seconds.min(2))),
        }
    }

    /// The name of the stack's lock.
    pub fn lease(&self) -> String {
        format!("irsa-{}", self.stack_name)
    }

    pub fn has_webhook(&self) -> bool {
        self.server.is_some()
    }

    /// The example stack, bound in this cluster's namespace and named as
    /// the scenario's stack, beside its documents. A real cluster has its
    /// own issuer and contexts: the stack then leaves `oidc_issuer` and
    /// `context` out, irsa discovers the issuer and uses the context the
    /// scenario runs with.
    pub fn stack(&self) -> String {
        let mut text = std::fs::read_to_string("plans/ekshandson.toml")
            .unwrap()
            .replace("namespace = \"backend\"", &format!("namespace = \"{}\"", self.namespace))
            .replace("[stack]\nname = \"ekshandson\"", &format!("[stack]\nname = \"{}\"", self.stack_name));
        if self.server.is_none() {
            text = text
                .lines()
                .filter(|l| !l.starts_with("oidc_issuer") && !l.starts_with("context"))
                .collect::<Vec<_>>()
                .join("\n");
        }
        let policies = self.dir.path().join("policies");
        std::fs::create_dir_all(&policies).unwrap();
        for p in ["messages-read", "messages-write", "messages-stream"] {
            std::fs::copy(format!("plans/policies/{p}.json"), policies.join(format!("{p}.json"))).unwrap();
        }
        let path = self.dir.path().join("ekshandson.toml");
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// The backend Deployment, running as `service_account`.
    pub fn deployment(&self, service_account: Option<&str>) {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "backend", "namespace": self.namespace},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "backend"}},
                "template": {
                    "metadata": {"labels": {"app": "backend"}},
                    "spec": {
                        "serviceAccountName": service_account,
                        "containers": [{"name": "backend", "image": "public.ecr.aws/docker/library/busybox:stable", "command": ["sleep", "3600"]}]
                    }
                }
            }
        }))
        .unwrap();
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        self.rt.block_on(api.create(&PostParams::default(), &d)).unwrap();
    }

    pub fn sa(&self, name: &str) -> Option<ServiceAccount> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.namespace);
        self.rt.block_on(api.get_opt(name)).unwrap()
    }

    pub fn patch_sa(&self, name: &str, manager: &str, patch: Value) {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.namespace);
        let params = PatchParams { field_manager: Some(manager.into()), ..Default::default() };
        self.rt.block_on(api.patch(name, &params, &Patch::Merge(&patch))).unwrap();
    }

    pub fn get_deployment(&self) -> Deployment {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        self.rt.block_on(api.get("backend")).unwrap()
    }

    /// A write by someone else (`manager`) to the backend Deployment.
    pub fn patch_deployment(&self, manager: &str, patch: Value) {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let params = PatchParams { field_manager: Some(manager.into()), ..Default::default() };
        self.rt.block_on(api.patch("backend", &params, &Patch::Merge(&patch))).unwrap();
    }

    /// The backend Deployment's pods.
    pub fn pods(&self) -> Vec<Pod> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        self.rt.block_on(api.list(&ListParams::default().labels("app=backend"))).unwrap().items
    }

    /// Hold every rollout where it is: the test server's kubelet stand-in
    /// stops starting pods, so new ones stay Pending and not Ready and the
    /// old ReplicaSet keeps its pods. A real cluster cannot be told to:
    /// `false` then.
    pub fn hold_rollouts(&self, hold: bool) -> bool {
        match &self.server {
            Some(s) => {
                s.set_kubelet(!hold);
                true
            }
            None => false,
        }
    }

    /// Wait until the backend Deployment has rolled out; `false` when it did
    /// not within `timeout` (a real cluster without a kubelet never does).
    pub fn wait_rolled_out(&self, timeout: Duration) -> bool {
        if let Some(s) = &self.server {
            self.rt.block_on(s.wait_rolled_out(&self.namespace, "backend", timeout));
            return true;
        }
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            let d = self.get_deployment();
            let (generation, wanted) = (d.metadata.generation, d.spec.replicas.unwrap_or(1));
            let status = d.status.unwrap_or_default();
            let settled = status.observed_generation >= generation
                && [status.replicas, status.updated_replicas, status.ready_replicas]
                    .iter()
                    .all(|n| n.unwrap_or(0) == wanted);
            if settled {
                return true;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        false
    }

    /// The arguments of an irsa run against this cluster: its kubeconfig and
    /// context; an apply or destroy keeps its lock in the scenario's namespace and, unless
    /// told, does not wait for IAM to settle.
    pub fn args(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend(["--kubeconfig".into(), self.kubeconfig.to_str().unwrap().to_owned()]);
        if let Some(context) = &self.context
            && !args.contains(&"--context")
        {
            all.extend(["--context".into(), context.clone()]);
        }
        if args[0] == "apply" || args[0] == "destroy" {
            all.extend(["--lock-namespace".into(), self.namespace.clone()]);
            if !args.contains(&"--iam-settle-seconds") {
                all.extend(["--iam-settle-seconds".into(), "0".into()]);
            }
        }
        all
    }

    /// irsa against moto and this cluster.
    pub fn irsa(&self, moto: &Moto, args: &[&str]) -> (i32, String, String) {
        let all = self.args(args);
        moto.irsa(&all.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// irsa in a thread, for writes made while it runs.
    pub fn spawn(&self, moto: &Moto, args: &[&str]) -> std::thread::JoinHandle<(i32, String, String)> {
        let (all, env) = (self.args(args), moto.env());
        std::thread::spawn(move || run_irsa_owned_env(&all.iter().map(String::as_str).collect::<Vec<_>>(), &env))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.server.is_none() {
            let api: Api<Namespace> = Api::all(self.client.clone());
            let _ = self.rt.block_on(api.delete(&self.namespace, &DeleteParams::default()));
        }
    }
}

pub fn plan_json(c: &Cluster, moto: &Moto, stack: &str) -> Value {
    let (code, stdout, stderr) = c.irsa(moto, &["plan", stack, "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

pub fn no_changes(c: &Cluster, moto: &Moto, stack: &str) {
    let plan = plan_json(c, moto, stack);
    assert_eq!(shape(&plan), Vec::<String>::new(), "{plan:#}");
    if c.has_webhook() {
        assert_eq!(plan["warnings"], json!([]), "{plan:#}");
    }
}

/// Apply the example from nothing: the state the later scenarios start from.
pub fn applied(c: &Cluster, moto: &Moto) -> String {
    moto.hand_made_role("Role");
    apply_example(c, moto)
}

/// The backend Deployment running as `default`, then the example applied
/// (its `arn =` role must exist).
pub fn apply_example(c: &Cluster, moto: &Moto) -> String {
    c.deployment(None);
    c.advance(60);
    let stack = c.stack();
    let (code, _, stderr) = c.irsa(moto, &["apply", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    c.advance(60);
    stack
}

pub fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(50));
    }
}
