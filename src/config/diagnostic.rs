//! Located problems in the files a user wrote, rendered by miette.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, SourceCode};

/// A file whose text problems point into: the stack file or a policy document.
#[derive(Debug, Clone)]
pub struct Source {
    /// The path as the user would write it (relative to where irsa runs).
    pub name: String,
    pub text: Arc<String>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Source { name: name.into(), text: Arc::new(text.into()) }
    }

    /// A source whose text is held elsewhere too (a loaded stack's).
    pub fn shared(name: impl Into<String>, text: Arc<String>) -> Self {
        Source { name: name.into(), text }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    /// Byte offset of a 1-based line and column, as serde_json reports them.
    pub fn offset_of(&self, line: usize, col: usize) -> usize {
        let mut offset = 0;
        for (i, l) in self.text.split_inclusive('\n').enumerate() {
            if i + 1 == line {
                let col_bytes: usize = l.chars().take(col.saturating_sub(1)).map(char::len_utf8).sum();
                return offset + col_bytes;
            }
            offset += l.len();
        }
        self.text.len()
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One problem: what is wrong, where, and how to fix it.
#[derive(Debug, Clone)]
pub struct Problem {
    pub code: &'static str,
    pub message: String,
    pub source: Source,
    pub span: Range<usize>,
    pub label: String,
    pub help: Option<String>,
}

impl Problem {
    /// `file:line:col`, the position a user (or an editor) jumps to.
    pub fn location(&self) -> String {
        let (line, col) = self.source.line_col(self.span.start);
        format!("{}:{line}:{col}", self.source.name)
    }
}

/// The message alone: the position is shown by whoever renders the problem
/// (`file:line:col` and miette's snippet), so it is not repeated here.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let len = self.span.len();
        Some(Box::new(std::iter::once(LabeledSpan::new_primary_with_span(
            Some(self.label.clone()),
            (self.span.start, len),
        ))))
    }
}

impl SourceCode for Source {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let inner = self.text.as_str().read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

/// All the problems of one stack file, reported together.
#[derive(Debug, thiserror::Error)]
#[error("{path} has {} problem{}", problems.len(), if problems.len() == 1 { "" } else { "s" })]
pub struct Problems {
    pub path: PathBuf,
    pub problems: Vec<Problem>,
}

impl Diagnostic for Problems {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.problems.iter().map(|p| p as &dyn Diagnostic)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_character_columns() {
        let src = Source::new("s.toml", "a = 1\nbé = 2\n");
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(6), (2, 1));
        assert_eq!(src.line_col(9), (2, 3)); // after the two-byte é
        assert_eq!(src.offset_of(2, 3), 9);
        assert_eq!(src.offset_of(1, 5), 4);
    }
}
