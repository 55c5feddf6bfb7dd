//! `[pairs.<name>]`: which two sides are kept in sync, how their fields
//! map onto canonical fields (`[[pairs.<name>.fields]]`), and how
//! conflicts and deletes are settled.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::reader::{Got, Table};
use super::sides::{SideKind, SideSettings};
use crate::domain::{EntityKind, MatchKey, PerSide, Side};

use crate::mapping::{
    phone_region, Binding, DeletePolicy, FieldMap, Flow, Format, Normalize, PairMap, Policy,
    Source, TimeFormat,
};

/// Two sides kept in sync. The `ghl` role is always a GoHighLevel location;
/// the `app` role is the operator's app or a second location. Policy names
/// such as `ghl_wins` refer to these roles.
#[derive(Debug, Clone)]
pub struct PairSettings {
    pub name: String,
    pub ghl: String,
    pub app: String,
    /// The field maps, per entity.
    pub map: PairMap,
    /// The policy of fields that name none.
    pub default_policy: Policy,
    pub deletes: DeletePolicy,
    /// Which GHL contacts take part (tasks, notes and appointments follow
    /// their contact).
    pub filter: ContactFilter,
}

impl PairSettings {
    /// The configured name (`[sides.<name>]`) of the pair's side in role
    /// `side`.
    pub fn side_name(&self, side: Side) -> &str {
        PerSide::new(&self.ghl, &self.app)[side]
    }
}

/// `[pairs.<name>.filter]`: only GHL contacts of these businesses and/or
/// with (or without) these tags are synced. Empty lists filter nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactFilter {
    /// `businessId` must be one of these.
    pub businesses: Vec<String>,
    /// The contact must carry at least one of these tags.
    pub tags_any: Vec<String>,
    /// The contact must carry none of these tags.
    pub tags_none: Vec<String>,
}

impl ContactFilter {
    pub fn is_empty(&self) -> bool {
        self.businesses.is_empty() && self.tags_any.is_empty() && self.tags_none.is_empty()
    }

    /// Whether a native GHL contact passes. Tags compare case-insensitively,
    /// as GHL stores them lowercased.
    pub fn admits(&self, ghl_contact: &serde_json::Map<String, Value>) -> bool {
        let business = ghl_contact.get("businessId").and_then(Value::as_str);
        if !self.businesses.is_empty()
            && !business.is_some_and(|b| self.businesses.iter().any(|x| x == b))
        {
            return false;
        }
        let tags: Vec<String> = ghl_contact
            .get("tags")
            .and_then(Value::as_array)
            .map(|tags| {
                tags.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_lowercase)
                    .collect()
            })
            .unwrap_or_default();
        let has = |tag: &String| tags.contains(&tag.to_lowercase());
        (self.tags_any.is_empty() || self.tags_any.iter().any(has))
            && !self.tags_none.iter().any(has)
    }
}

fn read_filter(pair: &mut Table<'_>) -> Option<ContactFilter> {
    let mut table = match pair.table("filter") {
        Got::Value(table) => table,
        Got::Absent => return Some(ContactFilter::default()),
        Got::Invalid => return None,
    };
    let businesses = table.string_list("businesses").with_default(Vec::new);
    let tags_any = table.string_list("tags_any").with_default(Vec::new);
    let tags_none = table.string_list("tags_none").with_default(Vec::new);
    table.finish();
    Some(ContactFilter {
        businesses: businesses?,
        tags_any: tags_any?,
        tags_none: tags_none?,
    })
}

