//! From a configured `[sides.<name>]` of kind `ghl` to a working client.

use std::sync::Arc;

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::auth::{AuthError, Credentials, OAuthSession, TokenSource};
use super::client::{ClientOptions, GhlClient};
use super::limiter::LimiterRegistry;
use super::oauth::OAuthApp;
use super::settings::{GhlAuth, GhlSide, OAuthInstall};
use super::tokens::TokenStore;

/// The Marketplace app of an OAuth side.
pub fn oauth_app(side: &GhlSide) -> Option<OAuthApp> {
    match &side.auth {
        GhlAuth::OAuth {
            client_id,
            client_secret,
            redirect_uri,
            ..
        } => Some(OAuthApp {
            client_id: client_id.clone(),
            client_secret: client_secret.value.clone(),
            redirect_uri: redirect_uri.clone(),
            base_url: side.base_url.clone(),
        }),
        GhlAuth::PrivateToken { .. } => None,
    }
}

/// Whose budget a side spends: GHL limits each app (OAuth client) on each
/// location; a Private Integration Token counts as its own app. A token is
/// identified by a hash prefix, never by its text.
pub fn budget_owner(side: &GhlSide) -> String {
    match &side.auth {
        GhlAuth::OAuth { client_id, .. } => format!("app:{client_id}"),
        GhlAuth::PrivateToken { token } => {
            let digest = Sha256::digest(token.value.expose_secret().as_bytes());
            format!("pit:{}", &hex::encode(digest)[..12])
        }
    }
}

/// The OAuth session of an OAuth side (`None` for a private token): how
/// its location's tokens are found, refreshed and persisted in `tokens`.
pub fn oauth_session(
    name: &str,
    side: &GhlSide,
    tokens: &(impl TokenStore + Clone + 'static),
    http: &reqwest::Client,
) -> Option<Arc<OAuthSession>> {
    let GhlAuth::OAuth { install, .. } = &side.auth else {
        return None;
    };
    let source = match install {
        OAuthInstall::Location => TokenSource::Location,
        OAuthInstall::Company { company_id } => TokenSource::Company {
            company_id: company_id.clone(),
        },
    };
    Some(OAuthSession::new(
        oauth_app(side)?,
        http.clone(),
        tokens.clone(),
        name,
        &side.location_id,
        source,
    ))
}

/// Builds the client of side `name`. OAuth sides need their tokens in
/// `tokens` (`ghlsync auth login`); their effective scopes are the
/// configured ones that the token was also granted, so configuration can
/// only narrow what a token may do.
pub async fn connect(
    name: &str,
    side: &GhlSide,
    tokens: &(impl TokenStore + Clone + 'static),
    limiters: &LimiterRegistry,
    http: reqwest::Client,
) -> Result<GhlClient, AuthError> {
    let (credentials, scopes) = match &side.auth {
        GhlAuth::PrivateToken { token } => (
            Credentials::Static(token.value.clone()),
            side.scopes.clone(),
        ),
        GhlAuth::OAuth { .. } => {
            let session = oauth_session(name, side, tokens, &http).expect("oauth side");
            let granted = session.token().await?.scopes;
            let scopes = side
                .scopes
                .iter()
                .filter(|scope| granted.contains(scope))
                .cloned()
                .collect();
            (Credentials::OAuth(session), scopes)
        }
    };
    let limiter = limiters.get(&budget_owner(side), &side.location_id, side.rate_limit);
    Ok(GhlClient::with_http(
        http,
        ClientOptions {
            base_url: side.base_url.clone(),
            location_id: side.location_id.clone(),
            credentials,
            scopes,
            limiter,
            retry: side.retry,
            timeout: side.timeout,
        },
    ))
}
