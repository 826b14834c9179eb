//! What a run writes on stderr as it goes: a plain line per apply step in a
//! log, progress bars on a terminal (a real pty, through util-linux
//! `script`), only the plan and the summary with `-q`, and nothing but the
//! one document with `--error-format json`.

use crate::support::{Moto, run_irsa};
use crate::world::Cluster;

/// The stderr of a run with the scenario's own names put back to the test
/// server's, so that a real cluster's run reads the same.
fn as_on_the_test_server(c: &Cluster, text: &str) -> String {
    text.replace(&format!("/{}/", c.namespace), "/backend/").replace(&format!("/{}", c.stack_name), "/ekshandson")
}

fn apply_lines_quiet_json_and_terminal(c: &Cluster) {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    c.deployment(None);
    c.advance(60);
    let stack = c.stack();

    // In a log: one line per step as it ends (one at a time here, so that
    // the order is fixed), then the summary.
    let (code, stdout, stderr) = c.irsa(&moto, &["apply", &stack, "--auto-approve", "--parallelism", "1"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Plan: 9 to create"), "{stdout}");
    let steps: Vec<&str> = stderr.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(steps.len(), 10, "{stderr}");
    if c.has_webhook() {
        insta::assert_snapshot!("apply_in_a_log", as_on_the_test_server(c, &stderr));
    }
    c.advance(60);

    // -q: the plan on stdout, and of stderr the summary alone.
    let (code, stdout, stderr) = c.irsa(&moto, &["destroy", &stack, "--auto-approve", "-q"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("to delete"), "{stdout}");
    assert!(stderr.starts_with("Apply complete: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    c.advance(60);

    // The JSON error form: stderr is the document and nothing else, steps
    // and summary included.
    let (code, _, stderr) = c.irsa(&moto, &["apply", &stack, "--auto-approve", "--error-format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stderr).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(doc["format_version"], 1, "{stderr}");
    c.advance(60);

    // On a terminal: the read's lines per side and the apply's bar, drawn
    // over each other and cleared, and the step lines above them.
    let args = c.args(&["destroy", &stack, "--auto-approve"]);
    let transcript = on_a_terminal(&moto, &args);
    assert!(transcript.contains("IAM: reading…") || transcript.contains("IAM: 1 OIDC provider"), "{transcript}");
    assert!(transcript.contains("cluster: "), "{transcript}");
    assert!(transcript.contains("/9]"), "the bar counts the 9 steps (the Deployment stays): {transcript}");
    assert!(transcript.contains("policy/messages-read: deleted"), "{transcript}");
    assert!(transcript.contains("Apply complete: 9 steps done"), "{transcript}");

    // `irsa refresh` (as `plan`) shows the read's lines too, then its summary.
    let transcript = on_a_terminal(&moto, &c.args(&["refresh", &stack]));
    assert!(transcript.contains("IAM: ") && transcript.contains("cluster: "), "{transcript}");
    assert!(transcript.contains("Read 0 OIDC providers, 1 role and 0 policies"), "{transcript}");
}

/// Run irsa with stdin, stdout and stderr on a pseudo-terminal (`script`),
/// against `moto`; returns what the terminal received.
fn on_a_terminal(moto: &Moto, args: &[String]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let command = std::iter::once(env!("CARGO_BIN_EXE_irsa").to_owned())
        .chain(args.iter().cloned())
        .map(|a| quote(&a))
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .envs(moto.env())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("util-linux `script` runs a command on a pty");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn apply_writes_lines_in_a_log_a_bar_on_a_terminal_the_summary_with_quiet_and_json_alone() {
    apply_lines_quiet_json_and_terminal(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn apply_writes_lines_in_a_log_a_bar_on_a_terminal_the_summary_with_quiet_and_json_alone_on_a_real_cluster() {
    apply_lines_quiet_json_and_terminal(&Cluster::real());
}

#[test]
fn quiet_leaves_out_notices_but_not_the_plan_or_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan.json");
    let out = out.to_str().unwrap();
    let plan = ["plan", "plans/ekshandson.toml", "--observed", "plans/ekshandson.observed.json", "--out", out];
    let (code, loud_stdout, stderr) = run_irsa(&plan);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.starts_with("Saved the plan to "), "{stderr}");
    let (code, stdout, stderr) = run_irsa(&[&plan[..], &["-q"]].concat());
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (0, loud_stdout.as_str(), ""));

    // The summary is what validate says, -q or not.
    let (code, _, stderr) = run_irsa(&["validate", "plans/ekshandson.toml", "--quiet"]);
    assert_eq!(code, 0);
    assert!(stderr.contains("is valid"), "{stderr}");
}
