//! The three ways to list contacts: `POST /contacts/search` (filters,
//! sort, `page` or `searchAfter`), the deprecated `GET /contacts/`
//! (cursor `startAfter` + `startAfterId`, ordered by `dateAdded`) and
//! `GET /contacts/business/{businessId}` (`skip` / `limit`).

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use super::model::{id_of, normalize_phone, parse_time_ms, Contact, Location, Record};

/// Largest `pageLimit` of a search.
pub const SEARCH_MAX_PAGE_LIMIT: u64 = 500;
/// Default `pageLimit` of a search.
pub const SEARCH_DEFAULT_PAGE_LIMIT: u64 = 20;
/// `page * pageLimit` may not exceed this (deeper pages need
/// `searchAfter`), as on the live API.
pub const SEARCH_MAX_PAGE_WINDOW: u64 = 10_000;
/// Largest `limit` of `GET /contacts/` and `GET /contacts/business/:id`.
pub const LIST_MAX_LIMIT: u64 = 100;
/// Default `limit` of those.
pub const LIST_DEFAULT_LIMIT: u64 = 20;

#[derive(Debug, Clone)]
enum Filter {
    Cond { field: String, op: Op, value: Value },
    Group { any: bool, filters: Vec<Filter> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    NotEq,
    Contains,
    NotContains,
    Range,
    Exists,
    NotExists,
}

const OPERATORS: &str = "eq, not_eq, contains, not_contains, range, exists, not_exists";

#[derive(Debug, Clone)]
struct Sort {
    field: String,
    desc: bool,
}

/// A parsed search body.
#[derive(Debug, Clone)]
pub(crate) struct Search {
    pub location_id: String,
    page_limit: usize,
    page: Option<usize>,
    search_after: Option<Vec<Value>>,
    filters: Vec<Filter>,
    sort: Vec<Sort>,
    query: Option<String>,
}

fn parse_filter(value: &Value, path: &str, errors: &mut Vec<String>) -> Option<Filter> {
    let Some(object) = value.as_object() else {
        errors.push(format!("{path} must be an object"));
        return None;
    };
    if let Some(group) = object.get("group") {
        let any = match group.as_str().map(str::to_ascii_uppercase).as_deref() {
            Some("AND") => false,
            Some("OR") => true,
            _ => {
                errors.push(format!("{path}.group must be AND or OR"));
                return None;
            }
        };
        let filters = match object.get("filters").and_then(Value::as_array) {
            Some(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, f)| parse_filter(f, &format!("{path}.filters.{i}"), errors))
                .collect(),
            None => {
                errors.push(format!("{path}.filters must be an array"));
                return None;
            }
        };
        return Some(Filter::Group { any, filters });
    }
    let Some(field) = object.get("field").and_then(Value::as_str) else {
        errors.push(format!("{path}.field must be a string"));
        return None;
    };
    let op = match object.get("operator").and_then(Value::as_str) {
        Some("eq") => Op::Eq,
        Some("not_eq") => Op::NotEq,
        Some("contains") => Op::Contains,
        Some("not_contains") => Op::NotContains,
        Some("range") => Op::Range,
        Some("exists") => Op::Exists,
        Some("not_exists") => Op::NotExists,
        _ => {
            errors.push(format!("{path}.operator must be one of: {OPERATORS}"));
            return None;
        }
    };
    let value = object.get("value").cloned().unwrap_or(Value::Null);
    match op {
        Op::Range => {
            let ok = value.as_object().is_some_and(|bounds| {
                !bounds.is_empty()
                    && bounds.iter().all(|(k, v)| {
                        matches!(k.as_str(), "gt" | "gte" | "lt" | "lte")
                            && bound_value(field, v).is_some()
                    })
            });
            if !ok {
                errors.push(format!(
                    "{path}.value must be an object of gt, gte, lt, lte bounds (ISO 8601 times for dates)"
                ));
                return None;
            }
        }
        Op::Eq | Op::NotEq | Op::Contains | Op::NotContains if value.is_null() => {
            errors.push(format!("{path}.value should not be empty"));
            return None;
        }
        _ => {}
    }
    Some(Filter::Cond {
        field: field.to_string(),
        op,
        value,
    })
}

fn is_date_field(field: &str) -> bool {
    matches!(
        field,
        "dateAdded" | "dateUpdated" | "lastActivity" | "dateOfBirth"
    )
}

