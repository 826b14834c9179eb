//! Presets: the IAM policies of common EKS add-ons, as irsa ships them.
//!
//! `policies = ["preset:external-dns"]` in a role makes the loader expand the
//! preset into ordinary stack policies (see [`crate::config`]), so the
//! planner, the graph and apply treat them like any `[policies.<name>]`.
//! Each preset's document is data, transcribed from its project's published
//! minimum permissions (docs/presets.md cites each source), kept in
//! `presets/<name>/v<N>[-<part>].json` and embedded in the binary. `${name}`
//! placeholders in them are filled from the preset's parameters; a string
//! that is exactly `${list}` becomes the list. Policy variables such as
//! `${aws:username}` are left alone: only the preset's own names are filled.
//!
//! A preset's version is bumped whenever its document changes, so a plan can
//! say which version a changed document comes from.

use std::collections::BTreeMap;

use serde_json::Value;

use super::names::{self, Invalid};

/// One preset: an add-on's permissions, in one or more managed policies.
#[derive(Debug)]
pub struct Preset {
    /// What goes after `preset:`.
    pub name: &'static str,
    /// irsa's version of the preset's document; bumped when it changes.
    pub version: u32,
    /// The add-on, as its project names it.
    pub project: &'static str,
    pub params: &'static [Param],
    /// The managed policies the preset makes: one, unless its document is
    /// over IAM's size quota for one policy.
    pub parts: &'static [Part],
}

/// One managed policy of a preset.
#[derive(Debug)]
pub struct Part {
    /// Added to the policy's name when the preset has several parts.
    pub suffix: Option<&'static str>,
    pub template: &'static str,
}

/// A parameter of a preset, given in `[roles.<role>.presets.<preset>]`.
#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub default: Default,
    /// How it is written, for messages.
    pub example: &'static str,
}

/// What a parameter's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A non-empty list of Route 53 hosted zone ARNs (or `…:hostedzone/*`).
    HostedZoneArns,
    ClusterName,
    Region,
    AccountId,
    /// An SQS queue name.
    QueueName,
    RoleArn,
}

/// Where a parameter left out takes its value from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    Required,
    /// `[cluster] name`.
    ClusterName,
    /// `[cluster] region`.
    Region,
    /// `[cluster] account_id`.
    AccountId,
    /// `KarpenterNodeRole-<cluster_name>` in the account, as Karpenter's
    /// CloudFormation template names the node role.
    KarpenterNodeRole,
}

/// A parameter's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    One(String),
    List(Vec<String>),
}

const ZONES: Param = Param {
    name: "hosted_zone_arns",
    kind: Kind::HostedZoneArns,
    default: Default::Required,
    example: "[\"arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ\"]",
};
const CLUSTER: Param =
    Param { name: "cluster_name", kind: Kind::ClusterName, default: Default::ClusterName, example: "\"my-cluster\"" };

/// Every preset irsa has, sorted by name.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "aws-ebs-csi-driver",
        version: 1,
        project: "Amazon EBS CSI driver",
        params: &[],
        parts: &[Part { suffix: None, template: include_str!("../../presets/aws-ebs-csi-driver/v1.json") }],
    },
    Preset {
        name: "aws-efs-csi-driver",
        version: 1,
        project: "Amazon EFS CSI driver",
        params: &[],
        parts: &[Part { suffix: None, template: include_str!("../../presets/aws-efs-csi-driver/v1.json") }],
    },
    Preset {
        name: "aws-load-balancer-controller",
        version: 1,
        project: "AWS Load Balancer Controller",
        params: &[],
        parts: &[Part { suffix: None, template: include_str!("../../presets/aws-load-balancer-controller/v1.json") }],
    },
    Preset {
        name: "cert-manager",
        version: 1,
        project: "cert-manager (ACME DNS-01 with Route 53)",
        params: &[ZONES],
        parts: &[Part { suffix: None, template: include_str!("../../presets/cert-manager/v1.json") }],
    },
    Preset {
        name: "cluster-autoscaler",
        version: 1,
        project: "Cluster Autoscaler",
        params: &[CLUSTER],
        parts: &[Part { suffix: None, template: include_str!("../../presets/cluster-autoscaler/v1.json") }],
    },
    Preset {
        name: "external-dns",
        version: 1,
        project: "ExternalDNS",
        params: &[ZONES],
        parts: &[Part { suffix: None, template: include_str!("../../presets/external-dns/v1.json") }],
    },
    Preset {
        name: "karpenter",
        version: 1,
        project: "Karpenter controller",
        params: &[
            CLUSTER,
            Param { name: "region", kind: Kind::Region, default: Default::Region, example: "\"us-east-1\"" },
            Param {
                name: "account_id",
                kind: Kind::AccountId,
                default: Default::AccountId,
                example: "\"123456789012\"",
            },
            Param {
                name: "interruption_queue",
                kind: Kind::QueueName,
                default: Default::ClusterName,
                example: "\"my-cluster\"",
            },
            Param {
                name: "node_role_arn",
                kind: Kind::RoleArn,
                default: Default::KarpenterNodeRole,
                example: "\"arn:aws:iam::123456789012:role/KarpenterNodeRole-my-cluster\"",
            },
        ],
        parts: &[
            Part {
                suffix: Some("node-lifecycle"),
                template: include_str!("../../presets/karpenter/v1-node-lifecycle.json"),
            },
            Part { suffix: Some("integration"), template: include_str!("../../presets/karpenter/v1-integration.json") },
        ],
    },
];

