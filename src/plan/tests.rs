//! The planner, table by table: each test names a situation a user meets.
//!
//! Stacks are written as TOML (the format users write); observed states are
//! built with the small builder below, starting from `in_sync`, which
//! describes what a finished apply leaves, derived from the desired model
//! independently of the planner.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::model::desired::{Desired, Role, markers};
use crate::model::observed::*;
use crate::model::policy_doc::PolicyDocument;
use crate::model::quotas::Quotas;
use crate::model::trust;

const ISSUER: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const HOST: &str = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

const READ: &str = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Query"], "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/messages"}]}"#;

fn stack(body: &str) -> Desired {
    let text = format!(
        r#"version = 1
[cluster]
name = "demo"
region = "us-east-1"
account_id = "123456789012"
oidc_issuer = "{ISSUER}"
{body}"#
    );
    match crate::config::parse(Path::new("stack.toml"), text) {
        Ok(d) => d,
        Err(p) => panic!("test stack is invalid: {:#?}", p.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
    }
}

/// The usual test stack: one policy, one role, one binding, one deployment.
fn basic() -> Desired {
    stack(&format!(
        r#"
[policies.read]
document = '{READ}'
[roles.app]
policies = ["read", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]
[roles.app.inline.kms]
document = '{READ}'
[[service_accounts]]
namespace = "backend"
name = "app"
role = "app"
workloads = ["deployment/app"]
"#
    ))
}

fn ours(d: &Desired) -> BTreeMap<String, String> {
    d.ownership_tags()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// What exists once `d` is applied: built from the desired model directly.
fn in_sync(d: &Desired) -> Observed {
    let mut o = Observed { format_version: 1, ..Default::default() };
    o.cluster.oidc_issuer = Some(ISSUER.into());
    o.iam.oidc_providers.push(OidcProvider {
        arn: format!("arn:aws:iam::123456789012:oidc-provider/{HOST}"),
        url: HOST.into(),
        client_ids: vec!["sts.amazonaws.com".into()],
        thumbprints: vec![],
        tags: ours(d).into(),
        // As a refresh reports it: the stack's own roles trust the provider.
        trusted_by: d
            .roles
            .values()
            .filter_map(|r| match r {
                Role::Owned(r) => Some(r.name.clone()),
                Role::Referenced(_) => None,
            })
            .collect(),
    });
    for p in d.policies.values() {
        let mut tags = p.tags.clone();
        tags.extend(ours(d));
        o.iam.policies.push(ObservedPolicy {
            name: p.name.clone(),
            path: p.path.clone(),
            arn: d.policy_arn(p),
            description: p.description.clone(),
            document: p.document.clone(),
            default_version_id: "v1".into(),
            version_count: 1,
            tags: tags.into(),
        });
    }
    for role in d.roles.values() {
        let Role::Owned(r) = role else { continue };
        let subjects: Vec<String> = d.bindings_of(&r.name).map(|b| b.subject()).collect();
        let provider = format!("arn:aws:iam::123456789012:oidc-provider/{HOST}");
        let statement = trust::web_identity_statement(&trust::irsa_sid(&d.stack.name), &provider, HOST, &subjects);
        let mut tags = r.tags.clone();
        tags.extend(ours(d));
        o.iam.roles.push(ObservedRole {
            name: r.name.clone(),
            path: r.path.clone(),
            arn: d.role_arn(r),
            description: r.description.clone(),
            max_session_duration: r.max_session_duration,
            permissions_boundary: r.permissions_boundary.clone(),
            trust_policy: trust::owned_trust_policy(vec![statement]),
            tags: tags.into(),
            attached_policies: r.policies.iter().map(|p| d.policy_ref_arn(p)).collect(),
            inline_policies: r.inline.clone(),
        });
    }
    for b in &d.bindings {
        if !o.cluster.namespaces.contains(&b.namespace) {
            o.cluster.namespaces.push(b.namespace.clone());
        }
        let mut annotations = b.annotations.clone();
        annotations.insert(markers::ANNOTATION_ROLE_ARN.into(), d.binding_role_arn(b));
        annotations.insert(markers::ANNOTATION_STACK.into(), d.stack.name.clone());
        o.cluster.service_accounts.push(ObservedServiceAccount {
            namespace: b.namespace.clone(),
            name: b.name.clone(),
            resource_version: "1".into(),
            annotations: annotations.into(),
            labels: BTreeMap::from([(markers::LABEL_MANAGED_BY.into(), "irsa".into())]).into(),
            role_arn_set_at: Some(at("2026-01-01T00:00:00Z")),
            irsa_annotations: vec![],
        });
        for dep in &b.deployments {
            o.cluster.deployments.push(ObservedDeployment {
                namespace: b.namespace.clone(),
                name: dep.clone(),
                resource_version: "1".into(),
                service_account_name: Some(b.name.clone()),
                restarted_at: None,
                rollout: Rollout::default(),
                pods: vec![ObservedPod {
                    name: format!("{dep}-1"),
                    created_at: at("2026-01-02T00:00:00Z"),
                    service_account_name: Some(b.name.clone()),
                    containers: vec![ObservedContainer {
                        name: "main".into(),
                        aws_role_arn: Some(d.binding_role_arn(b)),
                        aws_web_identity_token_file: Some(
                            "/var/run/secrets/eks.amazonaws.com/serviceaccount/token".into(),
                        ),
                    }],
                }],
            });
        }
    }
    o
}

/// The cluster and nothing of IRSA: the namespace and deployment exist.
fn empty_but_cluster(d: &Desired) -> Observed {
    let full = in_sync(d);
    let mut o = Observed { format_version: 1, ..Default::default() };
    o.cluster.oidc_issuer = full.cluster.oidc_issuer;
    o.cluster.namespaces = full.cluster.namespaces;
    o.cluster.deployments = full.cluster.deployments;
    for dep in &mut o.cluster.deployments {
        dep.service_account_name = None;
        for pod in &mut dep.pods {
            pod.service_account_name = None;
            pod.containers[0].aws_role_arn = None;
            pod.containers[0].aws_web_identity_token_file = None;
        }
    }
    o
}

fn run(d: &Desired, o: &Observed) -> Plan {
    run_with(d, o, &PlanOptions::default())
}

fn run_with(d: &Desired, o: &Observed, opts: &PlanOptions) -> Plan {
    match plan(d, o, opts) {
        Ok(p) => p,
        Err(e) => panic!("plan failed: {e:#?}"),
    }
}

fn errors(d: &Desired, o: &Observed, opts: &PlanOptions) -> Vec<PlanError> {
    match plan(d, o, opts) {
        Ok(p) => panic!("expected plan errors, got {} changes", p.changes.len()),
        Err(e) => e,
    }
}

/// `address verb` lines, in plan order: the shape a reviewer scans.
fn shape(p: &Plan) -> Vec<String> {
    p.changes.iter().map(|c| format!("{} {}", c.address, c.verb())).collect()
}

fn change<'p>(p: &'p Plan, address: &str) -> &'p Change {
    p.changes.iter().find(|c| c.address.to_string() == address).unwrap_or_else(|| panic!("no change for {address}"))
}

