//! `[sides.<name>.contacts]`, `.tasks` and `.notes`: how one kind of
//! record is reached, each endpoint template checked against what it may
//! and must contain.

use super::pagination::read_entity_pagination;
use super::{key_name, optional, pointer, pointer_or};
use crate::config::reader::{Got, Table};
use crate::connector::rest::spec::{
    EntityApi, JsonPointer, Template, TimestampFormat, CONTACT_ID, ID, VALUE,
};

/// Which table is being read: contacts, or a sub-resource of a contact.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Contacts,
    Child,
}

/// What an endpoint template must look like.
struct Rule {
    key: &'static str,
    methods: &'static [&'static str],
    needs: &'static [&'static str],
    allows: &'static [&'static str],
}

fn rules(kind: Kind) -> [Rule; 8] {
    let (item, collection): (&'static [&'static str], &'static [&'static str]) = match kind {
        Kind::Contacts => (&[ID], &[]),
        Kind::Child => (&[ID, CONTACT_ID], &[CONTACT_ID]),
    };
    [
        Rule {
            key: "list",
            methods: &["GET"],
            needs: &[],
            allows: &[],
        },
        Rule {
            key: "get",
            methods: &["GET"],
            needs: &[ID],
            allows: item,
        },
        Rule {
            key: "create",
            methods: &["POST", "PUT"],
            needs: &[],
            allows: collection,
        },
        Rule {
            key: "update",
            methods: &["PUT", "PATCH"],
            needs: &[ID],
            allows: item,
        },
        Rule {
            key: "delete",
            methods: &["DELETE"],
            needs: &[ID],
            allows: item,
        },
        Rule {
            key: "children",
            methods: &["GET"],
            needs: &[CONTACT_ID],
            allows: &[CONTACT_ID],
        },
        Rule {
            key: "lookup_email",
            methods: &["GET"],
            needs: &[VALUE],
            allows: &[VALUE],
        },
        Rule {
            key: "lookup_phone",
            methods: &["GET"],
            needs: &[VALUE],
            allows: &[VALUE],
        },
    ]
}

fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{{{i}}}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A template, checked against its rule: method, needed and allowed
/// placeholders.
fn template(table: &mut Table<'_>, rule: &Rule) -> Got<Template> {
    let got = table.parse(
        rule.key,
        "an endpoint template: METHOD and path, as in \"GET /contacts/{id}\"",
        Template::parse,
    );
    let Got::Value(template) = got else {
        return got;
    };
    let mut problems = Vec::new();
    if !rule.methods.contains(&template.method.as_str()) {
        problems.push(format!(
            "`{}` must use {}",
            rule.key,
            rule.methods.join(" or ")
        ));
    }
    for need in rule.needs {
        if !template.uses(need) {
            problems.push(format!("the path needs the placeholder `{{{need}}}`"));
        }
    }
    for used in template.placeholders() {
        if !rule.allows.contains(&used) {
            problems.push(if rule.allows.is_empty() {
                format!("`{{{used}}}` cannot be filled in here: this endpoint takes no placeholder")
            } else {
                format!(
                    "`{{{used}}}` cannot be filled in here (known: {})",
                    quoted(rule.allows)
                )
            });
        }
    }
    if problems.is_empty() {
        Got::Value(template)
    } else {
        table.report(rule.key, Some(template.text.clone()), problems.join("; "));
        Got::Invalid
    }
}

/// `[sides.<name>.<key>]`: `None` when invalid, `Some(None)` when absent.
pub(super) fn read_entity(
    side: &mut Table<'_>,
    key: &'static str,
    kind: Kind,
) -> Option<Option<Box<EntityApi>>> {
    let mut table = match side.table(key) {
        Got::Value(table) => table,
        Got::Absent => return Some(None),
        Got::Invalid => return None,
    };
    let read = read_entity_table(&mut table, kind);
    table.finish();
    read.map(|api| Some(Box::new(api)))
}

/// The endpoints of one entity table, each `None` when invalid and
/// `Some(None)` when not configured.
struct Endpoints {
    list: Option<Option<Template>>,
    get: Option<Option<Template>>,
    create: Option<Option<Template>>,
    update: Option<Option<Template>>,
    delete: Option<Option<Template>>,
    children: Option<Option<Template>>,
    lookup_email: Option<Option<Template>>,
    lookup_phone: Option<Option<Template>>,
}

/// How a single record travels in bodies: sent under `request_wrapper`,
/// read at `record_pointer`, both following `wrapper` unless set.
struct Envelope {
    request_wrapper: Option<String>,
    record_pointer: JsonPointer,
}

