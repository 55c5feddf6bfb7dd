//! OAuth tokens of GHL sides, kept in the mirror so a restart (or another
//! replica) keeps using the latest refresh token: GHL refresh tokens are
//! single-use, so losing the newest one means re-installing the app.
//!
//! With `database.token_key` set, both tokens are sealed before they are
//! written (see `sealing.rs`); rows written in plain text before a key was
//! set still load, and are sealed in place as they are read.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::error::{op_err, Result, StoreError};
use super::sealing::{self, TokenColumn, Unsealable};
use super::sql::us;
use super::Store;
use crate::connector::ghl::{StoredToken, TokenStore, TokenStoreError};

#[derive(sqlx::FromRow)]
struct TokenRow {
    subject: String,
    client_id: String,
    access_token: String,
    refresh_token: String,
    expires_at: DateTime<Utc>,
    scopes: String,
    user_type: Option<String>,
    company_id: Option<String>,
    location_id: Option<String>,
    updated_at: DateTime<Utc>,
}

impl TokenRow {
    /// The token set, its columns opened with the store's key.
    fn open(self, store: &Store) -> Result<StoredToken> {
        let sealer = store.sealer.as_ref();
        let unsealable = |why: Unsealable| match why {
            Unsealable::NoKey => StoreError::TokenKeyMissing {
                subject: self.subject.clone(),
            },
            Unsealable::WrongKeyOrAltered => StoreError::TokenUndecryptable {
                subject: self.subject.clone(),
            },
        };
        let access_token = sealing::open(
            sealer,
            &self.subject,
            TokenColumn::Access,
            self.access_token.clone(),
        )
        .map_err(unsealable)?;
        let refresh_token = sealing::open(
            sealer,
            &self.subject,
            TokenColumn::Refresh,
            self.refresh_token.clone(),
        )
        .map_err(unsealable)?;
        Ok(StoredToken {
            subject: self.subject,
            client_id: self.client_id,
            access_token,
            refresh_token,
            expires_at: self.expires_at,
            scopes: self.scopes.split_whitespace().map(str::to_owned).collect(),
            user_type: self.user_type,
            company_id: self.company_id,
            location_id: self.location_id,
            updated_at: self.updated_at,
        })
    }

    /// Written in plain text (before a key was configured) while the store
    /// now has a key: such a row is sealed in place.
    fn needs_sealing(&self, store: &Store) -> bool {
        store.sealer.is_some()
            && !(sealing::is_sealed(&self.access_token) && sealing::is_sealed(&self.refresh_token))
    }
}

impl Store {
    /// Stores (or replaces) the token set of a subject, right after it is
    /// obtained or refreshed.
    pub async fn save_token(&self, token: &StoredToken) -> Result<()> {
        let subject = token.subject.as_str();
        let scopes = token.scopes.join(" ");
        let access = self.stored_form(subject, TokenColumn::Access, &token.access_token);
        let refresh = self.stored_form(subject, TokenColumn::Refresh, &token.refresh_token);
        on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO oauth_tokens (subject, client_id, access_token, refresh_token, \
                 expires_at, scopes, user_type, company_id, location_id, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (subject) DO UPDATE SET client_id = excluded.client_id, \
                   access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
                   expires_at = excluded.expires_at, scopes = excluded.scopes, \
                   user_type = excluded.user_type, company_id = excluded.company_id, \
                   location_id = excluded.location_id, updated_at = excluded.updated_at",
            )
            .bind(subject)
            .bind(token.client_id.as_str())
            .bind(access.expose_secret())
            .bind(refresh.expose_secret())
            .bind(us(token.expires_at))
            .bind(scopes.as_str())
            .bind(token.user_type.as_deref())
            .bind(token.company_id.as_deref())
            .bind(token.location_id.as_deref())
            .bind(us(token.updated_at))
            .execute(p)
            .await
            .map(|_| ())
        })
        .map_err(op_err(|| format!("save_token(subject={subject})")))
    }

    /// The stored token set of a subject, if any (start-up, and before each
    /// refresh in case another replica refreshed first).
    pub async fn load_token(&self, subject: &str) -> Result<Option<StoredToken>> {
        let row: Option<TokenRow> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT subject, client_id, access_token, refresh_token, expires_at, scopes, \
                 user_type, company_id, location_id, updated_at FROM oauth_tokens \
                 WHERE subject = $1",
            )
            .bind(subject)
            .fetch_optional(p)
            .await
        })
        .map_err(op_err(|| format!("load_token(subject={subject})")))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let needs_sealing = row.needs_sealing(self);
        let token = row.open(self)?;
        if needs_sealing {
            self.seal_in_place(&token).await;
        }
        Ok(Some(token))
    }

    /// Whether OAuth tokens are encrypted at rest (`database.token_key` is
    /// set), for start-up messages and status output.
    pub fn seals_tokens(&self) -> bool {
        self.sealer.is_some()
    }

    /// What goes into a token column: the sealed value with a key, the
    /// token itself without one.
    fn stored_form(
        &self,
        subject: &str,
        column: TokenColumn,
        token: &SecretString,
    ) -> SecretString {
        match &self.sealer {
            Some(sealer) => SecretString::from(sealer.seal(subject, column, token)),
            None => token.clone(),
        }
    }

    /// Replaces the plain tokens of a row just read with their sealed form,
    /// only if the row still holds exactly those tokens: another replica may
    /// have refreshed meanwhile, and its newer (single-use) refresh token
    /// must not be overwritten by this older one. A failure only leaves the
    /// row in plain text until the next save, so it is logged, not returned.
    async fn seal_in_place(&self, token: &StoredToken) {
        let subject = token.subject.as_str();
        let access = self.stored_form(subject, TokenColumn::Access, &token.access_token);
        let refresh = self.stored_form(subject, TokenColumn::Refresh, &token.refresh_token);
        let sealed = on_pool!(self, |p| {
            sqlx::query(
                "UPDATE oauth_tokens SET access_token = $1, refresh_token = $2 \
                 WHERE subject = $3 AND access_token = $4 AND refresh_token = $5",
            )
            .bind(access.expose_secret())
            .bind(refresh.expose_secret())
            .bind(subject)
            .bind(token.access_token.expose_secret())
            .bind(token.refresh_token.expose_secret())
            .execute(p)
            .await
            .map(|done| done.rows_affected())
        });
        match sealed {
            Ok(1) => tracing::info!(
                subject,
                "encrypted OAuth tokens that were stored in plain text"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(
                subject,
                error = %StoreError::query(format!("seal_token(subject={subject})"), error),
                "could not encrypt OAuth tokens stored in plain text; they stay so until the next refresh"
            ),
        }
    }
}

/// The GHL connector's OAuth sessions keep their tokens in the mirror.
#[async_trait::async_trait]
impl TokenStore for Store {
    async fn load(
        &self,
        subject: &str,
    ) -> std::result::Result<Option<StoredToken>, TokenStoreError> {
        Ok(self.load_token(subject).await?)
    }

    async fn save(&self, token: &StoredToken) -> std::result::Result<(), TokenStoreError> {
        Ok(self.save_token(token).await?)
    }
}
