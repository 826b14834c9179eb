//! A cluster that does not hold still while irsa works: Deployments
//! rescaled, relabelled and rewritten by their controller between the plan
//! and the apply, or during the apply's IAM settle wait. irsa's saved plans
//! and writes depend only on the fields they use, so none of that is a
//! conflict; a field they do use that moved still is, and is named.
//!
//! Each scenario runs against the Kubernetes test API server, and again
//! against a real cluster with `cargo test -- --ignored` and `KUBECONFIG`
//! set, in its current context or `IRSA_TEST_CONTEXT` (IAM stays on moto;
//! a fresh namespace of the scenario's own, deleted at the end, and a stack
//! named like it, so scenarios running at once never see each other's
//! resources as their own); the harness is `world.rs`, shared with
//! `cluster.rs`.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::support::{Moto, plan_shape as shape};
use crate::world::{self, Cluster};

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/irsa/backend-messages";

/// moto and a cluster, for one scenario: the shared harness of
/// `world.rs`, with moto at hand and the example's `arn =` role made.
struct World {
    moto: Moto,
    c: Cluster,
}

impl std::ops::Deref for World {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.c
    }
}

impl World {
    fn test_server() -> World {
        World::on(Cluster::test_server())
    }

    fn real() -> World {
        World::on(Cluster::real())
    }

    fn on(c: Cluster) -> World {
        let moto = Moto::start();
        moto.hand_made_role("Role");
        World { moto, c }
    }

    fn out(&self) -> String {
        self.dir.path().join("plan.irsa").to_str().unwrap().to_owned()
    }

    fn sa(&self) -> Option<ServiceAccount> {
        self.c.sa("my-service-account")
    }

    fn annotations(&self) -> std::collections::BTreeMap<String, String> {
        self.sa().unwrap().metadata.annotations.unwrap_or_default()
    }

    /// A write by someone else (`manager`) to the ServiceAccount.
    fn patch_sa(&self, manager: &str, patch: Value) {
        self.c.patch_sa("my-service-account", manager, patch);
    }

    fn irsa(&self, args: &[&str]) -> (i32, String, String) {
        self.c.irsa(&self.moto, args)
    }

    fn spawn(&self, args: &[&str]) -> std::thread::JoinHandle<(i32, String, String)> {
        self.c.spawn(&self.moto, args)
    }

    fn plan_json(&self, stack: &str) -> Value {
        world::plan_json(&self.c, &self.moto, stack)
    }

    fn no_changes(&self, stack: &str) {
        world::no_changes(&self.c, &self.moto, stack);
    }

    /// `plan --out`, and the saved plan's path.
    fn save(&self, stack: &str) -> String {
        let out = self.out();
        let (code, _, stderr) = self.irsa(&["plan", stack, "--out", &out]);
        assert_eq!(code, 0, "{stderr}");
        out
    }

    /// The example applied from nothing: the state later scenarios start from.
    fn applied(&self) -> String {
        world::apply_example(&self.c, &self.moto)
    }

    fn deployment(&self) {
        self.c.deployment(None);
    }

    fn ns(&self) -> &str {
        &self.namespace
    }
}

/// A pod's service account and the AWS_ROLE_ARN of its first container.
fn identity(pod: &Pod) -> (String, Option<String>) {
    let spec = pod.spec.as_ref().unwrap();
    let arn = spec.containers[0].env.iter().flatten().find(|e| e.name == "AWS_ROLE_ARN").and_then(|e| e.value.clone());
    (spec.service_account_name.clone().unwrap_or_else(|| "default".into()), arn)
}

use world::wait_for;

fn version(d: &Deployment) -> String {
    d.metadata.resource_version.clone().unwrap_or_default()
}

/// Someone scales the Deployment and labels and annotates it: its
/// resourceVersion moves, its controller writes status, and nothing irsa
/// depends on changes.
fn unrelated_writes(w: &World) {
    w.patch_deployment("kubectl-scale", json!({"spec": {"replicas": 3}}));
    w.patch_deployment(
        "kubectl-label",
        json!({"metadata": {"labels": {"team": "payments"}, "annotations": {"team/owner": "someone"}}}),
    );
}