pub(crate) fn read_pairs(
    root: &mut Table<'_>,
    sides: &BTreeMap<String, Option<SideSettings>>,
) -> BTreeMap<String, PairSettings> {
    let mut pairs = BTreeMap::new();
    for (name, mut table) in root.named_tables("pairs") {
        let ghl = table.non_empty("ghl");
        let ghl = table.required(
            "ghl",
            ghl,
            "the name of a `[sides.<name>]` with kind = \"ghl\"",
        );
        let app = table.non_empty("app");
        let app = table.required("app", app, "the name of the other `[sides.<name>]`");
        if let Some(ghl) = &ghl {
            match sides.get(ghl) {
                Some(Some(SideSettings {
                    kind: SideKind::Ghl(_),
                    ..
                }))
                | Some(None) => {}
                Some(Some(side)) => table.report(
                    "ghl",
                    Some(ghl.clone()),
                    format!(
                        "side `{ghl}` has kind \"{}\"; the ghl role needs kind = \"ghl\"",
                        side.kind.name()
                    ),
                ),
                None => table.report("ghl", Some(ghl.clone()), unknown_side(sides)),
            }
        }
        if let Some(app) = &app {
            if !sides.contains_key(app) {
                table.report("app", Some(app.clone()), unknown_side(sides));
            } else if ghl.as_deref() == Some(app.as_str()) {
                table.report(
                    "app",
                    Some(app.clone()),
                    "a side cannot be synced with itself",
                );
            }
        }
        let default_policy = policy(&mut table, "default_policy").with_default(|| Policy::Newest);
        let deletes = read_deletes(&mut table);
        let region = table
            .non_empty("phone_region")
            .with_default(|| "US".to_owned());
        if let Some(unknown) = region.as_ref().filter(|r| phone_region(r).is_none()) {
            table.report(
                "phone_region",
                Some(unknown.clone()),
                "expected an ISO 3166 region code such as \"US\" or \"GB\"",
            );
        }
        let map = read_fields(&mut table, region.as_deref().unwrap_or("US"));
        let filter = read_filter(&mut table);
        if let (Some(DeletePolicy::Tag(_)), Some(map)) = (&deletes, &map) {
            if map.field(EntityKind::Contact, "tags").is_none() {
                table.report(
                    "deletes",
                    Some("tag".into()),
                    "needs a contact field named `tags` in [[pairs.<name>.fields]], where the tag is written",
                );
            }
        }
        table.finish();
        if let (
            Some(ghl),
            Some(app),
            Some(default_policy),
            Some(deletes),
            Some(map),
            Some(filter),
        ) = (ghl, app, default_policy, deletes, map, filter)
        {
            pairs.insert(
                name.clone(),
                PairSettings {
                    name,
                    ghl,
                    app,
                    map,
                    default_policy,
                    deletes,
                    filter,
                },
            );
        }
    }
    pairs
}

fn unknown_side(sides: &BTreeMap<String, Option<SideSettings>>) -> String {
    if sides.is_empty() {
        "no such side: no `[sides.<name>]` is configured".to_owned()
    } else {
        let names: Vec<&str> = sides.keys().map(String::as_str).collect();
        format!("no such side; configured sides: {}", names.join(", "))
    }
}

fn policy(table: &mut Table<'_>, key: &'static str) -> Got<Policy> {
    table
        .one_of(key, &Policy::NAMES)
        .map(|name| Policy::parse(name).expect("a listed policy"))
}

fn read_deletes(table: &mut Table<'_>) -> Option<DeletePolicy> {
    let kind = table
        .one_of("deletes", &["propagate", "ignore", "tag"])
        .with_default(|| "propagate")?;
    let tag = table.non_empty("delete_tag").optional();
    match (kind, tag) {
        ("tag", Some(tag)) => Some(DeletePolicy::Tag(tag)),
        ("tag", None) => {
            table.report(
                "deletes",
                Some("tag".into()),
                "needs `delete_tag`, the tag to put on the other side's record",
            );
            None
        }
        ("ignore", _) => Some(DeletePolicy::Ignore),
        _ => Some(DeletePolicy::Propagate),
    }
}

/// `[[pairs.<name>.fields]]`, validated as a whole: unique names per
/// entity, bindings for the sides a field flows between, one field per
/// match key.
fn read_fields(pair: &mut Table<'_>, region: &str) -> Option<PairMap> {
    let mut fields = Vec::new();
    let mut valid = true;
    let mut names = BTreeSet::new();
    let mut match_keys = BTreeSet::new();
    for mut table in pair.table_list("fields") {
        match read_field(&mut table, region) {
            Some(field) => {
                if !names.insert((field.entity, field.name.clone())) {
                    table.report(
                        "name",
                        Some(field.name.clone()),
                        format!("{} field `{}` is mapped twice", field.entity, field.name),
                    );
                    valid = false;
                }
                if let Some(key) = field.match_key {
                    if !match_keys.insert(key) {
                        table.report(
                            "match_key",
                            Some(key.to_string()),
                            "another field is already this match key",
                        );
                        valid = false;
                    }
                }
                fields.push(field);
            }
            None => valid = false,
        }
        table.finish();
    }
    valid.then_some(PairMap { fields })
}

