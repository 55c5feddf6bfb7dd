//! The description of a REST app's API, as read from TOML: endpoint
//! templates, JSON pointers, timestamp formats and pagination styles.
//!
//! These types are parsed (and so validated) once, at load time, by
//! `config::rest`; the connector only ever sees well-formed values.

use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use reqwest::Method;
use serde_json::Value;

/// A placeholder of an endpoint template.
pub const ID: &str = "id";
pub const CONTACT_ID: &str = "contact_id";
pub const VALUE: &str = "value";

/// An RFC 6901 JSON pointer: `""` is the whole document, `"/data/0/id"` a
/// path into it (`~0` is `~` and `~1` is `/` inside a segment).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonPointer(String);

impl JsonPointer {
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.is_empty() && !text.starts_with('/') {
            return Err(format!(
                "a JSON pointer starts with \"/\" (try \"/{text}\"), or is \"\" for the whole body"
            ));
        }
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return Err("`~` must be followed by 0 (for `~`) or 1 (for `/`)".to_owned());
            }
        }
        Ok(Self(text.to_owned()))
    }

    /// A pointer to one top-level key.
    pub fn key(key: &str) -> Self {
        Self(format!("/{}", key.replace('~', "~0").replace('/', "~1")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        value.pointer(&self.0)
    }

    /// Sets the value at this pointer, creating objects on the way. Fails
    /// when a step goes through something that is not an object.
    pub fn set(&self, target: &mut Value, value: Value) -> Result<(), String> {
        if self.is_root() {
            *target = value;
            return Ok(());
        }
        let segments: Vec<String> = self.0[1..]
            .split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        let mut at = target;
        for (index, segment) in segments.iter().enumerate() {
            let Value::Object(map) = at else {
                return Err(format!("`{}` does not lead through objects", self.0));
            };
            if index + 1 == segments.len() {
                map.insert(segment.clone(), value);
                return Ok(());
            }
            at = map
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(Default::default()));
        }
        Ok(())
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(the whole body)")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// How the app writes `updated_at` in records and reads the lower bound of
/// its change feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampFormat {
    /// A string such as `2024-05-01T12:00:00Z` or with an offset.
    #[default]
    Rfc3339,
    /// A JSON number of seconds since 1970 (a fraction is allowed).
    EpochSeconds,
    /// A JSON integer of milliseconds since 1970.
    EpochMillis,
}

impl TimestampFormat {
    pub const NAMES: [&'static str; 3] = ["rfc3339", "epoch_seconds", "epoch_millis"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "rfc3339" => Some(Self::Rfc3339),
            "epoch_seconds" => Some(Self::EpochSeconds),
            "epoch_millis" => Some(Self::EpochMillis),
            _ => None,
        }
    }

    /// What a value of this format looks like, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Rfc3339 => "an RFC 3339 string such as \"2024-05-01T12:00:00Z\"",
            Self::EpochSeconds => "epoch seconds (a number)",
            Self::EpochMillis => "epoch milliseconds (an integer)",
        }
    }

    /// The instant in a record, or why the value is not of this format.
    pub fn read(self, value: &Value) -> Result<DateTime<Utc>, String> {
        let wrong = || format!("is {}, expected {}", type_name(value), self.describe());
        match self {
            Self::Rfc3339 => {
                let text = value.as_str().ok_or_else(wrong)?;
                DateTime::parse_from_rfc3339(text.trim())
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| format!("{text:?} is not RFC 3339 ({e})"))
            }
            Self::EpochSeconds => {
                let out_of_range = || format!("{value} is out of range");
                if let Some(seconds) = value.as_i64() {
                    Utc.timestamp_opt(seconds, 0)
                        .single()
                        .ok_or_else(out_of_range)
                } else if let Some(seconds) = value.as_f64() {
                    let millis = (seconds * 1000.0).round();
                    if !millis.is_finite() || millis.abs() > 9.0e15 {
                        return Err(out_of_range());
                    }
                    Utc.timestamp_millis_opt(millis as i64)
                        .single()
                        .ok_or_else(out_of_range)
                } else {
                    Err(wrong())
                }
            }
            Self::EpochMillis => {
                let millis = value.as_i64().ok_or_else(wrong)?;
                Utc.timestamp_millis_opt(millis)
                    .single()
                    .ok_or_else(|| format!("{millis} is out of range"))
            }
        }
    }

    /// The instant as a query parameter (seconds are rounded down, so the
    /// bound never skips a record).
    pub fn write(self, at: DateTime<Utc>) -> String {
        match self {
            Self::Rfc3339 => at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            Self::EpochSeconds => at.timestamp().to_string(),
            Self::EpochMillis => at.timestamp_millis().to_string(),
        }
    }
}

/// A JSON value's type, as error messages name it.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a decimal number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One piece of a path or query template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    /// `{name}`, replaced by a URL-encoded value.
    Placeholder(String),
}

