//! Progress on a terminal: the read of what exists (one line per side, IAM
//! and the cluster, with their request counts) and the apply (steps done
//! of all, and the ones running). Drawn with indicatif on stderr only, and
//! only when [`Ctx::progress`] says so (stderr a terminal, no `-q`, no
//! `-v` logging to interleave, not the JSON error form); in a log the
//! apply writes its plain line per step instead, and the read stays silent.
//!
//! What is shown is worked out by the plain types here ([`ApplySteps`],
//! [`phase_line`]), which the tests check; indicatif only draws it.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Ctx;
use crate::apply::{Event, Step, step_key};
use crate::refresh::{PhaseStatus, ReadStatus};

/// How many running steps the apply line names before it says "+N more".
const RUNNING_SHOWN: usize = 3;

const TICK: Duration = Duration::from_millis(120);

/// The state of an apply as its progress line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplySteps {
    total: usize,
    finished: usize,
    failed: usize,
    /// Running steps by journal key, each with what the line shows, in the
    /// order they started (the key of a map ordered by a start counter).
    running: BTreeMap<u64, (String, String)>,
    started: u64,
}

impl ApplySteps {
    /// `total`: the steps this run will carry out (not those an earlier run did).
    pub fn new(total: usize) -> ApplySteps {
        ApplySteps { total, finished: 0, failed: 0, running: BTreeMap::new(), started: 0 }
    }

    pub fn event(&mut self, event: &Event) {
        match event {
            Event::Started { address, removal } => {
                let shown = if *removal { format!("{address} (removing)") } else { address.to_string() };
                self.running.insert(self.started, (step_key(address, *removal), shown));
                self.started += 1;
            }
            Event::Finished { step, removal } => {
                let address = match step {
                    Step::Done { address, .. } | Step::Failed { address, .. } | Step::Skipped { address } => address,
                };
                let key = step_key(address, *removal);
                self.running.retain(|_, (k, _)| *k != key);
                self.finished += 1;
                if !matches!(step, Step::Done { .. }) {
                    self.failed += 1;
                }
                // A plan's total is counted before the walk; never show more
                // done than all.
                self.total = self.total.max(self.finished);
            }
        }
    }

    /// Steps finished (done, failed or skipped) and all of them.
    pub fn position(&self) -> (usize, usize) {
        (self.finished, self.total)
    }

    /// What follows the count: the running steps, and failures so far.
    pub fn message(&self) -> String {
        let mut parts = Vec::new();
        if !self.running.is_empty() {
            let names: Vec<&str> = self.running.values().take(RUNNING_SHOWN).map(|(_, s)| s.as_str()).collect();
            let more = self.running.len().saturating_sub(RUNNING_SHOWN);
            let tail = if more > 0 { format!(" +{more} more") } else { String::new() };
            parts.push(format!("running {}{tail}", names.join(", ")));
        }
        if self.failed > 0 {
            parts.push(format!("{} failed or skipped", self.failed));
        }
        parts.join(" · ")
    }
}

/// One side's line: `IAM: reading… 12 calls`, then `IAM: 2 roles, 3
/// policies (12 calls)` when it is done.
pub fn phase_line(name: &str, unit: (&str, &str), phase: &PhaseStatus) -> String {
    let requests = format!("{} {}", phase.requests, if phase.requests == 1 { unit.0 } else { unit.1 });
    match &phase.found {
        None => format!("{name}: reading… {requests}"),
        Some(found) => {
            let what: Vec<String> =
                found.iter().map(|(n, one, many)| format!("{n} {}", if *n == 1 { one } else { many })).collect();
            format!("{name}: {} ({requests})", what.join(", "))
        }
    }
}

fn lines(status: &ReadStatus) -> (String, Option<String>) {
    let iam = phase_line("IAM", ("call", "calls"), &status.iam);
    let cluster = status.cluster.as_ref().map(|c| phase_line("cluster", ("request", "requests"), c));
    (iam, cluster)
}

fn spinner() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"));
    bar.enable_steady_tick(TICK);
    bar
}

/// The lines of a live read on a terminal; nothing elsewhere.
pub struct ReadBars {
    on: bool,
    drawn: Option<(MultiProgress, ProgressBar, Option<ProgressBar>)>,
}

impl ReadBars {
    pub fn new(ctx: &Ctx) -> ReadBars {
        ReadBars { on: ctx.progress, drawn: None }
    }

