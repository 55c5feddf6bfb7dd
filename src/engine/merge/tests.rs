use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::mapping::{Binding, Flow, Normalize};

fn field(name: &str, flow: Flow, policy: Option<Policy>) -> FieldMap {
    FieldMap {
        entity: EntityKind::Contact,
        name: name.into(),
        flow,
        ghl: Some(Binding::pointer(&format!("/{name}"))),
        app: Some(Binding::pointer(&format!("/{name}"))),
        normalize: if policy == Some(Policy::Union) {
            vec![Normalize::Set]
        } else {
            vec![]
        },
        match_key: None,
        policy,
    }
}

fn map() -> PairMap {
    PairMap {
        fields: vec![
            field("email", Flow::Both, None),
            field("phone", Flow::Both, Some(Policy::GhlWins)),
            field("company", Flow::Both, Some(Policy::Manual)),
            field("tags", Flow::Both, Some(Policy::Union)),
            field("source", Flow::ToApp, None),
        ],
    }
}

fn canonical(value: serde_json::Value) -> Canonical {
    value.as_object().unwrap().clone().into_iter().collect()
}

fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, second).unwrap()
}

/// Merges a record both sides hold, the app's copy updated last.
fn merge_both(default_policy: Policy, base: &Canonical, ghl: &Canonical, app: &Canonical) -> Merge {
    merge(
        &map(),
        EntityKind::Contact,
        default_policy,
        Some(base),
        PerSide::new(Some(state(ghl, 1)), Some(state(app, 2))),
    )
}

fn state(canonical: &Canonical, second: u32) -> SideState<'_> {
    SideState {
        canonical,
        updated_at: at(second),
    }
}

#[test]
fn an_echo_of_the_base_is_no_change() {
    let base = canonical(json!({"email": "a@x.com", "tags": ["vip"]}));
    let merge = merge_both(Policy::Newest, &base, &base, &base);
    assert!(merge.is_noop(), "{merge:?}");
    assert!(merge.changed.is_empty());
    assert_eq!(merge.merged, base);
}

#[test]
fn edits_to_different_fields_on_each_side_both_survive() {
    let base = canonical(json!({"email": "a@x.com", "phone": "+1", "tags": ["vip"]}));
    let ghl = canonical(json!({"email": "new@x.com", "phone": "+1", "tags": ["vip"]}));
    let app = canonical(json!({"email": "a@x.com", "phone": "+2", "tags": ["vip"]}));
    let merge = merge_both(Policy::Newest, &base, &ghl, &app);
    assert_eq!(
        merge.merged,
        canonical(json!({"email": "new@x.com", "phone": "+2", "tags": ["vip"]}))
    );
    assert_eq!(merge.writes.app, canonical(json!({"email": "new@x.com"})));
    assert_eq!(merge.writes.ghl, canonical(json!({"phone": "+2"})));
}

#[test]
fn the_same_field_is_settled_by_its_policy() {
    let base = canonical(json!({"email": "a@x.com", "phone": "+1"}));
    let ghl = canonical(json!({"email": "g@x.com", "phone": "+10"}));
    let app = canonical(json!({"email": "p@x.com", "phone": "+20"}));
    // email: default newest (app is newer); phone: ghl_wins.
    let merge = merge_both(Policy::Newest, &base, &ghl, &app);
    assert_eq!(merge.merged["email"], "p@x.com");
    assert_eq!(merge.merged["phone"], "+10");
    assert_eq!(merge.writes.ghl, canonical(json!({"email": "p@x.com"})));
    assert_eq!(merge.writes.app, canonical(json!({"phone": "+10"})));
}

#[test]
fn manual_parks_the_field_and_writes_neither_side() {
    let base = canonical(json!({"company": "Acme"}));
    let ghl = canonical(json!({"company": "Acme Inc"}));
    let app = canonical(json!({"company": "ACME Corp"}));
    let merge = merge_both(Policy::Newest, &base, &ghl, &app);
    assert!(merge.writes.ghl.is_empty() && merge.writes.app.is_empty());
    assert_eq!(
        merge.conflicts,
        vec![FieldConflict {
            field: "company".into(),
            base: Some(json!("Acme")),
            ghl: Some(json!("Acme Inc")),
            app: Some(json!("ACME Corp")),
        }]
    );
    assert_eq!(
        merge.merged["company"], "Acme",
        "the base stays until resolved"
    );
}

#[test]
fn union_keeps_additions_from_both_and_removals_from_either() {
    let base = canonical(json!({"tags": ["a", "b", "c"]}));
    let ghl = canonical(json!({"tags": ["a", "b", "g"]}));
    let app = canonical(json!({"tags": ["b", "c", "p"]}));
    let merge = merge_both(Policy::Newest, &base, &ghl, &app);
    assert_eq!(merge.merged["tags"], json!(["b", "g", "p"]));
    assert_eq!(merge.writes.ghl["tags"], json!(["b", "g", "p"]));
    assert_eq!(merge.writes.app["tags"], json!(["b", "g", "p"]));
}

#[test]
fn converged_edits_need_no_write() {
    let base = canonical(json!({"email": "a@x.com"}));
    let both = canonical(json!({"email": "same@x.com"}));
    let merge = merge_both(Policy::Manual, &base, &both, &both);
    assert!(merge.is_noop());
    assert_eq!(merge.changed, vec!["email".to_owned()]);
}

#[test]
fn a_one_way_field_never_flows_back() {
    let base = canonical(json!({"source": "form"}));
    let ghl = canonical(json!({"source": "form"}));
    let app = canonical(json!({"source": "edited in app"}));
    let merge = merge_both(Policy::Newest, &base, &ghl, &app);
    assert!(
        merge.writes.ghl.is_empty(),
        "to_app fields are never written to GHL"
    );
    // ...and GHL's value is reasserted on the app.
    assert_eq!(merge.writes.app, canonical(json!({"source": "form"})));
}

#[test]
fn a_cleared_field_is_cleared_on_the_other_side() {
    let base = canonical(json!({"email": "a@x.com"}));
    let ghl = canonical(json!({}));
    let merge = merge_both(Policy::Newest, &base, &ghl, &base);
    assert_eq!(merge.writes.app, canonical(json!({"email": null})));
    assert!(!merge.merged.contains_key("email"));
}

#[test]
fn a_new_record_is_created_with_everything_it_should_carry() {
    let ghl = canonical(json!({"email": "n@x.com", "source": "ads", "tags": ["t"]}));
    let merge = merge(
        &map(),
        EntityKind::Contact,
        Policy::Newest,
        None,
        PerSide::new(Some(state(&ghl, 1)), None),
    );
    assert_eq!(merge.writes.app, ghl);
    assert!(merge.writes.ghl.is_empty());
}
