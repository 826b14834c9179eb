//! The whole chain, IAM (moto) and the cluster, through the built CLI.
//!
//! Each scenario runs against the Kubernetes test API server of
//! `tests/it/kubeapi`, and again against a real cluster with
//! `cargo test -- --ignored` and `KUBECONFIG` set (IAM stays on moto). On a
//! real cluster the scenarios use the kubeconfig's current context, or
//! `IRSA_TEST_CONTEXT`; each works in a fresh namespace of its own, deleted
//! at the end, as a stack named like that namespace, so scenarios running
//! at once (threads of one `cargo test`, or nextest's processes) never see
//! each other's resources as their own. On a
//! cluster without the EKS pod identity webhook, pods get no AWS_ROLE_ARN:
//! plans then carry a warning instead of an empty warning list, and the
//! assertions below allow for that.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{Moto, plan_shape as shape};
use crate::world::{Cluster, applied, no_changes, plan_json, wait_for};

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/irsa/backend-messages";

fn example_from_nothing_to_applied(c: &Cluster) {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    c.deployment(None);
    c.advance(60);
    let stack = c.stack();
    let (code, stdout, stderr) = c.irsa(&moto, &["apply", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Plan: 9 to create, 1 to update, 0 to replace, 0 to delete, 0 to restart."), "{stdout}");
    assert!(stderr.contains("Apply complete: 10 steps done"), "{stderr}");

    let sa = c.sa("my-service-account").expect("the service account exists");
    let annotations = sa.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get("eks.amazonaws.com/role-arn").map(String::as_str), Some(ROLE_ARN));
    assert_eq!(annotations.get("irsa.dev/stack").map(String::as_str), Some(c.stack_name.as_str()));
    assert_eq!(
        sa.metadata.labels.unwrap_or_default().get("app.kubernetes.io/managed-by").map(String::as_str),
        Some("irsa")
    );
    let d = c.get_deployment();
    assert_eq!(d.spec.template.spec.unwrap().service_account_name.as_deref(), Some("my-service-account"));
    assert!(moto.block_on(moto.iam.get_role().role_name("backend-messages").send()).is_ok());
    c.advance(60);
    no_changes(c, &moto, &stack);
}

#[test]
fn the_example_goes_from_nothing_to_applied_in_one_apply() {
    example_from_nothing_to_applied(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn the_example_goes_from_nothing_to_applied_in_one_apply_on_a_real_cluster() {
    example_from_nothing_to_applied(&Cluster::real());
}

fn helm_service_account_refused_then_adopted(c: &Cluster) {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    c.deployment(Some("my-service-account"));
    let helm: ServiceAccount = serde_json::from_value(json!({"metadata": {
        "name": "my-service-account",
        "namespace": c.namespace,
        "labels": {"app.kubernetes.io/managed-by": "Helm"},
        "annotations": {"meta.helm.sh/release-name": "backend", "meta.helm.sh/release-namespace": c.namespace}
    }}))
    .unwrap();
    let api: Api<ServiceAccount> = Api::namespaced(c.client.clone(), &c.namespace);
    c.rt.block_on(api.create(&PostParams { field_manager: Some("helm".into()), ..Default::default() }, &helm)).unwrap();
    c.advance(60);
    let stack = c.stack();

    let (code, stdout, stderr) = c.irsa(&moto, &["apply", &stack, "--auto-approve"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "sa/{}/my-service-account already exists and is not managed by irsa (managed by Helm)",
            c.namespace
        )),
        "{stderr}"
    );
    assert!(
        moto.block_on(moto.iam.get_role().role_name("backend-messages").send()).is_err(),
        "a refused plan writes nothing"
    );

    let (code, stdout, stderr) = c.irsa(&moto, &["apply", &stack, "--auto-approve", "--adopt"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("⇐ sa/{}/my-service-account", c.namespace)), "{stdout}");
    let sa = c.sa("my-service-account").unwrap();
    let annotations = sa.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get("eks.amazonaws.com/role-arn").map(String::as_str), Some(ROLE_ARN));
    assert_eq!(
        annotations.get("meta.helm.sh/release-name").map(String::as_str),
        Some("backend"),
        "Helm's annotations stay"
    );
    assert_eq!(
        sa.metadata.labels.unwrap_or_default().get("app.kubernetes.io/managed-by").map(String::as_str),
        Some("Helm"),
        "Helm's label stays, or Helm would refuse its next upgrade"
    );
    c.advance(60);
    no_changes(c, &moto, &stack);
}

#[test]
fn a_helm_service_account_is_refused_then_adopted_keeping_its_annotations() {
    helm_service_account_refused_then_adopted(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn a_helm_service_account_is_refused_then_adopted_keeping_its_annotations_on_a_real_cluster() {
    helm_service_account_refused_then_adopted(&Cluster::real());
}

/// Point the service account at another role by hand, and roll the
/// Deployment (as `kubectl rollout restart` does) so its pods take it.
fn hand_edit_and_roll(c: &Cluster) {
    c.patch_sa(
        "my-service-account",
        "kubectl-edit",
        json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/someone-else"}}}),
    );
    c.advance(60);
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), &c.namespace);
    let roll =
        json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "by-hand"}}}}});
    let params = PatchParams { field_manager: Some("kubectl-rollout".into()), ..Default::default() };
    c.rt.block_on(api.patch("backend", &params, &Patch::Merge(&roll))).unwrap();
    c.advance(60);
}

