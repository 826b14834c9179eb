//! The example scenarios in `plans/`, planned through the built binary, in
//! every format. Snapshots are reviewed output: a change to one is a change
//! users will see.

use crate::support::{run_irsa as irsa, run_irsa_env as irsa_env};

/// Every scenario shipped in plans/, with its snapshot.
const SCENARIOS: &[&str] = &["ekshandson", "drifted", "in-sync"];

fn plan(scenario: &str, format: &str) -> (i32, String, String) {
    irsa(&[
        "plan",
        &format!("plans/{scenario}.toml"),
        "--observed",
        &format!("plans/{scenario}.observed.json"),
        "--format",
        format,
    ])
}

#[test]
fn every_scenario_plans_in_every_format() {
    for scenario in SCENARIOS {
        for format in ["text", "markdown", "json"] {
            let (code, stdout, stderr) = plan(scenario, format);
            assert_eq!(code, 0, "{scenario} {format}: {stderr}");
            insta::assert_snapshot!(format!("{scenario}.{format}"), stdout);
        }
    }
}

#[test]
fn the_example_matches_the_spec_summary() {
    let (_, stdout, _) = plan("ekshandson", "text");
    assert!(stdout.starts_with("irsa plan · stack ekshandson · observed from plans/ekshandson.observed.json"));
    assert!(
        stdout.contains("\nPlan: 9 to create, 1 to update, 0 to replace, 0 to delete, 0 to restart.\n"),
        "{stdout}"
    );
    assert!(stdout.contains(
        "      trust:                sts:AssumeRoleWithWebIdentity for system:serviceaccount:backend:my-service-account"
    ));
    assert!(stdout.contains("      serviceAccountName: \"default\" -> \"my-service-account\"   (rolls the pods)"));
}

#[test]
fn json_counts_agree_with_the_changes() {
    for scenario in SCENARIOS {
        let (_, stdout, _) = plan(scenario, "json");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["format_version"], "1");
        let changes = v["changes"].as_array().unwrap();
        let count = |f: &dyn Fn(&[&str]) -> bool| {
            changes
                .iter()
                .filter(|c| {
                    let a: Vec<&str> = c["actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
                    f(&a)
                })
                .count()
        };
        let s = &v["summary"];
        assert_eq!(s["create"], count(&|a| a == ["create"]), "{scenario}");
        assert_eq!(s["delete"], count(&|a| a == ["delete"]), "{scenario}");
        assert_eq!(s["replace"], count(&|a| a.contains(&"delete") && a.contains(&"create")), "{scenario}");
        assert_eq!(s["restart"], count(&|a| a == ["restart"]), "{scenario}");
    }
}

#[test]
fn detailed_exitcode_tells_changes_from_none() {
    let args = |s: &str| {
        vec![
            "plan".to_owned(),
            format!("plans/{s}.toml"),
            "--observed".into(),
            format!("plans/{s}.observed.json"),
            "--detailed-exitcode".into(),
        ]
    };
    let run = |s: &str| irsa(&args(s).iter().map(String::as_str).collect::<Vec<_>>()).0;
    assert_eq!(run("in-sync"), 0);
    assert_eq!(run("drifted"), 2);
    assert_eq!(run("ekshandson"), 2);
}

#[test]
fn a_saved_plan_shows_exactly_as_it_was_planned() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan.json");
    let out = out.to_str().unwrap();
    for format in ["text", "markdown", "json"] {
        let (code, planned, stderr) = irsa(&[
            "plan",
            "plans/drifted.toml",
            "--observed",
            "plans/drifted.observed.json",
            "--format",
            format,
            "--out",
            out,
        ]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains("Saved the plan to"), "{stderr}");
        let (code, shown, stderr) = irsa(&["show", out, "--format", format]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(shown, planned, "{format}");
    }
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    assert_eq!(saved["kind"], "irsa-saved-plan");
    assert_eq!(saved["stack_file"], "plans/drifted.toml");
    assert_eq!(saved["stack_sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn show_refuses_what_is_not_a_plan() {
    let (code, stdout, stderr) = irsa(&["show", "plans/ekshandson.observed.json"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(stderr.contains("plans/ekshandson.observed.json is not a saved irsa plan"), "{stderr}");
}

#[test]
fn diff_shows_whole_documents_of_new_policies() {
    let (code, stdout, _) = irsa(&[
        "plan",
        "plans/ekshandson.toml",
        "--observed",
        "plans/ekshandson.observed.json",
        "--diff",
        "--target",
        "policy/messages-read",
    ]);
    assert_eq!(code, 0);
    assert!(stdout.contains("        +      \"Sid\": \"ReadMessages\""), "{stdout}");
    assert!(!stdout.contains("shown with --diff"));
}

#[test]
fn targets_limit_the_plan_to_a_subtree_and_its_dependencies() {
    let (code, stdout, stderr) = irsa(&[
        "plan",
        "plans/ekshandson.toml",
        "--observed",
        "plans/ekshandson.observed.json",
        "--target",
        "sa/backend/",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let addresses: Vec<&str> =
        v["changes"].as_array().unwrap().iter().map(|c| c["address"].as_str().unwrap()).collect();
    assert_eq!(addresses, ["oidc/ekshandson", "role/backend-messages", "sa/backend/my-service-account"]);
    assert_eq!(v["targets"], serde_json::json!(["sa/backend/"]));

    let (code, _, stderr) = irsa(&[
        "plan",
        "plans/ekshandson.toml",
        "--observed",
        "plans/ekshandson.observed.json",
        "--target",
        "role/typo",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--target role/typo matches no resource of the stack"), "{stderr}");
}

#[test]
fn colours_follow_the_terminal_and_no_color() {
    let args = ["plan", "plans/drifted.toml", "--observed", "plans/drifted.observed.json"];
    // Not a terminal: plain text, whatever NO_COLOR says.
    let (_, plain, _) = irsa_env(&args, &[]);
    assert!(!plain.contains('\u{1b}'));
    // Forced on: colours, and stripping them gives the plain output back.
    let (_, coloured, _) = irsa_env(&[&args[..], &["--color", "always"]].concat(), &[]);
    assert!(coloured.contains("\u{1b}["));
    let stripped = strip_ansi(&coloured);
    assert_eq!(stripped, plain);
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
