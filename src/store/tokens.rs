//! OAuth tokens of GHL sides, kept in the mirror so a restart (or another
//! replica) keeps using the latest refresh token: GHL refresh tokens are
//! single-use, so losing the newest one means re-installing the app.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::error::{op_err, Result};
use super::model::StoredToken;
use super::sql::us;
use super::Store;

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

impl From<TokenRow> for StoredToken {
    fn from(r: TokenRow) -> StoredToken {
        StoredToken {
            subject: r.subject,
            client_id: r.client_id,
            access_token: SecretString::from(r.access_token),
            refresh_token: SecretString::from(r.refresh_token),
            expires_at: r.expires_at,
            scopes: r.scopes.split_whitespace().map(str::to_owned).collect(),
            user_type: r.user_type,
            company_id: r.company_id,
            location_id: r.location_id,
            updated_at: r.updated_at,
        }
    }
}

impl Store {
    /// Stores (or replaces) the token set of a subject, right after it is
    /// obtained or refreshed.
    pub async fn save_token(&self, token: &StoredToken) -> Result<()> {
        let subject = token.subject.as_str();
        let scopes = token.scopes.join(" ");
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
            .bind(token.access_token.expose_secret())
            .bind(token.refresh_token.expose_secret())
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
        Ok(row.map(StoredToken::from))
    }
}
