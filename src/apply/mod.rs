//! Carrying out a plan.
//!
//! Two passes over the plan's dependency order: first every removal
//! (deletes, and the delete half of each replace) from the leaves up, then
//! every creation and update from the roots down. A replaced policy is thus
//! detached, deleted, created and attached again, in that order, which is the
//! only order IAM accepts. The run stops at the first failure; the next plan
//! shows exactly what is left, since it is made from what exists.

pub mod iam;
pub mod retry;

use crate::model::Address;
use crate::plan::{Action, Plan};

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
        .filter(|(_, c)| c.actions.iter().any(|a| matches!(a, Action::Create | Action::Update | Action::Adopt)))
        .map(|(i, _)| (i, false));
    removals.chain(makes).collect()
}

/// Apply the IAM changes of `plan`, reporting each step through `progress`.
pub async fn apply_iam(applier: &iam::IamApplier<'_>, plan: &Plan, mut progress: impl FnMut(&Step)) -> Outcome {
    let mut outcome = Outcome::default();
    let mut stopped = false;
    for (i, removal) in steps(plan) {
        let change = &plan.changes[i];
        let address = change.address.clone();
        let step = if stopped {
            Step::Skipped { address }
        } else {
            let (result, what) = if removal {
                (
                    applier.remove(change).await,
                    if change.is_replace() { "removed (to be created again)" } else { "deleted" },
                )
            } else {
                let what = match change.actions.as_slice() {
                    [Action::Adopt] => "adopted",
                    [Action::Update] => "updated",
                    _ => "created",
                };
                (applier.make(change).await, what)
            };
            match result {
                Ok(()) => Step::Done { address, what },
                Err(e) => {
                    stopped = true;
                    Step::Failed { address, error: e.to_string() }
                }
            }
        };
        progress(&step);
        outcome.steps.push(step);
    }
    outcome
}