/// The names of the presets that take parameters: the keys of a role's
/// `presets` table. Kept as a constant for the loader's key checks and the
/// schema; a test checks it against [`PRESETS`].
pub const WITH_PARAMS: &[&str] = &["cert-manager", "cluster-autoscaler", "external-dns", "karpenter"];

/// The parameter names of each preset, as constants for the loader's key
/// checks (which take `&'static [&'static str]`); a test checks them against
/// [`PRESETS`].
pub fn param_keys(preset: &str) -> &'static [&'static str] {
    match preset {
        "cert-manager" | "external-dns" => &["hosted_zone_arns"],
        "cluster-autoscaler" => &["cluster_name"],
        "karpenter" => &["cluster_name", "region", "account_id", "interruption_queue", "node_role_arn"],
        _ => &[],
    }
}

/// What `preset:` in a policy list introduces.
pub const PREFIX: &str = "preset:";

pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

pub fn names() -> impl Iterator<Item = &'static str> {
    PRESETS.iter().map(|p| p.name)
}

/// The name of the managed policy a preset part makes for a role:
/// `<role>-<preset>`, or `<role>-<preset>-<part>` for a preset of several.
/// A role name is at most 64 characters and the longest preset and part
/// name together 29, so this stays well within IAM's 128.
pub fn policy_name(role: &str, preset: &Preset, part: &Part) -> String {
    match part.suffix {
        Some(s) => format!("{role}-{}-{s}", preset.name),
        None => format!("{role}-{}", preset.name),
    }
}

/// The cluster values parameters default to.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub partition: &'a str,
    pub cluster_name: &'a str,
    pub region: &'a str,
    pub account_id: &'a str,
}

/// A parameter's default, or `None` for a required one.
pub fn default_value(param: &Param, values: &BTreeMap<&str, ParamValue>, ctx: &Context<'_>) -> Option<ParamValue> {
    let one = |s: &str| Some(ParamValue::One(s.to_owned()));
    let given = |name: &str| match values.get(name) {
        Some(ParamValue::One(v)) => Some(v.clone()),
        _ => None,
    };
    match param.default {
        Default::Required => None,
        Default::ClusterName => one(&given("cluster_name").unwrap_or_else(|| ctx.cluster_name.to_owned())),
        Default::Region => one(ctx.region),
        Default::AccountId => one(ctx.account_id),
        Default::KarpenterNodeRole => {
            let cluster = given("cluster_name").unwrap_or_else(|| ctx.cluster_name.to_owned());
            let account = given("account_id").unwrap_or_else(|| ctx.account_id.to_owned());
            one(&format!("arn:{}:iam::{account}:role/KarpenterNodeRole-{cluster}", ctx.partition))
        }
    }
}

/// The longest SQS queue name.
const QUEUE_NAME_MAX: usize = 80;

/// Check one value of a parameter (one element, for a list) against its
/// kind; `partition` is the cluster's, which ARNs must be in.
pub fn check_value(kind: Kind, value: &str, partition: Option<&str>) -> Result<(), Invalid> {
    match kind {
        Kind::HostedZoneArns => hosted_zone_arn(value, partition),
        Kind::ClusterName => names::cluster_name(value),
        Kind::Region => names::region(value),
        Kind::AccountId => names::account_id(value),
        Kind::QueueName => queue_name(value),
        Kind::RoleArn => {
            let arn = names::role_arn(value)?;
            if let Some(partition) = partition
                && arn.partition != partition
            {
                return Err(Invalid {
                    message: format!("`{value}` is in partition `{}`, not the cluster's `{partition}`", arn.partition),
                    help: format!("write it as arn:{partition}:iam::…"),
                });
            }
            Ok(())
        }
    }
}

