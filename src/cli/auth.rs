//! `ghlsync auth login | status`: the OAuth 2.0 authorization-code flow of
//! a Marketplace app, and what credentials each GHL side holds.

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use chrono::Utc;
use clap::Subcommand;
use tokio::sync::mpsc;

use crate::config::{GhlAuth, GhlSide, Loaded, OAuthInstall, SideKind};
use crate::connector::ghl::auth::stored_token;
use crate::connector::ghl::build::{oauth_app, oauth_session};
use crate::connector::ghl::client::http_client;
use crate::connector::ghl::oauth::installed_locations;
use crate::connector::ghl::OAuthSession;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Authorize a Marketplace app for a GHL side and store its tokens.
    Login {
        /// The `[sides.<name>]` to authorize (kind "ghl", auth method "oauth").
        #[arg(long)]
        side: String,
        /// The `code` from the redirect, if you already have it. Without it,
        /// ghlsync listens on the redirect URI (when it is on this machine)
        /// or asks you to paste the code.
        #[arg(long)]
        code: Option<String>,
        /// How long to wait for the redirect.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        wait: Duration,
    },
    /// Agency installs: list the locations the app is installed in.
    Locations {
        /// The `[sides.<name>]` with auth.user_type = "Company".
        #[arg(long)]
        side: String,
        /// The Marketplace app id (the client id without its suffix).
        #[arg(long)]
        app_id: String,
    },
    /// Show each GHL side's credentials: kind, scopes and token expiry.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(loaded: Loaded, command: AuthCommand) -> anyhow::Result<()> {
    let store = Store::connect_and_migrate(&loaded.settings.database)
        .await
        .context("cannot open the mirror store")?;
    let result = match command {
        AuthCommand::Login { side, code, wait } => login(&loaded, &store, &side, code, wait).await,
        AuthCommand::Locations { side, app_id } => locations(&loaded, &store, &side, &app_id).await,
        AuthCommand::Status { json } => status(&loaded, &store, json).await,
    };
    store.close().await;
    result
}

fn ghl_side<'a>(loaded: &'a Loaded, name: &str) -> anyhow::Result<&'a GhlSide> {
    match loaded.settings.sides.get(name).map(|side| &side.kind) {
        Some(SideKind::Ghl(ghl)) => Ok(ghl),
        Some(_) => bail!("side `{name}` is not a GHL side"),
        None => bail!("no side `{name}` in the configuration"),
    }
}

async fn login(
    loaded: &Loaded,
    store: &Store,
    name: &str,
    code: Option<String>,
    wait: Duration,
) -> anyhow::Result<()> {
    let side = ghl_side(loaded, name)?;
    let GhlAuth::OAuth {
        authorize_url,
        install,
        redirect_uri,
        ..
    } = &side.auth
    else {
        bail!("side `{name}` uses a private token; `auth login` is for auth.method = \"oauth\"");
    };
    let app = oauth_app(side).expect("oauth side");
    let code = match code {
        Some(code) => code,
        None => {
            let url = app.authorization_url(authorize_url, &side.scopes);
            println!("Open this page, choose the location, and approve the app:\n\n  {url}\n");
            receive_code(redirect_uri, wait).await?
        }
    };
    let user_type = match install {
        OAuthInstall::Location => "Location",
        OAuthInstall::Company { .. } => "Company",
    };
    let http = http_client(side.timeout)?;
    let grant = app
        .exchange_code(&http, code.trim(), user_type)
        .await
        .context("exchanging the authorization code failed")?;
    let subject = match install {
        OAuthInstall::Location => {
            if let Some(location) = &grant.location_id {
                if location != &side.location_id {
                    bail!(
                        "the app was approved for location {location}, but side `{name}` is configured for {}; approve it for that location",
                        side.location_id
                    );
                }
            }
            OAuthSession::location_subject(&side.location_id)
        }
        OAuthInstall::Company { company_id } => OAuthSession::company_subject(company_id),
    };
    let token = stored_token(&app, subject.clone(), grant, None);
    store
        .save_token(&token)
        .await
        .context("cannot store the tokens")?;
    println!(
        "stored OAuth tokens for {subject}: scopes {}, access token valid until {}",
        token.scopes.join(" "),
        token.expires_at.to_rfc3339()
    );
    Ok(())
}

