//! `[sides.<name>]` of kind `rest`: the operator's own app, described in
//! TOML so that connecting it needs no code.
//!
//! Every key, with its default (`config/connectors/app-sim.toml` is a
//! complete, commented example):
//!
//! ```toml
//! [sides.app]
//! kind = "rest"
//! base_url = "https://api.example.com/v1"  # required; templates are joined to it
//! timeout = "30s"                          # per request
//! max_body_bytes = "10MiB"                 # larger responses are refused (bytes, or "512KiB", "10MiB")
//! read_only = false                        # true: never write to this side
//! webhook_secret_file = "/etc/ghlsync/app-webhook-secret"  # or webhook_secret = "…"
//!
//! [sides.app.auth]                         # absent: no authentication
//! method = "bearer"                        # none | bearer | api_key | basic | oauth2_client_credentials
//! token_file = "/etc/ghlsync/app-token"    # bearer: token / token_file
//! # api_key: key / key_file, and header = "X-Api-Key" or query = "api_key"
//! # basic: username, password / password_file
//! # oauth2_client_credentials: token_url, client_id, client_secret / client_secret_file,
//! #   scopes = ["…"], client_auth = "basic" (HTTP Basic, the default) | "body" (form fields)
//!
//! [sides.app.rate_limit]                   # never more than `requests` in any `per`
//! requests = 10
//! per = "1s"
//!
//! [sides.app.retry]                        # 429, 5xx, timeouts, resets; Retry-After honoured
//! max_attempts = 6                         # in all, the first included
//! min_delay = "250ms"                      # exponential with jitter, up to
//! max_delay = "30s"
//!
//! [sides.app.webhook]                      # needs webhook_secret
//! signature_header = "X-Signature"         # HMAC-SHA256 of the raw body
//! signature_prefix = "sha256="             # before the signature; "" for none
//! signature_encoding = "hex"               # or "base64"
//! timestamp_header = "X-Timestamp"         # optional: epoch s/ms or RFC 3339
//! tolerance = "5m"                         # how old (or early) a timestamp may be
//! entity_pointer = "/entity"               # JSON pointers into the event body
//! id_pointer = "/id"
//! parent_pointer = "/contact_id"           # optional: the owning contact
//!
//! [sides.app.contacts]                     # required; tasks and notes optional
//! list = "GET /contacts"                   # the change feed and full listing
//! updated_since_param = "updated_since"    # the feed's inclusive lower bound
//! timestamp_format = "rfc3339"             # rfc3339 | epoch_seconds | epoch_millis
//! records_pointer = "/data"                # the array in a listing ("" = the body is the array)
//! id_pointer = "/id"
//! updated_at_pointer = "/updated_at"
//! get = "GET /contacts/{id}"               # `{id}`, `{contact_id}`: URL-encoded when substituted
//! create = "POST /contacts"                # POST or PUT
//! update = "PATCH /contacts/{id}"          # PATCH (the patch) or PUT (the merged record)
//! delete = "DELETE /contacts/{id}"
//! wrapper = "data"                         # optional: bodies sent as {"data": …}, records read from under it
//! request_wrapper = "data"                 # optional: overrides `wrapper` for requests ("" = none)
//! record_pointer = "/data"                 # optional: overrides `wrapper` for single-record responses
//! conflict_id_pointer = "/existing_id"     # optional: a 409 to a create names the existing record here
//! lookup_email = "GET /contacts?email={value}"  # first matching record of the listing is the match
//! lookup_phone = "GET /contacts?phone={value}"
//! email_field = "email"                    # native fields holding email and phone (for create's lookup)
//! phone_field = "phone"
//! [sides.app.contacts.pagination]
//! style = "cursor"                         # none | page | offset | cursor | link_header | next_url
//! # page:        page_param (required), size_param + size, first = 1
//! # offset:      offset_param (required), limit_param + limit
//! # cursor:      cursor_param, cursor_pointer (required), limit_param + limit
//! # link_header: limit_param + limit (the next URL is Link: <…>; rel="next")
//! # next_url:    next_pointer (required), limit_param + limit
//! cursor_param = "cursor"
//! cursor_pointer = "/next_cursor"
//! limit_param = "limit"
//! limit = 100
//!
//! [sides.app.tasks]                        # sub-resources of a contact: same keys, plus
//! parent_pointer = "/contact_id"           # required: the record's contact id
//! children = "GET /contacts/{contact_id}/tasks"   # required: one contact's records
//! # `{contact_id}` in create/get/update/delete is optional (flat APIs such as
//! # "GET /tasks/{id}"); a create without it carries the contact at parent_pointer.
//! ```

