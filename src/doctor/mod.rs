//! `irsa doctor`: does the IRSA chain of a ServiceAccount *work*, link by
//! link, and what fixes each broken link.
//!
//! Compute and draw are apart, as in `plan` and `render`: [`read`] gathers
//! the facts live (IAM in bulk, the cluster one LIST per kind and
//! namespace, one TokenRequest per ServiceAccount) into [`facts`]; the pure
//! [`checks`] turn facts into a [`Report`] (trust policies evaluated as STS
//! evaluates `AssumeRoleWithWebIdentity` in [`trust`], token claims decoded
//! in [`jwt`]); [`render`] draws the report as text, Markdown or JSON.

pub mod checks;
pub mod facts;
pub mod jwt;
pub mod read;
pub mod render;
pub mod trust;

use serde::Serialize;

/// The version of `irsa doctor --format json` (docs/doctor.md).
pub const FORMAT_VERSION: &str = "1";

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Broken: the pod will not get credentials, or gets the wrong ones.
    Error,
    /// Works, but is unsafe or fragile (a wildcard subject, a hostNetwork pod).
    Warning,
    /// irsa could not look (a permission it lacks, a read that failed).
    Unknown,
    Ok,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Error => "error",
            Status::Warning => "warning",
            Status::Unknown => "unknown",
            Status::Ok => "ok",
        }
    }
}

/// One check of one ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// A stable name: `provider`, `annotation`, `role`, `trust`, `trust-subject`, … (docs/doctor.md).
    pub check: &'static str,
    pub status: Status,
    /// What was seen, one sentence.
    pub message: String,
    /// The exact command, stack-file line or policy statement that fixes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(check: &'static str, message: impl Into<String>) -> Check {
        Check { check, status: Status::Ok, message: message.into(), fix: None }
    }
    pub fn warning(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { check, status: Status::Warning, message: message.into(), fix: Some(fix.into()) }
    }
    pub fn error(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { check, status: Status::Error, message: message.into(), fix: Some(fix.into()) }
    }
    /// A check that could not be made; `why` says what irsa lacked.
    pub fn unknown(check: &'static str, why: impl Into<String>) -> Check {
        Check { check, status: Status::Unknown, message: format!("could not check: {}", why.into()), fix: None }
    }
}

/// Every check of one ServiceAccount, errors first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceAccountReport {
    pub namespace: String,
    pub name: String,
    /// The `eks.amazonaws.com/role-arn` annotation, as written.
    pub role_arn: Option<String>,
    /// The worst status of its checks.
    pub status: Status,
    pub checks: Vec<Check>,
}

impl ServiceAccountReport {
    pub fn new(namespace: &str, name: &str, role_arn: Option<String>, mut checks: Vec<Check>) -> Self {
        // Stable: within a status, checks keep the order of the chain.
        checks.sort_by_key(|c| c.status);
        let status = checks.iter().map(|c| c.status).min().unwrap_or(Status::Ok);
        ServiceAccountReport { namespace: namespace.into(), name: name.into(), role_arn, status, checks }
    }
}

/// Counts of checks by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub error: usize,
    pub warning: usize,
    pub unknown: usize,
    pub ok: usize,
}

/// How many calls the checks took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Reads {
    pub iam_calls: u64,
    pub kube_requests: u64,
    pub sts_calls: u64,
}

/// The whole doctor run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub format_version: &'static str,
    /// The stack, with `irsa doctor FILE`; none with `--namespace`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// The issuer the checks used, and where it came from (`stack` or `discovery`).
    pub issuer: Option<String>,
    pub issuer_source: &'static str,
    pub reads: Reads,
    pub summary: Summary,
    pub service_accounts: Vec<ServiceAccountReport>,
}

impl Report {
    pub fn new(
        stack: Option<String>,
        issuer: Option<String>,
        issuer_source: &'static str,
        reads: Reads,
        mut service_accounts: Vec<ServiceAccountReport>,
    ) -> Report {
        service_accounts.sort_by(|a, b| (a.status, &a.namespace, &a.name).cmp(&(b.status, &b.namespace, &b.name)));
        let mut summary = Summary::default();
        for c in service_accounts.iter().flat_map(|s| &s.checks) {
            match c.status {
                Status::Error => summary.error += 1,
                Status::Warning => summary.warning += 1,
                Status::Unknown => summary.unknown += 1,
                Status::Ok => summary.ok += 1,
            }
        }
        Report { format_version: FORMAT_VERSION, stack, issuer, issuer_source, reads, summary, service_accounts }
    }

    /// Any error: the run exits 1, so a pipeline can gate on it. Warnings
    /// and checks that could not be made do not fail it.
    pub fn failed(&self) -> bool {
        self.summary.error > 0
    }
}
