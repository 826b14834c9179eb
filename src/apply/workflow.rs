//! The apply workflow, end to end: take the stack's lock in the cluster,
//! open the store, read what exists, plan it (or check a saved plan against
//! it, refusing one whose resources moved), show the plan and ask, record
//! each step in the journal before and after it runs while the walk of
//! [`super::apply`] carries the changes out, and release the lock.
//!
//! How a killed run resumes: the journal keys steps by the plan's id, so a
//! rerun of the same saved plan skips its own finished steps and accepts
//! its own writes instead of calling them moves (`check_saved`); a
//! fresh plan simply plans against what the killed run left.
//!
//! The command line only parses arguments, answers [`Frontend`]'s
//! questions and renders; everything that decides is here.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::iam::IamApplier;
use super::kube::KubeApplier;
use super::retry::Patience;
use super::{Appliers, Event, Outcome, Step, apply, has_step, step_key};
use crate::lock::{self, LockError, LockOptions};
use crate::model::Address;
use crate::model::desired::Desired;
use crate::plan::saved::SavedPlan;
use crate::plan::{self, Action, Change, Plan, PlanError, PlanOptions};
use crate::refresh::{self, Clients, ReadError, ReadStatus};
use crate::store::{JournalEntry, StepState, Store, StoreError};

/// What a run applies: a fresh plan of the stack file, or a saved plan.
pub enum Source {
    Stack { adopt: bool, destroy: bool, targets: Vec<String> },
    Saved(Box<SavedPlan>),
}

impl Source {
    /// The `--target` prefixes the run is limited to.
    pub fn targets(&self) -> &[String] {
        match self {
            Source::Stack { targets, .. } => targets,
            Source::Saved(saved) => &saved.plan.targets,
        }
    }
}

/// How a run goes, besides what it applies.
pub struct Settings {
    /// The local store (journal, snapshots, saved plans).
    pub store_dir: PathBuf,
    pub lock: LockOptions,
    /// How long to let a new or re-trusted role settle in IAM before pods roll.
    pub settle: Duration,
    /// How many independent changes may run at once.
    pub parallelism: usize,
}

/// Who watches the run: shows the plan, answers whether to go ahead, and
/// hears of every step.
pub trait Frontend {
    type Error;
    /// How far the read of what exists has got (see [`refresh::read_watched`]).
    fn reading(&mut self, _status: &ReadStatus) {}
    /// The plan about to be applied (also when it is empty).
    fn show(&mut self, plan: &Plan, done_before: usize) -> Result<(), Self::Error>;
    /// Whether to apply it; asked only when it has changes.
    fn confirm(&mut self, plan: &Plan) -> Result<bool, Self::Error>;
    fn event(&mut self, event: &Event);
    /// Something the user should know that does not stop the run.
    fn warn(&mut self, message: &str);
}

/// How a run ended, when it did not fail before applying.
#[derive(Debug)]
pub enum Report {
    /// The plan had no changes.
    NoChanges,
    /// The user said no; nothing was changed.
    Cancelled,
    /// The walk ran: every step's outcome, and the IAM calls it made.
    Applied { outcome: Outcome, iam_calls: u64 },
}

/// Why a run stopped before or around the walk.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Lock(Box<LockError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stack cannot be planned against what exists.
    #[error("the stack cannot be planned")]
    Plan(Vec<PlanError>),
    /// A saved plan whose world moved since it was made; `plan_errors` are
    /// those of a plan made now, when it fails too.
    #[error("the saved plan is stale: {} moved since it was made", moved.len())]
    Stale { moved: Vec<String>, plan_errors: Vec<String> },
}

impl From<LockError> for WorkflowError {
    fn from(e: LockError) -> Self {
        WorkflowError::Lock(Box::new(e))
    }
}

/// A failure of the workflow, or of its frontend.
#[derive(Debug)]
pub enum RunError<E> {
    Workflow(WorkflowError),
    Frontend(E),
}

impl<E> From<WorkflowError> for RunError<E> {
    fn from(e: WorkflowError) -> Self {
        RunError::Workflow(e)
    }
}

