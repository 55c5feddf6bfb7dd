//! Credentials of a REST app, applied to each request: static ones as
//! configured, OAuth 2.0 client-credentials tokens fetched, cached until
//! shortly before they expire, and renewed after a 401.

use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::RequestBuilder;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use super::settings::{ApiKeyPlacement, ClientAuth, RestAuth};
use crate::connector::http::{read_limited, snippet, ReadFailure};

/// A token is renewed this long before it expires (or a tenth of its
/// lifetime, for short-lived tokens).
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);
/// Lifetime assumed when the token endpoint does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Token responses are small; anything bigger is refused.
const MAX_TOKEN_BODY: u64 = 64 * 1024;

/// How requests to the app are authenticated.
#[derive(Debug)]
pub(crate) enum Auth {
    None,
    Bearer(SecretString),
    Header {
        name: HeaderName,
        key: SecretString,
    },
    Query {
        name: String,
        key: SecretString,
    },
    Basic {
        username: String,
        password: SecretString,
    },
    ClientCredentials(ClientCredentials),
}

/// What a request carries: nothing, or the token it was sent with (so a
/// 401 renews only that token, once, however many requests saw it).
pub(crate) type Used = Option<SecretString>;

/// Why no token could be had.
#[derive(Debug, Clone)]
pub(crate) struct TokenFailure {
    pub message: String,
    /// Worth trying again (transport, 5xx, 429), as opposed to refused
    /// credentials.
    pub transient: bool,
}

impl Auth {
    pub fn new(config: &RestAuth) -> Self {
        match config {
            RestAuth::None => Auth::None,
            RestAuth::Bearer { token } => Auth::Bearer(token.value.clone()),
            RestAuth::ApiKey {
                placement: ApiKeyPlacement::Header,
                name,
                key,
            } => Auth::Header {
                name: HeaderName::from_bytes(name.as_bytes())
                    .unwrap_or(HeaderName::from_static("x-api-key")),
                key: key.value.clone(),
            },
            RestAuth::ApiKey {
                placement: ApiKeyPlacement::Query,
                name,
                key,
            } => Auth::Query {
                name: name.clone(),
                key: key.value.clone(),
            },
            RestAuth::Basic { username, password } => Auth::Basic {
                username: username.clone(),
                password: password.value.clone(),
            },
            RestAuth::OAuth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
                client_auth,
            } => Auth::ClientCredentials(ClientCredentials {
                token_url: token_url.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.value.clone(),
                scopes: scopes.clone(),
                client_auth: *client_auth,
                cached: Mutex::new(None),
            }),
        }
    }

    /// The credentials for the next request (fetching a token if needed).
    pub async fn current(&self, http: &reqwest::Client) -> Result<Used, TokenFailure> {
        match self {
            Auth::ClientCredentials(cc) => cc.token(http).await.map(Some),
            _ => Ok(None),
        }
    }

    /// After a 401 to `used`: a renewed token to try once more, or `None`
    /// when these credentials cannot be renewed.
    pub async fn renew(
        &self,
        http: &reqwest::Client,
        used: &Used,
    ) -> Option<Result<Used, TokenFailure>> {
        match (self, used) {
            (Auth::ClientCredentials(cc), Some(used)) => Some(cc.renew(http, used).await.map(Some)),
            _ => None,
        }
    }

    /// Puts the credentials on a request. `url` gets the query key, if any.
    pub fn apply(&self, builder: RequestBuilder, used: &Used) -> RequestBuilder {
        match self {
            Auth::None | Auth::Query { .. } => builder,
            Auth::Bearer(token) => builder.bearer_auth(token.expose_secret()),
            Auth::Header { name, key } => match HeaderValue::from_str(key.expose_secret()) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    builder.header(name.clone(), value)
                }
                Err(_) => builder,
            },
            Auth::Basic { username, password } => {
                builder.basic_auth(username, Some(password.expose_secret()))
            }
            Auth::ClientCredentials(_) => match used {
                Some(token) => builder.bearer_auth(token.expose_secret()),
                None => builder,
            },
        }
    }

    /// Adds the API key to a URL when it travels in the query.
    pub fn apply_query(&self, url: &mut Url) {
        if let Auth::Query { name, key } = self {
            // A next-page URL may carry the key already: replace it.
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != name)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let mut pairs = url.query_pairs_mut();
            pairs.clear();
            for (k, v) in &kept {
                pairs.append_pair(k, v);
            }
            pairs.append_pair(name, key.expose_secret());
        }
    }
}

