//! Unit tests of validation, the clock and change-feed paging.

use super::*;
use rand::SeedableRng;

fn db() -> Db {
    Db::new(ChaCha8Rng::seed_from_u64(7))
}

#[test]
fn validation_reports_every_problem() {
    let errors = validate_contact(
        &json!({"first_name": 3, "email_address": "nope", "mobile": "555", "labels": [1, "a"]}),
        true,
    )
    .unwrap_err();
    assert_eq!(errors.len(), 4, "{errors:?}");
    let ok = validate_contact(
        &json!({"mobile": "+1 (512) 555-0100", "email_address": " A@B.co ", "labels": ["x", "x", " "], "id": "ignored", "extra": {"k": 1}}),
        true,
    )
    .unwrap();
    assert_eq!(ok["mobile"], "+15125550100");
    assert_eq!(ok["email_address"], "A@B.co");
    assert_eq!(ok["labels"], json!(["x"]));
    assert_eq!(ok["extra"], json!({"k": 1}));
    assert!(!ok.contains_key("id"));
    assert!(validate_contact(&json!({"labels": ["a"]}), true).is_err());
    assert!(validate_contact(&json!({"labels": ["a"]}), false).is_ok());
    assert!(validate_task(&json!({"name": "x", "foo": 1}), true).is_err());
    assert!(validate_task(&json!({"due_on": "tomorrow"}), false).is_err());
    assert_eq!(
        validate_task(&json!({"name": "x"}), true).unwrap()["done"],
        false
    );
    assert!(validate_note(&json!({}), true).is_err());
}

#[test]
fn the_clock_never_repeats_and_pages_follow_it() {
    let mut db = db();
    let mut last = 0;
    for i in 0..50 {
        let c = db
            .create_contact(
                &validate_contact(&json!({"first_name": format!("n{i}")}), true).unwrap(),
            )
            .unwrap();
        let at = updated_at(&c);
        assert!(at > last);
        last = at;
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = db.contacts.page(
            &FeedQuery {
                since: None,
                after: after.clone(),
                limit: 7,
            },
            |_| true,
        );
        for r in &page.items {
            seen.push(str_field(r, "id").unwrap().to_string());
            after = Some((updated_at(r), str_field(r, "id").unwrap().to_string()));
        }
        if !page.more {
            break;
        }
    }
    assert_eq!(seen.len(), 50);
}
