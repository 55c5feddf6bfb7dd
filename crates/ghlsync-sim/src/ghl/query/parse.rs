//! Reading a search body into a [`Search`], with every problem reported
//! (as the 400 the spec lists for this endpoint).

use serde_json::{Map, Value};

use super::matching::bound_value;
use super::{
    Filter, Op, Search, Sort, OPERATORS, SEARCH_DEFAULT_PAGE_LIMIT, SEARCH_MAX_PAGE_LIMIT,
    SEARCH_MAX_PAGE_WINDOW,
};

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
        let page_limit = page_limit(object, &mut errors);
        let page = page(object, &mut errors);
        let search_after = search_after(object, &mut errors);
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
        let sort = sort(object, &mut errors);
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
                visible_until: None,
            })
        } else {
            Err(errors)
        }
    }
}

/// `pageLimit`: 1 to [`SEARCH_MAX_PAGE_LIMIT`], by default
/// [`SEARCH_DEFAULT_PAGE_LIMIT`] (also what an invalid one is taken as, to
/// go on checking the rest of the body).
fn page_limit(object: &Map<String, Value>, errors: &mut Vec<String>) -> u64 {
    match object.get("pageLimit") {
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
    }
}

/// `page`: 1 or more, if given.
fn page(object: &Map<String, Value>, errors: &mut Vec<String>) -> Option<u64> {
    match object.get("page") {
        None | Some(Value::Null) => None,
        Some(v) => match as_index(v) {
            Some(n) if n >= 1 => Some(n),
            _ => {
                errors.push("page must not be less than 1".into());
                None
            }
        },
    }
}

/// `searchAfter`: a non-empty array (its length is checked against the
/// sort once that is known), if given.
fn search_after(object: &Map<String, Value>, errors: &mut Vec<String>) -> Option<Vec<Value>> {
    match object.get("searchAfter") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) if !items.is_empty() => Some(items.clone()),
        Some(_) => {
            errors.push("searchAfter must be a non-empty array".into());
            None
        }
    }
}

/// `sort`: a non-empty array of `{field, direction}` (`asc` by default);
/// `dateAdded` descending when absent.
fn sort(object: &Map<String, Value>, errors: &mut Vec<String>) -> Vec<Sort> {
    match object.get("sort") {
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
    }
}
