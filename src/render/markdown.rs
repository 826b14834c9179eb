//! The plan as a pull-request comment: GitHub-flavoured Markdown.
//!
//! A reviewer sees the summary, any destructive change and the security
//! review before scrolling; each resource's details are folded away in a
//! `<details>` section. A plan too long for one comment (GitHub takes 65,536
//! characters) is cut into parts: the first keeps the summary, caution,
//! security and warning blocks whole, the details follow in as many parts as
//! they need.

use std::fmt::Write as _;

use super::Options;
use super::view::{self, Line};
use crate::graph;
use crate::model::Address;
use crate::plan::Plan;
use crate::plan::review::Severity;

/// Text inside a code span cannot hold a backtick; IAM names and ARNs do not
/// either, but annotation values could.
fn code(s: &str) -> String {
    format!("`{}`", s.replace('`', "'"))
}

/// Escape what Markdown or HTML would interpret in prose and table cells.
/// Asterisks are common in IAM text (`"s3:*"`, `"*"`); two of them in one
/// sentence would turn what lies between into emphasis.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('|', "\\|").replace('*', "\\*")
}

/// The most characters of one part: under GitHub's 65,536 per comment,
/// with room for a workflow to add a line of its own.
pub const PART_LIMIT: usize = 60_000;

/// How many entries the caution, security and warning blocks list before
/// "and N more": they stay short, and whole, however large the plan.
const LISTED: usize = 40;

/// The plan as one Markdown text: the parts of [`parts`], one after the
/// other (each part of a long plan starts with its marker comment).
pub fn render(plan: &Plan, options: Options) -> String {
    parts(plan, options, PART_LIMIT).join("\n")
}

/// The plan as comments of at most `limit` characters each (a no-change or
/// short plan is one part). When there are several, each starts with the
/// line `<!-- irsa plan part K of N -->`, which GitHub does not show.
pub fn parts(plan: &Plan, options: Options, limit: usize) -> Vec<String> {
    // A reviewer reads new policies in full: the details are folded anyway.
    let options = Options { full_documents: true, ..options };
    if plan.changes.is_empty() {
        return vec![unchanged(plan)];
    }
    let head = head(plan);
    let sections: Vec<String> = view::changes(plan, options).iter().map(section).collect();
    let graph = graph_section(plan);
    let total = chars(&head) + sections.iter().map(|s| chars(s)).sum::<usize>() + chars(&graph);
    if total <= limit {
        return vec![format!("{head}{}{graph}", sections.concat())];
    }

    // Room for the part's marker and heading, with part numbers of any size.
    let heading = |k: usize, n: usize| {
        format!(
            "<!-- irsa plan part {k} of {n} -->\n### irsa plan for stack {} · details, part {k} of {n}\n\n",
            code(&plan.stack)
        )
    };
    let budget = limit.saturating_sub(chars(&heading(usize::MAX, usize::MAX)));
    let mut bodies: Vec<String> = Vec::new();
    let mut body = String::new();
    for section in sections.into_iter().map(|s| fit(s, budget)).chain(std::iter::once(fit_graph(graph, budget))) {
        if !body.is_empty() && chars(&body) + chars(&section) > budget {
            bodies.push(std::mem::take(&mut body));
        }
        body.push_str(&section);
    }
    if !body.is_empty() {
        bodies.push(body);
    }
    let n = bodies.len() + 1;
    let mut out = Vec::with_capacity(n);
    out.push(format!(
        "<!-- irsa plan part 1 of {n} -->\n{head}_This plan is too long for one comment: the details of its {} changes \
         follow in parts 2 to {n}._\n",
        plan.changes.len()
    ));
    for (i, body) in bodies.into_iter().enumerate() {
        out.push(format!("{}{body}", heading(i + 2, n)));
    }
    out
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// A plan without changes: one line, and what it was made from folded away.
fn unchanged(plan: &Plan) -> String {
    let mut out = format!(
        "**irsa plan for stack {}: no changes.** AWS IAM and the cluster match the stack file.\n\n",
        code(&plan.stack)
    );
    // Warnings stay in sight: a rollout that blocks a restart is news.
    warnings(&mut out, plan);
    let _ = writeln!(out, "<details><summary>Details</summary>\n\n{}\n", esc(&view::provenance(plan)));
    if !plan.targets.is_empty() {
        let _ = writeln!(out, "{}\n", targeted(plan));
    }
    let _ = writeln!(out, "</details>");
    out
}

fn targeted(plan: &Plan) -> String {
    let targets: Vec<String> = plan.targets.iter().map(|t| code(t)).collect();
    format!("Targeted plan: only {} and what they depend on.", targets.join(", "))
}

fn warnings(out: &mut String, plan: &Plan) {
    if plan.warnings.is_empty() {
        return;
    }
    let _ = writeln!(out, "> [!WARNING]");
    for w in plan.warnings.iter().take(LISTED) {
        let at = w.address.as_ref().map(|a| format!("{}: ", code(&a.to_string()))).unwrap_or_default();
        let _ = writeln!(out, "> - {at}{}", esc(&w.message));
    }
    if plan.warnings.len() > LISTED {
        let _ = writeln!(out, "> - and {} more warnings: the JSON plan lists them all", plan.warnings.len() - LISTED);
    }
    out.push('\n');
}

fn severity_badge(s: Severity) -> &'static str {
    match s {
        Severity::High => "🔴 **high**",
        Severity::Medium => "🟠 medium",
        Severity::Low => "🟡 low",
        Severity::Info => "⚪ info",
    }
}

