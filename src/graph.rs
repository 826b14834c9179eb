//! The dependency graph over resource addresses.
//!
//! `oidc → role → attach/inline`, `policy → attach`, `role → sa → deploy`.
//! Creates and updates follow it forwards, deletes backwards. Edges come from
//! one function, [`Graph::build`], so every rule about order lives here.

use std::collections::{BTreeMap, BTreeSet};

use std::hash::BuildHasher as _;

use foldhash::HashSet;
use hashbrown::HashTable;
use std::fmt::Write as _;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::model::Address;
use crate::model::desired::{Desired, Role};

/// A cycle: a bug in the edge rules, never a user error.
#[derive(Debug, thiserror::Error)]
#[error("internal error: the dependency graph has a cycle through {0}; please report this")]
pub struct CycleError(pub Address);

#[derive(Debug, Clone, Default)]
pub struct Graph {
    g: DiGraph<Address, ()>,
    /// A hash index, not a B-tree: building the graph looks every address
    /// up several times, and a B-tree compares addresses (long shared
    /// prefixes) at every level. What needs address order sorts. Its entries
    /// are node indexes, compared through the node's address, so that the
    /// graph holds each address once (a map keyed by a copy was an eighth of
    /// a 10,000-binding plan's memory).
    index: HashTable<NodeIndex>,
    hasher: foldhash::fast::RandomState,
    /// The edges already added: `find_edge` walks the source's whole edge
    /// list, and the OIDC provider has an edge to every role, so checking
    /// with it made building the graph quadratic in the number of roles.
    edges: HashSet<(NodeIndex, NodeIndex)>,
}

impl Graph {
    /// The graph of everything `desired` declares, plus `extra` addresses
    /// (resources that exist and will be deleted), wired by the rules above.
    pub fn build(desired: &Desired, extra: impl IntoIterator<Item = Address>) -> Graph {
        let mut graph = Graph::default();
        // Room for every declared node at once: grown by doubling, the node
        // list of a large stack ended up to twice the size it needs.
        let declared = desired.clusters.len()
            + desired.policies.len()
            + desired.roles.len()
            + desired
                .roles
                .values()
                .map(|r| if let Role::Owned(r) = r { r.policies.len() + r.inline.len() } else { 0 })
                .sum::<usize>()
            + desired.bindings.iter().map(|b| 1 + b.deployments.len()).sum::<usize>();
        graph.g.reserve_nodes(declared);
        graph.index.reserve(declared, |_| unreachable!("an empty table has nothing to rehash"));
        // Every cluster's provider comes before every role: IAM refuses a
        // trust policy that names a provider it does not have.
        let providers: Vec<Address> = desired.clusters.iter().map(|c| Address::oidc(c.address_name())).collect();
        for oidc in &providers {
            graph.node(oidc);
        }
        for name in desired.policies.keys() {
            graph.node(&Address::policy(name));
        }
        for (key, role) in &desired.roles {
            let role_addr = Address::role(key);
            for oidc in &providers {
                graph.edge(oidc, &role_addr);
            }
            if let Role::Owned(role) = role {
                for p in &role.policies {
                    graph.node(&Address::attach(key, p.address_name()));
                }
                for name in role.inline.keys() {
                    graph.node(&Address::inline(key, name));
                }
            }
        }
        for b in &desired.bindings {
            let cluster = b.cluster.as_deref();
            let sa = Address::service_account(cluster, &b.namespace, &b.name);
            graph.edge(&Address::role(&b.role), &sa);
            for d in &b.deployments {
                graph.edge(&sa, &Address::deployment(cluster, &b.namespace, d));
            }
        }
        for address in extra {
            // An attachment or inline policy implies its role, which must be wired too.
            if let Address::Attach { role, .. } | Address::Inline { role, .. } = &address {
                graph.node(&Address::role(role));
            }
            graph.node(&address);
        }
        // Structural edges hold for declared and extra nodes alike.
        // In node order: the order edges are added in is not observable
        // (every reader sorts, or walks a sorted frontier).
        let nodes: Vec<Address> = graph.g.node_weights().cloned().collect();
        for address in &nodes {
            match address {
                Address::Attach { role, policy } => {
                    graph.edge(&Address::role(role), address);
                    let policy = Address::policy(policy);
                    if graph.contains(&policy) {
                        graph.edge(&policy, address);
                    }
                }
                Address::Inline { role, .. } => graph.edge(&Address::role(role), address),
                Address::Role { .. } => {
                    for oidc in &providers {
                        graph.edge(oidc, address);
                    }
                }
                _ => {}
            }
        }
        graph
    }

    fn find(&self, a: &Address) -> Option<NodeIndex> {
        self.index.find(self.hasher.hash_one(a), |&i| self.g[i] == *a).copied()
    }

