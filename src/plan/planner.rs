//! The planner: a pure function of (desired, observed) to a [`Plan`].
//!
//! Each resource kind is planned by one method; each method decides the
//! action, the reasons (as sentences a reviewer reads) and the before/after
//! attributes. Ownership rules live in [`Planner::claim`]: only what carries
//! this stack's markers is ever updated or deleted, and anything else with a
//! desired name is an error unless adopted.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};

use std::hash::BuildHasher as _;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use hashbrown::{HashTable, hash_table};

use serde_json::{Map, Value, json};

use super::attrs::{Attr, Attrs, StringsPool};
use super::{Action, Actions, Change, FORMAT_VERSION, Plan, RefreshInfo, Summary, Warning, guard};
use crate::graph::Graph;
use crate::model::Address;
use crate::model::desired::{
    Binding, Cluster, Desired, Issuers, OwnedRole, Policy, PolicyRef, ReferencedRole, Role, Span, markers,
};
use crate::model::observed::{Observed, ObservedIndex, ObservedPod, ObservedRole, ObservedServiceAccount};
use crate::model::policy_doc::{self, PolicyDocument};
use crate::model::quotas;
use crate::model::strmap::StrMap;
use crate::model::trust;

/// How a plan is made, besides its two inputs.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--adopt`: adopt every unowned resource the stack names.
    pub adopt: bool,
    /// `--target` prefixes; empty plans everything.
    pub targets: Vec<String>,
    /// Where the observed state came from, copied into the plan.
    pub refresh: RefreshInfo,
    /// Plan the removal of everything the stack owns (`irsa destroy`): the
    /// desired model should then be [`Desired::for_destroy`], and the OIDC
    /// provider goes too when it is the stack's own.
    pub destroy: bool,
}

/// A reason the stack cannot be planned against what exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub address: Option<Address>,
    /// The stack-file entry at fault, when there is one.
    pub span: Option<Span>,
    pub message: String,
    pub help: String,
}

/// Who owns an existing resource, read from its markers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ownership {
    Ours,
    /// Stack `--rename-from`'s: this stack's, under its old name.
    Renamed(String),
    OtherStack(String),
    /// Not irsa's; `manager` names who made it when its markers say.
    Unowned {
        manager: Option<String>,
    },
}

impl Ownership {
    /// This stack's, under its name or under the name it is renamed from.
    fn is_mine(&self) -> bool {
        matches!(self, Ownership::Ours | Ownership::Renamed(_))
    }
}

/// The stack's name, and the one it is renamed from.
#[derive(Debug, Clone, Copy)]
struct Names<'a> {
    stack: &'a str,
    renamed_from: Option<&'a str>,
}

impl Names<'_> {
    fn owner(&self, stack: &str) -> Ownership {
        if stack == self.stack {
            Ownership::Ours
        } else if Some(stack) == self.renamed_from {
            Ownership::Renamed(stack.to_owned())
        } else {
            Ownership::OtherStack(stack.to_owned())
        }
    }
}

fn iam_ownership(tags: &StrMap, names: Names<'_>) -> Ownership {
    match (tags.get(markers::TAG_MANAGED_BY).map(String::as_str), tags.get(markers::TAG_STACK)) {
        (Some(markers::MANAGED_BY), Some(s)) => names.owner(s),
        (manager, _) => Ownership::Unowned { manager: manager.map(str::to_owned) },
    }
}

/// A Kubernetes object is irsa's when it carries the stack annotation. The
/// `managed-by` label is set on objects irsa creates, but an adopted object
/// keeps the label of its maker: Helm, for one, refuses to upgrade a release
/// whose objects lost its label.
fn kube_ownership(labels: &StrMap, annotations: &StrMap, names: Names<'_>) -> Ownership {
    match annotations.get(markers::ANNOTATION_STACK) {
        Some(s) => names.owner(s),
        None => Ownership::Unowned { manager: labels.get(markers::LABEL_MANAGED_BY).cloned() },
    }
}

/// What [`Planner::claim`] decided for an existing resource.
enum Claim {
    Manage,
    Adopt(String),
    Refuse,
}

struct Planner<'a> {
    d: &'a Desired,
    /// The observed state with maps over its lists: every lookup of an
    /// existing resource is a hash probe, not a scan (see [`ObservedIndex`]).
    /// (A shared reference, as `&Observed` was: a loop over `self.o`'s lists
    /// may call `&mut self` methods.)
    o: &'a ObservedIndex<'a>,
    opts: &'a PlanOptions,
    /// Each cluster's issuer, as resolved against the observed state.
    issuers: Issuers,
    /// The changes, in the order first added, and where each address's is:
    /// a list and a hash map of positions, not a map of whole changes (a
    /// B-tree compares addresses at every level; a hash table of changes
    /// keeps an eighth of its slots empty, each the size of a change). The
    /// order comes from the graph.
    /// Boxed: the list grows by doubling, and a quarter-kilobyte `Change`
    /// per empty slot made a plan of 80,000 changes hold room for 131,072.
    #[allow(clippy::vec_box)]
    changes: Vec<Box<Change>>,
    /// Positions in `changes`, found through the change's own address: a
    /// map keyed by a copy of every address was a twentieth of a plan's
    /// memory.
    change_at: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    /// Every change's string objects (tags, annotations, labels), equal ones held once.
    strings: StringsPool,
    errors: Vec<PlanError>,
    warnings: Vec<Warning>,
    /// Stack policies that are replaced, by name.
    replaced_policies: HashSet<String>,
    /// Service accounts (cluster, namespace, name) whose role ARN annotation changes in this plan.
    role_arn_changes: BTreeMap<SaKey, (Option<String>, String)>,
    /// The ARNs of the roles referenced by `arn =`.
    referenced_arns: HashSet<&'a str>,
    /// [`Planner::attachment_name`]'s map of ARN to stack policy name, built
    /// when first needed (only attachments to delete ask).
    stack_policy_names: OnceCell<HashMap<String, String>>,
}

/// A ServiceAccount's (cluster key, namespace, name).
type SaKey = (Option<String>, String, String);

/// Two clusters of the stack that are one cluster: `issuers` are each
/// cluster's (key, issuer) as the clusters report them (not the file, where
/// the loader checked), so two contexts that reach one cluster are found.
/// The planner refuses them before planning its provider twice, and an
/// apply before it takes the lock of that cluster twice (the second wait
/// would be for itself).
pub fn clusters_reached_twice(desired: &Desired, issuers: &[(Option<String>, String)]) -> Vec<PlanError> {
    let mut errors = Vec::new();
    for (i, (key, issuer)) in issuers.iter().enumerate() {
        if let Some((first, _)) = issuers[..i].iter().find(|(_, other)| other == issuer) {
            let (this, first) = (key.as_deref().unwrap_or_default(), first.as_deref().unwrap_or_default());
            let cluster = desired.cluster(key.as_deref()).expect("issuers are the clusters'");
            errors.push(PlanError {
                address: Some(Address::oidc(this)),
                span: Some(cluster.span.clone()),
                message: format!("clusters {first} and {this} have one OIDC issuer, {issuer}: they are one cluster"),
                help: format!("check the context of [clusters.{this}]: it reaches the cluster of [clusters.{first}]"),
            });
        }
    }
    errors
}

/// Plan `desired` against `observed`.
pub fn plan(desired: &Desired, observed: &Observed, opts: &PlanOptions) -> Result<Plan, Vec<PlanError>> {
    match plan_despite_errors(desired, observed, opts)? {
        (plan, errors) if errors.is_empty() => Ok(plan),
        (_, errors) => Err(errors),
    }
}

