//! The IAM half against the moto server, through the built CLI.
//!
//! Each test starts its own moto (about a second) so tests stay independent
//! under nextest. Changes "made by hand" go through aws-sdk-iam directly.
//! Until the Kubernetes provider lands, runs are limited to the IAM
//! addresses with --target, as a user of this version would do.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{Moto, plan_shape as shape};

const IAM_ONLY: &[&str] = &["--target", "oidc/", "--target", "policy/", "--target", "role/"];
const STACK: &str = "plans/ekshandson.toml";
const SUB: &str = "system:serviceaccount:backend:my-service-account";

fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    [base, extra].concat()
}

fn apply(moto: &Moto, stack: &str, extra: &[&str]) -> (i32, String, String) {
    moto.irsa(&with(&with(&["apply", stack, "--auto-approve"], IAM_ONLY), extra))
}

fn plan_json(moto: &Moto, stack: &str, extra: &[&str]) -> Value {
    let (code, stdout, stderr) = moto.irsa(&with(&with(&["plan", stack, "--format", "json"], IAM_ONLY), extra));
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn decode(doc: &str) -> Value {
    let text = if doc.trim_start().starts_with('{') {
        doc.to_owned()
    } else {
        percent_encoding::percent_decode_str(doc).decode_utf8().unwrap().into_owned()
    };
    serde_json::from_str(&text).unwrap()
}

fn applied(moto: &Moto) {
    moto.hand_made_role("Role");
    let (code, _, stderr) = apply(moto, STACK, &[]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn the_example_goes_from_nothing_to_applied_and_then_plans_nothing() {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    let (code, stdout, stderr) = apply(&moto, STACK, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Plan: 8 to create, 0 to update"), "{stdout}");
    assert!(stderr.contains("Apply complete: 8 steps done"), "{stderr}");

    // What IAM now holds is the chain the stack file describes.
    let role = moto.block_on(moto.iam.get_role().role_name("backend-messages").send()).unwrap();
    let role = role.role().unwrap();
    assert_eq!(role.path(), "/irsa/");
    assert_eq!(role.arn(), "arn:aws:iam::123456789012:role/irsa/backend-messages");
    let trust = decode(role.assume_role_policy_document().unwrap());
    let host = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
    assert_eq!(trust["Statement"][0]["Condition"]["StringEquals"][format!("{host}:sub")], json!([SUB]));
    assert_eq!(trust["Statement"][0]["Condition"]["StringEquals"][format!("{host}:aud")], json!(["sts.amazonaws.com"]));
    assert_eq!(
        trust["Statement"][0]["Principal"]["Federated"],
        json!([format!("arn:aws:iam::123456789012:oidc-provider/{host}")])
    );
    let tags: Vec<(&str, &str)> = role.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert!(tags.contains(&("irsa:managed-by", "irsa")) && tags.contains(&("irsa:stack", "ekshandson")), "{tags:?}");
    let attached = moto.block_on(moto.iam.list_attached_role_policies().role_name("backend-messages").send()).unwrap();
    let mut names: Vec<&str> = attached.attached_policies().iter().filter_map(|p| p.policy_name()).collect();
    names.sort();
    assert_eq!(names, ["messages-read", "messages-stream", "messages-write"]);
    let providers = moto.block_on(moto.iam.list_open_id_connect_providers().send()).unwrap();
    let arn = providers.open_id_connect_provider_list()[0].arn().unwrap().to_owned();
    let provider =
        moto.block_on(moto.iam.get_open_id_connect_provider().open_id_connect_provider_arn(&arn).send()).unwrap();
    assert_eq!(provider.client_id_list(), ["sts.amazonaws.com"]);

    // A second plan has nothing to do; so does a second apply.
    let (code, stdout, stderr) = moto.irsa(&with(&["plan", STACK, "--detailed-exitcode"], IAM_ONLY));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("No changes."), "{stdout}");
    let (code, _, stderr) = apply(&moto, STACK, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("Apply complete"), "an empty plan writes nothing: {stderr}");
}

#[test]
fn apply_without_a_terminal_needs_auto_approve() {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    let (code, stdout, stderr) = moto.irsa(&with(&["apply", STACK], IAM_ONLY));
    assert_eq!(code, 1);
    assert!(stdout.contains("Plan: 8 to create"), "the plan is shown first: {stdout}");
    assert!(stderr.contains("refusing to apply without confirmation: stdin is not a terminal"), "{stderr}");
    assert!(stderr.contains("--auto-approve"), "{stderr}");
    let roles = moto.block_on(moto.iam.list_roles().send()).unwrap();
    assert_eq!(roles.roles().len(), 1, "only the hand-made role exists: nothing was applied");
}

#[test]
fn drift_made_by_hand_is_planned_back() {
    let moto = Moto::start();
    applied(&moto);
    let read_arn = "arn:aws:iam::123456789012:policy/messages-read";
    let write_arn = "arn:aws:iam::123456789012:policy/messages-write";
    let host = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
    moto.block_on(async {
        // A policy detached, a document edited, a tag removed, the trust widened.
        moto.iam.detach_role_policy().role_name("backend-messages").policy_arn(read_arn).send().await.unwrap();
        let edited = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]});
        moto.iam
            .create_policy_version()
            .policy_arn(write_arn)
            .policy_document(edited.to_string())
            .set_as_default(true)
            .send()
            .await
            .unwrap();
        moto.iam.untag_role().role_name("backend-messages").tag_keys("team").send().await.unwrap();
        let wide = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::123456789012:oidc-provider/{host}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringLike": {format!("{host}:sub"): "system:serviceaccount:*"}}
        }]});
        moto.iam.update_assume_role_policy().role_name("backend-messages").policy_document(wide.to_string()).send().await.unwrap();
    });
    let plan = plan_json(&moto, STACK, &[]);
    assert_eq!(
        shape(&plan),
        [
            "policy/messages-write update",
            "role/backend-messages update",
            "role/backend-messages/attach/messages-read create"
        ]
    );
    let role = &plan["changes"][1];
    assert_eq!(role["changed"], json!(["tags", "trust_policy"]));

    let (code, _, stderr) = apply(&moto, STACK, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(shape(&plan_json(&moto, STACK, &[])), Vec::<String>::new());
    let versions = moto.block_on(moto.iam.list_policy_versions().policy_arn(write_arn).send()).unwrap();
    assert_eq!(versions.versions().len(), 3, "the edit and the fix are new versions; none is lost");
}

