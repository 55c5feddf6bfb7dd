//! What goes wrong, and how often: the faults a side's call may meet, as
//! the daemon's connectors report them.
//!
//! The simulated sides sit behind the `Connector` trait, so a fault is
//! what the real connectors turn the wire's failure into (their own suites
//! pin that against the HTTP simulators: `tests/ghl_client.rs`,
//! `tests/rest_connector.rs`): a 5xx, a 429, a timeout, a reset connection,
//! a truncated or non-JSON body all reach the engine as
//! `ConnectorError::Unavailable` once the client's own retries are spent.
//! What matters to the engine is *when* it happens: before the side acted
//! (nothing done) or after (done, answer lost), and GHL's create answered
//! 422 although the contact was made (field notes, "Creates").

use std::collections::BTreeMap;

use ghl_sync::connector::ConnectorError;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How chaotic the world is; all of it stops when the run heals.
#[derive(Debug, Clone)]
pub struct Chaos {
    pub faults: bool,
    pub crashes: bool,
    /// Users edit at gates (between the daemon's reads and writes).
    pub edits: bool,
    /// Chance that a call fails.
    pub fault: f64,
    pub crash_at_gate: f64,
    pub edit_at_gate: f64,
    /// Webhooks: lost, duplicated, delayed (reordered with what follows).
    pub webhook_lost: f64,
    pub webhook_duplicated: f64,
    pub webhook_delayed: f64,
}

impl Default for Chaos {
    fn default() -> Self {
        Chaos {
            faults: true,
            crashes: true,
            edits: true,
            fault: 0.06,
            crash_at_gate: 0.004,
            edit_at_gate: 0.08,
            webhook_lost: 0.1,
            webhook_duplicated: 0.1,
            webhook_delayed: 0.2,
        }
    }
}

impl Chaos {
    /// No more faults, crashes or racing edits: the end of a run, when
    /// the sync must converge.
    pub fn heal(&mut self) {
        self.faults = false;
        self.crashes = false;
        self.edits = false;
        self.webhook_lost = 0.0;
        self.webhook_delayed = 0.0;
    }
}

/// What a run exercised, for the report of a long run.
#[derive(Debug, Default, Clone)]
pub struct Covered {
    pub gates: u64,
    pub crashes: u64,
    pub faults: BTreeMap<&'static str, u64>,
    pub calls: BTreeMap<String, u64>,
    pub webhooks: u64,
    /// Requests GHL would have counted, and the most in any 10 s of
    /// virtual time.
    pub ghl_requests: u64,
    pub ghl_peak_10s: u64,
    /// Passes the mirror's unique keys stopped from linking a record twice.
    pub unique_key_races: u64,
    /// User edits overwritten in the read-write window (`window.rs`).
    pub window_losses: u64,
    /// Deletes the mass-delete guard held at the end, as configured
    /// (`check.rs`: excused by the guard, not lost).
    pub deletes_held: u64,
}

impl Covered {
    pub fn add(&mut self, other: &Covered) {
        self.gates += other.gates;
        self.crashes += other.crashes;
        for (k, v) in &other.faults {
            *self.faults.entry(k).or_default() += v;
        }
        for (k, v) in &other.calls {
            *self.calls.entry(k.clone()).or_default() += v;
        }
        self.webhooks += other.webhooks;
        self.ghl_requests += other.ghl_requests;
        self.ghl_peak_10s = self.ghl_peak_10s.max(other.ghl_peak_10s);
        self.unique_key_races += other.unique_key_races;
        self.window_losses += other.window_losses;
        self.deletes_held += other.deletes_held;
    }
}

/// A fault met before the side acts: nothing was done.
const BEFORE: [&str; 8] = [
    "500 Internal Server Error",
    "502 Bad Gateway",
    "503 Service Unavailable",
    "429 Too Many Requests (Retry-After: 2)",
    "timeout before the request was sent",
    "connection reset",
    "truncated body",
    "body is not JSON",
];

/// When a call meets its fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Refused before the side acted.
    Before(&'static str),
    /// The side acted, the answer was lost (timeout, reset after send).
    AnswerLost,
    /// GHL: `POST /contacts/` answered 422, the contact made anyway.
    RefusedYetCreated,
}

impl Fault {
    /// The fault, if any, of one call; `write` calls can also lose their
    /// answer, and a GHL contact create can be refused yet made.
    pub fn roll(
        rng: &mut ChaCha8Rng,
        chaos: &Chaos,
        covered: &mut Covered,
        write: bool,
        ghl_contact_create: bool,
    ) -> Option<Fault> {
        if !chaos.faults || !rng.gen_bool(chaos.fault) {
            return None;
        }
        let fault = match rng.gen_range(0..10) {
            8 | 9 if write => Fault::AnswerLost,
            7 if ghl_contact_create => Fault::RefusedYetCreated,
            n => Fault::Before(BEFORE[n % BEFORE.len()]),
        };
        let name = match fault {
            Fault::Before(name) => name,
            Fault::AnswerLost => "answer lost after the side acted",
            Fault::RefusedYetCreated => "422 yet created",
        };
        *covered.faults.entry(name).or_default() += 1;
        Some(fault)
    }

    /// What the connector reports for it.
    pub fn error(self, side: &str, entity: ghl_sync::domain::EntityKind) -> ConnectorError {
        match self {
            Fault::Before(message) => ConnectorError::Unavailable {
                side: side.to_owned(),
                message: message.to_owned(),
                retry_after: message
                    .starts_with("429")
                    .then(|| std::time::Duration::from_secs(2)),
            },
            Fault::AnswerLost => ConnectorError::Unavailable {
                side: side.to_owned(),
                message: "timed out waiting for the answer".to_owned(),
                retry_after: None,
            },
            Fault::RefusedYetCreated => ConnectorError::Record {
                side: side.to_owned(),
                entity,
                id: None,
                message: "422 Unprocessable Entity".to_owned(),
            },
        }
    }
}
