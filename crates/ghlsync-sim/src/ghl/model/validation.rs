//! Checking and normalising what clients send: contact, task, note and tag
//! bodies. Kept apart from the writes so the rules a body must meet (and
//! the messages the simulator answers with, worded as GHL words them) read
//! in one place, and the same checks serve the HTTP API and the handle.

use serde_json::{json, Value};

use super::{iso, parse_time_ms, Record};

/// Normalises a phone number to E.164 (`+` and digits). Ten digits without
/// a country code are taken as North American (`+1`). `None` if fewer than
/// seven digits remain.
pub(crate) fn normalize_phone(text: &str) -> Option<String> {
    let digits: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() < 7 || digits.len() > 15 {
        return None;
    }
    let plus = text.trim_start().starts_with('+');
    if !plus && digits.len() == 10 {
        Some(format!("+1{digits}"))
    } else {
        Some(format!("+{digits}"))
    }
}

fn valid_email(email: &str) -> bool {
    let mut parts = email.splitn(2, '@');
    let local = parts.next().unwrap_or("");
    let domain = parts.next().unwrap_or("");
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.contains(char::is_whitespace)
}

/// Tags as GHL stores them: trimmed, lower-cased, without duplicates, in
/// first-seen order.
pub(crate) fn normalize_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim().to_lowercase();
        if !tag.is_empty() && !out.contains(&tag) {
            out.push(tag);
        }
    }
    out
}

/// How an input is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Create,
    Update,
}

/// A validated contact input: values to set; `Value::Null` means "clear".
#[derive(Debug, Clone, Default)]
pub(crate) struct ContactInput {
    pub location_id: Option<String>,
    pub fields: Record,
}

impl ContactInput {
    pub fn email(&self) -> Option<&str> {
        self.fields.get("email").and_then(Value::as_str)
    }
    pub fn phone(&self) -> Option<&str> {
        self.fields.get("phone").and_then(Value::as_str)
    }
}

const CONTACT_STRING_FIELDS: &[&str] = &[
    "firstName",
    "lastName",
    "companyName",
    "address1",
    "city",
    "state",
    "postalCode",
    "website",
    "timezone",
    "source",
    "country",
    "assignedTo",
    "gender",
    "businessId",
    "type",
];

/// Fields the server maintains; a client's values for them are ignored.
const SERVER_FIELDS: &[&str] = &[
    "id",
    "dateAdded",
    "dateUpdated",
    "searchAfter",
    "contactName",
    "firstNameLowerCase",
    "lastNameLowerCase",
    "fullNameLowerCase",
    "emailLowerCase",
    "traceId",
];

/// Checks and normalises a contact body (create, upsert or update).
///
/// Choices where the spec is silent: email is lower-cased, phone is
/// normalised to E.164, tags are trimmed and lower-cased (as GHL stores
/// them); `""` and `null` clear a field; `name` is split into
/// `firstName`/`lastName` when those are absent and is not stored itself;
/// `locationId` in an update is refused with 422 "property locationId
/// should not exist" as the live API does; unknown fields are kept.
pub(crate) fn validate_contact(body: &Value, mode: Mode) -> Result<ContactInput, Vec<String>> {
    let Some(object) = body.as_object() else {
        return Err(vec!["body must be a JSON object".into()]);
    };
    let mut errors = Vec::new();
    let mut input = ContactInput::default();
    for (key, value) in object {
        let key = key.as_str();
        if SERVER_FIELDS.contains(&key) {
            continue;
        }
        if key == "locationId" {
            match location_id(value, mode) {
                Ok(id) => input.location_id = Some(id),
                Err(error) => errors.push(error),
            }
        } else if let Some(value) = contact_field(key, value, &mut errors) {
            input.fields.insert(key.into(), value);
        }
    }
    if mode == Mode::Create
        && input.location_id.is_none()
        && !errors.iter().any(|e| e.starts_with("locationId"))
    {
        errors.push("locationId should not be empty".into());
    }
    split_name(&mut input.fields);
    if errors.is_empty() {
        Ok(input)
    } else {
        Err(errors)
    }
}