fn role_mut<'o>(o: &'o mut Observed, name: &str) -> &'o mut ObservedRole {
    o.iam.roles.iter_mut().find(|r| r.name == name).unwrap()
}

/// A role made by hand before irsa, with the given trust policy.
fn foreign_role(name: &str, trust: serde_json::Value) -> ObservedRole {
    ObservedRole {
        name: name.into(),
        path: "/".into(),
        arn: format!("arn:aws:iam::123456789012:role/{name}"),
        description: None,
        max_session_duration: 3600,
        permissions_boundary: None,
        trust_policy: PolicyDocument::from_value(trust),
        tags: BTreeMap::new().into(),
        attached_policies: vec![],
        inline_policies: BTreeMap::new(),
    }
}

#[test]
fn from_nothing_everything_is_created_in_dependency_order() {
    let d = basic();
    let p = run(&d, &empty_but_cluster(&d));
    assert_eq!(
        shape(&p),
        [
            "oidc/demo create",
            "policy/read create",
            "role/app create",
            "role/app/attach/arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess create",
            "role/app/attach/read create",
            "role/app/inline/kms create",
            "sa/backend/app create",
            "deploy/backend/app update",
        ]
    );
    assert_eq!(p.summary, Summary { create: 7, update: 1, ..Default::default() });
    let role = change(&p, "role/app");
    let trust = &role.after.as_ref().unwrap()["trust_policy"];
    assert_eq!(
        trust["Statement"][0]["Principal"]["Federated"],
        json!([format!("arn:aws:iam::123456789012:oidc-provider/{HOST}")])
    );
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"][format!("{HOST}:sub")],
        json!(["system:serviceaccount:backend:app"])
    );
    assert_eq!(trust["Statement"][0]["Condition"]["StringEquals"][format!("{HOST}:aud")], json!(["sts.amazonaws.com"]));
    assert_eq!(role.after.as_ref().unwrap()["tags"], json!({"irsa:managed-by": "irsa", "irsa:stack": "demo"}));
    let sa = change(&p, "sa/backend/app");
    assert_eq!(
        sa.after.as_ref().unwrap()["annotations"][markers::ANNOTATION_ROLE_ARN],
        json!("arn:aws:iam::123456789012:role/app")
    );
    let deploy = change(&p, "deploy/backend/app");
    assert_eq!(*deploy.changed, ["service_account_name"]);
    assert_eq!(deploy.depends_on.iter().map(ToString::to_string).collect::<Vec<_>>(), ["sa/backend/app"]);
}

#[test]
fn a_converged_world_plans_nothing() {
    let d = basic();
    let p = run(&d, &in_sync(&d));
    assert_eq!(shape(&p), Vec::<String>::new());
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn aws_reformatting_of_documents_is_no_change() {
    let d = basic();
    let mut o = in_sync(&d);
    // As IAM returns it: URL-encoded, one action a string, statements in another order.
    let reformatted = "%7B%22Statement%22%3A%7B%22Resource%22%3A%5B%22arn%3Aaws%3Adynamodb%3Aus-east-1%3A123456789012%3Atable%2Fmessages%22%5D%2C%22Action%22%3A%5B%22dynamodb%3AQuery%22%2C%22dynamodb%3AGetItem%22%5D%2C%22Effect%22%3A%22Allow%22%7D%2C%22Version%22%3A%222012-10-17%22%7D";
    o.iam.policies[0].document = PolicyDocument::parse(reformatted).unwrap();
    role_mut(&mut o, "app").inline_policies.insert("kms".into(), PolicyDocument::parse(reformatted).unwrap());
    assert_eq!(shape(&run(&d, &o)), Vec::<String>::new());
}

#[test]
fn an_edited_policy_document_is_a_new_version() {
    let d = basic();
    let mut o = in_sync(&d);
    o.iam.policies[0].document = PolicyDocument::from_value(json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]
    }));
    let p = run(&d, &o);
    assert_eq!(shape(&p), ["policy/read update"]);
    let c = change(&p, "policy/read");
    assert_eq!(*c.changed, ["document"]);
    assert!(c.reasons.iter().any(|r| r.contains("new default version")), "{:?}", c.reasons);

    o.iam.policies[0].version_count = 5;
    let p = run(&d, &o);
    assert!(change(&p, "policy/read").reasons.iter().any(|r| r.contains("oldest non-default version")));
}

#[test]
fn a_policy_description_cannot_change_in_place() {
    let d = basic();
    let mut o = in_sync(&d);
    o.iam.policies[0].description = Some("old words".into());
    let p = run(&d, &o);
    assert_eq!(shape(&p), ["policy/read replace", "role/app/attach/read replace"]);
    assert_eq!(change(&p, "policy/read").actions, [Action::Delete, Action::Create]);
    assert_eq!(p.summary.replace, 2);
}

#[test]
fn a_new_role_path_replaces_the_role_and_restarts_its_pods() {
    let d = basic();
    let mut o = in_sync(&d);
    let role = role_mut(&mut o, "app");
    role.path = "/old/".into();
    role.arn = "arn:aws:iam::123456789012:role/old/app".into();
    o.cluster.service_accounts[0]
        .annotations
        .insert(markers::ANNOTATION_ROLE_ARN.into(), "arn:aws:iam::123456789012:role/old/app".into());
    o.cluster.deployments[0].pods[0].containers[0].aws_role_arn = Some("arn:aws:iam::123456789012:role/old/app".into());
    let p = run(&d, &o);
    assert_eq!(
        shape(&p),
        [
            "role/app replace",
            "role/app/attach/arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess create",
            "role/app/attach/read create",
            "role/app/inline/kms create",
            "sa/backend/app update",
            "deploy/backend/app restart",
        ]
    );
    let restart = change(&p, "deploy/backend/app");
    assert!(
        restart.reasons[0].contains("changes from arn:aws:iam::123456789012:role/old/app"),
        "{:?}",
        restart.reasons
    );
}

