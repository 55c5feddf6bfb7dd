//! Field mapping: from each side's native JSON to canonical fields and
//! back, as the operator's TOML describes (`[[pairs.<name>.fields]]`).
//!
//! A canonical record is a map from canonical field name to a normalised
//! JSON value. Diffing, merging and the base snapshot in the mirror all work
//! on canonical records, so two sides that spell a value differently
//! ("+1 415-555-0100" and "+14155550100", `1767225600000` and
//! `"2026-01-01T00:00:00.000Z"`) compare equal and never echo.

mod transform;

use crate::domain::{EntityKind, MatchKey, Side};
use std::collections::BTreeMap;

use serde_json::{Map, Value};

pub use transform::{phone_region, Format, Normalize, TimeFormat};

/// Which way a field's changes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flow {
    #[default]
    Both,
    /// Read from the GHL side, written to the app side only.
    ToApp,
    /// Read from the app side, written to the GHL side only.
    ToGhl,
}

impl Flow {
    /// Whether the field's value on `role` is a source of changes.
    pub fn reads_from(self, role: Side) -> bool {
        matches!(
            (self, role),
            (Flow::Both, _) | (Flow::ToApp, Side::Ghl) | (Flow::ToGhl, Side::App)
        )
    }

    /// Whether the field is written to `role`.
    pub fn writes_to(self, role: Side) -> bool {
        self.reads_from(role.other())
    }
}

/// Where a field lives in one side's native record.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A JSON pointer (RFC 6901), e.g. `/email` or `/address/city`.
    Pointer(String),
    /// Several native fields joined with spaces into one canonical string
    /// (full name ↔ first and last name). Written back by splitting: the
    /// last part takes the last word, the first part everything before.
    Join(Vec<String>),
    /// A GHL custom field, by id, in the `customFields` array.
    CustomField(String),
    /// Not read from the side; `value` is always written at `pointer`
    /// (a default or a marker such as `source = "ghl"`).
    Constant { pointer: String, value: Value },
}

/// How one side holds a field: where, in what format, and what to assume
/// when it is absent.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub source: Source,
    pub format: Format,
    /// The value to assume when the side's record lacks the field.
    pub default: Option<Value>,
}

impl Binding {
    pub fn pointer(pointer: &str) -> Self {
        Self {
            source: Source::Pointer(pointer.to_owned()),
            format: Format::Plain,
            default: None,
        }
    }
}

/// How a field edited on both sides since the base snapshot is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    GhlWins,
    AppWins,
    /// The side whose record was updated last wins.
    Newest,
    /// Lists (tags): keep what either side added, drop what either removed.
    Union,
    /// Park the field as an open conflict; write neither side for it.
    Manual,
}