fn bound_value(field: &str, value: &Value) -> Option<f64> {
    if is_date_field(field) {
        match value {
            Value::String(s) => parse_time_ms(s).map(|ms| ms as f64),
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    } else {
        value
            .as_f64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
    }
}

fn field_number(contact: &Contact, field: &str) -> Option<f64> {
    match field {
        "dateAdded" => Some(contact.added_ms as f64),
        "dateUpdated" => Some(contact.updated_ms as f64),
        _ => {
            let value = contact.data.get(field)?;
            bound_value(field, value)
        }
    }
}

fn text_eq(field: &str, actual: &Value, wanted: &Value) -> bool {
    match (actual, wanted) {
        (Value::String(a), Value::String(w)) => match field {
            "email" => a.eq_ignore_ascii_case(w.trim()),
            "phone" => normalize_phone(w).as_deref() == Some(a.as_str()),
            _ => a == w,
        },
        (Value::Array(items), w) => items.iter().any(|i| text_eq(field, i, w)),
        (a, w) => a == w,
    }
}

fn matches(contact: &Contact, filter: &Filter) -> bool {
    match filter {
        Filter::Group { any: true, filters } => filters.iter().any(|f| matches(contact, f)),
        Filter::Group {
            any: false,
            filters,
        } => filters.iter().all(|f| matches(contact, f)),
        Filter::Cond { field, op, value } => {
            let actual = contact.data.get(field.as_str()).filter(|v| !v.is_null());
            match op {
                Op::Exists => actual.is_some_and(|v| {
                    v.as_str() != Some("") && v.as_array().is_none_or(|a| !a.is_empty())
                }),
                Op::NotExists => !matches(
                    contact,
                    &Filter::Cond {
                        field: field.clone(),
                        op: Op::Exists,
                        value: Value::Null,
                    },
                ),
                Op::Eq => match value {
                    Value::Array(options) => {
                        actual.is_some_and(|a| options.iter().any(|w| text_eq(field, a, w)))
                    }
                    _ => actual.is_some_and(|a| text_eq(field, a, value)),
                },
                Op::NotEq => !matches(
                    contact,
                    &Filter::Cond {
                        field: field.clone(),
                        op: Op::Eq,
                        value: value.clone(),
                    },
                ),
                Op::Contains => contains(actual, value),
                Op::NotContains => !contains(actual, value),
                Op::Range => {
                    let Some(number) = field_number(contact, field) else {
                        return false;
                    };
                    value.as_object().is_some_and(|bounds| {
                        bounds.iter().all(|(k, v)| {
                            let Some(bound) = bound_value(field, v) else {
                                return false;
                            };
                            match k.as_str() {
                                "gt" => number > bound,
                                "gte" => number >= bound,
                                "lt" => number < bound,
                                "lte" => number <= bound,
                                _ => false,
                            }
                        })
                    })
                }
            }
        }
    }
}

/// `contains`: on an array field (tags) every wanted value must be an
/// element (case-insensitive); on a text field, a case-insensitive
/// substring.
fn contains(actual: Option<&Value>, wanted: &Value) -> bool {
    let wanted: Vec<String> = match wanted {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_lowercase)
            .collect(),
        Value::String(s) => vec![s.to_lowercase()],
        other => vec![other.to_string()],
    };
    match actual {
        Some(Value::Array(items)) => wanted.iter().all(|w| {
            items
                .iter()
                .any(|i| i.as_str().map(str::to_lowercase).as_deref() == Some(w.as_str()))
        }),
        Some(Value::String(s)) => {
            let s = s.to_lowercase();
            wanted.iter().all(|w| s.contains(w.as_str()))
        }
        _ => false,
    }
}

/// Free-text match over names, email, phone and company.
fn matches_query(contact: &Contact, query: &str) -> bool {
    let query = query.trim().to_lowercase();
    if query.is_empty() {
        return true;
    }
    let digits: String = query.chars().filter(char::is_ascii_digit).collect();
    [
        "contactName",
        "firstName",
        "lastName",
        "email",
        "companyName",
    ]
    .iter()
    .filter_map(|k| contact.data.get(*k).and_then(Value::as_str))
    .any(|v| v.to_lowercase().contains(&query))
        || (digits.len() >= 3
            && contact
                .data
                .get("phone")
                .and_then(Value::as_str)
                .is_some_and(|p| p.contains(&digits)))
}

