//! One table per rule: each row a change, the findings of that rule it must
//! give (severity and a part of the message), and the access label.

use serde_json::{Value, json};

use super::*;
use crate::model::policy_doc::PolicyDocument;
use crate::model::trust::irsa_sid;
use crate::plan::Action;

const STACK: &str = "shop";
const PROVIDER: &str = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC";
const ISSUER: &str = "oidc.eks.eu-west-1.amazonaws.com/id/ABC";

fn change(address: &str, before: Option<Value>, after: Option<Value>) -> Change {
    let address: Address = address.parse().unwrap();
    let actions = match (&before, &after) {
        (None, Some(_)) => vec![Action::Create],
        (Some(_), None) => vec![Action::Delete],
        _ => vec![Action::Update],
    };
    let obj = |v: Option<Value>| -> Option<crate::plan::Attrs> { v.map(crate::plan::Attrs::from) };
    Change {
        kind: address.kind(),
        address,
        actions: actions.as_slice().try_into().unwrap(),
        reasons: vec![],
        before: obj(before),
        after: obj(after),
        changed: Box::default(),
        depends_on: vec![],
        guard: Default::default(),
        access: None,
    }
}

/// A policy document in canonical form, as the plan holds it.
fn doc(statements: Value) -> Value {
    PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": statements})).canonical().clone()
}

fn policy(statements: Option<Value>) -> Option<Value> {
    statements.map(|s| json!({"name": "p", "document": doc(s)}))
}

fn policy_change(before: Option<Value>, after: Option<Value>) -> Change {
    change("policy/p", policy(before), policy(after))
}

fn attachment(before: Option<&str>, after: Option<&str>) -> Change {
    let side = |arn: Option<&str>| arn.map(|a| json!({"role": "app", "policy_arn": a}));
    change("role/app/attach/x", side(before), side(after))
}

fn irsa_statement(subjects: &[&str]) -> Value {
    let subjects: Vec<String> = subjects.iter().map(|s| format!("system:serviceaccount:{s}")).collect();
    crate::model::trust::web_identity_statement(&irsa_sid(STACK), PROVIDER, ISSUER, &subjects)
}

/// irsa's statement for `[clusters.<cluster>]`, Sid and all.
fn cluster_statement(cluster: &str) -> Value {
    let sid = crate::model::trust::cluster_sid(STACK, Some(cluster));
    crate::model::trust::web_identity_statement(&sid, PROVIDER, ISSUER, &["system:serviceaccount:shop:a".into()])
}

fn role(trust: Option<Vec<Value>>, boundary: Option<&str>) -> Option<Value> {
    trust.map(|t| json!({"name": "app", "trust_policy": doc(Value::Array(t)), "permissions_boundary": boundary}))
}

fn role_change(before: Option<Vec<Value>>, after: Option<Vec<Value>>) -> Change {
    change("role/app", role(before, None), role(after, None))
}

/// Checks a row: the findings of `rule` (severity, text each message
/// contains) and the change's access label.
fn check(name: &str, c: &Change, rule: Rule, expected: &[(Severity, &str)], access: Access) {
    let review = review(STACK, c);
    let got: Vec<&Finding> = review.findings.iter().filter(|f| f.rule == rule).collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "{name}: {rule:?} findings: {:#?}",
        got.iter().map(|f| (&f.severity, &f.message)).collect::<Vec<_>>()
    );
    for (f, (severity, text)) in got.iter().zip(expected) {
        assert_eq!(f.severity, *severity, "{name}: {}", f.message);
        assert!(f.message.contains(text), "{name}: {:?} lacks {text:?}", f.message);
        assert_eq!(f.address, c.address, "{name}");
    }
    assert_eq!(review.access, access, "{name}: access");
}

/// A row: its name, the change, the findings of the table's rule it gives
/// (severity and a part of the message), and the change's access label.
type Row = (&'static str, Change, Vec<(Severity, &'static str)>, Access);
/// A row of a table of several rules: which one it checks.
type RuleRow = (&'static str, Change, Rule, Vec<(Severity, &'static str)>, Access);

fn allow(action: Value, resource: Value) -> Value {
    json!({"Effect": "Allow", "Action": action, "Resource": resource})
}