#[test]
fn drift_in_attachments_is_planned_back() {
    let d = basic();
    let mut o = in_sync(&d);
    let role = role_mut(&mut o, "app");
    role.attached_policies.retain(|a| !a.ends_with("policy/read"));
    role.attached_policies.push("arn:aws:iam::aws:policy/AdministratorAccess".into());
    role.inline_policies.insert("by-hand".into(), PolicyDocument::parse(READ).unwrap());
    let p = run(&d, &o);
    assert_eq!(
        shape(&p),
        [
            "role/app/attach/arn:aws:iam::aws:policy/AdministratorAccess delete",
            "role/app/attach/read create",
            "role/app/inline/by-hand delete",
        ]
    );
}

#[test]
fn a_trust_policy_widened_by_hand_is_planned_back() {
    let d = basic();
    let mut o = in_sync(&d);
    let role = role_mut(&mut o, "app");
    let mut doc = role.trust_policy.canonical().clone();
    doc["Statement"][0]["Condition"]["StringEquals"][format!("{HOST}:sub")] =
        json!(["system:serviceaccount:backend:app", "system:serviceaccount:backend:*"]);
    role.trust_policy = PolicyDocument::from_value(doc);
    let p = run(&d, &o);
    assert_eq!(shape(&p), ["role/app update"]);
    assert_eq!(*change(&p, "role/app").changed, ["trust_policy"]);
}

#[test]
fn a_removed_tag_is_planned_back() {
    let d = stack(&format!(
        r#"
[defaults]
tags = {{ team = "platform" }}
[policies.read]
document = '{READ}'
[roles.app]
policies = ["read"]
[[service_accounts]]
namespace = "backend"
name = "app"
role = "app"
"#
    ));
    let mut o = in_sync(&d);
    role_mut(&mut o, "app").tags.remove("team");
    let p = run(&d, &o);
    assert_eq!(shape(&p), ["role/app update"]);
    assert_eq!(*change(&p, "role/app").changed, ["tags"]);
}

#[test]
fn unowned_resources_are_refused_unless_adopted() {
    let d = basic();
    let mut o = in_sync(&d);
    role_mut(&mut o, "app").tags.clear();
    let e = errors(&d, &o, &PlanOptions::default());
    assert_eq!(e.len(), 1);
    assert!(e[0].message.contains("role/app already exists and is not managed by irsa"), "{}", e[0].message);
    assert!(e[0].help.contains("adopt = true on [roles.app]"));
    assert!(e[0].span.is_some());

    let p = run_with(&d, &o, &PlanOptions { adopt: true, ..Default::default() });
    assert_eq!(shape(&p), ["role/app adopt"]);
    let c = change(&p, "role/app");
    assert_eq!(*c.changed, ["tags"]);
    assert!(c.reasons[0].contains("adopted because of --adopt"));
    assert_eq!(p.summary.adopt, 1);
}

#[test]
fn adopting_never_replaces_what_irsa_does_not_own() {
    let d = basic();
    let mut o = in_sync(&d);
    let role = role_mut(&mut o, "app");
    role.tags.clear();
    role.path = "/by-hand/".into();
    o.iam.policies[0].tags.clear();
    o.iam.policies[0].description = Some("written by hand".into());
    let e = errors(&d, &o, &PlanOptions { adopt: true, ..Default::default() });
    let messages: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(messages.iter().all(|m| m.contains("irsa never replaces what it does not own")), "{messages:#?}");
    assert!(e.iter().any(|e| e.help.contains("path = \"/by-hand/\"")), "{e:#?}");
    assert!(e.iter().any(|e| e.help.contains("description = \"written by hand\"")), "{e:#?}");
}

#[test]
fn a_resource_of_another_stack_is_never_taken() {
    let d = basic();
    let mut o = in_sync(&d);
    role_mut(&mut o, "app").tags.insert(markers::TAG_STACK.into(), "other".into());
    let e = errors(&d, &o, &PlanOptions { adopt: true, ..Default::default() });
    assert!(e[0].message.contains("belongs to irsa stack `other`"), "{}", e[0].message);
}

#[test]
fn only_this_stacks_resources_are_deleted() {
    let d = basic();
    let mut o = in_sync(&d);
    let mut gone = o.iam.roles[0].clone();
    gone.name = "retired".into();
    gone.arn = "arn:aws:iam::123456789012:role/retired".into();
    let mut foreign = gone.clone();
    foreign.name = "someone-elses".into();
    foreign.tags.clear();
    let mut other_stack = gone.clone();
    other_stack.name = "other-stacks".into();
    other_stack.tags.insert(markers::TAG_STACK.into(), "other".into());
    o.iam.roles.extend([gone, foreign, other_stack]);
    let p = run(&d, &o);
    assert_eq!(
        shape(&p),
        [
            "role/retired delete",
            "role/retired/attach/arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess delete",
            "role/retired/attach/read delete",
            "role/retired/inline/kms delete",
        ]
    );
    let attach = change(&p, "role/retired/attach/read");
    assert_eq!(attach.depends_on.iter().map(ToString::to_string).collect::<Vec<_>>(), ["policy/read", "role/retired"]);
}