#[test]
fn a_document_that_differs_only_in_order_or_whitespace_is_no_change() {
    let moto = Moto::start();
    applied(&moto);
    let reordered = r#"{ "Statement" : { "Resource" : "arn:aws:dynamodb:us-east-1:123456789012:table/messages",
        "Action" : [ "dynamodb:Scan", "dynamodb:query", "dynamodb:GetItem", "dynamodb:BatchGetItem" ],
        "Effect" : "Allow", "Sid" : "ReadMessages" }, "Version" : "2012-10-17" }"#;
    moto.block_on(
        moto.iam
            .create_policy_version()
            .policy_arn("arn:aws:iam::123456789012:policy/messages-read")
            .policy_document(reordered)
            .set_as_default(true)
            .send(),
    )
    .unwrap();
    let (code, stdout, stderr) = moto.irsa(&with(&["plan", STACK, "--detailed-exitcode"], IAM_ONLY));
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn a_sixth_version_prunes_the_oldest() {
    let moto = Moto::start();
    applied(&moto);
    let arn = "arn:aws:iam::123456789012:policy/messages-stream";
    for i in 2..=5 {
        let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": format!("dynamodb:Op{i}"), "Resource": "*"}]});
        moto.block_on(
            moto.iam
                .create_policy_version()
                .policy_arn(arn)
                .policy_document(doc.to_string())
                .set_as_default(true)
                .send(),
        )
        .unwrap();
    }
    let plan = plan_json(&moto, STACK, &[]);
    assert_eq!(shape(&plan), ["policy/messages-stream update"]);
    let reasons = plan["changes"][0]["reasons"].to_string();
    assert!(reasons.contains("oldest non-default version is deleted first"), "{reasons}");
    let (code, _, stderr) = apply(&moto, STACK, &[]);
    assert_eq!(code, 0, "{stderr}");
    let versions = moto.block_on(moto.iam.list_policy_versions().policy_arn(arn).send()).unwrap();
    let mut ids: Vec<&str> = versions.versions().iter().filter_map(|v| v.version_id()).collect();
    ids.sort();
    assert_eq!(ids, ["v2", "v3", "v4", "v5", "v6"], "v1, the oldest, made room");
    let default = versions.versions().iter().find(|v| v.is_default_version()).unwrap();
    assert_eq!(default.version_id(), Some("v6"));
    assert_eq!(shape(&plan_json(&moto, STACK, &[])), Vec::<String>::new());
}

