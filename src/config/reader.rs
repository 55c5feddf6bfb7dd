//! A reader over the merged configuration tree that turns raw values into
//! typed settings and collects every problem instead of stopping at the
//! first, so an operator fixes a broken file in one pass.
//!
//! Each accessor marks its key as known; [`Table::finish`] then reports the
//! keys nobody asked for, which is how typos become errors.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Map, Value, ValueKind};
use secrecy::SecretString;

use super::error::{Origin, Problem};
use super::ENV_PREFIX;
use crate::connector::{Secret, SecretSource};

/// The `origin` string the `config` crate gives values read from the
/// environment.
const ENV_ORIGIN: &str = "the environment";

/// Shared state of one load: where the file's keys are, and the problems
/// found so far.
pub(crate) struct Context {
    file: Option<FileLines>,
    problems: RefCell<Vec<Problem>>,
}

/// Line numbers of the keys of the operator's config file.
pub(crate) struct FileLines {
    pub path: PathBuf,
    pub lines: HashMap<String, usize>,
}

impl Context {
    pub fn new(file: Option<FileLines>) -> Self {
        Self {
            file,
            problems: RefCell::new(Vec::new()),
        }
    }

    pub fn into_problems(self) -> Vec<Problem> {
        self.problems.into_inner()
    }

    /// Records a problem about `key`, located by the value (or the table
    /// that lacks it) in `at`.
    pub fn report(&self, key: &str, at: &Value, value: Option<String>, message: String) {
        self.problems.borrow_mut().push(Problem {
            origin: self.origin(key, at),
            key: key.to_owned(),
            value,
            message,
        });
    }

    /// Environment values name their variable. Anything else is placed in
    /// the operator's file when the key (or its nearest enclosing table) is
    /// written there: merged tables carry no origin of their own.
    fn origin(&self, key: &str, at: &Value) -> Origin {
        if at.origin() == Some(ENV_ORIGIN) {
            return Origin::Env {
                var: env_var_for(key),
            };
        }
        match &self.file {
            Some(file) => match line_of(&file.lines, key) {
                Some(line) => Origin::File {
                    path: file.path.clone(),
                    line: Some(line),
                },
                None if at.origin().is_some() => Origin::File {
                    path: file.path.clone(),
                    line: None,
                },
                None => Origin::BuiltIn,
            },
            None => Origin::BuiltIn,
        }
    }
}

/// The line of `key`, or of the nearest enclosing table that has one.
fn line_of(lines: &HashMap<String, usize>, key: &str) -> Option<usize> {
    let mut path = key;
    loop {
        if let Some(line) = lines.get(path) {
            return Some(*line);
        }
        path = &path[..path.rfind('.')?];
    }
}

/// The environment variable that sets `key`: `sides.ghl.auth.token` is
/// `GHLSYNC__SIDES__GHL__AUTH__TOKEN`.
pub fn env_var_for(key: &str) -> String {
    let mut var = format!("{ENV_PREFIX}__");
    var.push_str(&key.replace('.', "__").to_uppercase());
    var
}

/// Outcome of reading one key.
#[derive(Debug)]
pub(crate) enum Got<T> {
    /// The key is not set in any layer.
    Absent,
    /// The key is set but its value was rejected (already reported).
    Invalid,
    Value(T),
}

impl<T> Got<T> {
    pub fn or(self, default: T) -> T {
        match self {
            Got::Value(value) => value,
            _ => default,
        }
    }

    /// The value, or `default()` when absent; `None` when invalid.
    pub fn with_default(self, default: impl FnOnce() -> T) -> Option<T> {
        match self {
            Got::Value(value) => Some(value),
            Got::Absent => Some(default()),
            Got::Invalid => None,
        }
    }

