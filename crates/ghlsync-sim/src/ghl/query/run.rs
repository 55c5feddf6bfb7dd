//! Running a parsed search: the matching contacts in sort order, one page
//! of them (by `page` or `searchAfter`), each with the `searchAfter` that
//! continues after it.

use std::cmp::Ordering;

use serde_json::{json, Value};

use super::matching::{matches, matches_query};
use super::{Search, Sort};
use crate::ghl::model::{id_of, parse_time_ms, Contact, Location};

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

impl Search {
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
        self.visible_until
            .is_none_or(|until| contact.updated_ms <= until)
            && self.filters.iter().all(|f| matches(contact, f))
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
