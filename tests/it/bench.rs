//! Benchmarks, not tests: run by `scripts/bench.sh`, which writes
//! BENCHMARKS.md. Ignored in the test suite (timings prove nothing there).
//!
//! IAM is moto behind the fault proxy adding 50 ms to every round trip, as
//! real IAM answers in roughly 50 to 200 ms; Kubernetes is the test API
//! server behind a proxy with the same latency.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::faultproxy::{FaultProxy, Faults, Upstream};
use crate::kubeapi::KubeApi;
use crate::support::{Moto, aws_env, run_irsa_owned_env};

const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/BENCH";
const LATENCY: Duration = Duration::from_millis(50);

fn stack(dir: &std::path::Path, bindings: usize) -> String {
    let mut s = format!(
        "version = 1\n[cluster]\nname = \"bench\"\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\noidc_issuer = \"{ISSUER}\"\n[policies.shared]\ndocument = '{{\"Version\": \"2012-10-17\", \"Statement\": [{{\"Effect\": \"Allow\", \"Action\": \"s3:GetObject\", \"Resource\": \"*\"}}]}}'\n"
    );
    for i in 0..bindings {
        s.push_str(&format!(
            "[roles.app-{i}]\npolicies = [\"shared\"]\n[[service_accounts]]\nnamespace = \"bench\"\nname = \"app-{i}\"\nrole = \"app-{i}\"\n"
        ));
    }
    let path = dir.join(format!("bench-{bindings}.toml"));
    std::fs::write(&path, s).unwrap();
    path.to_str().unwrap().to_owned()
}

struct Rig {
    moto: Moto,
    _kube: KubeApi,
    iam: FaultProxy,
    kubeconfig: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Rig {
    fn new() -> Rig {
        let moto = Moto::start();
        let kube = KubeApi::start();
        kube.set_issuer(ISSUER);
        let iam = FaultProxy::start(&moto.endpoint, Upstream::Iam, Faults::latency(LATENCY));
        let kube_proxy = FaultProxy::start(&kube.url(), Upstream::Kube, Faults::latency(LATENCY));
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = kube_proxy.write_kubeconfig(&kube, dir.path(), "bench");
        std::mem::forget(kube_proxy); // lives as long as the process: a benchmark runs once
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = rt.block_on(kube.client());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "bench"}})).unwrap();
        rt.block_on(Api::<Namespace>::all(client).create(&PostParams::default(), &ns)).unwrap();
        Rig { moto, _kube: kube, iam, kubeconfig, dir }
    }

    fn irsa(&self, args: &[&str]) -> (i32, String, String, Duration) {
        let env = aws_env(&self.iam.url(), &self.dir.path().join("store"));
        let mut all = args.to_vec();
        all.extend(["--kubeconfig", self.kubeconfig.to_str().unwrap()]);
        let start = Instant::now();
        let (code, out, err) = run_irsa_owned_env(&all, &env);
        (code, out, err, start.elapsed())
    }
}

fn calls(stdout: &str) -> (u64, u64) {
    let v: Value = serde_json::from_str(stdout).unwrap();
    (v["refresh"]["iam_calls"].as_u64().unwrap(), v["refresh"]["kube_requests"].as_u64().unwrap())
}

#[test]
#[ignore = "benchmark: scripts/bench.sh"]
fn bench_apply_100_bindings_parallel_versus_serial() {
    let mut rows = Vec::new();
    for parallelism in ["1", "8"] {
        let rig = Rig::new();
        let stack = stack(rig.dir.path(), 100);
        let before = rig.iam.stats().requests;
        let (code, _, stderr, took) = rig.irsa(&[
            "apply",
            &stack,
            "--auto-approve",
            "--parallelism",
            parallelism,
            "--iam-settle-seconds",
            "0",
            "--lock-namespace",
            "bench",
        ]);
        assert_eq!(code, 0, "{stderr}");
        let requests = rig.iam.stats().requests - before;
        let steps = stderr.lines().find(|l| l.starts_with("Apply complete")).unwrap_or_default().to_owned();
        rows.push(format!(
            "| apply 100 new bindings | --parallelism {parallelism} | {:.1} s | {requests} IAM requests | {steps} |",
            took.as_secs_f64()
        ));
    }
    println!("\nBENCH {}", rows.join("\nBENCH "));
}

#[test]
#[ignore = "benchmark: scripts/bench.sh"]
fn bench_refresh_1000_bindings_bulk_versus_per_resource() {
    let rig = Rig::new();
    let stack = stack(rig.dir.path(), 1000);
    // The 1,000 roles exist already, made straight against moto (no latency).
    let (code, _, stderr) = {
        let env = aws_env(&rig.moto.endpoint, &rig.dir.path().join("setup"));
        run_irsa_owned_env(
            &[
                "apply",
                &stack,
                "--auto-approve",
                "--target",
                "oidc/",
                "--target",
                "policy/",
                "--target",
                "role/",
                "--parallelism",
                "8",
            ],
            &env,
        )
    };
    assert_eq!(code, 0, "{stderr}");
    let mut rows = Vec::new();
    for strategy in ["bulk", "per-resource"] {
        let (code, stdout, stderr, took) =
            rig.irsa(&["plan", &stack, "--format", "json", "--refresh-strategy", strategy]);
        assert_eq!(code, 0, "{stderr}");
        let (iam, kube) = calls(&stdout);
        rows.push(format!(
            "| refresh 1,000 bindings | --refresh-strategy {strategy} | {:.1} s | {iam} IAM calls, {kube} Kubernetes requests | plan of 1,000 service accounts |",
            took.as_secs_f64()
        ));
    }
    println!("\nBENCH {}", rows.join("\nBENCH "));
}
