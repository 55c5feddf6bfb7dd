//! The GHL OpenAPI specs (`spec/ghl-api/apps/*.json`, vendored) as test oracles:
//! load a spec with every `$ref` resolved (including those into
//! `../common/common-schemas.json`), find the operation of a concrete
//! request (`POST /contacts/abc/tasks` → `/contacts/{contactId}/tasks`),
//! and validate request and response bodies against its schemas.
//!
//! Use it from a test crate with
//! `#[path = "common/openapi.rs"] mod openapi;`, then for example:
//!
//! ```ignore
//! let spec = openapi::contacts();
//! let op = spec.operation("GET", "/contacts/abc").unwrap();
//! op.validate_response(200, &body).unwrap();
//! op.validate_request_body(&json!({"locationId": "x"})).unwrap();
//! assert_eq!(op.required_headers(), vec!["Version"]);
//! ```
//!
//! OpenAPI 3.0 schemas are turned into JSON Schema (draft 4): `nullable:
//! true` adds `null` to the type; `example`, `description` and the like are
//! ignored. Objects stay open (no `additionalProperties: false` is added),
//! because the live API returns more fields than the spec lists.
//!
//! [`Spec::load`] patches the spec's known unsatisfiable schemas (see
//! [`QUIRKS`]); [`Spec::load_strict`] keeps them as published.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

/// `apps/contacts.json`.
pub const CONTACTS_SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/spec/ghl-api/apps/contacts.json"
);
/// `apps/oauth.json`.
pub const OAUTH_SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/ghl-api/apps/oauth.json");

/// Schemas as published that no real body can satisfy, and how [`Spec::load`]
/// relaxes them: `(component, property, extra type, why)`. The property's
/// `type` is widened to also accept the extra type.
pub const QUIRKS: &[(&str, &str, &str, &str)] = &[
    (
        "CreateContactDto",
        "dateOfBirth",
        "string",
        "typed `object` but documented (and sent) as a date string such as \"1990-09-25\"",
    ),
    (
        "UpdateContactDto",
        "dateOfBirth",
        "string",
        "typed `object` but documented (and sent) as a date string",
    ),
    (
        "UpsertContactDto",
        "dateOfBirth",
        "string",
        "typed `object` but documented (and sent) as a date string",
    ),
    (
        "NumericField",
        "field_value",
        "number",
        "typed `object` but its example (and the live API) is a number",
    ),
    (
        "MonetoryField",
        "field_value",
        "number",
        "typed `object` but its example (and the live API) is a number",
    ),
    (
        "CustomFieldSchema",
        "value",
        "number",
        "typed `string`, but the GHL field notes and the webhook docs give read values their field's type: \
         a number for numeric and monetary fields (what `NumericField`/`MonetoryField` write)",
    ),
    (
        "CustomFieldSchema",
        "value",
        "array",
        "typed `string`, but the GHL field notes and the webhook docs give read values their field's type: \
         an array for multi-select and checkbox fields (what `MultiSelectField`/`CheckboxField` write)",
    ),
    (
        "CustomFieldSchema",
        "value",
        "object",
        "typed `string`, but the GHL field notes and the webhook docs give read values their field's type: \
         an object for file uploads (what `FileField` writes)",
    ),
];

/// The contacts spec, loaded once per test process (with [`QUIRKS`] applied).
pub fn contacts() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| Spec::load(CONTACTS_SPEC).unwrap_or_else(|e| panic!("{e}")))
}

/// The OAuth spec, loaded once per test process.
pub fn oauth() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| Spec::load(OAUTH_SPEC).unwrap_or_else(|e| panic!("{e}")))
}

/// A failure to load a spec.
#[derive(Debug)]
pub struct SpecError(pub String);

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecError {}

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamIn {
    Path,
    Query,
    Header,
    Cookie,
}

/// One parameter of an operation.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub location: ParamIn,
    pub required: bool,
    /// As JSON Schema, refs resolved.
    pub schema: Option<Value>,
}

/// The request body of an operation.
#[derive(Debug, Clone)]
pub struct RequestBody {
    pub required: bool,
    /// e.g. `application/json`, `application/x-www-form-urlencoded`.
    pub content_type: String,
    /// As JSON Schema, refs resolved.
    pub schema: Option<Value>,
}

