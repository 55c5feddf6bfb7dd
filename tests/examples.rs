//! The shipped examples (config/examples/*.toml), end to end: each file is
//! loaded as an operator would write it, pointed at the in-process GHL and
//! app simulators by rewriting its known placeholder values (base URLs,
//! location, token, state directory), and run for a cycle or two; then the
//! promises of the integration page the example was written from are
//! checked on both simulators.

use std::path::{Path, PathBuf};

use ghl_sync::config::SideKind;
use ghl_sync::config::{self, LoadOptions, Loaded};
use ghl_sync::demo::{self, Sims};
use ghl_sync::engine::{Engine, Mode, Reconcile, Report, Shutdown};
use ghl_sync::mapping::Flow;
use ghlsync_sim::app::AppSimHandle;
use ghlsync_sim::ghl::SimHandle;
use serde_json::{json, Value};

/// The app side's URL in every example (the app simulator's default).
const APP_URL: &str = "base_url = \"http://127.0.0.1:8080/api/v1\"";
/// The GHL side's URL in every example (GHL's API host).
const GHL_URL: &str = "base_url = \"https://services.leadconnectorhq.com\"";

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples")
}

fn example(name: &str) -> String {
    let path = examples_dir().join(format!("{name}.toml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with its one occurrence of `needle` replaced.
fn replace_once(text: &str, needle: &str, with: &str) -> String {
    assert_eq!(
        text.matches(needle).count(),
        1,
        "expected exactly one `{needle}` in the example"
    );
    text.replacen(needle, with, 1)
}

/// `text` with its one line starting with `prefix` replaced by `line`.
fn replace_line(text: &str, prefix: &str, line: &str) -> String {
    let hits = text.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(
        hits, 1,
        "expected exactly one line starting with `{prefix}` in the example"
    );
    let mut out = String::with_capacity(text.len());
    for l in text.lines() {
        out.push_str(if l.starts_with(prefix) { line } else { l });
        out.push('\n');
    }
    out
}

/// An example pointed at the simulators: both base URLs, the GHL location
/// and token, and the state directory (SQLite lives there).
fn point_at_sims(text: &str, sims: &Sims, ghl_token: &str, state_dir: &Path) -> String {
    let text = replace_once(
        text,
        APP_URL,
        &format!("base_url = \"{}\"", sims.app.api_url()),
    );
    let text = replace_once(
        &text,
        GHL_URL,
        &format!("base_url = \"{}\"", sims.ghl.base_url()),
    );
    let text = replace_line(
        &text,
        "location_id = ",
        &format!("location_id = \"{}\"", sims.location),
    );
    let text = replace_line(&text, "token = \"pit-", &format!("token = \"{ghl_token}\""));
    replace_line(
        &text,
        "state_dir = ",
        &format!("state_dir = \"{}\"", state_dir.display()),
    )
}

fn load(path: PathBuf) -> Loaded {
    config::load(&LoadOptions {
        file: Some(path.clone()),
        env: Some(Default::default()),
        no_search: true,
    })
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One example running against both simulators.
struct Run {
    sims: Sims,
    engine: Engine,
    /// What loading the configuration warned about.
    warnings: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Run {
    /// Starts the example `name` with `ghl_token` as the GHL credentials.
    async fn start(name: &str, sims: Sims, ghl_token: &str) -> Run {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = point_at_sims(&example(name), &sims, ghl_token, dir.path());
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("write the configuration");
        let loaded = load(path);
        let engine = demo::engine(&loaded).await.expect("engine");
        Run {
            sims,
            engine,
            warnings: loaded.warnings,
            _dir: dir,
        }
    }

    fn ghl(&self) -> SimHandle {
        self.sims.ghl.handle()
    }

    fn app(&self) -> AppSimHandle {
        self.sims.app.handle()
    }

    fn ghl_contacts(&self) -> Vec<Value> {
        self.ghl().contacts(&self.sims.location)
    }

    /// One full cycle: both sides polled and reconciled, the outbox drained.
    async fn cycle(&self) -> Report {
        self.engine
            .cycle(Mode::Apply, Reconcile::Always, &Shutdown::default())
            .await
            .expect("cycle")
    }

    /// Two cycles: the second also catches children of contacts created
    /// in the first, and shows the first one's writes come back as echoes.
    async fn settle(&self) {
        self.cycle().await;
        self.cycle().await;
    }

    /// Whether the configuration declared the pair one-way (no
    /// contacts.write on the GHL side).
    fn one_way(&self) -> bool {
        self.warnings
            .iter()
            .any(|w| w.contains("runs one-way") && w.contains("never writes to GHL"))
    }

    async fn assert_clean(&self) {
        let dead = self.engine.store.dead_letters(None).await.expect("store");
        assert!(dead.is_empty(), "dead letters: {dead:#?}");
        let depth = self.engine.store.outbox_depth().await.expect("store");
        assert_eq!(depth.pending, 0, "writes left pending: {depth:?}");
    }

    /// Requests to GHL that would change something: everything but GETs
    /// and the search (a POST that only reads).
    fn ghl_write_requests(&self) -> u64 {
        self.ghl().counters().writes()
    }
}

fn text<'a>(record: &'a Value, field: &str) -> &'a str {
    record[field].as_str().unwrap_or_default()
}

fn app_contact(app: &AppSimHandle, email: &str) -> Value {
    let found: Vec<Value> = app
        .contacts()
        .into_iter()
        .filter(|c| c["email_address"].as_str() == Some(email))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "app contacts with email {email}: {found:#?}"
    );
    found.into_iter().next().expect("one")
}

fn find<'a>(records: &'a [Value], field: &str, value: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r[field].as_str() == Some(value))
        .unwrap_or_else(|| panic!("no record with {field} = {value:?} in {records:#?}"))
}

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a timestamp: {value}"))
}