    pub fn optional(self) -> Option<T> {
        match self {
            Got::Value(value) => Some(value),
            _ => None,
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Got<U> {
        match self {
            Got::Absent => Got::Absent,
            Got::Invalid => Got::Invalid,
            Got::Value(value) => Got::Value(f(value)),
        }
    }
}

/// One table of the merged tree, read key by key.
pub(crate) struct Table<'c> {
    ctx: &'c Context,
    path: String,
    /// The table value itself: its origin locates keys missing from it.
    at: Value,
    entries: Map<String, Value>,
    known: BTreeSet<&'static str>,
    /// Keys whose values were rejected, so dependent checks can hold back.
    rejected: BTreeSet<String>,
}

impl<'c> Table<'c> {
    pub fn root(ctx: &'c Context, root: Value) -> Self {
        let entries = match &root.kind {
            ValueKind::Table(map) => map.clone(),
            _ => Map::new(),
        };
        Self {
            ctx,
            path: String::new(),
            at: root,
            entries,
            known: BTreeSet::new(),
            rejected: BTreeSet::new(),
        }
    }

    /// Dotted path of a key of this table.
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Whether `key` is set and its value was accepted.
    pub fn was_valid(&self, key: &str) -> bool {
        self.entries.contains_key(key) && !self.rejected.contains(key)
    }

    /// Reports a problem about a key of this table that was read already.
    pub fn report(&mut self, key: &str, value: Option<String>, message: impl Into<String>) {
        self.rejected.insert(key.to_owned());
        let at = self.entries.get(key).unwrap_or(&self.at);
        self.ctx
            .report(&self.key_path(key), at, value, message.into());
    }

    /// Reports a problem about the table as a whole.
    pub fn report_table(&self, message: impl Into<String>) {
        self.ctx.report(&self.path, &self.at, None, message.into());
    }

    fn take(&mut self, key: &'static str) -> Option<Value> {
        self.known.insert(key);
        match self.entries.get(key) {
            Some(Value {
                kind: ValueKind::Nil,
                ..
            })
            | None => None,
            Some(value) => Some(value.clone()),
        }
    }

    /// A key that must be present: reports it when absent.
    pub fn required<T>(&self, key: &str, got: Got<T>, what: &str) -> Option<T> {
        match got {
            Got::Value(value) => Some(value),
            Got::Invalid => None,
            Got::Absent => {
                self.ctx.report(
                    &self.key_path(key),
                    &self.at,
                    None,
                    format!("missing required key: {what}"),
                );
                None
            }
        }
    }

    /// A scalar, parsed by `parse`; `expected` describes valid values.
    pub fn parse<T>(
        &mut self,
        key: &'static str,
        expected: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Got<T> {
        self.parse_shown_as(key, expected, str::to_owned, parse)
    }

    /// Like [`Table::parse`], for a value that may hold a secret (a
    /// database URL with its password): a problem quotes it as `show`
    /// renders it, never as written.
    pub fn parse_shown_as<T>(
        &mut self,
        key: &'static str,
        expected: &str,
        show: impl FnOnce(&str) -> String,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Got<T> {
        let Some(value) = self.take(key) else {
            return Got::Absent;
        };
        let Some(text) = scalar_text(&value) else {
            self.report(
                key,
                None,
                format!("expected {expected}, found {}", kind_name(&value)),
            );
            return Got::Invalid;
        };
        match parse(&text) {
            Ok(parsed) => Got::Value(parsed),
            Err(why) => {
                let why = if why.is_empty() {
                    String::new()
                } else {
                    format!(" ({why})")
                };
                self.report(key, Some(show(&text)), format!("expected {expected}{why}"));
                Got::Invalid
            }
        }
    }

    pub fn string(&mut self, key: &'static str) -> Got<String> {
        self.parse(key, "a string", |text| Ok(text.to_owned()))
    }

    /// A string that must not be empty or blank.
    pub fn non_empty(&mut self, key: &'static str) -> Got<String> {
        self.parse(key, "a non-empty string", |text| {
            let trimmed = text.trim();
            if trimmed.is_empty() {
                Err(String::new())
            } else {
                Ok(trimmed.to_owned())
            }
        })
    }

    /// `true` or `false` (also from the environment, as text).
    pub fn boolean(&mut self, key: &'static str) -> Got<bool> {
        self.parse(key, "true or false", |text| match text.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(String::new()),
        })
    }

    pub fn integer_in(&mut self, key: &'static str, min: u64, max: u64) -> Got<u64> {
        let expected = format!("a whole number from {min} to {max}");
        self.parse(key, &expected, |text| match text.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(String::new()),
        })
    }