#[test]
fn an_unowned_role_is_refused_unless_adopted() {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    let trust = json!({"Version": "2012-10-17", "Statement": []});
    moto.block_on(
        moto.iam
            .create_role()
            .role_name("backend-messages")
            .path("/irsa/")
            .assume_role_policy_document(trust.to_string())
            .send(),
    )
    .unwrap();
    let (code, stdout, stderr) = apply(&moto, STACK, &[]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty(), "nothing is planned: {stdout}");
    assert!(stderr.contains("role/backend-messages already exists and is not managed by irsa"), "{stderr}");
    let policies =
        moto.block_on(moto.iam.list_policies().scope(aws_sdk_iam::types::PolicyScopeType::Local).send()).unwrap();
    assert!(policies.policies().is_empty(), "a refused plan writes nothing");

    let (code, stdout, stderr) = apply(&moto, STACK, &["--adopt"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("⇐ role/backend-messages"), "{stdout}");
    let role = moto.block_on(moto.iam.get_role().role_name("backend-messages").send()).unwrap();
    assert!(role.role().unwrap().tags().iter().any(|t| t.key() == "irsa:stack" && t.value() == "ekshandson"));
    assert_eq!(shape(&plan_json(&moto, STACK, &[])), Vec::<String>::new());
}

/// moto does not enforce the managed-policies-per-role quota (real IAM
/// does): irsa's own check must stop the run before any call.
#[test]
fn a_role_over_the_managed_policy_quota_fails_before_any_call() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let policies: Vec<String> = (0..11).map(|i| format!("\"arn:aws:iam::aws:policy/Policy{i}\"")).collect();
    let stack = format!(
        "version = 1\n[cluster]\nname = \"q\"\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\noidc_issuer = \"https://oidc.example.com/id/Q\"\n[roles.big]\npolicies = [{}]\n[[service_accounts]]\nnamespace = \"n\"\nname = \"a\"\nrole = \"big\"\n",
        policies.join(", ")
    );
    let path = dir.path().join("q.toml");
    std::fs::write(&path, stack).unwrap();
    let (code, _, stderr) = apply(&moto, path.to_str().unwrap(), &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("has 11 managed policies; IAM allows 10 per role"), "{stderr}");
    let roles = moto.block_on(moto.iam.list_roles().send()).unwrap();
    assert!(roles.roles().is_empty(), "no call was made");
}

fn export(moto: &Moto, stack: &str, strategy: &str, dir: &Path) -> (Value, u64) {
    let out = dir.join(format!("{strategy}.json"));
    let (code, _, stderr) = moto
        .irsa(&with(&["refresh", stack, "--refresh-strategy", strategy, "--export", out.to_str().unwrap()], IAM_ONLY));
    assert_eq!(code, 0, "{stderr}");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    let calls = v["refresh"]["iam_calls"].as_u64().unwrap();
    v.as_object_mut().unwrap().remove("refresh");
    v.as_object_mut().unwrap().remove("observed_at");
    (v, calls)
}

