//! The dependency graph over resource addresses.
//!
//! `oidc → role → attach/inline`, `policy → attach`, `role → sa → deploy`.
//! Creates and updates follow it forwards, deletes backwards. Edges come from
//! one function, [`Graph::build`], so every rule about order lives here.

use std::collections::{BTreeMap, BTreeSet};

use std::hash::BuildHasher as _;

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

/// The graph holds no copy of an address its caller holds: a node is a
/// position among the caller's addresses (`extra`, the plan's changes) and
/// then the graph's own, for the declared resources no caller address stands
/// for. A node that owned its address held every change's address twice at
/// the peak of a large plan (a tenth of it).
#[derive(Debug, Clone, Default)]
pub struct Graph<'a> {
    g: DiGraph<(), ()>,
    /// Node `i` for `i < extra.len()`; the caller's addresses.
    extra: Vec<&'a Address>,
    /// Node `extra.len() + j`: the declared addresses not among `extra`.
    own: Vec<Address>,
    /// A hash index, not a B-tree: building the graph looks every address
    /// up several times, and a B-tree compares addresses (long shared
    /// prefixes) at every level. What needs address order sorts. Its entries
    /// are node indexes, compared through the node's address.
    index: HashTable<NodeIndex>,
    hasher: foldhash::fast::RandomState,
}

impl<'a> Graph<'a> {
    /// The graph of everything `desired` declares, plus `extra` addresses
    /// (resources that exist and will be deleted, or any the caller holds;
    /// distinct),
    /// wired by the rules above.
    pub fn build(desired: &Desired, extra: impl IntoIterator<Item = &'a Address>) -> Graph<'a> {
        let mut graph = Graph { extra: extra.into_iter().collect(), ..Graph::default() };
        // Room for every node at once (the caller's and the declared ones,
        // which are mostly the same): grown by doubling, the node list and
        // the index of a large stack were rehashed and copied at twice the
        // size they need.
        let declared = desired.clusters.len()
            + desired.policies.len()
            + desired.roles.len()
            + desired
                .roles
                .values()
                .map(|r| if let Role::Owned(r) = r { r.policies.len() + r.inline.len() } else { 0 })
                .sum::<usize>()
            + desired.bindings.iter().map(|b| 1 + b.deployments.len()).sum::<usize>();
        let room = declared.max(graph.extra.len());
        graph.g.reserve_exact_nodes(room);
        graph.index.reserve(room, |_| unreachable!("an empty table has nothing to rehash"));
        for _ in 0..graph.extra.len() {
            debug_assert!(graph.find(graph.extra[graph.g.node_count()]).is_none(), "extra addresses are distinct");
            graph.add_next();
        }
        // Every declared resource, and the role each extra attachment or
        // inline policy implies; what `extra` holds already is not added again.
        // Each is looked up as it is made, not collected first: a list of
        // every declared address was a tenth of a large plan's peak.
        let declare = |graph: &mut Graph<'a>, a: Address| {
            if graph.find(&a).is_none() {
                graph.own.push(a);
                graph.add_next();
            }
        };
        let providers: Vec<Address> = desired.clusters.iter().map(|c| Address::oidc(c.address_name())).collect();
        for oidc in &providers {
            declare(&mut graph, oidc.clone());
        }
        for name in desired.policies.keys() {
            declare(&mut graph, Address::policy(name));
        }
        for (key, role) in &desired.roles {
            declare(&mut graph, Address::role(key));
            if let Role::Owned(role) = role {
                for p in &role.policies {
                    declare(&mut graph, Address::attach(key, p.address_name()));
                }
                for name in role.inline.keys() {
                    declare(&mut graph, Address::inline(key, name));
                }
            }
        }
        for b in &desired.bindings {
            let cluster = b.cluster.as_deref();
            declare(&mut graph, Address::service_account(cluster, &b.namespace, &b.name));
            for d in &b.deployments {
                declare(&mut graph, Address::deployment(cluster, &b.namespace, d));
            }
        }
        for i in 0..graph.extra.len() {
            if let Address::Attach { role, .. } | Address::Inline { role, .. } = graph.extra[i] {
                declare(&mut graph, Address::role(role));
            }
        }
        graph.own.shrink_to_fit();
        // Edges: collected, sorted and deduplicated, then added. The same
        // edge comes from more than one rule (a declared role is also a role
        // node), and `find_edge` walks the source's whole edge list: the OIDC
        // provider has an edge to every role. The order edges are added in
        // is not observable: every reader sorts, or walks a sorted frontier.
        let mut edges: Vec<(NodeIndex, NodeIndex)> = Vec::new();
        let at = |graph: &Graph<'_>, a: &Address| graph.find(a).expect("every endpoint is a node");
        for b in &desired.bindings {
            let cluster = b.cluster.as_deref();
            let sa = at(&graph, &Address::service_account(cluster, &b.namespace, &b.name));
            edges.push((at(&graph, &Address::role(&b.role)), sa));
            for d in &b.deployments {
                edges.push((sa, at(&graph, &Address::deployment(cluster, &b.namespace, d))));
            }
        }
        let oidc: Vec<NodeIndex> = providers.iter().map(|p| at(&graph, p)).collect();
        // Structural edges hold for declared and extra nodes alike.
        for i in graph.g.node_indices() {
            match graph.at(i) {
                Address::Attach { role, policy } => {
                    edges.push((at(&graph, &Address::role(role)), i));
                    if let Some(p) = graph.find(&Address::policy(policy)) {
                        edges.push((p, i));
                    }
                }
                Address::Inline { role, .. } => edges.push((at(&graph, &Address::role(role)), i)),
                Address::Role { .. } => edges.extend(oidc.iter().map(|&o| (o, i))),
                _ => {}
            }
        }
        edges.sort_unstable();
        edges.dedup();
        graph.g.reserve_exact_edges(edges.len());
        for (f, t) in edges {
            graph.g.add_edge(f, t, ());
        }
        graph
    }