    /// A duration written like `30s`, `5m` or `1h 30m`, longer than zero.
    pub fn duration(&mut self, key: &'static str) -> Got<Duration> {
        self.any_duration(key, false)
    }

    /// A duration that may also be `"0s"` (a margin that can be turned off).
    pub fn zero_or_duration(&mut self, key: &'static str) -> Got<Duration> {
        self.any_duration(key, true)
    }

    fn any_duration(&mut self, key: &'static str, zero_ok: bool) -> Got<Duration> {
        self.parse(
            key,
            "a duration such as \"500ms\", \"30s\", \"5m\" or \"1h\"",
            |text| {
                humantime::parse_duration(text.trim())
                    .map_err(|e| e.to_string())
                    .and_then(|d| {
                        if d.is_zero() && !zero_ok {
                            Err("must be longer than zero".to_owned())
                        } else {
                            Ok(d)
                        }
                    })
            },
        )
    }

    /// One of a fixed set of lowercase words.
    pub fn one_of(&mut self, key: &'static str, choices: &[&'static str]) -> Got<&'static str> {
        let expected = format!("one of {}", quoted_list(choices));
        self.parse(key, &expected, |text| {
            choices
                .iter()
                .find(|choice| **choice == text.trim())
                .copied()
                .ok_or_else(String::new)
        })
    }

    /// An absolute `http` or `https` URL.
    pub fn http_url(&mut self, key: &'static str) -> Got<url::Url> {
        self.parse(key, "an absolute http:// or https:// URL", |text| {
            let url = url::Url::parse(text.trim()).map_err(|e| e.to_string())?;
            match url.scheme() {
                "http" | "https" if url.host().is_some() => Ok(url),
                "http" | "https" => Err("no host".to_owned()),
                other => Err(format!("scheme `{other}` is not http or https")),
            }
        })
    }

    /// A path; relative paths stay relative to the working directory.
    pub fn path(&mut self, key: &'static str) -> Got<PathBuf> {
        self.parse(key, "a file system path", |text| {
            if text.trim().is_empty() {
                Err("empty".to_owned())
            } else {
                Ok(PathBuf::from(text.trim()))
            }
        })
    }

    /// A list of strings: a TOML array, or from the environment a string
    /// separated by commas or spaces.
    pub fn string_list(&mut self, key: &'static str) -> Got<Vec<String>> {
        let Some(value) = self.take(key) else {
            return Got::Absent;
        };
        match &value.kind {
            ValueKind::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    match scalar_text(item) {
                        Some(text) => out.push(text),
                        None => {
                            self.ctx.report(
                                &format!("{}[{index}]", self.key_path(key)),
                                item,
                                None,
                                format!("expected a string, found {}", kind_name(item)),
                            );
                            return Got::Invalid;
                        }
                    }
                }
                Got::Value(out)
            }
            ValueKind::String(text) => Got::Value(
                text.split([',', ' '])
                    .filter(|part| !part.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            _ => {
                self.report(
                    key,
                    None,
                    format!("expected a list of strings, found {}", kind_name(&value)),
                );
                Got::Invalid
            }
        }
    }

    /// A secret given either inline as `key` or as a file named by
    /// `key_file`. The value is never echoed, even when it is malformed.
    pub fn secret(&mut self, key: &'static str, key_file: &'static str) -> Got<Secret> {
        let inline = self.take(key);
        let file = self.take(key_file);
        match (inline, file) {
            (None, None) => Got::Absent,
            (Some(_), Some(_)) => {
                self.report(
                    key,
                    None,
                    format!("set either `{key}` or `{key_file}`, not both"),
                );
                Got::Invalid
            }
            (Some(value), None) => match &value.kind {
                ValueKind::String(text) if !text.trim().is_empty() => {
                    let source = if value.origin() == Some(ENV_ORIGIN) {
                        SecretSource::Environment(env_var_for(&self.key_path(key)))
                    } else {
                        SecretSource::ConfigFile
                    };
                    Got::Value(Secret {
                        value: SecretString::from(text.trim().to_owned()),
                        source,
                    })
                }
                ValueKind::String(_) => {
                    self.report(
                        key,
                        None,
                        "expected a non-empty secret, found an empty string",
                    );
                    Got::Invalid
                }
                _ => {
                    self.report(
                        key,
                        None,
                        format!(
                            "expected a string, found {} (value hidden: secret)",
                            kind_name(&value)
                        ),
                    );
                    Got::Invalid
                }
            },
            (None, Some(_)) => {
                let Got::Value(path) = self.path(key_file) else {
                    return Got::Invalid;
                };
                match read_secret_file(&path) {
                    Ok(value) => Got::Value(Secret {
                        value,
                        source: SecretSource::File(path),
                    }),
                    Err(why) => {
                        self.report(key_file, Some(path.display().to_string()), why);
                        Got::Invalid
                    }
                }
            }
        }
    }

    /// A sub-table. `Absent` when the key is not set.
    pub fn table(&mut self, key: &'static str) -> Got<Table<'c>> {
        let Some(value) = self.take(key) else {
            return Got::Absent;
        };
        self.sub_table(key.to_owned(), value)
    }

    /// A table of named tables, such as `[sides.<name>]`, in name order.
    pub fn named_tables(&mut self, key: &'static str) -> Vec<(String, Table<'c>)> {
        let Got::Value(outer) = self.table(key) else {
            return Vec::new();
        };
        let mut names: Vec<String> = outer.entries.keys().cloned().collect();
        names.sort();
        let mut tables = Vec::with_capacity(names.len());
        for name in names {
            let value = outer.entries[&name].clone();
            if let Got::Value(table) = outer.sub_table(name.clone(), value) {
                tables.push((name, table));
            }
        }
        tables
    }

    /// An array of tables (`[[pairs.main.fields]]`): each item is read as a
    /// table whose path is `key[index]`.
    pub fn table_list(&mut self, key: &'static str) -> Vec<Table<'c>> {
        let Some(value) = self.take(key) else {
            return Vec::new();
        };
        let ValueKind::Array(items) = &value.kind else {
            self.report(
                key,
                None,
                format!(
                    "expected a list of tables ([[{}]]), found {}",
                    self.key_path(key),
                    kind_name(&value)
                ),
            );
            return Vec::new();
        };
        let base = self.key_path(key);
        items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| {
                self.table_at(format!("{base}[{index}]"), item.clone())
                    .optional()
            })
            .collect()
    }

    /// Whether `key` holds a table rather than a scalar.
    pub fn is_table(&self, key: &str) -> bool {
        matches!(
            self.entries.get(key).map(|v| &v.kind),
            Some(ValueKind::Table(_))
        )
    }

    /// Any value, as JSON: constants, defaults.
    pub fn json(&mut self, key: &'static str) -> Got<serde_json::Value> {
        match self.take(key) {
            Some(value) => Got::Value(to_json(&value)),
            None => Got::Absent,
        }
    }

    /// A free-form table (arbitrary keys, such as a value table) as JSON
    /// pairs, in key order.
    pub fn json_entries(&mut self, key: &'static str) -> Got<Vec<(String, serde_json::Value)>> {
        let Some(value) = self.take(key) else {
            return Got::Absent;
        };
        match &value.kind {
            ValueKind::Table(map) => {
                let mut entries: Vec<(String, serde_json::Value)> =
                    map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Got::Value(entries)
            }
            _ => {
                self.report(
                    key,
                    None,
                    format!("expected a table, found {}", kind_name(&value)),
                );
                Got::Invalid
            }
        }
    }

    fn sub_table(&self, key: String, value: Value) -> Got<Table<'c>> {
        self.table_at(self.key_path(&key), value)
    }

    fn table_at(&self, path: String, value: Value) -> Got<Table<'c>> {
        match &value.kind {
            ValueKind::Table(map) => Got::Value(Table {
                ctx: self.ctx,
                path,
                entries: map.clone(),
                at: value,
                known: BTreeSet::new(),
                rejected: BTreeSet::new(),
            }),
            _ => {
                self.ctx.report(
                    &path,
                    &value,
                    None,
                    format!("expected a table, found {}", kind_name(&value)),
                );
                Got::Invalid
            }
        }
    }

    /// Reports every key of this table that no accessor asked for.
    pub fn finish(self) {
        let mut unknown: Vec<&String> = self
            .entries
            .keys()
            .filter(|key| !self.known.contains(key.as_str()))
            .collect();
        unknown.sort();
        for key in unknown {
            let hint = match closest(key, &self.known) {
                Some(near) => format!("unknown key (did you mean `{near}`?)"),
                None if self.known.is_empty() => "unknown key".to_owned(),
                None => format!(
                    "unknown key; expected one of {}",
                    quoted_list(&self.known.iter().copied().collect::<Vec<_>>())
                ),
            };
            self.ctx
                .report(&self.key_path(key), &self.entries[key], None, hint);
        }
    }
}

