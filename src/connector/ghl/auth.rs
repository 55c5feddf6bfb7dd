//! Where a GHL side's bearer token comes from, and keeping it fresh.
//!
//! A Private Integration Token is static. An OAuth token set lives in the
//! mirror store: it is refreshed shortly before it expires and once after a
//! 401, and the rotated refresh token is written to the store *before* the
//! new access token is used, so a crash can never leave the daemon holding
//! only a spent refresh token.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use super::oauth::{self, OAuthApp, OAuthError, TokenGrant};
use super::tokens::{StoredToken, TokenStore};

/// Refresh this long before the access token expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no OAuth tokens stored for {subject}: run `ghlsync auth login --side {side}` first")]
    NotLoggedIn { subject: String, side: String },
    #[error("refreshing the access token of {subject} failed: {source}")]
    Refresh {
        subject: String,
        #[source]
        source: OAuthError,
    },
    #[error(
        "the refresh token of {subject} was rejected: run `ghlsync auth login --side {side}` again"
    )]
    RefreshRejected { subject: String, side: String },
    #[error("side `{side}` is not an agency install (auth.user_type = \"Company\")")]
    NotCompany { side: String },
    #[error("cannot persist the refreshed tokens of {subject}: {detail}")]
    Persist { subject: String, detail: String },
}

/// The bearer credentials of one GHL side.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Private Integration Token or location API key.
    Static(SecretString),
    /// OAuth tokens kept in the mirror store.
    OAuth(Arc<OAuthSession>),
}

impl Credentials {
    /// The token to send now, refreshed first if it is about to expire.
    pub async fn access_token(&self) -> Result<SecretString, AuthError> {
        match self {
            Credentials::Static(token) => Ok(token.clone()),
            Credentials::OAuth(session) => session.access_token().await,
        }
    }

    /// After a 401: refresh unless another caller already replaced the
    /// token that failed. Returns `None` when refreshing cannot help.
    pub async fn after_unauthorized(
        &self,
        failed: &SecretString,
    ) -> Option<Result<SecretString, AuthError>> {
        match self {
            Credentials::Static(_) => None,
            Credentials::OAuth(session) => Some(session.refresh_after(failed).await),
        }
    }
}

/// How a location's token is obtained.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A location-level install: refresh with its own refresh token.
    Location,
    /// An agency install: mint location tokens from the company's tokens.
    Company { company_id: String },
}

/// OAuth tokens of one location, shared by every client of that location.
#[derive(Debug)]
pub struct OAuthSession {
    app: OAuthApp,
    http: reqwest::Client,
    /// Where the token sets are kept (the mirror store).
    tokens: Arc<dyn TokenStore>,
    side: String,
    location_id: String,
    source: TokenSource,
    /// Single flight: one refresh at a time; holds the current token set.
    current: Mutex<Option<StoredToken>>,
}

impl OAuthSession {
    pub fn new(
        app: OAuthApp,
        http: reqwest::Client,
        tokens: impl TokenStore + 'static,
        side: &str,
        location_id: &str,
        source: TokenSource,
    ) -> Arc<Self> {
        Arc::new(Self {
            app,
            http,
            tokens: Arc::new(tokens),
            side: side.to_owned(),
            location_id: location_id.to_owned(),
            source,
            current: Mutex::new(None),
        })
    }

    pub fn location_subject(location_id: &str) -> String {
        format!("location:{location_id}")
    }

    pub fn company_subject(company_id: &str) -> String {
        format!("company:{company_id}")
    }

    fn subject(&self) -> String {
        Self::location_subject(&self.location_id)
    }

    /// The stored token set, for `auth status` and scope checks.
    pub async fn token(&self) -> Result<StoredToken, AuthError> {
        let mut current = self.current.lock().await;
        self.loaded(&mut current).await.cloned()
    }