/// `"METHOD /path/{id}?name={value}"`: one endpoint of the app, relative to
/// `base_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub method: Method,
    pub path: Vec<Part>,
    /// Query parameters written in the template, in order.
    pub query: Vec<(String, Vec<Part>)>,
    /// The template as written, for messages.
    pub text: String,
}

impl Template {
    pub const METHODS: [&'static str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (method, target) = text.split_once(char::is_whitespace).ok_or_else(|| {
            "write the method, a space and the path, as in \"GET /contacts/{id}\"".to_owned()
        })?;
        let method = match method {
            "GET" => Method::GET,
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            other => {
                return Err(format!(
                    "method `{other}` is not one of GET, POST, PUT, PATCH, DELETE (in capitals)"
                ))
            }
        };
        let target = target.trim();
        if !target.starts_with('/') {
            return Err(format!(
                "the path `{target}` must start with \"/\" (it is joined to base_url)"
            ));
        }
        if target.contains(char::is_whitespace) {
            return Err("the path contains spaces".to_owned());
        }
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        let path = parts(path)?;
        let mut pairs = Vec::new();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if name.is_empty() || name.contains(['{', '}']) {
                return Err(format!(
                    "query parameter `{pair}` needs a plain name before `=`"
                ));
            }
            pairs.push((name.to_owned(), parts(value)?));
        }
        Ok(Self {
            text: format!("{method} {target}"),
            method,
            path,
            query: pairs,
        })
    }

    /// The placeholders the template uses, path and query.
    pub fn placeholders(&self) -> Vec<&str> {
        self.path
            .iter()
            .chain(self.query.iter().flat_map(|(_, parts)| parts.iter()))
            .filter_map(|part| match part {
                Part::Placeholder(name) => Some(name.as_str()),
                Part::Text(_) => None,
            })
            .collect()
    }

    pub fn uses(&self, placeholder: &str) -> bool {
        self.placeholders().contains(&placeholder)
    }
}

fn parts(text: &str) -> Result<Vec<Part>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("unbalanced `}}` in `{text}`"));
        }
        if open > 0 {
            out.push(Part::Text(rest[..open].to_owned()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in `{text}`"))?;
        let name = &rest[open + 1..open + close];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`{{{name}}}` is not a placeholder name"));
        }
        out.push(Part::Placeholder(name.to_owned()));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        out.push(Part::Text(rest.to_owned()));
    }
    Ok(out)
}

/// How the app splits a listing into pages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Pagination {
    /// One request returns everything.
    #[default]
    None,
    /// `?page=1&per_page=100`, then page 2, … until an empty page.
    Page {
        page_param: String,
        size: Option<SizeParam>,
        first: u64,
    },
    /// `?offset=0&limit=100`, then offset by the records received, … until
    /// an empty page.
    Offset {
        offset_param: String,
        limit: Option<SizeParam>,
    },
    /// `?cursor=<value found at cursor_pointer in the previous body>` until
    /// the body has no cursor (or an empty page).
    Cursor {
        cursor_param: String,
        cursor_pointer: JsonPointer,
        limit: Option<SizeParam>,
    },
    /// The next page's URL in an RFC 8288 `Link: <…>; rel="next"` header.
    LinkHeader { limit: Option<SizeParam> },
    /// The next page's URL in the body, at `next_pointer`.
    NextUrl {
        next_pointer: JsonPointer,
        limit: Option<SizeParam>,
    },
}

impl Pagination {
    pub const STYLES: [&'static str; 6] = [
        "none",
        "page",
        "offset",
        "cursor",
        "link_header",
        "next_url",
    ];

    /// The page-size parameter, if any.
    pub fn size(&self) -> Option<&SizeParam> {
        match self {
            Pagination::None => None,
            Pagination::Page { size, .. } => size.as_ref(),
            Pagination::Offset { limit, .. }
            | Pagination::Cursor { limit, .. }
            | Pagination::LinkHeader { limit }
            | Pagination::NextUrl { limit, .. } => limit.as_ref(),
        }
    }
}

/// A page-size query parameter and the size asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeParam {
    pub param: String,
    pub value: u64,
}