/// Summary, caution, security review, warnings and the table of counts.
fn head(plan: &Plan) -> String {
    let mut out = String::new();
    let s = &plan.summary;
    let _ = writeln!(out, "### irsa plan for stack {}\n", code(&plan.stack));
    let _ = writeln!(out, "**Plan: {}.**\n", view::counts(plan));
    let _ = writeln!(out, "<sub>{}</sub>\n", esc(&view::provenance(plan)));
    if !plan.targets.is_empty() {
        let _ = writeln!(out, "{}\n", targeted(plan));
    }

    let destructive: Vec<_> =
        plan.changes.iter().filter(|c| c.actions.contains(&crate::plan::Action::Delete)).collect();
    if !destructive.is_empty() {
        let _ = writeln!(out, "> [!CAUTION]");
        let _ = writeln!(
            out,
            "> This plan **deletes or replaces {} resource{}**:",
            destructive.len(),
            if destructive.len() == 1 { "" } else { "s" }
        );
        for c in destructive.iter().take(LISTED) {
            let _ = writeln!(out, "> - {} ({})", code(&c.address.to_string()), c.verb());
        }
        if destructive.len() > LISTED {
            let _ = writeln!(
                out,
                "> - and {} more: `jq '.changes[] | select(.actions | index(\"delete\")) | .address'` on the JSON plan lists them",
                destructive.len() - LISTED
            );
        }
        out.push('\n');
    }
    security(&mut out, plan);
    warnings(&mut out, plan);

    let _ = writeln!(out, "| action | count |\n|---|---:|");
    for (name, n) in [
        ("create", s.create),
        ("update", s.update),
        ("replace", s.replace),
        ("delete", s.delete),
        ("restart", s.restart),
        ("adopt", s.adopt),
    ] {
        if n > 0 || name != "adopt" {
            let _ = writeln!(out, "| {name} | {n} |");
        }
    }
    out.push('\n');
    out
}

/// The security review block: the verdict, the findings (highest first),
/// and which changes widen or only narrow access.
fn security(out: &mut String, plan: &Plan) {
    let r = view::review(plan);
    let _ = writeln!(out, "#### Security review\n");
    let _ = writeln!(out, "This plan **{}**: {}.\n", r.verdict(), r.tally());
    if !r.findings.is_empty() {
        let _ = writeln!(out, "| severity | change | finding |\n|---|---|---|");
        for f in r.findings.iter().take(LISTED) {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                severity_badge(f.severity),
                code(&f.address.to_string()),
                esc(&f.message)
            );
        }
        if r.findings.len() > LISTED {
            let _ = writeln!(
                out,
                "\nand {} more findings of lower or equal severity: the JSON plan lists them all (`findings`).",
                r.findings.len() - LISTED
            );
        }
        out.push('\n');
    }
    let addresses = |changes: &[&crate::plan::Change]| view::capped(changes, LISTED, |c| code(&c.address.to_string()));
    if !r.widens.is_empty() {
        let _ = writeln!(out, "- Widens access ({}): {}", r.widens.len(), addresses(&r.widens));
    }
    if !r.narrows.is_empty() {
        let _ = writeln!(out, "- Only narrows access ({}): {}", r.narrows.len(), addresses(&r.narrows));
    }
    if r.same > 0 {
        let _ = writeln!(out, "- Leaves access as it is: {} change{}", r.same, if r.same == 1 { "" } else { "s" });
    }
    out.push('\n');
}