fn sorted(values: &Value) -> Vec<String> {
    let mut out: Vec<String> = values
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The simulators with a GHL token of only `contacts.readonly`, the scope
/// the read-only examples declare: a write the engine sent anyway would
/// be refused, and would show in the counters.
async fn read_only_sims(ghl_contacts: usize, app_contacts: usize) -> (Sims, String) {
    let sims = Sims::start(ghl_contacts, app_contacts)
        .await
        .expect("simulators");
    let token = sims
        .ghl
        .handle()
        .issue_token(&sims.location, &["contacts.readonly"], None);
    (sims, token)
}

// ---------------------------------------------------------------------------

#[test]
fn every_example_loads() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(examples_dir()).expect("config/examples") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let loaded = load(path.clone());
        let settings = &loaded.settings;
        assert!(
            !settings.pairs.is_empty(),
            "{}: configures no pair",
            path.display()
        );
        // Honest flows: a pair whose GHL side may not write contacts maps
        // no field toward GHL.
        for pair in settings.pairs.values() {
            let Some(SideKind::Ghl(ghl)) = settings.sides.get(&pair.ghl).map(|s| &s.kind) else {
                panic!("{}: pair `{}` has no GHL side", path.display(), pair.name);
            };
            if ghl.can_write_contacts() {
                continue;
            }
            for field in &pair.map.fields {
                assert_eq!(
                    field.flow,
                    Flow::ToApp,
                    "{}: pair `{}` is read-only on GHL, but {} field `{}` flows toward it",
                    path.display(),
                    pair.name,
                    field.entity,
                    field.name
                );
            }
        }
        names.push(path.file_stem().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    for name in [
        "bhn-rewards",
        "brillium",
        "brokerengine",
        "connectif",
        "ghl-to-ghl",
        "your-app",
    ] {
        assert!(names.iter().any(|n| n == name), "missing example {name}");
    }
}

/// Brillium: read-only (contacts.readonly), one-way GHL -> app; contacts
/// with first name, last name and email; tasks with title and status;
/// notes with content; nothing ever written to GHL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brillium_reads_contacts_tasks_and_notes_one_way() {
    let (sims, token) = read_only_sims(3, 2).await;
    let run = Run::start("brillium", sims, &token).await;
    assert!(run.one_way(), "{:?}", run.warnings);
    let (ghl, app) = (run.ghl(), run.app());
    let contacts = run.ghl_contacts();
    let first = contacts[0].clone();
    let first_id = text(&first, "id").to_owned();
    let task = ghl
        .create_task_as_user(
            &first_id,
            json!({"title": "Review assessment results", "dueDate": "2030-01-15T09:00:00Z", "completed": false}),
        )
        .expect("task");
    let task_id = text(&task, "id").to_owned();
    ghl.create_note_as_user(
        &first_id,
        json!({"body": "Scored 92% on the onboarding quiz."}),
    )
    .expect("note");

    run.settle().await;
    run.assert_clean().await;

    // Every GHL contact is in the app with first name, last name and email,
    // and nothing the page does not name (the phone stays behind).
    assert_eq!(app.contact_count(), 2 + contacts.len());
    for contact in &contacts {
        let copy = app_contact(&app, text(contact, "email"));
        assert_eq!(copy["first_name"], contact["firstName"]);
        assert_eq!(copy["last_name"], contact["lastName"]);
        assert_eq!(copy["mobile"], Value::Null, "phone is not a Brillium field");
        // Tasks (title, status) and notes (content) followed, seeded ones too.
        let id = text(&copy, "id");
        let tasks = app.tasks(id);
        let ghl_tasks = ghl.tasks(text(contact, "id"));
        assert_eq!(tasks.len(), ghl_tasks.len());
        for ghl_task in &ghl_tasks {
            let copy = find(&tasks, "name", text(ghl_task, "title"));
            if ghl_tasks
                .iter()
                .filter(|t| t["title"] == ghl_task["title"])
                .count()
                == 1
            {
                assert_eq!(copy["done"], ghl_task["completed"]);
            }
        }
        let notes = app.notes(id);
        let ghl_notes = ghl.notes(text(contact, "id"));
        assert_eq!(notes.len(), ghl_notes.len());
        for ghl_note in &ghl_notes {
            find(&notes, "text", text(ghl_note, "body"));
        }
    }
    let copy = app_contact(&app, text(&first, "email"));
    let copy_id = text(&copy, "id").to_owned();
    let app_task = find(&app.tasks(&copy_id), "name", "Review assessment results").clone();
    assert_eq!(app_task["done"], json!(false));
    find(
        &app.notes(&copy_id),
        "text",
        "Scored 92% on the onboarding quiz.",
    );

    // The app changes: none of it reaches GHL, not even as an attempt.
    let before = run.ghl_contacts();
    let tasks_before = ghl.tasks(&first_id);
    let notes_before = ghl.notes(&first_id);
    app.update_contact_as_user(&copy_id, json!({"first_name": "Changed in Brillium"}))
        .expect("app edit");
    app.create_contact_as_user(json!({"first_name": "Only", "last_name": "InBrillium", "email_address": "only.in.brillium@example.com"}))
        .expect("app create");
    app.create_task_as_user(&copy_id, json!({"name": "Brillium-side task"}))
        .expect("app task");
    app.create_note_as_user(&copy_id, json!({"text": "Brillium-side note"}))
        .expect("app note");
    run.settle().await;
    run.assert_clean().await;
    assert_eq!(run.ghl_write_requests(), 0, "a write was sent to GHL");
    assert_eq!(run.ghl_contacts(), before, "GHL contacts changed");
    assert_eq!(ghl.tasks(&first_id), tasks_before, "GHL tasks changed");
    assert_eq!(ghl.notes(&first_id), notes_before, "GHL notes changed");

    // GHL stays the source: its next change to the contact brings the
    // latest profile back over the Brillium-side edit, and a task
    // completed in GHL shows completed in Brillium.
    ghl.update_contact_as_user(&first_id, json!({"lastName": "Okonkwo"}))
        .expect("GHL edit");
    ghl.update_task_as_user(&task_id, json!({"completed": true}))
        .expect("GHL complete");
    run.settle().await;
    run.assert_clean().await;
    let copy = app.contact(&copy_id).expect("app contact");
    assert_eq!(copy["last_name"], "Okonkwo");
    assert_eq!(copy["first_name"], first["firstName"]);
    let app_task = app.task(text(&app_task, "id")).expect("app task");
    assert_eq!(app_task["done"], json!(true));
    assert_eq!(run.ghl_write_requests(), 0, "a write was sent to GHL");
}

