//! The corpus of bad stack files in `tests/bad/`: each must be rejected by
//! `irsa validate` with exactly the problems its header announces.
//!
//! A case states what it expects in comment lines:
//!
//! ```toml
//! # expect: <line>:<col> <substring of the message>
//! # expect-file: <path relative to tests/bad/> <line>:<col> <substring>
//! # expect-help: <substring of the help text>
//! ```
//!
//! `expect` is a problem located in the stack file itself, `expect-file` one
//! located in a policy document file it names, and `expect-help` a piece of
//! advice that must appear somewhere in the output (whitespace-insensitive,
//! since the picture wraps long help lines). The number of `error: file:L:C:`
//! lines must equal the number of `expect` and `expect-file` lines, so an
//! unexpected extra problem fails the case too. Each case is also run with
//! `--error-format json` and `github`, which must report the same problems
//! at the same places.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::support::run_irsa;

/// The corpus directory, relative to the crate root (irsa runs from there).
const CORPUS: &str = "tests/bad";
/// The corpus must keep at least this many cases.
const MIN_CASES: usize = 30;

/// One problem a case expects at a position.
#[derive(Debug)]
struct Located {
    /// The file as irsa prints it, e.g. `tests/bad/x.toml`.
    file: String,
    line: usize,
    col: usize,
    substring: String,
}

#[derive(Debug, Default)]
struct Expectations {
    located: Vec<Located>,
    helps: Vec<String>,
}

/// An `error: <file>:<line>:<col>: <message>` line of irsa's stderr.
#[derive(Debug)]
struct ErrorLine<'a> {
    file: &'a str,
    line: usize,
    col: usize,
    text: &'a str,
}

fn error_line(text: &str) -> Option<ErrorLine<'_>> {
    let rest = text.strip_prefix("error: ")?;
    let (head, _) = rest.split_once(": ")?;
    let mut parts = head.rsplitn(3, ':');
    let col = parts.next()?.parse().ok()?;
    let line = parts.next()?.parse().ok()?;
    let file = parts.next()?;
    Some(ErrorLine { file, line, col, text })
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// `<line>:<col> <substring>` → its parts.
fn position_and_text(s: &str) -> Result<(usize, usize, String), String> {
    let (pos, substring) = s.split_once(' ').ok_or_else(|| format!("expected `<line>:<col> <substring>`: {s}"))?;
    let (line, col) = pos.split_once(':').ok_or_else(|| format!("expected `<line>:<col>`, found `{pos}`"))?;
    let number = |n: &str| n.parse::<usize>().map_err(|_| format!("`{n}` in `{pos}` is not a number"));
    let substring = substring.trim();
    if substring.is_empty() {
        return Err(format!("no message substring after `{pos}`"));
    }
    Ok((number(line)?, number(col)?, substring.to_owned()))
}

fn expectations(name: &str, text: &str) -> Result<Expectations, String> {
    let mut exp = Expectations::default();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}", n + 1);
        if let Some(rest) = line.strip_prefix("# expect: ") {
            let (line, col, substring) = position_and_text(rest).map_err(at)?;
            exp.located.push(Located { file: format!("{CORPUS}/{name}"), line, col, substring });
        } else if let Some(rest) = line.strip_prefix("# expect-file: ") {
            let (path, rest) = rest.split_once(' ').ok_or_else(|| at(format!("expected a path: {rest}")))?;
            let (line, col, substring) = position_and_text(rest).map_err(at)?;
            exp.located.push(Located { file: format!("{CORPUS}/{path}"), line, col, substring });
        } else if let Some(rest) = line.strip_prefix("# expect-help: ") {
            exp.helps.push(rest.trim().to_owned());
        } else if line.starts_with("# expect") {
            return Err(at(format!("unknown expectation `{line}`")));
        }
    }
    if exp.located.is_empty() {
        return Err("no `# expect:` line: a bad file must say which problems it expects".into());
    }
    Ok(exp)
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Everything wrong with one case's run, or an empty list.
fn check_case(path: &Path) -> Vec<String> {
    let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return vec![format!("cannot read the case: {e}")],
    };
    let exp = match expectations(&name, &text) {
        Ok(e) => e,
        Err(e) => return vec![e],
    };
    let shown = format!("{CORPUS}/{name}");
    let (code, stdout, stderr) = run_irsa(&["validate", &shown]);
    let mut failures = Vec::new();
    if code != 1 {
        failures.push(format!("exit code {code}, expected 1"));
    }
    if !stdout.is_empty() {
        failures.push(format!("stdout is not empty:\n{stdout}"));
    }
    let errors: Vec<ErrorLine<'_>> = stderr.lines().filter_map(error_line).collect();
    for e in &exp.located {
        let found = errors
            .iter()
            .any(|l| l.file == e.file && l.line == e.line && l.col == e.col && l.text.contains(&e.substring));
        if !found {
            failures.push(format!("no `error: {}:{}:{}: …{}…` line", e.file, e.line, e.col, e.substring));
        }
    }
    if errors.len() != exp.located.len() {
        failures.push(format!("{} problems reported, {} expected", errors.len(), exp.located.len()));
    }
    let n = errors.len();
    let summary = format!("error: {shown} has {n} problem{}; nothing was changed", if n == 1 { "" } else { "s" });
    if n > 0 && !stderr.lines().any(|l| l == summary) {
        failures.push(format!("no closing line `{summary}`"));
    }
    let squashed = squash(&stderr);
    for help in &exp.helps {
        if !squashed.contains(&squash(help)) {
            failures.push(format!("no help text containing `{help}`"));
        }
    }
    failures.extend(other_forms_agree(&shown, &errors));
    if !failures.is_empty() {
        let reported: Vec<&str> = errors.iter().map(|l| l.text).collect();
        let reported = if reported.is_empty() { stderr.trim_end().to_owned() } else { reported.join("\n") };
        failures.push(format!("irsa reported:\n{reported}"));
    }
    failures
}