/// One change's folded details.
fn section(c: &view::ChangeView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "<details><summary><code>{} {}</code> {}</summary>\n", c.symbol, esc(&c.address), c.verb);
    let mut prose = Vec::new();
    let mut diff = Vec::new();
    for line in &c.lines {
        match line {
            Line::Value { key, value } => prose.push(format!("- {}: {}", esc(key), code(value))),
            Line::Summary { key, text } => prose.push(format!("- {}: {}", esc(key), esc(text))),
            Line::Changed { key, before, after, note } => {
                let note = note.as_ref().map(|n| format!(" {}", esc(n))).unwrap_or_default();
                prose.push(format!("- {}: {} → {}{note}", esc(key), code(before), code(after)));
            }
            Line::Entry { sign, key, value } => {
                let what = if *sign == '+' { "added" } else { "removed" };
                prose.push(format!("- {}: {} ({what})", esc(key), code(value)));
            }
            Line::Document { key, diff: lines } => {
                diff.push(format!("{key}:"));
                for d in lines {
                    diff.push(format!("{}{}", if d.sign == '@' { String::new() } else { d.sign.to_string() }, d.text));
                }
            }
            Line::Reason(r) => prose.push(format!("- _{}_", esc(r))),
        }
    }
    for p in prose {
        let _ = writeln!(out, "{p}");
    }
    if !diff.is_empty() {
        let _ = writeln!(out, "\n```diff\n{}\n```", diff.join("\n"));
    }
    let _ = writeln!(out, "\n</details>\n");
    out
}

/// A section longer than a part: cut at a line, its fence and `<details>`
/// closed, with a note of what is left out. IAM's size quotas keep real
/// documents far below this; it guards the limit, not a common case.
fn fit(section: String, budget: usize) -> String {
    if chars(&section) <= budget {
        return section;
    }
    let note =
        "\n_(cut here: this change is too long for a comment; `irsa show PLAN` shows all of it)_\n\n</details>\n\n";
    let room = budget.saturating_sub(chars(note) + "\n```\n".len());
    let mut out = String::new();
    let mut fenced = false;
    let mut kept = 0;
    for line in section.lines() {
        let n = chars(line) + 1;
        if kept + n > room {
            break;
        }
        if line.starts_with("```") {
            fenced = !fenced;
        }
        out.push_str(line);
        out.push('\n');
        kept += n;
    }
    if fenced {
        out.push_str("```\n");
    }
    out.push_str(note);
    out
}

/// The graph of the changed resources, so a reviewer sees what waits for what.
fn graph_section(plan: &Plan) -> String {
    let nodes: Vec<&Address> = plan.changes.iter().map(|c| &c.address).collect();
    let edges: Vec<(Address, Address)> =
        plan.changes.iter().flat_map(|c| c.depends_on.iter().map(move |d| (d.clone(), c.address.clone()))).collect();
    format!(
        "<details><summary>Order of the changes</summary>\n\n```mermaid\n{}```\n\n</details>\n",
        graph::mermaid(nodes, &edges)
    )
}