use std::time::Duration;

use super::reader::{Got, Table};
use crate::connector::rest::settings::{
    ApiKeyPlacement, ClientAuth, RestAuth, RestRateLimit, RestSide, DEFAULT_MAX_BODY_BYTES,
};
use crate::connector::rest::spec::{
    EntityApi, JsonPointer, Pagination, SignatureEncoding, SizeParam, Template, TimestampFormat,
    WebhookSpec, CONTACT_ID, ID, VALUE,
};

pub(crate) fn read_rest(table: &mut Table<'_>) -> Option<RestSide> {
    let base_url = table.http_url("base_url");
    let base_url = table.required(
        "base_url",
        base_url,
        "the app's API root, for example \"https://api.example.com/v1\"",
    );
    let webhook_secret = table.secret("webhook_secret", "webhook_secret_file");
    let webhook_secret = match webhook_secret {
        Got::Value(secret) => Some(Some(secret)),
        Got::Absent => Some(None),
        Got::Invalid => None,
    };
    let auth = match table.table("auth") {
        Got::Value(mut auth) => {
            let read = read_rest_auth(&mut auth);
            if auth.was_valid("method") {
                auth.finish();
            }
            read
        }
        Got::Absent => Some(RestAuth::None),
        Got::Invalid => None,
    };
    let timeout = table
        .duration("timeout")
        .with_default(|| Duration::from_secs(30));
    let max_body_bytes = table
        .parse(
            "max_body_bytes",
            "a size in bytes such as 1048576, \"512KiB\" or \"10MiB\"",
            parse_size,
        )
        .with_default(|| DEFAULT_MAX_BODY_BYTES);
    let read_only = table
        .parse("read_only", "true or false", |text| {
            text.trim().parse::<bool>().map_err(|_| String::new())
        })
        .with_default(|| false);
    let rate_limit = read_rate_limit(table);
    let retry = super::retry::read_retry(table);
    let webhook = match table.table("webhook") {
        Got::Value(mut webhook) => {
            let read = read_webhook(&mut webhook);
            if matches!(webhook_secret, Some(None)) {
                webhook.report_table(
                    "webhook settings need `webhook_secret` (or `webhook_secret_file`) on the side",
                );
            }
            webhook.finish();
            read
        }
        Got::Absent => Some(WebhookSpec::default()),
        Got::Invalid => None,
    };
    let contacts = match read_entity(table, "contacts", Kind::Contacts) {
        Some(Some(contacts)) => Some(contacts),
        Some(None) => {
            table.report_table(
                "missing required table `contacts`: describe at least how contacts are listed (`list`) or read (`get`); see config/connectors/app-sim.toml",
            );
            None
        }
        None => None,
    };
    let tasks = read_entity(table, "tasks", Kind::Child);
    let notes = read_entity(table, "notes", Kind::Child);
    Some(RestSide {
        base_url: base_url?,
        auth: auth?,
        webhook_secret: webhook_secret?,
        timeout: timeout?,
        max_body_bytes: max_body_bytes?,
        rate_limit: rate_limit?,
        retry: retry?,
        webhook: webhook?,
        read_only: read_only?,
        contacts: contacts?,
        tasks: tasks?,
        notes: notes?,
    })
}

fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| String::new())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1024,
        "mb" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "gb" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        other => return Err(format!("unknown unit `{other}`")),
    };
    match number.checked_mul(factor) {
        Some(0) => Err("must be more than zero".to_owned()),
        Some(bytes) => Ok(bytes),
        None => Err("too large".to_owned()),
    }
}

fn read_rate_limit(side: &mut Table<'_>) -> Option<RestRateLimit> {
    let defaults = RestRateLimit::default();
    let mut table = match side.table("rate_limit") {
        Got::Value(table) => table,
        Got::Absent => return Some(defaults),
        Got::Invalid => return None,
    };
    let requests = table
        .integer_in("requests", 1, 1_000_000)
        .with_default(|| defaults.requests.into());
    let per = table.duration("per").with_default(|| defaults.per);
    table.finish();
    Some(RestRateLimit {
        requests: u32::try_from(requests?).ok()?,
        per: per?,
    })
}