    /// The address of node `i`.
    fn at(&self, i: NodeIndex) -> &Address {
        address(&self.extra, &self.own, i)
    }

    fn find(&self, a: &Address) -> Option<NodeIndex> {
        self.index.find(self.hasher.hash_one(a), |&i| self.at(i) == a).copied()
    }

    /// Adds the next node, the address at the next position, to the graph
    /// and its index. The caller has checked the address is not a node yet.
    fn add_next(&mut self) {
        let n = self.g.add_node(());
        let hash = self.hasher.hash_one(self.at(n));
        let Graph { index, hasher, extra, own, .. } = self;
        index.insert_unique(hash, n, |&i| hasher.hash_one(address(extra, own, i)));
    }

    pub fn contains(&self, a: &Address) -> bool {
        self.find(a).is_some()
    }

    /// Every address, dependencies first; ties broken by address so that the
    /// order is stable from run to run (Kahn's algorithm over a sorted frontier).
    pub fn order(&self) -> Result<Vec<&Address>, CycleError> {
        Ok(self.order_nodes()?.into_iter().map(|i| self.address(i)).collect())
    }

    /// [`Graph::order`] as node numbers: `i < extra.len()` is the `i`th of
    /// the caller's addresses.
    pub fn order_nodes(&self) -> Result<Vec<usize>, CycleError> {
        // Counted per node index, not per address: one vector slot per node
        // instead of a map lookup (with address comparisons) per edge.
        let mut indegree: Vec<usize> = vec![0; self.g.node_count()];
        for e in self.g.edge_indices() {
            if let Some((_, t)) = self.g.edge_endpoints(e) {
                indegree[t.index()] += 1;
            }
        }
        let mut ready: BTreeSet<(&Address, NodeIndex)> =
            self.g.node_indices().filter(|i| indegree[i.index()] == 0).map(|i| (self.at(i), i)).collect();
        let mut out = Vec::with_capacity(self.g.node_count());
        while let Some((_, i)) = ready.pop_first() {
            out.push(i.index());
            for n in self.g.neighbors_directed(i, Direction::Outgoing) {
                let d = &mut indegree[n.index()];
                *d -= 1;
                if *d == 0 {
                    ready.insert((self.at(n), n));
                }
            }
        }
        if out.len() < self.g.node_count() {
            let stuck = self.g.node_indices().filter(|i| indegree[i.index()] > 0).map(|i| self.at(i)).min().cloned();
            return Err(CycleError(stuck.expect("a node is left when the order is short")));
        }
        Ok(out)
    }