/// The graph, or a pointer to `irsa graph` when it does not fit a part.
fn fit_graph(graph: String, budget: usize) -> String {
    if chars(&graph) <= budget {
        graph
    } else {
        "<details><summary>Order of the changes</summary>\n\nThe graph of this plan is too large for a comment: \
         `irsa graph FILE` draws it.\n\n</details>\n"
            .into()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::{Action, Change, Summary, review};

    /// A plan of `n` new roles, each trusting one ServiceAccount, and one
    /// attachment of AdministratorAccess deleted: long enough to cut.
    fn plan_of(n: usize) -> Plan {
        let provider = "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC";
        let mut changes: Vec<Box<Change>> = (0..n)
            .map(|i| {
                let statement = crate::model::trust::web_identity_statement(
                    "Irsashop",
                    provider,
                    "oidc.eks.eu-west-1.amazonaws.com/id/ABC",
                    &[format!("system:serviceaccount:shop:app-{i}")],
                );
                let trust = crate::model::trust::owned_trust_policy(vec![statement]);
                let address: Address = format!("role/app-{i}").parse().unwrap();
                Box::new(Change {
                    kind: address.kind(),
                    address,
                    actions: [Action::Create].into(),
                    reasons: vec!["not present".into()],
                    before: None,
                    after: Some(crate::plan::Attrs::from(
                        json!({"name": format!("app-{i}"), "path": "/irsa/", "trust_policy": trust.canonical()}),
                    )),
                    changed: Box::default(),
                    depends_on: vec![],
                    guard: Default::default(),
                    access: None,
                })
            })
            .collect();
        let admin: Address = "role/old/attach/arn:aws:iam::aws:policy/AdministratorAccess".parse().unwrap();
        changes.push(Box::new(Change {
            kind: admin.kind(),
            address: admin,
            actions: [Action::Delete].into(),
            reasons: vec!["attached, but not in the stack file".into()],
            before: Some(crate::plan::Attrs::from(
                json!({"role": "old", "policy_arn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
            )),
            after: None,
            changed: Box::default(),
            depends_on: vec![],
            guard: Default::default(),
            access: None,
        }));
        let findings = review::review_all("shop", &mut changes);
        Plan {
            format_version: crate::plan::FORMAT_VERSION.into(),
            irsa_version: "test".into(),
            stack: "shop".into(),
            refresh: Default::default(),
            summary: Summary::of(&changes),
            changes,
            warnings: vec![],
            findings,
            targets: vec![],
        }
    }

    fn summaries(part: &str) -> Vec<&str> {
        part.lines().filter(|l| l.starts_with("<details><summary><code>")).collect()
    }

    #[test]
    fn a_short_plan_is_one_part_without_a_marker() {
        let plan = plan_of(2);
        let parts = parts(&plan, Options::default(), PART_LIMIT);
        assert_eq!(parts.len(), 1);
        assert!(!parts[0].contains("<!-- irsa plan part"));
        assert_eq!(render(&plan, Options::default()), parts[0]);
    }

    #[test]
    fn a_long_plan_keeps_its_head_whole_and_spreads_the_details() {
        let plan = plan_of(12);
        let limit = 4_000;
        let parts = parts(&plan, Options::default(), limit);
        assert!(parts.len() > 2, "{}", parts.len());
        let n = parts.len();
        for (i, p) in parts.iter().enumerate() {
            assert!(chars(p) <= limit, "part {} has {} characters", i + 1, chars(p));
            assert!(p.starts_with(&format!("<!-- irsa plan part {} of {n} -->\n", i + 1)), "{p}");
        }
        // The first part: summary, caution and security blocks, no details.
        let first = &parts[0];
        for block in ["**Plan: 12 to create", "> [!CAUTION]", "#### Security review", "| action | count |"] {
            assert!(first.contains(block), "{block} missing from part 1");
        }
        assert!(summaries(first).is_empty());
        assert!(first.contains(&format!("follow in parts 2 to {n}")));
        // Every change's details exactly once, in plan order, sections whole.
        let shown: Vec<&str> = parts[1..].iter().flat_map(|p| summaries(p)).collect();
        assert_eq!(shown.len(), plan.changes.len());
        for (line, change) in shown.iter().zip(&plan.changes) {
            assert!(line.contains(&format!("{}</code>", change.address)), "{line}");
        }
        for p in &parts[1..] {
            assert_eq!(p.matches("<details>").count(), p.matches("</details>").count(), "{p}");
            assert_eq!(p.matches("```").count() % 2, 0);
        }
        assert!(parts[n - 1].contains("Order of the changes"));
        insta::assert_snapshot!("long-plan-parts", parts.join("\n===== next comment =====\n"));
    }

    #[test]
    fn a_section_longer_than_a_part_is_cut_with_its_fences_closed() {
        let plan = plan_of(1);
        let parts = parts(&plan, Options::default(), 700);
        let details = &parts[1];
        assert!(chars(details) <= 700, "{}", chars(details));
        assert!(details.contains("_(cut here: this change is too long for a comment"), "{details}");
        assert_eq!(details.matches("```").count() % 2, 0, "{details}");
        assert!(details.trim_end().ends_with("</details>"));
        // A graph too large for a part: a pointer to `irsa graph`.
        let graph = graph_section(&plan_of(30));
        assert!(
            fit_graph(graph.clone(), 10_000)
                .starts_with("<details><summary>Order of the changes</summary>\n\n```mermaid")
        );
        assert!(fit_graph(graph, 500).contains("`irsa graph FILE` draws it"));
    }

    #[test]
    fn the_head_lists_at_most_forty_entries_per_block() {
        let mut plan = plan_of(45);
        for c in &mut plan.changes {
            c.actions = [Action::Delete].into();
        }
        plan.summary = Summary::of(&plan.changes);
        let parts = parts(&plan, Options::default(), PART_LIMIT);
        let head = &parts[0];
        assert!(head.contains("> - and 6 more: `jq"), "{head}");
        assert!(head.contains("and 5 more findings"), "{head}");
        assert!(head.contains("- Widens access (45): "));
        assert!(head.contains(", and 5 more\n"), "{head}");
    }

    #[test]
    fn no_changes_is_one_line_and_a_folded_block() {
        let mut plan = plan_of(0);
        plan.changes.clear();
        plan.findings.clear();
        plan.refresh.snapshot = Some("seen.json".into());
        let parts = parts(&plan, Options::default(), PART_LIMIT);
        insta::assert_snapshot!(parts.join(""), @r"
        **irsa plan for stack `shop`: no changes.** AWS IAM and the cluster match the stack file.

        <details><summary>Details</summary>

        observed from seen.json

        </details>
        ");
    }
}
