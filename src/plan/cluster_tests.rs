//! Stacks of several clusters (`[clusters.<name>]`): one role trusted by
//! each cluster's provider, one statement per cluster, and a cluster taken
//! out of the file taking exactly its statement and provider with it.
//!
//! The observed states here are what an apply of the plan leaves, made by
//! [`applied`] from the plan's own `after`s, so every test also checks that
//! a plan carried out plans nothing more.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::model::desired::{Desired, markers};
use crate::model::observed::*;
use crate::model::policy_doc::PolicyDocument;

const BLUE: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/BLUE";
const GREEN: &str = "https://oidc.eks.us-east-1.amazonaws.com/id/GREEN";

fn clusters(names: &[&str]) -> String {
    let mut text = String::from("version = 1\n[stack]\nname = \"shop\"\n");
    for name in names {
        let issuer = if *name == "blue" { BLUE } else { GREEN };
        text.push_str(&format!(
            "[clusters.{name}]\nname = \"eks-{name}\"\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\noidc_issuer = \"{issuer}\"\n"
        ));
    }
    text
}

fn stack(text: &str) -> Desired {
    match crate::config::parse(Path::new("stack.toml"), text.into()) {
        Ok(d) => d,
        Err(p) => panic!("test stack is invalid: {:#?}", p.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
    }
}

fn problems(text: &str) -> Vec<String> {
    match crate::config::parse(Path::new("stack.toml"), text.into()) {
        Ok(_) => panic!("expected problems"),
        Err(p) => p.problems.iter().map(|p| format!("{p} | {}", p.help.clone().unwrap_or_default())).collect(),
    }
}

/// A role bound in `bound` (the binding's `clusters`), and a second role bound in blue only.
fn shop(names: &[&str], bound: &str) -> Desired {
    stack(&format!(
        r#"{}
[roles.app]
policies = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
[roles.jobs]
[[service_accounts]]
clusters = {bound}
namespace = "backend"
name = "app"
role = "app"
workloads = ["deployment/app"]
[[service_accounts]]
cluster = "blue"
namespace = "backend"
name = "jobs"
role = "jobs"
"#,
        clusters(names)
    ))
}

/// Both clusters with the `backend` namespace and the Deployment, nothing of IRSA.
fn empty(names: &[&str]) -> Observed {
    let mut o = Observed { format_version: 1, ..Default::default() };
    for name in names {
        let state = o.clusters.entry((*name).to_owned()).or_default();
        state.oidc_issuer = Some(if *name == "blue" { BLUE } else { GREEN }.into());
        state.namespaces = vec!["backend".into()];
        state.deployments.push(ObservedDeployment {
            namespace: "backend".into(),
            name: "app".into(),
            resource_version: "1".into(),
            service_account_name: None,
            restarted_at: None,
            rollout: Rollout::default(),
            pods: vec![],
        });
    }
    o
}

fn run(d: &Desired, o: &Observed) -> Plan {
    plan(d, o, &PlanOptions::default()).unwrap_or_else(|e| panic!("plan failed: {e:#?}"))
}

fn shape(p: &Plan) -> Vec<String> {
    p.changes.iter().map(|c| format!("{} {}", c.address, c.verb())).collect()
}

fn change<'p>(p: &'p Plan, address: &str) -> &'p Change {
    p.changes.iter().find(|c| c.address.to_string() == address).unwrap_or_else(|| panic!("no change for {address}"))
}

fn after(c: &Change) -> Value {
    Value::Object(c.after.clone().expect("an after").into())
}

fn tags(v: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(v["tags"].clone()).unwrap_or_default()
}

