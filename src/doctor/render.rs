//! Drawing a [`Report`]: text for a terminal, Markdown for a pull request
//! or an incident ticket, JSON for machines (docs/doctor.md). All three
//! show the same checks in the same order: per ServiceAccount, errors first.

use std::fmt::Write;

use super::{Report, Status};

fn mark(status: Status) -> &'static str {
    match status {
        Status::Error => "✗",
        Status::Warning => "!",
        Status::Unknown => "?",
        Status::Ok => "✓",
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn header(report: &Report) -> String {
    let scope = match &report.stack {
        Some(stack) => format!("stack {stack}"),
        None => "no stack".to_owned(),
    };
    let mut line = format!(
        "irsa doctor · {scope} · {} · read with {}, {}",
        plural(report.service_accounts.len(), "service account"),
        plural(report.reads.iam_calls as usize, "IAM call"),
        plural(report.reads.kube_requests as usize, "Kubernetes request"),
    );
    if report.reads.sts_calls > 0 {
        let _ = write!(line, ", {}", plural(report.reads.sts_calls as usize, "STS call"));
    }
    line
}

fn totals(report: &Report) -> String {
    let s = &report.summary;
    let mut line = format!("Doctor: {}, {}, {} ok", plural(s.error, "error"), plural(s.warning, "warning"), s.ok);
    if s.unknown > 0 {
        let _ = write!(line, ", {} could not be checked", s.unknown);
    }
    line.push('.');
    line
}

/// Text: a block per ServiceAccount, one line per check with its fix.
pub fn text(report: &Report, color: bool) -> String {
    let paint = |status: Status, s: &str| -> String {
        if !color {
            return s.to_owned();
        }
        let code = match status {
            Status::Error => "31",
            Status::Warning => "33",
            Status::Unknown => "35",
            Status::Ok => "32",
        };
        format!("\x1b[{code}m{s}\x1b[0m")
    };
    let mut out = header(report) + "\n";
    if let Some(issuer) = &report.issuer {
        let _ = writeln!(out, "issuer {issuer} (from the {})", report.issuer_source);
    }
    if report.service_accounts.is_empty() {
        out.push_str("\nNo ServiceAccount to check: none carries eks.amazonaws.com/role-arn.\n");
    }
    for sa in &report.service_accounts {
        let _ = write!(out, "\n{} sa/{}/{}", paint(sa.status, mark(sa.status)), sa.namespace, sa.name);
        if let Some(arn) = &sa.role_arn {
            let _ = write!(out, " → {arn}");
        }
        out.push('\n');
        for c in &sa.checks {
            let _ = write!(out, "  {} {:<22} {}", paint(c.status, mark(c.status)), c.check, c.message);
            if let Some(fix) = &c.fix {
                let _ = write!(out, " — fix: {fix}");
            }
            out.push('\n');
        }
    }
    out.push('\n');
    out.push_str(&totals(report));
    out.push('\n');
    out
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Markdown: a summary line, then a table per ServiceAccount.
pub fn markdown(report: &Report) -> String {
    let mut out = format!("### {}\n\n", header(report).replace(" · ", " — "));
    let icon = |s: Status| match s {
        Status::Error => "❌",
        Status::Warning => "⚠️",
        Status::Unknown => "❔",
        Status::Ok => "✅",
    };
    let _ = writeln!(out, "**{}**\n", totals(report));
    if let Some(issuer) = &report.issuer {
        let _ = writeln!(out, "Issuer `{issuer}` (from the {}).\n", report.issuer_source);
    }
    for sa in &report.service_accounts {
        let _ = write!(out, "#### {} `sa/{}/{}`", icon(sa.status), sa.namespace, sa.name);
        if let Some(arn) = &sa.role_arn {
            let _ = write!(out, " → `{arn}`");
        }
        out.push_str("\n\n| | check | seen | fix |\n|---|---|---|---|\n");
        for c in &sa.checks {
            let fix = c.fix.as_deref().map(|f| format!("`{}`", cell(f).replace('`', "'"))).unwrap_or_default();
            let _ = writeln!(out, "| {} | {} | {} | {fix} |", icon(c.status), c.check, cell(&c.message));
        }
        out.push('\n');
    }
    out
}

pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a doctor report serialises to JSON") + "\n"
}

#[cfg(test)]
mod tests {
    use super::super::{Check, Reads, Report, ServiceAccountReport};
    use super::*;

    fn report() -> Report {
        let checks = vec![
            Check::ok("provider", "arn:aws:iam::1:oidc-provider/x has client id sts.amazonaws.com"),
            Check::error("trust", "no statement | admits it", "irsa apply s.toml"),
            Check::unknown(
                "webhook",
                "forbidden (needs list on mutatingwebhookconfigurations.admissionregistration.k8s.io)",
            ),
        ];
        let sa = ServiceAccountReport::new("backend", "app", Some("arn:aws:iam::1:role/app".into()), checks);
        Report::new(
            Some("s".into()),
            Some("https://x".into()),
            "stack",
            Reads { iam_calls: 4, kube_requests: 5, sts_calls: 0 },
            vec![sa],
        )
    }

    #[test]
    fn text_puts_errors_first_with_their_fix() {
        let text = text(&report(), false);
        insta::assert_snapshot!(text, @r"
        irsa doctor · stack s · 1 service account · read with 4 IAM calls, 5 Kubernetes requests
        issuer https://x (from the stack)

        ✗ sa/backend/app → arn:aws:iam::1:role/app
          ✗ trust                  no statement | admits it — fix: irsa apply s.toml
          ? webhook                could not check: forbidden (needs list on mutatingwebhookconfigurations.admissionregistration.k8s.io)
          ✓ provider               arn:aws:iam::1:oidc-provider/x has client id sts.amazonaws.com

        Doctor: 1 error, 0 warnings, 1 ok, 1 could not be checked.
        ");
    }

    #[test]
    fn markdown_escapes_table_cells() {
        let md = markdown(&report());
        assert!(md.contains("| ❌ | trust | no statement \\| admits it | `irsa apply s.toml` |"), "{md}");
        assert!(md.starts_with("### irsa doctor — stack s"), "{md}");
    }

    #[test]
    fn json_is_versioned() {
        let v: serde_json::Value = serde_json::from_str(&json(&report())).unwrap();
        assert_eq!(v["format_version"], "1");
        assert_eq!(v["summary"]["error"], 1);
        assert_eq!(v["service_accounts"][0]["checks"][0]["status"], "error");
        assert_eq!(v["service_accounts"][0]["checks"][0]["fix"], "irsa apply s.toml");
        assert!(v["service_accounts"][0]["checks"][2].get("fix").is_none());
    }
}