fn saved_plan_survives_a_rescale(w: &World) {
    w.deployment();
    w.advance(60);
    let stack = w.stack();
    let out = w.save(&stack);
    let version_planned = version(&w.get_deployment());
    unrelated_writes(w);
    assert_ne!(version(&w.get_deployment()), version_planned, "the Deployment's resourceVersion moved");
    let (code, stdout, stderr) = w.irsa(&["apply", &out, "--auto-approve"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("Apply complete: 10 steps done"), "{stderr}");
    let d = w.get_deployment();
    assert_eq!(d.spec.template.spec.as_ref().unwrap().service_account_name.as_deref(), Some("my-service-account"));
    assert_eq!(d.spec.replicas, Some(3), "the rescale stands");
    assert_eq!(d.metadata.labels.unwrap_or_default().get("team").map(String::as_str), Some("payments"));
    w.advance(60);
    w.no_changes(&stack);
}

#[test]
fn a_saved_plan_is_applied_after_a_rescale_and_unrelated_edits() {
    saved_plan_survives_a_rescale(&World::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn a_saved_plan_is_applied_after_a_rescale_and_unrelated_edits_on_a_real_cluster() {
    saved_plan_survives_a_rescale(&World::real());
}

fn saved_restart_survives_churn(w: &World) {
    let stack = w.applied();
    // The role annotation is pointed elsewhere by hand and the pods rolled
    // to take it: the plan puts it back and restarts them.
    w.patch_sa(
        "kubectl-edit",
        json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/someone-else"}}}),
    );
    w.advance(60);
    let roll =
        json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "by-hand"}}}}});
    w.patch_deployment("kubectl-rollout", roll);
    w.advance(60);
    let out = w.save(&stack);
    let (ns, json) = (w.ns(), std::fs::read_to_string(&out).unwrap());
    let saved: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        shape(&saved["plan"]),
        [format!("sa/{ns}/my-service-account update"), format!("deploy/{ns}/backend restart")]
    );
    // Rescaled (a new pod, a new name), annotated, and the ServiceAccount
    // annotated by someone else too: its resourceVersion moves as well.
    unrelated_writes(w);
    w.patch_sa("kubectl-annotate", json!({"metadata": {"annotations": {"team/owner": "payments"}}}));
    w.advance(5);
    let (code, stdout, stderr) = w.irsa(&["apply", &out, "--auto-approve"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains(&format!("deploy/{ns}/backend: restarted")), "{stderr}");
    let annotations = w.annotations();
    assert_eq!(annotations["eks.amazonaws.com/role-arn"], ROLE_ARN);
    assert_eq!(annotations["team/owner"], "payments", "another writer's annotation stays");
    let template = w.get_deployment().spec.template.metadata.unwrap_or_default().annotations.unwrap_or_default();
    assert_ne!(template["kubectl.kubernetes.io/restartedAt"], "by-hand", "irsa restarted the pods");
    w.advance(60);
    w.no_changes(&stack);
}

