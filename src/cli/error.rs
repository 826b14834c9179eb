//! Every error a command can end with, classified once into an exit code and
//! rendered once, here at the edge.

use std::fmt::Write as _;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme};

use crate::config::{LoadError, Problem, Problems, Source};
use crate::model::desired::Desired;
use crate::plan::PlanError;
use crate::refresh::snapshot::SnapshotError;

/// Exit codes, as SPEC.md documents them.
pub mod exit {
    /// Success; with `--detailed-exitcode`, success and no changes.
    pub const SUCCESS: u8 = 0;
    /// An error: bad input, a failed call, a refused plan.
    pub const ERROR: u8 = 1;
    /// With `--detailed-exitcode`: the plan has changes.
    pub const CHANGES: u8 = 2;
    /// A saved plan is stale: the world moved since it was made.
    pub const STALE: u8 = 3;
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The stack cannot be planned against what exists.
    #[error("the stack cannot be planned")]
    Plan { problems: Vec<Problem>, unlocated: Vec<PlanError> },
    #[error("{message}")]
    Usage { message: String, help: String },
    #[error("cannot read saved plan {path}")]
    ReadPlan {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a saved irsa plan: {reason}")]
    BadPlanFile { path: String, reason: String },
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("reading AWS IAM: {0}")]
    Aws(crate::refresh::aws::CallError),
    #[error("reading the cluster")]
    Kube(#[source] crate::cluster::KubeError),
    #[error(transparent)]
    Lock(Box<crate::lock::LockError>),
    /// A saved plan whose world moved since it was made; `plan_errors` are
    /// those of a plan made now, when it fails too.
    #[error("the saved plan is stale: {} moved since it was made", moved.len())]
    Stale { moved: Vec<String>, plan_errors: Vec<String> },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// `--fail-on-findings`: the plan was printed (and saved), and its
    /// security review has findings at or above the threshold.
    #[error(
        "the plan has {count} security finding{} at or above {severity} (--fail-on-findings {severity}); see its security review",
        if *count == 1 { "" } else { "s" }
    )]
    Findings { count: usize, severity: &'static str },
    /// The apply stopped; what was done and what failed were already reported.
    #[error("the apply failed at {address}; the next plan shows what is left")]
    ApplyFailed { address: String },
}

impl From<crate::refresh::ReadError> for CliError {
    fn from(e: crate::refresh::ReadError) -> Self {
        match e {
            crate::refresh::ReadError::Aws(e) => CliError::Aws(e),
            crate::refresh::ReadError::Kube(e) => CliError::Kube(e),
        }
    }
}

impl From<crate::lock::LockError> for CliError {
    fn from(e: crate::lock::LockError) -> Self {
        CliError::Lock(Box::new(e))
    }
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Stale { .. } => exit::STALE,
            _ => exit::ERROR,
        }
    }

    /// How the apply workflow stopped, in the command line's terms.
    pub fn from_workflow(desired: &Desired, e: crate::apply::workflow::WorkflowError) -> CliError {
        use crate::apply::workflow::WorkflowError as W;
        match e {
            W::Read(e) => e.into(),
            W::Lock(e) => CliError::Lock(e),
            W::Store(e) => e.into(),
            W::Plan(errors) => CliError::from_plan(desired, errors),
            W::Stale { moved, plan_errors } => CliError::Stale { moved, plan_errors },
        }
    }

    /// Plan errors, located in the stack file where they have a span.
    pub fn from_plan(desired: &Desired, errors: Vec<PlanError>) -> CliError {
        let source = Source::new(desired.source.path.display().to_string(), desired.source.text.clone());
        let mut problems = Vec::new();
        let mut unlocated = Vec::new();
        for e in errors {
            match e.span {
                Some(span) => problems.push(Problem {
                    code: "irsa::plan",
                    message: e.message,
                    source: source.clone(),
                    span,
                    label: "declared here".into(),
                    help: Some(e.help),
                }),
                None => unlocated.push(e),
            }
        }
        CliError::Plan { problems, unlocated }
    }
}

fn handler(color: bool) -> GraphicalReportHandler {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    GraphicalReportHandler::new_themed(theme).with_width(100).with_context_lines(1)
}

/// How problems in files are reported: once each, in one of two forms.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// miette's picture of the source (a person at a terminal), rather than
    /// the `error: file:line:col: message` line and its help (editors, CI
    /// logs and their scanners).
    pub graphical: bool,
    pub color: bool,
}

fn render_problem(out: &mut String, problem: &Problem, style: Style) {
    if style.graphical {
        let mut picture = String::new();
        if handler(style.color).render_report(&mut picture, problem as &dyn Diagnostic).is_ok() {
            out.push_str(&picture);
            out.push('\n');
            return;
        }
    }
    let _ = writeln!(out, "error: {}: {problem}", problem.location());
    if let Some(help) = &problem.help {
        let _ = writeln!(out, "  help: {}", help.replace('\n', "\n        "));
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        // Some errors (kube's, io's) repeat their source in their own
        // message; say each thing once.
        let text = c.to_string();
        if !s.contains(&text) {
            let _ = write!(s, ": {text}");
        }
        cur = c.source();
    }
    s
}

/// Write an error to stderr, in full, once.
pub fn report(e: &CliError, style: Style) {
    let mut out = String::new();
    match e {
        CliError::Load(LoadError::Invalid(Problems { path, problems })) => {
            for p in problems {
                render_problem(&mut out, p, style);
            }
            let n = problems.len();
            let _ = writeln!(
                out,
                "error: {} has {n} problem{}; nothing was changed",
                path.display(),
                if n == 1 { "" } else { "s" }
            );
        }
        CliError::Snapshot(SnapshotError::Invalid(p)) => render_problem(&mut out, p, style),
        CliError::Plan { problems, unlocated } => {
            for p in problems {
                render_problem(&mut out, p, style);
            }
            for u in unlocated {
                let at = u.address.as_ref().map(|a| format!("{a}: ")).unwrap_or_default();
                let _ = writeln!(out, "error: {at}{}\n  help: {}", u.message, u.help);
            }
            let _ = writeln!(out, "error: the stack cannot be planned; nothing was changed");
        }
        CliError::Stale { moved, plan_errors } => {
            let _ = writeln!(out, "error: the saved plan is stale; nothing was changed. What moved since it was made:");
            for m in moved {
                let _ = writeln!(out, "  - {m}");
            }
            if !plan_errors.is_empty() {
                let _ = writeln!(out, "A plan made now fails too:");
                for e in plan_errors {
                    let _ = writeln!(out, "  - {e}");
                }
            }
            let _ = writeln!(out, "  help: plan again, review the new plan, and apply that one");
        }
        CliError::Usage { message, help } => {
            let _ = writeln!(out, "error: {message}\n  help: {help}");
        }
        other => {
            let _ = writeln!(out, "error: {}", chain(other));
        }
    }
    eprint!("{out}");
}