/// A sort key value: dates as epoch ms numbers, anything else as a
/// lower-cased string (missing = "").
fn sort_value(contact: &Contact, field: &str) -> Value {
    match field {
        "dateAdded" => json!(contact.added_ms),
        "dateUpdated" => json!(contact.updated_ms),
        _ => match contact.data.get(field) {
            Some(Value::Number(n)) => Value::Number(n.clone()),
            Some(Value::String(s)) => json!(s.to_lowercase()),
            Some(other) if !other.is_null() => json!(other.to_string()),
            _ => json!(""),
        },
    }
}

fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Value::Number(_), _) => Ordering::Less,
        (_, Value::Number(_)) => Ordering::Greater,
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// Compares two sort tuples (`[key.., id]`) under the sort directions;
/// the trailing id (the tie-break) goes in the direction of the last sort
/// key, so `dateUpdated desc` orders by `(dateUpdated, id)` descending.
fn cmp_keys(sort: &[Sort], a: &[Value], b: &[Value]) -> Ordering {
    for (i, s) in sort.iter().enumerate() {
        let (Some(x), Some(y)) = (a.get(i), b.get(i)) else {
            break;
        };
        let ord = cmp_values(x, y);
        let ord = if s.desc { ord.reverse() } else { ord };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    let n = sort.len();
    let ord = cmp_values(
        a.get(n).unwrap_or(&Value::Null),
        b.get(n).unwrap_or(&Value::Null),
    );
    if sort.last().is_some_and(|s| s.desc) {
        ord.reverse()
    } else {
        ord
    }
}

/// A date sort value given back in `searchAfter`: epoch ms (number or
/// numeric string) or an ISO time.
fn cursor_ms(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse().ok().or_else(|| parse_time_ms(s)),
        _ => None,
    }
}

fn as_index(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                .map(|f| f as u64)
        })
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