fn pointer(table: &mut Table<'_>, key: &'static str) -> Got<JsonPointer> {
    table.parse(
        key,
        "an RFC 6901 JSON pointer such as \"/id\" or \"/data/0/id\"",
        JsonPointer::parse,
    )
}

fn pointer_or(table: &mut Table<'_>, key: &'static str, default: &str) -> Option<JsonPointer> {
    pointer(table, key).with_default(|| JsonPointer::parse(default).expect("default pointer"))
}

/// A top-level key name (a wrapper, a field name).
fn key_name(table: &mut Table<'_>, key: &'static str) -> Got<String> {
    table.parse(key, "a field name such as \"data\"", |text| {
        Ok(text.trim().to_owned())
    })
}

fn read_webhook(table: &mut Table<'_>) -> Option<WebhookSpec> {
    let defaults = WebhookSpec::default();
    let signature_header =
        header_name(table, "signature_header").with_default(|| defaults.signature_header.clone());
    let signature_prefix = table
        .string("signature_prefix")
        .with_default(|| defaults.signature_prefix.clone());
    let signature_encoding = table
        .one_of("signature_encoding", &["hex", "base64"])
        .map(|e| match e {
            "base64" => SignatureEncoding::Base64,
            _ => SignatureEncoding::Hex,
        })
        .with_default(|| defaults.signature_encoding);
    let timestamp_header = header_name(table, "timestamp_header");
    let timestamp_header = match timestamp_header {
        Got::Value(h) => Some(Some(h)),
        Got::Absent => Some(None),
        Got::Invalid => None,
    };
    let tolerance = table
        .duration("tolerance")
        .with_default(|| defaults.tolerance);
    let entity_pointer = pointer_or(table, "entity_pointer", "/entity");
    let id_pointer = pointer_or(table, "id_pointer", "/id");
    let parent_pointer = match pointer(table, "parent_pointer") {
        Got::Value(p) => Some(Some(p)),
        Got::Absent => Some(None),
        Got::Invalid => None,
    };
    Some(WebhookSpec {
        signature_header: signature_header?,
        signature_prefix: signature_prefix?,
        signature_encoding: signature_encoding?,
        timestamp_header: timestamp_header?,
        tolerance: tolerance?,
        entity_pointer: entity_pointer?,
        id_pointer: id_pointer?,
        parent_pointer: parent_pointer?,
    })
}

fn header_name(table: &mut Table<'_>, key: &'static str) -> Got<String> {
    table.parse(key, "an HTTP header name such as \"X-Signature\"", |text| {
        let text = text.trim();
        reqwest::header::HeaderName::from_bytes(text.as_bytes())
            .map(|_| text.to_owned())
            .map_err(|_| "not a valid header name".to_owned())
    })
}

/// Which table is being read: contacts, or a sub-resource of a contact.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
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

fn optional<T>(got: Got<T>) -> Option<Option<T>> {
    match got {
        Got::Value(v) => Some(Some(v)),
        Got::Absent => Some(None),
        Got::Invalid => None,
    }
}

