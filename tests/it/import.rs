//! `irsa import` end to end: the manual walkthrough done by hand against
//! moto and a cluster (the test server, or a real one with `--ignored`),
//! imported, validated, planned (only adopt), applied, planned again (empty).

use aws_sdk_iam::types::Tag;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::support::{Moto, plan_shape as shape, run_irsa};
use crate::world::{Cluster, no_changes, plan_json};

const ACCOUNT: &str = "123456789012";
const THUMBPRINT: &str = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280";

/// The issuer the cluster's discovery document names.
fn issuer(c: &Cluster) -> String {
    let req = http::Request::get("/.well-known/openid-configuration").body(Vec::new()).unwrap();
    let doc: Value = c.rt.block_on(c.client.request(req)).unwrap();
    doc["issuer"].as_str().unwrap().trim_end_matches('/').to_owned()
}

fn host(c: &Cluster) -> String {
    issuer(c).trim_start_matches("https://").to_owned()
}

fn provider_arn(c: &Cluster) -> String {
    format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{}", host(c))
}

/// The trust statement of the AWS documentation's walkthrough: no Sid.
fn web_identity(c: &Cluster, operator: &str, subject: &str) -> Value {
    let host = host(c);
    json!({
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn(c)},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {operator: {format!("{host}:aud"): "sts.amazonaws.com", format!("{host}:sub"): subject}}
    })
}

fn subject(c: &Cluster, sa: &str) -> String {
    format!("system:serviceaccount:{}:{sa}", c.namespace)
}

fn create_provider(c: &Cluster, moto: &Moto) {
    moto.block_on(
        moto.iam
            .create_open_id_connect_provider()
            .url(issuer(c))
            .client_id_list("sts.amazonaws.com")
            .thumbprint_list(THUMBPRINT)
            .send(),
    )
    .unwrap();
}

fn create_policy(moto: &Moto, name: &str, document: &str) -> String {
    let out = moto
        .block_on(
            moto.iam
                .create_policy()
                .policy_name(name)
                .policy_document(document)
                .description(format!("{name}, made in the console"))
                .send(),
        )
        .unwrap();
    out.policy().unwrap().arn().unwrap().to_owned()
}

fn create_role(moto: &Moto, name: &str, statements: Vec<Value>, tags: &[(&str, &str)]) {
    let trust = json!({"Version": "2012-10-17", "Statement": statements});
    let mut req = moto.iam.create_role().role_name(name).assume_role_policy_document(trust.to_string());
    for (k, v) in tags {
        req = req.tags(Tag::builder().key(*k).value(*v).build().unwrap());
    }
    moto.block_on(req.send()).unwrap();
}

fn attach(moto: &Moto, role: &str, arn: &str) {
    moto.block_on(moto.iam.attach_role_policy().role_name(role).policy_arn(arn).send()).unwrap();
}

/// A ServiceAccount annotated by hand (as `kubectl annotate` or eksctl).
fn create_sa(c: &Cluster, name: &str, role: Option<&str>, labels: Value) {
    let annotations = match role {
        Some(role) => json!({"eks.amazonaws.com/role-arn": format!("arn:aws:iam::{ACCOUNT}:role/{role}")}),
        None => json!({}),
    };
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {
        "name": name, "namespace": c.namespace, "labels": labels, "annotations": annotations
    }}))
    .unwrap();
    let api: Api<ServiceAccount> = Api::namespaced(c.client.clone(), &c.namespace);
    c.rt.block_on(api.create(&PostParams { field_manager: Some("kubectl".into()), ..Default::default() }, &sa))
        .unwrap();
}

