//! The example pipelines of `examples/github-actions/` run: each job's steps
//! in order, the `run:` ones with bash as GitHub runs them
//! (`bash --noprofile --norc -eo pipefail`), with the built irsa on PATH,
//! against moto and the Kubernetes test server. What only GitHub has is
//! replaced by what it does: `actions/checkout` by a workspace holding the
//! stack, the AWS credentials action by moto's credentials and endpoint,
//! `actions/upload-artifact` by a copy into an artifact store, and `gh` by
//! `gh_recorder.py`, which keeps comments, runs and artifacts and fails on
//! any call it does not know. `${{ … }}` expressions must be ones a scenario
//! gives a value: an unknown one fails the test. The install step (id
//! `install-irsa`) is the one step not run: the binary under test is used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::Value;

use crate::support::Moto;
use crate::world::Cluster;

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn workflow(name: &str) -> Value {
    let path = format!("examples/github-actions/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// GitHub's side of the runs: one repository, its runs and artifacts.
struct GitHub {
    /// The `gh` recorder's state (comments, runs, artifacts, calls.log).
    state: tempfile::TempDir,
    /// A directory with `gh` and `irsa`, first on PATH.
    bin: tempfile::TempDir,
    runs: Vec<serde_json::Value>,
}

/// One run of a job: the event it runs for, as the expressions it may use.
struct Event {
    name: &'static str,
    /// `${{ expr }}` values (and `if:` conditions, by their text).
    values: BTreeMap<&'static str, String>,
    /// Extra environment for the irsa runs (the AWS credentials action).
    env: Vec<(String, String)>,
}

/// How a job ended: the failed step's name, exit code and output.
#[derive(Debug)]
struct Failed {
    step: String,
    code: i32,
    output: String,
}

impl GitHub {
    fn new() -> GitHub {
        let bin = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        for (tool, script) in [("gh", "tests/it/gh_recorder.py"), ("glab", "tests/it/glab_recorder.py")] {
            let path = bin.path().join(tool);
            std::fs::copy(script, &path).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_irsa"), bin.path().join("irsa")).unwrap();
        GitHub { state: tempfile::tempdir().unwrap(), bin, runs: Vec::new() }
    }

    fn comments(&self) -> Vec<serde_json::Value> {
        let path = self.state.path().join("comments.json");
        std::fs::read_to_string(path).map(|t| serde_json::from_str(&t).unwrap()).unwrap_or_default()
    }

    fn calls(&self) -> Vec<Vec<String>> {
        let log = std::fs::read_to_string(self.state.path().join("calls.log")).unwrap_or_default();
        log.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// One run of workflow `file` for `event`: its `jobs` one after the
    /// other, each in `workspace` (a fresh checkout); the run is recorded
    /// for `gh run list` as a success or, at the first failed job, a failure.
    fn run(&mut self, file: &str, jobs: &[&str], workspace: &Path, event: &Event) -> Result<(), Failed> {
        let run_id = 5000 + self.runs.len() as u64;
        for job in jobs {
            if let Err(failed) = self.job(run_id, file, job, workspace, event) {
                self.record(run_id, file, event, "failure");
                return Err(failed);
            }
        }
        self.record(run_id, file, event, "success");
        Ok(())
    }

    fn job(&mut self, run_id: u64, file: &str, job: &str, workspace: &Path, event: &Event) -> Result<(), Failed> {
        let wf = workflow(file);
        let temp = tempfile::tempdir().unwrap();
        let (github_env, github_output) = (temp.path().join("github_env"), temp.path().join("github_output"));
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        let path = format!("{}:{}", self.bin.path().display(), std::env::var("PATH").unwrap_or_default());
        for (k, v) in [
            ("PATH", path),
            ("HOME", temp.path().display().to_string()),
            ("NO_COLOR", "1".into()),
            ("CI", "true".into()),
            ("GITHUB_ACTIONS", "true".into()),
            ("GITHUB_REPOSITORY", "example/platform".into()),
            ("GITHUB_SHA", SHA.into()),
            ("GITHUB_EVENT_NAME", event.name.into()),
            ("GITHUB_WORKSPACE", workspace.display().to_string()),
            ("RUNNER_TEMP", temp.path().display().to_string()),
            ("GITHUB_ENV", github_env.display().to_string()),
            ("GITHUB_OUTPUT", github_output.display().to_string()),
            ("GH_STUB_DIR", self.state.path().display().to_string()),
        ] {
            env.insert(k.into(), v);
        }
        let mut outputs: BTreeMap<String, String> = BTreeMap::new();
        let eval = |expr: &str, outputs: &BTreeMap<String, String>| -> String {
            let expr = expr.trim();
            outputs
                .get(expr)
                .or_else(|| event.values.get(expr))
                .cloned()
                .unwrap_or_else(|| panic!("{file}: no value for the expression `{expr}` in this scenario"))
        };
        let substitute = |s: &str, outputs: &BTreeMap<String, String>| -> String {
            let mut result = String::new();
            let mut rest = s;
            while let Some(start) = rest.find("${{") {
                let end = rest[start..].find("}}").expect("a closed expression") + start;
                result.push_str(&rest[..start]);
                result.push_str(&eval(&rest[start + 3..end], outputs));
                rest = &rest[end + 2..];
            }
            result + rest
        };
        let add_env = |env: &mut BTreeMap<String, String>, map: Option<&Value>, outputs: &BTreeMap<String, String>| {
            if let Some(Value::Mapping(m)) = map {
                for (k, v) in m {
                    env.insert(text(k), substitute(&text(v), outputs));
                }
            }
        };
        add_env(&mut env, wf.get("env"), &outputs);
        let job_def = &wf["jobs"][job];
        if let Some(condition) = job_def.get("if") {
            assert_eq!(eval(&text(condition), &outputs), "true", "{file}: job {job} does not run for {}", event.name);
        }
        add_env(&mut env, job_def.get("env"), &outputs);
        env.extend(event.env.iter().cloned());

        let steps = job_def["steps"].as_sequence().expect("steps");
        for (n, step) in steps.iter().enumerate() {
            let name = step.get("name").map(text).unwrap_or_else(|| format!("step {n}"));
            if let Some(condition) = step.get("if") {
                let c = text(condition);
                let c = c.trim().strip_prefix("${{").and_then(|c| c.strip_suffix("}}")).unwrap_or(&c);
                if eval(c, &outputs) != "true" {
                    continue;
                }
            }
            if step.get("id").map(text).as_deref() == Some("install-irsa") {
                continue;
            }
            let mut step_env = env.clone();
            add_env(&mut step_env, step.get("env"), &outputs);
            if let Some(uses) = step.get("uses").map(text) {
                let action = uses.split('@').next().unwrap();
                match action {
                    "actions/checkout" | "aws-actions/configure-aws-credentials" => {}
                    "actions/upload-artifact" => {
                        let with = &step["with"];
                        let artifact = substitute(&text(&with["name"]), &outputs);
                        let target = self.state.path().join("artifacts").join(run_id.to_string()).join(artifact);
                        copy_dir(&workspace.join(text(&with["path"])), &target);
                    }
                    other => panic!("{file}: the test does not know the action {other}"),
                }
                continue;
            }
            let script = substitute(&text(&step["run"]), &outputs);
            let script_file = temp.path().join(format!("step-{n}.sh"));
            std::fs::write(&script_file, &script).unwrap();
            let out = std::process::Command::new("bash")
                .args(["--noprofile", "--norc", "-eo", "pipefail"])
                .arg(&script_file)
                .current_dir(workspace)
                .env_clear()
                .envs(&step_env)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            eprintln!("--- {file} {job}: {name}\n{output}");
            if !out.status.success() {
                return Err(Failed { step: name, code: out.status.code().unwrap_or(-1), output });
            }
            // What the step exported for the next ones ($GITHUB_ENV) and
            // its outputs ($GITHUB_OUTPUT), in their `K=V` form.
            for line in std::fs::read_to_string(&github_env).unwrap_or_default().lines() {
                let (k, v) = line.split_once('=').expect("K=V in GITHUB_ENV");
                env.insert(k.into(), v.into());
            }
            if let Some(id) = step.get("id").map(text) {
                for line in std::fs::read_to_string(&github_output).unwrap_or_default().lines() {
                    let (k, v) = line.split_once('=').expect("K=V in GITHUB_OUTPUT");
                    outputs.insert(format!("steps.{id}.outputs.{k}"), v.into());
                }
            }
            let _ = std::fs::remove_file(&github_env);
            let _ = std::fs::remove_file(&github_output);
        }
        Ok(())
    }

    fn record(&mut self, run_id: u64, file: &str, event: &Event, conclusion: &str) {
        let branch = if event.name == "pull_request" { "feature" } else { "main" };
        self.runs.push(serde_json::json!({
            "databaseId": run_id, "workflow": file, "headSha": SHA, "headBranch": branch,
            "event": event.name, "conclusion": conclusion,
        }));
        std::fs::write(self.state.path().join("runs.json"), serde_json::to_string(&self.runs).unwrap()).unwrap();
    }
}

/// One GitLab pipeline of `examples/gitlab-ci/.gitlab-ci.yml`: its jobs in
/// stage order, those whose `rules` match (`rules` maps each `if:` to
/// whether it holds; a `when: manual` job is played), each job's
/// `before_script` and `script` as one bash script the way the runner runs
/// it (`set -eo pipefail`), with the artifacts of the jobs it `needs`.
/// `before_job` is called with each job's name just before it runs.
fn gitlab_pipeline(
    gh: &GitHub,
    workspace: &Path,
    rules: &BTreeMap<&str, bool>,
    variables: &[(String, String)],
    mut before_job: impl FnMut(&str),
) -> Result<Vec<String>, Failed> {
    let file = "examples/gitlab-ci/.gitlab-ci.yml";
    let ci: Value = serde_norway::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let stages: Vec<String> = ci["stages"].as_sequence().unwrap().iter().map(text).collect();
    let artifacts = tempfile::tempdir().unwrap();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let path = format!("{}:{}", gh.bin.path().display(), std::env::var("PATH").unwrap_or_default());
    env.insert("PATH".into(), path);
    env.insert("HOME".into(), artifacts.path().display().to_string());
    env.insert("NO_COLOR".into(), "1".into());
    env.insert("CI".into(), "true".into());
    env.insert("GITLAB_CI".into(), "true".into());
    env.insert("CI_PROJECT_DIR".into(), workspace.display().to_string());
    env.insert("CI_PROJECT_ID".into(), "42".into());
    env.insert("GH_STUB_DIR".into(), gh.state.path().display().to_string());
    if let Some(Value::Mapping(m)) = ci.get("variables") {
        env.extend(m.iter().map(|(k, v)| (text(k), text(v))));
    }
    env.extend(variables.iter().cloned());
    let lines = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_sequence).map(|s| s.iter().map(text).collect()).unwrap_or_default()
    };
    let before = lines(ci.get("default").and_then(|d| d.get("before_script")));
    let mut ran = Vec::new();
    for stage in &stages {
        let Value::Mapping(jobs) = &ci else { unreachable!() };
        for (name, job) in jobs {
            let name = text(name);
            if job.get("stage").map(text).as_deref() != Some(stage.as_str()) {
                continue;
            }
            let matched = job["rules"].as_sequence().unwrap().iter().find(|rule| {
                let condition = text(&rule["if"]);
                *rules.get(condition.as_str()).unwrap_or_else(|| panic!("{file}: no value for the rule `{condition}`"))
            });
            if matched.is_none() {
                continue;
            }
            for needed in lines(job.get("needs")) {
                copy_tree(&artifacts.path().join(&needed), workspace);
            }
            before_job(&name);
            let script = ["set -eo pipefail".to_owned()]
                .into_iter()
                .chain(before.iter().cloned())
                .chain(lines(job.get("script")))
                .collect::<Vec<_>>()
                .join("\n");
            let out = std::process::Command::new("bash")
                .args(["--noprofile", "--norc", "-c", &script])
                .current_dir(workspace)
                .env_clear()
                .envs(&env)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            eprintln!("--- {file} {name}\n{output}");
            if !out.status.success() {
                return Err(Failed { step: name, code: out.status.code().unwrap_or(-1), output });
            }
            for kept in lines(job.get("artifacts").and_then(|a| a.get("paths"))) {
                let target = artifacts.path().join(&name).join(kept.trim_end_matches('/'));
                copy_dir(&workspace.join(&kept), &target);
            }
            ran.push(name);
        }
    }
    Ok(ran)
}

/// Copy the tree `from` into `to`, keeping its relative paths.
fn copy_tree(from: &Path, to: &Path) {
    let Ok(entries) = std::fs::read_dir(from) else { return };
    for entry in entries {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A fresh checkout of the repository the examples belong to: the stack
/// (as the scenario's cluster needs it) in plans/.
fn checkout(c: &Cluster) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let plans = dir.path().join("plans");
    std::fs::create_dir_all(&plans).unwrap();
    let stack = PathBuf::from(c.stack());
    std::fs::copy(&stack, plans.join("ekshandson.toml")).unwrap();
    copy_dir(&stack.parent().unwrap().join("policies"), &plans.join("policies"));
    dir
}

fn event(name: &'static str, c: &Cluster, moto: Option<&Moto>, fork: bool) -> Event {
    let kubeconfig = std::fs::read(&c.kubeconfig).unwrap();
    let b64 = base64(&kubeconfig);
    let mut values: BTreeMap<&'static str, String> = BTreeMap::new();
    let pr = name == "pull_request";
    values.insert("github.event_name == 'push'", (name == "push").to_string());
    values.insert("github.event_name == 'pull_request'", pr.to_string());
    values.insert("github.event.pull_request.head.repo.fork", (pr && fork).to_string());
    values.insert("!github.event.pull_request.head.repo.fork", (!(pr && fork)).to_string());
    values.insert("github.event.pull_request.number", "7".into());
    values.insert("github.token", "ghs_test".into());
    // A fork's run gets no secrets and no variables: empty, as on GitHub.
    let secret = |v: String| if fork { String::new() } else { v };
    values.insert("secrets.IRSA_KUBECONFIG", secret(b64));
    values.insert("vars.IRSA_PLAN_ROLE_ARN", secret("arn:aws:iam::123456789012:role/irsa-plan".into()));
    values.insert("vars.IRSA_APPLY_ROLE_ARN", secret("arn:aws:iam::123456789012:role/irsa-apply".into()));
    let env = moto.map(Moto::env).unwrap_or_default().into_iter().filter(|(k, _)| k != "IRSA_STORE").collect();
    Event { name, values, env }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn github_pipelines(c: &Cluster) {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    c.deployment(None);
    c.advance(60);
    let mut gh = GitHub::new();

    // A pull request from the repository: planned live, one comment.
    let pr = event("pull_request", c, Some(&moto), false);
    let ws = checkout(c);
    gh.run("plan.yml", &["plan"], ws.path(), &pr).unwrap();
    let comments = gh.comments();
    assert_eq!(comments.len(), 1, "{comments:?}");
    let body = comments[0]["body"].as_str().unwrap();
    assert!(body.starts_with("<!-- irsa-plan: plans/ekshandson.toml -->\n"), "{body}");
    assert!(body.contains("9 to create"), "{body}");
    // Pushed again: the same comment, updated.
    gh.run("plan.yml", &["plan"], checkout(c).path(), &pr).unwrap();
    assert_eq!(gh.comments().len(), 1, "one comment, updated: {:?}", gh.comments());
    assert!(gh.calls().iter().any(|c| c.contains(&"PATCH".to_owned())), "{:?}", gh.calls());

    // Merged: main exports its snapshot and saves the plan of the commit.
    let push = event("push", c, Some(&moto), false);
    gh.run("plan.yml", &["snapshot", "plan"], checkout(c).path(), &push).unwrap();
    let comments_before = gh.comments();

    // A pull request from a fork: no credentials, no kubeconfig; planned
    // from main's snapshot, the same plan in the comment.
    let fork = event("pull_request", c, None, true);
    gh.run("plan.yml", &["plan"], checkout(c).path(), &fork).unwrap();
    let comments = gh.comments();
    assert_eq!(comments.len(), 1);
    let body = comments[0]["body"].as_str().unwrap();
    assert!(body.contains("observed from"), "planned from the snapshot: {body}");
    assert!(body.contains("9 to create"), "{body}");
    assert_ne!(comments, comments_before);

    // The release applies the plan saved on main.
    let release = event("release", c, Some(&moto), false);
    gh.run("apply.yml", &["apply"], checkout(c).path(), &release).unwrap();
    assert!(c.sa("my-service-account").is_some());
    assert!(moto.block_on(moto.iam.get_role().role_name("backend-messages").send()).is_ok());
    c.advance(60);

    // A plan saved, then the world moves before the release: exit 3 and a
    // clear message, nothing changed.
    let ws = checkout(c);
    std::fs::write(
        ws.path().join("plans/ekshandson.toml"),
        std::fs::read_to_string(ws.path().join("plans/ekshandson.toml"))
            .unwrap()
            .replace("team = \"platform\"", "team = \"payments\""),
    )
    .unwrap();
    gh.run("plan.yml", &["plan"], ws.path(), &push).unwrap();
    moto.block_on(
        moto.iam
            .tag_role()
            .role_name("backend-messages")
            .tags(aws_sdk_iam::types::Tag::builder().key("team").value("by-hand").build().unwrap())
            .send(),
    )
    .unwrap();
    let failed = gh.run("apply.yml", &["apply"], ws.path(), &release).unwrap_err();
    assert_eq!((failed.step.as_str(), failed.code), ("Apply", 3), "{failed:?}");
    assert!(failed.output.contains("::error title=irsa: the saved plan is stale::"), "{}", failed.output);
    assert!(failed.output.contains("role/backend-messages"), "{}", failed.output);
}

#[test]
fn the_github_actions_examples_plan_comment_save_and_apply() {
    github_pipelines(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn the_github_actions_examples_plan_comment_save_and_apply_on_a_real_cluster() {
    github_pipelines(&Cluster::real());
}

fn gitlab_pipelines(c: &Cluster) {
    let moto = Moto::start();
    moto.hand_made_role("Role");
    c.deployment(None);
    c.advance(60);
    let gh = GitHub::new();
    let mut variables: Vec<(String, String)> = moto.env().into_iter().filter(|(k, _)| k != "IRSA_STORE").collect();
    variables.push(("IRSA_KUBECONFIG".into(), base64(&std::fs::read(&c.kubeconfig).unwrap())));
    variables.push(("IRSA_GITLAB_TOKEN".into(), "glpat-test".into()));
    let notes = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(gh.state.path().join("notes.json"))
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or_default()
    };

    // A merge request, pushed twice: one note, updated.
    let mr = BTreeMap::from([(r#"$CI_PIPELINE_SOURCE == "merge_request_event""#, true), ("$CI_COMMIT_TAG", false)]);
    let mr_vars = [variables.clone(), vec![("CI_MERGE_REQUEST_IID".into(), "3".into())]].concat();
    for _ in 0..2 {
        let ran = gitlab_pipeline(&gh, checkout(c).path(), &mr, &mr_vars, |_| {}).unwrap();
        assert_eq!(ran, ["plan"]);
    }
    let notes_now = notes();
    assert_eq!(notes_now.len(), 1, "{notes_now:?}");
    let body = notes_now[0]["body"].as_str().unwrap();
    assert!(body.starts_with("<!-- irsa-plan: plans/ekshandson.toml -->\n") && body.contains("9 to create"), "{body}");

    // A tag: plan, then the manual apply of exactly that plan.
    let tag = BTreeMap::from([(r#"$CI_PIPELINE_SOURCE == "merge_request_event""#, false), ("$CI_COMMIT_TAG", true)]);
    let tag_vars = [variables.clone(), vec![("CI_COMMIT_TAG".into(), "v1.0.0".into())]].concat();
    let ran = gitlab_pipeline(&gh, checkout(c).path(), &tag, &tag_vars, |_| {}).unwrap();
    assert_eq!(ran, ["plan", "apply"]);
    assert!(c.sa("my-service-account").is_some());
    assert_eq!(notes().len(), 1, "a tag's pipeline writes no note");
    c.advance(60);

    // Something moves between the plan and the play: exit 3, and the message.
    let ws = checkout(c);
    let stack = ws.path().join("plans/ekshandson.toml");
    std::fs::write(
        &stack,
        std::fs::read_to_string(&stack).unwrap().replace("team = \"platform\"", "team = \"payments\""),
    )
    .unwrap();
    let failed = gitlab_pipeline(&gh, ws.path(), &tag, &tag_vars, |job| {
        if job == "apply" {
            let tag = aws_sdk_iam::types::Tag::builder().key("team").value("by-hand").build().unwrap();
            moto.block_on(moto.iam.tag_role().role_name("backend-messages").tags(tag).send()).unwrap();
        }
    })
    .unwrap_err();
    assert_eq!((failed.step.as_str(), failed.code), ("apply", 3), "{failed:?}");
    assert!(failed.output.contains("irsa: the saved plan is stale"), "{}", failed.output);
}

#[test]
fn the_gitlab_ci_example_notes_plans_and_applies_a_tag() {
    gitlab_pipelines(&Cluster::test_server());
}

#[test]
#[ignore = "needs cluster"]
fn the_gitlab_ci_example_notes_plans_and_applies_a_tag_on_a_real_cluster() {
    gitlab_pipelines(&Cluster::real());
}