/// `[sides.<name>.<key>]`: `None` when invalid, `Some(None)` when absent.
fn read_entity(
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

fn read_entity_table(table: &mut Table<'_>, kind: Kind) -> Option<EntityApi> {
    let [list, get, create, update, delete, children, lookup_email, lookup_phone] = rules(kind);
    let list = optional(template(table, &list));
    let get = optional(template(table, &get));
    let create = optional(template(table, &create));
    let update = optional(template(table, &update));
    let delete = optional(template(table, &delete));
    let children = if kind == Kind::Child {
        let got = template(table, &children);
        if matches!(got, Got::Absent) {
            table.report(
                "children",
                None,
                "missing required key: the listing of one contact's records, such as \"GET /contacts/{contact_id}/tasks\"",
            );
            None
        } else {
            optional(got)
        }
    } else {
        Some(None)
    };
    let (lookup_email, lookup_phone, email_field, phone_field) = if kind == Kind::Contacts {
        (
            optional(template(table, &lookup_email)),
            optional(template(table, &lookup_phone)),
            optional(key_name(table, "email_field")),
            optional(key_name(table, "phone_field")),
        )
    } else {
        (Some(None), Some(None), Some(None), Some(None))
    };
    let updated_since_param = optional(table.non_empty("updated_since_param"));
    if matches!(updated_since_param, Some(Some(_))) && matches!(list, Some(None)) {
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
        if matches!(got, Got::Absent) {
            table.report(
                "parent_pointer",
                None,
                "missing required key: where a record names its contact, such as \"/contact_id\"",
            );
            None
        } else {
            optional(got)
        }
    } else {
        Some(None)
    };
    let wrapper = optional(key_name(table, "wrapper"));
    let request_wrapper = optional(table.string("request_wrapper"));
    let record_pointer = optional(pointer(table, "record_pointer"));
    let conflict_id_pointer = optional(pointer(table, "conflict_id_pointer"));
    let pagination = match table.table("pagination") {
        Got::Value(mut pagination) => {
            let read = read_pagination(&mut pagination);
            if pagination.was_valid("style") {
                pagination.finish();
            }
            read
        }
        Got::Absent => Some(Pagination::None),
        Got::Invalid => None,
    };
    if kind == Kind::Contacts
        && list.as_ref().is_some_and(Option::is_none)
        && get.as_ref().is_some_and(Option::is_none)
    {
        table.report_table(
            "contacts need at least `list` (such as \"GET /contacts\") or `get` (such as \"GET /contacts/{id}\")",
        );
    }

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
    Some(EntityApi {
        list: list?,
        updated_since_param: updated_since_param?,
        timestamp_format: timestamp_format?,
        records_pointer: records_pointer?,
        id_pointer: id_pointer?,
        updated_at_pointer: updated_at_pointer?,
        parent_pointer: parent_pointer?,
        get: get?,
        create: create?,
        update: update?,
        delete: delete?,
        children: children?,
        request_wrapper,
        record_pointer,
        conflict_id_pointer: conflict_id_pointer?,
        lookup_email: lookup_email?,
        lookup_phone: lookup_phone?,
        email_field: email_field?,
        phone_field: phone_field?,
        pagination: pagination?,
    })
}

/// A page-size parameter pair: both or neither.
fn size_pair(
    table: &mut Table<'_>,
    param_key: &'static str,
    value_key: &'static str,
    required: bool,
) -> Option<Option<SizeParam>> {
    let param = table.non_empty(param_key);
    let value = table.integer_in(value_key, 1, 1_000_000);
    match (param, value) {
        (Got::Value(param), Got::Value(value)) => Some(Some(SizeParam { param, value })),
        (Got::Absent, Got::Absent) if !required => Some(None),
        (Got::Value(_), Got::Absent) => {
            table.report(
                value_key,
                None,
                format!("missing required key: `{param_key}` needs `{value_key}`, the page size to ask for"),
            );
            None
        }
        (Got::Absent, Got::Value(_)) => {
            table.report(
                param_key,
                None,
                format!("missing required key: `{value_key}` needs `{param_key}`, the query parameter carrying it"),
            );
            None
        }
        (Got::Absent, Got::Absent) => {
            table.report(
                param_key,
                None,
                format!("missing required key: this style needs `{param_key}` and `{value_key}`"),
            );
            None
        }
        _ => None,
    }
}

fn read_pagination(table: &mut Table<'_>) -> Option<Pagination> {
    let style = table.one_of("style", &Pagination::STYLES);
    let style = table.required("style", style, "how pages are reached")?;
    match style {
        "none" => Some(Pagination::None),
        "page" => {
            let page_param = table.non_empty("page_param");
            let page_param = table.required(
                "page_param",
                page_param,
                "the query parameter with the page number, such as \"page\"",
            );
            let size = size_pair(table, "size_param", "size", false);
            let first = table.integer_in("first", 0, 1).with_default(|| 1);
            Some(Pagination::Page {
                page_param: page_param?,
                size: size?,
                first: first?,
            })
        }
        "offset" => {
            let offset_param = table.non_empty("offset_param");
            let offset_param = table.required(
                "offset_param",
                offset_param,
                "the query parameter with the number of records to skip, such as \"offset\"",
            );
            let limit = size_pair(table, "limit_param", "limit", false);
            Some(Pagination::Offset {
                offset_param: offset_param?,
                limit: limit?,
            })
        }
        "cursor" => {
            let cursor_param = table.non_empty("cursor_param");
            let cursor_param = table.required(
                "cursor_param",
                cursor_param,
                "the query parameter carrying the cursor, such as \"cursor\"",
            );
            let cursor_pointer = pointer(table, "cursor_pointer");
            let cursor_pointer = table.required(
                "cursor_pointer",
                cursor_pointer,
                "where the next cursor is in the body, such as \"/next_cursor\"",
            );
            let limit = size_pair(table, "limit_param", "limit", false);
            Some(Pagination::Cursor {
                cursor_param: cursor_param?,
                cursor_pointer: cursor_pointer?,
                limit: limit?,
            })
        }
        "link_header" => {
            let limit = size_pair(table, "limit_param", "limit", false);
            Some(Pagination::LinkHeader { limit: limit? })
        }
        _ => {
            let next_pointer = pointer(table, "next_pointer");
            let next_pointer = table.required(
                "next_pointer",
                next_pointer,
                "where the next page's URL is in the body, such as \"/links/next\"",
            );
            let limit = size_pair(table, "limit_param", "limit", false);
            Some(Pagination::NextUrl {
                next_pointer: next_pointer?,
                limit: limit?,
            })
        }
    }
}

fn read_rest_auth(auth: &mut Table<'_>) -> Option<RestAuth> {
    const METHODS: [&str; 5] = [
        "none",
        "bearer",
        "api_key",
        "basic",
        "oauth2_client_credentials",
    ];
    let method = auth.one_of("method", &METHODS);
    match auth.required("method", method, "how the app authenticates requests")? {
        "none" => Some(RestAuth::None),
        "bearer" => {
            let token = auth.secret("token", "token_file");
            let token = auth.required("token", token, "the bearer token (or `token_file`)")?;
            Some(RestAuth::Bearer { token })
        }
        "api_key" => {
            let key = auth.secret("key", "key_file");
            let key = auth.required("key", key, "the API key (or `key_file`)");
            let header = auth.non_empty("header").optional();
            let query = auth.non_empty("query").optional();
            let (placement, name) = match (header, query) {
                (Some(header), None) => (ApiKeyPlacement::Header, header),
                (None, Some(query)) => (ApiKeyPlacement::Query, query),
                (Some(_), Some(_)) => {
                    auth.report("header", None, "set either `header` or `query`, not both");
                    return None;
                }
                (None, None) => {
                    auth.report_table("api_key needs `header` (a header name such as \"X-Api-Key\") or `query` (a query parameter name)");
                    return None;
                }
            };
            if placement == ApiKeyPlacement::Header
                && reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
            {
                auth.report("header", Some(name), "not a valid HTTP header name");
                return None;
            }
            Some(RestAuth::ApiKey {
                placement,
                name,
                key: key?,
            })
        }
        "basic" => {
            let username = auth.string("username");
            let username = auth.required("username", username, "the user name");
            let password = auth.secret("password", "password_file");
            let password = auth.required("password", password, "the password (or `password_file`)");
            Some(RestAuth::Basic {
                username: username?,
                password: password?,
            })
        }
        _ => {
            let token_url = auth.http_url("token_url");
            let token_url = auth.required("token_url", token_url, "the OAuth 2.0 token endpoint");
            let client_id = auth.non_empty("client_id");
            let client_id = auth.required("client_id", client_id, "the OAuth 2.0 client id");
            let secret = auth.secret("client_secret", "client_secret_file");
            let client_secret = auth.required(
                "client_secret",
                secret,
                "the client secret (or `client_secret_file`)",
            );
            let scopes = auth.string_list("scopes").or(Vec::new());
            let client_auth = auth
                .one_of("client_auth", &["basic", "body"])
                .map(|how| match how {
                    "body" => ClientAuth::Body,
                    _ => ClientAuth::Basic,
                })
                .with_default(ClientAuth::default);
            Some(RestAuth::OAuth2ClientCredentials {
                token_url: token_url?,
                client_id: client_id?,
                client_secret: client_secret?,
                scopes,
                client_auth: client_auth?,
            })
        }
    }
}