/// One documented response.
#[derive(Debug, Clone)]
pub struct ResponseDoc {
    pub description: String,
    /// As JSON Schema, refs resolved; `None` when the spec gives no body
    /// schema.
    pub schema: Option<Value>,
}

/// One operation (method + path template).
#[derive(Debug, Clone)]
pub struct Operation {
    /// Upper case: `GET`, `POST`, ...
    pub method: String,
    /// The spec's path, e.g. `/contacts/{contactId}/tasks`.
    pub template: String,
    pub operation_id: Option<String>,
    pub deprecated: bool,
    pub parameters: Vec<Param>,
    pub request_body: Option<RequestBody>,
    /// By status code as written in the spec (`"200"`, `"default"`, ...).
    pub responses: BTreeMap<String, ResponseDoc>,
    /// Scopes of the `security` requirement (e.g. `contacts.readonly`).
    pub scopes: Vec<String>,
}

/// A loaded spec.
#[derive(Debug)]
pub struct Spec {
    pub path: PathBuf,
    operations: Vec<Operation>,
    components: Map<String, Value>,
}

// --- loading and $ref resolution -------------------------------------------

struct Loader {
    docs: HashMap<PathBuf, Value>,
}

impl Loader {
    fn doc(&mut self, path: &Path) -> Result<&Value, SpecError> {
        if !self.docs.contains_key(path) {
            let text = std::fs::read_to_string(path)
                .map_err(|e| SpecError(format!("cannot read {}: {e}", path.display())))?;
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| SpecError(format!("{} is not JSON: {e}", path.display())))?;
            self.docs.insert(path.to_path_buf(), value);
        }
        Ok(&self.docs[path])
    }

    /// Resolves `$ref`s recursively (inlining them). A reference cycle is
    /// replaced by `{}` (accept anything) at the point it recurs.
    fn resolve(
        &mut self,
        value: &Value,
        base: &Path,
        stack: &mut Vec<String>,
    ) -> Result<Value, SpecError> {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    let (file, pointer) = reference
                        .split_once('#')
                        .unwrap_or((reference.as_str(), ""));
                    let target_path = if file.is_empty() {
                        base.to_path_buf()
                    } else {
                        normalize(&base.parent().unwrap_or(Path::new(".")).join(file))
                    };
                    let key = format!("{}#{pointer}", target_path.display());
                    if stack.contains(&key) {
                        return Ok(json!({}));
                    }
                    let target = self
                        .doc(&target_path)?
                        .pointer(pointer)
                        .cloned()
                        .ok_or_else(|| {
                            SpecError(format!(
                                "unresolvable $ref {reference} in {}",
                                base.display()
                            ))
                        })?;
                    stack.push(key);
                    let resolved = self.resolve(&target, &target_path, stack);
                    stack.pop();
                    return resolved;
                }
                let mut out = Map::new();
                for (k, v) in map {
                    out.insert(k.clone(), self.resolve(v, base, stack)?);
                }
                Ok(Value::Object(out))
            }
            Value::Array(items) => Ok(Value::Array(
                items
                    .iter()
                    .map(|v| self.resolve(v, base, stack))
                    .collect::<Result<_, _>>()?,
            )),
            other => Ok(other.clone()),
        }
    }
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// OpenAPI 3.0 schema → JSON Schema draft 4.
fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                match k.as_str() {
                    "example" | "examples" | "xml" | "externalDocs" | "discriminator"
                    | "readOnly" | "writeOnly" | "deprecated" | "nullable" => {}
                    "properties" | "patternProperties" | "definitions" => {
                        let props = v
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .map(|(pk, pv)| (pk.clone(), to_json_schema(pv)))
                                    .collect()
                            })
                            .unwrap_or_default();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    _ => {
                        out.insert(k.clone(), to_json_schema(v));
                    }
                }
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                match out.get("type").cloned() {
                    Some(Value::String(t)) => {
                        out.insert("type".into(), json!([t, "null"]));
                    }
                    Some(Value::Array(mut ts)) => {
                        if !ts.contains(&json!("null")) {
                            ts.push(json!("null"));
                        }
                        out.insert("type".into(), Value::Array(ts));
                    }
                    _ => {}
                }
                if let Some(Value::Array(values)) = out.get_mut("enum") {
                    values.push(Value::Null);
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(to_json_schema).collect()),
        other => other.clone(),
    }
}

