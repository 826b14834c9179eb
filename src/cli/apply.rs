use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::live::{self, AwsArgs, KubeArgs};
use super::{CliError, Ctx, exit};
use crate::apply::iam::IamApplier;
use crate::apply::kube::KubeApplier;
use crate::apply::retry::Patience;
use crate::apply::{Appliers, Event, Step, apply, has_step, step_key};
use crate::lock::{self, LockOptions};
use crate::model::desired::Desired;
use crate::plan::saved::SavedPlan;
use crate::plan::{Plan, PlanOptions};
use crate::render::{self, Format};
use crate::store::{StepState, Store};

/// Make AWS IAM and the cluster match a stack file, or carry out a saved plan.
///
/// With a stack file: reads what exists, shows the plan, asks for `yes` on a
/// terminal (or proceeds with --auto-approve) and applies it. With a plan
/// saved by `irsa plan --out`: re-reads every resource the plan touches and
/// refuses with exit code 3, naming each one, if any moved or the stack file
/// changed; otherwise applies exactly the reviewed changes. Either way the
/// stack's lock in the cluster is held throughout, and each step is recorded
/// in the journal before and after it runs, so a killed run, rerun, finishes
/// the work without doing any of it twice.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The stack file, or a plan saved with `irsa plan --out`.
    file: PathBuf,

    /// Apply without asking; required when stdin is not a terminal.
    #[arg(long)]
    auto_approve: bool,

    /// Adopt existing resources that irsa does not own yet, as if each entry said `adopt = true`.
    #[arg(long)]
    adopt: bool,

    /// Apply only the addresses that start with PREFIX, and what they depend on (repeatable).
    #[arg(long, value_name = "PREFIX")]
    target: Vec<String>,

    /// The stack's name until now: what carries stack OLD's markers is this
    /// stack's, and the apply moves it to this stack's name.
    #[arg(long, value_name = "OLD")]
    rename_from: Option<String>,

    /// How many independent changes may run at once.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    parallelism: u16,

    /// The namespace of the lock (a coordination.k8s.io Lease named irsa-<stack>).
    #[arg(long, value_name = "NAMESPACE", default_value = "kube-system")]
    lock_namespace: String,

    /// Seconds to wait for another apply of the stack to finish; 0 fails at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    lock_timeout: u64,

    /// Seconds the lock lasts without renewal (renewed every third of it):
    /// how long an apply that crashed blocks the next one.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(i32).range(3..))]
    lock_lease_seconds: i32,

    /// Seconds to let a new or re-trusted role settle in IAM before the pods
    /// that assume it roll (STS lags IAM by a few seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    iam_settle_seconds: u64,

    /// The local store (journal, snapshots, saved plans); default `.irsa/`
    /// beside the stack file.
    #[arg(long, value_name = "DIR", env = "IRSA_STORE")]
    store: Option<PathBuf>,

    #[command(flatten)]
    aws: AwsArgs,

    #[command(flatten)]
    kube: KubeArgs,
}

/// Remove everything a stack owns, and nothing else.
///
/// Plans the deletion of every resource that carries the stack's markers
/// (policies, roles with their attachments and inline policies, the OIDC
/// provider when it is the stack's own, ServiceAccounts irsa made), takes
/// irsa's trust statement out of roles it manages by ARN, gives adopted
/// ServiceAccounts back without irsa's annotations, and applies it like
/// `apply`: in reverse dependency order, after confirmation, under the lock.
/// Deployments are left as they are.
#[derive(Debug, clap::Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    apply: ApplyArgs,
}

/// What a run applies: a fresh plan of a stack file, or a saved plan.
enum Source {
    Stack { adopt: bool, destroy: bool, targets: Vec<String> },
    Saved(Box<SavedPlan>),
}

pub fn run(ctx: &Ctx, args: ApplyArgs) -> Result<u8, CliError> {
    let text = std::fs::read_to_string(&args.file).ok();
    if let Some(saved) = text.as_deref().and_then(|t| SavedPlan::from_json(t).ok()) {
        let stack = PathBuf::from(&saved.stack_file);
        return run_source(ctx, &args, &stack, Source::Saved(Box::new(saved)));
    }
    let source = Source::Stack { adopt: args.adopt, destroy: false, targets: args.target.clone() };
    run_source(ctx, &args, &args.file, source)
}

pub fn run_destroy(ctx: &Ctx, args: DestroyArgs) -> Result<u8, CliError> {
    let args = args.apply;
    let source = Source::Stack { adopt: args.adopt, destroy: true, targets: args.target.clone() };
    run_source(ctx, &args, &args.file, source)
}