/// `arn:<partition>:route53:::hostedzone/<id>`: Route 53 is global, so the
/// ARN has neither region nor account; the id is upper-case letters and
/// digits, or `*` for every zone.
fn hosted_zone_arn(arn: &str, partition: Option<&str>) -> Result<(), Invalid> {
    let shown = partition.unwrap_or("aws");
    let help = format!(
        "a hosted zone ARN looks like arn:{shown}:route53:::hostedzone/Z0123456789ABCDEFGHIJ (the zone id from `aws route53 list-hosted-zones`, without /hostedzone/)"
    );
    let bad =
        |why: String| Err(Invalid { message: format!("`{arn}` is not a hosted zone ARN: {why}"), help: help.clone() });
    let Some(rest) = arn.strip_prefix("arn:") else { return bad("it does not start with `arn:`".into()) };
    let Some((arn_partition, rest)) = rest.split_once(':') else { return bad("it has no partition".into()) };
    let Some(id) = rest.strip_prefix("route53:::hostedzone/") else {
        return bad("it is not of the form arn:<partition>:route53:::hostedzone/<zone id>".into());
    };
    if let Some(partition) = partition
        && arn_partition != partition
    {
        return bad(format!("it is in partition `{arn_partition}`, not the cluster's `{partition}`"));
    }
    let id_ok = id == "*"
        || (!id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    if !id_ok {
        return bad(format!("`{id}` is not a zone id (upper-case letters and digits) or `*`"));
    }
    Ok(())
}

fn queue_name(name: &str) -> Result<(), Invalid> {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    if name.is_empty() || name.len() > QUEUE_NAME_MAX {
        return Err(Invalid {
            message: format!("queue name `{name}` must be 1 to {QUEUE_NAME_MAX} characters long"),
            help: "name the SQS queue Karpenter reads interruption events from".into(),
        });
    }
    if let Some(c) = base.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(Invalid {
            message: format!("queue name `{name}` contains `{c}`, which SQS does not allow"),
            help: "an SQS queue name uses letters, digits, `-` and `_`".into(),
        });
    }
    Ok(())
}

/// Fill a template with the preset's values (every parameter of the preset,
/// defaults resolved) and the partition. Returns the document's JSON text.
///
/// Fails only on a broken template (a placeholder with no value), which the
/// tests rule out for every shipped preset.
pub fn render(template: &str, values: &BTreeMap<&str, ParamValue>, partition: &str) -> Result<String, String> {
    let doc: Value = serde_json::from_str(template).map_err(|e| format!("the template is not JSON: {e}"))?;
    let filled = fill(doc, values, partition)?;
    Ok(serde_json::to_string_pretty(&filled).expect("a JSON value serialises"))
}

fn fill(v: Value, values: &BTreeMap<&str, ParamValue>, partition: &str) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
                && let Some(ParamValue::List(list)) = values.get(name)
            {
                Value::Array(list.iter().cloned().map(Value::String).collect())
            } else {
                Value::String(fill_str(&s, values, partition)?)
            }
        }
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|i| fill(i, values, partition)).collect::<Result<_, _>>()?)
        }
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .map(|(k, v)| Ok((fill_str(&k, values, partition)?, fill(v, values, partition)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other,
    })
}

