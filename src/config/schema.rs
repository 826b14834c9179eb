//! The stack file's shape as a JSON Schema, for editors (taplo, Even Better
//! TOML) and `irsa schema`.
//!
//! The loader does not deserialise into types (it walks the TOML by hand to
//! report every problem at once, see [`super::raw`]), so the shape is
//! declared here once more, as types the schema is derived from, with the
//! doc comments as descriptions. A test in [`super::validate`] checks that
//! every table here takes exactly the keys the loader takes, so the two cannot
//! drift apart. The schema checks shapes and the simplest rules; the loader
//! checks the rest (references, quotas, names) and says where.

use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde_json::Value;

/// An irsa stack file: the IAM roles and policies of a cluster's pods and the
/// Kubernetes service accounts that use them.
#[derive(JsonSchema)]
#[schemars(
    title = "irsa stack file",
    deny_unknown_fields,
    extend("oneOf" = [{"required": ["cluster"]}, {"required": ["clusters"]}])
)]
#[allow(dead_code)] // only the schema is derived from these types
pub struct StackFile {
    /// The stack file format; this irsa reads version 1.
    #[schemars(range(min = 1, max = 1))]
    version: u32,
    stack: Option<StackTable>,
    /// The one cluster of the stack (or `[clusters.<name>]` for several).
    cluster: Option<ClusterTable>,
    /// The clusters of a stack of several, by the name bindings and
    /// addresses use: `[clusters.<name>]` (a lowercase DNS label). Needs
    /// `[stack] name`.
    #[schemars(extend("propertyNames" = {"pattern": "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", "maxLength": 40}))]
    clusters: Option<BTreeMap<String, KeyedClusterTable>>,
    defaults: Option<DefaultsTable>,
    /// Customer-managed IAM policies, by name: `[policies.<name>]`.
    policies: Option<BTreeMap<String, PolicyTable>>,
    /// IAM roles, by name: `[roles.<name>]`. A role irsa creates and owns, or
    /// (with `arn`) an existing role whose trust irsa adds to.
    roles: Option<BTreeMap<String, RoleTable>>,
    /// Kubernetes service accounts, each bound to one role: `[[service_accounts]]`.
    service_accounts: Option<Vec<ServiceAccountTable>>,
}

/// The stack's identity: its resources carry `irsa:stack = <name>`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct StackTable {
    /// The stack's name (lower-case letters, digits and `-`); without it the
    /// stack is named after the cluster.
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"), length(max = 63))]
    name: String,
}

/// The EKS cluster whose pods get the permissions.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct ClusterTable {
    /// The EKS cluster's name.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"), length(max = 100))]
    name: String,
    /// The AWS region of the cluster, e.g. `us-east-1`.
    #[schemars(regex(pattern = r"^[a-z]+(-[a-z]+)+-[0-9]+$"))]
    region: String,
    /// The 12-digit AWS account id, as a string (leading zeros matter).
    #[schemars(regex(pattern = r"^[0-9]{12}$"))]
    account_id: String,
    /// The cluster's OIDC issuer URL (https, no trailing slash); discovered
    /// from the cluster when left out.
    #[schemars(regex(pattern = r"^https://[^/]+(/.*[^/])?$"))]
    oidc_issuer: Option<String>,
    /// The kubeconfig context to use; the cluster's name when left out.
    context: Option<String>,
    /// SHA-1 thumbprints (40 hex digits) of the issuer's certificates, for
    /// the IAM OIDC provider.
    #[schemars(length(max = 5), inner(regex(pattern = r"^[0-9a-fA-F]{40}$")))]
    oidc_thumbprints: Option<Vec<String>>,
}

/// One cluster of a stack of several (`[clusters.<name>]`).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct KeyedClusterTable {
    /// The EKS cluster's name; the table's name when left out.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"), length(max = 100))]
    name: Option<String>,
    /// The AWS region of the cluster, e.g. `us-east-1`.
    #[schemars(regex(pattern = r"^[a-z]+(-[a-z]+)+-[0-9]+$"))]
    region: String,
    /// The 12-digit AWS account id, as a string; the same for every cluster of the stack.
    #[schemars(regex(pattern = r"^[0-9]{12}$"))]
    account_id: String,
    /// The cluster's OIDC issuer URL (https, no trailing slash); discovered
    /// from the cluster when left out.
    #[schemars(regex(pattern = r"^https://[^/]+(/.*[^/])?$"))]
    oidc_issuer: Option<String>,
    /// The kubeconfig context of this cluster; the current one when left out.
    context: Option<String>,
    /// SHA-1 thumbprints (40 hex digits) of the issuer's certificates, for
    /// the IAM OIDC provider.
    #[schemars(length(max = 5), inner(regex(pattern = r"^[0-9a-fA-F]{40}$")))]
    oidc_thumbprints: Option<Vec<String>>,
}

