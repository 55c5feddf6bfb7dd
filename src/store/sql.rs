//! Small helpers shared by the store's statements: placeholder lists for
//! multi-row statements, chunk sizes, and the time normalisation applied at
//! the store edge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

use crate::config::database::Backend;

/// Bind parameters per multi-row statement on Postgres (limit 65535). Big
/// statements save network round trips.
const POSTGRES_MAX_PARAMS: usize = 32_000;

/// Bind parameters per multi-row statement on SQLite (limit 32766) when
/// its placeholders are numbered (`?N`, see [`dialect`]). sqlx asks SQLite
/// for each parameter's name while binding, a linear scan over the
/// statement's numbered parameters, so binding costs grow with the square
/// of the parameter count and such statements stay small.
/// `benches/engine_throughput.rs` measured 150 fastest: 400 about 1.4x
/// slower, 64 about 1.5x slower (more statements, each a round trip to
/// sqlx's SQLite worker thread).
pub(crate) const SQLITE_MAX_PARAMS: usize = 150;

/// Bind parameters per multi-row statement on SQLite whose placeholders
/// are bound in text order (anonymous `?`, see [`dialect`]): there is no
/// name to look up, binding is linear, so one statement per table and page
/// is cheapest. The full-size statement is prepared once and reused from
/// sqlx's statement cache.
pub(crate) const SQLITE_MAX_ORDERED_PARAMS: usize = 32_000;

/// Parameters shared by all rows of a multi-row statement (e.g. `$1` = now).
const SHARED_PARAMS: usize = 8;

/// Ids per `IN (...)` lookup: small enough for any engine's planner and
/// parameter limit, large enough that a batch costs a handful of queries.
pub(crate) const MAX_IDS_PER_LOOKUP: usize = 500;

/// How many rows of `cols` parameters go in one statement on `backend`,
/// leaving room for a few shared parameters.
pub(crate) fn rows_per_statement(backend: Backend, cols: usize) -> usize {
    let max = match backend {
        Backend::Sqlite => SQLITE_MAX_PARAMS,
        Backend::Postgres => POSTGRES_MAX_PARAMS,
    };
    ((max - SHARED_PARAMS) / cols).max(1)
}

/// How many rows of `cols` parameters go in one statement whose
/// placeholders are numbered in text order (`$1, $2, ..`, each once, no
/// shared parameters), which SQLite binds anonymously.
pub(crate) fn rows_per_ordered_statement(backend: Backend, cols: usize) -> usize {
    let max = match backend {
        Backend::Sqlite => SQLITE_MAX_ORDERED_PARAMS,
        Backend::Postgres => POSTGRES_MAX_PARAMS,
    };
    (max / cols).max(1)
}

/// `($s, $s+1, ..), (..)`: `rows` tuples of `cols` numbered placeholders,
/// numbering from `$start`.
pub(crate) fn values_rows(rows: usize, cols: usize, start: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 6);
    let mut n = start;
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&n.to_string());
            n += 1;
        }
        out.push(')');
    }
    out
}

/// Like [`values_rows`], but every tuple ends with `suffix`: literal SQL such
/// as `$1, $1` for timestamps bound once for all rows.
pub(crate) fn values_with_suffix(rows: usize, cols: usize, start: usize, suffix: &str) -> String {
    let mut out = String::with_capacity(rows * (cols * 6 + suffix.len() + 4));
    let mut n = start;
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for _ in 0..cols {
            out.push('$');
            out.push_str(&n.to_string());
            out.push_str(", ");
            n += 1;
        }
        out.push_str(suffix);
        out.push(')');
    }
    out
}

/// `$s, $s+1, .., $s+n-1`.
pub(crate) fn placeholder_list(n: usize, start: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adapts a statement written with `$N` placeholders to the backend.
///
/// On SQLite, a statement whose placeholders appear in text order as
/// `$1, $2, $3, ..`, each once, gets anonymous `?` placeholders: SQLite
/// numbers them in the same order, and sqlx binds them without looking up
/// a name (looking up `?N` or `$N` is a linear search per parameter, so
/// quadratic in a multi-row statement). Any other statement gets `?N`,
/// which SQLite resolves by number (`$N` would be a name). Statements
/// passed here contain no `$` other than placeholders.
pub(crate) fn dialect(backend: Backend, sql: String) -> String {
    match backend {
        Backend::Sqlite if placeholders_in_order(&sql) => {
            let mut out = String::with_capacity(sql.len());
            let mut chars = sql.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '$' {
                    out.push('?');
                    while chars.next_if(char::is_ascii_digit).is_some() {}
                } else {
                    out.push(c);
                }
            }
            out
        }
        Backend::Sqlite => sql.replace('$', "?"),
        Backend::Postgres => sql,
    }
}

/// Whether the `$N` placeholders of `sql` read `$1, $2, .., $n` in text
/// order, each exactly once.
fn placeholders_in_order(sql: &str) -> bool {
    let mut expected = 1usize;
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) if n == expected => expected += 1,
            _ => return false,
        }
        rest = &rest[digits..];
    }
    true
}

/// Multi-row statements kept by [`statement`]: a few dozen texts of up to
/// ~100 KB (one per table and row count in use), so at most a few MB.
const STATEMENTS_KEPT: usize = 32;

