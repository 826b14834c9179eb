//! What editors and pipelines read besides the plan: the stack file's JSON
//! Schema (`irsa schema`), the manual pages (`irsa man`), and errors as CI
//! systems take them (`--error-format github|json`).

use std::path::Path;

use crate::support::{run_irsa as irsa, run_irsa_env as irsa_env};

/// The schema as `irsa schema` prints it, compiled by a validator that
/// knows nothing of irsa.
fn compiled_schema() -> (boon::Schemas, boon::SchemaIndex) {
    let (code, stdout, stderr) = irsa(&["schema"]);
    assert_eq!(code, 0, "{stderr}");
    let schema: serde_json::Value = serde_json::from_str(&stdout).expect("irsa schema prints JSON");
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.add_resource("https://irsa.invalid/stack.schema.json", schema).expect("the schema is added");
    let index = compiler
        .compile("https://irsa.invalid/stack.schema.json", &mut schemas)
        .unwrap_or_else(|e| panic!("the schema compiles: {e:#}"));
    (schemas, index)
}

/// A TOML file as the JSON value editors validate.
fn toml_as_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::to_value(value).expect("TOML converts to JSON")
}

#[test]
fn every_shipped_stack_file_satisfies_the_schema() {
    let (schemas, index) = compiled_schema();
    let mut stacks: Vec<_> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("plans"))
        .expect("plans/")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    stacks.sort();
    assert!(stacks.len() >= 3, "{stacks:?}");
    for stack in &stacks {
        let value = toml_as_json(stack);
        if let Err(e) = schemas.validate(&value, index) {
            panic!("{} does not satisfy the schema: {e:#}", stack.display());
        }
    }
}

/// Bad files of the corpus whose fault is one of shape (a key, a type, a
/// range): the schema rejects them in the editor, before irsa runs.
#[test]
fn stack_files_of_the_wrong_shape_fail_against_the_schema() {
    let (schemas, index) = compiled_schema();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    for (case, because) in [
        ("unknown_key_top_level.toml", "additionalProperties"),
        ("unknown_key_cluster.toml", "additionalProperties"),
        ("unknown_key_role.toml", "additionalProperties"),
        ("unknown_key_service_account.toml", "additionalProperties"),
        ("stack_unknown_key.toml", "additionalProperties"),
        ("account_id_integer.toml", "want string"),
        ("account_id_11_digits.toml", "pattern"),
        ("cluster_not_a_table.toml", "want object"),
        ("version_2.toml", "maximum"),
        ("version_missing.toml", "missing properties"),
        ("max_session_duration_string.toml", "want integer"),
        ("max_session_duration_out_of_range.toml", "minimum"),
        ("workloads_string.toml", "want array"),
        ("workload_not_deployment.toml", "pattern"),
        ("namespace_upper_case.toml", "pattern"),
        ("region_bad.toml", "pattern"),
        ("stack_name_invalid.toml", "pattern"),
        ("path_without_trailing_slash.toml", "pattern"),
        ("issuer_trailing_slash.toml", "pattern"),
        ("preset_parameter_unknown.toml", "additionalProperties"),
        ("preset_table_unknown_preset.toml", "additionalProperties"),
        ("preset_hosted_zone_arn_bad.toml", "pattern"),
        ("preset_parameter_missing_in_table.toml", "missing properties"),
        ("clusters_and_cluster.toml", "oneOf"),
    ] {
        let value = toml_as_json(&corpus.join(case));
        match schemas.validate(&value, index) {
            Ok(()) => panic!("{case} satisfies the schema"),
            Err(e) => {
                let why = format!("{e:#}");
                assert!(why.contains(because), "{case}: {why}");
            }
        }
    }
}