    fn node(&mut self, a: &Address) -> NodeIndex {
        let hash = self.hasher.hash_one(a);
        let Graph { g, index, hasher, .. } = self;
        match index.entry(hash, |&i| g[i] == *a, |&i| hasher.hash_one(&g[i])) {
            hashbrown::hash_table::Entry::Occupied(at) => *at.get(),
            hashbrown::hash_table::Entry::Vacant(slot) => {
                let i = g.add_node(a.clone());
                slot.insert(i);
                i
            }
        }
    }

    fn edge(&mut self, from: &Address, to: &Address) {
        let (f, t) = (self.node(from), self.node(to));
        if self.edges.insert((f, t)) {
            self.g.add_edge(f, t, ());
        }
    }

    pub fn contains(&self, a: &Address) -> bool {
        self.find(a).is_some()
    }

    /// Every address, dependencies first; ties broken by address so that the
    /// order is stable from run to run (Kahn's algorithm over a sorted frontier).
    pub fn order(&self) -> Result<Vec<&Address>, CycleError> {
        // Counted per node index, not per address: one vector slot per node
        // instead of a map lookup (with address comparisons) per edge.
        let mut indegree: Vec<usize> = vec![0; self.g.node_count()];
        for e in self.g.edge_indices() {
            if let Some((_, t)) = self.g.edge_endpoints(e) {
                indegree[t.index()] += 1;
            }
        }
        let mut ready: BTreeSet<(&Address, NodeIndex)> =
            self.g.node_indices().filter(|i| indegree[i.index()] == 0).map(|i| (&self.g[i], i)).collect();
        let mut out = Vec::with_capacity(self.g.node_count());
        while let Some((a, i)) = ready.pop_first() {
            out.push(a);
            for n in self.g.neighbors_directed(i, Direction::Outgoing) {
                let d = &mut indegree[n.index()];
                *d -= 1;
                if *d == 0 {
                    ready.insert((&self.g[n], n));
                }
            }
        }
        if out.len() < self.g.node_count() {
            let stuck = self.g.node_indices().filter(|i| indegree[i.index()] > 0).map(|i| &self.g[i]).min().cloned();
            return Err(CycleError(stuck.expect("a node is left when the order is short")));
        }
        Ok(out)
    }

    /// The direct dependencies of an address.
    pub fn dependencies(&self, a: &Address) -> Vec<Address> {
        let Some(i) = self.find(a) else { return Vec::new() };
        // Counted first: the neighbour walk has no size hint, and a vector
        // grown from empty holds room for four addresses where most changes
        // have one or two (a sixth of a large plan's memory).
        let mut deps: Vec<Address> = Vec::with_capacity(self.g.neighbors_directed(i, Direction::Incoming).count());
        deps.extend(self.g.neighbors_directed(i, Direction::Incoming).map(|n| self.g[n].clone()));
        deps.sort();
        deps
    }

    /// The addresses selected by `--target` prefixes and everything they
    /// depend on, transitively: a target cannot be applied without them.
    pub fn targeted(&self, prefixes: &[String]) -> BTreeSet<Address> {
        let mut out = BTreeSet::new();
        let mut stack: Vec<NodeIndex> =
            self.g.node_indices().filter(|&i| prefixes.iter().any(|p| self.g[i].matches_prefix(p))).collect();
        while let Some(i) = stack.pop() {
            if out.insert(self.g[i].clone()) {
                stack.extend(self.g.neighbors_directed(i, Direction::Incoming));
            }
        }
        out
    }

    /// All edges as (from, to), sorted.
    pub fn edges(&self) -> Vec<(Address, Address)> {
        let mut edges: Vec<(Address, Address)> = self
            .g
            .edge_indices()
            .filter_map(|e| self.g.edge_endpoints(e))
            .map(|(f, t)| (self.g[f].clone(), self.g[t].clone()))
            .collect();
        edges.sort();
        edges
    }

    /// Graphviz DOT.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph irsa {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n");
        for a in self.sorted_nodes() {
            let _ = writeln!(out, "  \"{a}\";");
        }
        for (f, t) in self.edges() {
            let _ = writeln!(out, "  \"{f}\" -> \"{t}\";");
        }
        out.push_str("}\n");
        out
    }

    /// A mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        mermaid(self.sorted_nodes(), &self.edges())
    }

    /// Every address, in address order.
    fn sorted_nodes(&self) -> Vec<&Address> {
        let mut nodes: Vec<&Address> = self.g.node_weights().collect();
        nodes.sort_unstable();
        nodes
    }
}