/// Everything of IAM an import could change, as one comparable text.
fn iam_state(moto: &Moto) -> String {
    use aws_sdk_iam::types::EntityType;
    let details = moto
        .block_on(
            moto.iam
                .get_account_authorization_details()
                .filter(EntityType::Role)
                .filter(EntityType::LocalManagedPolicy)
                .send(),
        )
        .unwrap();
    let mut out = String::new();
    for r in details.role_detail_list() {
        out += &format!(
            "role {:?} {:?} {:?} {:?} {:?}\n",
            r.arn(),
            r.assume_role_policy_document(),
            r.tags(),
            r.attached_managed_policies().iter().map(|a| a.policy_arn()).collect::<Vec<_>>(),
            r.role_policy_list().iter().map(|p| (p.policy_name(), p.policy_document())).collect::<Vec<_>>()
        );
    }
    for p in details.policies() {
        let tags = moto.block_on(moto.iam.list_policy_tags().policy_arn(p.arn().unwrap()).send()).unwrap();
        out += &format!(
            "policy {:?} {:?} {:?} {:?}\n",
            p.arn(),
            p.default_version_id(),
            p.attachment_count(),
            tags.tags()
        );
    }
    let providers = moto.block_on(moto.iam.list_open_id_connect_providers().send()).unwrap();
    for p in providers.open_id_connect_provider_list() {
        let got = moto
            .block_on(moto.iam.get_open_id_connect_provider().open_id_connect_provider_arn(p.arn().unwrap()).send())
            .unwrap();
        out += &format!("provider {:?} {:?} {:?}\n", p.arn(), got.client_id_list(), got.tags());
    }
    out
}

/// `irsa import` into `dir`; asserts it read only (no cluster write, IAM unchanged).
fn import(c: &Cluster, moto: &Moto, dir: &std::path::Path, extra: &[&str]) -> (i32, String, String) {
    let before = iam_state(moto);
    if let Some(s) = &c.server {
        s.reset_requests();
    }
    let dir = dir.to_str().unwrap();
    let mut args = vec!["import", "--namespace", &c.namespace, "--cluster-name", "ekshandson", "--out", dir];
    args.extend(["--stack-name", &c.stack_name]);
    args.extend(extra);
    let out = c.irsa(moto, &args);
    if let Some(s) = &c.server {
        let log = s.request_log();
        assert!(log.iter().all(|r| r.starts_with("GET ")), "import wrote to the cluster: {log:#?}");
        // The discovery document, and one LIST of each kind (none when refused before reading).
        if out.0 == 0 {
            assert_eq!(log.len(), 3, "{log:#?}");
        }
    }
    assert_eq!(iam_state(moto), before, "import changed IAM");
    out
}

fn stack_toml(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("stack.toml")).unwrap()
}

/// Every file import wrote, by path, for comparing two runs.
fn written(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                files.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    files.sort();
    files
}

