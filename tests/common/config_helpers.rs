//! Helpers of the configuration tests (`tests/config.rs`,
//! `tests/token_sealing.rs`): a minimal valid file, and loading a text as
//! the CLI loads it but with an environment of the test's choosing.
//!
//! Use with `#[path = "common/config_helpers.rs"] mod config_helpers;`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use ghl_sync::config::{self, ConfigError, LoadOptions, Loaded};

/// A minimal valid file with one pair (the GHL side authenticated by a
/// private token); tests append or replace lines.
pub const VALID: &str = r#"state_dir = "./state"

[sides.ghl]
kind = "ghl"
location_id = "loc-1"

[sides.ghl.auth]
method = "private_token"
token = "pit-token"

[sides.app]
kind = "rest"
base_url = "https://api.example.com/v1"

[sides.app.contacts]
get = "GET /contacts/{id}"

[pairs.main]
ghl = "ghl"
app = "app"
"#;

/// Writes `text` to `<dir>/ghlsync.toml` and loads it, with `env` as the
/// whole environment and no search for other files.
pub fn load_in(dir: &Path, text: &str, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let path = dir.join("ghlsync.toml");
    std::fs::write(&path, text).unwrap();
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    config::load(&LoadOptions {
        file: Some(path),
        env: Some(env),
        no_search: true,
    })
}
