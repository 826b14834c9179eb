//! The human plan, laid out like Terraform's.

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

use super::Options;
use super::view::{self, ChangeView, Line};
use crate::plan::Plan;
use crate::plan::review::Severity;

/// Width of the address column, so that the action words line up.
const ADDRESS_WIDTH: usize = 49;

struct Paint {
    on: bool,
}

impl Paint {
    fn paint(&self, style: Style, text: &str) -> String {
        if self.on { format!("{}{text}{}", style.render(), style.render_reset()) } else { text.to_owned() }
    }
}

fn color(c: AnsiColor) -> Style {
    Style::new().fg_color(Some(c.into()))
}

fn symbol_style(symbol: &str) -> Style {
    match symbol {
        "+" => color(AnsiColor::Green),
        "~" => color(AnsiColor::Yellow),
        "-" => color(AnsiColor::Red),
        "-/+" => color(AnsiColor::Magenta),
        "↻" => color(AnsiColor::Cyan),
        _ => color(AnsiColor::Blue),
    }
}

pub fn render(plan: &Plan, options: Options) -> String {
    let p = Paint { on: options.color };
    let bold = Style::new().bold();
    let dim = Style::new().dimmed();
    let mut out = String::new();
    let _ =
        writeln!(out, "{}", p.paint(bold, &format!("irsa plan · stack {} · {}", plan.stack, view::provenance(plan))));
    if !plan.targets.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            p.paint(dim, &format!("targeted: only {} and what they depend on", plan.targets.join(", ")))
        );
    }
    out.push('\n');
    for c in view::changes(plan, options) {
        change(&mut out, &p, &c, dim);
    }
    if plan.changes.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            p.paint(color(AnsiColor::Green), "No changes. AWS IAM and the cluster match the stack file.")
        );
    } else {
        let _ = writeln!(out, "\n{}", p.paint(bold, &format!("Plan: {}.", view::counts(plan))));
    }
    if !plan.changes.is_empty() {
        review(&mut out, &p, plan);
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "\n{}", p.paint(color(AnsiColor::Yellow).bold(), "Warnings:"));
        for w in &plan.warnings {
            let at = w.address.as_ref().map(|a| format!("{a}: ")).unwrap_or_default();
            let _ = writeln!(out, "  {} {at}{}", p.paint(color(AnsiColor::Yellow), "!"), w.message);
        }
    }
    out
}

fn change(out: &mut String, p: &Paint, c: &ChangeView, dim: Style) {
    let style = symbol_style(c.symbol);
    let _ = writeln!(
        out,
        "{} {:<width$} {}",
        p.paint(style, &format!("{:>3}", c.symbol)),
        c.address,
        p.paint(style, c.verb),
        width = ADDRESS_WIDTH
    );
    let key_width = c
        .lines
        .iter()
        .filter_map(|l| match l {
            Line::Value { key, .. } | Line::Summary { key, .. } => Some(key.len() + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0)
        .max(11);
    for line in &c.lines {
        match line {
            Line::Value { key, value } => {
                let _ = writeln!(out, "      {:<key_width$} {value}", format!("{key}:"));
            }
            Line::Summary { key, text } => {
                let _ = writeln!(out, "      {:<key_width$} {}", format!("{key}:"), p.paint(dim, text));
            }
            Line::Changed { key, before, after, note } => {
                let note = note.as_ref().map(|n| format!("   {}", p.paint(dim, n))).unwrap_or_default();
                let _ = writeln!(out, "      {key}: {before} -> {after}{note}");
            }
            Line::Entry { sign, key, value } => {
                let style = if *sign == '+' { color(AnsiColor::Green) } else { color(AnsiColor::Red) };
                let _ = writeln!(out, "      {} {key}: {value}", p.paint(style, &sign.to_string()));
            }
            Line::Document { key, diff } => {
                let _ = writeln!(out, "      {key}:");
                for d in diff {
                    let text = format!("{}{}", d.sign, d.text);
                    let styled = match d.sign {
                        '+' => p.paint(color(AnsiColor::Green), &text),
                        '-' => p.paint(color(AnsiColor::Red), &text),
                        '@' => p.paint(color(AnsiColor::Cyan), &d.text),
                        _ => text,
                    };
                    let _ = writeln!(out, "        {styled}");
                }
            }
            Line::Reason(r) => {
                let _ = writeln!(out, "      {}", p.paint(dim, &format!("# {r}")));
            }
        }
    }
}

/// How many addresses of each access label the text lists.
const ADDRESSES_SHOWN: usize = 10;

fn severity_style(s: Severity) -> Style {
    match s {
        Severity::High => color(AnsiColor::Red).bold(),
        Severity::Medium => color(AnsiColor::Yellow),
        Severity::Low => color(AnsiColor::Cyan),
        Severity::Info => Style::new().dimmed(),
    }
}

/// The security review: every finding, then which changes widen or narrow access.
fn review(out: &mut String, p: &Paint, plan: &Plan) {
    let r = view::review(plan);
    let head = format!("Security review: this plan {}; {}.", r.verdict(), r.tally());
    let _ = writeln!(out, "\n{}", p.paint(Style::new().bold(), &head));
    for f in &r.findings {
        let label = format!("{:<6}", f.severity.as_str());
        let _ = writeln!(out, "  {} {}: {}", p.paint(severity_style(f.severity), &label), f.address, f.message);
    }
    let addresses =
        |changes: &[&crate::plan::Change]| view::capped(changes, ADDRESSES_SHOWN, |c| c.address.to_string());
    if !r.widens.is_empty() {
        let _ = writeln!(out, "  widens access ({}): {}", r.widens.len(), addresses(&r.widens));
    }
    if !r.narrows.is_empty() {
        let _ = writeln!(out, "  only narrows access ({}): {}", r.narrows.len(), addresses(&r.narrows));
    }
    if r.same > 0 {
        let _ = writeln!(out, "  leaves access as it is: {} change{}", r.same, if r.same == 1 { "" } else { "s" });
    }
}