/// `--error-format json` and `github` report the same problems, at the same
/// places, as the human form's `error: file:line:col:` lines.
fn other_forms_agree(shown: &str, human: &[ErrorLine<'_>]) -> Vec<String> {
    let mut failures = Vec::new();
    let mut want: Vec<(String, usize, usize)> = human.iter().map(|l| (l.file.to_owned(), l.line, l.col)).collect();
    want.sort();

    let (code, stdout, stderr) = run_irsa(&["validate", shown, "--error-format", "json"]);
    match serde_json::from_str::<serde_json::Value>(&stderr) {
        Err(e) => failures.push(format!("--error-format json: stderr is not one JSON document ({e}):\n{stderr}")),
        Ok(doc) => {
            let diags = doc["diagnostics"].as_array().cloned().unwrap_or_default();
            let mut got: Vec<(String, usize, usize)> = diags
                .iter()
                .map(|d| {
                    let n = |k: &str| d[k].as_u64().unwrap_or(0) as usize;
                    (d["file"].as_str().unwrap_or_default().to_owned(), n("line"), n("column"))
                })
                .collect();
            got.sort();
            if got != want || diags.iter().any(|d| d["severity"] != "error") {
                failures.push(format!("--error-format json reports {got:?}, the human form {want:?}"));
            }
        }
    }
    if code != 1 || !stdout.is_empty() {
        failures.push(format!("--error-format json: exit code {code}, stdout {stdout:?}"));
    }

    let (code, _, stderr) = run_irsa(&["validate", shown, "--error-format", "github"]);
    let mut got: Vec<(String, usize, usize)> = stderr
        .lines()
        .filter_map(|l| {
            let props = l.strip_prefix("::error ")?.split_once("::")?.0;
            let prop = |k: &str| props.split(',').find_map(|p| p.strip_prefix(k)).map(str::to_owned);
            let file = prop("file=")?.replace("%2C", ",").replace("%3A", ":").replace("%25", "%");
            Some((file, prop("line=")?.parse().ok()?, prop("col=")?.parse().ok()?))
        })
        .collect();
    got.sort();
    if got != want || code != 1 {
        failures.push(format!("--error-format github reports {got:?} (exit {code}), the human form {want:?}"));
    }
    failures
}

#[test]
fn every_bad_file_is_rejected_with_the_expected_problems() {
    let mut report = String::new();
    let mut failed = 0;
    let cases = cases();
    for path in &cases {
        let failures = check_case(path);
        if failures.is_empty() {
            continue;
        }
        failed += 1;
        let _ = writeln!(report, "\n=== {}", path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path).display());
        for f in failures {
            for (i, line) in f.lines().enumerate() {
                let _ = writeln!(report, "{} {line}", if i == 0 { "  -" } else { "   " });
            }
        }
    }
    assert!(failed == 0, "{failed} of {} bad files did not give the expected problems:\n{report}", cases.len());
}

#[test]
fn the_corpus_has_enough_cases() {
    let n = cases().len();
    assert!(n >= MIN_CASES, "tests/bad/ has {n} cases; keep at least {MIN_CASES}");
}

#[test]
fn error_lines_are_recognised() {
    let l = error_line("error: tests/bad/a.toml:3:14: unknown key `x` in [cluster]").expect("an error line");
    assert_eq!((l.file, l.line, l.col), ("tests/bad/a.toml", 3, 14));
    assert!(error_line("error: tests/bad/a.toml has 2 problems; nothing was changed").is_none());
    assert!(error_line("  help: did you mean: x").is_none());
}
