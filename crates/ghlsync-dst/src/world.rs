//! The simulated world of one seed: both sides, the users, the faults, the
//! trace, and the baton that decides which of the daemon's tasks runs.
//!
//! Everything random comes from one `ChaCha8Rng` seeded with the seed, and
//! everything happens on one thread, one actor at a time: the daemon's
//! detection (polls, reconciliation, targeted syncs: they share the pair's
//! turn in the daemon too) and its writer run as two actors, and they only
//! change hands at a *gate*, which every call to a side passes before and
//! after it is served. At a gate the world may also let users edit, move
//! the clock, or crash the daemon. Between two gates exactly one actor
//! runs, so what the mirror and the sides see is fixed by the seed, however
//! the threads of SQLite are scheduled.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::Duration;
use ghl_sync::domain::{PerSide, Side};
use ghl_sync::store::Store;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{oneshot, Notify};

use crate::faults::{Chaos, Covered};
use crate::model::{Event, SideModel};
use crate::workload::Workload;

tokio::task_local! {
    /// Which actor a side's call comes from.
    pub static ACTOR: usize;
}

/// Everything the seed decides, behind one lock.
#[derive(Debug)]
pub struct State {
    pub rng: ChaCha8Rng,
    pub sides: PerSide<SideModel>,
    pub workload: Workload,
    pub chaos: Chaos,
    pub covered: Covered,
    /// Events raised and not delivered yet (delayed ones wait here).
    pub webhooks: Vec<(Side, Event)>,
    pub trace: Vec<String>,
    /// When GHL's requests of the last 10 s (virtual) were made.
    pub ghl_window: std::collections::VecDeque<chrono::DateTime<chrono::Utc>>,
    /// The daemon's reads, and the user edits lost in its read-write
    /// window.
    pub window: crate::window::Window,
    /// Whether the trace is kept.
    pub tracing: bool,
    /// Errors of the mirror itself (never expected: a finding).
    pub store_errors: Vec<String>,
    /// Stop the run's operations here (a shortened replay of the seed).
    pub ops_limit: u64,
    /// Deletes the mass-delete guard held in the last reconciliation
    /// (`sync.mass_delete_percent`): held as configured, not lost.
    pub deletes_held: u64,
    crashed: bool,
    holder: Option<usize>,
    waiting: BTreeMap<usize, oneshot::Sender<()>>,
}

impl State {
    pub fn new(rng: ChaCha8Rng, sides: PerSide<SideModel>, chaos: Chaos, ops_limit: u64) -> Self {
        State {
            rng,
            sides,
            workload: Workload::default(),
            chaos,
            covered: Covered::default(),
            webhooks: Vec::new(),
            trace: Vec::new(),
            ghl_window: Default::default(),
            store_errors: Vec::new(),
            tracing: true,
            window: Default::default(),
            ops_limit,
            deletes_held: 0,
            crashed: false,
            holder: None,
            waiting: BTreeMap::new(),
        }
    }

    /// A line of the trace, stamped with the virtual time (when the run
    /// keeps one: an exploration of many seeds does not, and replays a
    /// failing seed with it).
    pub fn log(&mut self, line: impl AsRef<str>) {
        if !self.tracing {
            return;
        }
        let at = ghl_sync::clock::now().format("%H:%M:%S%.3f");
        self.trace.push(format!("{at} {}", line.as_ref()));
    }

    /// One user operation, if the run has operations left.
    pub fn user_edit(&mut self) {
        if self.workload.ops >= self.ops_limit {
            return;
        }
        let line = self.workload.step(&mut self.rng, &mut self.sides);
        self.collect_webhooks();
        self.log(line);
    }

    /// Moves the events the sides raised to the delivery queue.
    pub fn collect_webhooks(&mut self) {
        for role in Side::BOTH {
            let events = std::mem::take(&mut self.sides[role].events);
            self.webhooks.extend(events.into_iter().map(|e| (role, e)));
        }
    }

    pub fn ops_left(&self) -> bool {
        self.workload.ops < self.ops_limit
    }