#[test]
fn a_shared_role_gets_only_irsas_statement() {
    let d = stack(
        r#"
[roles.legacy]
arn = "arn:aws:iam::123456789012:role/Legacy"
manage_trust = true
[[service_accounts]]
namespace = "backend"
name = "worker"
role = "legacy"
"#,
    );
    let mut o = in_sync(&d);
    let ec2 = json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"});
    o.iam.roles.push(foreign_role("Legacy", json!({"Version": "2012-10-17", "Statement": [ec2.clone()]})));
    let p = run(&d, &o);
    assert_eq!(shape(&p), ["role/legacy update"]);
    let after = &change(&p, "role/legacy").after.as_ref().unwrap()["trust_policy"];
    let statements = after["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 2);
    assert!(statements.contains(&PolicyDocument::from_value(json!({"Statement": [ec2]})).statements()[0].clone()));

    // Once applied, the same plan is empty.
    let applied = PolicyDocument::from_value(after.clone());
    o.iam.roles.last_mut().unwrap().trust_policy = applied;
    assert_eq!(shape(&run(&d, &o)), Vec::<String>::new());
}

#[test]
fn a_shared_role_that_does_not_trust_the_service_account_is_an_error_when_not_managed() {
    let d = stack(
        r#"
[roles.legacy]
arn = "arn:aws:iam::123456789012:role/Legacy"
[[service_accounts]]
namespace = "backend"
name = "worker"
role = "legacy"
"#,
    );
    let mut o = in_sync(&d);
    o.iam.roles.push(foreign_role("Legacy", json!({"Version": "2012-10-17", "Statement": []})));
    let e = errors(&d, &o, &PlanOptions::default());
    assert!(e[0].message.contains("does not trust system:serviceaccount:backend:worker"), "{}", e[0].message);
    assert!(e[0].help.contains("manage_trust = true"));

    // An eksctl-style trust that admits it is fine.
    let provider = format!("arn:aws:iam::123456789012:oidc-provider/{HOST}");
    let statement =
        trust::web_identity_statement("X", &provider, HOST, &["system:serviceaccount:backend:worker".into()]);
    o.iam.roles.last_mut().unwrap().trust_policy = trust::owned_trust_policy(vec![statement]);
    assert_eq!(shape(&run(&d, &o)), Vec::<String>::new());

    o.iam.roles.pop();
    let e = errors(&d, &o, &PlanOptions::default());
    assert!(e[0].message.contains("does not exist"), "{}", e[0].message);
}

#[test]
fn a_helm_service_account_is_refused_then_adopted_keeping_its_annotations() {
    let d = basic();
    let mut o = in_sync(&d);
    let sa = &mut o.cluster.service_accounts[0];
    sa.labels = BTreeMap::from([(markers::LABEL_MANAGED_BY.into(), "Helm".into())]).into();
    sa.annotations = BTreeMap::from([("meta.helm.sh/release-name".into(), "app".into())]).into();
    // Its pods started without a role, as the webhook had none to inject.
    o.cluster.deployments[0].pods[0].containers[0].aws_role_arn = None;
    let e = errors(&d, &o, &PlanOptions::default());
    assert!(
        e[0].message.contains("sa/backend/app already exists and is not managed by irsa (managed by Helm)"),
        "{}",
        e[0].message
    );

    let p = run_with(&d, &o, &PlanOptions { adopt: true, ..Default::default() });
    assert_eq!(shape(&p), ["sa/backend/app adopt", "deploy/backend/app restart"]);
    let c = change(&p, "sa/backend/app");
    // Helm's annotation is not irsa's: it is neither in the diff nor removed.
    assert!(!c.before.as_ref().unwrap()["annotations"].as_object().unwrap().contains_key("meta.helm.sh/release-name"));
    assert!(!c.after.as_ref().unwrap()["annotations"].as_object().unwrap().contains_key("meta.helm.sh/release-name"));
    // Nor is its managed-by label taken: Helm would refuse its next upgrade.
    assert_eq!(*c.changed, ["annotations"]);

    // Once adopted, and later dropped from the stack, it is given back, not deleted.
    let mut o = in_sync(&d);
    let mut adopted = o.cluster.service_accounts[0].clone();
    adopted.name = "from-helm".into();
    adopted.labels = BTreeMap::from([(markers::LABEL_MANAGED_BY.into(), "Helm".into())]).into();
    o.cluster.service_accounts.push(adopted);
    let p = run(&d, &o);
    assert_eq!(shape(&p), ["sa/backend/from-helm update"]);
    assert_eq!(change(&p, "sa/backend/from-helm").after.as_ref().unwrap()["annotations"], json!({}));
}

#[test]
fn an_annotation_edited_by_hand_is_planned_back_restarting_only_pods_that_took_it() {
    let d = basic();
    let mut o = in_sync(&d);
    o.cluster.service_accounts[0]
        .annotations
        .insert(markers::ANNOTATION_ROLE_ARN.into(), "arn:aws:iam::123456789012:role/other".into());
    // The pods started before the edit and still run with the right role.
    assert_eq!(shape(&run(&d, &o)), ["sa/backend/app update"]);
    // A pod started after the edit took the wrong role: it must restart.
    o.cluster.deployments[0].pods[0].containers[0].aws_role_arn = Some("arn:aws:iam::123456789012:role/other".into());
    let p = run(&d, &o);
    assert_eq!(shape(&p), ["sa/backend/app update", "deploy/backend/app restart"]);
    assert!(change(&p, "deploy/backend/app").reasons[0].contains("changes from arn:aws:iam::123456789012:role/other"));
}

#[test]
fn restarts_follow_the_pods_credentials() {
    let d = basic();
    // Pods started before the annotation was set have no credentials.
    let mut o = in_sync(&d);
    let pod = &mut o.cluster.deployments[0].pods[0];
    pod.created_at = at("2025-12-01T00:00:00Z");
    pod.containers[0].aws_role_arn = None;
    let p = run(&d, &o);
    assert_eq!(shape(&p), ["deploy/backend/app restart"]);
    assert!(change(&p, "deploy/backend/app").reasons[0].contains("started before the role annotation was set"));

    // Pods with another role's ARN hold stale credentials.
    let mut o = in_sync(&d);
    o.cluster.deployments[0].pods[0].containers[0].aws_role_arn = Some("arn:aws:iam::123456789012:role/old".into());
    assert_eq!(shape(&run(&d, &o)), ["deploy/backend/app restart"]);

    // Pods started after the annotation without the environment: the
    // webhook is missing; a restart would not help, so it is a warning.
    let mut o = in_sync(&d);
    o.cluster.deployments[0].pods[0].containers[0].aws_role_arn = None;
    let p = run(&d, &o);
    assert_eq!(shape(&p), Vec::<String>::new());
    assert!(p.warnings[0].message.contains("pod identity webhook"), "{:?}", p.warnings);
}

#[test]
fn a_missing_deployment_or_namespace_is_a_warning() {
    let d = basic();
    let mut o = in_sync(&d);
    o.cluster.deployments.clear();
    o.cluster.namespaces.clear();
    let p = run(&d, &o);
    let messages: Vec<&str> = p.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].contains("namespace backend does not exist"));
    assert!(messages[1].contains("deployment backend/app does not exist"));
}