#[test]
fn a_saved_restart_is_applied_after_a_rescale_and_edits_of_both_objects() {
    saved_restart_survives_churn(&World::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn a_saved_restart_is_applied_after_a_rescale_and_edits_of_both_objects_on_a_real_cluster() {
    saved_restart_survives_churn(&World::real());
}

/// A live apply waits for IAM to settle before it points the Deployment at
/// the new service account; `during` writes to the Deployment in that wait.
fn live_apply_with_a_write_in_the_settle_wait(w: &World, during: impl FnOnce(&World)) -> (i32, String) {
    w.deployment();
    w.advance(60);
    let stack = w.stack();
    let version_read = version(&w.get_deployment());
    let run = w.spawn(&["apply", &stack, "--auto-approve", "--iam-settle-seconds", "4"]);
    wait_for(|| w.sa().is_some());
    during(w);
    assert_ne!(version(&w.get_deployment()), version_read);
    let (code, _, stderr) = run.join().unwrap();
    (code, stderr)
}

fn busy_deployment_is_patched(w: &World) {
    let (code, stderr) = live_apply_with_a_write_in_the_settle_wait(w, unrelated_writes);
    assert_eq!(code, 0, "{stderr}");
    let d = w.get_deployment();
    assert_eq!(d.spec.template.spec.as_ref().unwrap().service_account_name.as_deref(), Some("my-service-account"));
    assert_eq!(d.metadata.annotations.unwrap_or_default()["team/owner"], "someone", "the other writer's edit stands");
    assert_eq!(d.spec.replicas, Some(3));
}

#[test]
fn a_live_apply_patches_a_deployment_written_to_while_it_waits() {
    busy_deployment_is_patched(&World::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn a_live_apply_patches_a_deployment_written_to_while_it_waits_on_a_real_cluster() {
    busy_deployment_is_patched(&World::real());
}

fn moved_service_account_name_is_not_overwritten(w: &World) {
    let repoint = |w: &World| {
        w.patch_deployment("kubectl-edit", json!({"spec": {"template": {"spec": {"serviceAccountName": "other"}}}}))
    };
    let (code, stderr) = live_apply_with_a_write_in_the_settle_wait(w, repoint);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "deployment {}/backend: spec.template.spec.serviceAccountName changed since it was read (absent → \"other\"); irsa did not overwrite it: plan again",
            w.ns()
        )),
        "{stderr}"
    );
    let d = w.get_deployment();
    assert_eq!(d.spec.template.spec.unwrap().service_account_name.as_deref(), Some("other"), "the other edit stands");
}

#[test]
fn a_live_apply_does_not_overwrite_a_service_account_name_changed_while_it_waits() {
    moved_service_account_name_is_not_overwritten(&World::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn a_live_apply_does_not_overwrite_a_service_account_name_changed_while_it_waits_on_a_real_cluster() {
    moved_service_account_name_is_not_overwritten(&World::real());
}

fn saved_plan_refused_when_service_account_name_moved(w: &World) {
    w.deployment();
    w.advance(60);
    let stack = w.stack();
    let out = w.save(&stack);
    w.patch_deployment("kubectl-edit", json!({"spec": {"template": {"spec": {"serviceAccountName": "other"}}}}));
    let (code, stdout, stderr) = w.irsa(&["apply", &out, "--auto-approve"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "deploy/{}/backend: changed since the plan was made (service_account_name \"default\" -> \"other\")",
            w.ns()
        )),
        "{stderr}"
    );
    assert!(w.sa().is_none(), "nothing was applied");
}

#[test]
fn a_saved_plan_is_refused_when_the_service_account_name_moved() {
    saved_plan_refused_when_service_account_name_moved(&World::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn a_saved_plan_is_refused_when_the_service_account_name_moved_on_a_real_cluster() {
    saved_plan_refused_when_service_account_name_moved(&World::real());
}

fn saved_plan_refused_when_role_annotation_moved(w: &World) {
    let stack = w.applied();
    let edit = |arn: &str| {
        w.patch_sa("kubectl-edit", json!({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": arn}}}))
    };
    edit("arn:aws:iam::123456789012:role/first");
    w.advance(60);
    let out = w.save(&stack);
    edit("arn:aws:iam::123456789012:role/second");
    let (code, stdout, stderr) = w.irsa(&["apply", &out, "--auto-approve"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "sa/{}/my-service-account: changed since the plan was made (annotations[eks.amazonaws.com/role-arn] \"arn:aws:iam::123456789012:role/first\" -> \"arn:aws:iam::123456789012:role/second\")",
            w.ns()
        )),
        "{stderr}"
    );
    assert_eq!(w.annotations()["eks.amazonaws.com/role-arn"], "arn:aws:iam::123456789012:role/second");
}

#[test]
fn a_saved_plan_is_refused_when_the_role_annotation_moved() {
    saved_plan_refused_when_role_annotation_moved(&World::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn a_saved_plan_is_refused_when_the_role_annotation_moved_on_a_real_cluster() {
    saved_plan_refused_when_role_annotation_moved(&World::real());
}

fn stale_wins_over_a_plan_error(w: &World) {
    w.deployment();
    w.advance(60);
    let stack = w.stack();
    let out = w.save(&stack);
    // Helm makes the ServiceAccount the plan would create.
    let helm: ServiceAccount = serde_json::from_value(json!({"metadata": {
        "name": "my-service-account",
        "namespace": w.ns(),
        "labels": {"app.kubernetes.io/managed-by": "Helm"}
    }}))
    .unwrap();
    let api: Api<ServiceAccount> = Api::namespaced(w.client.clone(), w.ns());
    w.rt.block_on(api.create(&PostParams { field_manager: Some("helm".into()), ..Default::default() }, &helm)).unwrap();
    let (code, stdout, stderr) = w.irsa(&["apply", &out, "--auto-approve"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    let ns = w.ns();
    let moved = stderr.find(&format!("sa/{ns}/my-service-account: it did not exist when planned, and exists now"));
    let failed = stderr.find("A plan made now fails too:");
    assert!(moved.is_some() && failed.is_some() && moved < failed, "what moved, then the plan's errors: {stderr}");
    assert!(
        stderr.contains(&format!(
            "sa/{ns}/my-service-account already exists and is not managed by irsa (managed by Helm)"
        )),
        "{stderr}"
    );
    assert!(
        w.moto.block_on(w.moto.iam.get_role().role_name("backend-messages").send()).is_err(),
        "nothing was applied"
    );
}

#[test]
fn a_saved_plan_whose_resources_moved_exits_3_even_when_a_new_plan_fails() {
    stale_wins_over_a_plan_error(&World::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn a_saved_plan_whose_resources_moved_exits_3_even_when_a_new_plan_fails_on_a_real_cluster() {
    stale_wins_over_a_plan_error(&World::real());
}

fn seed_applied_under_status_churn(w: &World) {
    w.deployment();
    w.advance(60);
    let stack = w.stack();
    let out = w.save(&stack);
    // Only the Deployment controller writes now, as pods become Ready: the
    // status moves its resourceVersion, between the plan and the apply and
    // all through the apply.
    if let Some(s) = &w.server {
        let planned = version(&w.get_deployment());
        assert_ne!(s.touch_status("deployments", w.ns(), "backend"), planned);
        s.set_status_churn(Some(Duration::from_millis(20)));
    }
    let (code, stdout, stderr) = w.irsa(&["apply", &out, "--auto-approve", "--iam-settle-seconds", "1"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("Apply complete: 10 steps done"), "{stderr}");
    if let Some(s) = &w.server {
        s.set_status_churn(None);
    }
    if !w.wait_rolled_out(Duration::from_secs(60)) {
        eprintln!("the cluster does not roll pods out (no kubelet?): the pods are not checked");
        return;
    }
    w.advance(60);
    w.no_changes(&stack);
    if w.has_webhook() {
        // The new pods run as the service account and got its role from the webhook.
        let pods = w.pods();
        assert_eq!(pods.len(), 2, "the old ReplicaSet's pods are gone");
        for pod in &pods {
            assert_eq!(identity(pod), ("my-service-account".into(), Some(ROLE_ARN.into())));
        }
    }
}

#[test]
fn the_seed_stack_goes_from_nothing_to_applied_under_status_churn_and_its_pods_get_the_role() {
    seed_applied_under_status_churn(&World::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn the_seed_stack_goes_from_nothing_to_applied_under_status_churn_and_its_pods_get_the_role_on_a_real_cluster() {
    seed_applied_under_status_churn(&World::real());
}

fn plan_during_own_rollout(w: &World) {
    w.deployment();
    w.advance(60);
    let stack = w.stack();
    let held = w.hold_rollouts(true);
    let (code, _, stderr) = w.irsa(&["apply", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    w.advance(60);
    // Right after irsa pointed the Deployment at the service account: the
    // old ReplicaSet's pods still run as `default`, the new ones are not
    // Ready. They are being replaced, not stale: no restart.
    let plan = w.plan_json(&stack);
    assert_eq!(shape(&plan), Vec::<String>::new(), "{plan:#}");
    if held {
        assert!(w.pods().iter().any(|p| identity(p).0 == "default"), "the rollout is held with old pods left");
        let warnings = plan["warnings"].to_string();
        assert!(warnings.contains(&format!("deployment {}/backend is rolling out", w.ns())), "{warnings}");
        assert!(warnings.contains("plan again once the rollout settles"), "{warnings}");
        // Applying that plan changes nothing: the rollout is not started over.
        let template = w.get_deployment().spec.template;
        let (code, stdout, stderr) = w.irsa(&["apply", &stack, "--auto-approve"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("No changes."), "{stdout}");
        assert_eq!(w.get_deployment().spec.template, template);
        w.hold_rollouts(false);
    }
    if !w.wait_rolled_out(Duration::from_secs(60)) {
        eprintln!("the cluster does not roll pods out (no kubelet?): the settled plan is not checked");
        return;
    }
    w.advance(60);
    w.no_changes(&stack);
}

#[test]
fn a_plan_during_irsas_own_rollout_restarts_nothing_and_is_empty_once_it_settles() {
    plan_during_own_rollout(&World::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn a_plan_during_irsas_own_rollout_restarts_nothing_and_is_empty_once_it_settles_on_a_real_cluster() {
    plan_during_own_rollout(&World::real());
}