/// Values every policy and role takes unless it sets its own.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct DefaultsTable {
    /// The IAM path of owned roles, e.g. `/irsa/` (starts and ends with `/`).
    #[schemars(regex(pattern = r"^/(.*/)?$"))]
    role_path: Option<String>,
    /// The ARN of the managed policy that bounds every owned role.
    #[schemars(regex(pattern = r"^arn:"))]
    permissions_boundary: Option<String>,
    /// Tags on every policy and owned role (merged with their own; irsa adds
    /// two of its own, and IAM allows 50 a resource).
    tags: Option<BTreeMap<String, String>>,
}

/// A customer-managed IAM policy; give `document` or `document_file`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct PolicyTable {
    /// What the policy is for.
    #[schemars(length(max = 1000))]
    description: Option<String>,
    /// The policy's IAM path (starts and ends with `/`); `/` when left out.
    #[schemars(regex(pattern = r"^/(.*/)?$"))]
    path: Option<String>,
    /// The policy document, as JSON text.
    document: Option<String>,
    /// A file holding the policy document, relative to the stack file.
    document_file: Option<String>,
    /// The policy's tags, over `[defaults] tags`.
    tags: Option<BTreeMap<String, String>>,
    /// Take over a policy of this name that exists and irsa does not own yet.
    adopt: Option<bool>,
}

/// A role. Without `arn`, irsa creates and owns it; with `arn`, it is an
/// existing role, and only `manage_trust` applies.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct RoleTable {
    /// The ARN of an existing role that irsa does not own.
    #[schemars(regex(pattern = r"^arn:[^:]+:iam::[0-9]{12}:role/"))]
    arn: Option<String>,
    /// With `arn`: let irsa add its trust statement to the existing role.
    manage_trust: Option<bool>,
    /// Managed policies to attach: names of `[policies.<name>]`, policy ARNs,
    /// or `preset:<name>` for one of irsa's presets (docs/presets.md).
    policies: Option<Vec<String>>,
    /// Inline policies, by name: `[roles.<name>.inline.<policy>]`.
    inline: Option<BTreeMap<String, InlinePolicyTable>>,
    /// What the role is for.
    #[schemars(length(max = 1000))]
    description: Option<String>,
    /// The role's IAM path; `[defaults] role_path` when left out.
    #[schemars(regex(pattern = r"^/(.*/)?$"))]
    path: Option<String>,
    /// The longest session, in seconds (1 to 12 hours); 3600 when left out.
    #[schemars(range(min = 3600, max = 43200))]
    max_session_duration: Option<u32>,
    /// The ARN of the managed policy that bounds the role.
    #[schemars(regex(pattern = r"^arn:"))]
    permissions_boundary: Option<String>,
    /// The role's tags, over `[defaults] tags`.
    tags: Option<BTreeMap<String, String>>,
    /// Take over a role of this name that exists and irsa does not own yet.
    adopt: Option<bool>,
    /// Parameters of the presets the role lists (`"preset:<name>"` in
    /// `policies`): `[roles.<name>.presets.<preset>]`.
    presets: Option<PresetsTable>,
}

/// The parameters of a role's presets, by preset; only presets that take
/// parameters have a table. See docs/presets.md.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct PresetsTable {
    #[schemars(rename = "cert-manager")]
    cert_manager: Option<HostedZonesPresetParams>,
    #[schemars(rename = "cluster-autoscaler")]
    cluster_autoscaler: Option<ClusterAutoscalerPresetParams>,
    #[schemars(rename = "external-dns")]
    external_dns: Option<HostedZonesPresetParams>,
    karpenter: Option<KarpenterPresetParams>,
}

/// The hosted zones an add-on may change (ExternalDNS, cert-manager).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct HostedZonesPresetParams {
    /// Route 53 hosted zone ARNs, `arn:aws:route53:::hostedzone/<zone id>`
    /// (`…/hostedzone/*` for every zone).
    #[schemars(length(min = 1), inner(regex(pattern = r"^arn:[^:]+:route53:::hostedzone/([A-Z0-9]+|\*)$")))]
    hosted_zone_arns: Vec<String>,
}

