use serde_json::{json, Map, Value};

use super::*;

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

fn contact_field(name: &str, ghl: Binding, app: Binding, normalize: Vec<Normalize>) -> FieldMap {
    FieldMap {
        entity: EntityKind::Contact,
        name: name.into(),
        flow: Flow::Both,
        ghl: Some(ghl),
        app: Some(app),
        normalize,
        match_key: None,
        policy: None,
    }
}

fn with_format(pointer: &str, format: Format) -> Binding {
    Binding {
        format,
        ..Binding::pointer(pointer)
    }
}

fn contacts() -> PairMap {
    PairMap {
        fields: vec![
            FieldMap {
                match_key: Some(MatchKey::Email),
                ..contact_field(
                    "email",
                    Binding::pointer("/email"),
                    Binding::pointer("/email_address"),
                    vec![Normalize::Trim, Normalize::Lowercase],
                )
            },
            contact_field(
                "phone",
                Binding::pointer("/phone"),
                Binding::pointer("/mobile"),
                vec![Normalize::E164 {
                    default_region: "US".into(),
                }],
            ),
            contact_field(
                "name",
                Binding {
                    source: Source::Join(vec!["/firstName".into(), "/lastName".into()]),
                    format: Format::Plain,
                    default: None,
                },
                Binding::pointer("/full_name"),
                vec![Normalize::Trim],
            ),
            contact_field(
                "tags",
                Binding::pointer("/tags"),
                with_format("/labels", Format::Delimited(",".into())),
                vec![Normalize::Set],
            ),
            contact_field(
                "since",
                with_format("/dateAdded", Format::Timestamp(TimeFormat::Rfc3339)),
                with_format("/created_at", Format::Timestamp(TimeFormat::EpochMillis)),
                vec![],
            ),
            contact_field(
                "tier",
                Binding {
                    source: Source::CustomField("cf-tier".into()),
                    format: Format::Plain,
                    default: None,
                },
                with_format(
                    "/tier",
                    Format::Values(vec![(json!(1), json!("gold")), (json!(2), json!("silver"))]),
                ),
                vec![],
            ),
            FieldMap {
                flow: Flow::ToApp,
                ..contact_field(
                    "origin",
                    Binding::pointer("/source"),
                    Binding {
                        source: Source::Constant {
                            pointer: "/origin".into(),
                            value: json!("ghl"),
                        },
                        format: Format::Plain,
                        default: None,
                    },
                    vec![],
                )
            },
        ],
    }
}

#[test]
fn two_spellings_of_the_same_contact_have_one_canonical_form() {
    let map = contacts();
    let ghl = object(json!({
        "email": " Ada@Example.COM ",
        "phone": "+1 415-555-0100",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "tags": ["vip", "2024", "vip"],
        "dateAdded": "2026-01-01T00:00:00Z",
        "customFields": [{"id": "cf-tier", "value": "gold"}],
        "source": "form",
        "unmapped": true
    }));
    let app = object(json!({
        "email_address": "ada@example.com",
        "mobile": "(415) 555-0100",
        "full_name": "Ada Lovelace",
        "labels": "2024, vip",
        "created_at": 1767225600000i64,
        "tier": 1
    }));
    let mut from_ghl = map
        .to_canonical(EntityKind::Contact, Side::Ghl, &ghl)
        .unwrap();
    let mut from_app = map
        .to_canonical(EntityKind::Contact, Side::App, &app)
        .unwrap();
    assert_eq!(from_ghl["phone"], "+14155550100");
    assert_eq!(from_ghl["since"], "2026-01-01T00:00:00.000Z");
    assert_eq!(from_ghl["tags"], json!(["2024", "vip"]));
    // `origin` flows GHL → app only, so the app side never reports it.
    assert_eq!(
        from_ghl.remove_entry("origin"),
        Some(("origin".into(), json!("form")))
    );
    assert_eq!(from_app.remove("origin"), None);
    assert_eq!(from_ghl, from_app, "no echo between equal contacts");
}

