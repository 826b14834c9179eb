//! The command line's contract: exit codes, stdout for data and stderr for
//! everything else, and errors that say where and how to fix.

use std::io::Write;

use crate::support::run_irsa as irsa;

#[test]
fn validate_accepts_every_shipped_stack() {
    for stack in ["plans/ekshandson.toml", "plans/drifted.toml", "plans/in-sync.toml"] {
        let (code, stdout, stderr) = irsa(&["validate", stack]);
        assert_eq!(code, 0, "{stack}: {stderr}");
        assert!(stdout.is_empty(), "validate prints nothing on stdout");
        assert!(stderr.contains("is valid"), "{stderr}");
        // Only the stack without a name of its own is told to get one.
        let warned = stderr.contains("has no [stack] name, so it is stack");
        assert_eq!(warned, stack == "plans/in-sync.toml", "{stack}: {stderr}");
    }
}

#[test]
fn graph_prints_dot_and_mermaid() {
    let (code, dot, _) = irsa(&["graph", "plans/ekshandson.toml"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("ekshandson.dot", dot);
    let (code, mermaid, _) = irsa(&["graph", "plans/ekshandson.toml", "--format", "mermaid"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("ekshandson.mermaid", mermaid);
}

#[test]
fn a_live_plan_without_a_cluster_config_says_which_part_failed() {
    // The cleared environment has no KUBECONFIG and no home directory.
    let (code, stdout, stderr) = irsa(&["plan", "plans/ekshandson.toml"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("error: reading the cluster: cannot load the Kubernetes configuration (context ekshandson)"),
        "{stderr}"
    );
}

#[test]
fn a_missing_stack_file_is_one_clear_line() {
    let (code, _, stderr) = irsa(&["validate", "plans/nope.toml"]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("error: cannot read stack file plans/nope.toml: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// Plan errors point into the stack file, like load errors do.
#[test]
fn an_unowned_role_is_refused_at_its_line_until_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = std::fs::read_to_string("plans/in-sync.observed.json").unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&snapshot).unwrap();
    v["iam"]["roles"][0]["tags"] = serde_json::json!({});
    let path = dir.path().join("observed.json");
    std::fs::File::create(&path).unwrap().write_all(v.to_string().as_bytes()).unwrap();
    let path = path.to_str().unwrap();

    let (code, stdout, stderr) = irsa(&["plan", "plans/in-sync.toml", "--observed", path]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(
        stderr
            .contains("error: plans/in-sync.toml:39:8: role/events-consumer already exists and is not managed by irsa"),
        "{stderr}"
    );
    assert!(stderr.contains("set adopt = true on [roles.events-consumer]"), "{stderr}");

    let (code, stdout, stderr) = irsa(&["plan", "plans/in-sync.toml", "--observed", path, "--adopt"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("⇐ role/events-consumer"), "{stdout}");
    assert!(stdout.contains("1 to adopt"), "{stdout}");
}

#[test]
fn a_damaged_snapshot_names_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(
        &path,
        "{\n  \"format_version\": 1,\n  \"iam\": {\"roles\": [{\"name\": 3}]},\n  \"cluster\": {}\n}\n",
    )
    .unwrap();
    let shown = path.display().to_string();
    let (code, _, stderr) = irsa(&["plan", "plans/ekshandson.toml", "--observed", &shown]);
    assert_eq!(code, 1);
    assert!(stderr.contains(&format!("error: {shown}:3:30: invalid snapshot: invalid type: integer `3`")), "{stderr}");
}

#[test]
fn help_is_the_doc_comments() {
    let (code, stdout, _) = irsa(&["plan", "--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("Show what it takes to make AWS IAM and the cluster match a stack file"));
    assert!(stdout.contains("--detailed-exitcode"));
    let (code, stdout, _) = irsa(&["--version"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("irsa "));
}

/// Each problem of a stack file is reported once: as one `error:
/// file:line:col` line with its help in a log (no terminal), and as miette's
/// picture of the source on a terminal (`script` gives irsa a pseudo-terminal).
#[test]
fn each_problem_is_reported_once_in_the_form_its_reader_needs() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join("stack.toml");
    std::fs::write(
        &stack,
        "version = 1\n[cluster]\nname = \"c\"\nregion = \"us-east-1\"\naccount_id = \"12345\"\n[policies.p]\ndocument = '{}'\ndocument_file = \"p.json\"\n",
    )
    .unwrap();
    let stack = stack.to_str().unwrap();

    let (code, _, log) = irsa(&["validate", stack]);
    assert_eq!(code, 1);
    let located: Vec<&str> = log.lines().filter(|l| l.starts_with(&format!("error: {stack}:"))).collect();
    assert_eq!(located.len(), 2, "{log}");
    assert!(log.contains(&format!("error: {stack}:5:14: ")), "{log}");
    assert!(log.lines().any(|l| l.starts_with("  help: ")), "{log}");
    assert!(!log.contains('╭') && !log.contains('×'), "no picture in a log: {log}");

    let command = format!("{} validate {stack}", env!("CARGO_BIN_EXE_irsa"));
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) runs irsa on a pseudo-terminal");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(screen.matches('╭').count(), 2, "one picture a problem: {screen}");
    assert!(screen.contains(&format!("[{stack}:5:14]")), "{screen}");
    assert!(!screen.contains(&format!("error: {stack}:5:14")), "no one-line form on a terminal: {screen}");
}

/// Completion scripts name every command and its flags, for each shell.
#[test]
fn completions_cover_the_commands_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, script, stderr) = irsa(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        for word in [
            "validate",
            "plan",
            "apply",
            "destroy",
            "refresh",
            "show",
            "graph",
            "man",
            "schema",
            "rename-from",
            "target",
            "lock-namespace",
            "error-format",
        ] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    let (code, _, stderr) = irsa(&["completions", "tcsh"]);
    assert_eq!(code, 2, "clap refuses an unknown shell: {stderr}");
    assert!(stderr.contains("invalid value 'tcsh'"), "{stderr}");
}
