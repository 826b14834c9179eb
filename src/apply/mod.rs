//! Carrying out a plan.
//!
//! Every change is one or two steps: a removal (a delete, or the delete half
//! of a replace) runs from the leaves up, a make (create, update, adopt,
//! restart) from the roots down, so a replaced policy is detached, deleted,
//! created and attached again, the only order IAM accepts. Independent steps
//! run at once under a bound; a failed step stops only what depends on it,
//! and the next plan shows exactly what is left, since it is made from what
//! exists.

pub mod iam;
pub mod kube;
pub mod retry;
pub mod workflow;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::model::Address;
use crate::model::address::ResourceKind;
use crate::plan::{Action, Change, Plan};

/// One step's outcome, for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Done { address: Address, what: &'static str },
    Failed { address: Address, error: String },
    Skipped { address: Address },
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub steps: Vec<Step>,
}

/// The plan's changes as steps, removals first (leaves up), then the rest
/// (roots down): `(change index, is removal)`.
pub fn steps(plan: &Plan) -> Vec<(usize, bool)> {
    let removals = plan.changes.iter().enumerate().rev().filter(|(_, c)| has_step(c, true)).map(|(i, _)| (i, true));
    let makes = plan.changes.iter().enumerate().filter(|(_, c)| has_step(c, false)).map(|(i, _)| (i, false));
    removals.chain(makes).collect()
}

/// Whether a change has a removal step (`removal`) or a make step.
pub fn has_step(change: &Change, removal: bool) -> bool {
    if removal {
        change.actions.contains(&Action::Delete)
    } else {
        change.actions.iter().any(|a| matches!(a, Action::Create | Action::Update | Action::Adopt | Action::Restart))
    }
}

/// What carries changes out: IAM and, for each cluster the run reaches, kube.
pub struct Appliers<'a> {
    pub iam: iam::IamApplier<'a>,
    /// By cluster key (`None`: a `[cluster]` file's one cluster).
    pub kube: BTreeMap<Option<String>, kube::KubeApplier<'a>>,
    /// How long to let a new or re-trusted role settle in IAM before pods
    /// that will assume it are rolled: STS can reject a role for a few
    /// seconds after IAM accepted it.
    pub settle: Duration,
    /// How many changes may run at once.
    pub parallelism: usize,
}