/// Plan as far as the resources allow: the changes of every resource that
/// could be planned, and the errors of those that could not. `apply PLAN`
/// uses it to say what moved even when a plan made now fails. Errors that
/// stop planning altogether (the issuer, quotas, the graph) are `Err`.
pub fn plan_despite_errors(
    desired: &Desired,
    observed: &Observed,
    opts: &PlanOptions,
) -> Result<(Plan, Vec<PlanError>), Vec<PlanError>> {
    same_clusters(desired, observed)?;
    let mut issuers = Issuers::default();
    let mut issuer_errors = Vec::new();
    for cluster in &desired.clusters {
        match resolve_issuer(cluster, observed) {
            Ok(issuer) => issuers.0.push((cluster.key.clone(), issuer)),
            Err(e) => issuer_errors.extend(e),
        }
    }
    issuer_errors.extend(clusters_reached_twice(desired, &issuers.0));
    if !issuer_errors.is_empty() {
        return Err(issuer_errors);
    }
    let quotas = observed.iam.quotas.unwrap_or_default();
    let checked = desired.quotas_passed.as_ref().is_some_and(|(q, i)| *q == quotas && *i == issuers);
    let violations = if checked { Vec::new() } else { quotas::check(desired, &quotas, &issuers) };
    if !violations.is_empty() {
        return Err(violations
            .into_iter()
            .map(|v| PlanError { address: None, span: Some(v.span), message: v.message, help: v.help })
            .collect());
    }
    let index = observed.index();
    let mut p = Planner {
        d: desired,
        o: &index,
        opts,
        issuers,
        changes: Vec::new(),
        change_at: HashTable::new(),
        hasher: Default::default(),
        strings: StringsPool::default(),
        errors: Vec::new(),
        warnings: Vec::new(),
        replaced_policies: HashSet::new(),
        role_arn_changes: BTreeMap::new(),
        referenced_arns: desired
            .roles
            .values()
            .filter_map(|r| match r {
                Role::Referenced(r) => Some(r.arn.as_str()),
                Role::Owned(_) => None,
            })
            .collect(),
        stack_policy_names: OnceCell::new(),
    };
    p.oidc_providers();
    for policy in desired.policies.values() {
        p.policy(policy);
    }
    for role in desired.roles.values() {
        match role {
            Role::Owned(r) => p.owned_role(r),
            Role::Referenced(r) => p.referenced_role(r),
        }
    }
    p.orphaned_iam();
    p.namespaces();
    for b in &desired.bindings {
        p.service_account(b);
    }
    p.orphaned_service_accounts();
    for b in &desired.bindings {
        for dep in &b.deployments {
            p.deployment(b, dep);
        }
    }
    let errors = std::mem::take(&mut p.errors);
    match p.finish() {
        Ok(plan) => Ok((plan, errors)),
        // The resources' own errors say more than a target that selects none of what could be planned.
        Err(finish) if errors.is_empty() => Err(finish),
        Err(_) => Err(errors),
    }
}