fn seed_walkthrough(c: &Cluster) {
    let moto = Moto::start();
    // By hand, as the EKS walkthrough does it: three policies in the
    // console, the provider from `eksctl utils associate-iam-oidc-provider`,
    // a role with a hand-written trust, the policies attached.
    create_provider(c, &moto);
    let mut arns = Vec::new();
    for p in ["messages-read", "messages-write", "messages-stream"] {
        let doc = std::fs::read_to_string(format!("plans/policies/{p}.json")).unwrap();
        arns.push(create_policy(&moto, p, &doc));
    }
    let sa = "my-service-account";
    create_role(
        &moto,
        "backend-messages",
        vec![web_identity(c, "StringEquals", &subject(c, sa))],
        &[("team", "platform")],
    );
    for arn in arns.iter().map(String::as_str).chain(["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]) {
        attach(&moto, "backend-messages", arn);
    }
    let kms =
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]});
    moto.block_on(
        moto.iam
            .put_role_policy()
            .role_name("backend-messages")
            .policy_name("kms-decrypt")
            .policy_document(kms.to_string())
            .send(),
    )
    .unwrap();
    // `eksctl create iamserviceaccount --attach-role-arn …`: its label, the annotation.
    create_sa(c, sa, Some("backend-messages"), json!({"app.kubernetes.io/managed-by": "eksctl"}));
    c.advance(5);
    c.deployment(Some(sa));
    c.advance(60);

    let dir = c.dir.path().join("imported");
    let (code, _, stderr) = import(c, &moto, &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("1 owned role, 0 referenced roles, 3 policies, 1 service account"), "{stderr}");
    // In bulk, as a refresh reads: ListRoles, GetAccountAuthorizationDetails,
    // ListPolicyTags for each of the 3 policies, the provider's list and get.
    assert!(stderr.contains("read with 7 IAM calls, 3 Kubernetes requests"), "{stderr}");
    assert!(stderr.contains("was made by eksctl"), "{stderr}");
    let text = stack_toml(&dir);
    assert!(text.contains("\"arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess\""), "{text}");
    assert!(text.contains("workloads = [\"deployment/backend\"]"), "{text}");
    assert!(text.contains(&format!("# From service account {}/{sa}", c.namespace)), "{text}");
    assert!(text.contains("# From arn:aws:iam::123456789012:role/backend-messages"), "{text}");
    if c.server.is_some() {
        insta::assert_snapshot!("imported_walkthrough.stack.toml", text);
    }

    // Stable: the same files, byte for byte, a second time; never over a stack file unasked.
    let (code, _, stderr) = import(c, &moto, &dir, &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("exists and is not empty") && stderr.contains("--force"), "{stderr}");
    let again = c.dir.path().join("again");
    assert_eq!(import(c, &moto, &again, &[]).0, 0);
    assert_eq!(written(&dir), written(&again));
    let (code, _, stderr) = import(c, &moto, &dir, &["--force"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(written(&dir), written(&again));

    let stack = dir.join("stack.toml");
    let stack = stack.to_str().unwrap();
    let (code, _, stderr) = run_irsa(&["validate", stack]);
    assert_eq!(code, 0, "{stderr}");
    let plan = plan_json(c, &moto, stack);
    assert_eq!(
        shape(&plan),
        [
            "policy/messages-read adopt",
            "policy/messages-stream adopt",
            "policy/messages-write adopt",
            "role/backend-messages adopt",
            &format!("sa/{}/{sa} adopt", c.namespace),
        ],
        "{plan:#}"
    );
    // Adopting changes the ownership markers, nothing else.
    for change in plan["changes"].as_array().unwrap() {
        let (before, after) = (&change["before"], &change["after"]);
        for (k, v) in after.as_object().unwrap() {
            if k != "tags" && k != "annotations" && k != "labels" {
                assert_eq!(&before[k], v, "{} changes {k}", change["address"]);
            }
        }
    }

    let (code, _, stderr) = c.irsa(&moto, &["apply", stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    c.advance(60);
    no_changes(c, &moto, stack);
    // The trust still admits the pods' service account, exactly as written by hand.
    let role = moto.block_on(moto.iam.get_role().role_name("backend-messages").send()).unwrap();
    let trust = percent_encoding::percent_decode_str(role.role().unwrap().assume_role_policy_document().unwrap())
        .decode_utf8()
        .unwrap()
        .into_owned();
    let trust: Value = serde_json::from_str(&trust).unwrap();
    assert_eq!(trust["Statement"].as_array().unwrap().len(), 1, "{trust}");
    let sub = &trust["Statement"][0]["Condition"]["StringEquals"][format!("{}:sub", host(c))];
    assert_eq!(sub, &json!(subject(c, sa)), "{trust}");
    let tags = role.role().unwrap().tags().iter().map(|t| (t.key(), t.value())).collect::<Vec<_>>();
    assert!(tags.contains(&("irsa:stack", c.stack_name.as_str())), "{tags:?}");
    let labels = c.sa(sa).unwrap().metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("app.kubernetes.io/managed-by").map(String::as_str), Some("eksctl"));
}

#[test]
fn the_manual_walkthrough_is_imported_adopted_and_then_in_sync() {
    seed_walkthrough(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn the_manual_walkthrough_is_imported_adopted_and_then_in_sync_on_a_real_cluster() {
    seed_walkthrough(&Cluster::real());
}

fn the_harder_cases(c: &Cluster) {
    let moto = Moto::start();
    create_provider(c, &moto);
    let ec2 = json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"});
    // A role EC2 may assume too.
    create_role(&moto, "reporting", vec![web_identity(c, "StringEquals", &subject(c, "reporting")), ec2.clone()], &[]);
    // A role trusted by every service account of the namespace.
    let every = format!("system:serviceaccount:{}:*", c.namespace);
    create_role(&moto, "batch", vec![web_identity(c, "StringLike", &every)], &[]);
    // A role eksctl's CloudFormation stack made, with a policy a role outside the import uses too.
    let cfn = "eksctl-ekshandson-addon-iamserviceaccount-api";
    create_role(
        &moto,
        "api",
        vec![web_identity(c, "StringEquals", &subject(c, "api"))],
        &[("aws:cloudformation:stack-name", cfn)],
    );
    let doc = std::fs::read_to_string("plans/policies/messages-read.json").unwrap();
    let shared = create_policy(&moto, "shared-read", &doc);
    let own = create_policy(&moto, "api-only", &std::fs::read_to_string("plans/policies/messages-write.json").unwrap());
    attach(&moto, "api", &shared);
    attach(&moto, "api", &own);
    moto.hand_made_role("bystander");
    attach(&moto, "bystander", &shared);
    for (sa, role) in [("reporting", "reporting"), ("batch", "batch"), ("api", "api")] {
        create_sa(c, sa, Some(role), json!({}));
    }
    create_sa(c, "plain", None, json!({}));
    c.advance(60);

    let dir = c.dir.path().join("imported");
    let (code, _, stderr) = import(c, &moto, &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("1 owned role, 2 referenced roles, 1 policy, 3 service accounts"), "{stderr}");
    assert!(stderr.contains(&format!("role api belongs to CloudFormation stack {cfn}")), "{stderr}");
    let text = stack_toml(&dir);
    let section = |name: &str| {
        let start = text.find(&format!("[roles.{name}]")).unwrap_or_else(|| panic!("no [roles.{name}] in {text}"));
        let end = text[start..].find("\n\n").map_or(text.len(), |e| start + e);
        text[start..end].to_owned()
    };
    assert!(section("reporting").contains("manage_trust = true"), "{text}");
    assert!(section("batch").contains("manage_trust = false"), "{text}");
    assert!(text.contains(&format!("admits a wildcard ({every})")), "{text}");
    let api = section("api");
    assert!(api.contains("adopt = true") && api.contains("\"api-only\","), "{api}");
    assert!(api.contains(&format!("\"{shared}\",")), "{api}");
    assert!(text.contains("shared-read is also attached to role bystander, which this stack does not own"), "{text}");
    assert!(text.contains(&format!("CloudFormation stack {cfn} made this role")), "{text}");
    assert!(text.contains("DeletionPolicy: Retain"), "{text}");
    assert!(!text.contains("plain"), "{text}");
    if c.server.is_some() {
        insta::assert_snapshot!("imported_cases.stack.toml", text);
    }

    // Only the service accounts named.
    let (code, _, stderr) = import(c, &moto, &c.dir.path().join("one"), &["--service-account", "api"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("1 owned role, 0 referenced roles, 1 policy, 1 service account"), "{stderr}");
    // What cannot be imported says why, and writes nothing.
    let none = c.dir.path().join("none");
    let (code, _, stderr) = import(c, &moto, &none, &["--service-account", "plain"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("carries no eks.amazonaws.com/role-arn annotation"), "{stderr}");
    assert!(!none.exists());

    let stack = dir.join("stack.toml");
    let stack = stack.to_str().unwrap();
    assert_eq!(run_irsa(&["validate", stack]).0, 0);
    let plan = plan_json(c, &moto, stack);
    assert_eq!(
        shape(&plan),
        [
            "policy/api-only adopt",
            "role/api adopt",
            &format!("sa/{}/api adopt", c.namespace),
            &format!("sa/{}/batch adopt", c.namespace),
            &format!("sa/{}/reporting adopt", c.namespace),
        ],
        "{plan:#}"
    );
    let (code, _, stderr) = c.irsa(&moto, &["apply", stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");
    c.advance(60);
    no_changes(c, &moto, stack);

    // What the stack does not own is as it was: EC2's statement, the shared
    // policy (no markers), the bystander's attachment.
    let role = moto.block_on(moto.iam.get_role().role_name("reporting").send()).unwrap();
    let trust = role.role().unwrap().assume_role_policy_document().unwrap();
    assert!(percent_encoding::percent_decode_str(trust).decode_utf8().unwrap().contains("ec2.amazonaws.com"));
    let tags = moto.block_on(moto.iam.list_policy_tags().policy_arn(&shared).send()).unwrap();
    assert!(tags.tags().is_empty(), "{:?}", tags.tags());
    let attached = moto.block_on(moto.iam.list_attached_role_policies().role_name("bystander").send()).unwrap();
    assert_eq!(attached.attached_policies().len(), 1);
}

#[test]
fn extra_statements_wildcards_shared_policies_and_cloudformation_roles_are_imported_as_the_planner_needs() {
    the_harder_cases(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn extra_statements_wildcards_shared_policies_and_cloudformation_roles_are_imported_on_a_real_cluster() {
    the_harder_cases(&Cluster::real());
}