fn run_source(ctx: &Ctx, args: &ApplyArgs, stack: &Path, source: Source) -> Result<u8, CliError> {
    let rename_from = match &source {
        Source::Saved(saved) => saved.rename_from.clone(),
        Source::Stack { .. } => args.rename_from.clone(),
    };
    let desired = super::load_stack(stack, rename_from.as_deref())?;
    if let Source::Saved(saved) = &source
        && desired.fingerprint() != saved.desired_sha256
    {
        return Err(CliError::Stale {
            moved: vec![format!(
                "{}: the stack file or one of its policy documents changed since the plan was made",
                saved.stack_file
            )],
        });
    }
    let targets = match &source {
        Source::Stack { targets, .. } => targets.clone(),
        Source::Saved(saved) => saved.plan.targets.clone(),
    };
    let runtime = live::runtime()?;
    runtime.block_on(async {
        let clients = live::connect(&desired, &args.aws, &args.kube, &targets).await?;
        // Take the lock before reading, as Terraform does: a second apply
        // that waited must plan against what the first one left.
        let lock = match &clients.kube {
            Some(kube) => {
                let options = LockOptions {
                    namespace: args.lock_namespace.clone(),
                    timeout: Duration::from_secs(args.lock_timeout),
                    lease_seconds: args.lock_lease_seconds,
                };
                let lock = lock::acquire(kube, &desired.stack.name, &options).await?;
                tracing::info!("holding the lock as {}", lock.holder());
                Some(lock)
            }
            // A run whose targets stay in IAM does not contact the cluster, and so takes no lock.
            None => None,
        };
        let result = locked(ctx, args, stack, &desired, &clients, &source).await;
        if let Some(lock) = lock {
            if lock.lost() {
                eprintln!("warning: the lock expired during the run and was taken by another apply; plan again to check the result");
            }
            lock.release().await?;
        }
        result
    })
}

/// Everything done under the lock; the store is opened and closed inside
/// it, so a second apply that waited for the lock finds the store free.
async fn locked(
    ctx: &Ctx,
    args: &ApplyArgs,
    stack: &Path,
    desired: &Desired,
    clients: &live::Clients,
    source: &Source,
) -> Result<u8, CliError> {
    let store_dir = args.store.clone().unwrap_or_else(|| crate::store::default_dir(stack));
    let store = Store::open(&store_dir)?;
    let (observed, refresh) = live::read(desired, clients).await?;
    store.put_snapshot(&desired.stack.name, &observed)?;
    let (adopt, destroy, targets) = match source {
        Source::Stack { adopt, destroy, targets } => (*adopt, *destroy, targets.clone()),
        Source::Saved(saved) => (saved.adopt, saved.destroy, saved.plan.targets.clone()),
    };
    let options = PlanOptions { adopt, targets, refresh, destroy };
    let wanted = if destroy { desired.for_destroy() } else { desired.clone() };
    let current = crate::plan::plan(&wanted, &observed, &options).map_err(|e| CliError::from_plan(desired, e))?;

    let (plan, plan_id, done) = match source {
        Source::Stack { .. } => {
            let id = current.id();
            (current, id, HashSet::new())
        }
        Source::Saved(saved) => {
            let id = saved.id();
            let journal = store.journal_of(&id)?;
            let done = check_saved(&saved.plan, &current, &journal)?;
            (saved.plan.clone(), id, done)
        }
    };

    let text_options = render::Options { full_documents: false, color: ctx.color_stdout };
    ctx.print(&render::render(&plan, Format::Text, text_options))?;
    if plan.changes.is_empty() {
        return Ok(exit::SUCCESS);
    }
    if !done.is_empty() {
        eprintln!(
            "{} step{} of this plan were done by an earlier run; the rest follows.",
            done.len(),
            if done.len() == 1 { "" } else { "s" }
        );
    }
    if !args.auto_approve && !confirm(plan.changes.len())? {
        eprintln!("Apply cancelled; nothing was changed.");
        return Ok(exit::ERROR);
    }
    store.put_plan(&plan_id, &serde_json::to_string(&plan).unwrap_or_default())?;

    let calls_before = clients.iam.calls.total();
    let appliers = Appliers {
        iam: IamApplier { iam: &clients.iam, patience: Patience::default() },
        kube: clients.kube.as_ref().map(|kube| KubeApplier { kube }),
        settle: Duration::from_secs(args.iam_settle_seconds),
        parallelism: usize::from(args.parallelism),
    };
    let mut journal_error = None;
    let outcome = apply(&appliers, &plan, &done, |event| {
        let record = match event {
            Event::Started { address, removal } => {
                tracing::info!("{address}: started");
                Some((step_key(address, *removal), StepState::Started))
            }
            Event::Finished { step: Step::Done { address, what }, removal } => {
                eprintln!("  {address}: {what}");
                Some((step_key(address, *removal), StepState::Done))
            }
            Event::Finished { step: Step::Failed { address, error }, .. } => {
                eprintln!("  {address}: FAILED: {error}");
                None
            }
            Event::Finished { step: Step::Skipped { address }, .. } => {
                eprintln!("  {address}: skipped (it depends on a change that failed)");
                None
            }
        };
        if let Some((key, state)) = record
            && let Err(e) = store.journal(&plan_id, &key, state)
        {
            journal_error.get_or_insert(e);
        }
    })
    .await;
    if let Some(e) = journal_error {
        eprintln!("warning: {e}; a rerun re-plans from what exists instead of trusting the journal");
    }
    let count = |f: fn(&Step) -> bool| outcome.steps.iter().filter(|s| f(s)).count();
    let done_now = count(|s| matches!(s, Step::Done { .. }));
    let skipped = count(|s| matches!(s, Step::Skipped { .. }));
    let calls = clients.iam.calls.total() - calls_before;
    let failed: Vec<String> = outcome
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Failed { address, .. } => Some(address.to_string()),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        eprintln!(
            "Apply finished with failures: {done_now} done, {} failed, {skipped} skipped ({calls} IAM calls).",
            failed.len()
        );
        return Err(CliError::ApplyFailed { address: failed.join(", ") });
    }
    eprintln!("Apply complete: {done_now} step{} done ({calls} IAM calls).", if done_now == 1 { "" } else { "s" });
    Ok(exit::SUCCESS)
}