#[test]
fn broad_managed_policies() {
    let aws = |n: &str| format!("arn:aws:iam::aws:policy/{n}");
    let (admin, power, iam, s3full, s3ro) = (
        aws("AdministratorAccess"),
        aws("PowerUserAccess"),
        aws("IAMFullAccess"),
        aws("AmazonS3FullAccess"),
        aws("AmazonS3ReadOnlyAccess"),
    );
    let rows: Vec<Row> = vec![
        (
            "AdministratorAccess attached",
            attachment(None, Some(&admin)),
            vec![(Severity::High, "attaches AdministratorAccess: every action on every resource")],
            Access::Widens,
        ),
        (
            "PowerUserAccess attached",
            attachment(None, Some(&power)),
            vec![(Severity::High, "PowerUserAccess")],
            Access::Widens,
        ),
        (
            "IAMFullAccess attached",
            attachment(None, Some(&iam)),
            vec![(Severity::High, "full control of IAM")],
            Access::Widens,
        ),
        (
            "any *FullAccess attached",
            attachment(None, Some(&s3full)),
            vec![(Severity::Medium, "attaches AmazonS3FullAccess: full access to a whole service")],
            Access::Widens,
        ),
        ("a read-only policy attached", attachment(None, Some(&s3ro)), vec![], Access::Widens),
        ("AdministratorAccess detached", attachment(Some(&admin), None), vec![], Access::Narrows),
        ("reattached when replaced: it was there", attachment(Some(&admin), Some(&admin)), vec![], Access::Same),
        (
            "a customer policy named FullAccess",
            attachment(None, Some("arn:aws:iam::111122223333:policy/team/OpsFullAccess")),
            vec![(Severity::Medium, "OpsFullAccess")],
            Access::Widens,
        ),
    ];
    for (name, c, expected, access) in rows {
        check(name, &c, Rule::BroadManagedPolicy, &expected, access);
    }
}

