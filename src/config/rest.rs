//! `[sides.<name>]` of kind `rest`: the operator's own app, described in
//! TOML so that connecting it needs no code.

use url::Url;

use super::reader::{Got, Secret, Table};

/// The operator's own app or CRM, reached over its REST API.
#[derive(Debug, Clone)]
pub struct RestSide {
    pub base_url: Url,
    pub auth: RestAuth,
    /// Shared secret of the app's HMAC-signed webhooks, when it sends any.
    pub webhook_secret: Option<Secret>,
}

#[derive(Debug, Clone)]
pub enum RestAuth {
    None,
    Bearer {
        token: Secret,
    },
    /// A key sent in a header (for example `X-Api-Key`) or a query parameter.
    ApiKey {
        placement: ApiKeyPlacement,
        name: String,
        key: Secret,
    },
    Basic {
        username: String,
        password: Secret,
    },
    OAuth2ClientCredentials {
        token_url: Url,
        client_id: String,
        client_secret: Secret,
        scopes: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyPlacement {
    Header,
    Query,
}

pub(crate) fn read_rest(table: &mut Table<'_>) -> Option<RestSide> {
    let base_url = table.http_url("base_url");
    let base_url = table.required(
        "base_url",
        base_url,
        "the app's API root, for example \"https://api.example.com/v1\"",
    );
    let webhook_secret = table.secret("webhook_secret", "webhook_secret_file");
    let webhook_secret = match webhook_secret {
        Got::Value(secret) => Some(Some(secret)),
        Got::Absent => Some(None),
        Got::Invalid => None,
    };
    let auth = match table.table("auth") {
        Got::Value(mut auth) => {
            let read = read_rest_auth(&mut auth);
            if auth.was_valid("method") {
                auth.finish();
            }
            read
        }
        Got::Absent => Some(RestAuth::None),
        Got::Invalid => None,
    };
    Some(RestSide {
        base_url: base_url?,
        auth: auth?,
        webhook_secret: webhook_secret?,
    })
}

fn read_rest_auth(auth: &mut Table<'_>) -> Option<RestAuth> {
    const METHODS: [&str; 5] = [
        "none",
        "bearer",
        "api_key",
        "basic",
        "oauth2_client_credentials",
    ];
    let method = auth.one_of("method", &METHODS);
    match auth.required("method", method, "how the app authenticates requests")? {
        "none" => Some(RestAuth::None),
        "bearer" => {
            let token = auth.secret("token", "token_file");
            let token = auth.required("token", token, "the bearer token (or `token_file`)")?;
            Some(RestAuth::Bearer { token })
        }
        "api_key" => {
            let key = auth.secret("key", "key_file");
            let key = auth.required("key", key, "the API key (or `key_file`)");
            let header = auth.non_empty("header").optional();
            let query = auth.non_empty("query").optional();
            let (placement, name) = match (header, query) {
                (Some(header), None) => (ApiKeyPlacement::Header, header),
                (None, Some(query)) => (ApiKeyPlacement::Query, query),
                (Some(_), Some(_)) => {
                    auth.report("header", None, "set either `header` or `query`, not both");
                    return None;
                }
                (None, None) => {
                    auth.report_table("api_key needs `header` (a header name such as \"X-Api-Key\") or `query` (a query parameter name)");
                    return None;
                }
            };
            Some(RestAuth::ApiKey {
                placement,
                name,
                key: key?,
            })
        }
        "basic" => {
            let username = auth.string("username");
            let username = auth.required("username", username, "the user name");
            let password = auth.secret("password", "password_file");
            let password = auth.required("password", password, "the password (or `password_file`)");
            Some(RestAuth::Basic {
                username: username?,
                password: password?,
            })
        }
        _ => {
            let token_url = auth.http_url("token_url");
            let token_url = auth.required("token_url", token_url, "the OAuth 2.0 token endpoint");
            let client_id = auth.non_empty("client_id");
            let client_id = auth.required("client_id", client_id, "the OAuth 2.0 client id");
            let secret = auth.secret("client_secret", "client_secret_file");
            let client_secret = auth.required(
                "client_secret",
                secret,
                "the client secret (or `client_secret_file`)",
            );
            let scopes = auth.string_list("scopes").or(Vec::new());
            Some(RestAuth::OAuth2ClientCredentials {
                token_url: token_url?,
                client_id: client_id?,
                client_secret: client_secret?,
                scopes,
            })
        }
    }
}