/// Cluster Autoscaler's scope.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct ClusterAutoscalerPresetParams {
    /// The cluster whose Auto Scaling groups (tagged
    /// `k8s.io/cluster-autoscaler/<cluster_name>`) it may scale; `[cluster]
    /// name` when left out.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"), length(max = 100))]
    cluster_name: Option<String>,
}

/// The Karpenter controller's scope; every key defaults from `[cluster]`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct KarpenterPresetParams {
    /// The cluster Karpenter runs in; `[cluster] name` when left out.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"), length(max = 100))]
    cluster_name: Option<String>,
    /// The region of its instances; `[cluster] region` when left out.
    #[schemars(regex(pattern = r"^[a-z]+(-[a-z]+)+-[0-9]+$"))]
    region: Option<String>,
    /// The account of its instance profiles; `[cluster] account_id` when left out.
    #[schemars(regex(pattern = r"^[0-9]{12}$"))]
    account_id: Option<String>,
    /// The SQS queue of interruption events; the cluster name when left out.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$"))]
    interruption_queue: Option<String>,
    /// The node role it passes to EC2; `KarpenterNodeRole-<cluster_name>`
    /// in the account when left out.
    #[schemars(regex(pattern = r"^arn:[^:]+:iam::[0-9]{12}:role/"))]
    node_role_arn: Option<String>,
}

/// An inline policy of a role; give `document` or `document_file`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct InlinePolicyTable {
    /// The policy document, as JSON text.
    document: Option<String>,
    /// A file holding the policy document, relative to the stack file.
    document_file: Option<String>,
}

/// A Kubernetes service account and the role its pods assume.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct ServiceAccountTable {
    /// The cluster the service account is in: a name from `[clusters]`
    /// (the only cluster when left out).
    cluster: Option<String>,
    /// The clusters it is in, one service account in each (while workloads
    /// move from one cluster to another); instead of `cluster`.
    clusters: Option<Vec<String>>,
    /// The namespace (a DNS-1123 label).
    #[schemars(regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"), length(max = 63))]
    namespace: String,
    /// The service account's name.
    #[schemars(length(min = 1, max = 253))]
    name: String,
    /// The role it assumes: a name from `[roles]`.
    role: String,
    /// Workloads to restart when the binding changes: `deployment/<name>`.
    #[schemars(inner(regex(pattern = r"^deployment/")))]
    workloads: Option<Vec<String>>,
    /// Extra annotations on the service account (irsa sets the role ARN itself).
    annotations: Option<BTreeMap<String, String>>,
    /// Take over a service account that exists and irsa does not own yet.
    adopt: Option<bool>,
}

/// The JSON Schema (draft 7, which taplo and most editors read) of a stack
/// file, as a JSON value.
pub fn stack_file_schema() -> Value {
    let settings = SchemaSettings::draft07().with_transform(no_null);
    let schema = settings.into_generator().into_root_schema_for::<StackFile>();
    schema.to_value()
}

/// TOML has no null: a key left out is how a value is not given, so the
/// `null` that schemars allows for an `Option` is taken out again.
fn no_null(schema: &mut Schema) {
    if let Some(obj) = schema.as_object_mut() {
        if let Some(Value::Array(types)) = obj.get_mut("type") {
            types.retain(|t| t != "null");
            if types.len() == 1 {
                let only = types.remove(0);
                obj.insert("type".into(), only);
            }
        }
        if let Some(Value::Array(any)) = obj.get_mut("anyOf") {
            any.retain(|s| s.get("type").is_none_or(|t| t != "null"));
            if any.len() == 1 {
                let only = any.remove(0);
                obj.remove("anyOf");
                match only {
                    Value::Object(only) if obj.is_empty() => obj.extend(only),
                    // Draft 7 ignores the siblings of a `$ref`: keep the
                    // description beside an allOf of one.
                    only => {
                        obj.insert("allOf".into(), Value::Array(vec![only]));
                    }
                }
            }
        }
        // `uint32` and the like are schemars' own formats, which no editor knows.
        if obj.get("format").and_then(Value::as_str).is_some_and(|f| f.starts_with("int") || f.starts_with("uint")) {
            obj.remove("format");
        }
    }
    schemars::transform::transform_subschemas(&mut no_null, schema);
}
