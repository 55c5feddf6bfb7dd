//! `[sides.<name>]` and `[pairs.<name>]`: the systems being synced and which
//! two of them form a pair.

use std::collections::BTreeMap;

use std::time::Duration;

use url::Url;

use super::reader::{Got, Table};
use super::rest;
use crate::connector::ghl::oauth::DEFAULT_AUTHORIZE_URL;
use crate::connector::ghl::settings::{
    GhlAuth, GhlSide, OAuthInstall, DEFAULT_GHL_BASE_URL, DEFAULT_GHL_SCOPES,
};
use crate::connector::ghl::RateLimits;
use crate::connector::rest::RestSide;

/// One system taking part in a sync.
#[derive(Debug, Clone)]
pub struct SideSettings {
    pub name: String,
    pub kind: SideKind,
}

#[derive(Debug, Clone)]
pub enum SideKind {
    Ghl(GhlSide),
    Rest(RestSide),
}

impl SideKind {
    pub fn name(&self) -> &'static str {
        match self {
            SideKind::Ghl(_) => "ghl",
            SideKind::Rest(_) => "rest",
        }
    }
}

/// The `[sides.<name>]` tables. A side with problems maps to `None`, so
/// pairs naming it are not reported a second time as naming no side.
pub(crate) fn read_sides(root: &mut Table<'_>) -> BTreeMap<String, Option<SideSettings>> {
    let mut sides = BTreeMap::new();
    for (name, mut table) in root.named_tables("sides") {
        let kind = table.one_of("kind", &["ghl", "rest"]);
        let kind = match table.required("kind", kind, "\"ghl\" or \"rest\"") {
            Some("ghl") => read_ghl(&mut table).map(SideKind::Ghl),
            Some(_) => rest::read_rest(&mut table).map(SideKind::Rest),
            // Which keys belong depends on the kind: judge none of them.
            None => None,
        };
        if table.was_valid("kind") {
            table.finish();
        }
        let side = kind.map(|kind| SideSettings {
            name: name.clone(),
            kind,
        });
        sides.insert(name, side);
    }
    sides
}

fn read_ghl(table: &mut Table<'_>) -> Option<GhlSide> {
    let location_id = table.non_empty("location_id");
    let location_id = table.required(
        "location_id",
        location_id,
        "the GHL location (sub-account) id",
    );
    let base_url = table
        .http_url("base_url")
        .with_default(|| Url::parse(DEFAULT_GHL_BASE_URL).expect("constant URL parses"));
    let scopes = read_scopes(table);
    let timeout = table
        .duration("timeout")
        .with_default(|| Duration::from_secs(30));
    let rate_limit = read_rate_limit(table);
    let retry = super::retry::read_retry(table);
    let auth = match table.table("auth") {
        Got::Value(mut auth) => {
            let method = auth.one_of("method", &["private_token", "oauth"]);
            let read = match auth.required("method", method, "\"private_token\" or \"oauth\"") {
                Some("private_token") => {
                    let token = auth.secret("token", "token_file");
                    auth.required(
                        "token",
                        token,
                        "the Private Integration Token (or `token_file`)",
                    )
                    .map(|token| GhlAuth::PrivateToken { token })
                }
                Some(_) => read_ghl_oauth(&mut auth),
                None => None,
            };
            if auth.was_valid("method") {
                auth.finish();
            }
            read
        }
        Got::Absent => {
            table.report_table(
                "missing required table `auth` (method = \"private_token\" or \"oauth\")",
            );
            None
        }
        Got::Invalid => None,
    };
    Some(GhlSide {
        location_id: location_id?,
        base_url: base_url?,
        auth: auth?,
        scopes: scopes?,
        timeout: timeout?,
        rate_limit: rate_limit?,
        retry: retry?,
    })
}