impl Search {
    /// Parses a search body. The messages are answered as a 400 (the only
    /// client error the spec lists for this endpoint).
    pub fn parse(body: &Value) -> Result<Search, Vec<String>> {
        let Some(object) = body.as_object() else {
            return Err(vec!["body must be a JSON object".into()]);
        };
        let mut errors = Vec::new();
        let location_id = match object.get("locationId").and_then(Value::as_str) {
            Some(l) if !l.is_empty() => l.to_string(),
            _ => {
                errors.push("locationId should not be empty".into());
                String::new()
            }
        };
        let page_limit = match object.get("pageLimit") {
            None | Some(Value::Null) => SEARCH_DEFAULT_PAGE_LIMIT,
            Some(v) => match as_index(v) {
                Some(n) if (1..=SEARCH_MAX_PAGE_LIMIT).contains(&n) => n,
                Some(n) if n > SEARCH_MAX_PAGE_LIMIT => {
                    errors.push(format!(
                        "pageLimit must not be greater than {SEARCH_MAX_PAGE_LIMIT}"
                    ));
                    SEARCH_DEFAULT_PAGE_LIMIT
                }
                _ => {
                    errors.push("pageLimit must not be less than 1".into());
                    SEARCH_DEFAULT_PAGE_LIMIT
                }
            },
        };
        let page = match object.get("page") {
            None | Some(Value::Null) => None,
            Some(v) => match as_index(v) {
                Some(n) if n >= 1 => Some(n),
                _ => {
                    errors.push("page must not be less than 1".into());
                    None
                }
            },
        };
        let search_after = match object.get("searchAfter") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) if !items.is_empty() => Some(items.clone()),
            Some(_) => {
                errors.push("searchAfter must be a non-empty array".into());
                None
            }
        };
        if page.is_some() && search_after.is_some() {
            errors.push("page and searchAfter cannot be used together".into());
        }
        if let Some(page) = page {
            if page * page_limit > SEARCH_MAX_PAGE_WINDOW {
                errors.push(format!(
                    "page * pageLimit must not exceed {SEARCH_MAX_PAGE_WINDOW}; use searchAfter to go deeper"
                ));
            }
        }
        let filters = match object.get("filters") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, f)| parse_filter(f, &format!("filters.{i}"), &mut errors))
                .collect(),
            Some(_) => {
                errors.push("filters must be an array".into());
                Vec::new()
            }
        };
        let sort = match object.get("sort") {
            None | Some(Value::Null) => vec![Sort {
                field: "dateAdded".into(),
                desc: true,
            }],
            Some(Value::Array(items)) if !items.is_empty() => {
                let mut sort = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let field = item.get("field").and_then(Value::as_str);
                    let direction = item
                        .get("direction")
                        .and_then(Value::as_str)
                        .unwrap_or("asc");
                    match (field, direction.to_ascii_lowercase().as_str()) {
                        (Some(field), "asc" | "desc") => sort.push(Sort {
                            field: field.to_string(),
                            desc: direction.eq_ignore_ascii_case("desc"),
                        }),
                        (None, _) => errors.push(format!("sort.{i}.field must be a string")),
                        _ => errors.push(format!("sort.{i}.direction must be one of: asc, desc")),
                    }
                }
                sort
            }
            Some(_) => {
                errors.push("sort must be a non-empty array".into());
                Vec::new()
            }
        };
        if let Some(after) = &search_after {
            if after.len() != sort.len() + 1 {
                errors.push(format!(
                    "searchAfter must have {} values: the sort values then the contact id",
                    sort.len() + 1
                ));
            }
        }
        let query = object
            .get("query")
            .and_then(Value::as_str)
            .map(String::from)
            .filter(|q| !q.trim().is_empty());
        if errors.is_empty() {
            Ok(Search {
                location_id,
                page_limit: page_limit as usize,
                page: page.map(|p| p as usize),
                search_after,
                filters,
                sort,
                query,
            })
        } else {
            Err(errors)
        }
    }

    /// Runs the search: `{contacts, total}`; each contact carries
    /// `searchAfter: [<sort values>, "<id>"]` (dates as epoch ms).
    pub fn run(&self, location: &Location) -> Value {
        if let [sort] = self.sort.as_slice() {
            if matches!(sort.field.as_str(), "dateAdded" | "dateUpdated") {
                if let Some(result) = self.run_indexed(location, sort) {
                    return result;
                }
            }
        }
        self.run_sorted(location)
    }

    fn matches(&self, contact: &Contact) -> bool {
        self.filters.iter().all(|f| matches(contact, f))
            && self
                .query
                .as_deref()
                .is_none_or(|q| matches_query(contact, q))
    }

    /// The common case (one date sort key) walks the location's date
    /// index: one pass, no sorting. `None` if the cursor is not a date.
    fn run_indexed(&self, location: &Location, sort: &Sort) -> Option<Value> {
        let cursor = match &self.search_after {
            None => None,
            Some(after) => Some((
                cursor_ms(after.first()?)?,
                after.get(1)?.as_str()?.to_string(),
            )),
        };
        let index = if sort.field == "dateAdded" {
            &location.by_added
        } else {
            &location.by_updated
        };
        let ordered: Box<dyn Iterator<Item = &(i64, String)>> = if sort.desc {
            Box::new(index.iter().rev())
        } else {
            Box::new(index.iter())
        };
        let mut skip = self.page.map_or(0, |p| (p - 1) * self.page_limit);
        let mut total = 0usize;
        let mut contacts = Vec::new();
        for key in ordered {
            let Some(contact) = location.contacts.get(&key.1) else {
                continue;
            };
            if !self.matches(contact) {
                continue;
            }
            total += 1;
            if contacts.len() >= self.page_limit {
                continue;
            }
            if let Some(cursor) = &cursor {
                let after = if sort.desc {
                    key < cursor
                } else {
                    key > cursor
                };
                if !after {
                    continue;
                }
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let mut data = contact.data.clone();
            data.insert("searchAfter".into(), json!([key.0, key.1]));
            contacts.push(Value::Object(data));
        }
        Some(json!({"contacts": contacts, "total": total}))
    }

    fn run_sorted(&self, location: &Location) -> Value {
        let mut hits: Vec<(Vec<Value>, &Contact)> = location
            .contacts
            .values()
            .filter(|c| self.matches(c))
            .map(|c| {
                let mut key: Vec<Value> =
                    self.sort.iter().map(|s| sort_value(c, &s.field)).collect();
                key.push(json!(id_of(&c.data)));
                (key, c)
            })
            .collect();
        let total = hits.len();
        hits.sort_by(|a, b| cmp_keys(&self.sort, &a.0, &b.0));
        let start = match (&self.search_after, self.page) {
            (Some(after), _) => hits
                .partition_point(|(key, _)| cmp_keys(&self.sort, key, after) != Ordering::Greater),
            (None, Some(page)) => (page - 1) * self.page_limit,
            (None, None) => 0,
        };
        let contacts: Vec<Value> = hits
            .iter()
            .skip(start)
            .take(self.page_limit)
            .map(|(key, c)| {
                let mut data = c.data.clone();
                data.insert("searchAfter".into(), Value::Array(key.clone()));
                Value::Object(data)
            })
            .collect();
        json!({"contacts": contacts, "total": total})
    }
}

