//! The example scenarios in `plans/`, planned through the built binary, in
//! every format. Snapshots are reviewed output: a change to one is a change
//! users will see.

use crate::support::{run_irsa as irsa, run_irsa_env as irsa_env};

/// Every scenario shipped in plans/, with its snapshot.
const SCENARIOS: &[&str] = &["ekshandson", "drifted", "in-sync", "risky", "addons", "blue-green"];

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

#[test]
fn the_risky_stack_has_findings_of_every_severity() {
    let (code, stdout, stderr) = plan("risky", "json");
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    for severity in ["high", "medium", "low", "info"] {
        assert!(findings.iter().any(|f| f["severity"] == severity), "no {severity} finding");
    }
    // Every finding is about a change of the plan, and every change is labelled.
    let changes = v["changes"].as_array().unwrap();
    for f in findings {
        assert!(changes.iter().any(|c| c["address"] == f["address"]), "{f}");
        assert!(!f["message"].as_str().unwrap().is_empty());
    }
    for c in changes {
        assert!(["widens", "narrows", "same"].contains(&c["access"].as_str().unwrap()), "{c}");
    }
    let access = |address: &str| {
        changes.iter().find(|c| c["address"] == address).map(|c| c["access"].as_str().unwrap().to_owned()).unwrap()
    };
    assert_eq!(access("role/shared-reader/attach/arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess"), "narrows");
    assert_eq!(access("role/ops/attach/arn:aws:iam::aws:policy/AdministratorAccess"), "widens");
    assert_eq!(access("sa/ops/toolbox"), "same");
    let named = |rule: &str, statement: &str| {
        findings.iter().any(|f| f["rule"] == rule && f["statement"] == statement && f["severity"] == "high")
    };
    assert!(named("privilege-escalation", "\"PassAnyRole\""), "{findings:#?}");
    assert!(named("allow-not-action", "\"EverythingButIam\""));
    assert!(named("trust-wildcard-subject", "\"GithubActions\""));
}