fn annotation_edited_by_hand_is_planned_back(c: &Cluster) {
    let moto = Moto::start();
    let stack = applied(c, &moto);
    hand_edit_and_roll(c);
    let plan = plan_json(c, &moto, &stack);
    let ns = &c.namespace;
    assert_eq!(shape(&plan), [format!("sa/{ns}/my-service-account update"), format!("deploy/{ns}/backend restart")]);
    let (code, _, stderr) = c.irsa(&moto, &["apply", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    let sa = c.sa("my-service-account").unwrap();
    assert_eq!(sa.metadata.annotations.unwrap()["eks.amazonaws.com/role-arn"], ROLE_ARN);
    c.advance(60);
    no_changes(c, &moto, &stack);
}

#[test]
fn an_annotation_edited_by_hand_is_planned_back() {
    annotation_edited_by_hand_is_planned_back(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn an_annotation_edited_by_hand_is_planned_back_on_a_real_cluster() {
    annotation_edited_by_hand_is_planned_back(&Cluster::real());
}

fn pods_older_than_the_annotation_restart_once(c: &Cluster) {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    let stack = c.stack();
    // IAM first, as an earlier run limited to IAM would have left it.
    let iam = ["--target", "oidc/", "--target", "policy/", "--target", "role/"];
    let (code, _, stderr) = c.irsa(&moto, &[&["apply", stack.as_str(), "--auto-approve"][..], &iam].concat());
    assert_eq!(code, 0, "{stderr}");
    // Pods start under a plain service account; only then does it get its
    // role (from an earlier irsa run whose restart never happened).
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "my-service-account", "namespace": c.namespace}})).unwrap();
    let api: Api<ServiceAccount> = Api::namespaced(c.client.clone(), &c.namespace);
    c.rt.block_on(api.create(&PostParams::default(), &sa)).unwrap();
    c.deployment(Some("my-service-account"));
    c.advance(60);
    c.patch_sa(
        "my-service-account",
        "irsa",
        json!({"metadata": {
            "labels": {"app.kubernetes.io/managed-by": "irsa"},
            "annotations": {"eks.amazonaws.com/role-arn": ROLE_ARN, "irsa.dev/stack": c.stack_name}
        }}),
    );
    c.advance(60);

    let plan = plan_json(c, &moto, &stack);
    assert_eq!(shape(&plan), [format!("deploy/{}/backend restart", c.namespace)]);
    let reasons = plan["changes"][0]["reasons"].to_string();
    assert!(reasons.contains("started before the role annotation was set"), "{reasons}");
    let (code, _, stderr) = c.irsa(&moto, &["apply", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains(&format!("deploy/{}/backend: restarted", c.namespace)), "{stderr}");
    let template = c.get_deployment().spec.template.metadata.unwrap_or_default();
    assert!(template.annotations.unwrap_or_default().contains_key("kubectl.kubernetes.io/restartedAt"));
    c.advance(60);
    no_changes(c, &moto, &stack);
}

#[test]
fn pods_started_before_the_annotation_are_restarted_once() {
    pods_older_than_the_annotation_restart_once(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn pods_started_before_the_annotation_are_restarted_once_on_a_real_cluster() {
    pods_older_than_the_annotation_restart_once(&Cluster::real());
}

/// A change to the trust policy makes the apply wait (--iam-settle-seconds)
/// before it rolls pods: the window in which "someone else" writes.
fn drift_trust(moto: &Moto) {
    moto.block_on(moto.iam.untag_role().role_name("backend-messages").tag_keys("team").send()).unwrap();
}

fn write_conflict_is_reported_not_overwritten(c: &Cluster) {
    let moto = Moto::start();
    let stack = applied(c, &moto);
    hand_edit_and_roll(c);
    drift_trust(&moto);
    let kubeconfig = c.kubeconfig.clone();
    let (ns, env) = (c.namespace.clone(), moto.env());
    let stack_for_run = stack.clone();
    let run = std::thread::spawn(move || {
        crate::support::run_irsa_owned_env(
            &[
                "apply",
                &stack_for_run,
                "--auto-approve",
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "--lock-namespace",
                &ns,
                "--iam-settle-seconds",
                "4",
            ],
            &env,
        )
    });
    // Once irsa has put the annotation back, and while it waits for IAM to
    // settle, someone restarts the Deployment irsa is about to restart.
    // (Edits of fields the restart does not depend on are no conflict: see
    // tests/it/rollout.rs.)
    wait_for(|| {
        c.sa("my-service-account").unwrap().metadata.annotations.unwrap()["eks.amazonaws.com/role-arn"] == ROLE_ARN
    });
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), &c.namespace);
    let touch =
        json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "someone"}}}}});
    let params = PatchParams { field_manager: Some("kubectl-rollout".into()), ..Default::default() };
    c.rt.block_on(api.patch("backend", &params, &Patch::Merge(&touch))).unwrap();

    let (code, _, stderr) = run.join().unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "deployment {}/backend: spec.template.metadata.annotations[kubectl.kubernetes.io/restartedAt] changed since it was read (\"by-hand\" → \"someone\"); irsa did not overwrite it",
            c.namespace
        )),
        "{stderr}"
    );
    let d = c.get_deployment();
    let template = d.spec.template.metadata.unwrap_or_default().annotations.unwrap_or_default();
    assert_eq!(template["kubectl.kubernetes.io/restartedAt"], "someone", "the other writer's restart stands");
    // The next plan re-reads: that restart did the work.
    c.advance(60);
    no_changes(c, &moto, &stack);
}