/// A mermaid flowchart of `nodes` and the `edges` between them; node ids are
/// positional because mermaid ids cannot hold `/` or `:`.
pub fn mermaid<'a>(nodes: impl IntoIterator<Item = &'a Address>, edges: &[(Address, Address)]) -> String {
    let ids: BTreeMap<&Address, usize> = nodes.into_iter().enumerate().map(|(i, a)| (a, i)).collect();
    let mut out = String::from("flowchart LR\n");
    for (a, i) in &ids {
        let _ = writeln!(out, "  n{i}[\"{a}\"]");
    }
    for (f, t) in edges {
        if let (Some(f), Some(t)) = (ids.get(f), ids.get(t)) {
            let _ = writeln!(out, "  n{f} --> n{t}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const DOC: &str =
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}"#;

    fn desired() -> Desired {
        let text = format!(
            r#"version = 1
[cluster]
name = "c"
region = "us-east-1"
account_id = "123456789012"
oidc_issuer = "https://oidc.example.com/id/X"
[policies.p]
document = '{DOC}'
[roles.r]
policies = ["p"]
[roles.r.inline.i]
document = '{DOC}'
[roles.shared]
arn = "arn:aws:iam::123456789012:role/Shared"
[[service_accounts]]
namespace = "ns"
name = "a"
role = "r"
workloads = ["deployment/web", "deployment/jobs"]
[[service_accounts]]
namespace = "ns"
name = "b"
role = "shared"
"#
        );
        crate::config::parse(Path::new("s.toml"), text).unwrap()
    }

    fn names(v: &[impl ToString]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn order_puts_every_dependency_first_and_is_stable() {
        let g = Graph::build(&desired(), []);
        let order = g.order().unwrap();
        assert_eq!(
            names(&order),
            [
                "oidc/c",
                "policy/p",
                "role/r",
                "role/shared",
                "role/r/attach/p",
                "role/r/inline/i",
                "sa/ns/a",
                "sa/ns/b",
                "deploy/ns/jobs",
                "deploy/ns/web",
            ]
        );
        for (from, to) in g.edges() {
            let (f, t) = (order.iter().position(|a| **a == from), order.iter().position(|a| **a == to));
            assert!(f < t, "{from} must come before {to}");
        }
        assert_eq!(names(&g.order().unwrap()), names(&order));
    }

    #[test]
    fn extra_addresses_get_structural_edges() {
        let g = Graph::build(&desired(), [Address::attach("gone", "p"), Address::inline("gone", "x")]);
        assert_eq!(names(&g.dependencies(&Address::attach("gone", "p"))), ["policy/p", "role/gone"]);
        assert_eq!(names(&g.dependencies(&Address::role("gone"))), ["oidc/c"]);
    }

    #[test]
    fn every_edge_is_added_once() {
        // The planner passes every changed address as extra, declared ones
        // too: their structural edges exist already and must not double.
        let extra = [Address::attach("r", "p"), Address::inline("r", "i"), Address::role("r"), Address::role("gone")];
        let g = Graph::build(&desired(), extra);
        let edges = g.edges();
        let mut unique = edges.clone();
        unique.dedup();
        assert_eq!(edges, unique);
        assert_eq!(names(&g.dependencies(&Address::attach("r", "p"))), ["policy/p", "role/r"]);
        assert_eq!(names(&g.dependencies(&Address::role("gone"))), ["oidc/c"]);
        assert_eq!(g.edges().len(), Graph::build(&desired(), [Address::role("gone")]).edges().len());
    }

    #[test]
    fn order_is_kahns_over_sorted_addresses() {
        // The order as it was computed before indegrees were counted per
        // node index: a map from address to indegree, the least ready
        // address first.
        let g = Graph::build(&desired(), [Address::attach("gone", "p"), Address::inline("gone", "x")]);
        let edges = g.edges();
        let mut indegree: BTreeMap<Address, usize> = g.g.node_weights().map(|a| (a.clone(), 0)).collect();
        for (_, t) in &edges {
            *indegree.get_mut(t).unwrap() += 1;
        }
        let mut ready: BTreeSet<Address> = indegree.iter().filter(|(_, d)| **d == 0).map(|(a, _)| a.clone()).collect();
        let mut expected = Vec::new();
        while let Some(a) = ready.pop_first() {
            for (_, t) in edges.iter().filter(|(f, _)| *f == a) {
                let d = indegree.get_mut(t).unwrap();
                *d -= 1;
                if *d == 0 {
                    ready.insert(t.clone());
                }
            }
            expected.push(a);
        }
        assert_eq!(g.order().unwrap(), expected.iter().collect::<Vec<_>>());
    }

    #[test]
    fn targets_pull_in_what_they_depend_on() {
        let g = Graph::build(&desired(), []);
        let t: Vec<Address> = g.targeted(&["deploy/ns/web".into()]).into_iter().collect();
        assert_eq!(names(&t), ["oidc/c", "role/r", "sa/ns/a", "deploy/ns/web"]);
    }

    #[test]
    fn dot_and_mermaid_name_every_edge() {
        let g = Graph::build(&desired(), []);
        let dot = g.to_dot();
        assert!(dot.starts_with("digraph irsa {"));
        assert!(dot.contains("\"role/r\" -> \"sa/ns/a\";"));
        assert_eq!(dot.matches(" -> ").count(), g.edges().len());
        let mermaid = g.to_mermaid();
        assert!(mermaid.starts_with("flowchart LR\n"));
        assert!(mermaid.contains("[\"sa/ns/a\"]"));
        assert_eq!(mermaid.matches(" --> ").count(), g.edges().len());
    }
}
