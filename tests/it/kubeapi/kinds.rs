//! The resources this server serves, and their discovery documents.

use serde_json::{Value, json};

#[derive(Debug, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
}

pub const NAMESPACES: Kind = Kind {
    group: "",
    version: "v1",
    plural: "namespaces",
    singular: "namespace",
    kind: "Namespace",
    namespaced: false,
    short_names: &["ns"],
};
pub const SERVICE_ACCOUNTS: Kind = Kind {
    group: "",
    version: "v1",
    plural: "serviceaccounts",
    singular: "serviceaccount",
    kind: "ServiceAccount",
    namespaced: true,
    short_names: &["sa"],
};
pub const PODS: Kind = Kind {
    group: "",
    version: "v1",
    plural: "pods",
    singular: "pod",
    kind: "Pod",
    namespaced: true,
    short_names: &["po"],
};
pub const DEPLOYMENTS: Kind = Kind {
    group: "apps",
    version: "v1",
    plural: "deployments",
    singular: "deployment",
    kind: "Deployment",
    namespaced: true,
    short_names: &["deploy"],
};
pub const REPLICA_SETS: Kind = Kind {
    group: "apps",
    version: "v1",
    plural: "replicasets",
    singular: "replicaset",
    kind: "ReplicaSet",
    namespaced: true,
    short_names: &["rs"],
};
pub const LEASES: Kind = Kind {
    group: "coordination.k8s.io",
    version: "v1",
    plural: "leases",
    singular: "lease",
    kind: "Lease",
    namespaced: true,
    short_names: &[],
};

pub const MUTATING_WEBHOOK_CONFIGURATIONS: Kind = Kind {
    group: "admissionregistration.k8s.io",
    version: "v1",
    plural: "mutatingwebhookconfigurations",
    singular: "mutatingwebhookconfiguration",
    kind: "MutatingWebhookConfiguration",
    namespaced: false,
    short_names: &[],
};

pub const ALL: [&Kind; 7] =
    [&NAMESPACES, &SERVICE_ACCOUNTS, &PODS, &DEPLOYMENTS, &REPLICA_SETS, &LEASES, &MUTATING_WEBHOOK_CONFIGURATIONS];

impl Kind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `deployments.apps`, as messages name a resource of a named group.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.to_string() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// Kinds whose `status` belongs to the status subresource
    /// (`.../{name}/status`): writes to the main resource leave it as it was.
    pub fn has_status(&self) -> bool {
        matches!(self.plural, "namespaces" | "pods" | "deployments" | "replicasets")
    }

    pub fn find_plural(plural: &str) -> Option<&'static Kind> {
        ALL.into_iter().find(|k| k.plural == plural)
    }

    pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Kind> {
        ALL.into_iter().find(|k| k.group == group && k.version == version && k.plural == plural)
    }
}

const VERBS: [&str; 7] = ["create", "delete", "deletecollection", "get", "list", "patch", "update"];
const STATUS_VERBS: [&str; 3] = ["get", "patch", "update"];

/// `APIResourceList` for `/api/v1` or `/apis/{group}/{version}`.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    // Each kind, then its status subresource (as `kubectl api-resources` lists them).
    let resources: Vec<Value> = ALL
        .into_iter()
        .filter(|k| k.group == group && k.version == version)
        .flat_map(|k| {
            let main = json!({
                "name": k.plural,
                "singularName": k.singular,
                "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": VERBS,
                "shortNames": k.short_names,
            });
            let status = k.has_status().then(|| {
                json!({"name": format!("{}/status", k.plural), "singularName": "", "namespaced": k.namespaced,
                    "kind": k.kind, "verbs": STATUS_VERBS})
            });
            // ServiceAccounts' `token` subresource: TokenRequest, create only.
            let token = (k.plural == "serviceaccounts").then(|| {
                json!({"name": "serviceaccounts/token", "singularName": "", "namespaced": true,
                    "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest", "verbs": ["create"]})
            });
            std::iter::once(main).chain(status).chain(token)
        })
        .collect();
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}))
}

pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    })
}

pub fn group_list() -> Value {
    let groups: Vec<Value> = ["apps", "coordination.k8s.io", "admissionregistration.k8s.io"]
        .into_iter()
        .map(|name| {
            let version = json!({"groupVersion": format!("{name}/v1"), "version": "v1"});
            json!({"name": name, "versions": [version], "preferredVersion": version})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "34",
        "gitVersion": "v1.34.0-irsa-test",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}
