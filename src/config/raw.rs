//! The stack file read into spanned raw values, checking shapes and keys.
//!
//! serde stops at the first error; users want every problem of a file in one
//! run, so the TOML document is walked by hand (`toml::de::DeTable` keeps a
//! span for every key and value) and each problem is recorded, not returned.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::diagnostic::{Problem, Source};
use crate::model::names::closest;

pub type Span = Range<usize>;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Sp<T> {
    pub v: T,
    pub span: Span,
}

/// Collects problems against one source file.
pub struct Reporter {
    pub source: Source,
    pub problems: Vec<Problem>,
}

impl Reporter {
    pub fn new(source: Source) -> Self {
        Reporter { source, problems: Vec::new() }
    }

    pub fn error(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) {
        self.problems.push(Problem {
            code,
            message: message.into(),
            source: self.source.clone(),
            span,
            label: label.into(),
            help,
        });
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

type Entry<'t, 'i> = (&'t Spanned<DeString<'i>>, &'t Spanned<DeValue<'i>>);

/// One TOML table being read: hands out its keys and reports the ones nobody asked for.
pub struct Table<'t, 'i> {
    table: &'t DeTable<'i>,
    /// How the table is named in messages: `[cluster]`, `[roles.backend]`.
    pub name: String,
    /// Where the table is introduced (its header key), for "missing key" errors.
    pub span: Span,
    allowed: &'static [&'static str],
}

impl<'t, 'i> Table<'t, 'i> {
    pub fn new(
        table: &'t DeTable<'i>,
        name: impl Into<String>,
        span: Span,
        allowed: &'static [&'static str],
        r: &mut Reporter,
    ) -> Self {
        let t = Table { table, name: name.into(), span, allowed };
        t.check_keys(r);
        t
    }

    fn check_keys(&self, r: &mut Reporter) {
        for (key, _) in self.table.iter() {
            let k: &str = key.get_ref();
            if !self.allowed.contains(&k) {
                let help = match closest(k, self.allowed.iter().copied()) {
                    Some(c) => format!("did you mean `{c}`? {} takes: {}", self.name, self.allowed.join(", ")),
                    None => format!("{} takes: {}", self.name, self.allowed.join(", ")),
                };
                r.error(
                    "irsa::config::unknown_key",
                    key.span(),
                    format!("unknown key `{k}` in {}", self.name),
                    "not a known key",
                    Some(help),
                );
            }
        }
    }

    fn entry(&self, key: &str) -> Option<Entry<'t, 'i>> {
        self.table.iter().find(|(k, _)| k.get_ref() == key)
    }

    fn wrong_type(&self, r: &mut Reporter, key: &str, value: &Spanned<DeValue<'_>>, expected: &str, example: &str) {
        r.error(
            "irsa::config::wrong_type",
            value.span(),
            format!("`{key}` in {} must be {expected}, not {}", self.name, type_name(value.get_ref())),
            format!("expected {expected}"),
            Some(format!("write it like {key} = {example}")),
        );
    }

    pub fn missing(&self, r: &mut Reporter, key: &str, example: &str) {
        r.error(
            "irsa::config::missing_key",
            self.span.clone(),
            format!("{} is missing the required key `{key}`", self.name),
            format!("`{key}` is required here"),
            Some(format!("add {key} = {example}")),
        );
    }

    pub fn string(&self, r: &mut Reporter, key: &str, example: &str) -> Option<Sp<String>> {
        let (_, value) = self.entry(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(Sp { v: s.to_string(), span: value.span() }),
            _ => {
                self.wrong_type(r, key, value, "a string", example);
                None
            }
        }
    }

    pub fn required_string(&self, r: &mut Reporter, key: &str, example: &str) -> Option<Sp<String>> {
        if self.entry(key).is_none() {
            self.missing(r, key, example);
            return None;
        }
        self.string(r, key, example)
    }

    pub fn boolean(&self, r: &mut Reporter, key: &str) -> Option<Sp<bool>> {
        let (_, value) = self.entry(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(Sp { v: *b, span: value.span() }),
            _ => {
                self.wrong_type(r, key, value, "a boolean", "true");
                None
            }
        }
    }