/// A saved plan is refused when the stack file or its documents changed
/// since it was made. [`run`] checks it first; a caller may check it
/// before connecting, so that a stale plan is refused without credentials.
pub fn check_inputs(desired: &Desired, source: &Source) -> Result<(), WorkflowError> {
    match source {
        Source::Saved(saved) if desired.fingerprint() != saved.desired_sha256 => Err(WorkflowError::Stale {
            moved: vec![format!(
                "{}: the stack file or one of its policy documents changed since the plan was made",
                saved.stack_file
            )],
            plan_errors: Vec::new(),
        }),
        _ => Ok(()),
    }
}

/// Apply `source` to what `clients` reach, as `settings` say.
pub async fn run<F: Frontend>(
    desired: &Desired,
    clients: &Clients,
    source: &Source,
    settings: &Settings,
    frontend: &mut F,
) -> Result<Report, RunError<F::Error>> {
    check_inputs(desired, source)?;
    // Two contexts that reach one cluster would take its lock twice, and
    // the second wait would be for this run itself: refuse them first, as
    // the plan would, by the issuers the clusters serve.
    let reached: Vec<(Option<String>, String)> = clients
        .clusters
        .iter()
        .filter(|c| c.kube.is_some())
        .map(|c| (c.key.clone(), c.discovered_issuer.clone().unwrap_or_else(|| c.issuer.clone())))
        .collect();
    let twice = plan::clusters_reached_twice(desired, &reached);
    if !twice.is_empty() {
        return Err(WorkflowError::Plan(twice).into());
    }
    // Take the lock before reading, as Terraform does: a second apply that
    // waited must plan against what the first one left. A run whose targets
    // stay in IAM does not contact the cluster, and so takes no lock.
    // A stack of several clusters is locked in each, one after the other
    // in key order: two applies of the stack wait for each other, and never
    // each hold a lock the other waits for.
    let mut locks = Vec::new();
    for (key, kube) in clients.kubes() {
        match lock::acquire(kube, key, &desired.stack.name, &settings.lock).await {
            Ok(lock) => {
                tracing::info!(
                    "holding the lock{} as {}",
                    key.map(|k| format!(" in {k}")).unwrap_or_default(),
                    lock.holder()
                );
                locks.push(lock);
            }
            Err(e) => {
                for lock in locks.into_iter().rev() {
                    if let Err(e) = lock.release().await {
                        tracing::warn!("{e}");
                    }
                }
                return Err(WorkflowError::from(e).into());
            }
        }
    }
    let result = locked(desired, clients, source, settings, frontend).await;
    let mut release_error = None;
    for lock in locks.into_iter().rev() {
        if lock.lost() {
            frontend
                .warn("the lock expired during the run and was taken by another apply; plan again to check the result");
        }
        if let Err(e) = lock.release().await {
            release_error.get_or_insert(e);
        }
    }
    if let Some(e) = release_error {
        return Err(WorkflowError::from(e).into());
    }
    result
}