/// Connectif: read-only, one-way; contacts with name, email, phone and
/// tags; tasks whose completion in GHL marks them completed in the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectif_marks_tasks_completed_in_ghl_as_done() {
    let (sims, token) = read_only_sims(2, 0).await;
    let run = Run::start("connectif", sims, &token).await;
    assert!(run.one_way(), "{:?}", run.warnings);
    let (ghl, app) = (run.ghl(), run.app());
    let contact = run.ghl_contacts()[0].clone();
    let contact_id = text(&contact, "id").to_owned();
    ghl.add_tags_as_user(&contact_id, &["connectif-journey"])
        .expect("tag");
    let welcome = ghl
        .create_task_as_user(
            &contact_id,
            json!({"title": "Send the welcome journey", "dueDate": "2030-02-01T10:00:00Z", "completed": false}),
        )
        .expect("task");
    let survey = ghl
        .create_task_as_user(
            &contact_id,
            json!({"title": "Schedule the survey", "dueDate": "2030-02-08T10:00:00Z", "completed": false}),
        )
        .expect("task");

    run.settle().await;
    run.assert_clean().await;

    // Contacts: name, email, phone and tags, for every GHL contact.
    let contacts = run.ghl_contacts();
    assert_eq!(app.contact_count(), contacts.len());
    for contact in &contacts {
        let copy = app_contact(&app, text(contact, "email"));
        assert_eq!(copy["first_name"], contact["firstName"]);
        assert_eq!(copy["last_name"], contact["lastName"]);
        assert_eq!(copy["mobile"], contact["phone"]);
        assert_eq!(sorted(&copy["labels"]), sorted(&contact["tags"]));
    }
    let copy = app_contact(&app, text(&contact, "email"));
    assert!(sorted(&copy["labels"]).contains(&"connectif-journey".to_owned()));
    let copy_id = text(&copy, "id").to_owned();
    let tasks = app.tasks(&copy_id);
    let app_welcome = find(&tasks, "name", "Send the welcome journey").clone();
    let app_survey = find(&tasks, "name", "Schedule the survey").clone();
    assert_eq!(app_welcome["done"], json!(false));

    // The task is marked completed in GHL (PUT …/completed): it is marked
    // completed in the app. A task deleted in GHL leaves the app's list.
    ghl.update_task_as_user(text(&welcome, "id"), json!({"completed": true}))
        .expect("complete");
    ghl.delete_task_as_user(text(&survey, "id"))
        .expect("delete");
    run.settle().await;
    run.assert_clean().await;
    let app_welcome = app.task(text(&app_welcome, "id")).expect("app task");
    assert_eq!(app_welcome["done"], json!(true));
    assert!(app.task(text(&app_survey, "id")).is_none());

    assert_eq!(run.ghl_write_requests(), 0, "a write was sent to GHL");
}