#[test]
fn the_issuer_comes_from_the_stack_or_the_cluster_and_they_must_agree() {
    let d = basic();
    let mut o = in_sync(&d);
    o.cluster.oidc_issuer = Some("https://oidc.eks.us-east-1.amazonaws.com/id/OTHER".into());
    let e = errors(&d, &o, &PlanOptions::default());
    assert!(
        e[0].message.contains("but the cluster says https://oidc.eks.us-east-1.amazonaws.com/id/OTHER"),
        "{}",
        e[0].message
    );

    let mut d = basic();
    d.clusters[0].oidc_issuer = None;
    let o = in_sync(&d);
    assert_eq!(shape(&run(&d, &o)), Vec::<String>::new());
    let mut o = o;
    o.cluster.oidc_issuer = None;
    assert!(errors(&d, &o, &PlanOptions::default())[0].message.contains("issuer is unknown"));
}

#[test]
fn targets_select_a_subtree_and_what_it_needs() {
    let d = basic();
    let o = empty_but_cluster(&d);
    let opts = PlanOptions { targets: vec!["sa/".into()], ..Default::default() };
    let p = run_with(&d, &o, &opts);
    assert_eq!(shape(&p), ["oidc/demo create", "role/app create", "sa/backend/app create"]);

    let opts = PlanOptions { targets: vec!["role/nope".into()], ..Default::default() };
    assert!(errors(&d, &o, &opts)[0].message.contains("matches no resource"));
}

#[test]
fn live_quotas_replace_the_defaults() {
    let d = basic();
    let mut o = in_sync(&d);
    o.iam.quotas = Some(Quotas { attached_policies_per_role: 1, ..Quotas::default() });
    let e = errors(&d, &o, &PlanOptions::default());
    assert!(e[0].message.contains("has 2 managed policies; IAM allows 1 per role"), "{}", e[0].message);
}

#[test]
fn the_oidc_provider_is_used_shared_but_only_changed_when_ours() {
    let d = basic();
    let mut o = in_sync(&d);
    o.iam.oidc_providers[0].tags.clear();
    assert_eq!(shape(&run(&d, &o)), Vec::<String>::new());
    o.iam.oidc_providers[0].client_ids.clear();
    assert!(errors(&d, &o, &PlanOptions::default())[0].message.contains("lacks the client id sts.amazonaws.com"));

    let mut o = in_sync(&d);
    o.iam.oidc_providers[0].client_ids = vec!["other".into()];
    let p = run(&d, &o);
    assert_eq!(shape(&p), ["oidc/demo update"]);
    assert_eq!(change(&p, "oidc/demo").after.as_ref().unwrap()["client_ids"], json!(["other", "sts.amazonaws.com"]));
}

#[test]
fn a_service_account_dropped_from_the_stack_is_deleted_with_a_warning_for_its_users() {
    let d = basic();
    let mut o = in_sync(&d);
    let mut old = o.cluster.service_accounts[0].clone();
    old.name = "old".into();
    o.cluster.service_accounts.push(old);
    let mut dep = o.cluster.deployments[0].clone();
    dep.name = "still-old".into();
    dep.service_account_name = Some("old".into());
    o.cluster.deployments.push(dep);
    let p = run(&d, &o);
    assert_eq!(shape(&p), ["sa/backend/old delete"]);
    assert!(p.warnings[0].message.contains("deploy/backend/still-old still runs as service account old"));
}

#[test]
fn the_plan_round_trips_through_json() {
    let d = basic();
    let p = run(&d, &empty_but_cluster(&d));
    let text = crate::render::json::render(&p);
    let back: Plan = serde_json::from_str(&text).unwrap();
    assert_eq!(back, p);
    assert!(text.contains("\"format_version\": \"1\""));
}

#[test]
fn destroy_removes_everything_the_stack_owns_and_nothing_else() {
    let d = stack(&format!(
        r#"
[policies.read]
document = '{READ}'
[roles.app]
policies = ["read"]
[roles.legacy]
arn = "arn:aws:iam::123456789012:role/Legacy"
manage_trust = true
[[service_accounts]]
namespace = "backend"
name = "app"
role = "app"
workloads = ["deployment/app"]
[[service_accounts]]
namespace = "backend"
name = "worker"
role = "legacy"
"#
    ));
    let mut o = in_sync(&d);
    let provider = format!("arn:aws:iam::123456789012:oidc-provider/{HOST}");
    let ours = trust::web_identity_statement(
        &trust::irsa_sid("demo"),
        &provider,
        HOST,
        &["system:serviceaccount:backend:worker".into()],
    );
    let ec2 = json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"});
    o.iam.roles.push(foreign_role("Legacy", json!({"Version": "2012-10-17", "Statement": [ec2, ours]})));
    let mut someone_elses = o.iam.roles[0].clone();
    someone_elses.name = "not-ours".into();
    someone_elses.tags.clear();
    o.iam.roles.push(someone_elses);

    let p = run_with(&d.for_destroy(), &o, &PlanOptions { destroy: true, ..Default::default() });
    assert_eq!(
        shape(&p),
        [
            "oidc/demo delete",
            "policy/read delete",
            "role/app delete",
            "role/legacy update",
            "role/app/attach/read delete",
            "sa/backend/app delete",
            "sa/backend/worker delete",
        ]
    );
    let trust = &change(&p, "role/legacy").after.as_ref().unwrap()["trust_policy"];
    assert_eq!(trust["Statement"].as_array().unwrap().len(), 1, "only irsa's statement goes: {trust}");
    assert!(p.warnings.iter().any(|w| w.message.contains("deploy/backend/app still runs as service account app")));
}