    async fn loaded<'a>(
        &self,
        current: &'a mut Option<StoredToken>,
    ) -> Result<&'a StoredToken, AuthError> {
        if current.is_none() {
            let subject = self.subject();
            let stored = self.load(&subject).await?;
            let stored = match (stored, &self.source) {
                (Some(token), _) => token,
                (None, TokenSource::Company { .. }) => self.mint_location_token().await?,
                (None, TokenSource::Location) => {
                    return Err(AuthError::NotLoggedIn {
                        subject,
                        side: self.side.clone(),
                    })
                }
            };
            *current = Some(stored);
        }
        Ok(current.as_ref().expect("just loaded"))
    }

    async fn load(&self, subject: &str) -> Result<Option<StoredToken>, AuthError> {
        self.tokens
            .load(subject)
            .await
            .map_err(|e| AuthError::Persist {
                subject: subject.to_owned(),
                detail: e.to_string(),
            })
    }

    async fn access_token(&self) -> Result<SecretString, AuthError> {
        let mut current = self.current.lock().await;
        let token = self.loaded(&mut current).await?;
        let margin = chrono::Duration::from_std(REFRESH_MARGIN).unwrap_or_default();
        if token.expires_at - margin > Utc::now() {
            return Ok(token.access_token.clone());
        }
        let renewed = self.renew(token).await?;
        let access = renewed.access_token.clone();
        *current = Some(renewed);
        Ok(access)
    }

    async fn refresh_after(&self, failed: &SecretString) -> Result<SecretString, AuthError> {
        let mut current = self.current.lock().await;
        let token = self.loaded(&mut current).await?;
        if token.access_token.expose_secret() != failed.expose_secret() {
            // Someone refreshed while our request was in flight.
            return Ok(token.access_token.clone());
        }
        let renewed = self.renew(token).await?;
        let access = renewed.access_token.clone();
        *current = Some(renewed);
        Ok(access)
    }

    /// A fresh token set for the location, persisted before it is returned.
    async fn renew(&self, old: &StoredToken) -> Result<StoredToken, AuthError> {
        match &self.source {
            TokenSource::Company { .. } => self.mint_location_token().await,
            TokenSource::Location => {
                let subject = self.subject();
                let user_type = old.user_type.as_deref().unwrap_or("Location");
                let grant = self
                    .app
                    .refresh(&self.http, &old.refresh_token, user_type)
                    .await
                    .map_err(|source| match source {
                        OAuthError::Refused {
                            status: 400 | 401, ..
                        } => AuthError::RefreshRejected {
                            subject: subject.clone(),
                            side: self.side.clone(),
                        },
                        source => AuthError::Refresh {
                            subject: subject.clone(),
                            source,
                        },
                    })?;
                let token = stored_token(&self.app, subject, grant, Some(old));
                self.persist(&token).await?;
                tracing::info!(
                    side = %self.side,
                    location = %self.location_id,
                    expires_at = %token.expires_at,
                    "refreshed GHL access token"
                );
                Ok(token)
            }
        }
    }

    /// Agency installs: the company's token set, refreshed (and persisted)
    /// first when it is about to expire.
    pub async fn company_token(&self) -> Result<StoredToken, AuthError> {
        let TokenSource::Company { company_id } = &self.source else {
            return Err(AuthError::NotCompany {
                side: self.side.clone(),
            });
        };
        let company_subject = Self::company_subject(company_id);
        let company = self
            .load(&company_subject)
            .await?
            .ok_or_else(|| AuthError::NotLoggedIn {
                subject: company_subject.clone(),
                side: self.side.clone(),
            })?;
        let margin = chrono::Duration::from_std(REFRESH_MARGIN).unwrap_or_default();
        if company.expires_at - margin > Utc::now() {
            return Ok(company);
        }
        let grant = self
            .app
            .refresh(&self.http, &company.refresh_token, "Company")
            .await
            .map_err(|source| AuthError::Refresh {
                subject: company_subject.clone(),
                source,
            })?;
        let company = stored_token(&self.app, company_subject, grant, Some(&company));
        self.persist(&company).await?;
        Ok(company)
    }

    /// Agency installs: mint a location token with the company's token.
    async fn mint_location_token(&self) -> Result<StoredToken, AuthError> {
        let company = self.company_token().await?;
        let TokenSource::Company { company_id } = &self.source else {
            unreachable!("company_token succeeded, so this is a company source")
        };
        let subject = self.subject();
        let grant = oauth::location_token(
            &self.http,
            &self.app.base_url,
            &company.access_token,
            company_id,
            &self.location_id,
        )
        .await
        .map_err(|source| AuthError::Refresh {
            subject: subject.clone(),
            source,
        })?;
        let token = stored_token(&self.app, subject, grant, None);
        self.persist(&token).await?;
        Ok(token)
    }

    async fn persist(&self, token: &StoredToken) -> Result<(), AuthError> {
        self.tokens
            .save(token)
            .await
            .map_err(|e| AuthError::Persist {
                subject: token.subject.clone(),
                detail: e.to_string(),
            })
    }
}

/// The stored form of a grant. A grant without a refresh token (location
/// tokens minted from an agency token) keeps the previous one, if any.
pub fn stored_token(
    app: &OAuthApp,
    subject: String,
    grant: TokenGrant,
    previous: Option<&StoredToken>,
) -> StoredToken {
    let refresh_token = grant
        .refresh_token
        .or_else(|| previous.map(|p| p.refresh_token.clone()))
        .unwrap_or_else(|| SecretString::from(String::new()));
    StoredToken {
        subject,
        client_id: app.client_id.clone(),
        access_token: grant.access_token,
        refresh_token,
        expires_at: grant.expires_at,
        scopes: grant.scopes,
        user_type: grant
            .user_type
            .or_else(|| previous.and_then(|p| p.user_type.clone())),
        company_id: grant
            .company_id
            .or_else(|| previous.and_then(|p| p.company_id.clone())),
        location_id: grant
            .location_id
            .or_else(|| previous.and_then(|p| p.location_id.clone())),
        updated_at: Utc::now(),
    }
}