/// BrokerEngine: read-only, one-way, segmented by tag; contacts with status
/// and lastModified; tasks with status and due dates; notes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokerengine_mirrors_the_tagged_segment() {
    let (sims, token) = read_only_sims(4, 0).await;
    let run = Run::start("brokerengine", sims, &token).await;
    assert!(run.one_way(), "{:?}", run.warnings);
    let (ghl, app) = (run.ghl(), run.app());
    let contacts = run.ghl_contacts();
    let (inside, outside) = contacts.split_at(2);
    for contact in inside {
        ghl.add_tags_as_user(text(contact, "id"), &["BrokerEngine"])
            .expect("tag");
    }
    let broker = text(&inside[0], "id").to_owned();
    ghl.create_task_as_user(
        &broker,
        json!({"title": "Collect payslips", "dueDate": "2030-03-01T15:30:00Z", "completed": false}),
    )
    .expect("task");
    ghl.create_note_as_user(&broker, json!({"body": "Pre-approval expected next week."}))
        .expect("note");
    ghl.create_task_as_user(
        text(&outside[0], "id"),
        json!({"title": "Not for BrokerEngine", "dueDate": "2030-03-01T15:30:00Z", "completed": false}),
    )
    .expect("task");

    run.settle().await;
    run.assert_clean().await;

    // Only the segment is mirrored, with status and lastModified.
    assert_eq!(app.contact_count(), inside.len());
    for contact in outside {
        assert!(!app
            .contacts()
            .iter()
            .any(|c| c["email_address"] == contact["email"]));
    }
    for contact in inside {
        let contact = ghl.contact(text(contact, "id")).expect("GHL contact");
        let copy = app_contact(&app, text(&contact, "email"));
        assert_eq!(copy["first_name"], contact["firstName"]);
        assert_eq!(copy["mobile"], contact["phone"]);
        assert_eq!(copy["status"], contact["type"]);
        assert_eq!(time(&copy["last_modified"]), time(&contact["dateUpdated"]));
        assert_eq!(
            app.tasks(text(&copy, "id")).len(),
            ghl.tasks(text(&contact, "id")).len()
        );
    }
    let copy = app_contact(&app, text(&inside[0], "email"));
    let copy_id = text(&copy, "id").to_owned();
    let task = find(&app.tasks(&copy_id), "name", "Collect payslips").clone();
    assert_eq!(task["done"], json!(false));
    assert_eq!(time(&task["due_on"]), time(&json!("2030-03-01T15:30:00Z")));
    find(
        &app.notes(&copy_id),
        "text",
        "Pre-approval expected next week.",
    );

    // A status change in GHL is mirrored with the new lastModified.
    let updated = ghl
        .update_contact_as_user(&broker, json!({"type": "customer", "firstName": "Renata"}))
        .expect("GHL edit");
    run.settle().await;
    run.assert_clean().await;
    let copy = app.contact(&copy_id).expect("app contact");
    assert_eq!(copy["status"], "customer");
    assert_eq!(copy["first_name"], "Renata");
    assert_eq!(time(&copy["last_modified"]), time(&updated["dateUpdated"]));

    assert_eq!(run.ghl_write_requests(), 0, "a write was sent to GHL");
}