/// Compare a saved plan with a fresh one made now: every resource the saved
/// plan touches must be as it was when the plan was made, unless this
/// plan's own earlier run (the journal) changed it. Returns the steps that
/// run already finished.
fn check_saved(
    saved: &Plan,
    current: &Plan,
    journal: &std::collections::BTreeMap<String, crate::store::JournalEntry>,
) -> Result<HashSet<String>, CliError> {
    let mut done = HashSet::new();
    let mut moved = Vec::new();
    // One map instead of a search of the fresh plan per saved change (quadratic);
    // built backwards so that, as with the search, the first of one address wins.
    let current_by_address: std::collections::HashMap<_, _> =
        current.changes.iter().rev().map(|c| (&c.address, c)).collect();
    for change in &saved.changes {
        let keys: Vec<(String, bool)> = [true, false]
            .into_iter()
            .filter(|removal| has_step(change, *removal))
            .map(|removal| (step_key(&change.address, removal), removal))
            .collect();
        let journaled: Vec<&(String, bool)> = keys.iter().filter(|(k, _)| journal.contains_key(k)).collect();
        let now = current_by_address.get(&change.address).copied();
        let same_as_planned = match now {
            Some(now) => crate::plan::same_attributes(change.before.as_ref(), now.before.as_ref()),
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
    if moved.is_empty() { Ok(done) } else { Err(CliError::Stale { moved }) }
}

fn describe_move(planned: &crate::plan::Change, now: Option<&crate::plan::Change>) -> String {
    let address = &planned.address;
    match (planned.before.as_ref(), now) {
        (_, None) => format!("{address}: it is already as the plan would make it (changed by someone else)"),
        (None, Some(n)) if n.before.is_some() => format!("{address}: it did not exist when planned, and exists now"),
        (Some(_), Some(n)) if n.before.is_none() => format!("{address}: it existed when planned, and is gone now"),
        (Some(b), Some(n)) => {
            let keys = crate::plan::differing_attributes(Some(b), n.before.as_ref());
            let detail = keys
                .iter()
                .map(|k| match (b.get(k), n.before.as_ref().and_then(|m| m.get(k))) {
                    (Some(x), Some(y)) if !x.is_object() && !x.is_array() => format!("{k} {x} -> {y}"),
                    _ => k.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("{address}: changed since the plan was made ({detail})")
        }
        _ => format!("{address}: changed since the plan was made"),
    }
}

/// Ask on the terminal, as Terraform does; refuse when nobody can answer.
fn confirm(count: usize) -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage {
            message: "refusing to apply without confirmation: stdin is not a terminal".into(),
            help: "review the plan, then run again with --auto-approve".into(),
        });
    }
    eprint!("\nApply these {count} changes? Only 'yes' will be accepted: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(CliError::Output)?;
    Ok(answer.trim() == "yes")
}
