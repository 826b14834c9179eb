//! Presets end to end: a stack with one role per preset, planned, applied
//! against moto and the cluster, and planned again with nothing to do.

use serde_json::{Value, json};

use crate::support::{Moto, plan_shape as shape};
use crate::world::{Cluster, no_changes, plan_json};

/// Each role of the stack, the preset it lists, and the policies that makes.
const ROLES: &[(&str, &str, &[&str])] = &[
    ("autoscaler", "cluster-autoscaler", &["autoscaler-cluster-autoscaler"]),
    ("certs", "cert-manager", &["certs-cert-manager"]),
    ("dns", "external-dns", &["dns-external-dns"]),
    ("ebs", "aws-ebs-csi-driver", &["ebs-aws-ebs-csi-driver"]),
    ("efs", "aws-efs-csi-driver", &["efs-aws-efs-csi-driver"]),
    ("karpenter", "karpenter", &["karpenter-karpenter-integration", "karpenter-karpenter-node-lifecycle"]),
    ("lbc", "aws-load-balancer-controller", &["lbc-aws-load-balancer-controller"]),
];

const ZONE: &str = "arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ";

/// The stack file, in the cluster's namespace and named as its stack; on a
/// real cluster the issuer is discovered and the scenario's context used.
fn stack(c: &Cluster) -> String {
    let mut text = format!(
        "version = 1\n[stack]\nname = \"{}\"\n[cluster]\nname = \"ekshandson\"\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\n",
        c.stack_name
    );
    if c.server.is_some() {
        text.push_str("oidc_issuer = \"https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE\"\ncontext = \"ekshandson\"\n");
    }
    text.push_str("[defaults]\nrole_path = \"/addons/\"\ntags = { team = \"platform\" }\n");
    for (role, preset, _) in ROLES {
        text.push_str(&format!("[roles.{role}]\npolicies = [\"preset:{preset}\"]\n"));
    }
    text.push_str(&format!("[roles.dns.presets.external-dns]\nhosted_zone_arns = [\"{ZONE}\"]\n"));
    text.push_str(&format!("[roles.certs.presets.cert-manager]\nhosted_zone_arns = [\"{ZONE}\"]\n"));
    text.push_str("[roles.karpenter.presets.karpenter]\ninterruption_queue = \"ekshandson-interruptions\"\n");
    for (role, _, _) in ROLES {
        text.push_str(&format!(
            "[[service_accounts]]\nnamespace = \"{}\"\nname = \"{role}\"\nrole = \"{role}\"\n",
            c.namespace
        ));
    }
    let path = c.dir.path().join("addons.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn change<'a>(plan: &'a Value, address: &str) -> &'a Value {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == address)
        .unwrap_or_else(|| panic!("no {address} in {plan:#}"))
}

fn decode(doc: &str) -> Value {
    let text = percent_encoding::percent_decode_str(doc).decode_utf8().unwrap().into_owned();
    serde_json::from_str(&text).unwrap()
}

fn presets_planned_applied_and_planned_again(c: &Cluster) {
    let moto = Moto::start();
    let stack = stack(c);

    // Each preset's policy is planned as a stack policy, with its version said.
    let plan = plan_json(c, &moto, &stack);
    for (role, preset, policies) in ROLES {
        for name in *policies {
            let ch = change(&plan, &format!("policy/{name}"));
            assert_eq!(ch["actions"], json!(["create"]), "{ch:#}");
            let reasons = ch["reasons"].to_string();
            assert!(reasons.contains(&format!("irsa's preset `{preset}` v1 for role `{role}`")), "{reasons}");
            assert_eq!(ch["after"]["tags"]["irsa:stack"], c.stack_name.as_str(), "{ch:#}");
            assert_eq!(ch["after"]["tags"]["team"], "platform", "{ch:#}");
            assert_eq!(ch["after"]["path"], "/addons/", "{ch:#}");
            let attach = change(&plan, &format!("role/{role}/attach/{name}"));
            assert_eq!(attach["actions"], json!(["create"]), "{attach:#}");
        }
    }
    let dns = &change(&plan, "policy/dns-external-dns")["after"]["document"];
    assert_eq!(dns["Statement"][0]["Resource"], json!([ZONE]), "{dns:#}");

    let (code, _, stderr) = c.irsa(&moto, &["apply", &stack, "--auto-approve"]);
    assert_eq!(code, 0, "{stderr}");

    // IAM holds each document as planned, attached to its role.
    for (role, _, policies) in ROLES {
        let attached = moto.block_on(moto.iam.list_attached_role_policies().role_name(*role).send()).unwrap();
        let mut names: Vec<&str> = attached.attached_policies().iter().filter_map(|p| p.policy_name()).collect();
        names.sort();
        assert_eq!(names, *policies, "role {role}");
        for name in *policies {
            let arn = format!("arn:aws:iam::123456789012:policy/addons/{name}");
            let policy = moto.block_on(moto.iam.get_policy().policy_arn(&arn).send()).unwrap();
            let version = policy.policy().unwrap().default_version_id().unwrap().to_owned();
            let held =
                moto.block_on(moto.iam.get_policy_version().policy_arn(&arn).version_id(version).send()).unwrap();
            let held = decode(held.policy_version().unwrap().document().unwrap());
            let tags = moto.block_on(moto.iam.list_policy_tags().policy_arn(&arn).send()).unwrap();
            let tags: Vec<(&str, &str)> = tags.tags().iter().map(|t| (t.key(), t.value())).collect();
            for tag in [("irsa:managed-by", "irsa"), ("irsa:stack", c.stack_name.as_str()), ("team", "platform")] {
                assert!(tags.contains(&tag), "{name}: {tags:?}");
            }
            let planned = &change(&plan, &format!("policy/{name}"))["after"]["document"];
            assert_eq!(
                irsa::model::policy_doc::PolicyDocument::from_value(held),
                irsa::model::policy_doc::PolicyDocument::from_value(planned.clone()),
                "{name}"
            );
        }
    }
    c.advance(60);
    no_changes(c, &moto, &stack);

    // A preset's document edited by hand is planned back, saying which
    // version of the preset it goes back to.
    let arn = "arn:aws:iam::123456789012:policy/addons/dns-external-dns";
    let edited =
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "route53:*", "Resource": "*"}]});
    moto.block_on(
        moto.iam
            .create_policy_version()
            .policy_arn(arn)
            .policy_document(edited.to_string())
            .set_as_default(true)
            .send(),
    )
    .unwrap();
    let plan = plan_json(c, &moto, &stack);
    assert_eq!(shape(&plan), ["policy/dns-external-dns update"], "{plan:#}");
    let reasons = plan["changes"][0]["reasons"].to_string();
    assert!(reasons.contains("the document differs"), "{reasons}");
    assert!(reasons.contains("irsa's preset `external-dns` v1 for role `dns`"), "{reasons}");
}

