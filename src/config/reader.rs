//! A reader over the merged configuration tree that turns raw values into
//! typed settings and collects every problem instead of stopping at the
//! first, so an operator fixes a broken file in one pass.
//!
//! Each accessor marks its key as known; [`Table::finish`] then reports the
//! keys nobody asked for, which is how typos become errors.

mod values;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use config::{Map, Value, ValueKind};

use super::error::{Origin, Problem};
use super::ENV_PREFIX;

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

    /// Records a problem about `key` located by its own `value`: a table
    /// that only variables of the environment made (a misspelt
    /// `GHLSYNC__SYNCC__POLL_INTERVAL` makes a `syncc` table) carries no
    /// origin of its own, so it names the variable of one of its values
    /// rather than falling back to the file or the defaults.
    pub fn report_own(&self, key: &str, value: &Value, message: String) {
        let written_in_file = self
            .file
            .as_ref()
            .is_some_and(|file| file.lines.contains_key(key));
        let origin = match env_leaf(key, value) {
            Some(leaf) if value.origin().is_none() && !written_in_file => Origin::Env {
                var: env_var_for(&leaf),
            },
            _ => self.origin(key, value),
        };
        self.problems.borrow_mut().push(Problem {
            origin,
            key: key.to_owned(),
            value: None,
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

/// The dotted path of the first value (in key order) under the table
/// `value` at `key`, when every value under it came from the environment.
fn env_leaf(key: &str, value: &Value) -> Option<String> {
    let ValueKind::Table(map) = &value.kind else {
        return (value.origin() == Some(ENV_ORIGIN)).then(|| key.to_owned());
    };
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    let mut first = None;
    for name in names {
        let leaf = env_leaf(&format!("{key}.{name}"), &map[name])?;
        first.get_or_insert(leaf);
    }
    first
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
                .report_own(&self.key_path(key), &self.entries[key], hint);
        }
    }
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