impl Policy {
    pub const NAMES: [&'static str; 5] = ["ghl_wins", "app_wins", "newest", "union", "manual"];

    pub fn parse(name: &str) -> Option<Policy> {
        Some(match name {
            "ghl_wins" => Policy::GhlWins,
            "app_wins" => Policy::AppWins,
            "newest" => Policy::Newest,
            "union" => Policy::Union,
            "manual" => Policy::Manual,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// What a delete on one side does to the linked record on the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletePolicy {
    Propagate,
    /// Keep the other record; forget the link.
    Ignore,
    /// Keep the other record and add this tag to it.
    Tag(String),
}

/// One canonical field of one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMap {
    pub entity: EntityKind,
    pub name: String,
    pub flow: Flow,
    pub ghl: Option<Binding>,
    pub app: Option<Binding>,
    /// Applied to the canonical value read from either side.
    pub normalize: Vec<Normalize>,
    /// This field identifies a contact on both sides.
    pub match_key: Option<MatchKey>,
    /// Overrides the pair's default policy for this field.
    pub policy: Option<Policy>,
}

impl FieldMap {
    pub fn binding(&self, role: Side) -> Option<&Binding> {
        match role {
            Side::Ghl => self.ghl.as_ref(),
            Side::App => self.app.as_ref(),
        }
    }
}

/// A record in canonical form: field name → normalised value. Absent and
/// null are the same (`Value::Null` is never stored).
pub type Canonical = BTreeMap<String, Value>;

/// A value that does not fit its field map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entity} field `{field}` on the {role} side: {message}")]
pub struct MapError {
    pub entity: EntityKind,
    pub field: String,
    pub role: &'static str,
    pub message: String,
}

/// Every field map of a pair, ready to convert records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PairMap {
    pub fields: Vec<FieldMap>,
}

impl PairMap {
    pub fn fields_of(&self, entity: EntityKind) -> impl Iterator<Item = &FieldMap> {
        self.fields.iter().filter(move |f| f.entity == entity)
    }

    pub fn field(&self, entity: EntityKind, name: &str) -> Option<&FieldMap> {
        self.fields_of(entity).find(|f| f.name == name)
    }

    /// The canonical form of a native record of `role`: every field that
    /// flows from that side, decoded and normalised. The first field that
    /// cannot be decoded fails the whole record (it is dead-lettered with
    /// that reason rather than synced half-read).
    pub fn to_canonical(
        &self,
        entity: EntityKind,
        role: Side,
        native: &Map<String, Value>,
    ) -> Result<Canonical, MapError> {
        let mut canonical = Canonical::new();
        for field in self.fields_of(entity).filter(|f| f.flow.reads_from(role)) {
            if let Some(value) = self.field_value(entity, role, field, native)? {
                canonical.insert(field.name.clone(), value);
            }
        }
        Ok(canonical)
    }

    /// Only the match-key fields of a native contact of `role`, each that
    /// can be read: enough to tell who a record is, even when another of
    /// its fields cannot be mapped (a record whose phone is malformed is
    /// still known by its email).
    pub fn match_keys_of(&self, role: Side, native: &Map<String, Value>) -> Canonical {
        self.fields_of(EntityKind::Contact)
            .filter(|f| f.match_key.is_some() && f.flow.reads_from(role))
            .filter_map(|field| {
                let value = self
                    .field_value(EntityKind::Contact, role, field, native)
                    .ok()??;
                Some((field.name.clone(), value))
            })
            .collect()
    }

    /// One field of a native record, decoded and normalised; `None` when
    /// the record has no value for it.
    fn field_value(
        &self,
        entity: EntityKind,
        role: Side,
        field: &FieldMap,
        native: &Map<String, Value>,
    ) -> Result<Option<Value>, MapError> {
        let Some(binding) = field.binding(role) else {
            return Ok(None);
        };
        let error = |message: String| MapError {
            entity,
            field: field.name.clone(),
            role: role.name(),
            message,
        };
        let raw = match &binding.source {
            Source::Constant { .. } => return Ok(None),
            source => read(source, native),
        };
        let raw = raw.or_else(|| binding.default.clone());
        let Some(raw) = raw.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let mut value = binding.format.decode(&raw).map_err(error)?;
        for normalize in &field.normalize {
            value = normalize.apply(value).map_err(error)?;
        }
        Ok((!is_empty(&value)).then_some(value))
    }

    /// The native patch that writes `changes` (canonical field → new value,
    /// `Null` to clear) to a record of `role`. Fields that do not flow to
    /// that side are left out; constants are always included, so a created
    /// record carries them.
    pub fn to_native(
        &self,
        entity: EntityKind,
        role: Side,
        changes: &Canonical,
    ) -> Result<Map<String, Value>, MapError> {
        let mut patch = Map::new();
        for field in self.fields_of(entity).filter(|f| f.flow.writes_to(role)) {
            let Some(binding) = field.binding(role) else {
                continue;
            };
            if let Source::Constant { pointer, value } = &binding.source {
                set_pointer(&mut patch, pointer, value.clone());
                continue;
            }
            let Some(value) = changes.get(&field.name) else {
                continue;
            };
            let native = if value.is_null() {
                Value::Null
            } else {
                binding.format.encode(value).map_err(|message| MapError {
                    entity,
                    field: field.name.clone(),
                    role: role.name(),
                    message,
                })?
            };
            write(&binding.source, &mut patch, native);
        }
        Ok(patch)
    }

    /// The canonical field that holds a match key, if one is mapped.
    pub fn match_field(&self, entity: EntityKind, key: MatchKey) -> Option<&FieldMap> {
        self.fields_of(entity).find(|f| f.match_key == Some(key))
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

fn read(source: &Source, native: &Map<String, Value>) -> Option<Value> {
    match source {
        Source::Pointer(pointer) => pointer_in(native, pointer).cloned(),
        Source::Join(parts) => {
            let words: Vec<String> = parts
                .iter()
                .filter_map(|p| pointer_in(native, p).and_then(Value::as_str))
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            (!words.is_empty()).then(|| Value::String(words.join(" ")))
        }
        Source::CustomField(id) => native
            .get("customFields")?
            .as_array()?
            .iter()
            .find(|entry| entry.get("id").and_then(Value::as_str) == Some(id))
            .and_then(|entry| {
                entry
                    .get("value")
                    .or_else(|| entry.get("field_value"))
                    .cloned()
            }),
        Source::Constant { value, .. } => Some(value.clone()),
    }
}

/// `Value::pointer` on an object, without copying the object into a
/// `Value` first (this runs for every field of every record read).
fn pointer_in<'v>(object: &'v Map<String, Value>, pointer: &str) -> Option<&'v Value> {
    let rest = pointer.strip_prefix('/')?;
    let (first, rest) = match rest.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (rest, None),
    };
    let value = if first.contains('~') {
        object.get(&first.replace("~1", "/").replace("~0", "~"))?
    } else {
        object.get(first)?
    };
    match rest {
        Some(rest) => value.pointer(&format!("/{rest}")),
        None => Some(value),
    }
}

fn write(source: &Source, patch: &mut Map<String, Value>, value: Value) {
    match source {
        Source::Pointer(pointer) | Source::Constant { pointer, .. } => {
            set_pointer(patch, pointer, value)
        }
        Source::Join(parts) => {
            let text = value.as_str().unwrap_or_default().trim().to_owned();
            let split = split_name(&text, parts.len());
            for (part, word) in parts.iter().zip(split) {
                set_pointer(
                    patch,
                    part,
                    if word.is_empty() {
                        Value::Null
                    } else {
                        Value::String(word)
                    },
                );
            }
        }
        Source::CustomField(id) => {
            // Written with its type intact (a string, an array, a number or
            // an object, as the GHL field notes type `field_value` per
            // field); a cleared value is sent as "", which clears a field
            // of any type (`null` is none of the types a write takes).
            let value = if value.is_null() {
                Value::String(String::new())
            } else {
                value
            };
            let fields = patch
                .entry("customFields")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(entries) = fields {
                entries.push(serde_json::json!({ "id": id, "field_value": value }));
            }
        }
    }
}

/// Splits a full name into `parts` pieces: the last piece gets the last
/// word, the first everything before it (middle pieces stay empty).
fn split_name(full: &str, parts: usize) -> Vec<String> {
    let mut out = vec![String::new(); parts.max(1)];
    let words: Vec<&str> = full.split_whitespace().collect();
    match (words.split_last(), parts) {
        (None, _) => {}
        (Some((only, [])), _) => out[0] = (*only).to_owned(),
        (Some((last, rest)), 1) => out[0] = format!("{} {last}", rest.join(" ")),
        (Some((last, rest)), n) => {
            out[0] = rest.join(" ");
            out[n - 1] = (*last).to_owned();
        }
    }
    out
}

/// Sets `value` at a JSON pointer, creating objects on the way.
pub fn set_pointer(target: &mut Map<String, Value>, pointer: &str, value: Value) {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut node = target;
    for token in parents {
        let entry = node
            .entry(token.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        node = entry.as_object_mut().expect("just made an object");
    }
    node.insert(last.clone(), value);
}

#[cfg(test)]
mod tests;
