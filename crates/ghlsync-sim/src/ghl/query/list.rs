//! The two listings besides search: the deprecated `GET /contacts/`
//! (cursor paging by `dateAdded`) and `GET /contacts/business/{id}`
//! (`skip` / `limit`), plus every contact of a location for the handle.

use serde_json::{json, Map, Value};

use super::matching::matches_query;
use crate::ghl::model::{id_of, Contact, Location, Record};

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
