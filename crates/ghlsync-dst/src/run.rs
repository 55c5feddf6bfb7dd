//! One seed, start to end: the daemon's engine (its production code, the
//! mirror on SQLite) runs against the two simulated sides while users edit
//! and faults strike; it crashes and restarts where the seed says; then the
//! world heals, the daemon catches up, and the checker judges.
//!
//! The harness plays the daemon's scheduler (`engine/scheduler.rs`): each
//! round, one detection task (a poll of one side, a reconciliation, or the
//! targeted syncs of the webhooks delivered, all under the pair's turn as
//! in the daemon) and, beside it, the outbox writer. What the scheduler
//! adds on top (intervals, jitter, back-off of a failed poll) only changes
//! *when* these run, which the seed chooses instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use ghl_sync::config::{self, LoadOptions, Settings};
use ghl_sync::connector::Connector;
use ghl_sync::domain::{EntityKind, PerSide, Side};
use ghl_sync::engine::{Engine, EngineError, Mode, PairRuntime, Shutdown, Target};
use ghl_sync::store::{PairRegistration, PairSide, Store};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::faults::{Chaos, Covered};
use crate::model::{Behaviour, SideModel};
use crate::side::SimSide;
use crate::world::{State, World, ACTOR};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// User operations before the world heals.
    pub ops: u64,
    pub chaos: Chaos,
    /// Keep the trace (replays, tests); an exploration runs without it and
    /// replays the seeds that fail.
    pub trace: bool,
}

/// What one seed did and found.
#[derive(Debug)]
pub struct Outcome {
    pub seed: u64,
    pub ops: u64,
    pub violations: Vec<String>,
    pub trace: Vec<String>,
    pub covered: Covered,
}

/// The pair the simulation syncs: the demo's (contacts, tags, tasks,
/// notes both ways; `newest` by default, tags `union`, deletes
/// propagated), on the daemon's default `[sync]` settings.
const PAIR: &str = "demo";

