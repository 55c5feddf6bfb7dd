//! The OAuth 2.0 endpoints of GHL (`apps/oauth.json`): the authorization
//! page URL, code exchange, refresh, agency-to-location tokens and the list
//! of installed locations.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::models::{InstalledLocation, API_VERSION};

/// Where operators approve an app for a location (standard flow).
pub const DEFAULT_AUTHORIZE_URL: &str =
    "https://marketplace.gohighlevel.com/v2/oauth/chooselocation";

/// The client's identity at GHL's token endpoint.
#[derive(Debug, Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: SecretString,
    pub redirect_uri: Url,
    /// The API host; `/oauth/token` and friends live under it.
    pub base_url: Url,
}

/// A token response of `/oauth/token` or `/oauth/locationToken`.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub access_token: SecretString,
    /// Absent for location tokens minted from an agency token.
    pub refresh_token: Option<SecretString>,
    pub expires_at: DateTime<Utc>,
    pub scopes: Vec<String>,
    pub user_type: Option<String>,
    pub location_id: Option<String>,
    pub company_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGrant {
    #[serde(rename = "access_token")]
    access_token: String,
    #[serde(rename = "refresh_token", default)]
    refresh_token: Option<String>,
    #[serde(rename = "expires_in", default)]
    expires_in: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    user_type: Option<String>,
    #[serde(default)]
    location_id: Option<String>,
    #[serde(default)]
    company_id: Option<String>,
}

/// Why an OAuth call failed. Never carries a token or the client secret.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("GHL {endpoint}: cannot reach the token endpoint: {detail}")]
    Transport {
        endpoint: &'static str,
        detail: String,
    },
    #[error("GHL {endpoint}: refused ({status}): {message}")]
    Refused {
        endpoint: &'static str,
        status: u16,
        message: String,
    },
    #[error("GHL {endpoint}: unexpected response: {detail}")]
    Decode {
        endpoint: &'static str,
        detail: String,
    },
}

impl OAuthApp {
    /// The page an operator opens to install the app on a location.
    pub fn authorization_url(&self, authorize_url: &Url, scopes: &[String]) -> Url {
        let mut url = authorize_url.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", self.redirect_uri.as_str())
            .append_pair("client_id", &self.client_id)
            .append_pair("scope", &scopes.join(" "));
        url
    }

    /// Exchanges an authorization code for tokens.
    pub async fn exchange_code(
        &self,
        http: &reqwest::Client,
        code: &str,
        user_type: &str,
    ) -> Result<TokenGrant, OAuthError> {
        self.token_request(
            http,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("user_type", user_type),
                ("redirect_uri", self.redirect_uri.as_str()),
            ],
        )
        .await
    }

    /// Trades a refresh token for a new access token and a new refresh
    /// token; the old refresh token is spent from then on.
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: &SecretString,
        user_type: &str,
    ) -> Result<TokenGrant, OAuthError> {
        self.token_request(
            http,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
                ("user_type", user_type),
                ("redirect_uri", self.redirect_uri.as_str()),
            ],
        )
        .await
    }

    async fn token_request(
        &self,
        http: &reqwest::Client,
        fields: &[(&str, &str)],
    ) -> Result<TokenGrant, OAuthError> {
        const ENDPOINT: &str = "POST /oauth/token";
        let mut form: Vec<(&str, &str)> = vec![
            ("client_id", &self.client_id),
            ("client_secret", self.client_secret.expose_secret()),
        ];
        form.extend_from_slice(fields);
        let response = http
            .post(endpoint(&self.base_url, "oauth/token"))
            .header("Accept", "application/json")
            .form(&form)
            .send()
            .await;
        grant(ENDPOINT, response).await
    }
}

/// Mints a token for one location from an agency (company) token.
pub async fn location_token(
    http: &reqwest::Client,
    base_url: &Url,
    company_token: &SecretString,
    company_id: &str,
    location_id: &str,
) -> Result<TokenGrant, OAuthError> {
    let response = http
        .post(endpoint(base_url, "oauth/locationToken"))
        .bearer_auth(company_token.expose_secret())
        .header("Version", API_VERSION)
        .header("Accept", "application/json")
        .form(&[("companyId", company_id), ("locationId", location_id)])
        .send()
        .await;
    grant("POST /oauth/locationToken", response).await
}

/// The locations where an app is installed, for agency set-ups.
pub async fn installed_locations(
    http: &reqwest::Client,
    base_url: &Url,
    company_token: &SecretString,
    company_id: &str,
    app_id: &str,
) -> Result<Vec<InstalledLocation>, OAuthError> {
    const ENDPOINT: &str = "GET /oauth/installedLocations";
    #[derive(Deserialize)]
    struct Page {
        #[serde(default)]
        locations: Vec<InstalledLocation>,
    }
    let response = http
        .get(endpoint(base_url, "oauth/installedLocations"))
        .bearer_auth(company_token.expose_secret())
        .header("Version", API_VERSION)
        .header("Accept", "application/json")
        .query(&[
            ("companyId", company_id),
            ("appId", app_id),
            ("isInstalled", "true"),
        ])
        .send()
        .await;
    let body = checked_body(ENDPOINT, response).await?;
    serde_json::from_slice::<Page>(&body)
        .map(|page| page.locations)
        .map_err(|e| OAuthError::Decode {
            endpoint: ENDPOINT,
            detail: e.to_string(),
        })
}

fn endpoint(base_url: &Url, path: &str) -> Url {
    let mut url = base_url.clone();
    let base = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base}/{path}"));
    url
}

async fn checked_body(
    endpoint: &'static str,
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<bytes::Bytes, OAuthError> {
    let response = response.map_err(|e| OAuthError::Transport {
        endpoint,
        detail: e.without_url().to_string(),
    })?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| OAuthError::Transport {
        endpoint,
        detail: e.without_url().to_string(),
    })?;
    if !status.is_success() {
        return Err(OAuthError::Refused {
            endpoint,
            status: status.as_u16(),
            message: super::client::error_message(&body),
        });
    }
    Ok(body)
}

async fn grant(
    endpoint: &'static str,
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<TokenGrant, OAuthError> {
    let body = checked_body(endpoint, response).await?;
    let raw: RawGrant = serde_json::from_slice(&body).map_err(|e| OAuthError::Decode {
        endpoint,
        detail: e.to_string(),
    })?;
    // GHL access tokens last a day; assume that when `expires_in` is absent.
    let lifetime = Duration::from_secs(raw.expires_in.unwrap_or(86_400));
    Ok(TokenGrant {
        access_token: SecretString::from(raw.access_token),
        refresh_token: raw.refresh_token.map(SecretString::from),
        expires_at: Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or_default(),
        scopes: raw
            .scope
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        user_type: raw.user_type,
        location_id: raw.location_id,
        company_id: raw.company_id,
    })
}