#[test]
fn an_annotation_dropped_from_the_file_is_removed_only_if_irsa_wrote_it() {
    let d = basic();
    let mut o = in_sync(&d);
    let sa = &mut o.cluster.service_accounts[0];
    sa.annotations.insert("eks.amazonaws.com/sts-regional-endpoints".into(), "true".into());
    sa.annotations.insert("team.example.com/owner".into(), "payments".into());
    // Someone else's annotation stays, and plans nothing.
    assert_eq!(shape(&run(&d, &o)), Vec::<String>::new());
    // One irsa wrote (an earlier version of the file had it) goes.
    o.cluster.service_accounts[0].irsa_annotations = vec!["eks.amazonaws.com/sts-regional-endpoints".into()];
    let p = run(&d, &o);
    assert_eq!(shape(&p), ["sa/backend/app update"]);
    let c = change(&p, "sa/backend/app");
    assert!(c.before.as_ref().unwrap()["annotations"].get("eks.amazonaws.com/sts-regional-endpoints").is_some());
    assert!(c.after.as_ref().unwrap()["annotations"].get("eks.amazonaws.com/sts-regional-endpoints").is_none());
    assert!(c.before.as_ref().unwrap()["annotations"].get("team.example.com/owner").is_none(), "not irsa's: not shown");
}

/// `basic()`'s body as stack `name`, and another team's stack beside it.
fn team(name: &str, role: &str, sa: &str) -> Desired {
    stack(&format!(
        r#"
[stack]
name = "{name}"
[policies.{role}-read]
document = '{READ}'
[roles.{role}]
policies = ["{role}-read"]
[[service_accounts]]
namespace = "backend"
name = "{sa}"
role = "{role}"
"#
    ))
}

/// What exists once both stacks are applied.
fn both_applied(a: &Desired, b: &Desired) -> Observed {
    let mut o = in_sync(a);
    let other = in_sync(b);
    o.iam.roles.extend(other.iam.roles);
    o.iam.policies.extend(other.iam.policies);
    o.cluster.service_accounts.extend(other.cluster.service_accounts);
    // One provider, made by the first stack, trusted by both stacks' roles.
    o.iam.oidc_providers[0].trusted_by.extend(other.iam.oidc_providers[0].trusted_by.clone());
    o.iam.oidc_providers[0].trusted_by.sort();
    o
}

#[test]
fn two_stacks_on_one_cluster_never_take_each_others_resources() {
    let a = team("team-a", "a-app", "a");
    let b = team("team-b", "b-app", "b");
    // B plans after A applied: only its own creates; A's provider is used as is.
    let p = run(&b, &in_sync(&a));
    assert_eq!(
        shape(&p),
        ["policy/b-app-read create", "role/b-app create", "role/b-app/attach/b-app-read create", "sa/backend/b create"]
    );
    assert_eq!(change(&p, "role/b-app").after.as_ref().unwrap()["tags"]["irsa:stack"], "team-b");
    // Once both applied, each plans as no change.
    let o = both_applied(&a, &b);
    let p = run(&a, &o);
    assert_eq!(shape(&p), Vec::<String>::new(), "{:#?}", p.changes);
    assert_eq!(shape(&run(&b, &o)), Vec::<String>::new());
}

#[test]
fn destroying_one_stack_keeps_the_provider_the_other_still_uses() {
    let a = team("team-a", "a-app", "a");
    let b = team("team-b", "b-app", "b");
    let o = both_applied(&a, &b);
    let destroy = PlanOptions { destroy: true, ..Default::default() };
    let p = run_with(&a.for_destroy(), &o, &destroy);
    assert_eq!(
        shape(&p),
        ["policy/a-app-read delete", "role/a-app delete", "role/a-app/attach/a-app-read delete", "sa/backend/a delete"]
    );
    let kept = p.warnings.iter().find(|w| w.address.as_ref().is_some_and(|a| a.to_string() == "oidc/demo"));
    assert!(
        kept.is_some_and(|w| w.message.contains("is kept") && w.message.contains("role b-app outside this stack")),
        "{:?}",
        p.warnings
    );
    // B, which did not make the provider, never deletes it either.
    let p = run_with(&b.for_destroy(), &o, &destroy);
    assert!(!shape(&p).iter().any(|s| s.starts_with("oidc/")), "{:?}", shape(&p));
    // The last user gone, the stack that made it deletes it.
    let mut alone = o.clone();
    alone.iam.oidc_providers[0].trusted_by.retain(|r| r == "a-app");
    let p = run_with(&a.for_destroy(), &alone, &destroy);
    assert!(shape(&p).contains(&"oidc/demo delete".to_owned()), "{:?}", shape(&p));
}

