//! Every command in the README's `sh` blocks is run: those that need no
//! network for real, with bash and the built irsa on PATH, in a copy of
//! `plans/` (in order, so that `irsa show plan.json` finds the plan an
//! earlier line saved); those that need AWS or a cluster by checking that
//! their command and each flag they use exist (`irsa COMMAND --help`). The
//! cargo and scripts lines are CI's own (`.ci/run` runs the first two).

use std::path::Path;

use crate::support::run_irsa;

/// The command lines of the README's `sh` blocks, comments dropped and
/// continued lines joined.
fn sh_lines(readme: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if !in_sh {
            in_sh = line.trim() == "```sh";
            continue;
        }
        if line.trim() == "```" {
            in_sh = false;
            continue;
        }
        let code = match line.find(" #") {
            Some(i) => &line[..i],
            None if line.trim_start().starts_with('#') => "",
            None => line,
        };
        let code = code.trim();
        if let Some(head) = code.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(code);
        if !pending.trim().is_empty() {
            lines.push(std::mem::take(&mut pending).trim().to_owned());
        }
        pending.clear();
    }
    lines
}

/// Whether an irsa command line can run here, without AWS or a cluster.
fn offline(words: &[&str]) -> bool {
    let command = words.get(1).copied().unwrap_or("");
    words.contains(&"--help")
        || ["validate", "show", "graph", "completions", "man", "schema"].contains(&command)
        || (command == "plan" && words.contains(&"--observed"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn every_readme_command_runs_or_names_only_what_exists() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let lines = sh_lines(&readme);
    let dir = tempfile::tempdir().unwrap();
    copy_dir(Path::new("plans"), &dir.path().join("plans"));
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_irsa"), bin.path().join("irsa")).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());

    let (mut ran, mut checked) = (Vec::new(), Vec::new());
    for line in &lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0] != "irsa" {
            // The suite's and CI's own commands; anything else is new and
            // needs a way to be tested here first.
            let known = ["cargo ", "./scripts/test.sh", "KUBECONFIG="].iter().any(|p| line.starts_with(p));
            assert!(known, "README: no test runs `{line}`");
            continue;
        }
        if offline(&words) {
            let out = std::process::Command::new("bash")
                .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", line])
                .current_dir(dir.path())
                .env_clear()
                .env("PATH", &path)
                .env("HOME", dir.path())
                .env("NO_COLOR", "1")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "README: `{line}` failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            ran.push(line.clone());
        } else {
            let (code, help, stderr) = run_irsa(&[words[1], "--help"]);
            assert_eq!(code, 0, "README: `{line}`: no command {}: {stderr}", words[1]);
            for flag in words.iter().filter(|w| w.starts_with('-')) {
                let flag = flag.split('=').next().unwrap();
                assert!(help.contains(flag), "README: `{line}`: irsa {} has no {flag}", words[1]);
            }
            checked.push(line.clone());
        }
    }
    // The tour's steps, each covered one way or the other.
    for wanted in
        ["irsa validate", "irsa plan", "irsa show", "irsa graph", "irsa schema", "irsa man", "irsa completions"]
    {
        assert!(ran.iter().any(|l| l.starts_with(wanted)), "README: nothing ran `{wanted}`: {ran:?}");
    }
    for wanted in ["irsa apply", "irsa doctor"] {
        assert!(checked.iter().any(|l| l.starts_with(wanted)), "README: `{wanted}` not checked: {checked:?}");
    }
    // What the tour's lines left behind is what they say they make.
    for made in ["plan.json", "plan.md", "irsa.bash", "irsa.schema.json", "man/irsa.1"] {
        assert!(dir.path().join(made).is_file(), "README: no {made} after the tour");
    }
}

/// The tour's picture of the plan is the plan: each of its lines is a line
/// of what `irsa plan` prints for the seed stack (it leaves some out).
#[test]
fn the_tours_plan_excerpt_is_what_plan_prints() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let tour = &readme[readme.find("## A five-minute tour").expect("the tour")..];
    let start = tour.find("\n\n```\n").expect("a plain block in the tour") + 6;
    let excerpt = &tour[start..start + tour[start..].find("```").unwrap()];
    let (code, plan, stderr) =
        run_irsa(&["plan", "plans/ekshandson.toml", "--observed", "plans/ekshandson.observed.json"]);
    assert_eq!(code, 0, "{stderr}");
    let plan_lines: Vec<&str> = plan.lines().collect();
    let shown: Vec<&str> = excerpt.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(shown.len() >= 5, "{excerpt}");
    for line in shown {
        assert!(plan_lines.contains(&line), "README tour: `{line}` is not a line of the plan:\n{plan}");
    }
}

#[test]
fn the_readme_parser_joins_continued_lines_and_drops_comments() {
    let text = "x\n```sh\n# a comment\nirsa plan a.toml \\\n  --observed b.json  # why\n\nirsa man\n```\n```\nirsa not-sh\n```\n";
    assert_eq!(sh_lines(text), ["irsa plan a.toml --observed b.json", "irsa man"]);
}