    pub fn update(&mut self, status: &ReadStatus) {
        if !self.on {
            return;
        }
        let (iam_line, cluster_line) = lines(status);
        let (_, iam, cluster) = self.drawn.get_or_insert_with(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let iam = multi.add(spinner());
            let cluster = status.cluster.as_ref().map(|_| multi.add(spinner()));
            (multi, iam, cluster)
        });
        for (bar, line, done) in [(Some(&*iam), Some(iam_line), status.iam.found.is_some())].into_iter().chain([(
            cluster.as_ref(),
            cluster_line,
            status.cluster.as_ref().is_some_and(|c| c.found.is_some()),
        )]) {
            if let (Some(bar), Some(line)) = (bar, line) {
                bar.set_message(line);
                if done && !bar.is_finished() {
                    bar.disable_steady_tick();
                    bar.set_style(ProgressStyle::with_template("✓ {msg}").expect("a valid template"));
                    bar.tick();
                }
            }
        }
    }

    /// Take the lines away: what was read is in the plan's header.
    pub fn finish(&mut self) {
        if let Some((multi, iam, cluster)) = self.drawn.take() {
            iam.finish_and_clear();
            if let Some(c) = cluster {
                c.finish_and_clear();
            }
            let _ = multi.clear();
        }
    }
}

impl Drop for ReadBars {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The apply's bar on a terminal: `[3/10] running role/a, sa/b/c`.
pub struct ApplyBar {
    pub steps: ApplySteps,
    bar: Option<ProgressBar>,
}

impl ApplyBar {
    pub fn new(ctx: &Ctx, total: usize) -> ApplyBar {
        let bar = ctx.progress.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {elapsed} {wide_msg}").expect("a valid template"),
            );
            bar.enable_steady_tick(TICK);
            bar
        });
        ApplyBar { steps: ApplySteps::new(total), bar }
    }

    pub fn event(&mut self, event: &Event) {
        self.steps.event(event);
        if let Some(bar) = &self.bar {
            let (done, total) = self.steps.position();
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(self.steps.message());
        }
    }

    /// Write a line above the bar (or plainly, without one).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Run `f` (which writes to stderr) with the bar out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for ApplyBar {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Address;

    fn addr(s: &str) -> Address {
        s.parse().unwrap()
    }

    #[test]
    fn the_apply_line_counts_steps_and_names_the_running_ones_in_start_order() {
        let mut s = ApplySteps::new(5);
        assert_eq!((s.position(), s.message()), ((0, 5), String::new()));
        for a in ["policy/a", "policy/b", "policy/c", "policy/d"] {
            s.event(&Event::Started { address: addr(a), removal: false });
        }
        s.event(&Event::Started { address: addr("role/old"), removal: true });
        assert_eq!(s.message(), "running policy/a, policy/b, policy/c +2 more");
        s.event(&Event::Finished { step: Step::Done { address: addr("policy/b"), what: "created" }, removal: false });
        s.event(&Event::Finished { step: Step::Done { address: addr("policy/a"), what: "created" }, removal: false });
        assert_eq!(s.position(), (2, 5));
        assert_eq!(s.message(), "running policy/c, policy/d, role/old (removing)");
        s.event(&Event::Finished {
            step: Step::Failed { address: addr("policy/c"), error: "denied".into() },
            removal: false,
        });
        s.event(&Event::Finished { step: Step::Done { address: addr("role/old"), what: "deleted" }, removal: true });
        assert_eq!(s.message(), "running policy/d · 1 failed or skipped");
        s.event(&Event::Finished { step: Step::Skipped { address: addr("policy/d") }, removal: false });
        assert_eq!((s.position(), s.message()), ((5, 5), "2 failed or skipped".to_owned()));
    }

    #[test]
    fn a_removal_and_a_make_of_one_address_are_two_running_steps() {
        let mut s = ApplySteps::new(2);
        s.event(&Event::Started { address: addr("role/r"), removal: true });
        s.event(&Event::Finished { step: Step::Done { address: addr("role/r"), what: "removed" }, removal: true });
        s.event(&Event::Started { address: addr("role/r"), removal: false });
        assert_eq!((s.position(), s.message()), ((1, 2), "running role/r".to_owned()));
    }

    #[test]
    fn never_more_done_than_all() {
        let mut s = ApplySteps::new(0);
        s.event(&Event::Finished { step: Step::Skipped { address: addr("sa/ns/x") }, removal: false });
        assert_eq!(s.position(), (1, 1));
    }

    #[test]
    fn a_side_reads_then_says_what_it_found() {
        let mut p = PhaseStatus { requests: 1, found: None };
        assert_eq!(phase_line("IAM", ("call", "calls"), &p), "IAM: reading… 1 call");
        p.requests = 7;
        p.found = Some(vec![(1, "role", "roles"), (0, "policy", "policies")]);
        assert_eq!(phase_line("IAM", ("call", "calls"), &p), "IAM: 1 role, 0 policies (7 calls)");
        let status = ReadStatus { iam: p, cluster: Some(PhaseStatus { requests: 2, found: None }) };
        assert_eq!(lines(&status).1.as_deref(), Some("cluster: reading… 2 requests"));
        assert_eq!(lines(&ReadStatus::default()).1, None);
    }
}
