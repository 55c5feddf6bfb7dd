use super::*;
use serde_json::json;

#[test]
fn trimming_keeps_listed_fields_and_trims_nested_objects() {
    let record = json!({
        "id": "c", "contactName": "x", "dateUpdated": "2021-07-02T05:18:26.704Z",
        "customFields": [{"id": "f", "value": "v", "extra": 1}],
        "dndSettings": {"Email": {"status": "active", "why": "?"}, "Fax": {}},
    });
    let record = record.as_object().unwrap();
    let strict = RecordShapes::SpecStrict.apply(record.clone(), &CONTACT_BY_ID);
    assert_eq!(
        Value::Object(strict),
        json!({
            "id": "c", "dateUpdated": "2021-07-02T05:18:26.704Z",
            "customFields": [{"id": "f", "value": "v"}],
            "dndSettings": {"Email": {"status": "active"}},
        })
    );
    assert_eq!(
        &RecordShapes::Generous.apply(record.clone(), &CONTACT_BY_ID),
        record
    );
    let task = json!({"id": "t", "dateAdded": "a", "dateUpdated": "b", "priority": 1});
    assert_eq!(
        Value::Object(TASK.trim(task.as_object().unwrap())),
        json!({"id": "t"})
    );
}

#[test]
fn listed_shapes_are_the_search_schema_and_the_contacts_own_fields() {
    let mut listed: Vec<&str> = CONTACTS_SEARCH_SCHEMA_FIELDS.to_vec();
    for field in CONTACT_BY_ID_SCHEMA_FIELDS {
        if !listed.contains(field) {
            listed.push(field);
        }
    }
    assert!(listed.contains(&"dateUpdated"));
    assert_eq!(LISTED_CONTACT_FIELDS, listed.as_slice());
}