#[test]
fn fail_on_findings_gates_on_a_severity_after_printing_the_plan() {
    let run = |scenario: &str, extra: &[&str]| {
        let mut args = vec![
            "plan".to_owned(),
            format!("plans/{scenario}.toml"),
            "--observed".into(),
            format!("plans/{scenario}.observed.json"),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        irsa(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // risky has high findings: exit 1, the plan printed all the same.
    let (code, stdout, stderr) = run("risky", &["--fail-on-findings", "high"]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("Security review: this plan widens access; 21 findings (7 high, 6 medium, 4 low, 4 info)."),
        "{stdout}"
    );
    assert_eq!(
        stderr,
        "error: the plan has 7 security findings at or above high (--fail-on-findings high); see its security review\n"
    );
    // drifted's worst is medium: high passes, medium and below fail.
    assert_eq!(run("drifted", &["--fail-on-findings", "high"]).0, 0);
    assert_eq!(run("drifted", &["--fail-on-findings", "medium"]).0, 1);
    assert!(run("drifted", &["--fail-on-findings", "info"]).2.contains("has 3 security findings at or above info"));
    // With --detailed-exitcode: findings win (1); without any, changes give 2.
    assert_eq!(run("drifted", &["--fail-on-findings", "medium", "--detailed-exitcode"]).0, 1);
    assert_eq!(run("drifted", &["--fail-on-findings", "high", "--detailed-exitcode"]).0, 2);
    assert_eq!(run("in-sync", &["--fail-on-findings", "info", "--detailed-exitcode"]).0, 0);
    // The saved plan is written before the gate: a pipeline can keep it.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan.json");
    let (code, _, _) = run("risky", &["--fail-on-findings", "low", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 1);
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(saved["plan"]["findings"].as_array().unwrap().len(), 21);
    let (code, _, stderr) = run("risky", &["--fail-on-findings", "severe"]);
    assert_eq!(code, 2, "clap's usage error");
    assert!(stderr.contains("possible values: info, low, medium, high"), "{stderr}");
}

/// A stack of `n` roles, each with an inline policy and a ServiceAccount,
/// planned from nothing: a Markdown plan far over one comment.
fn long_stack(dir: &std::path::Path, n: usize) -> (String, String) {
    let mut toml = String::from(
        "version = 1\n[cluster]\nname = \"big\"\nregion = \"us-east-1\"\naccount_id = \"123456789012\"\n\
         oidc_issuer = \"https://oidc.eks.us-east-1.amazonaws.com/id/B16\"\n",
    );
    for i in 0..n {
        toml.push_str(&format!(
            r#"[roles.app-{i}]
[roles.app-{i}.inline.data]
document = '{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/t-{i}"}}]}}'
[[service_accounts]]
namespace = "apps"
name = "app-{i}"
role = "app-{i}"
"#
        ));
    }
    let observed = r#"{"format_version": 1, "iam": {"oidc_providers": [], "policies": [], "roles": []},
        "cluster": {"namespaces": ["apps"], "service_accounts": [], "deployments": []}}"#;
    let stack = dir.join("big.toml");
    let snapshot = dir.join("big.observed.json");
    std::fs::write(&stack, toml).unwrap();
    std::fs::write(&snapshot, observed).unwrap();
    (stack.to_str().unwrap().to_owned(), snapshot.to_str().unwrap().to_owned())
}

#[test]
fn a_long_markdown_plan_is_split_into_comments() {
    let dir = tempfile::tempdir().unwrap();
    let (stack, observed) = long_stack(dir.path(), 150);
    let parts_dir = dir.path().join("comments");
    std::fs::create_dir(&parts_dir).unwrap();
    // Parts left by an earlier, longer plan must not be posted with this one.
    for k in [9, 10, 40] {
        std::fs::write(parts_dir.join(format!("plan-{k}.md")), "old").unwrap();
    }
    std::fs::write(parts_dir.join("notes.md"), "kept").unwrap();
    let base = ["plan", stack.as_str(), "--observed", observed.as_str(), "--format", "markdown"];

    let (code, stdout, stderr) = irsa(&base);
    assert_eq!(code, 0, "{stderr}");
    let (code, split_stdout, stderr) = irsa(&[&base[..], &["--split-dir", parts_dir.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{stderr}");
    assert!(split_stdout.is_empty(), "the parts go to files, not stdout");
    let mut files: Vec<String> = std::fs::read_dir(&parts_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f != "notes.md")
        .collect();
    files.sort_by_key(|f| f.trim_start_matches("plan-").trim_end_matches(".md").parse::<usize>().unwrap());
    let n = files.len();
    assert!((3..9).contains(&n), "{files:?}");
    assert_eq!(files, (1..=n).map(|k| format!("plan-{k}.md")).collect::<Vec<_>>());
    assert!(parts_dir.join("notes.md").exists());
    assert!(stderr.contains(&format!("Wrote the plan in {n} parts: ")), "{stderr}");

    let parts: Vec<String> =
        (1..=n).map(|k| std::fs::read_to_string(parts_dir.join(format!("plan-{k}.md"))).unwrap()).collect();
    for (k, part) in parts.iter().enumerate() {
        assert!(part.chars().count() <= 60_000, "part {} has {} characters", k + 1, part.chars().count());
        assert!(part.starts_with(&format!("<!-- irsa plan part {} of {n} -->\n", k + 1)));
    }
    // stdout without --split-dir: the same parts, one after the other.
    assert_eq!(stdout, parts.join("\n"));
    // Each change's details once; the head whole in the first part.
    let sections = parts.iter().map(|p| p.matches("<details><summary><code>").count()).sum::<usize>();
    assert_eq!(sections, 1 + 150 * 3, "the provider, and per binding a role, its inline policy, its ServiceAccount");
    assert!(parts[0].contains("#### Security review") && parts[0].contains("| action | count |"));
    let outline: Vec<String> = parts
        .iter()
        .map(|p| {
            let lines: Vec<&str> = p.lines().collect();
            format!(
                "{} | {} characters | {} details | first: {} | last line: {}",
                lines[1],
                p.chars().count(),
                p.matches("<details><summary><code>").count(),
                lines.iter().find(|l| l.starts_with("<details><summary><code>")).unwrap_or(&"-"),
                lines.last().unwrap()
            )
        })
        .collect();
    insta::assert_snapshot!(outline.join("\n"));
    insta::assert_snapshot!("long-plan-first-comment", parts[0].replace(dir.path().to_str().unwrap(), "TMP"));
}

#[test]
fn split_dir_needs_markdown() {
    let (code, stdout, stderr) = irsa(&[
        "plan",
        "plans/drifted.toml",
        "--observed",
        "plans/drifted.observed.json",
        "--split-dir",
        "target/never",
    ]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(stderr.contains("--split-dir cuts a Markdown plan into comments; it needs --format markdown"), "{stderr}");
    assert!(!std::path::Path::new("target/never").exists());
}

#[test]
fn a_saved_plan_splits_like_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan.json");
    let (code, planned, _) = irsa(&[
        "plan",
        "plans/risky.toml",
        "--observed",
        "plans/risky.observed.json",
        "--format",
        "markdown",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let parts = dir.path().join("parts");
    let (code, _, stderr) =
        irsa(&["show", out.to_str().unwrap(), "--format", "markdown", "--split-dir", parts.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(parts.join("plan-1.md")).unwrap(), planned);
    assert!(stderr.contains("Wrote the plan to "), "{stderr}");
}