/// What carrying `p` out leaves: each change's `after` written into `o`.
fn applied(o: &Observed, p: &Plan) -> Observed {
    let mut o = o.clone();
    for c in &p.changes {
        let gone = c.after.is_none();
        let a = if gone { Value::Null } else { after(c) };
        match &c.address {
            Address::Oidc { .. } if gone => {
                let arn = c.before.as_ref().unwrap()["arn"].as_str().unwrap().to_owned();
                o.iam.oidc_providers.retain(|p| p.arn != arn);
            }
            Address::Oidc { .. } => {
                let url = a["url"].as_str().unwrap().trim_start_matches("https://").to_owned();
                o.iam.oidc_providers.retain(|p| p.url != url);
                o.iam.oidc_providers.push(OidcProvider {
                    arn: a["arn"].as_str().unwrap().into(),
                    url,
                    client_ids: vec![markers::STS_AUDIENCE.into()],
                    thumbprints: vec![],
                    tags: tags(&a).into(),
                    trusted_by: vec![],
                });
            }
            Address::Role { name } if a.get("name").is_some() => {
                let old = o.iam.roles.iter().position(|r| r.name == *name).map(|i| o.iam.roles.remove(i));
                let (attached_policies, inline_policies) =
                    old.map(|r| (r.attached_policies, r.inline_policies)).unwrap_or_default();
                o.iam.roles.push(ObservedRole {
                    name: name.clone(),
                    path: a["path"].as_str().unwrap().into(),
                    arn: a["arn"].as_str().unwrap().into(),
                    description: None,
                    max_session_duration: 3600,
                    permissions_boundary: None,
                    trust_policy: PolicyDocument::from_value(a["trust_policy"].clone()),
                    tags: tags(&a).into(),
                    attached_policies,
                    inline_policies,
                });
            }
            // A role referenced by ARN: only its trust is written.
            Address::Role { .. } => {
                let r = o.iam.roles.iter_mut().find(|r| Some(r.arn.as_str()) == a["arn"].as_str()).unwrap();
                r.trust_policy = PolicyDocument::from_value(a["trust_policy"].clone());
            }
            Address::Attach { role, .. } => {
                let r = o.iam.roles.iter_mut().find(|r| r.name == *role).unwrap();
                r.attached_policies.push(a["policy_arn"].as_str().unwrap().into());
            }
            Address::ServiceAccount { cluster, namespace, name } => {
                let state = state_of(&mut o, cluster);
                state.service_accounts.retain(|s| !(s.namespace == *namespace && s.name == *name));
                if !gone {
                    state.service_accounts.push(ObservedServiceAccount {
                        namespace: namespace.clone(),
                        name: name.clone(),
                        resource_version: "2".into(),
                        annotations: serde_json::from_value(a["annotations"].clone()).unwrap(),
                        labels: serde_json::from_value(a["labels"].clone()).unwrap(),
                        role_arn_set_at: None,
                        irsa_annotations: vec![],
                    });
                }
            }
            Address::Deployment { cluster, namespace, name } => {
                let state = state_of(&mut o, cluster);
                let d = state.deployments.iter_mut().find(|d| d.namespace == *namespace && d.name == *name).unwrap();
                d.service_account_name = a["service_account_name"].as_str().map(str::to_owned);
            }
            other => panic!("no stand-in for {other}"),
        }
    }
    // As a refresh reports it: which roles trust each provider.
    let roles = o.iam.roles.clone();
    for p in &mut o.iam.oidc_providers {
        p.trusted_by = roles
            .iter()
            .filter(|r| r.trust_policy.statements_naming_federated(&p.arn).next().is_some())
            .map(|r| r.name.clone())
            .collect();
    }
    o
}

fn state_of<'o>(o: &'o mut Observed, cluster: &Option<String>) -> &'o mut ObservedCluster {
    match cluster {
        None => &mut o.cluster,
        Some(k) => o.clusters.get_mut(k).expect("the cluster is read"),
    }
}

/// The role `Legacy`, made by hand before irsa, trusting `statements`.
fn legacy(statements: Vec<Value>) -> ObservedRole {
    ObservedRole {
        name: "Legacy".into(),
        path: "/".into(),
        arn: "arn:aws:iam::123456789012:role/Legacy".into(),
        description: None,
        max_session_duration: 3600,
        permissions_boundary: None,
        trust_policy: PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": statements})),
        tags: BTreeMap::new().into(),
        attached_policies: vec![],
        inline_policies: BTreeMap::new(),
    }
}

fn sids(trust: &PolicyDocument) -> Vec<String> {
    trust.statements().iter().filter_map(|s| s["Sid"].as_str().map(str::to_owned)).collect()
}

