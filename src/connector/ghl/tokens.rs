//! Where a GHL side's OAuth token sets are kept. The session of
//! `auth.rs` loads and saves them through [`TokenStore`], so the
//! connector names no storage: the mirror store implements it (see
//! `store/tokens.rs`) and its caller passes the store in.

use chrono::{DateTime, Utc};
use secrecy::SecretString;

/// An OAuth token set of a GHL side. `Debug` redacts both tokens.
#[derive(Debug, Clone)]
pub struct StoredToken {
    /// `location:<id>` or `company:<id>`.
    pub subject: String,
    pub client_id: String,
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    pub expires_at: DateTime<Utc>,
    pub scopes: Vec<String>,
    pub user_type: Option<String>,
    pub company_id: Option<String>,
    pub location_id: Option<String>,
    /// When the token was obtained or last refreshed.
    pub updated_at: DateTime<Utc>,
}

/// Why a token set could not be loaded or saved, as the store reports it.
pub type TokenStoreError = Box<dyn std::error::Error + Send + Sync>;

/// Keeps the OAuth token sets of GHL sides across restarts (and replicas):
/// GHL refresh tokens are single-use, so the newest one must be saved
/// before it is used and loaded again before each refresh.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// The stored token set of a subject (`location:<id>` or
    /// `company:<id>`), if any.
    async fn load(&self, subject: &str) -> Result<Option<StoredToken>, TokenStoreError>;

    /// Stores (or replaces) the token set of its subject.
    async fn save(&self, token: &StoredToken) -> Result<(), TokenStoreError>;
}