/// An OAuth 2.0 client-credentials grant (RFC 6749 §4.4) and its cached
/// token.
#[derive(Debug)]
pub(crate) struct ClientCredentials {
    token_url: Url,
    client_id: String,
    client_secret: SecretString,
    scopes: Vec<String>,
    client_auth: ClientAuth,
    /// One token at a time; the lock also makes concurrent callers wait
    /// for a single fetch instead of each fetching their own.
    cached: Mutex<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    token: SecretString,
    renew_at: Instant,
}

impl ClientCredentials {
    async fn token(&self, http: &reqwest::Client) -> Result<SecretString, TokenFailure> {
        let mut cached = self.cached.lock().await;
        if let Some(current) = cached.as_ref() {
            if Instant::now() < current.renew_at {
                return Ok(current.token.clone());
            }
        }
        let fresh = self.fetch(http).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// A new token unless another caller already replaced `used`.
    async fn renew(
        &self,
        http: &reqwest::Client,
        used: &SecretString,
    ) -> Result<SecretString, TokenFailure> {
        let mut cached = self.cached.lock().await;
        if let Some(current) = cached.as_ref() {
            if current.token.expose_secret() != used.expose_secret()
                && Instant::now() < current.renew_at
            {
                return Ok(current.token.clone());
            }
        }
        tracing::debug!(token_url = %self.token_url, "token refused; fetching a new one");
        let fresh = self.fetch(http).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// The token request's form body (built apart: the serializer is not
    /// `Send`).
    fn form(&self) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if !self.scopes.is_empty() {
            form.append_pair("scope", &self.scopes.join(" "));
        }
        if self.client_auth == ClientAuth::Body {
            form.append_pair("client_id", &self.client_id);
            form.append_pair("client_secret", self.client_secret.expose_secret());
        }
        form.finish()
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<Cached, TokenFailure> {
        let form = self.form();
        let mut builder = http
            .post(self.token_url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("Accept", "application/json");
        if self.client_auth == ClientAuth::Basic {
            // RFC 6749 §2.3.1: both parts form-encoded before Basic.
            let encode = |text: &str| -> String {
                url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
            };
            let pair = format!(
                "{}:{}",
                encode(&self.client_id),
                encode(self.client_secret.expose_secret())
            );
            let mut value = HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ))
            .map_err(|_| TokenFailure {
                message: "the client id or secret cannot be sent in a header".into(),
                transient: false,
            })?;
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        let started = std::time::Instant::now();
        let read = read_limited(builder.body(form).send().await, MAX_TOKEN_BODY).await;
        let at = format!("POST {}", self.token_url);
        let (status, _headers, body) = read.map_err(|failure| TokenFailure {
            transient: matches!(failure, ReadFailure::Transport { .. }),
            message: format!("token endpoint {at}: {failure}"),
        })?;
        tracing::debug!(
            method = "POST",
            path = %self.token_url.path(),
            status = status.as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "token endpoint call"
        );
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        if !status.is_success() {
            let detail = json
                .as_ref()
                .map(|v| {
                    let error = v.get("error").and_then(Value::as_str).unwrap_or("");
                    let description = v
                        .get("error_description")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    format!("{error} {description}").trim().to_owned()
                })
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| snippet(&body));
            return Err(TokenFailure {
                transient: status.as_u16() == 429 || status.is_server_error(),
                message: format!("token endpoint {at} answered {status}: {detail}"),
            });
        }
        let Some(token) = json
            .as_ref()
            .and_then(|v| v.get("access_token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        else {
            return Err(TokenFailure {
                transient: false,
                message: format!("token endpoint {at} answered {status} without `access_token`"),
            });
        };
        let lifetime = json
            .as_ref()
            .and_then(|v| v.get("expires_in"))
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()))
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LIFETIME);
        let margin = EXPIRY_MARGIN.min(lifetime / 10);
        Ok(Cached {
            token: SecretString::from(token.to_owned()),
            renew_at: Instant::now() + lifetime.saturating_sub(margin),
        })
    }
}
