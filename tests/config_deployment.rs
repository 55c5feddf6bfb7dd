//! Configuration a first real deployment trips over: variables of the
//! environment named when they are wrong, the database's directories, and
//! REST descriptions that cannot work as written. Through the library, for
//! exact origins and warnings.

#[path = "common/config_helpers.rs"]
mod config_helpers;

use config_helpers::{load_in, VALID};
use ghl_sync::config::{self, Origin};

fn load_with_env(text: &str, env: &[(&str, &str)]) -> Result<config::Loaded, config::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    load_in(dir.path(), text, env)
}

fn problems_with_env(text: &str, env: &[(&str, &str)]) -> Vec<config::Problem> {
    load_with_env(text, env)
        .expect_err("configuration should be invalid")
        .problems()
        .to_vec()
}

/// A misspelt section set only from the environment is a table the
/// `config` crate builds without an origin: the problem must still name
/// the variable, not the file or the built-in defaults.
#[test]
fn an_unknown_key_from_the_environment_names_the_variable() {
    let found = problems_with_env(VALID, &[("GHLSYNC__SYNCC__POLL_INTERVAL", "1s")]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "syncc");
    assert_eq!(
        found[0].origin,
        Origin::Env {
            var: "GHLSYNC__SYNCC__POLL_INTERVAL".into()
        },
        "{}",
        found[0]
    );
    assert!(
        found[0].message.contains("did you mean `sync`"),
        "{}",
        found[0]
    );
}

/// A misspelt key inside a section the file writes is still the
/// variable's, not the section's line.
#[test]
fn an_unknown_nested_key_from_the_environment_names_the_variable() {
    let found = problems_with_env(VALID, &[("GHLSYNC__SIDES__GHL__AUTHH__TOKEN", "x")]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "sides.ghl.authh");
    assert_eq!(
        found[0].origin,
        Origin::Env {
            var: "GHLSYNC__SIDES__GHL__AUTHH__TOKEN".into()
        },
        "{}",
        found[0]
    );
}

/// An empty variable is an empty value, as `token = ""` in the file is,
/// and gives the same error naming the variable: never silently ignored.
#[test]
fn an_empty_environment_value_is_refused_like_an_empty_file_value() {
    let from_file = problems_with_env(&VALID.replace("token = \"pit-token\"", "token = \"\""), &[]);
    let from_env = problems_with_env(VALID, &[("GHLSYNC__SIDES__GHL__AUTH__TOKEN", "")]);
    assert_eq!(from_env.len(), 1, "{from_env:?}");
    assert_eq!(from_env[0].key, from_file[0].key);
    assert_eq!(from_env[0].message, from_file[0].message);
    assert_eq!(
        from_env[0].origin,
        Origin::Env {
            var: "GHLSYNC__SIDES__GHL__AUTH__TOKEN".into()
        }
    );
}
