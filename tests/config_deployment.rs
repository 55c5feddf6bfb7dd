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

/// Tasks listed only under their contact, whose records do not name it:
/// each belongs to the contact it was read under, so no pointer is needed.
const NESTED_TASKS: &str = "
[sides.app.tasks]
children = \"GET /contacts/{contact_id}/tasks\"
get = \"GET /contacts/{contact_id}/tasks/{id}\"
create = \"POST /contacts/{contact_id}/tasks\"
update = \"PATCH /contacts/{contact_id}/tasks/{id}\"
";

#[test]
fn nested_only_tasks_need_no_parent_pointer() {
    let loaded = load_with_env(&format!("{VALID}{NESTED_TASKS}"), &[])
        .expect("nested-only tasks without parent_pointer are valid");
    let config::SideKind::Rest(rest) = &loaded.settings.sides["app"].kind else {
        panic!("rest side")
    };
    let tasks = rest.tasks.as_ref().expect("tasks");
    assert!(tasks.parent_pointer.is_none());
}

/// Records of a flat `list`, and a create without `{contact_id}`, can say
/// whose they are only through the pointer: still required, saying why.
#[test]
fn a_child_list_or_flat_create_still_needs_parent_pointer() {
    let flat_create = NESTED_TASKS.replace(
        "create = \"POST /contacts/{contact_id}/tasks\"",
        "create = \"POST /tasks\"",
    );
    for (tasks, why) in [
        (
            format!("{NESTED_TASKS}list = \"GET /tasks\"\n"),
            "`list` (\"GET /tasks\") reads records outside their contact",
        ),
        (
            flat_create,
            "`create` (\"POST /tasks\") has no `{contact_id}`",
        ),
    ] {
        let text = format!("{VALID}{tasks}");
        let found = problems_with_env(&text, &[]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].key, "sides.app.tasks.parent_pointer");
        assert!(
            found[0].message.contains("missing required key"),
            "{}",
            found[0]
        );
        assert!(found[0].message.contains(why), "{}", found[0]);
    }
}

/// `match_key = "phone"` with no `lookup_phone` on the REST side works one
/// way only: a warning names the pair, the field and the side.
#[test]
fn a_match_key_the_rest_side_cannot_look_up_is_warned() {
    let phone_key = "
[[pairs.main.fields]]
name = \"phone\"
ghl = \"/phone\"
app = \"/phone\"
match_key = \"phone\"
";
    let loaded = load_with_env(&format!("{VALID}{phone_key}"), &[]).expect("valid, warned");
    let warning = loaded
        .warnings
        .iter()
        .find(|w| w.contains("lookup_phone"))
        .unwrap_or_else(|| panic!("no warning about lookup_phone: {:?}", loaded.warnings));
    for needle in [
        "pair `main`",
        "field `phone`",
        "side `app`",
        "match_key = \"phone\"",
    ] {
        assert!(warning.contains(needle), "{needle:?} missing: {warning}");
    }

    let with_lookup = format!("{VALID}{phone_key}").replace(
        "get = \"GET /contacts/{id}\"",
        "get = \"GET /contacts/{id}\"\nlookup_phone = \"GET /contacts?phone={value}\"",
    );
    let loaded = load_with_env(&with_lookup, &[]).unwrap();
    assert!(
        !loaded.warnings.iter().any(|w| w.contains("lookup_phone")),
        "{:?}",
        loaded.warnings
    );
}

/// `config/example.toml` holds the app's tags as one delimited string:
/// read, "VIP, 2024" is the list GHL holds; written, the list is one string
/// again, so the app's field keeps its shape both ways.
#[test]
fn the_example_maps_a_delimited_field_both_ways() {
    use ghl_sync::domain::{EntityKind, Side};
    use serde_json::{json, Value};
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let loaded = config::load(&config::LoadOptions {
        file: Some(example),
        env: Some(Default::default()),
        no_search: true,
    })
    .expect("config/example.toml is valid");
    let map = &loaded.settings.pairs["main"].map;

    let native = json!({"tags": "VIP, 2024,, "});
    let canonical = map
        .to_canonical(EntityKind::Contact, Side::App, native.as_object().unwrap())
        .unwrap();
    let mut tags: Vec<&str> = canonical["tags"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["2024", "vip"]);

    let changes = [("tags".to_owned(), json!(["vip", "2024"]))]
        .into_iter()
        .collect();
    let patch = map
        .to_native(EntityKind::Contact, Side::App, &changes)
        .unwrap();
    assert_eq!(patch["tags"], json!("vip,2024"));
    let to_ghl = map
        .to_native(EntityKind::Contact, Side::Ghl, &changes)
        .unwrap();
    assert_eq!(to_ghl["tags"], json!(["vip", "2024"]), "GHL keeps a list");
}
