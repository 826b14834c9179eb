//! The plan as a pull-request comment: GitHub-flavoured Markdown.
//!
//! A reviewer sees the summary and any destructive change before scrolling;
//! each resource's details are folded away in a `<details>` section.

use std::fmt::Write as _;

use super::Options;
use super::view::{self, Line};
use crate::graph;
use crate::model::Address;
use crate::plan::Plan;

/// Text inside a code span cannot hold a backtick; IAM names and ARNs do not
/// either, but annotation values could.
fn code(s: &str) -> String {
    format!("`{}`", s.replace('`', "'"))
}

/// Escape what Markdown or HTML would interpret in prose and table cells.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('|', "\\|")
}

pub fn render(plan: &Plan, options: Options) -> String {
    // A reviewer reads new policies in full: the details are folded anyway.
    let options = Options { full_documents: true, ..options };
    let mut out = String::new();
    let s = &plan.summary;
    let _ = writeln!(out, "### irsa plan for stack {}\n", code(&plan.stack));
    if plan.changes.is_empty() {
        let _ = writeln!(out, "**No changes.** AWS IAM and the cluster match the stack file.\n");
    } else {
        let _ = writeln!(out, "**Plan: {}.**\n", view::counts(plan));
    }
    let _ = writeln!(out, "<sub>{}</sub>\n", esc(&view::provenance(plan)));
    if !plan.targets.is_empty() {
        let targets: Vec<String> = plan.targets.iter().map(|t| code(t)).collect();
        let _ = writeln!(out, "Targeted plan: only {} and what they depend on.\n", targets.join(", "));
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
        for c in &destructive {
            let _ = writeln!(out, "> - {} ({})", code(&c.address.to_string()), c.verb());
        }
        out.push('\n');
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "> [!WARNING]");
        for w in &plan.warnings {
            let at = w.address.as_ref().map(|a| format!("{}: ", code(&a.to_string()))).unwrap_or_default();
            let _ = writeln!(out, "> - {at}{}", esc(&w.message));
        }
        out.push('\n');
    }
    if plan.changes.is_empty() {
        return out;
    }

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

    for c in view::changes(plan, options) {
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
                        diff.push(format!(
                            "{}{}",
                            if d.sign == '@' { String::new() } else { d.sign.to_string() },
                            d.text
                        ));
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
    }

    // The graph of the changed resources, so a reviewer sees what waits for what.
    let nodes: Vec<&Address> = plan.changes.iter().map(|c| &c.address).collect();
    let edges: Vec<(Address, Address)> =
        plan.changes.iter().flat_map(|c| c.depends_on.iter().map(move |d| (d.clone(), c.address.clone()))).collect();
    let _ = writeln!(
        out,
        "<details><summary>Order of the changes</summary>\n\n```mermaid\n{}```\n\n</details>",
        graph::mermaid(nodes, &edges)
    );
    out
}