#[test]
fn bulk_and_per_resource_refresh_read_the_same_state() {
    let moto = Moto::start();
    applied(&moto);
    // Some drift, so that both read something other than what irsa wrote.
    moto.block_on(async {
        moto.iam.untag_role().role_name("backend-messages").tag_keys("team").send().await.unwrap();
        let doc =
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]});
        moto.iam
            .put_role_policy()
            .role_name("backend-messages")
            .policy_name("by-hand")
            .policy_document(doc.to_string())
            .send()
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let (bulk, bulk_calls) = export(&moto, STACK, "bulk", dir.path());
    let (per, per_calls) = export(&moto, STACK, "per-resource", dir.path());
    assert_eq!(bulk, per);
    assert_eq!(bulk["iam"]["roles"].as_array().unwrap().len(), 2, "the stack's role and the referenced one");
    assert!(bulk_calls < per_calls, "bulk {bulk_calls} calls, per-resource {per_calls}");
}

#[test]
fn a_bulk_refresh_of_200_roles_takes_a_constant_number_of_calls() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let mut stack = String::from(
        "version = 1\n[cluster]\nname = \"big\"\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\noidc_issuer = \"https://oidc.example.com/id/BIG\"\n",
    );
    for i in 0..200 {
        stack.push_str(&format!(
            "[roles.app-{i}]\npolicies = [\"arn:aws:iam::aws:policy/ReadOnlyAccess\"]\n[[service_accounts]]\nnamespace = \"ns\"\nname = \"app-{i}\"\nrole = \"app-{i}\"\n"
        ));
    }
    let path = dir.path().join("big.toml");
    std::fs::write(&path, stack).unwrap();
    let path = path.to_str().unwrap();
    let (code, _, stderr) = apply(&moto, path, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("Apply complete: 401 steps done"), "{stderr}");

    let (_, bulk_calls) = export(&moto, path, "bulk", dir.path());
    let (_, per_calls) = export(&moto, path, "per-resource", dir.path());
    // Providers (2), ListRoles and GetAccountAuthorizationDetails (a page
    // each per 1,000), GetAccountSummary (1): no call per role.
    eprintln!("refresh of 200 roles: bulk {bulk_calls} IAM calls, per-resource {per_calls}");
    assert!(bulk_calls <= 6, "bulk refresh of 200 roles took {bulk_calls} calls");
    assert!(per_calls >= 600, "per-resource refresh took {per_calls} calls");
    let plan = plan_json(&moto, path, &[]);
    assert_eq!(shape(&plan), Vec::<String>::new());
    assert_eq!(plan["refresh"]["iam_calls"].as_u64().unwrap(), bulk_calls);
}

