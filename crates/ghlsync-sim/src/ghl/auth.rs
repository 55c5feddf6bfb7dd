//! Bearer tokens, OAuth clients, authorization codes and rotating refresh
//! tokens.
//!
//! Choices where the spec is silent:
//! - Tokens are opaque strings (not JWTs); clients must not parse them.
//! - A token belongs to an app (the OAuth `client_id`, or `sim-app` for
//!   tokens issued directly by [`super::SimHandle::issue_token`]); the rate
//!   limiter keys on `(app, location or company)`.
//! - Refreshing rotates: the refresh token used is spent, a new one is
//!   returned, and a spent one is refused with 400 `invalid_grant`. The
//!   previous access token stays valid until it expires (as on the live
//!   API).
//! - Authorization codes are single-use and expire after 10 minutes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The app id of tokens issued without an OAuth client.
pub const DEFAULT_APP_ID: &str = "sim-app";

/// Who a token acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserType {
    /// A Sub-Account (location) token.
    Location,
    /// An Agency (company) token.
    Company,
}

impl UserType {
    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Location => "Location",
            UserType::Company => "Company",
        }
    }
}

/// What a bearer token grants.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// The app (OAuth client id) the token was issued to.
    pub app_id: String,
    /// Location or Company.
    pub user_type: UserType,
    /// The location of a Location token.
    pub location_id: Option<String>,
    /// The company.
    pub company_id: String,
    /// Granted scopes, e.g. `contacts.readonly`.
    pub scopes: BTreeSet<String>,
    /// `None` = never expires (like a Private Integration token).
    pub expires_at: Option<Instant>,
    /// The installing user.
    pub user_id: String,
}

impl TokenInfo {
    /// The rate-limit key: `(app, location or company)`.
    pub fn rate_key(&self) -> (String, String) {
        (
            self.app_id.clone(),
            self.location_id
                .clone()
                .unwrap_or_else(|| self.company_id.clone()),
        )
    }
    pub fn scope_string(&self) -> String {
        self.scopes.iter().cloned().collect::<Vec<_>>().join(" ")
    }
}

/// The result of looking a bearer token up.
#[derive(Debug, Clone)]
pub(crate) enum TokenState {
    Valid(TokenInfo),
    Expired,
    Unknown,
}

#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub client_id: String,
    pub user_type: UserType,
    pub location_id: Option<String>,
    pub company_id: String,
    pub scopes: BTreeSet<String>,
    pub user_id: String,
    pub expires_at: Instant,
}

#[derive(Debug)]
pub(crate) struct AuthState {
    tokens: HashMap<String, TokenInfo>,
    clients: HashMap<String, String>,
    codes: HashMap<String, Grant>,
    refresh: HashMap<String, Grant>,
    spent_refresh: HashSet<String>,
    rng: ChaCha8Rng,
    pub access_ttl: Duration,
}

/// Why a grant was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GrantError {
    InvalidClient,
    InvalidCode,
    SpentRefresh,
    InvalidRefresh,
}

fn opaque(rng: &mut ChaCha8Rng, prefix: &str) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    let body: String = (0..40).map(|_| HEX[rng.gen_range(0..16)] as char).collect();
    format!("{prefix}{body}")
}

impl AuthState {
    pub fn new(rng: ChaCha8Rng, access_ttl: Duration) -> Self {
        AuthState {
            tokens: HashMap::new(),
            clients: HashMap::new(),
            codes: HashMap::new(),
            refresh: HashMap::new(),
            spent_refresh: HashSet::new(),
            rng,
            access_ttl,
        }
    }

    pub fn lookup(&self, token: &str) -> TokenState {
        match self.tokens.get(token) {
            None => TokenState::Unknown,
            Some(info) if info.expires_at.is_some_and(|at| Instant::now() >= at) => {
                TokenState::Expired
            }
            Some(info) => TokenState::Valid(info.clone()),
        }
    }

    /// Stores a token under a given string (static tokens).
    pub fn insert(&mut self, token: String, info: TokenInfo) {
        self.tokens.insert(token, info);
    }

    pub fn issue(&mut self, info: TokenInfo) -> String {
        let token = opaque(&mut self.rng, "sim-at-");
        self.tokens.insert(token.clone(), info);
        token
    }

    pub fn revoke(&mut self, token: &str) -> bool {
        self.tokens.remove(token).is_some()
    }

    pub fn register_client(&mut self, client_id: &str, secret: &str) {
        self.clients.insert(client_id.into(), secret.into());
    }

    pub fn check_client(&self, client_id: &str, secret: &str) -> Result<(), GrantError> {
        match self.clients.get(client_id) {
            Some(s) if s == secret => Ok(()),
            _ => Err(GrantError::InvalidClient),
        }
    }

    pub fn new_code(&mut self, grant: Grant) -> String {
        let code = opaque(&mut self.rng, "");
        self.codes.insert(code.clone(), grant);
        code
    }

    pub fn user_id(&mut self) -> String {
        super::model::gen_id(&mut self.rng)
    }

    /// Exchanges a code (single use) for `(access token, refresh token, grant)`.
    pub fn exchange_code(
        &mut self,
        client_id: &str,
        code: &str,
    ) -> Result<(String, String, Grant), GrantError> {
        let grant = self.codes.remove(code).ok_or(GrantError::InvalidCode)?;
        if grant.client_id != client_id || grant.expires_at <= Instant::now() {
            return Err(GrantError::InvalidCode);
        }
        Ok(self.mint(grant))
    }

    /// Uses a refresh token: it is spent, and a new pair is returned.
    pub fn refresh(
        &mut self,
        client_id: &str,
        refresh_token: &str,
    ) -> Result<(String, String, Grant), GrantError> {
        if self.spent_refresh.contains(refresh_token) {
            return Err(GrantError::SpentRefresh);
        }
        let grant = match self.refresh.get(refresh_token) {
            Some(g) if g.client_id == client_id && g.expires_at > Instant::now() => g.clone(),
            _ => return Err(GrantError::InvalidRefresh),
        };
        self.refresh.remove(refresh_token);
        self.spent_refresh.insert(refresh_token.to_string());
        Ok(self.mint(grant))
    }

    fn mint(&mut self, grant: Grant) -> (String, String, Grant) {
        let access = self.issue(TokenInfo {
            app_id: grant.client_id.clone(),
            user_type: grant.user_type,
            location_id: grant.location_id.clone(),
            company_id: grant.company_id.clone(),
            scopes: grant.scopes.clone(),
            expires_at: Some(Instant::now() + self.access_ttl),
            user_id: grant.user_id.clone(),
        });
        let refresh = opaque(&mut self.rng, "sim-rt-");
        let mut stored = grant.clone();
        stored.expires_at = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        self.refresh.insert(refresh.clone(), stored);
        (access, refresh, grant)
    }
}