/// Your App: two-way (contacts.write granted); contacts with name, email,
/// phone both ways plus status and owner from GHL; tasks created, updated
/// and completed on either side; notes; email match-key linking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn your_app_syncs_contacts_tasks_and_notes_both_ways() {
    let sims = Sims::start(2, 0).await.expect("simulators");
    let token = sims.ghl_token.clone();
    let run = Run::start("your-app", sims, &token).await;
    assert!(!run.one_way(), "{:?}", run.warnings);
    let (ghl, app) = (run.ghl(), run.app());
    let seeded = run.ghl_contacts();
    let (known, other) = (seeded[0].clone(), seeded[1].clone());
    let known_id = text(&known, "id").to_owned();
    let other_id = text(&other, "id").to_owned();
    let renewal = ghl
        .create_task_as_user(
            &known_id,
            json!({"title": "Call about the renewal", "dueDate": "2030-04-10T16:00:00Z", "completed": false}),
        )
        .expect("GHL task");

    // In the app: someone GHL does not have, and someone it does (same email).
    let nadia = app
        .create_contact_as_user(json!({
            "first_name": "Nadia", "last_name": "Bauer",
            "email_address": "nadia.bauer@yourapp.example", "mobile": "+1 415 555 0199",
        }))
        .expect("app contact");
    let nadia_id = text(&nadia, "id").to_owned();
    let onboarding = app
        .create_task_as_user(
            &nadia_id,
            json!({"name": "Prepare the onboarding call", "due_on": "2030-04-01T09:00:00Z", "done": false}),
        )
        .expect("app task");
    app.create_note_as_user(
        &nadia_id,
        json!({"text": "Signed up from the pricing page."}),
    )
    .expect("app note");
    let twin = app
        .create_contact_as_user(json!({
            "first_name": known["firstName"], "last_name": known["lastName"],
            "email_address": known["email"], "company": "Kept in the app",
        }))
        .expect("app contact");
    let twin_id = text(&twin, "id").to_owned();

    run.settle().await;
    run.assert_clean().await;

    // Linked by email, not duplicated; everyone else created on the other side.
    let contacts = run.ghl_contacts();
    assert_eq!(contacts.len(), 3, "GHL: {contacts:#?}");
    assert_eq!(app.contact_count(), 3);
    let twin = app_contact(&app, text(&known, "email"));
    assert_eq!(text(&twin, "id"), twin_id);
    assert_eq!(twin["company"], "Kept in the app");
    assert_eq!(
        twin["mobile"], known["phone"],
        "GHL's phone reached the app"
    );
    for contact in &seeded {
        let copy = app_contact(&app, text(contact, "email"));
        assert_eq!(copy["first_name"], contact["firstName"]);
        assert_eq!(copy["status"], contact["type"]);
        assert_eq!(copy["owner"], contact["assignedTo"]);
    }
    let nadia_ghl = contacts
        .iter()
        .find(|c| c["email"] == "nadia.bauer@yourapp.example")
        .expect("Nadia in GHL")
        .clone();
    let nadia_ghl_id = text(&nadia_ghl, "id").to_owned();
    assert_eq!(nadia_ghl["firstName"], "Nadia");
    assert_eq!(nadia_ghl["lastName"], "Bauer");
    assert_eq!(nadia_ghl["phone"], "+14155550199");

    // Tasks and notes both ways.
    let ghl_tasks = ghl.tasks(&nadia_ghl_id);
    let ghl_onboarding = find(&ghl_tasks, "title", "Prepare the onboarding call").clone();
    assert_eq!(ghl_onboarding["completed"], json!(false));
    assert_eq!(
        time(&ghl_onboarding["dueDate"]),
        time(&json!("2030-04-01T09:00:00Z"))
    );
    find(
        &ghl.notes(&nadia_ghl_id),
        "body",
        "Signed up from the pricing page.",
    );
    let app_renewal = find(&app.tasks(&twin_id), "name", "Call about the renewal").clone();
    assert_eq!(app_renewal["done"], json!(false));
    assert_eq!(
        time(&app_renewal["due_on"]),
        time(&json!("2030-04-10T16:00:00Z"))
    );

    // Edits on both sides: each reaches the other; tasks complete both ways.
    app.update_contact_as_user(&nadia_id, json!({"last_name": "Bauer-Kim"}))
        .expect("app edit");
    app.update_task_as_user(text(&onboarding, "id"), json!({"done": true}))
        .expect("app complete");
    ghl.update_contact_as_user(&other_id, json!({"firstName": "Marguerite"}))
        .expect("GHL edit");
    ghl.update_task_as_user(text(&renewal, "id"), json!({"completed": true}))
        .expect("GHL complete");
    run.settle().await;
    run.assert_clean().await;
    assert_eq!(
        ghl.contact(&nadia_ghl_id).expect("GHL contact")["lastName"],
        "Bauer-Kim"
    );
    let ghl_onboarding = ghl
        .tasks(&nadia_ghl_id)
        .into_iter()
        .find(|t| t["id"] == ghl_onboarding["id"])
        .expect("GHL task");
    assert_eq!(ghl_onboarding["completed"], json!(true));
    assert_eq!(
        app_contact(&app, text(&other, "email"))["first_name"],
        "Marguerite"
    );
    assert_eq!(
        app.task(text(&app_renewal, "id")).expect("app task")["done"],
        json!(true)
    );

    // What the example's header says about tasks without a due date: GHL
    // refuses to create them, and the write ends as a dead letter.
    app.create_task_as_user(&nadia_id, json!({"name": "No due date"}))
        .expect("app task");
    run.settle().await;
    let dead = run.engine.store.dead_letters(None).await.expect("store");
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert!(dead[0].reason.contains("dueDate"), "{dead:#?}");
    assert!(!ghl
        .tasks(&nadia_ghl_id)
        .iter()
        .any(|t| t["title"] == "No due date"));
}