/// Runs one seed on this thread, on a runtime and a virtual clock of its
/// own.
pub fn run(options: &Options) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let start = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
    let _clock = ghl_sync::clock::VirtualClock::start(start);
    let dir = scratch_dir(options.seed);
    let outcome = runtime.block_on(simulate(options, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// A directory of its own for the seed's mirror, in memory when the
/// machine has a tmpfs.
fn scratch_dir(seed: u64) -> PathBuf {
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!(
        "ghlsync-dst-{}-{seed}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

fn settings(dir: &Path) -> Settings {
    let demo = ghl_sync::demo::DEMO_CONFIG;
    // The daemon's defaults, not the demo's quick [sync].
    let start = demo.find("[sync]").expect("the demo has [sync]");
    let end = start + demo[start..].find("\n[server]").expect("then [server]");
    let mut text = format!("{}{}", &demo[..start], &demo[end..])
        .replace("@GHL_URL@", "http://127.0.0.1:9")
        .replace("@GHL_TOKEN@", "unused")
        .replace("@LOCATION_ID@", "simulated")
        .replace("@STATE_DIR@", &dir.display().to_string());
    text.push('\n');
    text.push_str(ghl_sync::demo::APP_SIM_SIDE);
    let path = dir.join("simulation.toml");
    std::fs::write(&path, text).expect("the configuration is written");
    let mut settings = config::load(&LoadOptions {
        file: Some(path),
        env: Some(Default::default()),
        no_search: true,
    })
    .expect("the demo configuration loads")
    .settings;
    // One connection, handed out in order: the mirror's statements run in
    // the order the actors issue them (`World::settle`).
    settings.database.max_connections = 1;
    settings
}

fn world(options: &Options) -> Arc<World> {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let ghl = Behaviour {
        children_dated: false,
        children_feed: false,
        refuses_duplicates: true,
        index_lag: Duration::milliseconds(rng.gen_range(0..=4_000)),
        skew: Duration::milliseconds(rng.gen_range(-2_000..=2_000)),
        ghl_webhooks: true,
        // Granted for odd seeds (no draw: earlier seeds keep their runs).
        task_search: options.seed % 2 == 1,
    };
    let app = Behaviour {
        children_dated: true,
        children_feed: true,
        refuses_duplicates: false,
        index_lag: Duration::zero(),
        skew: Duration::milliseconds(rng.gen_range(-2_000..=2_000)),
        ghl_webhooks: false,
        task_search: false,
    };
    let sides = PerSide::new(
        SideModel::new(Side::Ghl, ghl),
        SideModel::new(Side::App, app),
    );
    Arc::new(World::new(State::new(
        rng,
        sides,
        options.chaos.clone(),
        options.ops,
    )))
}

/// The daemon as one process lifetime sees it.
struct Daemon {
    engine: Engine,
    pair: Arc<PairRuntime>,
}

async fn start_daemon(
    world: &World,
    settings: &Settings,
    sides: &PerSide<Arc<dyn Connector>>,
) -> Daemon {
    let store = Store::connect_and_migrate(&settings.database)
        .await
        .expect("the mirror opens");
    let side = |name: &str, kind: &str| PairSide {
        side: name.into(),
        kind: kind.into(),
        location: None,
    };
    store
        .register_pair(&PairRegistration {
            name: PAIR.into(),
            a: side("ghl", "ghl"),
            b: side("app", "rest"),
        })
        .await
        .expect("the pair registers");
    *world.store.lock().expect("never poisoned") = Some(store.clone());
    let pair = Arc::new(PairRuntime::new(
        settings.pairs[PAIR].clone(),
        sides.ghl.clone(),
        sides.app.clone(),
    ));
    let engine = Engine {
        store,
        pairs: vec![pair.clone()],
        sync: settings.sync.clone(),
        wake: Arc::default(),
        records_read: Arc::default(),
    };
    Daemon { engine, pair }
}

/// The detection task of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detection {
    Poll(Side),
    Reconcile,
    Webhooks,
}

/// What a round did.
#[derive(Debug, Default)]
struct Round {
    crashed: bool,
    planned: u64,
    written: u64,
}

impl Daemon {
    /// One round: `detection` and, if asked, the writer beside it.
    async fn round(&self, world: &World, detection: Detection, writer: bool) -> Round {
        let detect = ACTOR.scope(0, async {
            world.start(0).await;
            let result = self.detect(world, detection).await;
            world.finish(0);
            result
        });
        let write = ACTOR.scope(1, async {
            if !writer {
                return Ok(0);
            }
            world.start(1).await;
            let result = self.engine.drain_outbox(&Shutdown::default()).await;
            world.finish(1);
            result.map(|stats| stats.applied)
        });
        let crash = world.crash.notified();
        tokio::select! {
            biased;
            _ = crash => Round { crashed: true, ..Round::default() },
            (planned, written) = futures::future::join(detect, write) => {
                let mut state = world.lock();
                let planned = outcome(&mut state, "detection", planned);
                let written = outcome(&mut state, "writer", written);
                Round { crashed: false, planned, written }
            }
        }
    }

    async fn detect(&self, world: &World, detection: Detection) -> Result<u64, EngineError> {
        let pair = &self.pair;
        match detection {
            Detection::Poll(side) => {
                let _turn = pair.signals.take_turn().await;
                let report = self
                    .engine
                    .detect_sides(
                        pair,
                        &[side],
                        Mode::Apply,
                        ghl_sync::engine::Reconcile::Never,
                    )
                    .await?;
                Ok(report.stats.planned())
            }
            Detection::Reconcile => {
                // No turn here: a reconciliation takes the pair's turn
                // itself for each page it decides, as the daemon runs it
                // beside the polls (holding it here would deadlock).
                let report = self.engine.reconcile(pair, Mode::Apply).await?;
                world.lock().deletes_held = report.stats.deletes_held;
                Ok(report.stats.planned())
            }
            Detection::Webhooks => {
                let targets = deliveries(world);
                let mut planned = 0;
                for target in targets {
                    let _turn = pair.signals.take_turn().await;
                    match self.engine.sync_record(pair, &target).await {
                        Ok(report) => planned += report.stats.planned(),
                        // The daemon logs it; the next poll finds the change.
                        Err(EngineError::Side(error)) => {
                            world.lock().log(format!("targeted sync failed: {error}"))
                        }
                        Err(error) => return Err(error),
                    }
                }
                Ok(planned)
            }
        }
    }
}

/// An actor's result in the trace; a failing mirror is a finding of its
/// own (the sides failing is what the daemon retries).
fn outcome(state: &mut State, actor: &str, result: Result<u64, EngineError>) -> u64 {
    match result {
        Ok(n) => n,
        Err(EngineError::Side(error)) => {
            state.log(format!("{actor} failed, retried next round: {error}"));
            0
        }
        // Two deciders raced to link one record (a poll and the writer
        // recording a create): the mirror's unique keys refused the second
        // link, the pass committed nothing, and the next one reads it all
        // again. The daemon logs it and retries, as here.
        Err(EngineError::Store(error)) if error.is_constraint_violation() => {
            state.log(format!(
                "{actor} refused by the mirror's unique keys, retried next round: {error}"
            ));
            state.covered.unique_key_races += 1;
            0
        }
        Err(EngineError::Store(error)) => {
            state.log(format!("MIRROR ERROR in {actor}: {error}"));
            state.store_errors.push(format!("{actor}: {error}"));
            0
        }
    }
}

/// The webhooks delivered this round: the queue's events, some lost,
/// some twice, some held back for a later round (so they arrive out of
/// order), and GHL's `TaskCreate` sometimes without its `contactId`.
fn deliveries(world: &World) -> Vec<Target> {
    let mut state = world.lock();
    let queued = std::mem::take(&mut state.webhooks);
    let mut delivered = Vec::new();
    for (role, mut event) in queued {
        let chaos = state.chaos.clone();
        if state.rng.gen_bool(chaos.webhook_delayed) {
            state.webhooks.push((role, event));
            continue;
        }
        if state.rng.gen_bool(chaos.webhook_lost) {
            continue;
        }
        if role == Side::Ghl
            && event.entity == EntityKind::Task
            && event.created
            && state.rng.gen_bool(0.3)
        {
            event.parent = None;
        }
        let target = Target {
            pair: PAIR.into(),
            source: role,
            entity: event.entity,
            id: event.id,
            parent_id: event.parent,
        };
        if state.rng.gen_bool(chaos.webhook_duplicated) {
            delivered.push(target.clone());
        }
        delivered.push(target);
    }
    delivered.shuffle(&mut state.rng);
    state.covered.webhooks += delivered.len() as u64;
    delivered
}

/// The seed's run.
async fn simulate(options: &Options, dir: &Path) -> Outcome {
    let settings = settings(dir);
    let world = world(options);
    let sides: PerSide<Arc<dyn Connector>> =
        PerSide::from_fn(|role| Arc::new(SimSide::new(world.clone(), role)) as Arc<dyn Connector>);
    let mut daemon = start_daemon(&world, &settings, &sides).await;
    let mut violations = Vec::new();
    while world.lock().ops_left() {
        let (detection, writer) = {
            let mut state = world.lock();
            for _ in 0..state.rng.gen_range(0..=3) {
                state.user_edit();
            }
            let pause = if state.rng.gen_bool(0.05) {
                200_000
            } else {
                state.rng.gen_range(0..=5_000)
            };
            ghl_sync::clock::advance(Duration::milliseconds(pause));
            // Reconciliations are rare, as in the daemon (every 6 h against
            // polls every 30 s), beyond the ones a contact's delete webhook
            // asks for.
            let detection = match state.rng.gen_range(0..100) {
                0..=31 => Detection::Poll(Side::Ghl),
                32..=63 => Detection::Poll(Side::App),
                64..=97 => Detection::Webhooks,
                _ => Detection::Reconcile,
            };
            (detection, state.rng.gen_bool(0.7))
        };
        let detection = if daemon.pair.signals.take_reconcile_request() {
            Detection::Reconcile
        } else {
            detection
        };
        world.lock().log(format!(
            "round: {detection:?}{}",
            if writer { " + writer" } else { "" }
        ));
        let round = daemon.round(&world, detection, writer).await;
        if round.crashed {
            daemon = restart(&world, daemon, &settings, &sides).await;
        }
    }
    world.lock().chaos.heal();
    world.lock().log("HEALED: no more faults, crashes or users");
    // First without reconciliation: what the change feeds and webhooks
    // carry must arrive by them alone (reconciliation, every 6 h, is the
    // safety net, not the path).
    if !settle_by_feeds(&world, &mut daemon).await {
        violations.push(
            "the daemon did not settle on its polls: writes still planned after 30 quiet rounds"
                .to_owned(),
        );
    }
    {
        let observed = crate::check::Observed::of(&world.lock());
        let map = &daemon.pair.settings.map;
        match crate::check::feeds_delivered(&observed, &daemon.engine.store, PAIR, map).await {
            Ok(found) => violations.extend(found),
            Err(e) => violations.push(format!("the checker could not read the mirror: {e}")),
        }
    }
    let converged = converge(&world, &mut daemon).await;
    if !converged {
        violations.push(
            "the daemon did not converge: writes still planned after 30 quiet rounds".to_owned(),
        );
    }
    let echoes = no_echo(&world, &daemon).await;
    violations.extend(echoes);
    let observed = crate::check::Observed::of(&world.lock());
    let map = &daemon.pair.settings.map;
    let found = crate::check::check(&observed, &daemon.engine.store, PAIR, map).await;
    violations.extend(
        found.unwrap_or_else(|e| vec![format!("the checker could not read the mirror: {e}")]),
    );
    let held = crate::check::held_by_guard(&observed, &daemon.engine.store, PAIR)
        .await
        .map_or(0, |held| held.len() as u64);
    let state = world.lock();
    violations.extend(
        state
            .store_errors
            .iter()
            .map(|e| format!("mirror error: {e}")),
    );
    let mut covered = state.covered.clone();
    covered.window_losses = state.window.losses.len() as u64;
    covered.deletes_held = held;
    Outcome {
        seed: options.seed,
        ops: state.workload.ops,
        violations,
        trace: state.trace.clone(),
        covered,
    }
}

/// A crash: the process state is gone (the actors were dropped where they
/// stood), the mirror stays as the crash left it; the daemon starts again.
async fn restart(
    world: &World,
    daemon: Daemon,
    settings: &Settings,
    sides: &PerSide<Arc<dyn Connector>>,
) -> Daemon {
    let store = daemon.engine.store.clone();
    drop(daemon);
    *world.store.lock().expect("never poisoned") = None;
    store.close().await;
    world.reset_actors();
    world.lock().log("RESTART");
    start_daemon(world, settings, sides).await
}

/// Six minutes on (past leases and retry times), then a round of
/// webhooks and polls, with the writer: whether all was quiet (nothing
/// planned or written, nothing left in the outbox).
async fn quiet_feed_round(world: &World, daemon: &mut Daemon) -> bool {
    ghl_sync::clock::advance(Duration::minutes(6));
    let mut busy = 0;
    for detection in [
        Detection::Webhooks,
        Detection::Poll(Side::Ghl),
        Detection::Poll(Side::App),
    ] {
        let round = daemon.round(world, detection, true).await;
        busy += round.planned + round.written;
    }
    let depth = daemon
        .engine
        .store
        .outbox_depth()
        .await
        .expect("the mirror answers");
    busy == 0 && depth.pending == 0
}

/// Rounds of webhooks and polls, with the writer, until nothing is left
/// to write and nothing new is planned.
async fn settle_by_feeds(world: &World, daemon: &mut Daemon) -> bool {
    for _ in 0..30 {
        if quiet_feed_round(world, daemon).await {
            return true;
        }
    }
    false
}

/// After healing: rounds of webhooks and polls until nothing is left to
/// write, then a reconciliation (deletes whose webhooks were lost, GHL
/// tasks and notes edited without a webhook); again until a
/// reconciliation finds nothing.
async fn converge(world: &World, daemon: &mut Daemon) -> bool {
    for _ in 0..30 {
        if !quiet_feed_round(world, daemon).await {
            continue;
        }
        let reconciled = daemon.round(world, Detection::Reconcile, true).await;
        if reconciled.planned + reconciled.written == 0 {
            return true;
        }
    }
    false
}

/// Once converged, a further cycle plans no write. The reconciliation that
/// ended the convergence planned nothing already; the polls, reading every
/// record the sync wrote since (with their overlap), must not either.
async fn no_echo(world: &World, daemon: &Daemon) -> Vec<String> {
    ghl_sync::clock::advance(Duration::seconds(30));
    world.lock().log("ECHO CHECK");
    let mut planned = 0;
    for detection in [Detection::Poll(Side::Ghl), Detection::Poll(Side::App)] {
        planned += daemon.round(world, detection, false).await.planned;
    }
    if planned == 0 {
        Vec::new()
    } else {
        vec![format!(
            "echo: a cycle after convergence planned {planned} writes"
        )]
    }
}
