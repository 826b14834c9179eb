//! Faults, tested: throttling, 5xx answers, dropped connections (before and
//! after the request reached the service), delays and SIGKILL, injected at
//! seeded points between irsa and both moto and the Kubernetes test API
//! server. After at most two reruns without faults the world equals the
//! stack file exactly, nothing exists twice, nothing irsa does not own was
//! touched, and every failed run said what failed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use crate::faultproxy::{FaultProxy, Faults, Upstream};
use crate::kubeapi::KubeApi;
use crate::support::{Moto, aws_env, run_irsa_owned_env};

/// The world of one run: moto and the API server, each behind a proxy.
struct World {
    moto: Moto,
    kube: KubeApi,
    iam_proxy: FaultProxy,
    kube_proxy: FaultProxy,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    client: kube::Client,
}

const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

impl World {
    fn new(faults: Faults) -> World {
        let moto = Moto::start();
        let kube = KubeApi::start();
        kube.set_issuer(ISSUER);
        // Controllers rewrite status throughout, as on a real cluster.
        kube.set_status_churn(Some(std::time::Duration::from_millis(25)));
        let iam_proxy = FaultProxy::start(&moto.endpoint, Upstream::Iam, faults.clone());
        let kube_proxy = FaultProxy::start(&kube.url(), Upstream::Kube, faults);
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = kube_proxy.write_kubeconfig(&kube, dir.path(), "ekshandson");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = rt.block_on(kube.client());
        let world = World { moto, kube, iam_proxy, kube_proxy, kubeconfig, dir, rt, client };
        // What exists before irsa: a hand-made role, a bystander, the namespace, the Deployment.
        world.moto.hand_made_role("Role");
        world.moto.hand_made_role("bystander");
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "backend"}})).unwrap();
        world.rt.block_on(Api::<Namespace>::all(world.client.clone()).create(&PostParams::default(), &ns)).unwrap();
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "backend", "namespace": "backend"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "backend"}},
                     "template": {"metadata": {"labels": {"app": "backend"}},
                                  "spec": {"containers": [{"name": "backend", "image": "busybox"}]}}}
        }))
        .unwrap();
        world
            .rt
            .block_on(Api::<Deployment>::namespaced(world.client.clone(), "backend").create(&PostParams::default(), &d))
            .unwrap();
        world.kube.advance_clock(Duration::from_secs(60));
        world
    }

    /// Through the IAM proxy, with a store of its own.
    fn env(&self) -> Vec<(String, String)> {
        aws_env(&self.iam_proxy.url(), &self.dir.path().join("store"))
    }

    /// irsa in the background, to be killed: no output is kept.
    fn spawn(&self, args: &[&str]) -> std::process::Child {
        std::process::Command::new(env!("CARGO_BIN_EXE_irsa"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .envs(self.env())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    fn args<'a>(&'a self, command: &'a str, stack: &'a str) -> Vec<&'a str> {
        let mut args = vec![command, stack, "--kubeconfig", self.kubeconfig.to_str().unwrap()];
        if command == "apply" {
            args.extend([
                "--auto-approve",
                "--iam-settle-seconds",
                "0",
                "--lock-namespace",
                "backend",
                "--lock-lease-seconds",
                "3",
            ]);
        }
        args
    }

    fn irsa(&self, command: &str, stack: &str) -> (i32, String, String) {
        run_irsa_owned_env(&self.args(command, stack), &self.env())
    }

    /// The state must be exactly the stack file's, with nothing twice and
    /// the bystanders untouched.
    fn assert_converged(&self, stack: &str, roles: usize, service_accounts: usize) {
        self.iam_proxy.set_faults(Faults::none());
        self.kube_proxy.set_faults(Faults::none());
        let mut args = self.args("plan", stack);
        args.push("--detailed-exitcode");
        let (code, stdout, stderr) = run_irsa_owned_env(&args, &self.env());
        assert_eq!(code, 0, "not converged:\n{stdout}{stderr}");
        let listed = self.moto.block_on(self.moto.iam.list_roles().send()).unwrap();
        let mut names: Vec<&str> = listed.roles().iter().map(|r| r.role_name()).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a role exists twice");
        assert_eq!(names.len(), roles + 2, "{names:?}");
        let bystander = self.moto.block_on(self.moto.iam.get_role().role_name("bystander").send()).unwrap();
        assert!(bystander.role().unwrap().tags().is_empty(), "an unowned role was touched");
        let providers = self.moto.block_on(self.moto.iam.list_open_id_connect_providers().send()).unwrap();
        assert_eq!(providers.open_id_connect_provider_list().len(), 1);
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), "backend");
        let listed = self.rt.block_on(sas.list(&ListParams::default())).unwrap();
        assert_eq!(listed.items.len(), service_accounts + 1, "the default one and the stack's");
    }
}

/// A failed run must say what failed.
fn assert_named_failure(code: i32, stderr: &str) {
    if code != 0 {
        assert!(
            stderr.lines().any(|l| l.contains(": FAILED: ") || l.starts_with("error: ")),
            "a failed run must name what failed:\n{stderr}"
        );
    }
}

