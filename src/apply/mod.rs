//! Carrying out a plan.
//!
//! Two passes over the plan's dependency order: first every removal
//! (deletes, and the delete half of each replace) from the leaves up, then
//! every creation and update from the roots down. A replaced policy is thus
//! detached, deleted, created and attached again, in that order, which is the
//! only order IAM accepts. The run stops at the first failure; the next plan
//! shows exactly what is left, since it is made from what exists.

pub mod iam;
pub mod kube;
pub mod retry;

use std::time::Duration;

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

impl Outcome {
    pub fn failed(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::Failed { .. }))
    }
}

/// The plan's changes as steps, removals first (leaves up), then the rest
/// (roots down): `(change index, is removal)`.
pub fn steps(plan: &Plan) -> Vec<(usize, bool)> {
    let removals = plan
        .changes
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, c)| c.actions.contains(&Action::Delete))
        .map(|(i, _)| (i, true));
    let makes = plan
        .changes
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.actions.iter().any(|a| matches!(a, Action::Create | Action::Update | Action::Adopt | Action::Restart))
        })
        .map(|(i, _)| (i, false));
    removals.chain(makes).collect()
}

/// What carries changes out: IAM and, when the run reaches the cluster, kube.
pub struct Appliers<'a> {
    pub iam: iam::IamApplier<'a>,
    pub kube: Option<kube::KubeApplier<'a>>,
    /// How long to let a new or re-trusted role settle in IAM before pods
    /// that will assume it are rolled: STS can reject a role for a few
    /// seconds after IAM accepted it.
    pub settle: Duration,
}

/// Apply `plan`, reporting each step through `progress`, and stopping at
/// the first failure (what follows is reported as skipped).
pub async fn apply(appliers: &Appliers<'_>, plan: &Plan, mut progress: impl FnMut(&Step)) -> Outcome {
    let mut outcome = Outcome::default();
    let mut stopped = false;
    let mut unsettled = false;
    for (i, removal) in steps(plan) {
        let change = &plan.changes[i];
        let address = change.address.clone();
        if stopped {
            let step = Step::Skipped { address };
            progress(&step);
            outcome.steps.push(step);
            continue;
        }
        let rolls_pods = change.kind == ResourceKind::Deployment && !removal;
        if rolls_pods && unsettled && !appliers.settle.is_zero() {
            tracing::info!("waiting {:?} for IAM to settle before pods roll", appliers.settle);
            tokio::time::sleep(appliers.settle).await;
            unsettled = false;
        }
        let result: Result<&'static str, String> = match (change.kind.is_iam(), &appliers.kube) {
            (true, _) if removal => {
                appliers.iam.remove(change).await.map(|()| removed(change)).map_err(|e| e.to_string())
            }
            (true, _) => appliers.iam.make(change).await.map(|()| made(change)).map_err(|e| e.to_string()),
            (false, Some(k)) if removal => k.remove(change).await.map(|()| removed(change)).map_err(|e| e.to_string()),
            (false, Some(k)) => k.make(change).await.map(|()| made(change)).map_err(|e| e.to_string()),
            (false, None) => Err("the cluster was not contacted in this run".into()),
        };
        if change.kind == ResourceKind::Role && !removal && result.is_ok() {
            unsettled = true;
        }
        let step = match result {
            Ok(what) => Step::Done { address, what },
            Err(error) => {
                stopped = true;
                Step::Failed { address, error }
            }
        };
        progress(&step);
        outcome.steps.push(step);
    }
    outcome
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