/// Statement texts by name and row count.
type KeptStatements = HashMap<(&'static str, usize), Arc<str>>;

/// The text of a multi-row statement of `rows` rows, built by `build` the
/// first time and then kept: a commit's inserts have the same few shapes
/// page after page, and building one (thousands of numbered placeholders,
/// then [`dialect`]) took a tenth of the commit's own time.
pub(crate) fn statement(
    name: &'static str,
    rows: usize,
    build: impl FnOnce() -> String,
) -> Arc<str> {
    static KEPT: OnceLock<Mutex<KeptStatements>> = OnceLock::new();
    let kept = KEPT.get_or_init(Mutex::default);
    if let Some(sql) = kept
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(name, rows))
    {
        return sql.clone();
    }
    let sql: Arc<str> = build().into();
    let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
    if kept.len() >= STATEMENTS_KEPT {
        // Odd sizes (last pages) come and go; the full-page ones come back
        // at once.
        kept.clear();
    }
    kept.insert((name, rows), sql.clone());
    sql
}

/// `head VALUES (..), (..) tail` for `rows` rows of `cols` values bound
/// in text order (anonymous `?` on SQLite), each row ending with the
/// literal `row_suffix` if any; kept by [`statement`] under `name`.
pub(crate) fn sqlite_insert(
    name: &'static str,
    head: &str,
    rows: usize,
    cols: usize,
    row_suffix: &str,
    tail: &str,
) -> Arc<str> {
    statement(name, rows, || {
        let values = if row_suffix.is_empty() {
            values_rows(rows, cols, 1)
        } else {
            values_with_suffix(rows, cols, 1, row_suffix)
        };
        dialect(Backend::Sqlite, format!("{head} VALUES {values} {tail}"))
    })
}

/// A timestamp as sqlx binds a `DateTime<Utc>` on SQLite (RFC 3339, `+00:00`),
/// formatted once for a whole statement rather than once per row.
pub(crate) fn sqlite_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// Truncates to microseconds, the precision of Postgres TIMESTAMPTZ, so a
/// value reads back equal on both backends.
pub(crate) fn us(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// [`us`] for optional values.
pub(crate) fn us_opt(t: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t.map(us)
}

/// The store's clock, already truncated.
pub(crate) fn now() -> DateTime<Utc> {
    us(crate::clock::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_rows_numbers_placeholders_across_rows() {
        assert_eq!(values_rows(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_rows(1, 2, 5), "($5, $6)");
    }

    #[test]
    fn values_with_suffix_appends_shared_params() {
        assert_eq!(
            values_with_suffix(2, 2, 2, "$1"),
            "($2, $3, $1), ($4, $5, $1)"
        );
    }

    #[test]
    fn dialect_makes_in_order_sqlite_parameters_anonymous() {
        let sql = format!("UPDATE t SET a = $1 WHERE id IN ({})", values_rows(2, 2, 2));
        assert_eq!(
            dialect(Backend::Sqlite, sql.clone()),
            "UPDATE t SET a = ? WHERE id IN ((?, ?), (?, ?))"
        );
        assert_eq!(dialect(Backend::Postgres, sql.clone()), sql);
        // Out of order or repeated: numbered.
        assert_eq!(
            dialect(Backend::Sqlite, "VALUES ($2, $1)".into()),
            "VALUES (?2, ?1)"
        );
        assert_eq!(
            dialect(Backend::Sqlite, "VALUES ($1, $1)".into()),
            "VALUES (?1, ?1)"
        );
        assert_eq!(
            dialect(Backend::Sqlite, "VALUES ($1, $3)".into()),
            "VALUES (?1, ?3)"
        );
    }

    #[test]
    fn dialect_numbers_sqlite_parameters() {
        let sql = format!("INSERT INTO t VALUES {}", values_with_suffix(1, 2, 2, "$1"));
        assert_eq!(
            dialect(Backend::Sqlite, sql.clone()),
            "INSERT INTO t VALUES (?2, ?3, ?1)"
        );
        assert_eq!(dialect(Backend::Postgres, sql.clone()), sql);
    }

    #[test]
    fn statements_are_built_once_per_shape() {
        let built = std::cell::Cell::new(0);
        let build = || {
            built.set(built.get() + 1);
            "SELECT 1".to_owned()
        };
        let first = statement("test-shape", 3, build);
        let again = statement("test-shape", 3, || unreachable!("kept"));
        assert!(Arc::ptr_eq(&first, &again));
        statement("test-shape", 4, build);
        assert_eq!(built.get(), 2);
    }

    #[test]
    fn sqlite_time_is_what_sqlx_binds() {
        use sqlx::Encode;
        let t = us(Utc::now());
        let mut args = Vec::new();
        let _ = Encode::<sqlx::Sqlite>::encode_by_ref(&t, &mut args).unwrap();
        let mut text = Vec::new();
        let _ = Encode::<sqlx::Sqlite>::encode(sqlite_time(t), &mut text).unwrap();
        assert_eq!(format!("{args:?}"), format!("{text:?}"));
    }

    #[test]
    fn placeholder_list_starts_where_asked() {
        assert_eq!(placeholder_list(3, 3), "$3, $4, $5");
    }

    #[test]
    fn rows_per_statement_stays_under_the_limits() {
        assert!(rows_per_statement(Backend::Sqlite, 14) * 14 < SQLITE_MAX_PARAMS);
        assert!(rows_per_statement(Backend::Postgres, 14) * 14 < 65_535);
        assert!(rows_per_ordered_statement(Backend::Sqlite, 14) * 14 <= 32_766);
        assert!(rows_per_ordered_statement(Backend::Postgres, 14) * 14 < 65_535);
    }
}
