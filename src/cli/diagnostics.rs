//! Problems and warnings as CI systems read them: `--error-format github`
//! (workflow commands, which GitHub shows on the stack file in a pull
//! request) and `--error-format json` (one versioned document, see
//! docs/errors.md). The human form stays in [`super::error::report`].

use std::fmt::Write as _;

use serde::Serialize;

use std::ops::Range;

use crate::config::{Problem, Source};

/// How errors and warnings are written on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ErrorFormat {
    /// miette's picture on a terminal; `error: file:line:col: message` and
    /// `  help:` lines otherwise.
    #[default]
    Human,
    /// GitHub Actions workflow commands (`::error file=F,line=L,col=C::message`).
    Github,
    /// One JSON document (format_version 1), the last thing written on stderr.
    Json,
}

/// The version of the JSON document; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// One problem or warning, wherever it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diag {
    pub severity: Severity,
    /// A stable identifier such as `irsa::config::unknown_key`.
    pub code: String,
    pub message: String,
    pub help: Option<String>,
    /// The file at fault, as given on the command line (relative paths stay
    /// relative, which is what GitHub needs to find it in the repository).
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The position just after the text at fault.
    pub end: Option<Position>,
}

impl Diag {
    /// A diagnostic without a place in a file.
    pub fn unlocated(severity: Severity, code: &str, message: impl Into<String>, help: Option<String>) -> Diag {
        Diag {
            severity,
            code: code.to_owned(),
            message: message.into(),
            help,
            file: None,
            line: None,
            column: None,
            end: None,
        }
    }

    pub fn from_problem(p: &Problem) -> Diag {
        Diag::unlocated(Severity::Error, p.code, p.message.clone(), p.help.clone()).at(&p.source, &p.span)
    }

    /// The same diagnostic, located at `span` of `source`.
    pub fn at(mut self, source: &Source, span: &Range<usize>) -> Diag {
        let (line, column) = source.line_col(span.start);
        let (end_line, end_column) = source.line_col(span.end.max(span.start));
        self.file = Some(source.name.clone());
        (self.line, self.column) = (Some(line), Some(column));
        self.end = Some(Position { line: end_line, column: end_column });
        self
    }
}

/// GitHub's escaping of a workflow command's message (`escapeData` in
/// @actions/core): `%`, CR and LF.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// GitHub's escaping of a property value (`escapeProperty`): also `:` and `,`,
/// which would otherwise end the value.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One workflow command line: `::error file=…,line=…,col=…,endLine=…,endColumn=…,title=…::message`.
pub fn github_line(d: &Diag) -> String {
    let command = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut props: Vec<String> = Vec::new();
    if let Some(file) = &d.file {
        props.push(format!("file={}", escape_property(file)));
    }
    if let Some(line) = d.line {
        props.push(format!("line={line}"));
    }
    if let Some(col) = d.column {
        props.push(format!("col={col}"));
    }
    if let Some(end) = d.end {
        props.push(format!("endLine={}", end.line));
        // GitHub takes a column range only on one line.
        if Some(end.line) == d.line {
            props.push(format!("endColumn={}", end.column));
        }
    }
    props.push(format!("title={}", escape_property(&d.code)));
    let mut message = d.message.clone();
    if let Some(help) = &d.help {
        let _ = write!(message, "\nhelp: {help}");
    }
    format!("::{command} {}::{}\n", props.join(","), escape_data(&message))
}

/// The JSON document: `{"format_version": 1, "diagnostics": [...]}`, on one line.
pub fn json_document(diagnostics: &[Diag]) -> String {
    #[derive(Serialize)]
    struct Document<'a> {
        format_version: u32,
        diagnostics: &'a [Diag],
    }
    let doc = Document { format_version: FORMAT_VERSION, diagnostics };
    serde_json::to_string(&doc).expect("diagnostics serialise to JSON") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_commands_escape_what_would_end_a_value_or_a_line() {
        let d = Diag {
            severity: Severity::Error,
            code: "irsa::config::x".into(),
            message: "100% wrong,\r\nreally".into(),
            help: Some("a: b".into()),
            file: Some("dir,a/b:c.toml".into()),
            line: Some(3),
            column: Some(5),
            end: Some(Position { line: 3, column: 9 }),
        };
        assert_eq!(
            github_line(&d),
            "::error file=dir%2Ca/b%3Ac.toml,line=3,col=5,endLine=3,endColumn=9,title=irsa%3A%3Aconfig%3A%3Ax::100%25 wrong,%0D%0Areally%0Ahelp: a: b\n"
        );
        let w = Diag::unlocated(Severity::Warning, "irsa::w", "look", None);
        assert_eq!(github_line(&w), "::warning title=irsa%3A%3Aw::look\n");
    }

    #[test]
    fn a_problem_spanning_lines_has_no_end_column() {
        let source = Source::new("s.toml", "a = '''\nx\n'''\n");
        let p = Problem { code: "irsa::t", message: "m".into(), source, span: 4..13, label: String::new(), help: None };
        let d = Diag::from_problem(&p);
        assert_eq!((d.line, d.column, d.end), (Some(1), Some(5), Some(Position { line: 3, column: 4 })));
        assert_eq!(github_line(&d), "::error file=s.toml,line=1,col=5,endLine=3,title=irsa%3A%3At::m\n");
    }
}