#[test]
fn a_write_conflict_is_reported_and_never_overwritten() {
    write_conflict_is_reported_not_overwritten(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn a_write_conflict_is_reported_and_never_overwritten_on_a_real_cluster() {
    write_conflict_is_reported_not_overwritten(&Cluster::real());
}

fn two_applies_at_once(c: &Cluster) {
    let moto = Moto::start();
    let stack = applied(c, &moto);
    drift_trust(&moto);
    hand_edit_and_roll(c);
    let kubeconfig = c.kubeconfig.to_str().unwrap().to_owned();
    let spawn = |settle: &'static str, timeout: &'static str| {
        let (stack, kubeconfig, ns, env) = (stack.clone(), kubeconfig.clone(), c.namespace.clone(), moto.env());
        std::thread::spawn(move || {
            crate::support::run_irsa_owned_env(
                &[
                    "apply",
                    &stack,
                    "--auto-approve",
                    "--kubeconfig",
                    &kubeconfig,
                    "--lock-namespace",
                    &ns,
                    "--iam-settle-seconds",
                    settle,
                    "--lock-timeout",
                    timeout,
                ],
                &env,
            )
        })
    };
    let first = spawn("4", "0");
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), &c.namespace);
    wait_for(|| c.rt.block_on(leases.get_opt(&c.lease())).unwrap().is_some());

    // A second apply fails at once, naming the holder...
    let (code, stdout, stderr) = spawn("0", "0").join().unwrap();
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains(&format!("stack {} is locked by irsa@", c.stack_name)), "{stderr}");
    assert!(stdout.is_empty(), "it planned nothing: {stdout}");
    // ...and a third waits for the first, then finds nothing left to do.
    let third = spawn("0", "60");
    let (code, _, stderr) = first.join().unwrap();
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = third.join().unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("No changes."), "it planned against what the first apply left: {stdout}");
    assert!(c.rt.block_on(leases.get_opt(&c.lease())).unwrap().is_none(), "the lock is released");
}