/// `locationId` of a body: required on create (a non-blank string),
/// refused in an update.
fn location_id(value: &Value, mode: Mode) -> Result<String, String> {
    match mode {
        Mode::Update => Err("property locationId should not exist".into()),
        Mode::Create => match value.as_str() {
            Some(s) if !s.trim().is_empty() => Ok(s.trim().into()),
            _ => Err("locationId must be a string".into()),
        },
    }
}

/// The value to store for one contact field (`Value::Null` clears it), or
/// `None` when there is nothing to store; problems go to `errors`.
fn contact_field(key: &str, value: &Value, errors: &mut Vec<String>) -> Option<Value> {
    let checked = match key {
        "email" => email(value),
        "phone" => phone(value),
        "tags" => tags(value),
        "dnd" => match value {
            Value::Bool(_) => Ok(value.clone()),
            _ => Err("dnd must be a boolean value".into()),
        },
        "dndSettings" | "inboundDndSettings" => match value {
            Value::Object(_) | Value::Null => Ok(value.clone()),
            _ => Err(format!("{key} must be an object")),
        },
        "customFields" => return custom_fields(value, errors),
        "name" => match value {
            Value::String(_) | Value::Null => Ok(value.clone()),
            _ => Err("name must be a string".into()),
        },
        _ if CONTACT_STRING_FIELDS.contains(&key) => match value {
            Value::Null => Ok(Value::Null),
            Value::String(s) if s.is_empty() => Ok(Value::Null),
            Value::String(_) => Ok(value.clone()),
            _ => Err(format!("{key} must be a string")),
        },
        _ => Ok(value.clone()),
    };
    checked.map_err(|error| errors.push(error)).ok()
}

/// `email`: trimmed and lower-cased; blank clears it.
fn email(value: &Value) -> Result<Value, String> {
    match value {
        Value::Null => Ok(Value::Null),
        Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
        Value::String(s) if valid_email(s.trim()) => Ok(json!(s.trim().to_lowercase())),
        _ => Err("email must be an email".into()),
    }
}

/// `phone`: normalised to E.164; blank clears it.
fn phone(value: &Value) -> Result<Value, String> {
    match value {
        Value::Null => Ok(Value::Null),
        Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
        Value::String(s) => normalize_phone(s)
            .map(|p| json!(p))
            .ok_or_else(|| "phone must be a valid phone number".into()),
        _ => Err("phone must be a valid phone number".into()),
    }
}

/// `tags`: normalised as GHL stores them; `null` clears them (`[]`).
fn tags(value: &Value) -> Result<Value, String> {
    match value {
        Value::Null => Ok(json!([])),
        Value::Array(items) if items.iter().all(Value::is_string) => Ok(json!(normalize_tags(
            items.iter().filter_map(Value::as_str)
        ))),
        _ => Err("each value in tags must be a string".into()),
    }
}

/// `customFields`: an array of `{id | key, field_value}`, `field_value` a
/// string, an array, a number or an object (the GHL field notes: "Writes
/// take `customFields: [{id | key, field_value}]`, typed per field: a
/// string, an array for multi-select and checkbox fields, a number for
/// numeric and monetary fields, an object for file uploads"; whether the
/// type fits the field is checked against the location's definitions when
/// the write is applied). Anything else is refused, naming the item;
/// `null` leaves them as they are.
fn custom_fields(value: &Value, errors: &mut Vec<String>) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let Some(item) = item.as_object() else {
                    errors.push(format!("customFields.{i} must be an object"));
                    continue;
                };
                let named = item.get("id").is_some_and(Value::is_string)
                    || item.get("key").is_some_and(Value::is_string);
                if !named {
                    errors.push(format!("customFields.{i} must have an id or a key"));
                }
                let typed = item.get("field_value").is_some_and(|v| {
                    v.is_string() || v.is_array() || v.is_number() || v.is_object()
                });
                if !typed {
                    let name = item
                        .get("id")
                        .or_else(|| item.get("key"))
                        .and_then(Value::as_str)
                        .unwrap_or("?");
                    errors.push(format!(
                        "customFields.{i} ({name}): field_value must be a string, an array, a number or an object"
                    ));
                }
            }
            Some(value.clone())
        }
        _ => {
            errors.push("customFields must be an array".into());
            None
        }
    }
}