/// A configuration value as JSON.
fn to_json(value: &Value) -> serde_json::Value {
    match &value.kind {
        ValueKind::Nil => serde_json::Value::Null,
        ValueKind::Boolean(b) => serde_json::Value::Bool(*b),
        ValueKind::I64(n) => serde_json::Value::from(*n),
        ValueKind::I128(n) => serde_json::Value::from(*n as f64),
        ValueKind::U64(n) => serde_json::Value::from(*n),
        ValueKind::U128(n) => serde_json::Value::from(*n as f64),
        ValueKind::Float(n) => serde_json::Value::from(*n),
        ValueKind::String(s) => serde_json::Value::String(s.clone()),
        ValueKind::Table(map) => {
            serde_json::Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
        ValueKind::Array(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
    }
}

fn read_secret_file(path: &Path) -> Result<SecretString, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read secret file: {e}"))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("secret file is empty".to_owned());
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

fn scalar_text(value: &Value) -> Option<String> {
    match &value.kind {
        ValueKind::String(s) => Some(s.clone()),
        ValueKind::Boolean(b) => Some(b.to_string()),
        ValueKind::I64(n) => Some(n.to_string()),
        ValueKind::I128(n) => Some(n.to_string()),
        ValueKind::U64(n) => Some(n.to_string()),
        ValueKind::U128(n) => Some(n.to_string()),
        ValueKind::Float(n) => Some(n.to_string()),
        ValueKind::Nil | ValueKind::Table(_) | ValueKind::Array(_) => None,
    }
}

fn kind_name(value: &Value) -> &'static str {
    match value.kind {
        ValueKind::Nil => "nothing",
        ValueKind::Boolean(_) => "a boolean",
        ValueKind::I64(_) | ValueKind::I128(_) | ValueKind::U64(_) | ValueKind::U128(_) => {
            "a number"
        }
        ValueKind::Float(_) => "a decimal number",
        ValueKind::String(_) => "a string",
        ValueKind::Table(_) => "a table",
        ValueKind::Array(_) => "a list",
    }
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("\"{item}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The known key nearest to a misspelt one, when it is plausibly a typo.
fn closest<'a>(key: &str, known: &BTreeSet<&'a str>) -> Option<&'a str> {
    known
        .iter()
        .map(|candidate| (strsim::damerau_levenshtein(key, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}
