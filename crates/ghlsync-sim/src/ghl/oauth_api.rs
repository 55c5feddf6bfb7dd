//! Handlers of the OAuth routes (`apps/oauth.json`).
//!
//! Error choices (the spec lists 400, 401 and 422 without details):
//! - a missing or invalid form field: 422 with a message list;
//! - an unknown `client_id` or a wrong `client_secret`: 401;
//! - an invalid, expired or already used code, or an unknown refresh
//!   token: 400 with `"error": "invalid_grant"` (RFC 6749 §5.2); a refresh
//!   token that was already used (rotation) is refused the same way with
//!   the message "Invalid grant: refresh token has already been used";
//! - `client_credentials`: 400 `unsupported_grant_type` (not simulated).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};

use super::auth::{GrantError, TokenInfo, UserType};
use super::error::{trace_id, ApiError};
use super::server::{lock, ok, AuthCtx, Shared};

fn form(body: &Bytes) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn required(form: &HashMap<String, String>, names: &[&str]) -> Result<(), ApiError> {
    let missing: Vec<String> = names
        .iter()
        .filter(|n| form.get(**n).is_none_or(|v| v.is_empty()))
        .map(|n| format!("{n} should not be empty"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::unprocessable(missing))
    }
}

fn invalid_grant(message: &str) -> ApiError {
    ApiError::bad_request(message).with("error", json!("invalid_grant"))
}

/// `POST /oauth/token` (form-encoded).
pub(crate) async fn token(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match token_inner(&sim, &body) {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn token_inner(sim: &Shared, body: &Bytes) -> Result<Response, ApiError> {
    let form = form(body);
    required(&form, &["client_id", "client_secret", "grant_type"])?;
    let grant_type = form["grant_type"].as_str();
    if !matches!(
        grant_type,
        "authorization_code" | "refresh_token" | "client_credentials"
    ) {
        return Err(ApiError::unprocessable(vec![
            "grant_type must be one of the following values: authorization_code, refresh_token, client_credentials".into(),
        ]));
    }
    if let Some(user_type) = form.get("user_type").filter(|u| !u.is_empty()) {
        if user_type != "Company" && user_type != "Location" {
            return Err(ApiError::unprocessable(vec![
                "user_type must be one of the following values: Company, Location".into(),
            ]));
        }
    }
    let client_id = form["client_id"].as_str();
    let mut auth = lock(&sim.auth);
    if auth
        .check_client(client_id, &form["client_secret"])
        .is_err()
    {
        return Err(ApiError::unauthorized(
            "Invalid client credentials: unknown client_id or wrong client_secret",
        ));
    }
    let outcome = match grant_type {
        "authorization_code" => {
            required(&form, &["code"])?;
            auth.exchange_code(client_id, &form["code"])
        }
        "refresh_token" => {
            required(&form, &["refresh_token"])?;
            auth.refresh(client_id, &form["refresh_token"])
        }
        _ => {
            return Err(
                ApiError::bad_request("grant_type client_credentials is not supported")
                    .with("error", json!("unsupported_grant_type")),
            )
        }
    };
    let ttl = auth.access_ttl;
    drop(auth);
    let (access, refresh, grant) = outcome.map_err(|e| match e {
        GrantError::SpentRefresh => {
            invalid_grant("Invalid grant: refresh token has already been used")
        }
        GrantError::InvalidRefresh => invalid_grant("Invalid grant: refresh token is invalid"),
        GrantError::InvalidCode => {
            invalid_grant("Invalid grant: authorization code is invalid, expired or already used")
        }
        GrantError::InvalidClient => ApiError::unauthorized("Invalid client credentials"),
    })?;
    let mut out = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl.as_secs().saturating_sub(1),
        "refresh_token": refresh,
        "scope": grant.scopes.iter().cloned().collect::<Vec<_>>().join(" "),
        "userType": grant.user_type.as_str(),
        "companyId": grant.company_id,
        "userId": grant.user_id,
        "isBulkInstallation": false,
        "traceId": trace_id(),
    });
    match (&grant.location_id, grant.user_type) {
        (Some(location), UserType::Location) => {
            out["locationId"] = json!(location);
        }
        _ => {
            let locations: Vec<String> = sim.read(|db| db.locations.keys().cloned().collect());
            out["approvedLocations"] = json!(locations);
            out["installToFutureLocations"] = json!(false);
            out["approveAllLocations"] = json!(true);
        }
    }
    Ok(ok(StatusCode::OK, out))
}

/// `POST /oauth/locationToken` (Company token, `oauth.write`; form
/// `companyId`, `locationId`) → a Location token of the same app and
/// scopes. It comes without a refresh token (ask again when it expires).
pub(crate) async fn location_token(
    State(sim): State<Arc<Shared>>,
    Extension(AuthCtx(company)): Extension<AuthCtx>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = form(&body);
    required(&form, &["companyId", "locationId"])?;
    if form["companyId"] != company.company_id {
        return Err(ApiError::bad_request(
            "companyId does not match the token's company",
        ));
    }
    let location = form["locationId"].clone();
    let known =
        sim.read(|db| db.company_id == company.company_id && db.locations.contains_key(&location));
    if !known {
        return Err(ApiError::bad_request(
            "Location not found or the app is not installed on it",
        ));
    }
    let mut auth = lock(&sim.auth);
    let ttl = auth.access_ttl;
    let info = TokenInfo {
        app_id: company.app_id.clone(),
        user_type: UserType::Location,
        location_id: Some(location.clone()),
        company_id: company.company_id.clone(),
        scopes: company.scopes.clone(),
        expires_at: Some(std::time::Instant::now() + ttl),
        user_id: company.user_id.clone(),
    };
    let scope = info.scope_string();
    let access = auth.issue(info);
    Ok(ok(
        StatusCode::OK,
        json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl.as_secs().saturating_sub(1),
            "scope": scope,
            "locationId": location,
            "userId": company.user_id,
            "appId": company.app_id,
            "traceId": trace_id(),
        }),
    ))
}

/// `GET /oauth/installedLocations?companyId&appId[&skip&limit&query]`
/// (Company token, `oauth.readonly`) → `{locations, count,
/// installToFutureLocations}`; every simulated location has the app.
pub(crate) async fn installed_locations(
    State(sim): State<Arc<Shared>>,
    Extension(AuthCtx(company)): Extension<AuthCtx>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    required(&params, &["companyId", "appId"])?;
    if params["companyId"] != company.company_id {
        return Err(ApiError::bad_request(
            "companyId does not match the token's company",
        ));
    }
    let skip: usize = params.get("skip").and_then(|s| s.parse().ok()).unwrap_or(0);
    let limit: usize = params
        .get("limit")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let query = params
        .get("query")
        .map(|q| q.to_lowercase())
        .unwrap_or_default();
    let all: Vec<Value> = sim.read(|db| {
        db.locations
            .values()
            .filter(|l| l.name.to_lowercase().contains(&query))
            .map(
                |l| json!({"_id": l.id, "name": l.name, "address": l.address, "isInstalled": true}),
            )
            .collect()
    });
    let count = all.len();
    let page: Vec<Value> = all.into_iter().skip(skip).take(limit).collect();
    Ok(ok(
        StatusCode::OK,
        json!({"locations": page, "count": count, "installToFutureLocations": false}),
    ))
}