/// How one kind of record (contacts, tasks or notes) is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityApi {
    /// The change feed and full listing.
    pub list: Option<Template>,
    /// The query parameter carrying the feed's lower bound (inclusive).
    pub updated_since_param: Option<String>,
    pub timestamp_format: TimestampFormat,
    /// Where the array of records is in a listing's body.
    pub records_pointer: JsonPointer,
    pub id_pointer: JsonPointer,
    pub updated_at_pointer: JsonPointer,
    /// Sub-resources: where a record names its contact.
    pub parent_pointer: Option<JsonPointer>,
    pub get: Option<Template>,
    pub create: Option<Template>,
    pub update: Option<Template>,
    pub delete: Option<Template>,
    /// Sub-resources: the records of one contact.
    pub children: Option<Template>,
    /// Request bodies are sent as `{request_wrapper: fields}`.
    pub request_wrapper: Option<String>,
    /// Where the record is in a single-record response.
    pub record_pointer: JsonPointer,
    /// Where a 409 answer to a create names the record that already exists.
    pub conflict_id_pointer: Option<JsonPointer>,
    pub lookup_email: Option<Template>,
    pub lookup_phone: Option<Template>,
    /// The native field holding a contact's email.
    pub email_field: Option<String>,
    /// The native field holding a contact's phone number.
    pub phone_field: Option<String>,
    pub pagination: Pagination,
}

impl EntityApi {
    /// An entity reached only through `get` at `/things/{id}` (a starting
    /// point for code and tests; configuration builds the real thing).
    pub fn minimal() -> Self {
        Self {
            list: None,
            updated_since_param: None,
            timestamp_format: TimestampFormat::default(),
            records_pointer: JsonPointer::default(),
            id_pointer: JsonPointer::key("id"),
            updated_at_pointer: JsonPointer::key("updated_at"),
            parent_pointer: None,
            get: None,
            create: None,
            update: None,
            delete: None,
            children: None,
            request_wrapper: None,
            record_pointer: JsonPointer::default(),
            conflict_id_pointer: None,
            lookup_email: None,
            lookup_phone: None,
            email_field: None,
            phone_field: None,
            pagination: Pagination::None,
        }
    }
}

/// How the app signs its webhooks and where an event names its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    pub signature_header: String,
    /// Written before the signature, such as `sha256=`; may be empty.
    pub signature_prefix: String,
    pub signature_encoding: SignatureEncoding,
    /// A header with the delivery time (epoch seconds, milliseconds or RFC
    /// 3339), checked against `tolerance`.
    pub timestamp_header: Option<String>,
    pub tolerance: std::time::Duration,
    pub entity_pointer: JsonPointer,
    pub id_pointer: JsonPointer,
    pub parent_pointer: Option<JsonPointer>,
}

impl Default for WebhookSpec {
    fn default() -> Self {
        Self {
            signature_header: "X-Signature".to_owned(),
            signature_prefix: "sha256=".to_owned(),
            signature_encoding: SignatureEncoding::Hex,
            timestamp_header: None,
            tolerance: std::time::Duration::from_secs(300),
            entity_pointer: JsonPointer::key("entity"),
            id_pointer: JsonPointer::key("id"),
            parent_pointer: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureEncoding {
    #[default]
    Hex,
    Base64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_follow_rfc_6901() {
        assert!(JsonPointer::parse("").is_ok());
        assert!(JsonPointer::parse("/a~1b/~0").is_ok());
        assert!(JsonPointer::parse("id").is_err());
        assert!(JsonPointer::parse("/a~2").is_err());
        let doc = json!({"a/b": {"~": 1}});
        assert_eq!(
            JsonPointer::parse("/a~1b/~0").unwrap().get(&doc),
            Some(&json!(1))
        );
        let mut target = json!({});
        JsonPointer::parse("/x/y")
            .unwrap()
            .set(&mut target, json!(2))
            .unwrap();
        assert_eq!(target, json!({"x": {"y": 2}}));
    }

    #[test]
    fn templates_parse_method_path_and_query() {
        let t = Template::parse("GET /contacts/{contact_id}/tasks/{id}").unwrap();
        assert_eq!(t.method, Method::GET);
        assert_eq!(t.placeholders(), vec!["contact_id", "id"]);
        let t = Template::parse("GET /contacts?email={value}&x=1").unwrap();
        assert_eq!(t.query.len(), 2);
        assert!(t.uses("value"));
        assert!(Template::parse("FETCH /x").is_err());
        assert!(Template::parse("get /x").is_err());
        assert!(Template::parse("GET x").is_err());
        assert!(Template::parse("GET /x/{id").is_err());
        assert!(Template::parse("/x").is_err());
    }

    #[test]
    fn timestamps_are_strict_about_types() {
        let f = TimestampFormat::EpochMillis;
        assert_eq!(
            f.read(&json!(1_700_000_000_123_i64))
                .unwrap()
                .timestamp_millis(),
            1_700_000_000_123
        );
        assert!(f.read(&json!("1700000000123")).is_err());
        let s = TimestampFormat::EpochSeconds;
        assert_eq!(s.read(&json!(1.5)).unwrap().timestamp_millis(), 1500);
        let r = TimestampFormat::Rfc3339;
        assert!(r.read(&json!(5)).is_err());
        let at = r.read(&json!("2024-05-01T12:00:00+02:00")).unwrap();
        assert_eq!(r.write(at), "2024-05-01T10:00:00Z");
    }
}