/// `name` → `firstName` / `lastName` when those are not given; `name`
/// itself is not stored.
fn split_name(fields: &mut Record) {
    if let Some(name) = fields.remove("name") {
        if let Some(name) = name.as_str() {
            let has_first = fields.contains_key("firstName");
            let has_last = fields.contains_key("lastName");
            let mut parts = name.trim().splitn(2, char::is_whitespace);
            let first = parts.next().unwrap_or("").trim();
            let last = parts.next().unwrap_or("").trim();
            if !has_first && !first.is_empty() {
                fields.insert("firstName".into(), json!(first));
            }
            if !has_last && !last.is_empty() {
                fields.insert("lastName".into(), json!(last));
            }
        }
    }
}

fn check_string(object: &Record, key: &str, required: bool, errors: &mut Vec<String>) {
    match object.get(key) {
        None | Some(Value::Null) if required => errors.push(format!("{key} should not be empty")),
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => errors.push(format!("{key} must be a string")),
    }
}

fn check_bool(object: &Record, key: &str, required: bool, errors: &mut Vec<String>) {
    match object.get(key) {
        None if required => errors.push(format!("{key} must be a boolean value")),
        None | Some(Value::Bool(_)) => {}
        Some(_) => errors.push(format!("{key} must be a boolean value")),
    }
}

/// Checks a task body (`CreateTaskParams` / `UpdateTaskBody`); `dueDate`
/// is normalised to ISO with milliseconds.
pub(crate) fn validate_task(body: &Value, mode: Mode) -> Result<Record, Vec<String>> {
    let Some(object) = body.as_object() else {
        return Err(vec!["body must be a JSON object".into()]);
    };
    let mut errors = Vec::new();
    let create = mode == Mode::Create;
    check_string(object, "title", create, &mut errors);
    check_string(object, "body", false, &mut errors);
    check_string(object, "assignedTo", false, &mut errors);
    check_bool(object, "completed", create, &mut errors);
    let mut out = object.clone();
    match object.get("dueDate") {
        None if create => errors.push("dueDate must be a valid ISO 8601 date string".into()),
        None => {}
        Some(Value::String(s)) => match parse_time_ms(s) {
            Some(ms) => {
                out.insert("dueDate".into(), json!(iso(ms)));
            }
            None => errors.push("dueDate must be a valid ISO 8601 date string".into()),
        },
        Some(_) => errors.push("dueDate must be a valid ISO 8601 date string".into()),
    }
    for key in ["id", "contactId", "dateAdded", "dateUpdated", "traceId"] {
        out.remove(key);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Checks a note body (`NotesDTO` / `UpdateNoteDTO`).
pub(crate) fn validate_note(body: &Value, mode: Mode) -> Result<Record, Vec<String>> {
    let Some(object) = body.as_object() else {
        return Err(vec!["body must be a JSON object".into()]);
    };
    let mut errors = Vec::new();
    check_string(object, "body", mode == Mode::Create, &mut errors);
    check_string(object, "userId", false, &mut errors);
    check_string(object, "title", false, &mut errors);
    check_string(object, "color", false, &mut errors);
    check_bool(object, "pinned", false, &mut errors);
    let mut out = object.clone();
    for key in ["id", "contactId", "dateAdded", "dateUpdated", "traceId"] {
        out.remove(key);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Checks a `TagsDTO` body and returns the normalised tags.
pub(crate) fn validate_tags(body: &Value) -> Result<Vec<String>, Vec<String>> {
    match body.get("tags") {
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok(normalize_tags(items.iter().filter_map(Value::as_str)))
        }
        Some(_) => Err(vec!["each value in tags must be a string".into()]),
        None => Err(vec![
            "tags should not be empty".into(),
            "tags must be an array".into(),
        ]),
    }
}