/// For each step, the steps that must be done before it: a removal waits
/// for the removals of what depends on it (leaves first), a make waits for
/// the makes of what it depends on and for its own removal (a replace).
fn prerequisites(plan: &Plan, steps: &[(usize, bool)]) -> Vec<Vec<usize>> {
    let index: HashMap<(usize, bool), usize> = steps.iter().enumerate().map(|(s, k)| (*k, s)).collect();
    let by_address: HashMap<&Address, usize> = plan.changes.iter().enumerate().map(|(i, c)| (&c.address, i)).collect();
    // What depends on each address, in plan order, each change once: a
    // removal asked every change whether it depends on it, which made
    // ordering quadratic in the number of changes.
    let mut dependents: HashMap<&Address, Vec<usize>> = HashMap::new();
    for (j, d) in plan.changes.iter().enumerate() {
        for a in &d.depends_on {
            let of = dependents.entry(a).or_default();
            if of.last() != Some(&j) {
                of.push(j);
            }
        }
    }
    steps
        .iter()
        .map(|&(i, removal)| {
            let change = &plan.changes[i];
            if removal {
                dependents
                    .get(&change.address)
                    .into_iter()
                    .flatten()
                    .filter_map(|j| index.get(&(*j, true)).copied())
                    .collect()
            } else {
                change
                    .depends_on
                    .iter()
                    .filter_map(|a| by_address.get(a))
                    .filter_map(|j| index.get(&(*j, false)).copied())
                    .chain(index.get(&(i, true)).copied())
                    .collect()
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Running,
    Done,
    Failed,
    Skipped,
}

/// The bookkeeping of a walk: which steps may start and which can no longer
/// run, without any I/O.
///
/// Driven by events, not by scanning every step after each one ends (which
/// was quadratic in the steps): each step counts its prerequisites not yet
/// done, and a step that ends tells only the steps that wait for it. The
/// order steps start and are skipped in is the scan's, which took the lowest
/// step first: `ready` is ordered, and [`Walk::skip_blocked`] goes in passes.
struct Walk {
    state: Vec<State>,
    /// For each step, the steps among whose prerequisites it is (once per mention).
    dependents: Vec<Vec<usize>>,
    /// For each step, its prerequisites not done yet (counted per mention).
    remaining: Vec<usize>,
    /// Waiting steps whose prerequisites are all done.
    ready: BTreeSet<usize>,
    /// Waiting steps with a failed or skipped prerequisite, to skip next.
    blocked: BTreeSet<usize>,
}

impl Walk {
    /// `done[s]`: step `s` was carried out by an earlier run.
    fn new(prereqs: &[Vec<usize>], done: impl Fn(usize) -> bool) -> Walk {
        let n = prereqs.len();
        let state: Vec<State> = (0..n).map(|s| if done(s) { State::Done } else { State::Waiting }).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut remaining: Vec<usize> = vec![0; n];
        for (s, pre) in prereqs.iter().enumerate() {
            for &p in pre {
                dependents[p].push(s);
                if state[p] != State::Done {
                    remaining[s] += 1;
                }
            }
        }
        let ready = (0..n).filter(|s| state[*s] == State::Waiting && remaining[*s] == 0).collect();
        Walk { state, dependents, remaining, ready, blocked: BTreeSet::new() }
    }

    /// Mark what can no longer run as skipped, and return it in the order
    /// the scan found it: passes from the lowest step up, where a step
    /// blocked by one skipped before it in the same pass goes in that pass,
    /// and one blocked by a later step in the next.
    fn skip_blocked(&mut self) -> Vec<usize> {
        let mut skipped = Vec::new();
        let mut pass = std::mem::take(&mut self.blocked);
        while !pass.is_empty() {
            let mut next_pass = BTreeSet::new();
            while let Some(s) = pass.pop_first() {
                if self.state[s] != State::Waiting {
                    continue;
                }
                self.state[s] = State::Skipped;
                skipped.push(s);
                for &t in &self.dependents[s] {
                    if self.state[t] == State::Waiting {
                        if t > s {
                            pass.insert(t)
                        } else {
                            next_pass.insert(t)
                        };
                    }
                }
            }
            pass = next_pass;
        }
        skipped
    }

    /// The lowest step that may start now, marked running.
    fn start_next(&mut self) -> Option<usize> {
        let s = self.ready.pop_first()?;
        self.state[s] = State::Running;
        Some(s)
    }

    /// A running step ended.
    fn finish(&mut self, s: usize, ok: bool) {
        if ok {
            self.state[s] = State::Done;
            for &t in &self.dependents[s] {
                self.remaining[t] -= 1;
                if self.remaining[t] == 0 && self.state[t] == State::Waiting {
                    self.ready.insert(t);
                }
            }
        } else {
            self.state[s] = State::Failed;
            let waiting: Vec<usize> =
                self.dependents[s].iter().copied().filter(|t| self.state[*t] == State::Waiting).collect();
            self.blocked.extend(waiting);
        }
    }
}

/// Apply `plan`: independent changes run at once (up to `parallelism`), each
/// change waits for what it depends on, and a failure stops only what
/// depends on it. Every step is reported through `progress` as it starts
/// and ends.
///
/// Steps in `done` (keys from [`step_key`]) were carried out by an earlier
/// run of the same plan (the journal says so): they count as done and do not
/// run again.
pub async fn apply(
    appliers: &Appliers<'_>,
    plan: &Plan,
    done: &HashSet<String>,
    mut progress: impl FnMut(&Event),
) -> Outcome {
    let steps = steps(plan);
    let prereqs = prerequisites(plan, &steps);
    let mut walk = Walk::new(&prereqs, |s| {
        let (i, removal) = steps[s];
        done.contains(&step_key(&plan.changes[i].address, removal))
    });
    let mut outcome = Outcome::default();
    let mut running = FuturesUnordered::new();
    let mut role_settled_at: Option<Instant> = None;
    loop {
        // Skip what can no longer run, start what can.
        for s in walk.skip_blocked() {
            let step = Step::Skipped { address: plan.changes[steps[s].0].address.clone() };
            progress(&Event::Finished { step: step.clone(), removal: steps[s].1 });
            outcome.steps.push(step);
        }
        while running.len() < appliers.parallelism.max(1) {
            let Some(s) = walk.start_next() else { break };
            let (i, removal) = steps[s];
            let change = &plan.changes[i];
            progress(&Event::Started { address: change.address.clone(), removal });
            let wait = match role_settled_at {
                Some(at) if change.kind == ResourceKind::Deployment && !removal => {
                    at.saturating_duration_since(Instant::now())
                }
                _ => Duration::ZERO,
            };
            running.push(async move {
                if !wait.is_zero() {
                    tracing::info!("waiting {wait:?} for IAM to settle before pods roll");
                    tokio::time::sleep(wait).await;
                }
                (s, run_step(appliers, change, removal).await)
            });
        }
        let Some((s, result)) = running.next().await else { break };
        walk.finish(s, result.is_ok());
        let (i, removal) = steps[s];
        let change = &plan.changes[i];
        let address = change.address.clone();
        let step = match result {
            Ok(what) => {
                if change.kind == ResourceKind::Role && !removal {
                    role_settled_at = Some(Instant::now() + appliers.settle);
                }
                Step::Done { address, what }
            }
            Err(error) => Step::Failed { address, error },
        };
        progress(&Event::Finished { step: step.clone(), removal });
        outcome.steps.push(step);
    }
    outcome
}

async fn run_step(appliers: &Appliers<'_>, change: &Change, removal: bool) -> Result<&'static str, String> {
    let kube = appliers.kube.get(&change.address.cluster().map(str::to_owned));
    match (change.kind.is_iam(), kube) {
        (true, _) if removal => appliers.iam.remove(change).await.map(|()| removed(change)).map_err(|e| e.to_string()),
        (true, _) => appliers.iam.make(change).await.map(|()| made(change)).map_err(|e| e.to_string()),
        (false, Some(k)) if removal => k.remove(change).await.map(|()| removed(change)).map_err(|e| e.to_string()),
        (false, Some(k)) => k.make(change).await.map(|()| made(change)).map_err(|e| e.to_string()),
        (false, None) => Err("the cluster was not contacted in this run".into()),
    }
}

/// A step's name in the journal: `-address` for a removal, `+address` for a make.
pub fn step_key(address: &Address, removal: bool) -> String {
    format!("{}{address}", if removal { "-" } else { "+" })
}

/// What the walk reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Started { address: Address, removal: bool },
    Finished { step: Step, removal: bool },
}

fn removed(change: &Change) -> &'static str {
    if change.is_replace() { "removed (to be created again)" } else { "deleted" }
}

fn made(change: &Change) -> &'static str {
    match change.actions.as_slice() {
        [Action::Adopt] => "adopted",
        [Action::Update] => "updated",
        [Action::Restart] => "restarted",
        _ => "created",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Summary;

    fn change(address: &str, actions: &[Action], depends_on: &[&str]) -> Change {
        let address: Address = address.parse().unwrap();
        Change {
            kind: address.kind(),
            address,
            actions: actions.try_into().unwrap(),
            reasons: vec![],
            before: None,
            after: None,
            changed: Box::default(),
            depends_on: depends_on.iter().map(|a| a.parse().unwrap()).collect(),
            guard: Default::default(),
            access: None,
        }
    }

    fn plan(changes: Vec<Change>) -> Plan {
        let changes: Vec<Box<Change>> = changes.into_iter().map(Box::new).collect();
        Plan {
            format_version: "1".into(),
            irsa_version: "test".into(),
            stack: "s".into(),
            refresh: Default::default(),
            summary: Summary::of(&changes),
            changes,
            warnings: vec![],
            findings: vec![],
            targets: vec![],
        }
    }

    fn names(plan: &Plan, steps: &[(usize, bool)], of: &[usize]) -> Vec<String> {
        of.iter()
            .map(|s| {
                let (i, removal) = steps[*s];
                format!("{}{}", if removal { "-" } else { "+" }, plan.changes[i].address)
            })
            .collect()
    }

    #[test]
    fn a_replaced_policy_is_detached_deleted_created_and_attached_in_that_order() {
        let replace = [Action::Delete, Action::Create];
        let p = plan(vec![
            change("policy/p", &replace, &[]),
            change("role/r", &[Action::Update], &["oidc/c"]),
            change("role/r/attach/p", &replace, &["policy/p", "role/r"]),
            change("sa/ns/a", &[Action::Create], &["role/r"]),
        ]);
        let steps = steps(&p);
        let pre = prerequisites(&p, &steps);
        let find = |name: &str| {
            (0..steps.len()).find(|s| names(&p, &steps, &[*s])[0] == name).unwrap_or_else(|| panic!("{name}"))
        };
        let deps = |name: &str| {
            let mut d = names(&p, &steps, &pre[find(name)]);
            d.sort();
            d
        };
        assert_eq!(deps("-role/r/attach/p"), Vec::<String>::new());
        assert_eq!(deps("-policy/p"), ["-role/r/attach/p"]);
        assert_eq!(deps("+policy/p"), ["-policy/p"]);
        assert_eq!(deps("+role/r"), Vec::<String>::new(), "oidc/c is not in the plan: nothing to wait for");
        assert_eq!(deps("+role/r/attach/p"), ["+policy/p", "+role/r", "-role/r/attach/p"]);
        assert_eq!(deps("+sa/ns/a"), ["+role/r"]);
    }

    /// A small deterministic generator, so the walk tests need no crate.
    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n.max(1)
        }
    }

    /// The walk as it was before [`Walk`]: after every step that ends, scan
    /// all steps (skipping until nothing changes, then starting in step
    /// order). Returns the events, `start s`, `end s` and `skip s`.
    fn scanned_walk(prereqs: &[Vec<usize>], done: &[bool], parallelism: usize, seed: u64) -> Vec<String> {
        let n = prereqs.len();
        let mut state: Vec<State> = done.iter().map(|d| if *d { State::Done } else { State::Waiting }).collect();
        let (mut events, mut running, mut pick) = (Vec::new(), Vec::new(), Lcg(seed));
        loop {
            let mut changed = true;
            while changed {
                changed = false;
                for s in 0..n {
                    if state[s] == State::Waiting
                        && prereqs[s].iter().any(|p| matches!(state[*p], State::Failed | State::Skipped))
                    {
                        state[s] = State::Skipped;
                        events.push(format!("skip {s}"));
                        changed = true;
                    }
                }
            }
            for s in 0..n {
                if running.len() >= parallelism {
                    break;
                }
                if state[s] == State::Waiting && prereqs[s].iter().all(|p| state[*p] == State::Done) {
                    state[s] = State::Running;
                    events.push(format!("start {s}"));
                    running.push(s);
                }
            }
            if running.is_empty() {
                break;
            }
            let s = running.remove(pick.below(running.len()));
            state[s] = if s % 7 == 3 { State::Failed } else { State::Done };
            events.push(format!("end {s}"));
        }
        events
    }

    /// The same walk through [`Walk`], with the same choices of which running step ends.
    fn indexed_walk(prereqs: &[Vec<usize>], done: &[bool], parallelism: usize, seed: u64) -> Vec<String> {
        let mut walk = Walk::new(prereqs, |s| done[s]);
        let (mut events, mut running, mut pick) = (Vec::new(), Vec::new(), Lcg(seed));
        loop {
            events.extend(walk.skip_blocked().into_iter().map(|s| format!("skip {s}")));
            while running.len() < parallelism {
                let Some(s) = walk.start_next() else { break };
                events.push(format!("start {s}"));
                running.push(s);
            }
            if running.is_empty() {
                break;
            }
            let s = running.remove(pick.below(running.len()));
            walk.finish(s, s % 7 != 3);
            events.push(format!("end {s}"));
        }
        events
    }

    #[test]
    fn the_indexed_walk_starts_and_skips_in_the_order_the_scan_did() {
        let mut rng = Lcg(7);
        let mut skips = 0;
        for case in 0..300u64 {
            let n = 1 + rng.below(40);
            // A random order of the steps that every prerequisite respects,
            // so prerequisites point both to lower and to higher steps.
            let mut rank: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                rank.swap(i, rng.below(i + 1));
            }
            let prereqs: Vec<Vec<usize>> = (0..n)
                .map(|s| {
                    let mut pre: Vec<usize> = (0..n).filter(|p| rank[*p] < rank[s] && rng.below(4) == 0).collect();
                    if let (Some(&p), 0) = (pre.first(), rng.below(5)) {
                        pre.push(p); // mentioned twice, as a replace's own removal can be
                    }
                    pre
                })
                .collect();
            let done: Vec<bool> = (0..n).map(|_| rng.below(6) == 0).collect();
            let parallelism = 1 + rng.below(4);
            let events = indexed_walk(&prereqs, &done, parallelism, case);
            assert_eq!(
                events,
                scanned_walk(&prereqs, &done, parallelism, case),
                "case {case}: {prereqs:?}, done {done:?}, parallelism {parallelism}"
            );
            skips += events.iter().filter(|e| e.starts_with("skip")).count();
        }
        assert!(skips > 100, "the cases must exercise skipping, not only starting ({skips} skips)");
    }

    /// Not a test of time: prints how long ordering and walking the steps of
    /// plans of 25,000 to 100,000 bindings take, to show that they grow
    /// linearly (`cargo test --lib walk_of_a_large_plan -- --ignored
    /// --nocapture`; a debug build took 1.3, 2.4 and 4.8 s to order, 0.26,
    /// 0.39 and 0.80 s to walk, on a 2-core machine).
    #[test]
    #[ignore]
    fn walk_of_a_large_plan() {
        for bindings in [25_000usize, 50_000, 100_000] {
            let mut changes = vec![change("oidc/c", &[Action::Create], &[])];
            for i in 0..bindings {
                let role = format!("role/r{i}");
                for p in ["a", "b", "c"] {
                    changes.push(change(&format!("policy/r{i}-{p}"), &[Action::Create], &[]));
                }
                changes.push(change(&role, &[Action::Create], &["oidc/c"]));
                for p in ["a", "b", "c"] {
                    let deps = [format!("policy/r{i}-{p}"), role.clone()];
                    changes.push(change(
                        &format!("{role}/attach/r{i}-{p}"),
                        &[Action::Delete, Action::Create],
                        &[&deps[0], &deps[1]],
                    ));
                }
                changes.push(change(&format!("sa/ns/s{i}"), &[Action::Create], &[&role]));
                changes.push(change(&format!("deploy/ns/s{i}"), &[Action::Restart], &[&format!("sa/ns/s{i}")]));
            }
            let p = plan(changes);
            let start = std::time::Instant::now();
            let steps = steps(&p);
            let pre = prerequisites(&p, &steps);
            let ordered = start.elapsed();
            let mut walk = Walk::new(&pre, |_| false);
            let (mut running, mut ended) = (std::collections::VecDeque::new(), 0);
            loop {
                walk.skip_blocked();
                while running.len() < 8 {
                    let Some(s) = walk.start_next() else { break };
                    running.push_back(s);
                }
                let Some(s) = running.pop_front() else { break };
                walk.finish(s, s % 1000 != 7);
                ended += 1;
            }
            println!(
                "{bindings} bindings, {} steps: ordered in {ordered:?}, walked ({ended} ended) in {:?}",
                steps.len(),
                start.elapsed() - ordered
            );
        }
    }

    #[test]
    fn removals_wait_for_each_dependent_once() {
        // A change that names the same dependency twice is one prerequisite.
        let p = plan(vec![
            change("role/old", &[Action::Delete], &["oidc/c"]),
            change("sa/ns/old", &[Action::Delete], &["role/old", "role/old"]),
        ]);
        let steps = steps(&p);
        let pre = prerequisites(&p, &steps);
        let role = (0..steps.len()).find(|s| p.changes[steps[*s].0].address.to_string() == "role/old").unwrap();
        assert_eq!(names(&p, &steps, &pre[role]), ["-sa/ns/old"]);
    }

    #[test]
    fn deletes_wait_for_what_depends_on_them() {
        let p = plan(vec![
            change("role/old", &[Action::Delete], &["oidc/c"]),
            change("role/old/attach/x", &[Action::Delete], &["role/old"]),
            change("sa/ns/old", &[Action::Delete], &["role/old"]),
        ]);
        let steps = steps(&p);
        let pre = prerequisites(&p, &steps);
        let role = (0..steps.len()).find(|s| p.changes[steps[*s].0].address.to_string() == "role/old").unwrap();
        let mut d = names(&p, &steps, &pre[role]);
        d.sort();
        assert_eq!(d, ["-role/old/attach/x", "-sa/ns/old"]);
    }
}