#[test]
fn the_schema_is_reviewed_when_it_changes() {
    let (code, stdout, _) = irsa(&["schema"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("stack.schema.json", stdout);
}

/// The top page lists every command, each command has its own page, and
/// `--out` writes them all.
#[test]
fn man_pages_cover_every_command() {
    // Every command `irsa --help` lists (but clap's `help`), so that a new
    // command cannot miss its page.
    let (_, help, _) = irsa(&["--help"]);
    let commands: Vec<String> = help
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect();
    for expected in ["validate", "plan", "apply", "destroy", "refresh", "show", "graph", "completions", "man", "schema"]
    {
        assert!(commands.iter().any(|c| c == expected), "{expected} in {commands:?}");
    }
    let (code, page, stderr) = irsa(&["man"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(page.starts_with(".ie \\n(.g .ds Aq"), "roff: {}", &page[..80.min(page.len())]);
    assert!(page.contains(".TH irsa 1"), "{page}");
    assert!(page.contains("\\-\\-error\\-format"), "the global flags are on the top page");
    for command in &commands {
        assert!(page.contains(&format!("irsa\\-{command}(1)")), "the top page names {command}: {page}");
    }

    // As man(1) shows it, where groff is installed (man-db's own formatter).
    if let Ok(mut groff) = std::process::Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-ww"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write as _;
        groff.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
        let out = groff.wait_with_output().unwrap();
        let (shown, warnings) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && warnings.is_empty(), "groff: {warnings}");
        for command in &commands {
            assert!(shown.contains(&format!("irsa-{command}(1)")), "{shown}");
        }
    }

    let (code, plan, _) = irsa(&["man", "plan"]);
    assert_eq!(code, 0);
    assert!(
        plan.contains(&format!(".TH irsa-plan 1  \"irsa {}\" \"irsa manual\"", env!("CARGO_PKG_VERSION"))),
        "{plan}"
    );
    assert!(plan.contains("\\-\\-detailed\\-exitcode"), "{plan}");

    let (code, _, stderr) = irsa(&["man", "plna"]);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with("error: irsa has no command `plna`\n  help: the commands are: validate, plan,"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let (code, stdout, stderr) = irsa(&["man", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty());
    for command in &commands {
        let page = std::fs::read_to_string(out.join(format!("irsa-{command}.1")))
            .unwrap_or_else(|e| panic!("irsa-{command}.1: {e}"));
        assert!(page.contains(&format!(".TH irsa-{command} 1")), "{page}");
    }
    assert!(out.join("irsa.1").is_file());
}

/// The stack file's problems as GitHub workflow commands: one `::error` a
/// problem, on the file, line and column, with its help, and the closing
/// line as plain text.
#[test]
fn errors_as_github_annotations() {
    let (code, stdout, stderr) = irsa(&["validate", "tests/bad/several_problems.toml", "--error-format", "github"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().filter(|l| l.starts_with("::error file=tests/bad/several_problems.toml,")).count(), 7);
    insta::assert_snapshot!("several_problems.github", stderr);

    // A warning, located at the table it is about; and the environment
    // variable chooses the form as the flag does.
    let (code, _, stderr) = irsa_env(&["validate", "plans/in-sync.toml"], &[("IRSA_ERROR_FORMAT", "github")]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("no_stack_name.github", stderr);

    // An error of no file: no position, still one annotation.
    let (code, _, stderr) =
        irsa(&["--error-format", "github", "plan", "plans/in-sync.toml", "--observed", "nope.json"]);
    assert_eq!(code, 1);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("::error title=irsa%3A%3Asnapshot::cannot read snapshot nope.json: "), "{stderr}");
}

/// Warnings of a plan are in the plan; a pipeline also gets them as
/// annotations and in the JSON document, without the plan changing.
#[test]
fn plan_warnings_are_annotations_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut observed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("plans/in-sync.observed.json").unwrap()).unwrap();
    observed["cluster"]["deployments"] = serde_json::json!([]);
    let path = dir.path().join("observed.json");
    std::fs::write(&path, observed.to_string()).unwrap();
    let path = path.to_str().unwrap();

    let (code, human_plan, human) = irsa(&["plan", "plans/in-sync.toml", "--observed", path]);
    assert_eq!(code, 0, "{human}");
    assert!(human_plan.contains("deployment"), "the plan shows the warning: {human_plan}");
    assert!(human.is_empty(), "{human}");

    let (code, plan, stderr) = irsa(&["plan", "plans/in-sync.toml", "--observed", path, "--error-format", "github"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(plan, human_plan, "the plan is the same in every error format");
    insta::assert_snapshot!("plan_warning.github", stderr);

    let (code, plan, stderr) = irsa(&["plan", "plans/in-sync.toml", "--observed", path, "--error-format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(plan, human_plan);
    let doc: serde_json::Value = serde_json::from_str(&stderr).expect("stderr is one JSON document");
    assert_eq!(doc["diagnostics"][0]["severity"], "warning", "{doc}");
    assert_eq!(doc["diagnostics"][0]["code"], "irsa::plan::warning", "{doc}");
    // At the binding that lists the Deployment.
    assert_eq!(
        (&doc["diagnostics"][0]["file"], &doc["diagnostics"][0]["line"]),
        (&"plans/in-sync.toml".into(), &46.into())
    );
}

/// A plan error at a line of the stack file, annotated there.
#[test]
fn plan_errors_are_annotated_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut observed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("plans/in-sync.observed.json").unwrap()).unwrap();
    observed["iam"]["roles"][0]["tags"] = serde_json::json!({});
    let path = dir.path().join("observed.json");
    std::fs::write(&path, observed.to_string()).unwrap();
    let path = path.to_str().unwrap();
    let (code, stdout, stderr) = irsa(&["plan", "plans/in-sync.toml", "--observed", path, "--error-format", "github"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    insta::assert_snapshot!("unowned_role.github", stderr);
}

/// The stack file's problems as one JSON document: stderr is that document.
#[test]
fn errors_as_one_json_document() {
    let (code, stdout, stderr) = irsa(&["validate", "tests/bad/several_problems.toml", "--error-format", "json"]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    let doc: serde_json::Value = serde_json::from_str(&stderr).expect("stderr is one JSON document");
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["diagnostics"].as_array().map(Vec::len), Some(7));
    insta::assert_json_snapshot!("several_problems.json", doc);

    // A file that is valid: the warning alone, and no other text.
    let (code, _, stderr) = irsa(&["validate", "plans/in-sync.toml", "--error-format", "json"]);
    assert_eq!(code, 0);
    let doc: serde_json::Value = serde_json::from_str(&stderr).expect("stderr is one JSON document");
    insta::assert_json_snapshot!("no_stack_name.json", doc);

    // No problem at all: an empty list, so a pipeline always has a document.
    let (code, _, stderr) = irsa(&["validate", "plans/ekshandson.toml", "--error-format", "json"]);
    assert_eq!(code, 0);
    assert_eq!(stderr, "{\"format_version\":1,\"diagnostics\":[]}\n");

    // An error of no file: file, line and column are null.
    let (code, _, stderr) = irsa(&["validate", "plans/nope.toml", "--error-format", "json"]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&stderr).expect("stderr is one JSON document");
    let d = &doc["diagnostics"][0];
    assert_eq!((&d["severity"], &d["code"]), (&"error".into(), &"irsa::read_stack".into()));
    assert!(d["message"].as_str().unwrap().starts_with("cannot read stack file plans/nope.toml: "), "{d}");
    assert!(d["file"].is_null() && d["line"].is_null() && d["end"].is_null(), "{d}");
}

/// A command line clap refuses is in the form asked for too, with clap's
/// exit code 2; help stays help.
#[test]
fn a_bad_command_line_is_in_the_form_asked_for() {
    let (code, _, stderr) = irsa(&["validate", "--bogus", "--error-format", "json"]);
    assert_eq!(code, 2);
    let doc: serde_json::Value = serde_json::from_str(&stderr).expect("stderr is one JSON document");
    let d = &doc["diagnostics"][0];
    assert_eq!((&d["code"], &d["message"]), (&"irsa::usage".into(), &"unexpected argument '--bogus' found".into()));
    assert!(d["help"].as_str().unwrap().contains("Usage: irsa validate [OPTIONS] <FILE>"), "{d}");

    let (code, _, stderr) = irsa_env(&["plna"], &[("IRSA_ERROR_FORMAT", "github")]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("::error title=irsa%3A%3Ausage::unrecognized subcommand 'plna'%0Ahelp: tip: a similar subcommand exists: 'plan'%0A"),
        "{stderr}"
    );

    let (code, stdout, _) = irsa(&["--error-format=json", "--help"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("Usage: irsa [OPTIONS] <COMMAND>"), "{stdout}");
}

/// The [defaults] tags quota, in the form GitHub puts on the file: once, at
/// the table.
#[test]
fn the_defaults_tags_quota_is_one_annotation_at_the_table() {
    let (code, _, stderr) = irsa(&["validate", "tests/bad/defaults_tags_too_many.toml", "--error-format", "github"]);
    assert_eq!(code, 1);
    let annotations: Vec<&str> = stderr.lines().filter(|l| l.starts_with("::error")).collect();
    assert_eq!(annotations.len(), 1, "{stderr}");
    assert!(
        annotations[0].starts_with(
            "::error file=tests/bad/defaults_tags_too_many.toml,line=13,col=11,endLine=13,endColumn=15,title=irsa%3A%3Aconfig%3A%3Aquota::[defaults] tags has 51 tags"
        ),
        "{stderr}"
    );
}