/// Parameters of the deprecated `GET /contacts/`.
#[derive(Debug, Clone)]
pub(crate) struct ListParams {
    pub limit: usize,
    pub start_after: Option<i64>,
    pub start_after_id: Option<String>,
    pub query: Option<String>,
}

/// `GET /contacts/`: ordered by `(dateAdded, id)` ascending; the cursor
/// is the last contact of the previous page. `meta.nextPageUrl` and
/// `meta.nextPage` are `null` on the last page, `meta.prevPage` on the
/// first; `count` is the total number of matching contacts, like
/// `meta.total`.
pub(crate) fn list(location: &Location, params: &ListParams, base_url: &str) -> Value {
    let all: Vec<&Contact> = location
        .contacts_by_added()
        .filter(|c| params.query.as_deref().is_none_or(|q| matches_query(c, q)))
        .collect();
    let total = all.len();
    let start = match (params.start_after, params.start_after_id.as_deref()) {
        (Some(ms), Some(id)) => all.partition_point(|c| (c.added_ms, id_of(&c.data)) <= (ms, id)),
        (Some(ms), None) => all.partition_point(|c| c.added_ms <= ms),
        (None, Some(id)) => match all.iter().position(|c| id_of(&c.data) == id) {
            Some(i) => i + 1,
            None => 0,
        },
        (None, None) => 0,
    };
    let page: Vec<&Contact> = all.iter().skip(start).take(params.limit).copied().collect();
    let end = start + page.len();
    let current_page = start / params.limit.max(1) + 1;
    let more = end < total;
    let last = page.last();
    let mut meta = Map::new();
    meta.insert("total".into(), json!(total));
    meta.insert(
        "startAfterId".into(),
        last.map_or(Value::Null, |c| json!(id_of(&c.data))),
    );
    meta.insert(
        "startAfter".into(),
        last.map_or(Value::Null, |c| json!(c.added_ms)),
    );
    meta.insert("currentPage".into(), json!(current_page));
    meta.insert(
        "nextPage".into(),
        if more {
            json!(current_page + 1)
        } else {
            Value::Null
        },
    );
    meta.insert(
        "prevPage".into(),
        if current_page > 1 {
            json!(current_page - 1)
        } else {
            Value::Null
        },
    );
    let next_url = match (more, last) {
        (true, Some(c)) => json!(format!(
            "{base_url}/contacts/?locationId={}&startAfter={}&startAfterId={}&limit={}",
            location.id,
            c.added_ms,
            id_of(&c.data),
            params.limit
        )),
        _ => Value::Null,
    };
    meta.insert("nextPageUrl".into(), next_url);
    let contacts: Vec<Value> = page.iter().map(|c| Value::Object(c.data.clone())).collect();
    json!({"contacts": contacts, "count": total, "meta": meta})
}

/// `GET /contacts/business/{businessId}`: the location's contacts of a
/// business, ordered by `(dateAdded, id)`, `skip`/`limit` paging; `count`
/// is the total.
pub(crate) fn by_business(
    location: &Location,
    business_id: &str,
    skip: usize,
    limit: usize,
    query: Option<&str>,
) -> Value {
    let all: Vec<&Contact> = location
        .contacts_by_added()
        .filter(|c| c.data.get("businessId").and_then(Value::as_str) == Some(business_id))
        .filter(|c| query.is_none_or(|q| matches_query(c, q)))
        .collect();
    let contacts: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(limit)
        .map(|c| Value::Object(c.data.clone()))
        .collect();
    json!({"contacts": contacts, "count": all.len()})
}

/// The records of a location sorted for `SimHandle::contacts`.
pub(crate) fn all_contacts(location: &Location) -> Vec<Record> {
    location
        .contacts_by_added()
        .map(|c| c.data.clone())
        .collect()
}
