//! `[sides.<name>.<entity>.pagination]`: the six ways an app splits a
//! listing into pages, each with the keys it needs.

use super::pointer;
use crate::config::reader::{Got, Table};
use crate::connector::rest::spec::{Pagination, SizeParam};

/// The entity's `pagination` table: `none` when absent, `None` when
/// invalid.
pub(super) fn read_entity_pagination(entity: &mut Table<'_>) -> Option<Pagination> {
    match entity.table("pagination") {
        Got::Value(mut pagination) => {
            let read = read_pagination(&mut pagination);
            if pagination.was_valid("style") {
                pagination.finish();
            }
            read
        }
        Got::Absent => Some(Pagination::None),
        Got::Invalid => None,
    }
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