fn read_field(table: &mut Table<'_>, region: &str) -> Option<FieldMap> {
    let entity = table
        .one_of("entity", &["contact", "task", "note", "appointment"])
        .map(|e| e.parse::<EntityKind>().expect("a listed entity"))
        .with_default(|| EntityKind::Contact);
    let name = table.non_empty("name");
    let name = table.required("name", name, "the canonical field name, such as \"email\"");
    let flow = table
        .one_of("flow", &["both", "to_app", "to_ghl"])
        .map(|f| match f {
            "to_app" => Flow::ToApp,
            "to_ghl" => Flow::ToGhl,
            _ => Flow::Both,
        })
        .with_default(|| Flow::Both);
    let ghl = binding(table, "ghl");
    let app = binding(table, "app");
    let normalize = normalizers(table, region);
    let match_key = table
        .one_of("match_key", &["email", "phone"])
        .map(|k| {
            if k == "email" {
                MatchKey::Email
            } else {
                MatchKey::Phone
            }
        })
        .optional();
    let policy = policy(table, "policy").optional();
    let (entity, name, flow, ghl, app, normalize) = (entity?, name?, flow?, ghl?, app?, normalize?);

    let mut valid = true;
    // Whatever the flow, a field is read on one side and written on the
    // other, so both sides say where they hold it.
    for (role, bound) in [("ghl", ghl.is_some()), ("app", app.is_some())] {
        if !bound {
            table.report(
                role,
                None,
                format!("missing: where the {role} side holds `{name}` (a JSON pointer such as \"/{name}\", or a table)"),
            );
            valid = false;
        }
    }
    let reads_constant = |binding: &Option<Binding>| {
        matches!(
            binding,
            Some(Binding {
                source: Source::Constant { .. },
                ..
            })
        )
    };
    if (flow.reads_from(crate::domain::Side::Ghl) && reads_constant(&ghl))
        || (flow.reads_from(crate::domain::Side::App) && reads_constant(&app))
    {
        table.report("flow", None, "a constant is only written, never read: make the field flow toward the side that has the constant");
        valid = false;
    }
    if entity == EntityKind::Appointment && flow.writes_to(crate::domain::Side::Ghl) {
        table.report(
            "flow",
            None,
            "appointments are read-only on GHL: use flow = \"to_app\"",
        );
        valid = false;
    }
    if match_key.is_some() && entity != EntityKind::Contact {
        table.report("match_key", None, "only contact fields can be match keys");
        valid = false;
    }
    if policy == Some(Policy::Union) && !normalize.contains(&Normalize::Set) {
        table.report(
            "policy",
            Some("union".into()),
            "union merges lists: add \"set\" to `normalize`",
        );
        valid = false;
    }
    valid.then_some(FieldMap {
        entity,
        name,
        flow,
        ghl,
        app,
        normalize,
        match_key,
        policy,
    })
}