/// Everything done under the lock; the store is opened and closed inside
/// it, so a second apply that waited for the lock finds the store free.
async fn locked<F: Frontend>(
    desired: &Desired,
    clients: &Clients,
    source: &Source,
    settings: &Settings,
    frontend: &mut F,
) -> Result<Report, RunError<F::Error>> {
    let store = Store::open(&settings.store_dir).map_err(WorkflowError::from)?;
    let (observed, refresh) = refresh::read_watched(desired, clients, |status| frontend.reading(status))
        .await
        .map_err(WorkflowError::from)?;
    store.put_snapshot(&desired.stack.name, &observed).map_err(WorkflowError::from)?;
    let (adopt, destroy) = match source {
        Source::Stack { adopt, destroy, .. } => (*adopt, *destroy),
        Source::Saved(saved) => (saved.adopt, saved.destroy),
    };
    let options = PlanOptions { adopt, targets: source.targets().to_vec(), refresh, destroy };
    let wanted = if destroy { desired.for_destroy() } else { desired.clone() };
    let (plan, plan_id, done) = match source {
        Source::Stack { .. } => {
            let current = plan::plan(&wanted, &observed, &options).map_err(WorkflowError::Plan)?;
            let id = current.id();
            (current, id, HashSet::new())
        }
        Source::Saved(saved) => {
            // Made despite errors: when what the saved plan touches moved,
            // that (exit 3) is the news, and a plan made now failing is
            // part of it, not the other way round.
            let (current, errors) =
                plan::plan_despite_errors(&wanted, &observed, &options).map_err(WorkflowError::Plan)?;
            let id = saved.id();
            let journal = store.journal_of(&id).map_err(WorkflowError::from)?;
            let done = check_saved(&saved.plan, &current, &journal, &errors)?;
            if !errors.is_empty() {
                return Err(WorkflowError::Plan(errors).into());
            }
            (with_fresh_guards(&saved.plan, &current), id, done)
        }
    };

    frontend.show(&plan, done.len()).map_err(RunError::Frontend)?;
    if plan.changes.is_empty() {
        return Ok(Report::NoChanges);
    }
    if !frontend.confirm(&plan).map_err(RunError::Frontend)? {
        return Ok(Report::Cancelled);
    }
    store.put_plan(&plan_id, &serde_json::to_string(&plan).unwrap_or_default()).map_err(WorkflowError::from)?;

    let calls_before = clients.iam.calls.total();
    let appliers = Appliers {
        iam: IamApplier { iam: &clients.iam, patience: Patience::default() },
        kube: clients.kubes().map(|(key, kube)| (key.map(str::to_owned), KubeApplier { kube })).collect(),
        settle: settings.settle,
        parallelism: settings.parallelism,
    };
    let mut journal_error = None;
    let outcome = apply(&appliers, &plan, &done, |event| {
        frontend.event(event);
        // Started before the step runs, done after: a killed run leaves
        // `started` for what may or may not have happened.
        let record = match event {
            Event::Started { address, removal } => Some((step_key(address, *removal), StepState::Started)),
            Event::Finished { step: Step::Done { address, .. }, removal } => {
                Some((step_key(address, *removal), StepState::Done))
            }
            Event::Finished { .. } => None,
        };
        if let Some((key, state)) = record
            && let Err(e) = store.journal(&plan_id, &key, state)
        {
            journal_error.get_or_insert(e);
        }
    })
    .await;
    if let Some(e) = journal_error {
        frontend.warn(&format!("{e}; a rerun re-plans from what exists instead of trusting the journal"));
    }
    Ok(Report::Applied { outcome, iam_calls: clients.iam.calls.total() - calls_before })
}

/// The saved plan's changes, each guarded by what was read now. The check
/// of the saved plan found everything a change depends on (its `before`) as
/// it was; the guards also hold details it does not depend on (whether a
/// Deployment's `serviceAccountName` is unset or says `default`, the last
/// `restartedAt`), and the writes must test those as they are now.
fn with_fresh_guards(saved: &Plan, current: &Plan) -> Plan {
    let mut plan = saved.clone();
    let current_by_address: HashMap<&Address, &Change> =
        current.changes.iter().rev().map(|c| (&c.address, &**c)).collect();
    for change in &mut plan.changes {
        if let Some(now) = current_by_address.get(&change.address)
            && !now.guard.is_empty()
        {
            change.guard = now.guard.clone();
        }
    }
    plan
}