/// The observed state was read for the clusters the file names: a snapshot
/// of another form or other clusters would make every object look absent.
fn same_clusters(d: &Desired, o: &Observed) -> Result<(), Vec<PlanError>> {
    let read: Vec<&str> = o.clusters.keys().map(String::as_str).collect();
    let missing: Vec<&Cluster> = d
        .clusters
        .iter()
        .filter(|c| match &c.key {
            Some(k) => !o.clusters.contains_key(k),
            None => !o.clusters.is_empty(),
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let had = if read.is_empty() { "one [cluster]".to_owned() } else { format!("clusters {}", read.join(", ")) };
    Err(missing
        .into_iter()
        .map(|c| PlanError {
            address: Some(Address::oidc(c.address_name())),
            span: Some(c.span.clone()),
            message: format!("the observed state has no state for {}: it was read for {had}", c.table()),
            help: "read it again with this stack file (irsa refresh FILE --export SNAPSHOT), or plan live".into(),
        })
        .collect())
}

/// The cluster's issuer, or (one) error saying why it is not known.
fn resolve_issuer(c: &Cluster, o: &Observed) -> Result<String, Vec<PlanError>> {
    let norm = |s: &str| s.trim_end_matches('/').to_owned();
    let observed = o.cluster_state(c.key.as_deref()).and_then(|s| s.oidc_issuer.as_ref());
    let table = c.table();
    let whose = match &c.key {
        None => "the cluster's OIDC issuer".to_owned(),
        Some(k) => format!("the OIDC issuer of cluster `{k}`"),
    };
    match (&c.oidc_issuer, observed) {
        (Some(mine), Some(theirs)) if norm(mine) != norm(theirs) => Err(vec![PlanError {
            address: Some(Address::oidc(c.address_name())),
            span: c.oidc_issuer_span.clone(),
            message: format!("the stack file says {whose} is {mine}, but the cluster says {theirs}"),
            help: format!(
                "check that {table} context points at the right cluster; if it does, fix oidc_issuer or remove it to use the cluster's"
            ),
        }]),
        (Some(mine), _) => Ok(norm(mine)),
        (None, Some(theirs)) => Ok(norm(theirs)),
        (None, None) => Err(vec![PlanError {
            address: Some(Address::oidc(c.address_name())),
            span: Some(c.span.clone()),
            message: format!("{whose} is unknown: the stack file does not set it and the observed state has none"),
            help: format!("set oidc_issuer in {table} (aws eks describe-cluster --query cluster.identity.oidc.issuer)"),
        }]),
    }
}

/// The attributes whose values differ; documents compare by meaning.
pub(crate) fn changed_keys(before: Option<&Attrs>, after: Option<&Attrs>) -> Vec<String> {
    let (Some(b), Some(a)) = (before, after) else { return Vec::new() };
    let null = Attr::Value(Value::Null);
    let mut keys: Vec<String> = Vec::new();
    for (k, av) in a.iter() {
        let bv = b.attr(k).unwrap_or(&null);
        // Documents are compared by meaning; equal text is equal meaning,
        // and only differing documents are brought to canonical form.
        let same = match (av, bv) {
            (Attr::Document(a), Attr::Document(b)) => a == b,
            (Attr::Value(a), Attr::Value(b)) => {
                a == b
                    || (super::DOCUMENT_ATTRIBUTES.contains(&k)
                        && a.is_object()
                        && b.is_object()
                        && PolicyDocument::from_value(a.clone()) == PolicyDocument::from_value(b.clone()))
            }
            (Attr::Document(d), Attr::Value(v)) | (Attr::Value(v), Attr::Document(d)) => {
                v.is_object() && *d == PolicyDocument::from_value(v.clone())
            }
            // Objects of strings, by value.
            (a, b) => a == b,
        };
        if !same {
            keys.push(k.to_owned());
        }
    }
    keys
}

fn obj(v: Value) -> Attrs {
    Attrs::from(v)
}

fn list(names: &[String]) -> String {
    names.join(", ")
}

impl<'a> Planner<'a> {
    fn names(&self) -> Names<'a> {
        let d: &'a Desired = self.d;
        Names { stack: &d.stack.name, renamed_from: d.stack.renamed_from.as_deref() }
    }
}

impl Planner<'_> {
    fn stack(&self) -> &str {
        &self.d.stack.name
    }

    /// The issuer of the cluster of key `key` (resolved for every cluster before planning).
    fn issuer(&self, key: Option<&str>) -> &str {
        self.issuers.get(key).expect("every cluster's issuer is resolved before planning")
    }

    /// The cluster key an address of the binding's objects carries: `None` in a `[cluster]` file.
    fn sa_address(b: &Binding) -> Address {
        Address::service_account(b.cluster.as_deref(), &b.namespace, &b.name)
    }

    /// Record a change; the caller may fill in more of it (a cluster
    /// change's guard) through the reference returned.
    fn add(
        &mut self,
        address: Address,
        actions: Vec<Action>,
        reasons: Vec<String>,
        mut before: Option<Attrs>,
        mut after: Option<Attrs>,
    ) -> &mut Change {
        for attrs in before.iter_mut().chain(after.iter_mut()) {
            attrs.pool_strings(&mut self.strings);
        }
        let changed = changed_keys(before.as_ref(), after.as_ref());
        let kind = address.kind();
        let hash = self.hasher.hash_one(&address);
        let change = Change {
            address,
            kind,
            actions: Actions::try_from(actions.as_slice()).expect("the planner makes at most three actions"),
            reasons,
            before,
            after,
            changed: changed.into_boxed_slice(),
            depends_on: Vec::new(),
            guard: Map::new(),
            access: None,
        };
        let Planner { changes, change_at, hasher, .. } = self;
        let at = match change_at.entry(
            hash,
            |&i| changes[i as usize].address == change.address,
            |&i| hasher.hash_one(&changes[i as usize].address),
        ) {
            hash_table::Entry::Vacant(slot) => {
                changes.push(Box::new(change));
                slot.insert(u32::try_from(changes.len() - 1).expect("fewer than 2^32 changes"));
                changes.len() - 1
            }
            hash_table::Entry::Occupied(slot) => {
                let at = *slot.get() as usize;
                *changes[at] = change;
                at
            }
        };
        &mut changes[at]
    }

    fn error(&mut self, address: Address, span: Option<Span>, message: String, help: String) {
        self.errors.push(PlanError { address: Some(address), span, message, help });
    }

    fn warn(&mut self, address: Option<Address>, message: String) {
        self.warnings.push(Warning { address, message });
    }

    /// Decide what to do with an existing resource the stack names.
    fn claim(&mut self, address: &Address, ownership: Ownership, adopt: bool, span: &Span, entry: &str) -> Claim {
        match ownership {
            Ownership::Ours => Claim::Manage,
            Ownership::Renamed(old) => Claim::Adopt(format!(
                "carries the markers of stack `{old}`; moves to stack `{}` because of --rename-from {old}",
                self.stack()
            )),
            Ownership::OtherStack(other) => {
                let fix = match address {
                    Address::Policy { name } => format!(
                        "use another policy name here, or remove [policies.{name}] and attach stack `{other}`'s policy by its ARN (policies = [\"{}\"])",
                        self.o.policy(name).map_or("arn:aws:iam::…:policy/…", |p| p.arn.as_str())
                    ),
                    _ => format!("use another name here, or remove it from stack `{other}` first"),
                };
                let help = format!(
                    "one resource has one owner: {fix}; if stack `{other}` is this file under its old name, plan with --rename-from {other}"
                );
                self.error(
                    address.clone(),
                    Some(span.clone()),
                    format!("{address} exists and belongs to irsa stack `{other}`, not `{}`", self.stack()),
                    help,
                );
                Claim::Refuse
            }
            Ownership::Unowned { manager } => {
                if adopt || self.opts.adopt {
                    let why = if adopt { format!("adopt = true on {entry}") } else { "--adopt".to_owned() };
                    Claim::Adopt(format!("exists, not managed by irsa{}; adopted because of {why}", by(&manager)))
                } else {
                    self.error(
                        address.clone(),
                        Some(span.clone()),
                        format!("{address} already exists and is not managed by irsa{}", by(&manager)),
                        format!("set adopt = true on {entry} (or run with --adopt) to bring it under this stack, or choose another name"),
                    );
                    Claim::Refuse
                }
            }
        }
    }

    /// Adopting never deletes: an unowned resource whose immutable
    /// attributes differ from the stack file would have to be replaced, so
    /// the user must first make the file say what exists.
    fn refuse_replacing_adopted(&mut self, address: &Address, span: &Span, before: &Attrs, keys: &[&str]) {
        let current: Vec<String> =
            keys.iter().filter_map(|k| before.get(k).map(|v| format!("{k} = {}", view_value(v)))).collect();
        self.error(
            address.clone(),
            Some(span.clone()),
            format!("{address} cannot be adopted as the stack file describes it: IAM cannot change its {} in place, and irsa never replaces what it does not own", keys.join(" or ")),
            format!("write what exists into the stack file ({}), adopt it, and change it afterwards", current.join(", ")),
        );
    }

    fn oidc_providers(&mut self) {
        if self.opts.destroy {
            return;
        }
        let d: &Desired = self.d;
        for cluster in &d.clusters {
            self.oidc_provider(cluster);
        }
    }

    fn oidc_provider(&mut self, cluster: &Cluster) {
        let address = Address::oidc(cluster.address_name());
        let issuer = self.issuer(cluster.key.as_deref()).to_owned();
        let host = Desired::issuer_host_path(&issuer).to_owned();
        let thumbprints = &cluster.oidc_thumbprints;
        let mut after = json!({
            "arn": self.d.oidc_provider_arn(self.d.account_id(), &issuer),
            "url": issuer,
            "client_ids": [markers::STS_AUDIENCE],
            "tags": self.d.ownership_tags(),
        });
        if !thumbprints.is_empty() {
            after["thumbprints"] = json!(thumbprints);
        }
        let Some(obs) = self.o.oidc_provider(&host) else {
            self.add(address, vec![Action::Create], vec!["not present".into()], None, Some(obj(after)));
            return;
        };
        let has_sts = obs.client_ids.iter().any(|c| c == markers::STS_AUDIENCE);
        let ownership = iam_ownership(&obs.tags, self.names());
        if !ownership.is_mine() {
            // A provider is one per cluster and often shared by several
            // stacks or made by eksctl: using it is fine, changing it is not.
            if !has_sts {
                let owner = match ownership {
                    Ownership::OtherStack(s) => format!("irsa stack `{s}`"),
                    _ => "someone else".into(),
                };
                self.error(
                    address,
                    cluster.oidc_issuer_span.clone(),
                    format!("the OIDC provider {} (owned by {owner}) lacks the client id sts.amazonaws.com, so pods cannot assume roles through it", obs.arn),
                    format!("add the client id: aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn {} --client-id sts.amazonaws.com", obs.arn),
                );
            }
            return;
        }
        // Extra client ids may serve other tools: irsa only makes sure of its own.
        let mut client_ids = obs.client_ids.clone();
        if !has_sts {
            client_ids.push(markers::STS_AUDIENCE.into());
        }
        after["client_ids"] = json!(client_ids);
        after["arn"] = json!(obs.arn);
        let mut before = json!({
            "arn": obs.arn,
            "url": format!("https://{}", obs.url),
            "client_ids": obs.client_ids,
            "tags": obs.tags,
        });
        if !thumbprints.is_empty() {
            before["thumbprints"] = json!(obs.thumbprints);
        }
        let (before, after) = (obj(before), obj(after));
        let changed = changed_keys(Some(&before), Some(&after));
        if !changed.is_empty() {
            let mut reasons = vec![format!("not as the stack file says: {}", changed.join(", "))];
            if let Ownership::Renamed(old) = ownership {
                reasons.push(format!("moves from stack `{old}` to stack `{}` (--rename-from)", self.stack()));
            }
            self.add(address, vec![Action::Update], reasons, Some(before), Some(after));
        }
    }

    fn policy(&mut self, policy: &Policy) {
        let mut tags = policy.tags.clone();
        tags.extend(self.d.ownership_tags());
        if let Some(obs) = self.o.policy(&policy.name)
            && matches!(iam_ownership(&obs.tags, self.names()), Ownership::Ours)
            && obs.name == policy.name
            && obs.path == policy.path
            && obs.description == policy.description
            && obs.tags == tags
            && obs.arn == self.d.policy_arn(policy)
            && obs.document == policy.document
        {
            // In sync: what the comparison of the two JSON models below would
            // find, without building them (most policies of a large stack).
            return;
        }
        let address = Address::policy(&policy.name);
        let after = obj(json!({
            "name": policy.name,
            "path": policy.path,
            "arn": self.d.policy_arn(policy),
            "description": policy.description,
            "tags": tags,
        }))
        .with_document("document", &policy.document);
        // Which of irsa's versions of a preset the document is: the one
        // thing a reviewer needs when a new irsa changes a preset's policy.
        let preset = policy.preset.as_ref().map(|p| {
            format!(
                "the document is irsa's preset `{}` v{} for role `{}` (docs/presets.md)",
                p.preset, p.version, p.role
            )
        });
        let Some(obs) = self.o.policy(&policy.name) else {
            let reasons = std::iter::once("not present".to_owned()).chain(preset).collect();
            self.add(address, vec![Action::Create], reasons, None, Some(after));
            return;
        };
        // A preset's policy has no table of its own: it is adopted with its role.
        let entry = match &policy.preset {
            Some(p) => format!("[roles.{}] (its preset `{}`)", p.role, p.preset),
            None => format!("[policies.{}]", policy.name),
        };
        let claim = self.claim(&address, iam_ownership(&obs.tags, self.names()), policy.adopt, &policy.span, &entry);
        let before = obj(json!({
            "name": obs.name,
            "path": obs.path,
            "arn": obs.arn,
            "description": obs.description,
            "tags": user_tags(&obs.tags),
        }))
        .with_document("document", &obs.document);
        let changed = changed_keys(Some(&before), Some(&after));
        // IAM cannot change a managed policy's path or description in place.
        let immutable: Vec<&String> =
            changed.iter().filter(|k| ["path", "description", "name"].contains(&k.as_str())).collect();
        let mut reasons = Vec::new();
        let actions = match claim {
            Claim::Refuse => return,
            Claim::Adopt(_) if !immutable.is_empty() => {
                let keys: Vec<&str> = immutable.iter().map(|k| k.as_str()).collect();
                self.refuse_replacing_adopted(&address, &policy.span, &before, &keys);
                return;
            }
            _ if !immutable.is_empty() => {
                for k in &immutable {
                    reasons.push(format!("{k} cannot be changed in place: the policy is replaced"));
                }
                self.replaced_policies.insert(policy.name.clone());
                vec![Action::Delete, Action::Create]
            }
            Claim::Adopt(why) => {
                reasons.push(why);
                vec![Action::Adopt]
            }
            Claim::Manage if changed.is_empty() => return,
            Claim::Manage => vec![Action::Update],
        };
        if changed.iter().any(|k| k == "document") && !actions.contains(&Action::Delete) {
            reasons.push("the document differs: a new default version is created".into());
            if obs.version_count >= 5 {
                reasons.push("IAM keeps 5 versions: the oldest non-default version is deleted first".into());
            }
        }
        if changed.iter().any(|k| k == "document")
            && let Some(preset) = preset
        {
            reasons.push(preset);
        }
        if changed.iter().any(|k| k == "tags") && !actions.contains(&Action::Delete) {
            reasons.push("not as the stack file says: tags".into());
        }
        self.add(address, actions, reasons, Some(before), Some(after));
    }

    /// irsa's statements for the role: one per cluster it is bound in.
    fn role_trust(&self, role_key: &str, account: &str) -> Vec<Value> {
        trust::role_statements(self.d, role_key, account, |k| self.issuers.get(k))
    }

    /// A reason to say how full a trust policy of several clusters'
    /// statements is, or an error when it is over the account's quota.
    fn trust_room(
        &mut self,
        address: &Address,
        span: &Span,
        role_key: &str,
        trust_policy: &PolicyDocument,
    ) -> Option<String> {
        let quota = self.o.iam.quotas.unwrap_or_default().trust_policy_size;
        let size = trust_policy.size();
        let subjects: Vec<String> = self.d.bindings_of(role_key).map(Binding::subject).collect();
        if size > quota {
            let over = trust::subjects_that_fit(quota, size, &subjects) + 1;
            self.error(
                address.clone(),
                Some(span.clone()),
                format!("the trust policy of {address} would be {size} characters long; the account allows {quota}"),
                format!(
                    "bind about {over} fewer service account{} to this role and give the others a role of their own, or raise the quota (Service Quotas: Role trust policy length)",
                    plural(&vec![(); over])
                ),
            );
            return None;
        }
        let clusters = self.d.bindings_of(role_key).map(|b| &b.cluster).collect::<BTreeSet<_>>().len();
        (clusters > 1).then(|| {
            format!(
                "the trust policy has a statement for each of {clusters} clusters' providers: {size} of {quota} characters, room for about {} more service accounts",
                trust::subjects_that_fit(size, quota, &subjects)
            )
        })
    }

    fn owned_role(&mut self, role: &OwnedRole) {
        let address = Address::role(&role.name);
        let statements = self.role_trust(&role.name, self.d.account_id());
        let obs = self.o.role(&role.name);
        let mut trust_policy = trust::owned_trust_policy(statements);
        // irsa's statements as people write them by hand, without irsa's
        // Sids, are irsa's statements: a trust policy is not rewritten only
        // to add Sids. (Generated again only for a trust that differs: an
        // in-sync role, the common case, pays for nothing more.)
        if let Some(o) = obs
            && o.trust_policy != trust_policy
        {
            let by_hand = self.role_trust(&role.name, self.d.account_id()).iter().map(trust::without_sid).collect();
            if o.trust_policy == trust::owned_trust_policy(by_hand) {
                trust_policy = o.trust_policy.clone();
            }
        }
        let mut tags = role.tags.clone();
        tags.extend(self.d.ownership_tags());
        if let Some(obs) = obs
            && matches!(iam_ownership(&obs.tags, self.names()), Ownership::Ours)
            && obs.name == role.name
            && obs.path == role.path
            && obs.description == role.description
            && obs.max_session_duration == role.max_session_duration
            && obs.permissions_boundary == role.permissions_boundary
            && obs.tags == tags
            && obs.arn == self.d.role_arn(role)
            && obs.trust_policy == trust_policy
        {
            // In sync (see `policy`): only what hangs on the role is left to plan.
            self.attachments(role, Some(obs));
            self.inline_policies(role, Some(obs));
            return;
        }
        let after = obj(json!({
            "name": role.name,
            "path": role.path,
            "arn": self.d.role_arn(role),
            "description": role.description,
            "max_session_duration": role.max_session_duration,
            "permissions_boundary": role.permissions_boundary,
            "tags": tags,
        }))
        .with_document("trust_policy", &trust_policy);
        // `None`: the role is created (or replaced) and so is everything on it.
        let mut existing: Option<&ObservedRole> = None;
        match obs {
            None => {
                let mut reasons = vec!["not present".to_owned()];
                reasons.extend(self.trust_room(&address, &role.span, &role.name, &trust_policy));
                self.add(address, vec![Action::Create], reasons, None, Some(after));
            }
            Some(obs) => {
                let entry = format!("[roles.{}]", role.name);
                let claim =
                    self.claim(&address, iam_ownership(&obs.tags, self.names()), role.adopt, &role.span, &entry);
                let before = obj(json!({
                    "name": obs.name,
                    "path": obs.path,
                    "arn": obs.arn,
                    "description": obs.description,
                    "max_session_duration": obs.max_session_duration,
                    "permissions_boundary": obs.permissions_boundary,
                    "tags": user_tags(&obs.tags),
                }))
                .with_document("trust_policy", &obs.trust_policy);
                let changed = changed_keys(Some(&before), Some(&after));
                let replace = changed.iter().any(|k| k == "path" || k == "name");
                let mut reasons = Vec::new();
                let actions = match claim {
                    Claim::Refuse => return,
                    Claim::Adopt(_) if replace => {
                        self.refuse_replacing_adopted(&address, &role.span, &before, &["name", "path"]);
                        return;
                    }
                    _ if replace => {
                        reasons.push("path cannot be changed in place: the role is replaced".into());
                        vec![Action::Delete, Action::Create]
                    }
                    Claim::Adopt(why) => {
                        reasons.push(why);
                        existing = Some(obs);
                        vec![Action::Adopt]
                    }
                    Claim::Manage => {
                        existing = Some(obs);
                        if changed.is_empty() { vec![] } else { vec![Action::Update] }
                    }
                };
                if !actions.is_empty() {
                    if changed.iter().any(|k| k == "trust_policy") && !replace {
                        reasons.push(if self.d.multi_cluster() && !obs.trust_policy.statements().is_empty() {
                            format!(
                                "irsa's trust statements, one per cluster: {}",
                                sid_changes(obs.trust_policy.statements(), trust_policy.statements())
                            )
                        } else {
                            trust_reason(&obs.trust_policy, &role.name)
                        });
                        reasons.extend(self.trust_room(&address, &role.span, &role.name, &trust_policy));
                    }
                    let other: Vec<&str> = changed
                        .iter()
                        .map(String::as_str)
                        .filter(|k| !["trust_policy", "path", "name", "arn"].contains(k))
                        .collect();
                    if !other.is_empty() && !replace {
                        reasons.push(format!("not as the stack file says: {}", other.join(", ")));
                    }
                    self.add(address, actions, reasons, Some(before), Some(after));
                }
            }
        }
        self.attachments(role, existing);
        self.inline_policies(role, existing);
    }

    /// The ARN a stack policy has now, if it exists (its path may differ from the desired one).
    fn current_policy_arn(&self, name: &str) -> Option<String> {
        self.o.policy(name).map(|p| p.arn.clone())
    }

    /// The address name of an attached ARN: a stack policy's name when the
    /// ARN is (or was) one of the stack's policies, else the ARN itself.
    fn attachment_name(&self, arn: &str) -> String {
        // The first stack policy, in name order, whose ARN (desired or
        // current) is `arn`: one map, built once, instead of a pass over
        // every stack policy per attachment.
        let stack_names = self.stack_policy_names.get_or_init(|| {
            let mut names: HashMap<String, String> = HashMap::new();
            for p in self.d.policies.values() {
                names.entry(self.d.policy_arn(p)).or_insert_with(|| p.name.clone());
                if let Some(current) = self.current_policy_arn(&p.name) {
                    names.entry(current).or_insert_with(|| p.name.clone());
                }
            }
            names
        });
        if let Some(name) = stack_names.get(arn) {
            return name.clone();
        }
        self.o
            .policies_with_arn(arn)
            .into_iter()
            .find(|p| iam_ownership(&p.tags, self.names()).is_mine())
            .map_or_else(|| arn.to_owned(), |p| p.name.clone())
    }

    fn attachments(&mut self, role: &OwnedRole, existing: Option<&ObservedRole>) {
        let role_reason =
            if self.o.role(&role.name).is_some() { "the role is replaced" } else { "the role is created" };
        let mut wanted: BTreeSet<String> = BTreeSet::new();
        for p in &role.policies {
            let address = || Address::attach(&role.name, p.address_name());
            let arn = self.d.policy_ref_arn(p);
            let after = || Some(obj(json!({ "role": role.name, "policy_arn": arn })));
            let Some(obs) = existing else {
                self.add(address(), vec![Action::Create], vec![role_reason.into()], None, after());
                wanted.insert(arn.clone());
                continue;
            };
            let old_arn = match p {
                PolicyRef::Stack(name) => self.current_policy_arn(name).unwrap_or_else(|| arn.clone()),
                PolicyRef::Arn(_) => arn.clone(),
            };
            let attached = obs.attached_policies.iter().find(|a| **a == arn || **a == old_arn);
            let replaced = matches!(p, PolicyRef::Stack(n) if self.replaced_policies.contains(n));
            match (attached, replaced) {
                (Some(a), true) => {
                    let before = Some(obj(json!({ "role": role.name, "policy_arn": a })));
                    let reason =
                        format!("policy/{} is replaced, so it is detached first and attached again", p.address_name());
                    self.add(address(), vec![Action::Delete, Action::Create], vec![reason], before, after());
                }
                (Some(_), false) => {}
                (None, _) => {
                    self.add(address(), vec![Action::Create], vec!["not attached".into()], None, after());
                }
            }
            wanted.insert(old_arn);
            wanted.insert(arn);
        }
        let Some(obs) = existing else { return };
        for arn in &obs.attached_policies {
            if wanted.contains(arn) {
                continue;
            }
            let address = Address::attach(&role.name, &self.attachment_name(arn));
            let before = Some(obj(json!({ "role": role.name, "policy_arn": arn })));
            self.add(address, vec![Action::Delete], vec!["attached, but not in the stack file".into()], before, None);
        }
    }

    fn inline_policies(&mut self, role: &OwnedRole, existing: Option<&ObservedRole>) {
        let role_reason =
            if self.o.role(&role.name).is_some() { "the role is replaced" } else { "the role is created" };
        for (name, doc) in &role.inline {
            let address = Address::inline(&role.name, name);
            let after = Some(obj(json!({ "role": role.name, "name": name })).with_document("document", doc));
            match existing.map(|o| o.inline_policies.get(name)) {
                None => {
                    self.add(address, vec![Action::Create], vec![role_reason.into()], None, after);
                }
                Some(None) => {
                    self.add(address, vec![Action::Create], vec!["not present".into()], None, after);
                }
                Some(Some(current)) if current == doc => {}
                Some(Some(current)) => {
                    let before =
                        Some(obj(json!({ "role": role.name, "name": name })).with_document("document", current));
                    self.add(address, vec![Action::Update], vec!["the document differs".into()], before, after);
                }
            }
        }
        let Some(obs) = existing else { return };
        for (name, doc) in &obs.inline_policies {
            if !role.inline.contains_key(name) {
                let before = Some(obj(json!({ "role": role.name, "name": name })).with_document("document", doc));
                self.add(
                    Address::inline(&role.name, name),
                    vec![Action::Delete],
                    vec!["an inline policy not in the stack file".into()],
                    before,
                    None,
                );
            }
        }
    }

    fn referenced_role(&mut self, role: &ReferencedRole) {
        let address = Address::role(&role.key);
        let Some(obs) = self.o.role_by_arn(&role.arn) else {
            self.error(
                address,
                Some(role.span.clone()),
                format!("role {} (referenced by [roles.{}]) does not exist", role.arn, role.key),
                "create the role first, or remove `arn` to let irsa create and own it".into(),
            );
            return;
        };
        let account = role.arn.split(':').nth(4).unwrap_or(self.d.account_id()).to_owned();
        if let (true, Ownership::OtherStack(owner)) = (role.manage_trust, iam_ownership(&obs.tags, self.names())) {
            // That stack writes the role's whole trust policy from its own
            // bindings: a statement added here would be gone at its next
            // apply, and come back at ours, forever.
            self.error(
                address,
                Some(role.span.clone()),
                format!(
                    "role {} is owned by irsa stack `{owner}`, which generates its whole trust policy: [roles.{}] cannot manage_trust on it",
                    role.arn, role.key
                ),
                format!(
                    "bind these service accounts to the role in stack `{owner}`, or set manage_trust = false here and let stack `{owner}` trust them"
                ),
            );
            return;
        }
        if role.manage_trust {
            self.shared_trust(role, obs, &account);
            return;
        }
        for b in self.d.bindings_of(&role.key) {
            let issuer = self.issuer(b.cluster.as_deref());
            let provider = self.d.oidc_provider_arn(&account, issuer);
            let host = Desired::issuer_host_path(issuer).to_owned();
            if !policy_doc::admits_web_identity(&obs.trust_policy, &provider, &host, &b.subject()) {
                let sid = trust::cluster_sid(self.stack(), b.cluster.as_deref());
                let statement = trust::web_identity_statement(&sid, &provider, &host, &[b.subject()]);
                let pretty = serde_json::to_string_pretty(&statement).unwrap_or_default();
                self.error(
                    Self::sa_address(b),
                    Some(b.span.clone()),
                    format!("role {} does not trust {} through {provider}, and [roles.{}] has manage_trust = false", role.arn, b.subject(), role.key),
                    format!("set manage_trust = true on [roles.{}] to let irsa add its statement, or add this statement to the role's trust policy:\n{pretty}", role.key),
                );
            }
        }
    }

    /// `manage_trust = true`: irsa's statements in a role it does not own,
    /// one per cluster the role is bound in, found by their Sids (for any
    /// cluster the stack has or had, under its name or the one it is renamed
    /// from); every other statement is kept as it is, in its place.
    fn shared_trust(&mut self, role: &ReferencedRole, obs: &ObservedRole, account: &str) {
        let stack = self.stack().to_owned();
        let old = self.d.stack.renamed_from.clone();
        let ours = |st: &Value| {
            st.get("Sid").and_then(Value::as_str).is_some_and(|sid| {
                trust::is_stack_sid(sid, &stack) || old.as_deref().is_some_and(|o| trust::is_stack_sid(sid, o))
            })
        };
        let wanted_statements = self.role_trust(&role.key, account);
        let (had, mut kept): (Vec<Value>, Vec<Value>) = obs.trust_policy.statements().iter().cloned().partition(ours);
        // irsa's statement written by hand, without irsa's Sid (as `irsa
        // import` finds it), is irsa's statement: it stays as it is rather
        // than be rewritten only to add the Sid.
        let missing: Vec<Value> = wanted_statements
            .iter()
            .filter(|st| {
                let by_hand = trust::without_sid(st);
                !kept.iter().any(|k| k.get("Sid").is_none() && trust::same_statement(k, &by_hand))
            })
            .cloned()
            .collect();
        kept.extend(missing);
        let wanted = trust::with_statements(&obs.trust_policy, kept);
        if wanted == obs.trust_policy {
            return;
        }
        let reason = if self.d.multi_cluster() {
            format!(
                "manage_trust = true: irsa's trust statements, one per cluster: {}; every other statement is kept as it is",
                sid_changes(&had, &wanted_statements)
            )
        } else {
            let sid = trust::irsa_sid(&stack);
            format!(
                "manage_trust = true: irsa's trust statement ({sid}) is {}; every other statement is kept as it is",
                if wanted_statements.is_empty() { "removed" } else { "added or brought up to date" }
            )
        };
        let address = Address::role(&role.key);
        let mut reasons = vec![reason];
        if !wanted_statements.is_empty() {
            reasons.extend(self.trust_room(&address, &role.span, &role.key, &wanted));
        }
        let before = obj(json!({ "arn": obs.arn })).with_document("trust_policy", &obs.trust_policy);
        let after = obj(json!({ "arn": obs.arn })).with_document("trust_policy", &wanted);
        self.add(address, vec![Action::Update], reasons, Some(before), Some(after));
    }

    /// The roles outside this stack that still trust the provider
    /// `provider_arn` once this plan is applied: any role but this stack's
    /// own, and a role referenced by ARN only through statements other than
    /// irsa's (which this plan takes out when the stack lets go of it).
    fn other_users_of(&self, provider_arn: &str, trusted_by: &[String]) -> Vec<String> {
        let names = self.names();
        let stacks: Vec<&str> = std::iter::once(self.stack()).chain(names.renamed_from).collect();
        trusted_by
            .iter()
            .filter(|name| match self.o.role(name) {
                Some(r) if iam_ownership(&r.tags, names).is_mine() => false,
                Some(r) if self.referenced_arns.contains(r.arn.as_str()) => {
                    r.trust_policy.statements_naming_federated(provider_arn).any(|st| {
                        st.get("Sid")
                            .and_then(Value::as_str)
                            .is_none_or(|sid| !stacks.iter().any(|s| trust::is_stack_sid(sid, s)))
                    })
                }
                _ => true,
            })
            .cloned()
            .collect()
    }

    /// IAM resources carrying this stack's markers that the stack no longer declares.
    fn orphaned_iam(&mut self) {
        let names = self.names();
        let d: &Desired = self.d;
        // The cluster whose issuer each current provider serves.
        let hosts: Vec<(String, &Cluster)> = d
            .clusters
            .iter()
            .map(|c| (Desired::issuer_host_path(self.issuer(c.key.as_deref())).to_owned(), c))
            .collect();
        let gone = "no longer in the stack file".to_owned();
        for p in &self.o.iam.oidc_providers {
            let current = hosts.iter().find(|(h, _)| *h == p.url).map(|(_, c)| *c);
            if (current.is_some() && !self.opts.destroy) || !iam_ownership(&p.tags, names).is_mine() {
                continue;
            }
            // The address names the cluster, so a second provider of the
            // stack (an old issuer) is told apart by a suffix; in a stack of
            // several clusters, one no cluster has any more is named by its issuer.
            let address = match current {
                Some(c) => Address::oidc(c.address_name()),
                None if d.multi_cluster() => Address::oidc(&p.url),
                None => Address::oidc(&format!("{}@{}", d.clusters[0].name, p.url)),
            };
            // One provider serves every stack of the cluster: the stack that
            // made it does not take it from the others' roles.
            let users = self.other_users_of(&p.arn, &p.trusted_by);
            if !users.is_empty() {
                self.warn(
                    Some(address),
                    format!(
                        "the OIDC provider {} is kept, though this stack made it: role{} {} outside this stack still trust{} it",
                        p.arn,
                        plural(&users),
                        list(&users),
                        if users.len() == 1 { "s" } else { "" }
                    ),
                );
                continue;
            }
            let before = obj(
                json!({ "arn": p.arn, "url": format!("https://{}", p.url), "client_ids": p.client_ids, "tags": p.tags }),
            );
            let reason = match current {
                Some(_) => "the stack is destroyed".to_owned(),
                None if d.multi_cluster() => "no cluster of the stack file has this issuer any more".to_owned(),
                None => format!("the cluster's issuer is now {}", self.issuer(None)),
            };
            if current.is_none() && d.multi_cluster() {
                // The cluster is gone from the file, so it is not read: what
                // irsa made in it stays, its pods no longer trusted.
                self.warn(
                    Some(address.clone()),
                    format!("the ServiceAccounts this stack made in the cluster of issuer https://{} are not read or removed now that the file no longer names it: delete them with the cluster, or name the cluster again to clean them up", p.url),
                );
            }
            self.add(address, vec![Action::Delete], vec![reason], Some(before), None);
        }
        let mut deleted_policy_arns = Vec::new();
        for p in &self.o.iam.policies {
            if !self.d.policies.contains_key(&p.name) && iam_ownership(&p.tags, names).is_mine() {
                let before = obj(
                    json!({ "name": p.name, "path": p.path, "arn": p.arn, "description": p.description, "tags": p.tags }),
                )
                .with_document("document", &p.document);
                self.add(Address::policy(&p.name), vec![Action::Delete], vec![gone.clone()], Some(before), None);
                deleted_policy_arns.push((p.name.clone(), p.arn.clone()));
            }
        }
        let owned_names: HashSet<String> = self
            .d
            .roles
            .values()
            .filter_map(|r| match r {
                Role::Owned(r) => Some(r.name.to_ascii_lowercase()),
                Role::Referenced(_) => None,
            })
            .collect();
        for r in &self.o.iam.roles {
            if owned_names.contains(&r.name.to_ascii_lowercase()) || !iam_ownership(&r.tags, names).is_mine() {
                continue;
            }
            let before = obj(json!({
                "name": r.name, "path": r.path, "arn": r.arn, "description": r.description,
                "max_session_duration": r.max_session_duration, "permissions_boundary": r.permissions_boundary,
                "tags": r.tags,
            }))
            .with_document("trust_policy", &r.trust_policy);
            self.add(Address::role(&r.name), vec![Action::Delete], vec![gone.clone()], Some(before), None);
            for arn in &r.attached_policies {
                let before = obj(json!({ "role": r.name, "policy_arn": arn }));
                let address = Address::attach(&r.name, &self.attachment_name(arn));
                self.add(address, vec![Action::Delete], vec!["its role is deleted".into()], Some(before), None);
            }
            for (name, doc) in &r.inline_policies {
                let before = obj(json!({ "role": r.name, "name": name })).with_document("document", doc);
                self.add(
                    Address::inline(&r.name, name),
                    vec![Action::Delete],
                    vec!["its role is deleted".into()],
                    Some(before),
                    None,
                );
            }
        }
        // A policy still attached to a role outside the stack cannot be deleted.
        for (name, arn) in deleted_policy_arns {
            for r in self.o.roles_attaching(&arn) {
                if !iam_ownership(&r.tags, names).is_mine() {
                    self.warn(
                        Some(Address::policy(&name)),
                        format!("policy/{name} is still attached to role {}, which this stack does not own: IAM refuses to delete it until it is detached", r.name),
                    );
                }
            }
        }
    }

    fn namespaces(&mut self) {
        let mut seen = BTreeSet::new();
        for b in &self.d.bindings {
            let cluster = b.cluster.as_deref();
            if seen.insert((cluster, b.namespace.as_str())) && !self.o.has_namespace(cluster, &b.namespace) {
                let in_cluster = cluster.map(|c| format!(" in cluster {c}")).unwrap_or_default();
                self.warn(
                    Some(Self::sa_address(b)),
                    format!(
                        "namespace {}{in_cluster} does not exist: irsa does not create namespaces, so create it before applying",
                        b.namespace
                    ),
                );
            }
        }
    }

    fn service_account(&mut self, b: &Binding) {
        let address = Self::sa_address(b);
        let cluster = b.cluster.as_deref();
        let role_arn = self.d.binding_role_arn(b);
        let mut annotations = b.annotations.clone();
        annotations.insert(markers::ANNOTATION_ROLE_ARN.into(), role_arn.clone());
        annotations.insert(markers::ANNOTATION_STACK.into(), self.stack().to_owned());
        let mut labels = BTreeMap::from([(markers::LABEL_MANAGED_BY.to_owned(), markers::MANAGED_BY.to_owned())]);
        let obs = self.o.service_account(cluster, &b.namespace, &b.name);
        if obs.and_then(|o| o.labels.get(markers::LABEL_MANAGED_BY)).is_some_and(|m| m != markers::MANAGED_BY) {
            // Made by another tool: its label stays, see `kube_ownership`.
            labels.clear();
        }
        let after = |annotations: &BTreeMap<String, String>, labels: &BTreeMap<String, String>| {
            obj(json!({ "namespace": b.namespace, "name": b.name, "annotations": annotations, "labels": labels }))
        };
        let key = (b.cluster.clone(), b.namespace.clone(), b.name.clone());
        let Some(obs) = obs else {
            self.role_arn_changes.insert(key, (None, role_arn));
            let after = after(&annotations, &labels);
            self.add(address, vec![Action::Create], vec!["not present".into()], None, Some(after));
            return;
        };
        let entry = format!("the [[service_accounts]] entry for {}/{}", b.namespace, b.name);
        let claim =
            self.claim(&address, kube_ownership(&obs.labels, &obs.annotations, self.names()), b.adopt, &b.span, &entry);
        // irsa compares only the fields it owns: other annotations and labels
        // (Helm's, say) are left alone and are not part of the diff.
        let pick = |m: &StrMap, keys: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            m.iter().filter(|(k, _)| keys.contains_key(*k)).map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        // Annotations irsa wrote and the file no longer names are irsa's to remove.
        let mut mine = pick(&obs.annotations, &annotations);
        for key in &obs.irsa_annotations {
            if let Some(v) = obs.annotations.get(key) {
                mine.insert(key.clone(), v.clone());
            }
        }
        let picked_labels = pick(&obs.labels, &labels);
        if matches!(claim, Claim::Manage)
            && mine == annotations
            && picked_labels == labels
            && obs.namespace == b.namespace
            && obs.name == b.name
        {
            // In sync: what comparing the two models below would find,
            // without building them (most ServiceAccounts of a large stack).
            return;
        }
        // The write depends on the keys it sets or removes, and on nothing
        // else of the object: those are its guard.
        let guard = sa_guard(obs, annotations.keys().chain(mine.keys()), labels.keys());
        let before = obj(json!({
            "namespace": obs.namespace, "name": obs.name,
            "annotations": mine,
            "labels": picked_labels,
        }));
        let after = after(&annotations, &labels);
        let current_arn = obs.annotations.get(markers::ANNOTATION_ROLE_ARN).cloned();
        let changed = changed_keys(Some(&before), Some(&after));
        let mut reasons = Vec::new();
        let actions = match claim {
            Claim::Refuse => return,
            Claim::Adopt(why) => {
                reasons.push(why);
                vec![Action::Adopt]
            }
            Claim::Manage if changed.is_empty() => return,
            Claim::Manage => vec![Action::Update],
        };
        if current_arn.as_deref() != Some(role_arn.as_str()) {
            reasons.push(match &current_arn {
                Some(old) => format!("the role annotation changes from {old}"),
                None => "the role annotation is missing".into(),
            });
            self.role_arn_changes.insert(key, (current_arn, role_arn));
        } else if !changed.is_empty() && reasons.is_empty() {
            reasons.push("annotations or labels differ from the stack file".into());
        }
        self.add(address, actions, reasons, Some(before), Some(after)).guard = guard;
    }

    fn orphaned_service_accounts(&mut self) {
        let names = self.names();
        let wanted: HashSet<(Option<&str>, &str, &str)> =
            self.d.bindings.iter().map(|b| (b.cluster.as_deref(), b.namespace.as_str(), b.name.as_str())).collect();
        let d: &Desired = self.d;
        // Only the clusters the file names are read (and so planned).
        let states =
            d.clusters.iter().filter_map(|c| Some((c.key.as_deref(), self.o.cluster_state(c.key.as_deref())?)));
        let service_accounts: Vec<(Option<&str>, &ObservedServiceAccount)> =
            states.flat_map(|(k, state)| state.service_accounts.iter().map(move |sa| (k, sa))).collect();
        for (cluster, sa) in service_accounts {
            if wanted.contains(&(cluster, sa.namespace.as_str(), sa.name.as_str()))
                || !kube_ownership(&sa.labels, &sa.annotations, names).is_mine()
            {
                continue;
            }
            let address = Address::service_account(cluster, &sa.namespace, &sa.name);
            let made_by_irsa = sa.labels.get(markers::LABEL_MANAGED_BY).is_some_and(|m| m == markers::MANAGED_BY);
            if !made_by_irsa {
                // Adopted from another tool: give it back as it was, without
                // irsa's annotations, rather than delete what is not irsa's.
                let irsa_keys = [markers::ANNOTATION_ROLE_ARN, markers::ANNOTATION_STACK];
                let mine: BTreeMap<&String, &String> =
                    sa.annotations.iter().filter(|(k, _)| irsa_keys.contains(&k.as_str())).collect();
                let guard = sa_guard(sa, mine.keys().copied(), std::iter::empty());
                let before = obj(json!({ "namespace": sa.namespace, "name": sa.name, "annotations": mine }));
                let after = obj(json!({ "namespace": sa.namespace, "name": sa.name, "annotations": {} }));
                let reason = "no longer in the stack file; it was adopted, so only irsa's annotations are removed";
                self.add(address, vec![Action::Update], vec![reason.into()], Some(before), Some(after)).guard = guard;
                continue;
            }
            let before = obj(
                json!({ "namespace": sa.namespace, "name": sa.name, "annotations": sa.annotations, "labels": sa.labels }),
            );
            // The delete was decided on the markers that make it this
            // stack's, irsa's own: the delete goes ahead while they hold.
            let (stack_key, label_key) = (markers::ANNOTATION_STACK.to_owned(), markers::LABEL_MANAGED_BY.to_owned());
            self.add(
                address.clone(),
                vec![Action::Delete],
                vec!["no longer in the stack file".into()],
                Some(before),
                None,
            )
            .guard = sa_guard(sa, [&stack_key].into_iter(), [&label_key].into_iter());
            for dep in self.o.deployments_running_as(cluster, &sa.namespace, &sa.name) {
                self.warn(
                    Some(address.clone()),
                    format!(
                        "{} still runs as service account {}: its new pods will fail to start until it uses another",
                        Address::deployment(cluster, &dep.namespace, &dep.name),
                        sa.name
                    ),
                );
            }
        }
    }

    fn deployment(&mut self, b: &Binding, name: &str) {
        let address = Address::deployment(b.cluster.as_deref(), &b.namespace, name);
        let Some(dep) = self.o.deployment(b.cluster.as_deref(), &b.namespace, name) else {
            self.warn(
                Some(address),
                format!(
                    "deployment {}/{name} does not exist: nothing to point at service account {}",
                    b.namespace, b.name
                ),
            );
            return;
        };
        let current = dep.effective_service_account();
        // Both writes depend on the service account the template names, as
        // read (absent reads as `null`, not as `default`: a JSON Patch test
        // tells the two apart).
        let mut guard = Map::from_iter([(guard::SERVICE_ACCOUNT_NAME.to_owned(), json!(dep.service_account_name))]);
        if current != b.name {
            let before = obj(json!({ "namespace": dep.namespace, "name": dep.name, "service_account_name": current }));
            let after = obj(json!({ "namespace": dep.namespace, "name": dep.name, "service_account_name": b.name }));
            let reason = format!("the Deployment runs as service account {current}, not {}", b.name);
            self.add(address, vec![Action::Update], vec![reason], Some(before), Some(after)).guard = guard;
            return;
        }
        let sa_key = (b.cluster.clone(), b.namespace.clone(), b.name.clone());
        if let Some(why) = dep.rollout.under_way() {
            // Its pods are being replaced: those of the old ReplicaSets are
            // on their way out, not stale, and a restart now would start the
            // rollout over. What the new pods hold is known once it settles.
            let later = if self.role_arn_changes.contains_key(&sa_key) {
                format!("; pods it starts before {} has its new role will need a restart then", Self::sa_address(b))
            } else {
                String::new()
            };
            self.warn(
                Some(address),
                format!(
                    "deployment {}/{name} is rolling out ({why}): no restart is planned while its pods are being replaced; plan again once the rollout settles{later}",
                    b.namespace
                ),
            );
            return;
        }
        // Only pods running as the bound service account hold its
        // credentials; any other pod belongs to an older template.
        let pods: Vec<&ObservedPod> =
            dep.pods.iter().filter(|p| p.service_account_name.as_deref().unwrap_or("default") == b.name).collect();
        if pods.is_empty() {
            return;
        }
        let role_arn = self.d.binding_role_arn(b);
        let arns = |p: &ObservedPod| -> Vec<String> {
            p.containers.iter().filter_map(|c| c.aws_role_arn.clone()).collect::<BTreeSet<_>>().into_iter().collect()
        };
        // A pod already running with the wanted role in every container
        // (the annotation was edited by hand after it started) needs no restart.
        let current_pod = |p: &ObservedPod| {
            !p.containers.is_empty()
                && p.containers.iter().all(|c| c.aws_role_arn.as_deref() == Some(role_arn.as_str()))
        };
        let mut reasons = Vec::new();
        // What the stale pods hold ("none", or the role ARNs they carry):
        // the facts the restart depends on, which rescaling, pod names
        // and unrelated rollouts leave alone.
        let mut holdings = BTreeSet::new();
        let mut hold = |p: &ObservedPod| {
            let held = arns(p);
            if held.is_empty() {
                holdings.insert("none".to_owned());
            }
            holdings.extend(held.into_iter().filter(|a| *a != role_arn));
        };
        if let Some((old, new)) = self.role_arn_changes.get(&sa_key) {
            let stale: Vec<&&ObservedPod> = pods.iter().filter(|p| !current_pod(p)).collect();
            if stale.is_empty() {
                return;
            }
            stale.iter().for_each(|p| hold(p));
            reasons.push(match old {
                Some(old) => format!("the role of {} changes from {old} to {new}: running pods keep the old credentials until they restart", Self::sa_address(b)),
                None => format!("{} gets the role {new}: running pods have no credentials until they restart", Self::sa_address(b)),
            });
        } else {
            let set_at =
                self.o.service_account(b.cluster.as_deref(), &b.namespace, &b.name).and_then(|s| s.role_arn_set_at);
            let (mut other_role, mut older, mut same_second, mut uninjected) = (vec![], vec![], vec![], vec![]);
            for pod in &pods {
                let held = arns(pod);
                if held.iter().any(|a| *a != role_arn) {
                    other_role.push(pod.name.clone());
                    hold(pod);
                } else if held.is_empty() {
                    // creationTimestamp and managedFields times are whole
                    // seconds: only a pod of an earlier second surely
                    // started before the annotation. In the same second the
                    // missing AWS_ROLE_ARN decides: the pod started before
                    // it, or before the webhook saw it; a restart helps
                    // either way.
                    match set_at.map(|t| pod.created_at.as_second().cmp(&t.as_second())) {
                        Some(std::cmp::Ordering::Less) => older.push(pod.name.clone()),
                        Some(std::cmp::Ordering::Equal) => same_second.push(pod.name.clone()),
                        _ => {
                            uninjected.push(pod.name.clone());
                            continue;
                        }
                    }
                    hold(pod);
                }
            }
            if !other_role.is_empty() {
                reasons.push(format!(
                    "pod{} {} run{} with another AWS_ROLE_ARN than {role_arn}",
                    plural(&other_role),
                    list(&other_role),
                    if other_role.len() == 1 { "s" } else { "" }
                ));
            }
            let have = |pods: &[String]| if pods.len() == 1 { "has" } else { "have" };
            if let (false, Some(t)) = (older.is_empty(), set_at) {
                reasons.push(format!(
                    "pod{} {} started before the role annotation was set ({t}) and {} no credentials",
                    plural(&older),
                    list(&older),
                    have(&older)
                ));
            }
            if let (false, Some(t)) = (same_second.is_empty(), set_at) {
                reasons.push(format!(
                    "pod{} {} started in the same second as the role annotation was set ({t}) and {} no credentials",
                    plural(&same_second),
                    list(&same_second),
                    have(&same_second)
                ));
            }
            if !uninjected.is_empty() {
                self.warn(
                    Some(address.clone()),
                    format!(
                        "pod{} {} started after the role annotation was set but carr{} no AWS_ROLE_ARN: the EKS pod identity webhook is missing or skipped {}; a restart would not help",
                        plural(&uninjected),
                        list(&uninjected),
                        if uninjected.len() == 1 { "ies" } else { "y" },
                        if uninjected.len() == 1 { "it" } else { "them" }
                    ),
                );
            }
        }
        if !reasons.is_empty() {
            let after = obj(json!({ "namespace": dep.namespace, "name": dep.name, "service_account_name": current }));
            // `before` is what a saved restart depends on: the service
            // account (above) and what its stale pods hold.
            let mut before = after.clone();
            before.insert("stale_credentials", json!(holdings));
            // A restart someone else made since the read is a rollout
            // already under way: this one must not pile on it.
            guard.insert(guard::template_annotation(markers::ANNOTATION_RESTARTED_AT), json!(dep.restarted_at));
            self.add(address, vec![Action::Restart], reasons, Some(before), Some(after)).guard = guard;
        }
    }

    fn finish(mut self) -> Result<Plan, Vec<PlanError>> {
        if self.changes.is_empty() && self.opts.targets.is_empty() {
            // Nothing to order: the graph of every declared resource (a
            // tenth of planning an in-sync stack) would only be thrown away.
            return Ok(self.into_plan(Vec::new(), None));
        }
        let graph = Graph::build(self.d, self.changes.iter().map(|c| &c.address));
        let order = graph.order_nodes().map_err(|e| {
            vec![PlanError {
                address: Some(e.0.clone()),
                span: None,
                message: e.to_string(),
                help: "this is a bug in irsa".into(),
            }]
        })?;
        let selected = if self.opts.targets.is_empty() {
            None
        } else {
            let unmatched: Vec<&String> = self
                .opts
                .targets
                .iter()
                .filter(|t| !order.iter().any(|&i| graph.address(i).matches_prefix(t)))
                .collect();
            // A typo that selects nothing must not pass for "no changes";
            // a standard set of prefixes (oidc/, policy/, role/) used on a
            // stack without one of those kinds is fine.
            if unmatched.len() == self.opts.targets.len() {
                return Err(unmatched
                    .into_iter()
                    .map(|t| PlanError {
                        address: None,
                        span: None,
                        message: format!("--target {t} matches no resource of the stack"),
                        help: "a target is an address prefix such as role/backend-messages or sa/backend/; `irsa graph FILE` lists them".into(),
                    })
                    .collect());
            }
            for t in unmatched {
                self.warnings
                    .push(Warning { address: None, message: format!("--target {t} matches no resource of the stack") });
            }
            Some(graph.targeted(&self.opts.targets))
        };
        // The changes in order, and each one's dependencies as node numbers
        // (change `i` is node `i`: the graph's first nodes are the changes'
        // addresses), while the graph borrows the changes' addresses. The
        // graph goes before the dependencies become addresses: both at once
        // were the peak of a large plan.
        let n = self.changes.len();
        let (mut positions, mut deps, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        for i in order {
            if i < n && selected.as_ref().is_none_or(|s| s.contains(&self.changes[i].address)) {
                positions.push(i);
                graph.dependency_nodes(i, &mut deps);
                ends.push(deps.len());
            }
        }
        let own = graph.into_own();
        self.change_at = HashTable::new();
        let mut changes: Vec<Option<Box<Change>>> = std::mem::take(&mut self.changes).into_iter().map(Some).collect();
        // The boxes move, not the changes: a list of whole changes beside
        // the boxes held every change twice at the peak of a large plan.
        let mut at = vec![usize::MAX; n];
        let mut ordered: Vec<Box<Change>> = Vec::with_capacity(positions.len());
        for i in positions {
            if let Some(c) = changes[i].take() {
                at[i] = ordered.len();
                ordered.push(c);
            }
        }
        let mut start = 0;
        for (p, end) in ends.into_iter().enumerate() {
            let depends_on: Vec<Address> = deps[start..end]
                .iter()
                .map(|&d| {
                    let d = d as usize;
                    match changes.get(d) {
                        None => own[d - n].clone(),
                        Some(Some(c)) => c.address.clone(),
                        Some(None) => ordered[at[d]].address.clone(),
                    }
                })
                .collect();
            ordered[p].depends_on = depends_on;
            start = end;
        }
        drop(changes);
        Ok(self.into_plan(ordered, selected.as_ref()))
    }

    /// The plan of `ordered` changes, with the warnings about what `selected`
    /// (the targeted addresses, `None`: all) holds.
    #[allow(clippy::vec_box)]
    fn into_plan(self, mut ordered: Vec<Box<Change>>, selected: Option<&BTreeSet<Address>>) -> Plan {
        let warnings = match selected {
            None => self.warnings,
            Some(s) => self.warnings.into_iter().filter(|w| w.address.as_ref().is_none_or(|a| s.contains(a))).collect(),
        };
        let findings = super::review::review_all(&self.d.stack.name, &mut ordered);
        Plan {
            format_version: FORMAT_VERSION.into(),
            irsa_version: env!("CARGO_PKG_VERSION").into(),
            stack: self.d.stack.name.clone(),
            refresh: self.opts.refresh.clone(),
            summary: Summary::of(&ordered),
            changes: ordered,
            warnings,
            findings,
            targets: self.opts.targets.clone(),
        }
    }
}

/// Guards on the annotation and label keys a ServiceAccount write sets,
/// removes or relies on: each as it was read (`null`: absent).
fn sa_guard<'k>(
    sa: &ObservedServiceAccount,
    annotations: impl Iterator<Item = &'k String>,
    labels: impl Iterator<Item = &'k String>,
) -> Map<String, Value> {
    let mut guard = Map::new();
    for key in annotations {
        guard.insert(guard::annotation(key), json!(sa.annotations.get(key)));
    }
    for key in labels {
        guard.insert(guard::label(key), json!(sa.labels.get(key)));
    }
    guard
}

