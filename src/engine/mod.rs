//! The sync engine: the data path from a change on one side to a write on
//! the other.
//!
//! ```text
//! detect (poll a side's change feed, or list it all to reconcile)
//!   -> decide (dedup re-reads, map to canonical, find the link or a match,
//!              three-way merge against the base snapshot, plan writes)
//!   -> Store::commit (links, outbox, journal, conflicts, dead letters and
//!                     the watermark, in one transaction)
//!   -> writer (claim from the outbox, write under the side's limiter,
//!              Store::complete_outbox: new ids, new base, journal)
//! ```
//!
//! The GHL location is always side `a` of a pair in the store, the other
//! system side `b`.

mod build;
mod create;
mod decide;
mod detect;
mod health;
mod listed;
pub mod matching;
pub mod merge;
mod outbox;
mod reconcile;
mod redecide;
mod report;
mod resolve;
mod retag;
mod retry;
mod scheduler;
mod signals;
mod snapshot;
mod targeted;
mod writer;

use std::fmt;
use std::sync::Arc;

use crate::config::{PairSettings, SyncSettings};
use crate::connector::{Connector, ConnectorError};
use crate::domain::{EntityKind, PerSide, Side};

use crate::store::{Store, StoreError};

pub use build::{build, BuildError};
pub use outbox::WritePayload;
pub use report::{PairReport, PlannedWrite, Report, Stats};
pub use resolve::{Choice, QueuedWrite, Resolution, ResolveError};
pub use retry::{Retried, RetryError};
pub use scheduler::{run, run_daemon, Reconcile, Schedule, Shutdown};
pub use signals::{PairSignals, SideSignals};
pub use targeted::{run_targets, QueueFull, Target, TargetQueue, TargetReceiver, TargetSlot};

/// What a pass does with its decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Commit them: the daemon, `sync --once`, `backfill`.
    Apply,
    /// Only report them: `plan` writes nothing anywhere, not even the
    /// watermarks.
    Plan,
}

/// Why a pass stopped. A pass that fails commits nothing more, so its
/// watermark stays where it was and the next pass reads the same changes.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A side is unreachable, out of budget, or refusing our credentials.
    #[error(transparent)]
    Side(#[from] ConnectorError),
}

/// One configured pair with its two connected sides.
pub struct PairRuntime {
    pub settings: PairSettings,
    connectors: PerSide<Arc<dyn Connector>>,
    /// What the daemon's tasks know about this pair while it runs.
    pub signals: PairSignals,
}

impl fmt::Debug for PairRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairRuntime")
            .field("pair", &self.settings.name)
            .field("ghl", &self.connectors.ghl.side())
            .field("app", &self.connectors.app.side())
            .finish()
    }
}

impl PairRuntime {
    pub fn new(settings: PairSettings, ghl: Arc<dyn Connector>, app: Arc<dyn Connector>) -> Self {
        PairRuntime {
            settings,
            connectors: PerSide::new(ghl, app),
            signals: PairSignals::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    pub fn connector(&self, role: Side) -> &dyn Connector {
        self.connectors[role].as_ref()
    }

    /// The entities this pair maps, contacts first (children need their
    /// contact's link).
    pub fn entities(&self) -> Vec<EntityKind> {
        EntityKind::ALL
            .iter()
            .copied()
            .filter(|e| {
                *e == EntityKind::Contact || self.settings.map.fields_of(*e).next().is_some()
            })
            .collect()
    }
}

/// Every configured pair, the store and the schedule.
#[derive(Debug, Clone)]
pub struct Engine {
    pub store: Store,
    pub pairs: Vec<Arc<PairRuntime>>,
    pub sync: SyncSettings,
    /// Poked when new writes are enqueued, so the writer starts at once.
    pub wake: Arc<tokio::sync::Notify>,
    /// Records read from either side since start (progress output).
    pub records_read: Arc<std::sync::atomic::AtomicU64>,
}
