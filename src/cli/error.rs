//! Every error a command can end with, classified once into an exit code and
//! rendered once, here at the edge.

use std::fmt::Write as _;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme};

use super::diagnostics::{self, Diag, ErrorFormat, Severity};
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
    /// The cluster's key in a stack of several clusters, and what failed.
    #[error("reading the cluster{}", .0.as_ref().map(|k| format!(" {k}")).unwrap_or_default())]
    Kube(Option<String>, #[source] crate::cluster::KubeError),
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
            crate::refresh::ReadError::Kube(key, e) => CliError::Kube(key, e),
        }
    }
}

impl From<crate::lock::LockError> for CliError {
    fn from(e: crate::lock::LockError) -> Self {
        CliError::Lock(Box::new(e))
    }
}

impl CliError {
    /// A stable identifier of the kind of error, for `--error-format
    /// github|json` (problems in files carry their own).
    pub fn code(&self) -> &'static str {
        match self {
            CliError::Load(LoadError::Read { .. }) => "irsa::read_stack",
            CliError::Load(LoadError::Invalid(_)) => "irsa::config",
            CliError::Snapshot(_) => "irsa::snapshot",
            CliError::Plan { .. } => "irsa::plan",
            CliError::Usage { .. } => "irsa::usage",
            CliError::ReadPlan { .. } | CliError::BadPlanFile { .. } => "irsa::saved_plan",
            CliError::Write { .. } => "irsa::write",
            CliError::Output(_) => "irsa::output",
            CliError::Runtime(_) => "irsa::runtime",
            CliError::Aws(_) => "irsa::aws",
            CliError::Kube(..) => "irsa::kube",
            CliError::Lock(_) => "irsa::lock",
            CliError::Stale { .. } => "irsa::stale",
            CliError::Store(_) => "irsa::store",
            CliError::Findings { .. } => "irsa::findings",
            CliError::ApplyFailed { .. } => "irsa::apply_failed",
        }
    }

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
        let source = Source::shared(desired.source.path.display().to_string(), desired.source.text.clone());
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

/// The error as diagnostics, each problem once, and the closing sentence
/// that the human form ends with (when there is one besides the problems).
pub fn diagnostics(e: &CliError) -> (Vec<Diag>, Option<String>) {
    let unlocated = |message: String, help: Option<String>| Diag::unlocated(Severity::Error, e.code(), message, help);
    match e {
        CliError::Load(LoadError::Invalid(Problems { path, problems })) => {
            let n = problems.len();
            (
                problems.iter().map(Diag::from_problem).collect(),
                Some(format!(
                    "{} has {n} problem{}; nothing was changed",
                    path.display(),
                    if n == 1 { "" } else { "s" }
                )),
            )
        }
        CliError::Snapshot(SnapshotError::Invalid(p)) => (vec![Diag::from_problem(p)], None),
        CliError::Plan { problems, unlocated: rest } => {
            let mut out: Vec<Diag> = problems.iter().map(Diag::from_problem).collect();
            for u in rest {
                let at = u.address.as_ref().map(|a| format!("{a}: ")).unwrap_or_default();
                out.push(unlocated(format!("{at}{}", u.message), Some(u.help.clone())));
            }
            (out, Some("the stack cannot be planned; nothing was changed".into()))
        }
        CliError::Stale { moved, plan_errors } => {
            let mut message = format!(
                "the saved plan is stale; nothing was changed. What moved since it was made: {}",
                moved.join("; ")
            );
            if !plan_errors.is_empty() {
                let _ = write!(message, ". A plan made now fails too: {}", plan_errors.join("; "));
            }
            (vec![unlocated(message, Some("plan again, review the new plan, and apply that one".into()))], None)
        }
        CliError::Usage { message, help } => (vec![unlocated(message.clone(), Some(help.clone()))], None),
        other => (vec![unlocated(chain(other), None)], None),
    }
}

/// Write an error to stderr, in full, once, in the form asked for. In the
/// JSON form, `earlier` are the warnings the command collected: the
/// document holds them all.
pub fn report_as(e: &CliError, style: Style, format: ErrorFormat, earlier: Vec<Diag>) {
    match format {
        ErrorFormat::Human => report(e, style),
        ErrorFormat::Github => {
            let (diags, summary) = diagnostics(e);
            let mut out: String = diags.iter().map(diagnostics::github_line).collect();
            if let Some(summary) = summary {
                let _ = writeln!(out, "error: {summary}");
            }
            eprint!("{out}");
        }
        ErrorFormat::Json => {
            let mut all = earlier;
            all.extend(diagnostics(e).0);
            eprint!("{}", diagnostics::json_document(&all));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Errors of no file keep their whole story in one diagnostic: what
    /// moved, what a plan made now says, and the advice.
    #[test]
    fn unlocated_errors_are_one_diagnostic_each() {
        let stale = CliError::Stale {
            moved: vec!["role/app changed".into(), "sa/ns/app deleted".into()],
            plan_errors: vec!["x fails".into()],
        };
        let (diags, summary) = diagnostics(&stale);
        assert_eq!(summary, None);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].code, "irsa::stale");
        assert_eq!(
            diags[0].message,
            "the saved plan is stale; nothing was changed. What moved since it was made: role/app changed; sa/ns/app deleted. A plan made now fails too: x fails"
        );
        assert_eq!(diags[0].help.as_deref(), Some("plan again, review the new plan, and apply that one"));
        assert_eq!((diags[0].file.as_ref(), diags[0].line), (None, None));

        let usage = CliError::Usage { message: "no".into(), help: "yes".into() };
        let (diags, _) = diagnostics(&usage);
        assert_eq!((diags[0].code.as_str(), diags[0].message.as_str()), ("irsa::usage", "no"));
        assert_eq!(diags[0].help.as_deref(), Some("yes"));

        let io = CliError::Write { path: "p".into(), source: std::io::Error::other("disk full") };
        let (diags, _) = diagnostics(&io);
        assert_eq!((diags[0].code.as_str(), diags[0].message.as_str()), ("irsa::write", "cannot write p: disk full"));
    }
}