/// A resource's tags without those AWS itself sets (`aws:cloudformation:*`
/// on what CloudFormation made): no one can set or remove them, so they are
/// never a difference from the stack file, which cannot name them.
fn user_tags(tags: &StrMap) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, _)| !k.to_ascii_lowercase().starts_with("aws:"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A value as a stack file would write it.
fn view_value(v: &Value) -> String {
    match v {
        Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

fn by(manager: &Option<String>) -> String {
    match manager {
        Some(m) => format!(" (managed by {m})"),
        None => String::new(),
    }
}

fn plural<T>(items: &[T]) -> &'static str {
    if items.len() == 1 { "" } else { "s" }
}

/// Which of irsa's per-cluster statements (by Sid) a trust change adds,
/// brings up to date and removes, for a reviewer of a stack of several clusters.
fn sid_changes(had: &[Value], wanted: &[Value]) -> String {
    let sid_of = |st: &Value| st.get("Sid").and_then(Value::as_str).unwrap_or_default().to_owned();
    let before: BTreeMap<String, &Value> = had.iter().map(|st| (sid_of(st), st)).collect();
    let after: BTreeMap<String, &Value> = wanted.iter().map(|st| (sid_of(st), st)).collect();
    let added: Vec<&str> = after.keys().filter(|k| !before.contains_key(*k)).map(String::as_str).collect();
    let changed: Vec<&str> = after
        .iter()
        .filter(|(k, st)| before.get(*k).is_some_and(|b| !trust::same_statement(b, st)))
        .map(|(k, _)| k.as_str())
        .collect();
    let removed: Vec<&str> = before.keys().filter(|k| !after.contains_key(*k)).map(String::as_str).collect();
    let mut parts = Vec::new();
    for (what, sids) in [("added", added), ("brought up to date", changed), ("removed", removed)] {
        if !sids.is_empty() {
            parts.push(format!("{} {what}", sids.join(", ")));
        }
    }
    if parts.is_empty() {
        parts.push("written again with their Sids".into());
    }
    parts.join("; ")
}

/// Say what a trust policy change does, the part reviewers care most about.
fn trust_reason(current: &PolicyDocument, role: &str) -> String {
    if current.statements().is_empty() {
        format!("the trust policy of role {role} is empty")
    } else {
        "the trust policy differs from the one generated from the bound service accounts".into()
    }
}