#[test]
fn two_applies_at_once_one_holds_the_lock() {
    two_applies_at_once(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn two_applies_at_once_one_holds_the_lock_on_a_real_cluster() {
    two_applies_at_once(&Cluster::real());
}

fn a_crashed_holders_lease_expires(c: &Cluster) {
    let moto = Moto::start();
    let stack = applied(c, &moto);
    hand_edit_and_roll(c);
    // A holder that died an hour ago without releasing the lock.
    let stale = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": c.lease(), "namespace": c.namespace},
        "spec": {"holderIdentity": "irsa@crashed-runner/pid-1/1", "leaseDurationSeconds": 30,
                 "acquireTime": stale.to_string(), "renewTime": stale.to_string()}
    }))
    .unwrap();
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), &c.namespace);
    c.rt.block_on(leases.create(&PostParams::default(), &lease)).unwrap();
    let (code, _, stderr) = c.irsa(&moto, &["apply", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "the expired lease is taken over: {stderr}");
    assert!(c.rt.block_on(leases.get_opt(&c.lease())).unwrap().is_none(), "and released at the end");
    // A live holder is another matter.
    let live = jiff::Timestamp::now();
    let mut lease = lease;
    lease.metadata.resource_version = None;
    lease.spec.as_mut().unwrap().renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(live));
    lease.spec.as_mut().unwrap().holder_identity = Some("irsa@busy-runner/pid-2/2".into());
    c.rt.block_on(leases.create(&PostParams::default(), &lease)).unwrap();
    hand_edit_and_roll(c);
    let (code, stdout, stderr) = c.irsa(&moto, &["apply", &stack, "--auto-approve"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(stderr.contains(&format!("stack {} is locked by irsa@busy-runner/pid-2/2", c.stack_name)), "{stderr}");
}

#[test]
fn a_crashed_holders_lease_expires_and_a_live_one_is_respected() {
    a_crashed_holders_lease_expires(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn a_crashed_holders_lease_expires_and_a_live_one_is_respected_on_a_real_cluster() {
    a_crashed_holders_lease_expires(&Cluster::real());
}

fn issuer_is_discovered_and_checked(c: &Cluster) {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    c.deployment(None);
    let stack = c.stack();
    let text = std::fs::read_to_string(&stack).unwrap();
    // Without oidc_issuer the cluster's discovery document names it.
    let without = text.lines().filter(|l| !l.starts_with("oidc_issuer")).collect::<Vec<_>>().join("\n");
    std::fs::write(&stack, &without).unwrap();
    let plan = plan_json(c, &moto, &stack);
    assert!(shape(&plan).contains(&"oidc/ekshandson create".to_owned()), "{plan:#}");
    // With one that disagrees with the cluster, the plan fails naming both.
    let other = without.replace(
        "[cluster]\n",
        "[cluster]\noidc_issuer = \"https://oidc.eks.us-east-1.amazonaws.com/id/SOMEOTHERCLUSTER\"\n",
    );
    std::fs::write(&stack, other).unwrap();
    let (code, _, stderr) = c.irsa(&moto, &["plan", &stack]);
    assert_eq!(code, 1);
    assert!(stderr.contains("/id/SOMEOTHERCLUSTER, but the cluster says https://"), "{stderr}");
}

#[test]
fn the_issuer_is_discovered_from_the_cluster_and_checked() {
    issuer_is_discovered_and_checked(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn the_issuer_is_discovered_from_the_cluster_and_checked_on_a_real_cluster() {
    issuer_is_discovered_and_checked(&Cluster::real());
}

#[test]
fn a_refresh_takes_a_request_per_kind_and_namespace_not_per_object() {
    let c = Cluster::test_server();
    let moto = Moto::start();
    let stack = applied(&c, &moto);
    let before = plan_json(&c, &moto, &stack)["refresh"]["kube_requests"].as_u64().unwrap();
    // Fifty more service accounts in the namespace cost nothing more.
    let api: Api<ServiceAccount> = Api::namespaced(c.client.clone(), &c.namespace);
    for i in 0..50 {
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": format!("other-{i}")}})).unwrap();
        c.rt.block_on(api.create(&PostParams::default(), &sa)).unwrap();
    }
    let after = plan_json(&c, &moto, &stack)["refresh"]["kube_requests"].as_u64().unwrap();
    assert_eq!(before, after);
    // Namespaces, service accounts, deployments, irsa's service accounts
    // everywhere, the bound Deployment's pods (the issuer's discovery
    // document is read once when connecting, before the refresh).
    assert_eq!(after, 5);
}

fn destroy_removes_what_the_stack_owns(c: &Cluster) {
    let moto = Moto::start();
    let stack = applied(c, &moto);
    let (code, stdout, stderr) = c.irsa(&moto, &["destroy", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Plan: 0 to create, 0 to update, 0 to replace, 9 to delete, 0 to restart."), "{stdout}");
    assert!(c.sa("my-service-account").is_none());
    assert!(moto.block_on(moto.iam.get_role().role_name("backend-messages").send()).is_err());
    let policies =
        moto.block_on(moto.iam.list_policies().scope(aws_sdk_iam::types::PolicyScopeType::Local).send()).unwrap();
    assert!(policies.policies().is_empty(), "{:?}", policies.policies());
    let providers = moto.block_on(moto.iam.list_open_id_connect_providers().send()).unwrap();
    assert!(providers.open_id_connect_provider_list().is_empty());
    assert!(moto.block_on(moto.iam.get_role().role_name("Role").send()).is_ok(), "the role made by hand stays");
    // Deployments are never irsa's: it stays, still naming the service account.
    let d = c.get_deployment();
    assert_eq!(d.spec.template.spec.unwrap().service_account_name.as_deref(), Some("my-service-account"));
    // A second destroy has nothing left to do.
    let (code, stdout, stderr) = c.irsa(&moto, &["destroy", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("No changes."), "{stdout}");
}

#[test]
fn destroy_removes_what_the_stack_owns_and_nothing_else() {
    destroy_removes_what_the_stack_owns(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn destroy_removes_what_the_stack_owns_and_nothing_else_on_a_real_cluster() {
    destroy_removes_what_the_stack_owns(&Cluster::real());
}

fn dropped_annotation_is_removed(c: &Cluster) {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    c.deployment(None);
    let stack = c.stack();
    let plain = std::fs::read_to_string(&stack).unwrap();
    let with_extra = plain.replace(
        "workloads = [\"deployment/backend\"]",
        "workloads = [\"deployment/backend\"]\nannotations = { \"eks.amazonaws.com/sts-regional-endpoints\" = \"true\" }",
    );
    std::fs::write(&stack, &with_extra).unwrap();
    let (code, _, stderr) = c.irsa(&moto, &["apply", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    // Someone adds an annotation of their own.
    c.patch_sa(
        "my-service-account",
        "kubectl-annotate",
        json!({"metadata": {"annotations": {"team/owner": "payments"}}}),
    );
    c.advance(60);
    // The file drops the extra annotation: irsa removes the one it wrote, and only that.
    std::fs::write(&stack, &plain).unwrap();
    let plan = plan_json(c, &moto, &stack);
    assert_eq!(shape(&plan), [format!("sa/{}/my-service-account update", c.namespace)]);
    let (code, _, stderr) = c.irsa(&moto, &["apply", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    let annotations = c.sa("my-service-account").unwrap().metadata.annotations.unwrap();
    assert!(!annotations.contains_key("eks.amazonaws.com/sts-regional-endpoints"), "{annotations:?}");
    assert_eq!(annotations.get("team/owner").map(String::as_str), Some("payments"));
    assert_eq!(annotations.get("eks.amazonaws.com/role-arn").map(String::as_str), Some(ROLE_ARN));
    c.advance(60);
    no_changes(c, &moto, &stack);
}

#[test]
fn an_annotation_dropped_from_the_file_is_removed_and_others_stay() {
    dropped_annotation_is_removed(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn an_annotation_dropped_from_the_file_is_removed_and_others_stay_on_a_real_cluster() {
    dropped_annotation_is_removed(&Cluster::real());
}

#[test]
fn credentials_limited_to_namespaces_still_plan_and_apply() {
    let c = Cluster::test_server();
    let moto = Moto::start();
    c.server.as_ref().unwrap().set_namespaced_only(true);
    let stack = applied(&c, &moto);
    no_changes(&c, &moto, &stack);
    assert_eq!(
        c.sa("my-service-account").unwrap().metadata.annotations.unwrap()["eks.amazonaws.com/role-arn"],
        ROLE_ARN
    );
}

/// A second team's stack for this cluster, beside the example: its own
/// policy, role and ServiceAccount in the scenario's namespace.
fn team_b_stack(c: &Cluster, extra: &str) -> String {
    let issuer = if c.server.is_some() {
        "oidc_issuer = \"https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE\"\n"
    } else {
        ""
    };
    let text = format!(
        r#"version = 1
[stack]
name = "{stack}-b"
[cluster]
name = "ekshandson"
region = "us-east-1"
account_id = "123456789012"
{issuer}[policies.b-read]
document = '{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::team-b/*"}}]}}'
[roles.b-worker]
policies = ["b-read"]
[[service_accounts]]
namespace = "{ns}"
name = "worker"
role = "b-worker"
{extra}"#,
        stack = c.stack_name,
        ns = c.namespace,
    );
    let path = c.dir.path().join("team-b.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn two_stacks_on_one_cluster(c: &Cluster, b_first: bool) {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    c.deployment(None);
    c.advance(60);
    let (a, b) = (c.stack(), team_b_stack(c, ""));
    let apply = |stack: &str| {
        let (code, _, stderr) = c.irsa(&moto, &["apply", stack, "--auto-approve"]);
        assert_eq!(code, 0, "{stderr}");
        c.advance(60);
    };
    let (first, second) = if b_first { (&b, &a) } else { (&a, &b) };
    apply(first);
    // The second stack's plan is its own creates: nothing of the first is
    // deleted, and the provider the first made is used as it is.
    let plan = plan_json(c, &moto, second);
    let shape = shape(&plan);
    assert!(shape.iter().all(|s| s.ends_with(" create") || s.starts_with("deploy/")), "{plan:#}");
    assert!(!shape.iter().any(|s| s.starts_with("oidc/")), "{plan:#}");
    apply(second);
    // Each plans as no change after the other's apply.
    no_changes(c, &moto, &a);
    no_changes(c, &moto, &b);

    // Destroying the example leaves every resource of team B, and the
    // provider while team B's role trusts it.
    let (code, stdout, stderr) = c.irsa(&moto, &["destroy", &a, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    let changed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("  - ") || l.starts_with("  ~ ")).collect();
    assert!(
        changed.iter().all(|l| !l.contains("b-worker") && !l.contains("b-read") && !l.contains("/worker")),
        "{stdout}"
    );
    assert!(moto.block_on(moto.iam.get_role().role_name("backend-messages").send()).is_err());
    assert!(moto.block_on(moto.iam.get_role().role_name("b-worker").send()).is_ok());
    assert!(c.sa("worker").is_some() && c.sa("my-service-account").is_none());
    let providers = moto.block_on(moto.iam.list_open_id_connect_providers().send()).unwrap();
    assert_eq!(providers.open_id_connect_provider_list().len(), 1, "the provider stays while team B uses it");
    if !b_first {
        assert!(
            stdout.contains("is kept, though this stack made it: role b-worker outside this stack still trusts it"),
            "{stdout}"
        );
    }
    no_changes(c, &moto, &b);
}

#[test]
fn two_stacks_on_one_cluster_leave_each_other_alone() {
    two_stacks_on_one_cluster(&Cluster::test_server(), false);
}

#[test]
fn two_stacks_on_one_cluster_leave_each_other_alone_in_either_order() {
    two_stacks_on_one_cluster(&Cluster::test_server(), true);
}

#[test]
#[ignore = "needs cluster"]
fn two_stacks_on_one_cluster_leave_each_other_alone_on_a_real_cluster() {
    two_stacks_on_one_cluster(&Cluster::real(), false);
}

#[test]
#[ignore = "needs cluster"]
fn two_stacks_on_one_cluster_leave_each_other_alone_in_either_order_on_a_real_cluster() {
    two_stacks_on_one_cluster(&Cluster::real(), true);
}

fn policy_claimed_by_two_stacks(c: &Cluster) {
    let moto = Moto::start();
    let a = applied(c, &moto);
    // Team B names the example's policy as one of its own.
    let b = team_b_stack(c, "");
    let text = std::fs::read_to_string(&b).unwrap().replace("b-read", "messages-read");
    std::fs::write(&b, text).unwrap();
    let (code, stdout, stderr) = c.irsa(&moto, &["apply", &b, "--auto-approve"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let both = format!("policy/messages-read exists and belongs to irsa stack `{0}`, not `{0}-b`", c.stack_name);
    assert!(stderr.contains(&both), "{stderr}");
    // The help (wrapped by the terminal renderer) names the ARN to attach instead.
    assert!(stderr.contains("[\"arn:aws:iam::123456789012:policy/messages-read\"]"), "{stderr}");
    // Nothing was written: no role of team B, no ServiceAccount.
    assert!(moto.block_on(moto.iam.get_role().role_name("b-worker").send()).is_err());
    assert!(c.sa("worker").is_none());
    no_changes(c, &moto, &a);
}

#[test]
fn a_policy_name_claimed_by_two_stacks_is_refused_and_nothing_is_written() {
    policy_claimed_by_two_stacks(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn a_policy_name_claimed_by_two_stacks_is_refused_and_nothing_is_written_on_a_real_cluster() {
    policy_claimed_by_two_stacks(&Cluster::real());
}