#[test]
fn a_policy_name_claimed_by_two_stacks_is_refused_naming_both() {
    let a = team("team-a", "a-app", "a");
    let b = stack(&format!(
        r#"
[stack]
name = "team-b"
[policies.a-app-read]
document = '{READ}'
[roles.b-app]
policies = ["a-app-read"]
[[service_accounts]]
namespace = "backend"
name = "b"
role = "b-app"
"#
    ));
    let e = errors(&b, &in_sync(&a), &PlanOptions { adopt: true, ..Default::default() });
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].message, "policy/a-app-read exists and belongs to irsa stack `team-a`, not `team-b`");
    assert!(e[0].help.contains(r#"policies = ["arn:aws:iam::123456789012:policy/a-app-read"]"#), "{}", e[0].help);
}

#[test]
fn an_old_stack_named_like_its_cluster_plans_as_no_change() {
    let d = basic();
    assert!(!d.stack.explicit);
    assert_eq!(d.stack.name, "demo", "a file without [stack] name is its cluster's stack");
    assert_eq!(shape(&run(&d, &in_sync(&d))), Vec::<String>::new());
}

#[test]
fn a_rename_is_planned_only_when_asked_for() {
    let old = basic();
    let o = in_sync(&old);
    let renamed = |from: Option<&str>| {
        let mut d = stack(&format!(
            "[stack]\nname = \"team-a\"\n{}",
            &old.source.text.split_once("oidc_issuer").unwrap().1.split_once('\n').unwrap().1
        ));
        d.stack.renamed_from = from.map(str::to_owned);
        d
    };
    // Without --rename-from, stack demo's resources are not team-a's to take.
    let e = errors(&renamed(None), &o, &PlanOptions::default());
    assert!(e.iter().all(|e| e.message.contains("belongs to irsa stack `demo`, not `team-a`")), "{e:?}");
    assert!(e[0].help.contains("--rename-from demo"), "{}", e[0].help);
    // With it, every resource moves to the new markers and nothing is deleted.
    let d = renamed(Some("demo"));
    let p = run(&d, &o);
    assert!(!shape(&p).iter().any(|s| s.contains("delete")), "{:?}", shape(&p));
    for address in ["oidc/demo", "policy/read", "role/app", "sa/backend/app"] {
        let c = change(&p, address);
        let after = c.after.as_ref().unwrap();
        let marker = after.get("tags").unwrap_or_else(|| &after["annotations"]);
        let key = if address.starts_with("sa/") { markers::ANNOTATION_STACK } else { markers::TAG_STACK };
        assert_eq!(marker[key], "team-a", "{address}");
    }
    assert!(
        change(&p, "role/app")
            .reasons
            .iter()
            .any(|r| r.contains("moves to stack `team-a` because of --rename-from demo"))
    );
    // Applied, the renamed stack plans as no change.
    assert_eq!(shape(&run(&d, &in_sync(&d))), Vec::<String>::new());
}

#[test]
fn another_stacks_role_is_never_given_a_trust_statement() {
    let a = team("team-a", "a-app", "a");
    let b = stack(
        r#"
[stack]
name = "team-b"
[roles.theirs]
arn = "arn:aws:iam::123456789012:role/a-app"
manage_trust = true
[[service_accounts]]
namespace = "backend"
name = "b"
role = "theirs"
"#,
    );
    let e = errors(&b, &in_sync(&a), &PlanOptions::default());
    assert!(e[0].message.contains("is owned by irsa stack `team-a`, which generates its whole trust policy"), "{e:?}");
    assert!(e[0].help.contains("manage_trust = false"), "{}", e[0].help);
}

/// A settled rollout of `replicas` pods at generation `generation`.
fn settled(generation: i64, replicas: i32) -> Rollout {
    Rollout {
        generation: Some(generation),
        observed_generation: Some(generation),
        replicas: Some(replicas),
        status_replicas: Some(replicas),
        updated_replicas: Some(replicas),
    }
}

/// `in_sync`, with its one pod holding another role's credentials.
fn with_a_stale_pod(d: &Desired) -> Observed {
    let mut o = in_sync(d);
    o.cluster.deployments[0].pods[0].containers[0].aws_role_arn = Some("arn:aws:iam::123456789012:role/old".into());
    o
}

#[test]
fn a_rollout_under_way_gets_a_warning_and_no_restart() {
    let d = basic();
    let mut o = with_a_stale_pod(&d);
    o.cluster.deployments[0].rollout = settled(2, 2);
    assert_eq!(shape(&run(&d, &o)), ["deploy/backend/app restart"], "settled: the stale pod is restarted");
    let cases = [
        (Rollout { observed_generation: Some(1), ..settled(2, 2) }, "has not acted on generation 2 yet"),
        (Rollout { updated_replicas: Some(1), ..settled(2, 2) }, "1 of 2 pods run the current template"),
        (Rollout { status_replicas: Some(3), ..settled(2, 2) }, "1 pod of an older template still runs"),
        // The controller leaves out counts that are zero.
        (Rollout { updated_replicas: None, ..settled(2, 2) }, "0 of 2 pods run the current template"),
    ];
    for (rollout, why) in cases {
        o.cluster.deployments[0].rollout = rollout.clone();
        let p = run(&d, &o);
        assert_eq!(shape(&p), Vec::<String>::new(), "{rollout:?}");
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        let message = &p.warnings[0].message;
        assert!(message.contains("deployment backend/app is rolling out"), "{message}");
        assert!(message.contains(why), "{message}");
        assert!(message.contains("plan again once the rollout settles"), "{message}");
    }
}

#[test]
fn a_rollout_under_way_still_gets_its_service_account_pointed() {
    let d = basic();
    let mut o = in_sync(&d);
    o.cluster.deployments[0].service_account_name = None;
    o.cluster.deployments[0].rollout = Rollout { updated_replicas: Some(0), ..settled(2, 2) };
    let p = run(&d, &o);
    assert_eq!(shape(&p), ["deploy/backend/app update"]);
    // Absent, not "default": the write tests exactly what it read.
    assert_eq!(change(&p, "deploy/backend/app").guard, obj(json!({"/spec/template/spec/serviceAccountName": null})));
}

#[test]
fn pods_of_an_older_template_running_as_default_are_not_stale() {
    let d = basic();
    let mut o = in_sync(&d);
    // irsa just pointed the Deployment at the service account: the old
    // ReplicaSet's pod still runs as `default`, without credentials.
    let mut old = o.cluster.deployments[0].pods[0].clone();
    old.name = "app-old-1".into();
    old.created_at = at("2025-12-01T00:00:00Z");
    old.service_account_name = None;
    old.containers[0].aws_role_arn = None;
    o.cluster.deployments[0].pods.push(old.clone());
    assert_eq!(shape(&run(&d, &o)), Vec::<String>::new());
    assert_eq!(run(&d, &o).warnings, vec![]);
    // Only old pods left: nothing of the new template to judge yet.
    o.cluster.deployments[0].pods = vec![old];
    assert_eq!(shape(&run(&d, &o)), Vec::<String>::new());
}

#[test]
fn a_pod_of_the_same_second_as_the_annotation_is_judged_by_its_environment() {
    let d = basic();
    let mut o = in_sync(&d);
    o.cluster.service_accounts[0].role_arn_set_at = Some(at("2026-01-02T00:00:00Z"));
    let pod = &mut o.cluster.deployments[0].pods[0];
    pod.created_at = at("2026-01-02T00:00:00.700Z");
    // Injected: it started after the annotation, within the second.
    assert_eq!(shape(&run(&d, &o)), Vec::<String>::new());
    assert_eq!(run(&d, &o).warnings, vec![]);
    // Not injected: it started before the annotation, or before the webhook
    // saw it; a restart gives it credentials either way.
    o.cluster.deployments[0].pods[0].containers[0].aws_role_arn = None;
    let p = run(&d, &o);
    assert_eq!(shape(&p), ["deploy/backend/app restart"]);
    let reasons = &change(&p, "deploy/backend/app").reasons;
    assert!(reasons[0].contains("app-1 started in the same second as the role annotation was set"), "{reasons:?}");
    // A second later and still not injected: the webhook skipped it.
    o.cluster.deployments[0].pods[0].created_at = at("2026-01-02T00:00:01Z");
    let p = run(&d, &o);
    assert_eq!(shape(&p), Vec::<String>::new());
    assert!(p.warnings[0].message.contains("pod identity webhook"), "{:?}", p.warnings);
    // A second earlier: it surely started before.
    o.cluster.deployments[0].pods[0].created_at = at("2026-01-01T23:59:59.900Z");
    let p = run(&d, &o);
    assert!(change(&p, "deploy/backend/app").reasons[0].contains("started before the role annotation was set"));
}

#[test]
fn rescaling_status_and_resource_versions_do_not_change_a_plan() {
    let d = basic();
    let base = with_a_stale_pod(&d);
    let planned = run(&d, &base);
    let restart = change(&planned, "deploy/backend/app");
    assert_eq!(
        restart.before.as_ref().unwrap()["stale_credentials"],
        json!(["arn:aws:iam::123456789012:role/old"]),
        "a restart depends on what its stale pods hold"
    );
    assert_eq!(
        restart.guard,
        obj(json!({
            "/spec/template/spec/serviceAccountName": "app",
            "/spec/template/metadata/annotations/kubectl.kubernetes.io~1restartedAt": null
        }))
    );
    // Scaled to three (new pods, new names), status and versions moved.
    let mut moved = base.clone();
    let dep = &mut moved.cluster.deployments[0];
    dep.resource_version = "262".into();
    dep.rollout = settled(3, 3);
    for i in 2..=3 {
        let mut pod = dep.pods[0].clone();
        pod.name = format!("app-{i}");
        dep.pods.push(pod);
    }
    dep.pods[0].name = "app-renamed".into();
    moved.cluster.service_accounts[0].resource_version = "99".into();
    let again = run(&d, &moved);
    assert_eq!(shape(&again), shape(&planned));
    for (a, b) in planned.changes.iter().zip(&again.changes) {
        assert!(
            same_attributes(a.before.as_ref(), b.before.as_ref()),
            "{} moved: {:?} {:?}",
            a.address,
            a.before,
            b.before
        );
        assert_eq!(a.guard, b.guard);
    }
}

#[test]
fn service_account_writes_are_guarded_by_the_keys_they_touch() {
    let d = basic();
    let mut o = in_sync(&d);
    let sa = &mut o.cluster.service_accounts[0];
    sa.annotations.insert(markers::ANNOTATION_ROLE_ARN.into(), "arn:aws:iam::123456789012:role/other".into());
    sa.annotations.insert("team/owner".into(), "payments".into());
    sa.labels.clear();
    let p = run(&d, &o);
    let sa = change(&p, "sa/backend/app");
    assert_eq!(
        sa.guard,
        obj(json!({
            "/metadata/annotations/eks.amazonaws.com~1role-arn": "arn:aws:iam::123456789012:role/other",
            "/metadata/annotations/irsa.dev~1stack": "demo",
            "/metadata/labels/app.kubernetes.io~1managed-by": null,
        })),
        "another tool's annotation is neither guarded nor written"
    );
    assert!(!sa.before.as_ref().unwrap().contains_key("resource_version"));
}

fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().unwrap()
}