fn read_entity_table(table: &mut Table<'_>, kind: Kind) -> Option<EntityApi> {
    let endpoints = read_endpoints(table, kind);
    let (email_field, phone_field) = if kind == Kind::Contacts {
        (
            optional(key_name(table, "email_field")),
            optional(key_name(table, "phone_field")),
        )
    } else {
        (Some(None), Some(None))
    };
    let updated_since_param = optional(table.non_empty("updated_since_param"));
    if matches!(updated_since_param, Some(Some(_))) && matches!(endpoints.list, Some(None)) {
        table.report(
            "updated_since_param",
            None,
            "is a parameter of `list`, which is not set",
        );
    }
    let timestamp_format = table
        .one_of("timestamp_format", &TimestampFormat::NAMES)
        .map(|name| TimestampFormat::from_name(name).expect("listed name"))
        .with_default(TimestampFormat::default);
    let records_pointer = pointer_or(table, "records_pointer", "");
    let id_pointer = pointer_or(table, "id_pointer", "/id");
    let updated_at_pointer = pointer_or(table, "updated_at_pointer", "/updated_at");
    let parent_pointer = if kind == Kind::Child {
        let got = pointer(table, "parent_pointer");
        match (&got, parent_pointer_needed(&endpoints)) {
            (Got::Absent, Some(why)) => {
                table.report(
                    "parent_pointer",
                    None,
                    format!(
                        "missing required key: where a record names its contact, such as \"/contact_id\" ({why})"
                    ),
                );
                None
            }
            _ => optional(got),
        }
    } else {
        Some(None)
    };
    let envelope = read_envelope(table);
    let conflict_id_pointer = optional(pointer(table, "conflict_id_pointer"));
    let pagination = read_entity_pagination(table);
    if kind == Kind::Contacts
        && endpoints.list.as_ref().is_some_and(Option::is_none)
        && endpoints.get.as_ref().is_some_and(Option::is_none)
    {
        table.report_table(
            "contacts need at least `list` (such as \"GET /contacts\") or `get` (such as \"GET /contacts/{id}\")",
        );
    }

    let envelope = envelope?;
    Some(EntityApi {
        list: endpoints.list?,
        updated_since_param: updated_since_param?,
        timestamp_format: timestamp_format?,
        records_pointer: records_pointer?,
        id_pointer: id_pointer?,
        updated_at_pointer: updated_at_pointer?,
        parent_pointer: parent_pointer?,
        get: endpoints.get?,
        create: endpoints.create?,
        update: endpoints.update?,
        delete: endpoints.delete?,
        children: endpoints.children?,
        request_wrapper: envelope.request_wrapper,
        record_pointer: envelope.record_pointer,
        conflict_id_pointer: conflict_id_pointer?,
        lookup_email: endpoints.lookup_email?,
        lookup_phone: endpoints.lookup_phone?,
        email_field: email_field?,
        phone_field: phone_field?,
        pagination: pagination?,
    })
}

/// The endpoint templates, each checked against its rule; `children` is
/// required of a sub-resource, the lookups exist only for contacts.
fn read_endpoints(table: &mut Table<'_>, kind: Kind) -> Endpoints {
    let [list, get, create, update, delete, children, lookup_email, lookup_phone] = rules(kind);
    let list = optional(template(table, &list));
    let get = optional(template(table, &get));
    let create = optional(template(table, &create));
    let update = optional(template(table, &update));
    let delete = optional(template(table, &delete));
    let children = if kind == Kind::Child {
        let got = template(table, &children);
        required_of_child(
            table,
            got,
            "children",
            "missing required key: the listing of one contact's records, such as \"GET /contacts/{contact_id}/tasks\"",
        )
    } else {
        Some(None)
    };
    let (lookup_email, lookup_phone) = if kind == Kind::Contacts {
        (
            optional(template(table, &lookup_email)),
            optional(template(table, &lookup_phone)),
        )
    } else {
        (Some(None), Some(None))
    };
    Endpoints {
        list,
        get,
        create,
        update,
        delete,
        children,
        lookup_email,
        lookup_phone,
    }
}

/// Why a task or note table needs `parent_pointer`, or `None` when its
/// records are only ever reached through their contact. A record read from
/// `children` (or fetched with `{contact_id}` in the path) belongs to the
/// contact it was read under, which the connector takes when the record
/// does not name one: an app whose nested records do not name their
/// contact can be described. Records of a flat `list` are read under no
/// contact, and a create without `{contact_id}` can only say whose record
/// it makes in its body: those need the pointer.
fn parent_pointer_needed(endpoints: &Endpoints) -> Option<String> {
    if let Some(Some(list)) = &endpoints.list {
        return Some(format!(
            "`list` (\"{}\") reads records outside their contact, so each must name it",
            list.text
        ));
    }
    match &endpoints.create {
        Some(Some(create)) if !create.uses(CONTACT_ID) => Some(format!(
            "`create` (\"{}\") has no `{{{CONTACT_ID}}}`, so the new record must carry its contact",
            create.text
        )),
        _ => None,
    }
}

/// A key every sub-resource table needs: `message` reported when absent.
fn required_of_child<T>(
    table: &mut Table<'_>,
    got: Got<T>,
    key: &str,
    message: &str,
) -> Option<Option<T>> {
    if matches!(got, Got::Absent) {
        table.report(key, None, message);
        None
    } else {
        optional(got)
    }
}

/// `wrapper`, `request_wrapper` and `record_pointer`: `None` when one of
/// them is invalid.
fn read_envelope(table: &mut Table<'_>) -> Option<Envelope> {
    let wrapper = optional(key_name(table, "wrapper"));
    let request_wrapper = optional(table.string("request_wrapper"));
    let record_pointer = optional(pointer(table, "record_pointer"));

    let wrapper = wrapper?.filter(|w| !w.is_empty());
    let request_wrapper = match request_wrapper? {
        Some(w) if w.trim().is_empty() => None,
        Some(w) => Some(w.trim().to_owned()),
        None => wrapper.clone(),
    };
    let record_pointer = match record_pointer? {
        Some(p) => p,
        None => wrapper.as_deref().map(JsonPointer::key).unwrap_or_default(),
    };
    Some(Envelope {
        request_wrapper,
        record_pointer,
    })
}