/// A stack that binds the shared role with manage_trust = true, and later
/// drops one of its own roles.
fn shared_stack(dir: &Path, with_batch: bool) -> String {
    let mut stack = String::from(
        r#"version = 1
[cluster]
name = "shared"
region = "us-east-1"
account_id = "123456789012"
oidc_issuer = "https://oidc.example.com/id/SHARED"
[roles.legacy]
arn = "arn:aws:iam::123456789012:role/Role"
manage_trust = true
[roles.api]
policies = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
[[service_accounts]]
namespace = "apps"
name = "worker"
role = "legacy"
[[service_accounts]]
namespace = "apps"
name = "api"
role = "api"
"#,
    );
    if with_batch {
        stack.push_str(
            "[roles.batch]\npolicies = [\"arn:aws:iam::aws:policy/ReadOnlyAccess\"]\n[roles.batch.inline.notes]\ndocument = '{\"Version\": \"2012-10-17\", \"Statement\": [{\"Effect\": \"Allow\", \"Action\": \"s3:GetObject\", \"Resource\": \"*\"}]}'\n[[service_accounts]]\nnamespace = \"apps\"\nname = \"batch\"\nrole = \"batch\"\n",
        );
    }
    let path = dir.join("shared.toml");
    std::fs::write(&path, stack).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn a_shared_role_keeps_its_statements_and_a_dropped_role_is_deleted_with_what_hangs_on_it() {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = apply(&moto, &shared_stack(dir.path(), true), &[]);
    assert_eq!(code, 0, "{stderr}");
    let trust = moto.block_on(moto.iam.get_role().role_name("Role").send()).unwrap();
    let trust = decode(trust.role().unwrap().assume_role_policy_document().unwrap());
    let statements = trust["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 2, "the EC2 statement stays beside irsa's: {trust}");
    assert!(statements.iter().any(|s| s["Sid"] == "Irsashared"), "{trust}");

    // Drop the batch role from the file: it goes, detached and emptied first;
    // the shared role and the rest stay as they are.
    let stack = shared_stack(dir.path(), false);
    let plan = plan_json(&moto, &stack, &[]);
    assert_eq!(
        shape(&plan),
        [
            "role/batch delete",
            "role/batch/attach/arn:aws:iam::aws:policy/ReadOnlyAccess delete",
            "role/batch/inline/notes delete"
        ]
    );
    let (code, _, stderr) = apply(&moto, &stack, &[]);
    assert_eq!(code, 0, "{stderr}");
    let err = moto.block_on(moto.iam.get_role().role_name("batch").send()).unwrap_err();
    assert!(err.as_service_error().is_some_and(|e| e.is_no_such_entity_exception()));
    assert!(moto.block_on(moto.iam.get_role().role_name("Role").send()).is_ok(), "never delete what is not ours");
    assert_eq!(shape(&plan_json(&moto, &stack, &[])), Vec::<String>::new());
}

#[test]
fn a_new_role_path_replaces_the_role() {
    let moto = Moto::start();
    applied(&moto);
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(STACK).unwrap().replace("role_path = \"/irsa/\"", "role_path = \"/irsa/v2/\"");
    let stack = dir.path().join("moved.toml");
    std::fs::write(&stack, text).unwrap();
    // The stack's documents are relative to the stack file.
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    for p in ["messages-read", "messages-write", "messages-stream"] {
        std::fs::copy(format!("plans/policies/{p}.json"), dir.path().join(format!("policies/{p}.json"))).unwrap();
    }
    let stack = stack.to_str().unwrap();
    let plan = plan_json(&moto, stack, &[]);
    assert_eq!(shape(&plan)[0], "role/backend-messages delete+create");
    let (code, _, stderr) = apply(&moto, stack, &[]);
    assert_eq!(code, 0, "{stderr}");
    let role = moto.block_on(moto.iam.get_role().role_name("backend-messages").send()).unwrap();
    assert_eq!(role.role().unwrap().path(), "/irsa/v2/");
    let attached = moto.block_on(moto.iam.list_attached_role_policies().role_name("backend-messages").send()).unwrap();
    assert_eq!(attached.attached_policies().len(), 3);
    assert_eq!(shape(&plan_json(&moto, stack, &[])), Vec::<String>::new());
}

/// On a terminal, apply asks and only `yes` goes ahead (`script` gives irsa
/// a pseudo-terminal, as a person at a shell would).
#[test]
fn apply_on_a_terminal_asks_and_only_yes_goes_ahead() {
    use std::io::Write;
    let moto = Moto::start();
    moto.hand_made_role("Role");
    let run = |answer: &str| {
        let command = format!("{} apply {STACK} {}", env!("CARGO_BIN_EXE_irsa"), IAM_ONLY.join(" "));
        let mut child = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .envs(moto.env())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("script (util-linux) runs irsa on a pseudo-terminal");
        // Answer once the question is on the screen; the terminal echoes it.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        child.stdin.take().unwrap().write_all(format!("{answer}\n").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let screen = run("no");
    assert!(screen.contains("Apply these 8 changes? Only 'yes' will be accepted:"), "{screen}");
    assert!(screen.contains("Apply cancelled; nothing was changed."), "{screen}");
    assert!(moto.block_on(moto.iam.get_role().role_name("backend-messages").send()).is_err());

    let screen = run("yes");
    assert!(screen.contains("Apply complete: 8 steps done"), "{screen}");
    assert!(moto.block_on(moto.iam.get_role().role_name("backend-messages").send()).is_ok());
}

/// The example as a stack made before stacks had names: no `[stack]`.
fn unnamed_example(dir: &Path) -> String {
    let text = std::fs::read_to_string(STACK).unwrap().replace("[stack]\nname = \"ekshandson\"\n", "");
    assert!(!text.contains("[stack]"));
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    for p in ["messages-read", "messages-write", "messages-stream"] {
        std::fs::copy(format!("plans/policies/{p}.json"), dir.join(format!("policies/{p}.json"))).unwrap();
    }
    let path = dir.join("old.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn a_stack_applied_before_stacks_had_names_plans_as_no_change() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let old = unnamed_example(dir.path());
    moto.hand_made_role("Role");
    let (code, _, stderr) = apply(&moto, &old, &[]);
    assert_eq!(code, 0, "{stderr}");
    // It carries its cluster's name, and keeps meaning it.
    let role = moto.block_on(moto.iam.get_role().role_name("backend-messages").send()).unwrap();
    assert!(role.role().unwrap().tags().iter().any(|t| t.key() == "irsa:stack" && t.value() == "ekshandson"));
    assert_eq!(shape(&plan_json(&moto, &old, &[])), Vec::<String>::new());
    // Writing that name down explicitly changes nothing either.
    assert_eq!(shape(&plan_json(&moto, STACK, &[])), Vec::<String>::new());
}

#[test]
fn a_stack_is_renamed_only_with_rename_from() {
    let moto = Moto::start();
    applied(&moto);
    let dir = tempfile::tempdir().unwrap();
    let _ = unnamed_example(dir.path());
    let text = std::fs::read_to_string(STACK)
        .unwrap()
        .replace("name = \"ekshandson\"\n\n[cluster]", "name = \"messaging\"\n\n[cluster]");
    assert!(text.contains("name = \"messaging\""));
    let renamed = dir.path().join("renamed.toml");
    std::fs::write(&renamed, text).unwrap();
    let renamed = renamed.to_str().unwrap();

    // A new name alone is another stack: the old one's resources are refused, never taken.
    let (code, _, stderr) = moto.irsa(&with(&["plan", renamed], IAM_ONLY));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("role/backend-messages exists and belongs to irsa stack `ekshandson`, not `messaging`"),
        "{stderr}"
    );
    assert!(stderr.contains("plan with --rename-from ekshandson"), "{stderr}");

    // With --rename-from, the markers move, as a planned change; nothing is deleted.
    let plan = plan_json(&moto, renamed, &["--rename-from", "ekshandson"]);
    let shape = shape(&plan);
    assert!(!shape.iter().any(|s| s.contains("delete")), "{plan:#}");
    assert!(shape.contains(&"role/backend-messages adopt".to_owned()), "{plan:#}");
    assert!(shape.contains(&"oidc/ekshandson update".to_owned()), "{plan:#}");
    let (code, _, stderr) = apply(&moto, renamed, &["--rename-from", "ekshandson"]);
    assert_eq!(code, 0, "{stderr}");
    let role = moto.block_on(moto.iam.get_role().role_name("backend-messages").send()).unwrap();
    assert!(role.role().unwrap().tags().iter().any(|t| t.key() == "irsa:stack" && t.value() == "messaging"));
    assert_eq!(super::support::plan_shape(&plan_json(&moto, renamed, &[])), Vec::<String>::new());
    // The old name now owns nothing: its file would create everything anew.
    let (code, _, stderr) = moto.irsa(&with(&["plan", STACK], IAM_ONLY));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("belongs to irsa stack `messaging`, not `ekshandson`"), "{stderr}");
}