fn apply_quirks(components: &mut Map<String, Value>) {
    for (component, property, extra, _why) in QUIRKS {
        let Some(prop) = components
            .get_mut(*component)
            .and_then(|c| c.get_mut("properties"))
            .and_then(|p| p.get_mut(*property))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let widened = match prop.get("type") {
            Some(Value::String(t)) => json!([t, extra]),
            Some(Value::Array(ts)) => {
                let mut ts = ts.clone();
                ts.push(json!(extra));
                Value::Array(ts)
            }
            _ => continue,
        };
        prop.insert("type".into(), widened);
    }
}

impl Spec {
    /// Loads a spec, resolving every `$ref`, with [`QUIRKS`] patched.
    pub fn load(path: impl AsRef<Path>) -> Result<Spec, SpecError> {
        Self::load_with(path.as_ref(), true)
    }

    /// Loads a spec as published (no quirk patched).
    pub fn load_strict(path: impl AsRef<Path>) -> Result<Spec, SpecError> {
        Self::load_with(path.as_ref(), false)
    }

    fn load_with(path: &Path, quirks: bool) -> Result<Spec, SpecError> {
        let path = normalize(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
        let mut loader = Loader {
            docs: HashMap::new(),
        };
        let raw = loader.doc(&path)?.clone();
        // Patch the quirks in the raw component schemas, so every $ref to
        // them sees the patched version.
        if quirks {
            if let Some(Value::Object(schemas)) = raw.pointer("/components/schemas").cloned() {
                let mut schemas = schemas;
                apply_quirks(&mut schemas);
                let mut patched = raw.clone();
                patched["components"]["schemas"] = Value::Object(schemas);
                loader.docs.insert(path.clone(), patched);
            }
        }
        let raw = loader.doc(&path)?.clone();
        let mut components = Map::new();
        if let Some(Value::Object(schemas)) = raw.pointer("/components/schemas") {
            for (name, schema) in schemas {
                let resolved = loader.resolve(schema, &path, &mut Vec::new())?;
                components.insert(name.clone(), to_json_schema(&resolved));
            }
        }
        let mut operations = Vec::new();
        let paths = raw
            .get("paths")
            .and_then(Value::as_object)
            .ok_or_else(|| SpecError(format!("{} has no paths", path.display())))?;
        for (template, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            let shared_params = item.get("parameters").cloned().unwrap_or(json!([]));
            for (method, op) in item {
                if !matches!(
                    method.as_str(),
                    "get" | "put" | "post" | "delete" | "patch" | "head" | "options" | "trace"
                ) {
                    continue;
                }
                let op = loader.resolve(op, &path, &mut Vec::new())?;
                let shared = loader.resolve(&shared_params, &path, &mut Vec::new())?;
                operations.push(operation(method, template, &op, &shared));
            }
        }
        Ok(Spec {
            path,
            operations,
            components,
        })
    }

    /// Every operation.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The operation serving `method` on a concrete `path` (a query string
    /// is ignored; a trailing slash is not significant). When several
    /// templates match, the one with literal segments earliest wins
    /// (`/contacts/search/duplicate` over `/contacts/{contactId}/...`).
    pub fn operation(&self, method: &str, path: &str) -> Option<&Operation> {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let mut best: Option<(&Operation, Vec<bool>)> = None;
        for op in &self.operations {
            if !op.method.eq_ignore_ascii_case(method) {
                continue;
            }
            if let Some(score) = match_template(&op.template, path) {
                if best.as_ref().is_none_or(|(_, s)| score > *s) {
                    best = Some((op, score));
                }
            }
        }
        best.map(|(op, _)| op)
    }

    /// Like [`Spec::operation`] but panics with a clear message.
    pub fn expect_operation(&self, method: &str, path: &str) -> &Operation {
        self.operation(method, path).unwrap_or_else(|| {
            panic!(
                "{} has no operation for {method} {path}",
                self.path.display()
            )
        })
    }

    /// A component schema (`#/components/schemas/<name>`), as JSON Schema.
    pub fn component(&self, name: &str) -> Option<&Value> {
        self.components.get(name)
    }

    /// Validates a value against a component schema.
    pub fn validate_component(&self, name: &str, value: &Value) -> Result<(), Vec<String>> {
        let schema = self
            .component(name)
            .ok_or_else(|| vec![format!("no component schema {name}")])?;
        validate(schema, value).map_err(|errors| prefix(&format!("{name}: "), errors))
    }

    /// Shorthand: finds the operation, then [`Operation::validate_response`].
    pub fn validate_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), Vec<String>> {
        match self.operation(method, path) {
            Some(op) => op.validate_response(status, body),
            None => Err(vec![format!("no operation for {method} {path}")]),
        }
    }

