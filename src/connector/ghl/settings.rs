//! The settings of a GHL side, as `config` fills them in from
//! `[sides.<name>]` of kind `ghl`: which location, how to authenticate,
//! which scopes, and how fast and how persistently to call the API. The
//! connector owns these types; configuration only reads and validates
//! TOML into them.

use std::time::Duration;

use url::Url;

use super::limiter::RateLimits;
use crate::connector::http::RetryPolicy;
use crate::connector::Secret;

/// The GoHighLevel API v2 host.
pub const DEFAULT_GHL_BASE_URL: &str = "https://services.leadconnectorhq.com";

/// Scopes a GHL side asks for when none are configured: read and write
/// contacts, nothing more (least privilege).
pub const DEFAULT_GHL_SCOPES: [&str; 2] = ["contacts.readonly", "contacts.write"];

/// A GoHighLevel location (sub-account).
#[derive(Debug, Clone)]
pub struct GhlSide {
    pub location_id: String,
    pub base_url: Url,
    pub auth: GhlAuth,
    /// The scopes granted to this side's credentials. With only
    /// `contacts.readonly` the pair runs one-way and never writes to GHL.
    pub scopes: Vec<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    pub rate_limit: RateLimits,
    pub retry: RetryPolicy,
}

impl GhlSide {
    pub fn can_write_contacts(&self) -> bool {
        self.scopes.iter().any(|scope| scope == "contacts.write")
    }
}

// Settings are built once per process; a boxed variant would only make
// every match on them noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum GhlAuth {
    /// A Private Integration Token or location API key: a static bearer.
    PrivateToken { token: Secret },
    /// A Marketplace app: tokens come from the OAuth 2.0 code flow and are
    /// kept (and refreshed) in the mirror store.
    OAuth {
        client_id: String,
        client_secret: Secret,
        redirect_uri: Url,
        /// The page where the operator approves the app
        /// (`chooselocation`; white-labelled agencies have their own host).
        authorize_url: Url,
        /// `Location` installs refresh their own tokens; `Company` (agency)
        /// installs mint location tokens from the company's.
        install: OAuthInstall,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthInstall {
    Location,
    Company { company_id: String },
}