#[test]
fn every_preset_is_planned_applied_and_planned_again_with_no_change() {
    presets_planned_applied_and_planned_again(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn every_preset_is_planned_applied_and_planned_again_with_no_change_on_a_real_cluster() {
    presets_planned_applied_and_planned_again(&Cluster::real());
}

/// A policy of a preset's name made by hand is refused like any unowned
/// policy, with the fix that fits a preset, and adopted with its role.
fn a_hand_made_preset_policy_is_refused_then_adopted(c: &Cluster) {
    let moto = Moto::start();
    let stack = stack(c);
    let hand =
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "route53:*", "Resource": "*"}]});
    moto.block_on(
        moto.iam
            .create_policy()
            .policy_name("dns-external-dns")
            .path("/addons/")
            .description("ExternalDNS (irsa preset external-dns) for role dns")
            .policy_document(hand.to_string())
            .send(),
    )
    .unwrap();
    let (code, _, stderr) = c.irsa(&moto, &["plan", &stack]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("policy/dns-external-dns already exists and is not managed by irsa"), "{stderr}");
    assert!(stderr.contains("set adopt = true on [roles.dns] (its preset `external-dns`)"), "{stderr}");

    let (code, stdout, stderr) = c.irsa(&moto, &["plan", &stack, "--adopt", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let plan: Value = serde_json::from_str(&stdout).unwrap();
    let ch = change(&plan, "policy/dns-external-dns");
    assert_eq!(ch["actions"], json!(["adopt"]), "{ch:#}");
    let reasons = ch["reasons"].to_string();
    assert!(reasons.contains("irsa's preset `external-dns` v1 for role `dns`"), "{reasons}");
    let (code, _, stderr) = c.irsa(&moto, &["apply", &stack, "--auto-approve", "--adopt"]);
    assert_eq!(code, 0, "{stderr}");
    c.advance(60);
    no_changes(c, &moto, &stack);
}

#[test]
fn a_hand_made_preset_policy_is_refused_then_adopted_with_its_role() {
    a_hand_made_preset_policy_is_refused_then_adopted(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn a_hand_made_preset_policy_is_refused_then_adopted_with_its_role_on_a_real_cluster() {
    a_hand_made_preset_policy_is_refused_then_adopted(&Cluster::real());
}