    /// Hands the baton to one waiting actor, chosen by the seed, if nobody
    /// holds it.
    fn hand_over(&mut self) {
        if self.holder.is_some() || self.waiting.is_empty() {
            return;
        }
        let index = self.rng.gen_range(0..self.waiting.len());
        let actor = *self.waiting.keys().nth(index).expect("in range");
        let wake = self.waiting.remove(&actor).expect("present");
        self.holder = Some(actor);
        let _ = wake.send(());
    }
}

/// The world as the sides and the harness share it.
#[derive(Debug)]
pub struct World {
    pub state: Mutex<State>,
    /// Woken when the daemon crashes at a gate.
    pub crash: Notify,
    /// The daemon's mirror, while it runs: a gate waits for its work in
    /// flight before anything else happens.
    pub store: Mutex<Option<Store>>,
}

impl World {
    pub fn new(state: State) -> Self {
        World {
            state: Mutex::new(state),
            crash: Notify::new(),
            store: Mutex::new(None),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("the world's lock is never poisoned")
    }

    /// An actor starts: it runs once the baton is handed to it.
    pub async fn start(&self, actor: usize) {
        let wake = {
            let mut state = self.lock();
            let (send, wake) = oneshot::channel();
            state.waiting.insert(actor, send);
            state.hand_over();
            wake
        };
        let _ = wake.await;
    }

    /// An actor is done: the baton goes to another.
    pub fn finish(&self, actor: usize) {
        let mut state = self.lock();
        if state.holder == Some(actor) {
            state.holder = None;
        }
        state.hand_over();
    }

    /// Forgets every actor (after a crash dropped them).
    pub fn reset_actors(&self) {
        let mut state = self.lock();
        state.holder = None;
        state.waiting.clear();
        state.crashed = false;
    }

    /// A gate, passed by every call to a side before and after it is
    /// served: the mirror's work in flight lands, then the world may move
    /// the clock, let a user edit or crash the daemon, and the baton may
    /// pass to the other actor.
    pub async fn gate(&self, point: &str) {
        self.settle().await;
        let Ok(actor) = ACTOR.try_with(|a| *a) else {
            return;
        };
        let wake = {
            let mut state = self.lock();
            if state.crashed {
                None
            } else {
                state.covered.gates += 1;
                let step = state.rng.gen_range(0..=400);
                ghl_sync::clock::advance(Duration::milliseconds(step));
                let (edit, crash) = (state.chaos.edit_at_gate, state.chaos.crash_at_gate);
                if state.chaos.edits && state.rng.gen_bool(edit) {
                    state.user_edit();
                }
                if state.chaos.crashes && state.rng.gen_bool(crash) {
                    state.crashed = true;
                    state.covered.crashes += 1;
                    state.log(format!("CRASH at {point}"));
                    self.crash.notify_one();
                    None
                } else {
                    let (send, wake) = oneshot::channel();
                    state.holder = None;
                    state.waiting.insert(actor, send);
                    state.hand_over();
                    Some(wake)
                }
            }
        };
        match wake {
            Some(wake) => {
                let _ = wake.await;
            }
            // Crashed: this actor never runs again; the harness drops it.
            None => std::future::pending::<()>().await,
        }
    }

    /// Waits until the mirror has nothing in flight: a poll commits each
    /// page in a task of its own (`engine/detect.rs::launch`), so after a
    /// yield (which lets a task just spawned take its connection) a
    /// connection in use means a commit is running; the store runs with one
    /// connection, handed out in order, so a statement queued behind it
    /// returns once it is done.
    async fn settle(&self) {
        let store = self.store.lock().expect("never poisoned").clone();
        let Some(store) = store else {
            return;
        };
        // Statements are short: yielding until the connection is back is
        // cheaper than queueing a statement behind it.
        for _ in 0..64 {
            tokio::task::yield_now().await;
            if !store.in_use() {
                return;
            }
        }
        store.ping().await.expect("the simulation's mirror answers");
    }
}
