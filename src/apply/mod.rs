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

use std::collections::{HashMap, HashSet};
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

/// What carries changes out: IAM and, when the run reaches the cluster, kube.
pub struct Appliers<'a> {
    pub iam: iam::IamApplier<'a>,
    pub kube: Option<kube::KubeApplier<'a>>,
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
    steps
        .iter()
        .map(|&(i, removal)| {
            let change = &plan.changes[i];
            if removal {
                plan.changes
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| d.depends_on.contains(&change.address))
                    .filter_map(|(j, _)| index.get(&(j, true)).copied())
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
    let mut state: Vec<State> = steps
        .iter()
        .map(
            |&(i, removal)| {
                if done.contains(&step_key(&plan.changes[i].address, removal)) { State::Done } else { State::Waiting }
            },
        )
        .collect();
    let mut outcome = Outcome::default();
    let mut running = FuturesUnordered::new();
    let mut role_settled_at: Option<Instant> = None;
    loop {
        // Skip what can no longer run, start what can.
        let mut changed = true;
        while changed {
            changed = false;
            for s in 0..steps.len() {
                if state[s] != State::Waiting {
                    continue;
                }
                if prereqs[s].iter().any(|p| matches!(state[*p], State::Failed | State::Skipped)) {
                    state[s] = State::Skipped;
                    let step = Step::Skipped { address: plan.changes[steps[s].0].address.clone() };
                    progress(&Event::Finished { step: step.clone(), removal: steps[s].1 });
                    outcome.steps.push(step);
                    changed = true;
                }
            }
        }
        for s in 0..steps.len() {
            if running.len() >= appliers.parallelism.max(1) {
                break;
            }
            if state[s] != State::Waiting || !prereqs[s].iter().all(|p| state[*p] == State::Done) {
                continue;
            }
            state[s] = State::Running;
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
        let (i, removal) = steps[s];
        let change = &plan.changes[i];
        let address = change.address.clone();
        let step = match result {
            Ok(what) => {
                state[s] = State::Done;
                if change.kind == ResourceKind::Role && !removal {
                    role_settled_at = Some(Instant::now() + appliers.settle);
                }
                Step::Done { address, what }
            }
            Err(error) => {
                state[s] = State::Failed;
                Step::Failed { address, error }
            }
        };
        progress(&Event::Finished { step: step.clone(), removal });
        outcome.steps.push(step);
    }
    outcome
}

async fn run_step(appliers: &Appliers<'_>, change: &Change, removal: bool) -> Result<&'static str, String> {
    match (change.kind.is_iam(), &appliers.kube) {
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
            actions: actions.to_vec(),
            reasons: vec![],
            before: None,
            after: None,
            changed: vec![],
            depends_on: depends_on.iter().map(|a| a.parse().unwrap()).collect(),
            guard: Default::default(),
        }
    }

    fn plan(changes: Vec<Change>) -> Plan {
        Plan {
            format_version: "1".into(),
            irsa_version: "test".into(),
            stack: "s".into(),
            refresh: Default::default(),
            summary: Summary::of(&changes),
            changes,
            warnings: vec![],
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
