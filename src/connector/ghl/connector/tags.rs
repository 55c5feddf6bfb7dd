//! A contact's tags written as deltas. GHL field notes, "Tags": sending
//! `tags` in `POST /contacts/`, `PUT /contacts/{id}` or `POST
//! /contacts/upsert` replaces the contact's whole tag list, while `POST
//! /contacts/{id}/tags` adds and `DELETE /contacts/{id}/tags` removes.
//! A PUT of the merged list would wipe a tag a user added in GHL between
//! the writer's read and its write, so an update never sends `tags` in
//! its PUT: the change goes as the tags to add and the tags to remove,
//! computed against what the write's decision saw the contact hold
//! ([`Patch::before`](crate::connector::Patch)).

use serde_json::{Map, Value};

use crate::connector::Patch;

/// A contact patch split into what `PUT /contacts/{id}` sends and the tag
/// deltas.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Split {
    /// The fields for the PUT: the patch without `tags`.
    pub put: Map<String, Value>,
    /// For `POST /contacts/{id}/tags`: wanted, and not held before.
    pub add: Vec<String>,
    /// For `DELETE /contacts/{id}/tags`: held before, and not wanted.
    pub remove: Vec<String>,
}

/// Splits `patch` (see the module docs). Tags are compared as GHL stores
/// them (trimmed, lower-cased). A tag is removed only when `before` holds
/// it: with `tags` absent from `before` (unknown) or unreadable there,
/// every wanted tag is added and none removed, so a tag nobody saw is
/// never taken off. `Err`: the patch's `tags` is not a list of strings.
pub(super) fn split(patch: &Patch) -> Result<Split, String> {
    let mut put = patch.fields.clone();
    let Some(wanted) = put.remove("tags") else {
        return Ok(Split {
            put,
            ..Split::default()
        });
    };
    let wanted = tag_list(&wanted)
        .ok_or_else(|| format!("`tags` must be a list of strings, not {wanted}"))?;
    let before = patch
        .before
        .get("tags")
        .and_then(tag_list)
        .unwrap_or_default();
    let mut add: Vec<String> = Vec::new();
    for tag in &wanted {
        if !key(tag).is_empty() && !holds(&before, tag) && !holds(&add, tag) {
            add.push(tag.clone());
        }
    }
    let mut remove: Vec<String> = Vec::new();
    for tag in &before {
        if !key(tag).is_empty() && !holds(&wanted, tag) && !holds(&remove, tag) {
            remove.push(tag.clone());
        }
    }
    Ok(Split { put, add, remove })
}

/// A native `tags` value as a list: `null` is none, a string is one.
pub(super) fn tag_list(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Null => Some(Vec::new()),
        Value::String(tag) => Some(vec![tag.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

fn key(tag: &str) -> String {
    tag.trim().to_lowercase()
}

fn holds(list: &[String], tag: &str) -> bool {
    list.iter().any(|held| key(held) == key(tag))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patch(fields: Value, before: Value) -> Patch {
        Patch {
            fields: fields.as_object().cloned().unwrap(),
            before: before.as_object().cloned().unwrap(),
        }
    }

    #[test]
    fn the_delta_is_against_before_and_tags_leave_the_put() {
        let split = split(&patch(
            json!({"tags": ["vip", "gold"], "firstName": "Ada"}),
            json!({"tags": ["gold", "lead"], "firstName": "Ad"}),
        ))
        .unwrap();
        assert_eq!(
            split.put,
            json!({"firstName": "Ada"}).as_object().cloned().unwrap()
        );
        assert_eq!(split.add, ["vip"]);
        assert_eq!(split.remove, ["lead"]);
    }

    #[test]
    fn unknown_before_adds_and_never_removes() {
        let split = split(&patch(json!({"tags": ["vip", "VIP "]}), json!({}))).unwrap();
        assert!(split.put.is_empty());
        assert_eq!(split.add, ["vip"]);
        assert!(split.remove.is_empty());
    }

    #[test]
    fn cleared_tags_remove_what_was_seen_only() {
        let split = split(&patch(json!({"tags": null}), json!({"tags": ["Gold"]}))).unwrap();
        assert!(split.add.is_empty());
        assert_eq!(split.remove, ["Gold"]);
    }

    #[test]
    fn a_patch_without_tags_is_all_put() {
        let split = split(&patch(json!({"email": "a@b.c"}), json!({}))).unwrap();
        assert_eq!(split.put.len(), 1);
        assert!(split.add.is_empty() && split.remove.is_empty());
    }

    #[test]
    fn tags_that_are_not_strings_are_refused() {
        assert!(split(&patch(json!({"tags": [1]}), json!({}))).is_err());
    }
}