/// Replace each `${name}` whose name is lower-case letters and `_` (policy
/// variables have a `:`, and stay); such a name must have a value.
fn fill_str(s: &str, values: &BTreeMap<&str, ParamValue>, partition: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').unwrap_or(after.len());
        let name = &after[..end];
        let ours = !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        if !ours || end == after.len() {
            out.push_str("${");
            rest = after;
            continue;
        }
        match (name, values.get(name)) {
            ("partition", _) => out.push_str(partition),
            (_, Some(ParamValue::One(v))) => out.push_str(v),
            (_, Some(ParamValue::List(_))) => return Err(format!("`${{{name}}}` is a list, inside a string")),
            (_, None) => return Err(format!("`${{{name}}}` has no value")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::policy_doc;

    const CTX: Context<'static> =
        Context { partition: "aws", cluster_name: "demo", region: "eu-west-1", account_id: "123456789012" };

    /// Every parameter of `preset`, with sample values for the required ones
    /// and the defaults for the rest.
    fn sample(preset: &Preset) -> BTreeMap<&'static str, ParamValue> {
        let mut values = BTreeMap::new();
        for p in preset.params {
            let v = match p.kind {
                Kind::HostedZoneArns => ParamValue::List(vec![
                    "arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ".into(),
                    "arn:aws:route53:::hostedzone/Z9876543210ZYXWVUTSRQ".into(),
                ]),
                _ => default_value(p, &values, &CTX).expect("a default"),
            };
            values.insert(p.name, v);
        }
        values
    }

    #[test]
    fn the_key_constants_match_the_presets() {
        let mut with: Vec<&str> = PRESETS.iter().filter(|p| !p.params.is_empty()).map(|p| p.name).collect();
        with.sort();
        assert_eq!(with, WITH_PARAMS);
        for p in PRESETS {
            let names: Vec<&str> = p.params.iter().map(|p| p.name).collect();
            assert_eq!(names, param_keys(p.name), "{}", p.name);
        }
        let mut sorted: Vec<&str> = names().collect();
        sorted.sort();
        assert_eq!(sorted, names().collect::<Vec<_>>(), "PRESETS is sorted by name");
    }

    /// Every shipped document renders, passes irsa's own checks and IAM's
    /// size quota, and keeps no placeholder of irsa's; the snapshots are the
    /// documents users get with the sample parameters.
    #[test]
    fn every_preset_renders_to_a_valid_document() {
        let quota = crate::model::quotas::Quotas::default().managed_policy_size;
        for preset in PRESETS {
            let values = sample(preset);
            for part in preset.parts {
                let text = render(part.template, &values, "aws").unwrap();
                let doc = policy_doc::check_identity_policy(&text).unwrap_or_else(|e| {
                    panic!("{}: {:?}", preset.name, e.iter().map(|p| &p.message).collect::<Vec<_>>())
                });
                assert!(doc.size() <= quota, "{} is {} characters", preset.name, doc.size());
                let leftover = text.split("${").skip(1).find(|s| s.starts_with(|c: char| c.is_ascii_lowercase()));
                assert!(leftover.is_none(), "{}: {leftover:?}", preset.name);
                let name = policy_name("addon", preset, part);
                insta::assert_snapshot!(
                    format!("preset_{}_v{}", name.trim_start_matches("addon-"), preset.version),
                    text
                );
            }
        }
    }

    #[test]
    fn the_partition_and_lists_are_filled_in() {
        let values = BTreeMap::from([
            ("zones", ParamValue::List(vec!["a".into(), "b".into()])),
            ("cluster_name", ParamValue::One("c1".into())),
        ]);
        let t =
            r#"{"R": "${zones}", "S": "arn:${partition}:x/${cluster_name}", "k/${cluster_name}": "${aws:username}"}"#;
        let v: Value = serde_json::from_str(&render(t, &values, "aws-cn").unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"R": ["a", "b"], "S": "arn:aws-cn:x/c1", "k/c1": "${aws:username}"}));
        assert!(render(r#"{"a": "${nope}"}"#, &values, "aws").unwrap_err().contains("no value"));
        assert!(render(r#"{"a": "x${zones}"}"#, &values, "aws").unwrap_err().contains("list"));
    }

    #[test]
    fn parameter_values_are_checked() {
        let ok = "arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ";
        assert_eq!(check_value(Kind::HostedZoneArns, ok, Some("aws")), Ok(()));
        assert_eq!(check_value(Kind::HostedZoneArns, "arn:aws:route53:::hostedzone/*", Some("aws")), Ok(()));
        for (bad, why) in [
            ("Z0123456789", "does not start with `arn:`"),
            ("arn:aws:route53:::hostedzone/z-lower", "is not a zone id"),
            ("arn:aws:route53::123456789012:hostedzone/Z1", "not of the form"),
            ("arn:aws-cn:route53:::hostedzone/Z1", "not the cluster's `aws`"),
        ] {
            let e = check_value(Kind::HostedZoneArns, bad, Some("aws")).unwrap_err();
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
        assert!(check_value(Kind::QueueName, "my-queue", Some("aws")).is_ok());
        assert!(check_value(Kind::QueueName, "my queue", Some("aws")).is_err());
        assert!(check_value(Kind::QueueName, &"q".repeat(81), Some("aws")).is_err());
        assert!(check_value(Kind::RoleArn, "arn:aws:iam::123456789012:role/N", Some("aws")).is_ok());
        assert!(check_value(Kind::RoleArn, "arn:aws-cn:iam::123456789012:role/N", Some("aws")).is_err());
        assert!(check_value(Kind::ClusterName, "bad name", Some("aws")).is_err());
    }

    #[test]
    fn policy_names_fit_iam() {
        let role = "r".repeat(names::ROLE_NAME_MAX);
        for preset in PRESETS {
            for part in preset.parts {
                assert_eq!(names::policy_name(&policy_name(&role, preset, part)), Ok(()), "{}", preset.name);
            }
        }
    }

    #[test]
    fn karpenter_defaults_follow_the_cluster_and_the_given_cluster_name() {
        let k = find("karpenter").unwrap();
        let given = BTreeMap::from([("cluster_name", ParamValue::One("other".into()))]);
        let node = k.params.iter().find(|p| p.name == "node_role_arn").unwrap();
        assert_eq!(
            default_value(node, &given, &CTX),
            Some(ParamValue::One("arn:aws:iam::123456789012:role/KarpenterNodeRole-other".into()))
        );
        let queue = k.params.iter().find(|p| p.name == "interruption_queue").unwrap();
        assert_eq!(default_value(queue, &given, &CTX), Some(ParamValue::One("other".into())));
    }
}