/// Apply through faults, then up to two reruns without them.
fn converge(world: &World, stack: &str, roles: usize, service_accounts: usize) {
    let (code, _, stderr) = world.irsa("apply", stack);
    assert_named_failure(code, &stderr);
    world.iam_proxy.set_faults(Faults::none());
    world.kube_proxy.set_faults(Faults::none());
    for _ in 0..2 {
        let (code, _, stderr) = world.irsa("apply", stack);
        if code == 0 {
            break;
        }
        assert_named_failure(code, &stderr);
    }
    world.kube.advance_clock(Duration::from_secs(60));
    world.assert_converged(stack, roles, service_accounts);
}

fn example(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    for p in ["messages-read", "messages-write", "messages-stream"] {
        std::fs::copy(format!("plans/policies/{p}.json"), dir.join(format!("policies/{p}.json"))).unwrap();
    }
    let path = dir.join("ekshandson.toml");
    std::fs::copy("plans/ekshandson.toml", &path).unwrap();
    path.to_str().unwrap().to_owned()
}

/// 50 bindings: one role and one service account each, sharing a policy.
fn fifty(dir: &Path) -> String {
    let mut stack = format!(
        "version = 1\n[cluster]\nname = \"ekshandson\"\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\noidc_issuer = \"{ISSUER}\"\n[policies.shared]\ndocument = '{{\"Version\": \"2012-10-17\", \"Statement\": [{{\"Effect\": \"Allow\", \"Action\": \"s3:GetObject\", \"Resource\": \"*\"}}]}}'\n"
    );
    for i in 0..50 {
        stack.push_str(&format!(
            "[roles.app-{i}]\npolicies = [\"shared\"]\n[[service_accounts]]\nnamespace = \"backend\"\nname = \"app-{i}\"\nrole = \"app-{i}\"\n"
        ));
    }
    stack.push_str("[[service_accounts]]\nnamespace = \"backend\"\nname = \"web\"\nrole = \"app-0\"\nworkloads = [\"deployment/backend\"]\n");
    let path = dir.join("fifty.toml");
    std::fs::write(&path, stack).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn the_example_converges_through_faults_for_many_seeds() {
    let mut injected = 0;
    for seed in 1..=6 {
        let world = World::new(Faults { max_faults: Some(12), ..Faults::random(seed) });
        let stack = example(world.dir.path());
        converge(&world, &stack, 1, 1);
        injected += world.iam_proxy.stats().faults() + world.kube_proxy.stats().faults();
    }
    assert!(injected >= 6, "the proxies injected only {injected} faults: the test proves little");
}

#[test]
fn fifty_bindings_converge_through_faults() {
    for seed in [11, 12, 13] {
        let world = World::new(Faults { max_faults: Some(25), ..Faults::random(seed) });
        let stack = fifty(world.dir.path());
        converge(&world, &stack, 50, 51);
        assert!(world.iam_proxy.stats().faults() > 0, "seed {seed} injected no IAM fault");
    }
}

#[test]
fn runs_killed_at_random_points_converge() {
    // A fixed sequence of kill times (a seeded walk through 0–900 ms).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..4 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let kill_after = Duration::from_millis(100 + x % 800);
        // Latency makes the apply long enough to be killed in the middle.
        let world = World::new(Faults::latency(Duration::from_millis(15)));
        let stack = fifty(world.dir.path());
        let mut child = world.spawn(&world.args("apply", &stack));
        std::thread::sleep(kill_after);
        // SIGKILL: no chance to release the lock or finish a write.
        let _ = child.kill();
        let _ = child.wait();
        world.iam_proxy.set_faults(Faults::none());
        world.kube_proxy.set_faults(Faults::none());
        // The killed holder's lease expires after 3 s; the rerun waits for it.
        let mut args = world.args("apply", &stack);
        args.extend(["--lock-timeout", "20"]);
        let (code, _, stderr) = run_irsa_owned_env(&args, &world.env());
        assert_eq!(code, 0, "killed after {kill_after:?}, the rerun failed: {stderr}");
        world.kube.advance_clock(Duration::from_secs(60));
        world.assert_converged(&stack, 50, 51);
    }
}

#[test]
fn a_saved_plan_killed_halfway_finishes_on_rerun_instead_of_calling_itself_stale() {
    let world = World::new(Faults::latency(Duration::from_millis(15)));
    let stack = fifty(world.dir.path());
    let out = world.dir.path().join("plan.json");
    let out = out.to_str().unwrap();
    let mut args = world.args("plan", &stack);
    args.extend(["--out", out]);
    let (code, _, stderr) = run_irsa_owned_env(&args, &world.env());
    assert_eq!(code, 0, "{stderr}");

    let apply = world.args("apply", out);
    let mut child = world.spawn(&apply);
    // Wait until some roles exist, then kill it in the middle.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let roles = world.moto.block_on(world.moto.iam.list_roles().send()).unwrap();
        if roles.roles().len() > 10 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let done_before = world.moto.block_on(world.moto.iam.list_roles().send()).unwrap().roles().len();
    assert!(done_before < 52, "the run was killed before it finished ({done_before} roles)");

    let mut rerun = apply.clone();
    rerun.extend(["--lock-timeout", "20"]);
    let (code, _, stderr) = run_irsa_owned_env(&rerun, &world.env());
    assert_eq!(code, 0, "the rerun of the saved plan must finish it: {stderr}");
    assert!(stderr.contains("were done by an earlier run"), "{stderr}");
    world.kube.advance_clock(Duration::from_secs(60));
    world.assert_converged(&stack, 50, 51);
}