/// Waits for the browser's redirect on a loopback redirect URI, or reads
/// the code from standard input when the redirect goes elsewhere.
async fn receive_code(redirect_uri: &url::Url, wait: Duration) -> anyhow::Result<String> {
    let loopback = matches!(
        redirect_uri.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]")
    );
    if !loopback {
        println!(
            "Paste the `code` parameter of the page you were redirected to, then press Enter:"
        );
        let mut line = String::new();
        let read = tokio::task::spawn_blocking(move || {
            std::io::stdin().read_line(&mut line).map(|_| line)
        });
        let line = read.await??;
        return code_from_input(&line);
    }
    let port = redirect_uri.port_or_known_default().unwrap_or(80);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port} for the redirect"))?;
    println!("Waiting for the redirect to {redirect_uri} ...");
    let (sender, mut receiver) = mpsc::channel::<Result<String, String>>(1);
    let path = redirect_uri.path().to_owned();
    let app = axum::Router::new().route(
        &path,
        axum::routing::get(
            move |axum::extract::Query(query): axum::extract::Query<
                std::collections::HashMap<String, String>,
            >| {
                let sender = sender.clone();
                async move {
                    let outcome = match (query.get("code"), query.get("error")) {
                        (Some(code), _) => Ok(code.clone()),
                        (None, Some(error)) => Err(format!("authorization refused: {error}")),
                        (None, None) => Err("the redirect carried no code".to_owned()),
                    };
                    let page = match &outcome {
                        Ok(_) => "ghlsync: authorized. You can close this window.",
                        Err(_) => "ghlsync: authorization failed; see the terminal.",
                    };
                    let _ = sender.send(outcome).await;
                    page
                }
            },
        ),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let outcome = tokio::time::timeout(wait, receiver.recv()).await;
    server.abort();
    match outcome {
        Ok(Some(Ok(code))) => Ok(code),
        Ok(Some(Err(why))) => Err(anyhow!(why)),
        Ok(None) => Err(anyhow!("the redirect listener stopped")),
        Err(_) => Err(anyhow!(
            "no redirect within {}; run again, or pass --code",
            humantime::format_duration(wait)
        )),
    }
}

/// Accepts either the bare code or the whole redirect URL.
fn code_from_input(input: &str) -> anyhow::Result<String> {
    let input = input.trim();
    if let Ok(url) = url::Url::parse(input) {
        if let Some((_, code)) = url.query_pairs().find(|(key, _)| key == "code") {
            return Ok(code.into_owned());
        }
    }
    if input.is_empty() {
        bail!("no code entered");
    }
    Ok(input.to_owned())
}

async fn locations(loaded: &Loaded, store: &Store, name: &str, app_id: &str) -> anyhow::Result<()> {
    let side = ghl_side(loaded, name)?;
    let GhlAuth::OAuth {
        install: OAuthInstall::Company { company_id },
        ..
    } = &side.auth
    else {
        bail!("side `{name}` is not an agency install: set auth.method = \"oauth\" and auth.user_type = \"Company\"");
    };
    let http = http_client(side.timeout)?;
    let session = oauth_session(name, side, store, &http).expect("oauth side");
    let company = session.company_token().await?;
    let installed = installed_locations(
        &http,
        &side.base_url,
        &company.access_token,
        company_id,
        app_id,
    )
    .await
    .context("listing installed locations failed")?;
    if installed.is_empty() {
        println!("the app is installed in no location of company {company_id}");
    }
    for location in installed {
        println!(
            "{:<24} {}",
            location.id,
            location.name.as_deref().unwrap_or("(no name)")
        );
    }
    Ok(())
}

async fn status(loaded: &Loaded, store: &Store, json: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for side in loaded.settings.sides.values() {
        let SideKind::Ghl(ghl) = &side.kind else {
            continue;
        };
        rows.push(token_row(store, &side.name, ghl).await?);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no GHL sides configured");
    }
    for row in rows {
        print_token_row(&row);
    }
    Ok(())
}

/// How the GHL side `name` authenticates, and the state of its stored
/// OAuth token, as `auth status --json` prints it.
async fn token_row(store: &Store, name: &str, ghl: &GhlSide) -> anyhow::Result<serde_json::Value> {
    Ok(match &ghl.auth {
        GhlAuth::PrivateToken { token } => serde_json::json!({
            "side": name,
            "location": ghl.location_id,
            "method": "private_token",
            "token": token.source.to_string(),
            "scopes": ghl.scopes,
        }),
        GhlAuth::OAuth { install, .. } => {
            let subject = match install {
                OAuthInstall::Location => OAuthSession::location_subject(&ghl.location_id),
                OAuthInstall::Company { company_id } => OAuthSession::company_subject(company_id),
            };
            match store.load_token(&subject).await? {
                Some(token) => serde_json::json!({
                    "side": name,
                    "location": ghl.location_id,
                    "method": "oauth",
                    "subject": subject,
                    "scopes": token.scopes,
                    "expires_at": token.expires_at.to_rfc3339(),
                    "expired": token.expires_at <= Utc::now(),
                    "refreshed_at": token.updated_at.to_rfc3339(),
                }),
                None => serde_json::json!({
                    "side": name,
                    "location": ghl.location_id,
                    "method": "oauth",
                    "subject": subject,
                    "missing": format!("no tokens stored: run `ghlsync auth login --side {}`", name),
                }),
            }
        }
    })
}

/// One line of `auth status`, from its JSON row.
fn print_token_row(row: &serde_json::Value) {
    let text = |key: &str| {
        row.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    let scopes = row
        .get("scopes")
        .and_then(|v| v.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let detail = if !text("missing").is_empty() {
        text("missing")
    } else if text("method") == "oauth" {
        let state = if row["expired"] == true {
            "EXPIRED at"
        } else {
            "valid until"
        };
        format!(
            "access token {state} {}, scopes: {scopes}",
            text("expires_at")
        )
    } else {
        format!("private token {}, scopes: {scopes}", text("token"))
    };
    println!(
        "{:<8} location {:<24} {}",
        text("side"),
        text("location"),
        detail
    );
}