    /// Shorthand: finds the operation, then [`Operation::validate_request_body`].
    pub fn validate_request(
        &self,
        method: &str,
        path: &str,
        body: &Value,
    ) -> Result<(), Vec<String>> {
        match self.operation(method, path) {
            Some(op) => op.validate_request_body(body),
            None => Err(vec![format!("no operation for {method} {path}")]),
        }
    }
}

fn trim_slash(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/"
    } else {
        trimmed
    }
}

/// `Some(score)` when the concrete path fits the template; the score lists,
/// per segment, whether it matched a literal.
fn match_template(template: &str, path: &str) -> Option<Vec<bool>> {
    let t: Vec<&str> = trim_slash(template).split('/').collect();
    let p: Vec<&str> = trim_slash(path).split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let mut score = Vec::with_capacity(t.len());
    for (ts, ps) in t.iter().zip(&p) {
        if ts.starts_with('{') && ts.ends_with('}') {
            if ps.is_empty() {
                return None;
            }
            score.push(false);
        } else if ts == ps {
            score.push(true);
        } else {
            return None;
        }
    }
    Some(score)
}

fn operation(method: &str, template: &str, op: &Value, shared_params: &Value) -> Operation {
    let mut parameters: Vec<Param> = Vec::new();
    let all = shared_params.as_array().into_iter().flatten().chain(
        op.get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten(),
    );
    for p in all {
        let location = match p.get("in").and_then(Value::as_str) {
            Some("path") => ParamIn::Path,
            Some("query") => ParamIn::Query,
            Some("header") => ParamIn::Header,
            _ => ParamIn::Cookie,
        };
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        parameters.retain(|q| !(q.name == name && q.location == location));
        parameters.push(Param {
            name,
            location,
            required: p
                .get("required")
                .and_then(Value::as_bool)
                .unwrap_or(location == ParamIn::Path),
            schema: p.get("schema").map(to_json_schema),
        });
    }
    let request_body = op.get("requestBody").map(|rb| {
        let content = rb.get("content").and_then(Value::as_object);
        let (content_type, media) = content
            .and_then(|c| {
                c.get_key_value("application/json")
                    .or_else(|| c.iter().next())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .unwrap_or_default();
        RequestBody {
            required: rb.get("required").and_then(Value::as_bool).unwrap_or(false),
            content_type,
            schema: media.get("schema").map(to_json_schema),
        }
    });
    let mut responses = BTreeMap::new();
    if let Some(map) = op.get("responses").and_then(Value::as_object) {
        for (status, response) in map {
            let schema = response
                .get("content")
                .and_then(Value::as_object)
                .and_then(|c| c.get("application/json").or_else(|| c.values().next()))
                .and_then(|m| m.get("schema"))
                .map(to_json_schema);
            responses.insert(
                status.clone(),
                ResponseDoc {
                    description: response
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    schema,
                },
            );
        }
    }
    let scopes = op
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|m| m.values())
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    Operation {
        method: method.to_ascii_uppercase(),
        template: template.to_string(),
        operation_id: op
            .get("operationId")
            .and_then(Value::as_str)
            .map(String::from),
        deprecated: op
            .get("deprecated")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        parameters,
        request_body,
        responses,
        scopes,
    }
}

impl Operation {
    /// Whether a concrete path fits this operation's template.
    pub fn matches(&self, path: &str) -> bool {
        match_template(&self.template, path.split('?').next().unwrap_or("")).is_some()
    }

    /// Required parameters.
    pub fn required_params(&self) -> Vec<&Param> {
        self.parameters.iter().filter(|p| p.required).collect()
    }

    /// Names of the required query parameters.
    pub fn required_query(&self) -> Vec<&str> {
        self.required_of(ParamIn::Query)
    }

    /// Names of the required headers (e.g. `Version`).
    pub fn required_headers(&self) -> Vec<&str> {
        self.required_of(ParamIn::Header)
    }

    fn required_of(&self, location: ParamIn) -> Vec<&str> {
        self.parameters
            .iter()
            .filter(|p| p.required && p.location == location)
            .map(|p| p.name.as_str())
            .collect()
    }

    /// Checks that a request carries every required query parameter and
    /// header (header names compare case-insensitively); returns the
    /// missing ones as messages.
    pub fn check_params(
        &self,
        query: &[(String, String)],
        headers: &[(String, String)],
    ) -> Result<(), Vec<String>> {
        let mut missing = Vec::new();
        for name in self.required_query() {
            if !query.iter().any(|(k, _)| k == name) {
                missing.push(format!("missing required query parameter {name}"));
            }
        }
        for name in self.required_headers() {
            if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
                missing.push(format!("missing required header {name}"));
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing)
        }
    }

    /// The documentation of a status: exact code, then `4XX`-style, then
    /// `default`.
    pub fn response(&self, status: u16) -> Option<&ResponseDoc> {
        let code = status.to_string();
        let class = format!("{}XX", status / 100);
        self.responses
            .get(&code)
            .or_else(|| self.responses.get(&class))
            .or_else(|| self.responses.get(&class.to_lowercase()))
            .or_else(|| self.responses.get("default"))
    }

    /// The body schema of a status, if the spec gives one.
    pub fn response_schema(&self, status: u16) -> Option<&Value> {
        self.response(status).and_then(|r| r.schema.as_ref())
    }

    /// Validates a response body. An undocumented status is an error; a
    /// documented status without a schema accepts any body.
    pub fn validate_response(&self, status: u16, body: &Value) -> Result<(), Vec<String>> {
        let Some(doc) = self.response(status) else {
            return Err(vec![format!(
                "{} {}: status {status} is not documented (documented: {:?})",
                self.method,
                self.template,
                self.responses.keys().collect::<Vec<_>>()
            )]);
        };
        match &doc.schema {
            None => Ok(()),
            Some(schema) => validate(schema, body).map_err(|e| {
                prefix(
                    &format!("{} {} → {status}: ", self.method, self.template),
                    e,
                )
            }),
        }
    }

    /// Validates a request body against the `requestBody` schema. For a
    /// form-encoded body, pass the fields as a JSON object of strings.
    pub fn validate_request_body(&self, body: &Value) -> Result<(), Vec<String>> {
        match self.request_body.as_ref().and_then(|rb| rb.schema.as_ref()) {
            None => Ok(()),
            Some(schema) => validate(schema, body)
                .map_err(|e| prefix(&format!("{} {} request: ", self.method, self.template), e)),
        }
    }
}

fn prefix(text: &str, errors: Vec<String>) -> Vec<String> {
    errors.into_iter().map(|e| format!("{text}{e}")).collect()
}

/// Validates a value against a JSON Schema (draft 4); one message per
/// violation, each naming the JSON pointer of the offending value.
pub fn validate(schema: &Value, value: &Value) -> Result<(), Vec<String>> {
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(schema)
        .map_err(|e| vec![format!("invalid schema: {e}")])?;
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("at '{}': {e}", e.instance_path))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_concrete_paths() {
        assert!(match_template("/contacts/{contactId}/tasks", "/contacts/abc/tasks").is_some());
        assert!(match_template("/contacts/", "/contacts").is_some());
        assert!(match_template("/contacts/{contactId}", "/contacts/a/b").is_none());
    }
}