    pub fn integer(&self, r: &mut Reporter, key: &str, example: &str) -> Option<Sp<i64>> {
        let (_, value) = self.entry(key)?;
        let DeValue::Integer(i) = value.get_ref() else {
            self.wrong_type(r, key, value, "an integer", example);
            return None;
        };
        match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
            Ok(v) => Some(Sp { v, span: value.span() }),
            Err(_) => {
                r.error(
                    "irsa::config::wrong_type",
                    value.span(),
                    format!("`{key}` in {} is too large a number", self.name),
                    "out of range",
                    Some(format!("write it like {key} = {example}")),
                );
                None
            }
        }
    }

    /// An array of strings; a bad element is reported and skipped.
    pub fn string_list(&self, r: &mut Reporter, key: &str, example: &str) -> Option<Sp<Vec<Sp<String>>>> {
        let (_, value) = self.entry(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(r, key, value, "an array of strings", example);
            return None;
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(Sp { v: s.to_string(), span: item.span() }),
                other => r.error(
                    "irsa::config::wrong_type",
                    item.span(),
                    format!("every element of `{key}` in {} must be a string, not {}", self.name, type_name(other)),
                    "expected a string",
                    Some(format!("write it like {key} = {example}")),
                ),
            }
        }
        Some(Sp { v: out, span: value.span() })
    }

    /// A table of string values (tags, annotations): `(key, value)` pairs in the order written.
    pub fn string_map(&self, r: &mut Reporter, key: &str, example: &str) -> Option<Vec<(Sp<String>, Sp<String>)>> {
        let (_, value) = self.entry(key)?;
        let DeValue::Table(table) = value.get_ref() else {
            self.wrong_type(r, key, value, "a table of strings", example);
            return None;
        };
        let mut out = Vec::new();
        for (k, v) in table.iter() {
            match v.get_ref() {
                DeValue::String(s) => out
                    .push((Sp { v: k.get_ref().to_string(), span: k.span() }, Sp { v: s.to_string(), span: v.span() })),
                other => r.error(
                    "irsa::config::wrong_type",
                    v.span(),
                    format!("`{key}.{}` in {} must be a string, not {}", k.get_ref(), self.name, type_name(other)),
                    "expected a string",
                    Some(format!("quote the value: {} = \"…\"", k.get_ref())),
                ),
            }
        }
        out.sort_by_key(|(k, _)| k.span.start);
        Some(out)
    }

    /// A sub-table, such as `[cluster]` or `[roles]`.
    pub fn table(&self, r: &mut Reporter, key: &str) -> Option<(Sp<String>, &'t DeTable<'i>)> {
        let (k, value) = self.entry(key)?;
        match value.get_ref() {
            DeValue::Table(t) => Some((Sp { v: key.to_owned(), span: k.span() }, t)),
            _ => {
                self.wrong_type(r, key, value, "a table", &format!("{{ … }} or a [{key}] section"));
                None
            }
        }
    }

    /// The entries of a table of tables (`[policies.<name>]`): each name with
    /// its table, in the order they are written (toml hands keys out sorted,
    /// and "differs only in case from the role on line N" must name an earlier line).
    pub fn named_tables(&self, r: &mut Reporter, key: &str) -> Vec<(Sp<String>, &'t DeTable<'i>)> {
        let Some((_, table)) = self.table(r, key) else { return Vec::new() };
        let mut out = Vec::new();
        for (name, value) in table.iter() {
            match value.get_ref() {
                DeValue::Table(t) => out.push((Sp { v: name.get_ref().to_string(), span: name.span() }, t)),
                other => r.error(
                    "irsa::config::wrong_type",
                    value.span(),
                    format!("`{key}.{}` must be a table, not {}", name.get_ref(), type_name(other)),
                    "expected a table",
                    Some(format!("write it as a section: [{key}.{}]", name.get_ref())),
                ),
            }
        }
        out.sort_by_key(|(name, _)| name.span.start);
        out
    }

    /// An array of tables (`[[service_accounts]]`): each table with its span.
    pub fn table_array(&self, r: &mut Reporter, key: &str) -> Vec<(Span, &'t DeTable<'i>)> {
        let Some((_, value)) = self.entry(key) else { return Vec::new() };
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(r, key, value, "an array of tables", &format!("… (use [[{key}]] sections)"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::Table(t) => out.push((item.span(), t)),
                other => r.error(
                    "irsa::config::wrong_type",
                    item.span(),
                    format!("every element of `{key}` must be a table, not {}", type_name(other)),
                    "expected a table",
                    Some(format!("use [[{key}]] sections")),
                ),
            }
        }
        out
    }

    pub fn has(&self, key: &str) -> bool {
        self.entry(key).is_some()
    }

    /// The span of a key as written, for problems about the key itself.
    pub fn key_span(&self, key: &str) -> Option<Span> {
        self.entry(key).map(|(k, _)| k.span())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integer_problem(text: &str) -> String {
        let doc = DeTable::parse(text).expect("valid TOML");
        let mut r = Reporter::new(Source::new("s.toml", text));
        let t = Table::new(doc.get_ref(), "[roles.app]", 0..0, &["max_session_duration"], &mut r);
        assert_eq!(t.integer(&mut r, "max_session_duration", "3600"), None);
        r.problems.iter().map(|p| p.message.clone()).collect()
    }

    #[test]
    fn an_integer_too_large_is_not_called_the_wrong_type() {
        assert_eq!(
            integer_problem("max_session_duration = 99999999999999999999"),
            "`max_session_duration` in [roles.app] is too large a number"
        );
        assert_eq!(
            integer_problem("max_session_duration = 1.5"),
            "`max_session_duration` in [roles.app] must be an integer, not a float"
        );
    }
}