#[test]
fn one_apply_makes_both_providers_and_a_statement_for_each() {
    let d = shop(&["blue", "green"], r#"["blue", "green"]"#);
    let o = empty(&["blue", "green"]);
    let p = run(&d, &o);
    assert_eq!(
        shape(&p),
        [
            "oidc/blue create",
            "oidc/green create",
            "role/app create",
            "role/jobs create",
            "role/app/attach/arn:aws:iam::aws:policy/ReadOnlyAccess create",
            "sa/blue/backend/app create",
            "sa/blue/backend/jobs create",
            "sa/green/backend/app create",
            "deploy/blue/backend/app update",
            "deploy/green/backend/app update",
        ]
    );
    let role = change(&p, "role/app");
    let trust = PolicyDocument::from_value(after(role)["trust_policy"].clone());
    assert_eq!(sids(&trust), ["IrsashopInblue", "IrsashopIngreen"]);
    for (statement, host) in trust.statements().iter().zip(["id/BLUE", "id/GREEN"]) {
        let provider = statement["Principal"]["Federated"][0].as_str().unwrap();
        assert!(provider.ends_with(host), "{provider}");
        let sub = &statement["Condition"]["StringEquals"][format!("oidc.eks.us-east-1.amazonaws.com/{host}:sub")];
        assert_eq!(sub, &json!(["system:serviceaccount:backend:app"]));
    }
    // How full the trust policy is, said where it grows.
    let room = role.reasons.iter().find(|r| r.contains("room for about")).expect("a size reason");
    assert!(room.contains("each of 2 clusters") && room.contains("of 2048 characters"), "{room}");
    assert!(!change(&p, "role/jobs").reasons.iter().any(|r| r.contains("room for")), "one cluster: nothing to say");
    // The role waits for both providers; each ServiceAccount for the role.
    let deps = |a: &str| change(&p, a).depends_on.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(deps("role/app"), ["oidc/blue", "oidc/green"]);
    assert_eq!(deps("sa/green/backend/app"), ["role/app"]);
    assert_eq!(deps("deploy/green/backend/app"), ["sa/green/backend/app"]);

    let after_apply = applied(&o, &p);
    assert_eq!(shape(&run(&d, &after_apply)), Vec::<String>::new(), "applied, nothing is left to do");
}

#[test]
fn removing_a_cluster_removes_exactly_its_statement_and_provider() {
    let both = shop(&["blue", "green"], r#"["blue", "green"]"#);
    let o = applied(&empty(&["blue", "green"]), &run(&both, &empty(&["blue", "green"])));
    let blue_only = shop(&["blue"], r#"["blue"]"#);
    // The snapshot of the blue-only file reads only blue.
    let mut read = o.clone();
    read.clusters.remove("green");
    let p = run(&blue_only, &read);
    assert_eq!(shape(&p), ["oidc/oidc.eks.us-east-1.amazonaws.com/id/GREEN delete", "role/app update"]);
    let role = change(&p, "role/app");
    assert_eq!(*role.changed, ["trust_policy"]);
    let trust = PolicyDocument::from_value(after(role)["trust_policy"].clone());
    assert_eq!(sids(&trust), ["IrsashopInblue"]);
    let before = PolicyDocument::from_value(role.before.as_ref().unwrap()["trust_policy"].clone());
    assert_eq!(trust.statements()[0], before.statements()[0], "blue's statement is untouched");
    let gone = change(&p, "oidc/oidc.eks.us-east-1.amazonaws.com/id/GREEN");
    assert_eq!(gone.reasons, ["no cluster of the stack file has this issuer any more"]);
    assert!(
        p.warnings.iter().any(|w| w.message.contains("are not read or removed")),
        "the green ServiceAccounts are left, and the plan says so: {:?}",
        p.warnings
    );
    assert_eq!(shape(&run(&blue_only, &applied(&read, &p))), Vec::<String>::new());
}

#[test]
fn a_provider_another_stack_still_trusts_is_kept() {
    let both = shop(&["blue", "green"], r#"["blue", "green"]"#);
    let mut o = applied(&empty(&["blue", "green"]), &run(&both, &empty(&["blue", "green"])));
    o.clusters.remove("green");
    let green = o.iam.oidc_providers.iter_mut().find(|p| p.url.ends_with("GREEN")).unwrap();
    green.trusted_by.push("someone-elses".into());
    let p = run(&shop(&["blue"], r#"["blue"]"#), &o);
    assert_eq!(shape(&p), ["role/app update"]);
    assert!(p.warnings.iter().any(|w| w.message.contains("is kept, though this stack made it")), "{:?}", p.warnings);
}

#[test]
fn a_shared_role_gets_a_statement_per_cluster_and_keeps_the_others() {
    let text = |bound: &str, names: &[&str]| {
        format!(
            r#"{}
[roles.legacy]
arn = "arn:aws:iam::123456789012:role/Legacy"
manage_trust = true
[[service_accounts]]
clusters = {bound}
namespace = "backend"
name = "app"
role = "legacy"
"#,
            clusters(names)
        )
    };
    let ec2 = json!({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"});
    let mut o = empty(&["blue", "green"]);
    o.iam.roles.push(legacy(vec![ec2]));
    let both = stack(&text(r#"["blue", "green"]"#, &["blue", "green"]));
    let p = run(&both, &o);
    let role = change(&p, "role/legacy");
    assert_eq!(
        role.reasons[0],
        "manage_trust = true: irsa's trust statements, one per cluster: IrsashopInblue, IrsashopIngreen added; every other statement is kept as it is"
    );
    let trust = PolicyDocument::from_value(after(role)["trust_policy"].clone());
    assert_eq!(trust.statements().len(), 3);
    assert_eq!(trust.statements()[0]["Principal"]["Service"], json!(["ec2.amazonaws.com"]), "kept first, as it was");
    let o = applied(&o, &p);
    assert_eq!(shape(&run(&both, &o)), Vec::<String>::new());

    // The move is done: green only. Blue's statement goes, the others stay.
    let mut read = o.clone();
    read.clusters.remove("blue");
    let green = stack(&text(r#"["green"]"#, &["green"]));
    let p = run(&green, &read);
    let role = change(&p, "role/legacy");
    assert!(role.reasons[0].contains("IrsashopInblue removed"), "{:?}", role.reasons);
    let trust = PolicyDocument::from_value(after(role)["trust_policy"].clone());
    assert_eq!(sids(&trust), ["IrsashopIngreen"]);
    assert_eq!(trust.statements().len(), 2, "ec2's statement stays");
    assert!(shape(&p).contains(&"oidc/oidc.eks.us-east-1.amazonaws.com/id/BLUE delete".to_owned()), "{:?}", shape(&p));
}

#[test]
fn a_stack_moving_from_one_cluster_to_several_rewrites_its_statement_once() {
    // Applied as a `[cluster]` file: the statement's Sid names no cluster.
    let single = stack(&format!(
        "version = 1\n[stack]\nname = \"shop\"\n[cluster]\nname = \"eks-blue\"\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\noidc_issuer = \"{BLUE}\"\n[roles.jobs]\n[[service_accounts]]\nnamespace = \"backend\"\nname = \"jobs\"\nrole = \"jobs\"\n"
    ));
    let mut o = Observed { format_version: 1, ..Default::default() };
    o.cluster.oidc_issuer = Some(BLUE.into());
    o.cluster.namespaces = vec!["backend".into()];
    let o = applied(&o, &run(&single, &o));
    assert_eq!(shape(&run(&single, &o)), Vec::<String>::new());

    // The same stack as [clusters.blue]: the role's statement gets the
    // cluster's Sid; the ServiceAccount, the same object, only its address.
    let multi = shop(&["blue", "green"], r#"["blue", "green"]"#);
    let mut moved = o.clone();
    let blue = std::mem::take(&mut moved.cluster);
    moved.clusters.insert("blue".into(), blue);
    moved.clusters.insert("green".into(), empty(&["green"]).clusters["green"].clone());
    let p = run(&multi, &moved);
    let jobs = change(&p, "role/jobs");
    let trust = PolicyDocument::from_value(after(jobs)["trust_policy"].clone());
    assert_eq!(sids(&trust), ["IrsashopInblue"]);
    assert!(!shape(&p).iter().any(|s| s.starts_with("sa/blue/backend/jobs")), "{:?}", shape(&p));
    assert!(!shape(&p).iter().any(|s| s.starts_with("oidc/blue")), "the provider is the same: {:?}", shape(&p));
}

#[test]
fn a_snapshot_of_other_clusters_is_refused() {
    let d = shop(&["blue", "green"], r#"["blue", "green"]"#);
    let only_blue = empty(&["blue"]);
    let errors = plan(&d, &only_blue, &PlanOptions::default()).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].message,
        "the observed state has no state for [clusters.green]: it was read for clusters blue"
    );
    // A `[cluster]` snapshot for a stack of several clusters, and the other way round.
    let mut single = Observed { format_version: 1, ..Default::default() };
    single.cluster.oidc_issuer = Some(BLUE.into());
    assert_eq!(plan(&d, &single, &PlanOptions::default()).unwrap_err().len(), 2);
    let one = stack(&format!(
        "version = 1\n[cluster]\nname = \"eks-blue\"\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\noidc_issuer = \"{BLUE}\"\n[roles.jobs]\n[[service_accounts]]\nnamespace = \"backend\"\nname = \"jobs\"\nrole = \"jobs\"\n"
    ));
    let errors = plan(&one, &empty(&["blue"]), &PlanOptions::default()).unwrap_err();
    assert!(errors[0].message.contains("no state for [cluster]"), "{}", errors[0].message);
}

#[test]
fn two_contexts_that_reach_one_cluster_are_refused() {
    // The file sets no issuers; both clusters report blue's.
    let text = shop(&["blue", "green"], r#"["blue", "green"]"#);
    let mut d = text.clone();
    for c in &mut d.clusters {
        c.oidc_issuer = None;
    }
    d.quotas_passed = None;
    let mut o = empty(&["blue", "green"]);
    o.clusters.get_mut("green").unwrap().oidc_issuer = Some(BLUE.into());
    let errors = plan(&d, &o, &PlanOptions::default()).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].message,
        format!("clusters blue and green have one OIDC issuer, {BLUE}: they are one cluster")
    );
}

/// What apply checks before it takes the locks (the issuers the clusters
/// serve): the second cluster of one issuer is named, at its table.
#[test]
fn the_second_cluster_of_one_issuer_is_named_before_any_lock() {
    let d = shop(&["blue", "green"], r#"["blue", "green"]"#);
    let pair =
        |green: &str| vec![(Some("blue".to_owned()), BLUE.to_owned()), (Some("green".to_owned()), green.to_owned())];
    assert!(clusters_reached_twice(&d, &pair(GREEN)).is_empty());
    let errors = clusters_reached_twice(&d, &pair(BLUE));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].address.as_ref().map(ToString::to_string).as_deref(), Some("oidc/green"));
    assert_eq!(errors[0].span.as_ref(), Some(&d.cluster(Some("green")).unwrap().span));
    assert!(
        errors[0].help.contains("[clusters.green]: it reaches the cluster of [clusters.blue]"),
        "{}",
        errors[0].help
    );
}

#[test]
fn a_trust_policy_over_the_quota_says_how_many_fewer_fit() {
    let bindings = |role: &str, n: usize| {
        (0..n)
            .map(|i| format!("[[service_accounts]]\nclusters = [\"blue\", \"green\"]\nnamespace = \"backend\"\nname = \"service-account-{i:02}\"\nrole = \"{role}\"\n"))
            .collect::<String>()
    };
    // An owned role: the loader measures it against IAM's default 2,048.
    let got = problems(&format!("{}[roles.app]\n{}", clusters(&["blue", "green"]), bindings("app", 30)));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("(60 service accounts in 2 clusters, one statement each)"), "{}", got[0]);
    assert!(got[0].contains("| bind about 35 fewer service accounts"), "{}", got[0]);

    // A shared role's trust is measured when it is planned, against the account's quota.
    let d = stack(&format!(
        "{}[roles.legacy]\narn = \"arn:aws:iam::123456789012:role/Legacy\"\nmanage_trust = true\n{}",
        clusters(&["blue", "green"]),
        bindings("legacy", 3)
    ));
    let mut o = empty(&["blue", "green"]);
    o.iam.roles.push(legacy(vec![]));
    assert!(plan(&d, &o, &PlanOptions::default()).is_ok());
    o.iam.quotas = Some(crate::model::quotas::Quotas { trust_policy_size: 600, ..Default::default() });
    let errors = plan(&d, &o, &PlanOptions::default()).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].message.contains("the account allows 600"), "{}", errors[0].message);
    assert!(errors[0].help.starts_with("bind about"), "{}", errors[0].help);
}

#[test]
fn the_loader_says_which_cluster_and_how() {
    let two = clusters(&["blue", "green"]);
    let cases: &[(&str, &str)] = &[
        (
            "[roles.a]\n[[service_accounts]]\nnamespace = \"ns\"\nname = \"a\"\nrole = \"a\"\n",
            "missing the required key `cluster` | add cluster = \"blue\" (the stack has clusters blue, green)",
        ),
        (
            "[roles.a]\n[[service_accounts]]\ncluster = \"gren\"\nnamespace = \"ns\"\nname = \"a\"\nrole = \"a\"\n",
            "service account is in cluster `gren`, which is not defined",
        ),
        (
            "[roles.a]\n[[service_accounts]]\ncluster = \"blue\"\nclusters = [\"green\"]\nnamespace = \"ns\"\nname = \"a\"\nrole = \"a\"\n",
            "both `cluster` and `clusters`",
        ),
        (
            "[roles.a]\n[[service_accounts]]\nclusters = [\"blue\", \"blue\"]\nnamespace = \"ns\"\nname = \"a\"\nrole = \"a\"\n",
            "cluster `blue` is listed twice",
        ),
        (
            "[roles.a]\n[[service_accounts]]\nclusters = [\"blue\"]\nnamespace = \"ns\"\nname = \"a\"\nrole = \"a\"\n[[service_accounts]]\ncluster = \"blue\"\nnamespace = \"ns\"\nname = \"a\"\nrole = \"a\"\n",
            "service account ns/a in cluster blue is bound twice",
        ),
    ];
    for (body, want) in cases {
        let got = problems(&format!("{two}{body}"));
        assert!(got.iter().any(|p| p.contains(want)), "{want:?} not in {got:?}");
    }
    // The same ServiceAccount in two clusters is two bindings.
    let d = stack(&format!(
        "{two}[roles.a]\n[[service_accounts]]\nclusters = [\"green\", \"blue\"]\nnamespace = \"ns\"\nname = \"a\"\nrole = \"a\"\n"
    ));
    let keys: Vec<Option<&str>> = d.bindings.iter().map(|b| b.cluster.as_deref()).collect();
    assert_eq!(keys, [Some("green"), Some("blue")]);
    assert_eq!(d.clusters.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["eks-blue", "eks-green"]);

    let table = |key: &str, account: &str, issuer: &str| {
        format!("[clusters.{key}]\nregion = \"us-east-1\"\naccount_id = \"{account}\"\noidc_issuer = \"{issuer}\"\n")
    };
    let bind = "[roles.a]\n[[service_accounts]]\ncluster = \"a\"\nnamespace = \"ns\"\nname = \"a\"\nrole = \"a\"\n";
    let file_cases: Vec<(String, &str)> = vec![
        (
            format!("version = 1\n{}{bind}", table("a", "123456789012", BLUE)),
            "a stack of several clusters needs a name of its own",
        ),
        (
            format!(
                "version = 1\n[stack]\nname = \"s\"\n{}{}{bind}",
                table("a", "123456789012", BLUE),
                table("b", "210987654321", GREEN)
            ),
            "[clusters.b] is in account 210987654321, but [clusters.a] is in 123456789012",
        ),
        (
            format!(
                "version = 1\n[stack]\nname = \"s\"\n{}{}{bind}",
                table("a", "123456789012", BLUE),
                table("b", "123456789012", BLUE)
            ),
            "[clusters.b] has the OIDC issuer of [clusters.a]",
        ),
        (
            format!(
                "version = 1\n[stack]\nname = \"s\"\n{}{}{bind}",
                table("a", "123456789012", BLUE),
                table("a-", "123456789012", GREEN)
            ),
            "not a name for a cluster of the stack",
        ),
        (
            format!(
                "version = 1\n[stack]\nname = \"s\"\n{}{}{bind}",
                table("a-1", "123456789012", BLUE),
                table("a1", "123456789012", GREEN)
            ),
            "would share a trust statement Sid",
        ),
        (
            format!(
                "version = 1\n[stack]\nname = \"s\"\n[cluster]\nname = \"c\"\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\n{}{bind}",
                table("a", "123456789012", BLUE)
            ),
            "both [cluster] and [clusters.<name>] tables",
        ),
    ];
    for (text, want) in &file_cases {
        let got = problems(text);
        assert!(got.iter().any(|p| p.contains(want)), "{want:?} not in {got:?}");
    }
    // A `[cluster]` file's binding may name its cluster, by the cluster's name.
    let d = stack(
        "version = 1\n[cluster]\nname = \"c\"\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\n[roles.a]\n[[service_accounts]]\ncluster = \"c\"\nnamespace = \"ns\"\nname = \"a\"\nrole = \"a\"\n",
    );
    assert_eq!(d.bindings[0].cluster, None);
}