/// `[sides.<name>.rate_limit]`: GHL's published limits and our margins.
fn read_rate_limit(side: &mut Table<'_>) -> Option<RateLimits> {
    let defaults = RateLimits::default();
    let mut table = match side.table("rate_limit") {
        Got::Value(table) => table,
        Got::Absent => return Some(defaults),
        Got::Invalid => return None,
    };
    let max = table
        .integer_in("max_per_interval", 1, 100_000)
        .with_default(|| defaults.max_per_interval.into());
    let interval = table
        .duration("interval")
        .with_default(|| defaults.interval);
    let headroom = table
        .integer_in("headroom", 0, 100_000)
        .with_default(|| defaults.headroom.into());
    let daily = table
        .integer_in("daily", 1, 100_000_000)
        .with_default(|| defaults.daily.into());
    let reserve = table
        .integer_in("write_reserve", 0, 100_000_000)
        .with_default(|| defaults.write_reserve.into());
    let limits = RateLimits {
        max_per_interval: max? as u32,
        interval: interval?,
        headroom: headroom? as u32,
        daily: daily? as u32,
        write_reserve: reserve? as u32,
    };
    if limits.headroom >= limits.max_per_interval {
        table.report(
            "headroom",
            Some(limits.headroom.to_string()),
            "must be less than max_per_interval",
        );
    }
    if limits.write_reserve >= limits.daily {
        table.report(
            "write_reserve",
            Some(limits.write_reserve.to_string()),
            "must be less than daily",
        );
    }
    let valid = limits.headroom < limits.max_per_interval && limits.write_reserve < limits.daily;
    table.finish();
    valid.then_some(limits)
}

fn read_ghl_oauth(auth: &mut Table<'_>) -> Option<GhlAuth> {
    let client_id = auth.non_empty("client_id");
    let client_id = auth.required("client_id", client_id, "the Marketplace app's client id");
    let secret = auth.secret("client_secret", "client_secret_file");
    let client_secret = auth.required(
        "client_secret",
        secret,
        "the app's client secret (or `client_secret_file`)",
    );
    let redirect = auth.http_url("redirect_uri");
    let redirect_uri = auth.required(
        "redirect_uri",
        redirect,
        "the redirect URI registered for the app",
    );
    let authorize_url = auth
        .http_url("authorize_url")
        .with_default(|| Url::parse(DEFAULT_AUTHORIZE_URL).expect("constant URL parses"));
    let user_type = auth
        .one_of("user_type", &["Location", "Company"])
        .with_default(|| "Location");
    let company_id = auth.non_empty("company_id").optional();
    let install = match (user_type, company_id) {
        (Some("Company"), Some(company_id)) => Some(OAuthInstall::Company { company_id }),
        (Some("Company"), None) => {
            auth.report_table("user_type = \"Company\" needs `company_id` (the agency's id)");
            None
        }
        (Some(_), _) => Some(OAuthInstall::Location),
        (None, _) => None,
    };
    Some(GhlAuth::OAuth {
        client_id: client_id?,
        client_secret: client_secret?,
        redirect_uri: redirect_uri?,
        authorize_url: authorize_url?,
        install: install?,
    })
}

fn read_scopes(table: &mut Table<'_>) -> Option<Vec<String>> {
    let scopes = match table.string_list("scopes") {
        Got::Value(scopes) => scopes,
        Got::Absent => DEFAULT_GHL_SCOPES.iter().map(|s| s.to_string()).collect(),
        Got::Invalid => return None,
    };
    if let Some(bad) = scopes.iter().find(|scope| !is_scope(scope)) {
        table.report(
            "scopes",
            Some(bad.clone()),
            "expected GHL scope names such as \"contacts.readonly\" or \"contacts.write\"",
        );
        return None;
    }
    if !scopes
        .iter()
        .any(|s| s == "contacts.readonly" || s == "contacts.write")
    {
        table.report(
            "scopes",
            Some(scopes.join(" ")),
            "must include \"contacts.readonly\" (reading contacts is the least a sync needs)",
        );
        return None;
    }
    Some(scopes)
}

/// GHL scope names look like `contacts.readonly` or `conversations/message.write`.
fn is_scope(scope: &str) -> bool {
    let mut parts = scope.rsplitn(2, '.');
    let access = parts.next().unwrap_or_default();
    let resource = parts.next().unwrap_or_default();
    !resource.is_empty()
        && matches!(access, "readonly" | "write")
        && resource
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '/' || c == '-' || c == '_')
}