    /// The address of node `i` (see [`Graph::order_nodes`]).
    pub fn address(&self, i: usize) -> &Address {
        self.at(NodeIndex::new(i))
    }

    /// The direct dependencies of an address.
    pub fn dependencies(&self, a: &Address) -> Vec<Address> {
        let Some(i) = self.find(a) else { return Vec::new() };
        let mut deps = Vec::new();
        self.dependency_nodes(i.index(), &mut deps);
        deps.into_iter().map(|n| self.address(n as usize).clone()).collect()
    }

    /// Appends the direct dependencies of node `i` to `out`, as node
    /// numbers in address order.
    pub fn dependency_nodes(&self, i: usize, out: &mut Vec<u32>) {
        let start = out.len();
        out.extend(
            self.g
                .neighbors_directed(NodeIndex::new(i), Direction::Incoming)
                .map(|n| u32::try_from(n.index()).expect("fewer than 2^32 nodes")),
        );
        out[start..].sort_by(|&a, &b| self.address(a as usize).cmp(self.address(b as usize)));
    }

    /// The graph's own addresses, nodes `extra.len()..` (see [`Graph::order_nodes`]),
    /// without the rest of it.
    pub fn into_own(self) -> Vec<Address> {
        self.own
    }

    /// The addresses selected by `--target` prefixes and everything they
    /// depend on, transitively: a target cannot be applied without them.
    pub fn targeted(&self, prefixes: &[String]) -> BTreeSet<Address> {
        let mut out = BTreeSet::new();
        let mut stack: Vec<NodeIndex> =
            self.g.node_indices().filter(|&i| prefixes.iter().any(|p| self.at(i).matches_prefix(p))).collect();
        while let Some(i) = stack.pop() {
            if out.insert(self.at(i).clone()) {
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
            .map(|(f, t)| (self.at(f).clone(), self.at(t).clone()))
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
        let mut nodes: Vec<&Address> = self.g.node_indices().map(|i| self.at(i)).collect();
        nodes.sort_unstable();
        nodes
    }
}

/// Node `i` of a graph whose first nodes are `extra` and the rest `own`.
fn address<'s>(extra: &'s [&Address], own: &'s [Address], i: NodeIndex) -> &'s Address {
    match extra.get(i.index()) {
        Some(a) => a,
        None => &own[i.index() - extra.len()],
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
        let extra = [Address::attach("gone", "p"), Address::inline("gone", "x")];
        let g = Graph::build(&desired(), &extra);
        assert_eq!(names(&g.dependencies(&Address::attach("gone", "p"))), ["policy/p", "role/gone"]);
        assert_eq!(names(&g.dependencies(&Address::role("gone"))), ["oidc/c"]);
    }

    #[test]
    fn every_edge_is_added_once() {
        // The planner passes every changed address as extra, declared ones
        // too: their structural edges exist already and must not double.
        let extra = [Address::attach("r", "p"), Address::inline("r", "i"), Address::role("r"), Address::role("gone")];
        let g = Graph::build(&desired(), &extra);
        let edges = g.edges();
        let mut unique = edges.clone();
        unique.dedup();
        assert_eq!(edges, unique);
        assert_eq!(names(&g.dependencies(&Address::attach("r", "p"))), ["policy/p", "role/r"]);
        assert_eq!(names(&g.dependencies(&Address::role("gone"))), ["oidc/c"]);
        let gone = [Address::role("gone")];
        assert_eq!(g.edges().len(), Graph::build(&desired(), &gone).edges().len());
    }

    #[test]
    fn order_is_kahns_over_sorted_addresses() {
        // The order as it was computed before indegrees were counted per
        // node index: a map from address to indegree, the least ready
        // address first.
        let extra = [Address::attach("gone", "p"), Address::inline("gone", "x")];
        let g = Graph::build(&desired(), &extra);
        let edges = g.edges();
        let mut indegree: BTreeMap<Address, usize> = g.g.node_indices().map(|i| (g.at(i).clone(), 0)).collect();
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