/// BHN Rewards: two-way with contacts.write; members matched by email or
/// phone; tags merged both ways; task status aligned both ways; notes added
/// in either system appear in the other; app-side profile edits refresh GHL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bhn_rewards_links_by_email_or_phone_and_merges_tags() {
    let sims = Sims::start(2, 0).await.expect("simulators");
    let token = sims.ghl_token.clone();
    let run = Run::start("bhn-rewards", sims, &token).await;
    assert!(!run.one_way(), "{:?}", run.warnings);
    let (ghl, app) = (run.ghl(), run.app());
    let seeded = run.ghl_contacts();
    let member = seeded[0].clone();
    let member_id = text(&member, "id").to_owned();
    ghl.create_task_as_user(
        &member_id,
        json!({"title": "Issue the reward card", "dueDate": "2030-05-01T12:00:00Z", "completed": false}),
    )
    .expect("GHL task");
    ghl.create_note_as_user(
        &member_id,
        json!({"body": "Asked about the points balance."}),
    )
    .expect("GHL note");

    // In BHN Rewards: the same member known by phone only, and a new one.
    let profile = app
        .create_contact_as_user(json!({
            "first_name": member["firstName"], "last_name": member["lastName"],
            // GHL stores tags lower-cased; the example's tags field
            // normalises to lower case so either spelling is one value.
            "mobile": member["phone"], "labels": ["bhn-gold"],
        }))
        .expect("app contact");
    let profile_id = text(&profile, "id").to_owned();
    app.create_note_as_user(
        &profile_id,
        json!({"text": "Redeemed 500 points in store."}),
    )
    .expect("app note");
    app.create_contact_as_user(json!({
        "first_name": "Tomás", "last_name": "Reyes",
        "email_address": "tomas.reyes@bhn.example", "labels": ["bhn-silver"],
    }))
    .expect("app contact");

    run.settle().await;
    run.assert_clean().await;

    // The phone linked the member: no duplicate on either side, and the
    // email GHL had reached the profile.
    let contacts = run.ghl_contacts();
    assert_eq!(contacts.len(), 3, "GHL: {contacts:#?}");
    assert_eq!(app.contact_count(), 3);
    let profile = app.contact(&profile_id).expect("profile");
    assert_eq!(profile["email_address"], member["email"]);
    app_contact(&app, text(&member, "email"));
    let tomas = contacts
        .iter()
        .find(|c| c["email"] == "tomas.reyes@bhn.example")
        .expect("Tomás in GHL");
    assert_eq!(tomas["firstName"], "Tomás");
    assert_eq!(sorted(&tomas["tags"]), vec!["bhn-silver"]);

    // Tags: the union of both sides, on both sides.
    let member_now = ghl.contact(&member_id).expect("GHL member");
    let mut expected = sorted(&member["tags"]);
    expected.push("bhn-gold".to_owned());
    expected.sort();
    assert_eq!(sorted(&member_now["tags"]), expected);
    assert_eq!(sorted(&profile["labels"]), expected);
    for contact in &seeded[1..] {
        let copy = app_contact(&app, text(contact, "email"));
        assert_eq!(sorted(&copy["labels"]), sorted(&contact["tags"]));
        assert_eq!(copy["mobile"], contact["phone"]);
    }

    // Tasks and notes: from GHL to BHN Rewards and back.
    let card = find(&app.tasks(&profile_id), "name", "Issue the reward card").clone();
    assert_eq!(card["done"], json!(false));
    find(
        &app.notes(&profile_id),
        "text",
        "Asked about the points balance.",
    );
    find(
        &ghl.notes(&member_id),
        "body",
        "Redeemed 500 points in store.",
    );

    // BHN Rewards updates the profile, a tag and the task; GHL adds a tag.
    let mut labels = sorted(&profile["labels"]);
    labels.push("bhn-platinum".to_owned());
    app.update_contact_as_user(
        &profile_id,
        json!({"first_name": "Renata", "labels": labels}),
    )
    .expect("app edit");
    app.update_task_as_user(text(&card, "id"), json!({"done": true}))
        .expect("app complete");
    ghl.add_tags_as_user(&member_id, &["reward-redeemed"])
        .expect("GHL tag");
    run.settle().await;
    run.assert_clean().await;

    let member_now = ghl.contact(&member_id).expect("GHL member");
    assert_eq!(member_now["firstName"], "Renata");
    expected.extend(["bhn-platinum".to_owned(), "reward-redeemed".to_owned()]);
    expected.sort();
    assert_eq!(sorted(&member_now["tags"]), expected);
    let profile = app.contact(&profile_id).expect("profile");
    assert_eq!(sorted(&profile["labels"]), expected);
    let ghl_card = find(&ghl.tasks(&member_id), "title", "Issue the reward card").clone();
    assert_eq!(ghl_card["completed"], json!(true));
}