/// Compare a saved plan with a fresh one made now: every resource the saved
/// plan touches must be as it was when the plan was made (as far as the
/// change depends on it: its `before`), unless this plan's own earlier run
/// (the journal) changed it. `errors` are those of the fresh plan: a
/// resource it could not plan moved too. Returns the steps that run
/// already finished.
fn check_saved(
    saved: &Plan,
    current: &Plan,
    journal: &BTreeMap<String, JournalEntry>,
    errors: &[PlanError],
) -> Result<HashSet<String>, WorkflowError> {
    let mut done = HashSet::new();
    let mut moved = Vec::new();
    // One map instead of a search of the fresh plan per saved change
    // (quadratic); built backwards so that, as with a search, the first of
    // one address wins.
    let current_by_address: HashMap<&Address, &Change> =
        current.changes.iter().rev().map(|c| (&c.address, &**c)).collect();
    for change in &saved.changes {
        if errors.iter().any(|e| e.address.as_ref() == Some(&change.address)) {
            moved.push(match change.before {
                None => format!("{}: it did not exist when planned, and exists now", change.address),
                Some(_) => {
                    format!("{}: changed since the plan was made, so that it cannot be planned now", change.address)
                }
            });
            continue;
        }
        let keys: Vec<(String, bool)> = [true, false]
            .into_iter()
            .filter(|removal| has_step(change, *removal))
            .map(|removal| (step_key(&change.address, removal), removal))
            .collect();
        let journaled: Vec<&(String, bool)> = keys.iter().filter(|(k, _)| journal.contains_key(k)).collect();
        let now = current_by_address.get(&change.address).copied();
        let same_as_planned = match now {
            Some(now) => plan::same_attributes(change.before.as_ref(), now.before.as_ref()),
            None => false,
        };
        if journaled.is_empty() {
            if !same_as_planned {
                moved.push(describe_move(change, now));
            }
            continue;
        }
        // This plan's own earlier run touched it: it may be anywhere between
        // as planned and done.
        match now {
            None => {
                done.extend(keys.iter().map(|(k, _)| k.clone()));
            }
            Some(_) if same_as_planned => {
                done.extend(
                    journaled.iter().filter(|(k, _)| journal[k].state == StepState::Done).map(|(k, _)| k.clone()),
                );
            }
            // Half a replace: removed, not yet created again.
            Some(now) if now.before.is_none() && keys.iter().any(|(k, r)| *r && journal.contains_key(k)) => {
                done.extend(keys.iter().filter(|(_, r)| *r).map(|(k, _)| k.clone()));
            }
            Some(now) => moved.push(describe_move(change, Some(now))),
        }
    }
    if moved.is_empty() {
        return Ok(done);
    }
    let plan_errors = errors
        .iter()
        .map(|e| {
            let at = e.address.as_ref().map(|a| format!("{a}: ")).unwrap_or_default();
            format!("{at}{} (help: {})", e.message, e.help)
        })
        .collect();
    Err(WorkflowError::Stale { moved, plan_errors })
}

fn describe_move(planned: &Change, now: Option<&Change>) -> String {
    let address = &planned.address;
    match (planned.before.as_ref(), now) {
        (_, None) if planned.actions == [Action::Restart] => format!(
            "{address}: it needs no restart any more: its pods were replaced since the plan was made, or are being replaced"
        ),
        (_, None) => format!("{address}: it is already as the plan would make it (changed by someone else)"),
        (None, Some(n)) if n.before.is_some() => format!("{address}: it did not exist when planned, and exists now"),
        (Some(_), Some(n)) if n.before.is_none() => format!("{address}: it existed when planned, and is gone now"),
        (Some(b), Some(n)) => {
            let keys = plan::differing_attributes(Some(b), n.before.as_ref());
            let detail = keys
                .iter()
                .map(|k| match (b.get(k), n.before.as_ref().and_then(|m| m.get(k))) {
                    (Some(x), Some(y)) if !x.is_object() && !x.is_array() => format!("{k} {x} -> {y}"),
                    // Annotations, labels, tags: name the entries that moved.
                    (Some(Value::Object(x)), Some(Value::Object(y)))
                        if !plan::DOCUMENT_ATTRIBUTES.contains(&k.as_str()) =>
                    {
                        let entries: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                        let shown = |v: Option<&Value>| v.map_or("(absent)".to_owned(), Value::to_string);
                        entries
                            .into_iter()
                            .filter(|e| x.get(*e) != y.get(*e))
                            .map(|e| format!("{k}[{e}] {} -> {}", shown(x.get(e)), shown(y.get(e))))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                    _ => k.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("{address}: changed since the plan was made ({detail})")
        }
        _ => format!("{address}: changed since the plan was made"),
    }
}