/// `ghl = "/email"`, or a table: `{ pointer | join | custom_field |
/// constant (+ pointer), format, delimiter, values, default }`.
/// `Some(None)` when absent, `None` when invalid.
fn binding(table: &mut Table<'_>, key: &'static str) -> Option<Option<Binding>> {
    if !table.is_table(key) {
        return match table.parse(
            key,
            "a JSON pointer such as \"/email\", or a table",
            parse_pointer,
        ) {
            Got::Value(pointer) => Some(Some(Binding::pointer(&pointer))),
            Got::Absent => Some(None),
            Got::Invalid => None,
        };
    }
    let Got::Value(mut spec) = table.table(key) else {
        return None;
    };
    let pointer = spec
        .parse(
            "pointer",
            "a JSON pointer such as \"/email\"",
            parse_pointer,
        )
        .optional();
    let join = spec.string_list("join").optional();
    let custom_field = spec.non_empty("custom_field").optional();
    let constant = spec.json("constant").optional();
    let source = match (pointer, join, custom_field, constant) {
        (pointer, None, None, Some(value)) => match pointer {
            Some(pointer) => Some(Source::Constant { pointer, value }),
            None => {
                spec.report_table("a constant needs `pointer`: where to write it");
                None
            }
        },
        (Some(pointer), None, None, None) => Some(Source::Pointer(pointer)),
        (None, Some(parts), None, None) => {
            let parsed: Result<Vec<String>, String> =
                parts.iter().map(|p| parse_pointer(p)).collect();
            match parsed {
                Ok(parts) if parts.len() >= 2 => Some(Source::Join(parts)),
                Ok(_) => {
                    spec.report(
                        "join",
                        None,
                        "join needs at least two pointers, such as [\"/firstName\", \"/lastName\"]",
                    );
                    None
                }
                Err(why) => {
                    spec.report("join", None, why);
                    None
                }
            }
        }
        (None, None, Some(id), None) => Some(Source::CustomField(id)),
        _ => {
            spec.report_table("set exactly one of `pointer`, `join`, `custom_field` or `constant` (with `pointer`)");
            None
        }
    };
    let format = format(&mut spec);
    let default = spec.json("default").optional();
    spec.finish();
    Some(Some(Binding {
        source: source?,
        format: format?,
        default,
    }))
}

fn format(spec: &mut Table<'_>) -> Option<Format> {
    const FORMATS: [&str; 7] = [
        "plain",
        "rfc3339",
        "epoch_seconds",
        "epoch_millis",
        "date",
        "delimited",
        "values",
    ];
    let delimiter = spec.string("delimiter").optional();
    let values = spec.json_entries("values");
    let values = match values {
        Got::Value(entries) => Some(entries),
        Got::Absent => None,
        Got::Invalid => return None,
    };
    let implied = if values.is_some() {
        "values"
    } else if delimiter.is_some() {
        "delimited"
    } else {
        "plain"
    };
    let name = spec.one_of("format", &FORMATS).with_default(|| implied)?;
    Some(match name {
        "rfc3339" => Format::Timestamp(TimeFormat::Rfc3339),
        "epoch_seconds" => Format::Timestamp(TimeFormat::EpochSeconds),
        "epoch_millis" => Format::Timestamp(TimeFormat::EpochMillis),
        "date" => Format::Date,
        "delimited" => Format::Delimited(delimiter.unwrap_or_else(|| ",".to_owned())),
        "values" => match values {
            // TOML keys are strings: "native value" = "canonical value".
            Some(entries) => Format::Values(
                entries
                    .into_iter()
                    .map(|(native, canonical)| (Value::String(native), canonical))
                    .collect(),
            ),
            None => {
                spec.report(
                    "format",
                    Some("values".into()),
                    "needs a `values` table: { \"native\" = \"canonical\" }",
                );
                return None;
            }
        },
        _ => Format::Plain,
    })
}

fn normalizers(table: &mut Table<'_>, region: &str) -> Option<Vec<Normalize>> {
    let names = match table.string_list("normalize") {
        Got::Value(names) => names,
        Got::Absent => return Some(Vec::new()),
        Got::Invalid => return None,
    };
    let mut out = Vec::new();
    for name in names {
        let normalize = match name.split_once(':') {
            None if name == "trim" => Normalize::Trim,
            None if name == "lowercase" => Normalize::Lowercase,
            None if name == "set" => Normalize::Set,
            None if name == "e164" => Normalize::E164 {
                default_region: region.to_owned(),
            },
            Some(("e164", region)) if phone_region(region).is_some() => Normalize::E164 {
                default_region: region.to_owned(),
            },
            _ => {
                table.report(
                    "normalize",
                    Some(name.clone()),
                    "expected \"trim\", \"lowercase\", \"set\", \"e164\" or \"e164:<ISO region>\" such as \"e164:GB\"",
                );
                return None;
            }
        };
        out.push(normalize);
    }
    Some(out)
}

/// An RFC 6901 pointer: empty, or `/`-separated tokens with `~0`/`~1`
/// as the only escapes.
fn parse_pointer(text: &str) -> Result<String, String> {
    let text = text.trim();
    if !text.is_empty() && !text.starts_with('/') {
        return Err("a JSON pointer starts with \"/\"".into());
    }
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err("`~` must be followed by 0 or 1".into());
        }
    }
    Ok(text.to_owned())
}