#[test]
fn writing_back_uses_each_sides_own_spelling() {
    let map = contacts();
    let changes: Canonical = [
        ("name", json!("Grace Brewster Hopper")),
        ("tags", json!(["navy", "vip"])),
        ("since", json!("2026-01-01T00:00:00.000Z")),
        ("tier", json!("silver")),
        ("origin", json!("form")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let app = map
        .to_native(EntityKind::Contact, Side::App, &changes)
        .unwrap();
    assert_eq!(
        Value::Object(app),
        json!({
            "full_name": "Grace Brewster Hopper",
            "labels": "navy,vip",
            "created_at": 1767225600000i64,
            "tier": 2,
            "origin": "ghl"
        })
    );
    let ghl = map
        .to_native(EntityKind::Contact, Side::Ghl, &changes)
        .unwrap();
    assert_eq!(ghl["firstName"], "Grace Brewster");
    assert_eq!(ghl["lastName"], "Hopper");
    assert_eq!(
        ghl["customFields"],
        json!([{"id": "cf-tier", "field_value": "silver"}])
    );
    assert!(!ghl.contains_key("source"), "origin does not flow to GHL");
}

#[test]
fn clearing_a_field_writes_null() {
    let map = contacts();
    let changes: Canonical = [("phone".to_owned(), Value::Null)].into_iter().collect();
    let app = map
        .to_native(EntityKind::Contact, Side::App, &changes)
        .unwrap();
    assert_eq!(app["mobile"], Value::Null);
}

/// Valid numbers from outside North America, written with their country
/// code, come out with every digit. `phonenumber` 0.3 dropped the "1" of
/// German mobile numbers (+49 151… became +49 51…) and refused current
/// Chinese and Brazilian mobile numbers; `rlibphonenumber` follows
/// libphonenumber exactly.
#[test]
fn e164_keeps_every_digit_of_numbers_from_any_region() {
    let us = Normalize::E164 {
        default_region: "US".into(),
    };
    for (written, e164) in [
        ("+49 151 23456789", "+4915123456789"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("+55 11 91234-5678", "+5511912345678"),
        ("+44 20 7183 8750", "+442071838750"),
        ("(415) 555-0100", "+14155550100"),
        ("tel:+1-415-555-0100", "+14155550100"),
    ] {
        assert_eq!(us.apply(json!(written)), Ok(json!(e164)), "{written}");
    }
    let de = Normalize::E164 {
        default_region: "DE".into(),
    };
    assert_eq!(
        de.apply(json!("0151 23456789")),
        Ok(json!("+4915123456789"))
    );
    for invalid in ["+1 999 555 0000", "12", "not a phone"] {
        assert!(us.apply(json!(invalid)).is_err(), "{invalid}");
    }
}

#[test]
fn a_value_that_does_not_fit_names_the_field_and_side() {
    let map = contacts();
    let bad = object(json!({"mobile": "not a phone"}));
    let error = map
        .to_canonical(EntityKind::Contact, Side::App, &bad)
        .unwrap_err();
    assert_eq!(error.field, "phone");
    assert_eq!(error.role, "app");
    assert!(
        error
            .to_string()
            .contains("contact field `phone` on the app side"),
        "{error}"
    );

    let bad = object(json!({"tier": 7}));
    let error = map
        .to_canonical(EntityKind::Contact, Side::App, &bad)
        .unwrap_err();
    assert!(error.message.contains("not in the value table"), "{error}");
}

#[test]
fn defaults_fill_absent_values() {
    let map = PairMap {
        fields: vec![FieldMap {
            entity: EntityKind::Task,
            name: "done".into(),
            flow: Flow::Both,
            ghl: Some(Binding {
                default: Some(json!(false)),
                ..Binding::pointer("/completed")
            }),
            app: Some(Binding::pointer("/done")),
            normalize: vec![],
            match_key: None,
            policy: None,
        }],
    };
    let canonical = map
        .to_canonical(EntityKind::Task, Side::Ghl, &Map::new())
        .unwrap();
    assert_eq!(canonical["done"], false);
}

#[test]
fn nested_pointers_are_created_on_write() {
    let mut target = Map::new();
    set_pointer(&mut target, "/address/city", json!("Boston"));
    set_pointer(&mut target, "/a~1b", json!(1));
    assert_eq!(
        Value::Object(target),
        json!({"address": {"city": "Boston"}, "a/b": 1})
    );
}

#[test]
fn lowercase_and_trim_apply_to_each_item_of_a_list() {
    // GHL lowercases tags: `lowercase` before `set` makes "VIP" on the app
    // side and "vip" in GHL one value, so the write of one never comes back
    // as a change of the other.
    let tags = serde_json::json!([" VIP ", "vip", "Gold", 3]);
    let trimmed = Normalize::Trim.apply(tags).unwrap();
    let lowered = Normalize::Lowercase.apply(trimmed).unwrap();
    assert_eq!(lowered, serde_json::json!(["vip", "vip", "gold", 3]));
    let set = Normalize::Set
        .apply(Value::Array(lowered.as_array().unwrap()[..3].to_vec()))
        .unwrap();
    assert_eq!(set, serde_json::json!(["gold", "vip"]));
}