#[test]
fn action_wildcards() {
    let rows: Vec<Row> = vec![
        (
            "Action * on *",
            policy_change(None, Some(json!([{"Sid": "All", "Effect": "Allow", "Action": "*", "Resource": "*"}]))),
            vec![(Severity::High, "statement \"All\" allows every action (\"*\") on every resource (\"*\")")],
            Access::Widens,
        ),
        (
            "Action * on one bucket, no Sid: the index",
            policy_change(
                Some(json!([allow(json!("s3:GetObject"), json!("*"))])),
                Some(json!([allow(json!("s3:GetObject"), json!("*")), allow(json!("*"), json!("arn:aws:s3:::b"))])),
            ),
            vec![(Severity::High, "statement #1 allows every action (\"*\") on \"arn:aws:s3:::b\"")],
            Access::Widens,
        ),
        (
            "already there: not reported again",
            policy_change(
                Some(json!([allow(json!("*"), json!("*"))])),
                Some(json!([allow(json!("*"), json!("*")), allow(json!("s3:GetObject"), json!("arn:aws:s3:::b/*"))])),
            ),
            vec![],
            Access::Same,
        ),
        (
            "a Deny of *: no finding",
            policy_change(None, Some(json!([{"Effect": "Deny", "Action": "*", "Resource": "*"}]))),
            vec![],
            Access::Narrows,
        ),
        (
            "under a condition: said so",
            policy_change(
                None,
                Some(json!([{"Effect": "Allow", "Action": "*", "Resource": "*",
                    "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}])),
            ),
            vec![(Severity::High, "(under a condition)")],
            Access::Widens,
        ),
    ];
    for (name, c, expected, access) in rows {
        check(name, &c, Rule::ActionWildcard, &expected, access);
    }
}

#[test]
fn service_wildcards() {
    let rows: Vec<Row> = vec![
        (
            "s3:* on a bucket",
            policy_change(None, Some(json!([allow(json!("s3:*"), json!("arn:aws:s3:::b"))]))),
            vec![(Severity::Medium, "allows every s3 action (\"s3:*\") on \"arn:aws:s3:::b\"")],
            Access::Widens,
        ),
        (
            "iam:* manages permissions",
            policy_change(None, Some(json!([allow(json!("iam:*"), json!("*"))]))),
            vec![(Severity::High, "that includes granting permissions")],
            Access::Widens,
        ),
        (
            "s3:Get* is not a service wildcard",
            policy_change(None, Some(json!([allow(json!("s3:Get*"), json!("*"))]))),
            vec![],
            Access::Widens,
        ),
        (
            "s3:* narrowed to s3:GetObject",
            policy_change(
                Some(json!([allow(json!("s3:*"), json!("arn:aws:s3:::b"))])),
                Some(json!([allow(json!("s3:GetObject"), json!("arn:aws:s3:::b"))])),
            ),
            vec![],
            Access::Narrows,
        ),
    ];
    for (name, c, expected, access) in rows {
        check(name, &c, Rule::ServiceWildcard, &expected, access);
    }
}

#[test]
fn allow_with_not_action() {
    let rows: Vec<Row> = vec![
        (
            "Allow NotAction",
            policy_change(
                None,
                Some(json!([{"Sid": "Most", "Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}])),
            ),
            vec![(Severity::High, "statement \"Most\" allows every action except \"iam:*\" on every resource")],
            Access::Widens,
        ),
        (
            "Deny NotAction is a guard rail",
            policy_change(None, Some(json!([{"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}]))),
            vec![],
            Access::Narrows,
        ),
    ];
    for (name, c, expected, access) in rows {
        check(name, &c, Rule::AllowNotAction, &expected, access);
    }
}

#[test]
fn allow_with_not_resource() {
    let rows: Vec<Row> = vec![
        (
            "Allow NotResource",
            policy_change(
                None,
                Some(json!([{"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::secret/*"}])),
            ),
            vec![(Severity::Medium, "allows \"s3:GetObject\" on every resource except \"arn:aws:s3:::secret/*\"")],
            Access::Widens,
        ),
        (
            "unchanged NotResource with a new statement beside it",
            policy_change(
                Some(json!([{"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::secret/*"}])),
                Some(json!([
                    {"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::secret/*"},
                    allow(json!("sqs:GetQueueUrl"), json!("arn:aws:sqs:eu-west-1:111122223333:q"))])),
            ),
            vec![],
            Access::Widens,
        ),
    ];
    for (name, c, expected, access) in rows {
        check(name, &c, Rule::AllowNotResource, &expected, access);
    }
}

#[test]
fn writes_on_every_resource() {
    let rows: Vec<Row> = vec![
        (
            "a write on *",
            policy_change(None, Some(json!([allow(json!("dynamodb:PutItem"), json!("*"))]))),
            vec![(Severity::Medium, "allows the write \"dynamodb:PutItem\" on every resource (\"*\")")],
            Access::Widens,
        ),
        (
            "reads on * are not writes",
            policy_change(None, Some(json!([allow(json!(["s3:GetObject", "s3:List*", "ec2:Describe*"]), json!("*"))]))),
            vec![],
            Access::Widens,
        ),
        (
            "kms:Decrypt is a write in IAM's access levels",
            change(
                "role/app/inline/k",
                None,
                Some(json!({"document": doc(json!([allow(json!("kms:Decrypt"), json!("*"))]))})),
            ),
            vec![(Severity::Medium, "\"kms:Decrypt\"")],
            Access::Widens,
        ),
        (
            "a resource policy write manages permissions",
            policy_change(None, Some(json!([allow(json!("s3:PutBucketPolicy"), json!("*"))]))),
            vec![(Severity::High, "it manages permissions")],
            Access::Widens,
        ),
        (
            "a pattern that includes permission management",
            policy_change(None, Some(json!([allow(json!("s3:Put*"), json!("*"))]))),
            vec![(Severity::High, "that includes s3:PutBucketPolicy, s3:PutBucketAcl, s3:PutObjectAcl")],
            Access::Widens,
        ),
        (
            "a write on a named resource",
            policy_change(
                None,
                Some(json!([allow(
                    json!("dynamodb:PutItem"),
                    json!("arn:aws:dynamodb:eu-west-1:111122223333:table/t")
                )])),
            ),
            vec![],
            Access::Widens,
        ),
        (
            "the same write moved to another statement",
            policy_change(
                Some(json!([{"Sid": "A", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}])),
                Some(json!([{"Sid": "B", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}])),
            ),
            vec![],
            Access::Same,
        ),
    ];
    for (name, c, expected, access) in rows {
        check(name, &c, Rule::WriteOnAnyResource, &expected, access);
    }
}

#[test]
fn privilege_escalation() {
    let rows: Vec<Row> = vec![
        (
            "iam:PassRole on *",
            policy_change(
                None,
                Some(json!([{"Sid": "Pass", "Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}])),
            ),
            vec![(
                Severity::High,
                "statement \"Pass\" allows \"iam:PassRole\" on every resource (\"*\"): its holder can hand any role",
            )],
            Access::Widens,
        ),
        (
            "iam:PassRole on one role is ordinary",
            policy_change(
                None,
                Some(json!([allow(json!("iam:PassRole"), json!("arn:aws:iam::111122223333:role/task"))])),
            ),
            vec![],
            Access::Widens,
        ),
        (
            "sts:AssumeRole on a role pattern",
            policy_change(None, Some(json!([allow(json!("sts:AssumeRole"), json!("arn:aws:iam::*:role/*"))]))),
            vec![(Severity::High, "assume any role")],
            Access::Widens,
        ),
        (
            "iam:CreatePolicyVersion on a named policy",
            policy_change(
                None,
                Some(json!([allow(json!("iam:CreatePolicyVersion"), json!("arn:aws:iam::111122223333:policy/p"))])),
            ),
            vec![(Severity::Medium, "rewrite a managed policy")],
            Access::Widens,
        ),
        (
            "each escalation action named, case as written",
            policy_change(
                None,
                Some(json!([allow(
                    json!(["iam:attachrolepolicy", "iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy"]),
                    json!("*")
                )])),
            ),
            vec![
                (Severity::High, "\"iam:attachrolepolicy\""),
                (Severity::High, "\"iam:PutRolePolicy\""),
                (Severity::High, "change who may assume a role"),
            ],
            Access::Widens,
        ),
        (
            "a pattern: the actions it includes",
            policy_change(None, Some(json!([allow(json!("iam:Put*"), json!("*"))]))),
            vec![(
                Severity::High,
                "\"iam:Put*\" (which includes iam:PutRolePolicy, iam:PutUserPolicy, iam:PutGroupPolicy, iam:PutRolePermissionsBoundary)",
            )],
            Access::Widens,
        ),
        (
            "replaced by a read elsewhere: no finding",
            policy_change(
                Some(json!([allow(json!("iam:PassRole"), json!("*"))])),
                Some(json!([allow(json!("s3:GetObject"), json!("arn:aws:s3:::b/*"))])),
            ),
            vec![],
            Access::Widens,
        ),
        (
            "the policy deleted",
            policy_change(Some(json!([allow(json!("iam:PassRole"), json!("*"))])), None),
            vec![],
            Access::Narrows,
        ),
    ];
    for (name, c, expected, access) in rows {
        check(name, &c, Rule::PrivilegeEscalation, &expected, access);
    }
}

#[test]
fn removed_denies() {
    let deny = json!({"Sid": "NoDelete", "Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"});
    let read = allow(json!("s3:GetObject"), json!("arn:aws:s3:::b/*"));
    let rows: Vec<Row> = vec![
        (
            "a Deny removed",
            policy_change(Some(json!([deny.clone(), read.clone()])), Some(json!([read.clone()]))),
            vec![(Severity::Low, "removes the Deny statement \"NoDelete\" of \"s3:DeleteBucket\"")],
            Access::Widens,
        ),
        (
            "a Deny-only policy deleted widens",
            policy_change(Some(json!([deny.clone()])), None),
            vec![(Severity::Low, "NoDelete")],
            Access::Widens,
        ),
        (
            "a Deny added narrows",
            policy_change(Some(json!([read.clone()])), Some(json!([deny, read]))),
            vec![],
            Access::Narrows,
        ),
    ];
    for (name, c, expected, access) in rows {
        check(name, &c, Rule::DenyRemoved, &expected, access);
    }
}

#[test]
fn permissions_boundaries() {
    let trust = || Some(vec![irsa_statement(&["a:b"])]);
    let b1 = "arn:aws:iam::111122223333:policy/boundary";
    let b2 = "arn:aws:iam::111122223333:policy/boundary-2";
    let rows: Vec<RuleRow> = vec![
        (
            "removed",
            change("role/app", role(trust(), Some(b1)), role(trust(), None)),
            Rule::BoundaryRemoved,
            vec![(Severity::Medium, "removes the permissions boundary arn:aws:iam::111122223333:policy/boundary: ")],
            Access::Widens,
        ),
        (
            "changed",
            change("role/app", role(trust(), Some(b1)), role(trust(), Some(b2))),
            Rule::BoundaryChanged,
            vec![(
                Severity::Low,
                "changes from arn:aws:iam::111122223333:policy/boundary to arn:aws:iam::111122223333:policy/boundary-2",
            )],
            Access::Widens,
        ),
        (
            "added",
            change("role/app", role(trust(), None), role(trust(), Some(b1))),
            Rule::BoundaryChanged,
            vec![],
            Access::Narrows,
        ),
        (
            "added: nothing removed",
            change("role/app", role(trust(), None), role(trust(), Some(b1))),
            Rule::BoundaryRemoved,
            vec![],
            Access::Narrows,
        ),
    ];
    for (name, c, rule, expected, access) in rows {
        check(name, &c, rule, &expected, access);
    }
}

#[test]
fn trust_wildcard_subjects() {
    let like = json!({"Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringLike": {format!("{ISSUER}:sub"): "system:serviceaccount:shop:*"}}});
    let no_sub = json!({"Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {format!("{ISSUER}:aud"): "sts.amazonaws.com"}}});
    let anyone = json!({"Sid": "Open", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"});
    let rows: Vec<Row> = vec![
        (
            "StringLike with *",
            role_change(Some(vec![irsa_statement(&["shop:a"])]), Some(vec![like.clone(), irsa_statement(&["shop:a"])])),
            vec![(Severity::High, "matching \"system:serviceaccount:shop:*\" (trust statement #2)")],
            Access::Widens,
        ),
        (
            "no sub condition: any identity of the provider",
            role_change(Some(vec![no_sub.clone()]), Some(vec![no_sub])),
            vec![(Severity::High, "any identity of arn:aws:iam::111122223333:oidc-provider/")],
            Access::Same,
        ),
        (
            "any principal",
            role_change(None, Some(vec![anyone])),
            vec![(Severity::High, "any AWS principal (\"Principal\": \"*\") (trust statement \"Open\")")],
            Access::Widens,
        ),
        (
            "exact subjects only",
            role_change(None, Some(vec![irsa_statement(&["shop:a", "shop:b"])])),
            vec![],
            Access::Widens,
        ),
        ("deleted role: nothing admitted any more", role_change(Some(vec![like]), None), vec![], Access::Narrows),
    ];
    for (name, c, expected, access) in rows {
        check(name, &c, Rule::TrustWildcardSubject, &expected, access);
    }
}

#[test]
fn trust_of_other_parties() {
    let ec2 = json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"});
    let account = json!({"Sid": "Ci", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"}, "Action": "sts:AssumeRole"});
    let rows: Vec<Row> = vec![
        (
            "a shared role keeps another service's statement",
            role_change(Some(vec![ec2.clone()]), Some(vec![ec2.clone(), irsa_statement(&["shop:a"])])),
            vec![(Severity::Medium, "is also trusted by Service ec2.amazonaws.com (trust statement #")],
            Access::Widens,
        ),
        (
            "another account, by Sid",
            role_change(
                Some(vec![account.clone(), irsa_statement(&["shop:a"])]),
                Some(vec![account, irsa_statement(&["shop:b"])]),
            ),
            vec![(Severity::Medium, "AWS arn:aws:iam::444455556666:root (trust statement \"Ci\")")],
            Access::Widens,
        ),
        (
            "a stack of several clusters: each cluster's statement is irsa's",
            role_change(
                Some(vec![irsa_statement(&["shop:a"])]),
                Some(vec![cluster_statement("blue"), cluster_statement("green")]),
            ),
            vec![],
            Access::Same,
        ),
        (
            "an owned role loses a hand-added statement",
            role_change(Some(vec![ec2, irsa_statement(&["shop:a"])]), Some(vec![irsa_statement(&["shop:a"])])),
            vec![],
            Access::Narrows,
        ),
    ];
    for (name, c, expected, access) in rows {
        check(name, &c, Rule::TrustOtherParty, &expected, access);
    }
}

#[test]
fn trust_subjects_added() {
    let rows: Vec<Row> = vec![
        (
            "a new role's subjects",
            role_change(None, Some(vec![irsa_statement(&["shop:a", "shop:b"])])),
            vec![
                (Severity::Info, "system:serviceaccount:shop:a may now assume the role"),
                (Severity::Info, "system:serviceaccount:shop:b may now assume the role"),
            ],
            Access::Widens,
        ),
        (
            "one subject replaced by another",
            role_change(Some(vec![irsa_statement(&["shop:a"])]), Some(vec![irsa_statement(&["shop:b"])])),
            vec![(Severity::Info, "system:serviceaccount:shop:b")],
            Access::Widens,
        ),
        (
            "a subject removed",
            role_change(Some(vec![irsa_statement(&["shop:a", "shop:b"])]), Some(vec![irsa_statement(&["shop:a"])])),
            vec![],
            Access::Narrows,
        ),
        (
            "tags only: same trust",
            role_change(Some(vec![irsa_statement(&["shop:a"])]), Some(vec![irsa_statement(&["shop:a"])])),
            vec![],
            Access::Same,
        ),
    ];
    for (name, c, expected, access) in rows {
        check(name, &c, Rule::TrustSubjectAdded, &expected, access);
    }
}

#[test]
fn trust_of_more_service_accounts() {
    let rows: Vec<Row> = vec![
        (
            "an existing role shared wider",
            role_change(
                Some(vec![irsa_statement(&["shop:a"])]),
                Some(vec![irsa_statement(&["shop:a", "shop:b", "ops:c"])]),
            ),
            vec![(Severity::Low, "may now be assumed by 3 ServiceAccounts (1 before): the pods of each")],
            Access::Widens,
        ),
        (
            "a new role: its subjects are listed, not counted",
            role_change(None, Some(vec![irsa_statement(&["shop:a", "shop:b"])])),
            vec![],
            Access::Widens,
        ),
        (
            "as many as before",
            role_change(Some(vec![irsa_statement(&["shop:a"])]), Some(vec![irsa_statement(&["shop:b"])])),
            vec![],
            Access::Widens,
        ),
    ];
    for (name, c, expected, access) in rows {
        check(name, &c, Rule::TrustMoreServiceAccounts, &expected, access);
    }
}

#[test]
fn kubernetes_objects_and_providers_are_the_same_access() {
    let sa = change(
        "sa/shop/a",
        None,
        Some(json!({"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/app"}})),
    );
    let deploy = change(
        "deploy/shop/a",
        Some(json!({"service_account_name": "default"})),
        Some(json!({"service_account_name": "a"})),
    );
    let oidc = |ids: &[&str]| Some(json!({"url": "https://x", "client_ids": ids}));
    for (name, c, access) in [
        ("a ServiceAccount", sa, Access::Same),
        ("a Deployment", deploy, Access::Same),
        ("a new provider", change("oidc/c", None, oidc(&["sts.amazonaws.com"])), Access::Same),
        (
            "an audience added",
            change("oidc/c", oidc(&["sts.amazonaws.com"]), oidc(&["other", "sts.amazonaws.com"])),
            Access::Widens,
        ),
        ("a provider deleted", change("oidc/c", oidc(&["sts.amazonaws.com"]), None), Access::Narrows),
    ] {
        let r = review(STACK, &c);
        assert!(r.findings.is_empty(), "{name}: {:?}", r.findings);
        assert_eq!(r.access, access, "{name}");
    }
}

#[test]
fn every_rule_has_a_table_and_a_documented_section() {
    let doc = include_str!("../../../docs/security-review.md");
    for rule in Rule::ALL {
        assert!(doc.contains(&format!("### `{}`", rule.id())), "docs/security-review.md lacks {}", rule.id());
    }
}

#[test]
fn review_all_labels_each_change_and_keeps_plan_order() {
    let mut changes = vec![
        attachment(None, Some("arn:aws:iam::aws:policy/AdministratorAccess")),
        change("sa/shop/a", None, Some(json!({"annotations": {}}))),
        role_change(None, Some(vec![irsa_statement(&["shop:a"])])),
    ]
    .into_iter()
    .map(Box::new)
    .collect::<Vec<_>>();
    let findings = review_all(STACK, &mut changes);
    let access: Vec<Option<Access>> = changes.iter().map(|c| c.access).collect();
    assert_eq!(access, [Some(Access::Widens), Some(Access::Same), Some(Access::Widens)]);
    let rules: Vec<Rule> = findings.iter().map(|f| f.rule).collect();
    assert_eq!(rules, [Rule::BroadManagedPolicy, Rule::TrustSubjectAdded]);
    assert!(any_at_least(&findings, Severity::High));
    assert_eq!(by_severity(&findings)[0].severity, Severity::High);
    assert_eq!(
        counts(&findings),
        [(Severity::High, 1), (Severity::Medium, 0), (Severity::Low, 0), (Severity::Info, 1)]
    );
}
