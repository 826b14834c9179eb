//! Plans: the changes that take the observed state to the desired one.
//!
//! [`Plan`] is plain data and *is* the JSON wire format (`--format json`, the
//! body of a saved plan): the text and Markdown renderers read this same
//! model, so the three outputs cannot disagree. Its `format_version` changes
//! whenever a field changes meaning; fields may be added within a version.
//! See `docs/plan-format.md`.

pub mod attrs;
#[cfg(test)]
mod cluster_tests;
pub mod guard;
mod planner;
pub mod review;
pub mod saved;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::Address;
use crate::model::address::ResourceKind;
pub use attrs::{Attr, Attrs};

pub use planner::{PlanError, PlanOptions, clusters_reached_twice, plan, plan_despite_errors};

/// The attributes of `a` and `b` that differ (documents by meaning), in
/// either direction: what moved between two reads of one resource.
pub fn differing_attributes(a: Option<&Attrs>, b: Option<&Attrs>) -> Vec<String> {
    let mut keys = planner::changed_keys(a, b);
    for k in planner::changed_keys(b, a) {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

/// Whether two reads of one resource agree (both absent, or the same attributes).
pub fn same_attributes(a: Option<&Attrs>, b: Option<&Attrs>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(_), Some(_)) => differing_attributes(a, b).is_empty(),
        _ => false,
    }
}

/// The JSON plan format's version.
pub const FORMAT_VERSION: &str = "1";

/// What happens to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
    /// Recreate a Deployment's pods so they pick up new credentials.
    Restart,
    /// Bring an existing, unowned resource under this stack's ownership
    /// (add the markers) and make it match the stack file.
    Adopt,
}

/// A change's actions, in order (at most three), held in place: a vector
/// per change was an allocation for one or two bytes, 90,000 of them in a
/// 10,000-binding plan. Reads as a slice; written as a JSON list.
#[derive(Clone, Copy)]
pub struct Actions {
    len: u8,
    items: [Action; 3],
}

impl Actions {
    pub fn as_slice(&self) -> &[Action] {
        &self.items[..usize::from(self.len)]
    }
}

impl std::ops::Deref for Actions {
    type Target = [Action];
    fn deref(&self) -> &[Action] {
        self.as_slice()
    }
}

impl TryFrom<&[Action]> for Actions {
    type Error = String;
    fn try_from(actions: &[Action]) -> Result<Self, String> {
        let mut items = [Action::Create; 3];
        if actions.len() > items.len() {
            return Err(format!("a change has at most {} actions, not {}", items.len(), actions.len()));
        }
        items[..actions.len()].copy_from_slice(actions);
        Ok(Actions { len: actions.len() as u8, items })
    }
}

impl<const N: usize> From<[Action; N]> for Actions {
    /// At most three: a longer list does not compile.
    fn from(actions: [Action; N]) -> Self {
        const { assert!(N <= 3, "a change has at most three actions") };
        Actions::try_from(&actions[..]).expect("at most three")
    }
}

impl std::fmt::Debug for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl PartialEq for Actions {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> PartialEq<[Action; N]> for Actions {
    fn eq(&self, other: &[Action; N]) -> bool {
        self.as_slice() == other
    }
}

impl Serialize for Actions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Actions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let actions = Vec::<Action>::deserialize(d)?;
        Actions::try_from(actions.as_slice()).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: String,
    /// The irsa version that made the plan.
    pub irsa_version: String,
    pub stack: String,
    pub refresh: RefreshInfo,
    pub summary: Summary,
    /// Every resource that changes, dependencies first; no-ops are left out.
    /// Boxed: the planner orders its changes by moving boxes, which a list
    /// of whole changes would copy into a second list of the same size.
    #[allow(clippy::vec_box)]
    pub changes: Vec<Box<Change>>,
    pub warnings: Vec<Warning>,
    /// The security review's findings, in the order of `changes`
    /// (`review::review_all`). Absent from plans made before the review.
    #[serde(default)]
    pub findings: Vec<review::Finding>,
    /// The `--target` prefixes the plan was limited to, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

/// Where the observed state came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshInfo {
    /// `bulk`, `per-resource`, or `snapshot` when planned from a file.
    pub strategy: String,
    pub iam_calls: u64,
    pub kube_requests: u64,
    /// The snapshot file, when planned from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// When the state was read (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub restart: usize,
    pub adopt: usize,
}

impl Plan {
    /// The plan's identity in the journal: what it would do, not when it
    /// was made or which irsa made it.
    pub fn id(&self) -> String {
        crate::model::sha256_hex(serde_json::to_string(&self.changes).unwrap_or_default().as_bytes())
    }
}

impl Summary {
    pub fn of(changes: &[Box<Change>]) -> Summary {
        let mut s = Summary::default();
        for c in changes {
            match c.actions.as_slice() {
                [Action::Create] => s.create += 1,
                [Action::Update] => s.update += 1,
                [Action::Delete] => s.delete += 1,
                [Action::Restart] => s.restart += 1,
                [Action::Adopt] => s.adopt += 1,
                a if a.contains(&Action::Delete) && a.contains(&Action::Create) => s.replace += 1,
                _ => {}
            }
        }
        s
    }

    pub fn total(&self) -> usize {
        self.create + self.update + self.replace + self.delete + self.restart + self.adopt
    }
}

/// One resource's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub address: Address,
    pub kind: ResourceKind,
    /// `["create"]`, `["update"]`, `["delete"]`, `["delete", "create"]` (a
    /// replace), `["restart"]` or `["adopt"]`. A scan for `"delete"` finds
    /// every change that removes something.
    pub actions: Actions,
    /// Why, as sentences.
    pub reasons: Vec<String>,
    /// The resource's attributes now (`null` when it does not exist).
    pub before: Option<Attrs>,
    /// The resource's attributes after the change (`null` when it is deleted).
    pub after: Option<Attrs>,
    /// The attributes whose values change, in `before`/`after` key order.
    /// A boxed slice: with the actions in place, a change fits 224 bytes,
    /// an allocator size class below 256.
    #[serde(default)]
    pub changed: Box<[String]>,
    /// Addresses this change must wait for.
    #[serde(default)]
    pub depends_on: Vec<Address>,
    /// Cluster changes: the fields of the object the write depends on, as
    /// JSON pointers, with the values the plan read (`null`: absent). The
    /// write sends each as a JSON Patch `test`, so it lands only while none
    /// moved, however often the object's resourceVersion moved for other
    /// reasons (status writes, rescaling, other fields).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub guard: Map<String, Value>,
    /// What the change does to access (the security review): `widens`,
    /// `narrows` (it only removes access) or `same`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<review::Access>,
}

impl Change {
    pub fn is_replace(&self) -> bool {
        self.actions.contains(&Action::Delete) && self.actions.contains(&Action::Create)
    }

    /// The action word shown beside the address.
    pub fn verb(&self) -> &'static str {
        match self.actions.as_slice() {
            [Action::Create] => "create",
            [Action::Update] => "update",
            [Action::Delete] => "delete",
            [Action::Restart] => "restart",
            [Action::Adopt] => "adopt",
            _ if self.is_replace() => "replace",
            _ => "change",
        }
    }
}

/// Something a reviewer should know that does not stop the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    pub message: String,
}

/// Attribute names whose values are policy documents: shown as diffs of
/// canonical pretty JSON rather than as values.
pub const DOCUMENT_ATTRIBUTES: &[&str] = &["document", "trust_policy"];
