//! The typed accessors of a [`Table`]: scalars, durations, URLs, paths,
//! lists, secrets and free-form JSON, each parsing (and so validating)
//! its value and reporting what it rejects.

use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Value, ValueKind};
use secrecy::SecretString;

use super::{env_var_for, kind_name, quoted_list, scalar_text, Got, Table, ENV_ORIGIN};
use crate::connector::{Secret, SecretSource};

impl Table<'_> {
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
