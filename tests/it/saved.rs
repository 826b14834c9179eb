//! Saved plans as a release pipeline uses them: planned and reviewed in a
//! pull request, applied later and elsewhere, exactly, or refused with exit
//! code 3 when the world moved.

use serde_json::json;

use crate::support::Moto;

const IAM_ONLY: &[&str] = &["--target", "oidc/", "--target", "policy/", "--target", "role/"];
const STACK: &str = "plans/ekshandson.toml";

fn save(moto: &Moto, stack: &str, out: &str) {
    let (code, _, stderr) = moto.irsa(&[&["plan", stack, "--out", out][..], IAM_ONLY].concat());
    assert_eq!(code, 0, "{stderr}");
}

fn idle(moto: &Moto, stack: &str) {
    let (code, stdout, stderr) = moto.irsa(&[&["plan", stack, "--detailed-exitcode"][..], IAM_ONLY].concat());
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn a_saved_plan_is_applied_later_exactly_as_reviewed() {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan.json");
    let out = out.to_str().unwrap();
    save(&moto, STACK, out);
    let (code, stdout, stderr) = moto.irsa(&["apply", out, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Plan: 8 to create"), "the reviewed plan is shown again: {stdout}");
    assert!(stderr.contains("Apply complete: 8 steps done"), "{stderr}");
    idle(&moto, STACK);
    // Applied again, it finds its own work done and does nothing twice.
    let (code, _, stderr) = moto.irsa(&["apply", out, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("8 steps of this plan were done by an earlier run"), "{stderr}");
    assert!(stderr.contains("Apply complete: 0 steps done"), "{stderr}");
}

#[test]
fn a_saved_plan_travels_to_another_machine() {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan.json");
    let out = out.to_str().unwrap();
    save(&moto, STACK, out);
    // Another runner: an empty store of its own.
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, _, stderr) = moto.irsa(&["apply", out, "--auto-approve", "--store", elsewhere.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    idle(&moto, STACK);
}

#[test]
fn a_plan_whose_resources_moved_is_refused_with_exit_3_naming_each() {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    // Applied once, then drift is planned...
    let (code, _, stderr) = moto.irsa(&[&["apply", STACK, "--auto-approve"][..], IAM_ONLY].concat());
    assert_eq!(code, 0, "{stderr}");
    moto.block_on(moto.iam.untag_role().role_name("backend-messages").tag_keys("team").send()).unwrap();
    moto.block_on(
        moto.iam
            .detach_role_policy()
            .role_name("backend-messages")
            .policy_arn("arn:aws:iam::123456789012:policy/messages-read")
            .send(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan.json");
    let out = out.to_str().unwrap();
    save(&moto, STACK, out);
    // ...and before it is applied, someone changes the role again and
    // attaches the policy by hand.
    let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]});
    moto.block_on(async {
        moto.iam
            .put_role_policy()
            .role_name("backend-messages")
            .policy_name("hand")
            .policy_document(doc.to_string())
            .send()
            .await
            .unwrap();
        moto.iam
            .tag_role()
            .role_name("backend-messages")
            .tags(aws_sdk_iam::types::Tag::builder().key("owner").value("bob").build().unwrap())
            .send()
            .await
            .unwrap();
        moto.iam
            .attach_role_policy()
            .role_name("backend-messages")
            .policy_arn("arn:aws:iam::123456789012:policy/messages-read")
            .send()
            .await
            .unwrap();
    });
    let (code, stdout, stderr) = moto.irsa(&["apply", out, "--auto-approve"]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "nothing is shown as if it would run: {stdout}");
    assert!(stderr.contains("the saved plan is stale; nothing was changed"), "{stderr}");
    assert!(
        stderr.contains("role/backend-messages: changed since the plan was made (tags[owner] (absent) -> \"bob\")"),
        "{stderr}"
    );
    assert!(
        stderr.contains("role/backend-messages/attach/messages-read: it is already as the plan would make it"),
        "{stderr}"
    );
    let role = moto.block_on(moto.iam.get_role().role_name("backend-messages").send()).unwrap();
    assert!(role.role().unwrap().tags().iter().any(|t| t.key() == "owner"), "nothing was written");
}

#[test]
fn a_plan_whose_stack_file_changed_is_refused_with_exit_3() {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    for p in ["messages-read", "messages-write", "messages-stream"] {
        std::fs::copy(format!("plans/policies/{p}.json"), dir.path().join(format!("policies/{p}.json"))).unwrap();
    }
    let stack = dir.path().join("stack.toml");
    std::fs::copy(STACK, &stack).unwrap();
    let stack = stack.to_str().unwrap();
    let out = dir.path().join("plan.json");
    let out = out.to_str().unwrap();
    save(&moto, stack, out);
    // A policy document edited after review: the stack file itself is the same.
    let doc = dir.path().join("policies/messages-read.json");
    let edited = std::fs::read_to_string(&doc).unwrap().replace("dynamodb:Scan", "dynamodb:DeleteTable");
    std::fs::write(&doc, edited).unwrap();
    let (code, _, stderr) = moto.irsa(&["apply", out, "--auto-approve"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("the stack file or one of its policy documents changed since the plan was made"),
        "{stderr}"
    );
    let roles = moto.block_on(moto.iam.list_roles().send()).unwrap();
    assert_eq!(roles.roles().len(), 1, "nothing was applied");
}
