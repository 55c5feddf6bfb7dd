//! `[sides.<name>.auth]` of a REST side: none, a bearer token, an API
//! key, basic auth or OAuth 2.0 client credentials.

use crate::config::reader::Table;
use crate::connector::rest::settings::{ApiKeyPlacement, ClientAuth, RestAuth};

pub(super) fn read_rest_auth(auth: &mut Table<'_>) -> Option<RestAuth> {
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
            if placement == ApiKeyPlacement::Header
                && reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
            {
                auth.report("header", Some(name), "not a valid HTTP header name");
                return None;
            }
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
            let client_auth = auth
                .one_of("client_auth", &["basic", "body"])
                .map(|how| match how {
                    "body" => ClientAuth::Body,
                    _ => ClientAuth::Basic,
                })
                .with_default(ClientAuth::default);
            Some(RestAuth::OAuth2ClientCredentials {
                token_url: token_url?,
                client_id: client_id?,
                client_secret: client_secret?,
                scopes,
                client_auth: client_auth?,
            })
        }
    }
}