/// irsa's statement for `subjects` as people write it by hand: no Sid.
fn hand_written_statement(subjects: &[&str]) -> serde_json::Value {
    let provider = format!("arn:aws:iam::123456789012:oidc-provider/{HOST}");
    let subjects: Vec<String> = subjects.iter().map(|s| (*s).to_owned()).collect();
    trust::without_sid(&trust::web_identity_statement("Unused", &provider, HOST, &subjects))
}

#[test]
fn a_hand_written_trust_without_irsas_sid_is_adopted_as_it_is() {
    let d = basic();
    let mut o = in_sync(&d);
    let role = role_mut(&mut o, "app");
    role.tags.clear();
    let statement = hand_written_statement(&["system:serviceaccount:backend:app"]);
    role.trust_policy = PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": [statement]}));
    let p = run_with(&d, &o, &PlanOptions { adopt: true, ..Default::default() });
    assert_eq!(shape(&p), ["role/app adopt"]);
    assert_eq!(*change(&p, "role/app").changed, ["tags"], "only the markers, not the Sid");

    // One that trusts someone else too is irsa's to rewrite, with its Sid.
    let other = hand_written_statement(&["system:serviceaccount:backend:app", "system:serviceaccount:x:y"]);
    role_mut(&mut o, "app").trust_policy =
        PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": [other]}));
    let p = run_with(&d, &o, &PlanOptions { adopt: true, ..Default::default() });
    assert_eq!(*change(&p, "role/app").changed, ["tags", "trust_policy"]);
}

#[test]
fn a_shared_roles_hand_written_statement_for_its_bindings_is_kept_as_irsas() {
    let d = stack(
        r#"
[roles.legacy]
arn = "arn:aws:iam::123456789012:role/Legacy"
manage_trust = true
[[service_accounts]]
namespace = "backend"
name = "worker"
role = "legacy"
"#,
    );
    let mut o = in_sync(&d);
    let ec2 = json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"});
    let mine = hand_written_statement(&["system:serviceaccount:backend:worker"]);
    o.iam.roles.push(foreign_role("Legacy", json!({"Version": "2012-10-17", "Statement": [ec2.clone(), mine]})));
    assert_eq!(shape(&run(&d, &o)), Vec::<String>::new());

    // A hand-written statement for another subject is not irsa's: irsa adds its own.
    let theirs = hand_written_statement(&["system:serviceaccount:backend:other"]);
    o.iam.roles.last_mut().unwrap().trust_policy =
        PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": [ec2, theirs]}));
    let p = run(&d, &o);
    assert_eq!(shape(&p), ["role/legacy update"]);
    assert_eq!(
        change(&p, "role/legacy").after.as_ref().unwrap()["trust_policy"]["Statement"].as_array().unwrap().len(),
        3
    );
}

#[test]
fn tags_aws_sets_itself_are_never_a_difference() {
    let d = basic();
    let mut o = in_sync(&d);
    let cfn = ("aws:cloudformation:stack-name".to_owned(), "eksctl-demo-addon-iamserviceaccount".to_owned());
    role_mut(&mut o, "app").tags.insert(cfn.0.clone(), cfn.1.clone());
    o.iam.policies[0].tags.insert(cfn.0, cfn.1);
    assert_eq!(shape(&run(&d, &o)), Vec::<String>::new());
}
