//! Why a request to a side is made. GHL gives one budget per app and
//! location (100 requests per 10 s, 200,000 a day) to everything the daemon
//! does, so its limiter must know which requests may wait: live work (a
//! poll, a webhook's targeted sync, a write) keeps its latency, bulk work
//! (a reconciliation's listing, the children sweep) takes what is left.
//!
//! The engine sets the purpose around each kind of work as a task-local
//! value ([`Purpose::scope`]), and the GHL client reads it for every
//! request ([`Purpose::current`]) without every connector call carrying
//! an argument the connector trait knows nothing about. A task-local does
//! not cross `tokio::spawn`: the connectors send their requests from the
//! caller's task, so the value set around a call is the value its requests
//! see.

use std::future::Future;

use super::text_enum;

text_enum! {
    /// What a request is for: the label of its count (mirror, `/metrics`,
    /// `status`) and its priority in the limiter.
    pub enum Purpose as "request purpose" {
        /// An incremental poll of a change feed (and the children of the
        /// contacts it found changed).
        Poll => "poll",
        /// A targeted sync of a record a webhook named.
        WebhookSync => "webhook_sync",
        /// A full listing of a side's contacts (reconciliation, backfill).
        Reconcile => "reconcile",
        /// The tasks and notes of every linked contact, read by a
        /// reconciliation.
        ChildrenSweep => "children_sweep",
        /// A write from the outbox, with the reads it makes first (the
        /// target re-read, a create's look-up).
        Write => "write",
        /// Anything else (operator commands, start-up checks): live.
        Other => "other",
    }
}

tokio::task_local! {
    static CURRENT: Purpose;
}

/// How the limiter treats a purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Served first; paced only by the budget.
    Live,
    /// Waits while live work waits, and stops first when the day's budget
    /// is projected to run short.
    Bulk,
}

impl Purpose {
    /// The purpose of the requests made inside the current task, outside
    /// any [`scope`](Self::scope): [`Purpose::Other`].
    pub fn current() -> Purpose {
        CURRENT
            .try_with(|purpose| *purpose)
            .unwrap_or(Purpose::Other)
    }

    /// Runs `work` with its requests labelled `self` (an inner scope wins).
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }

    pub fn priority(self) -> Priority {
        match self {
            Purpose::Reconcile | Purpose::ChildrenSweep => Priority::Bulk,
            Purpose::Poll | Purpose::WebhookSync | Purpose::Write | Purpose::Other => {
                Priority::Live
            }
        }
    }

    /// The position of this purpose in [`Purpose::ALL`] (counters kept as
    /// arrays).
    pub fn index(self) -> usize {
        Purpose::ALL
            .iter()
            .position(|p| *p == self)
            .expect("every purpose is in ALL")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scope_labels_its_work_and_an_inner_scope_wins() {
        assert_eq!(Purpose::current(), Purpose::Other);
        let seen = Purpose::Reconcile
            .scope(async {
                let outer = Purpose::current();
                let inner = Purpose::ChildrenSweep
                    .scope(async { Purpose::current() })
                    .await;
                (outer, inner, Purpose::current())
            })
            .await;
        assert_eq!(
            seen,
            (
                Purpose::Reconcile,
                Purpose::ChildrenSweep,
                Purpose::Reconcile
            )
        );
        assert_eq!(Purpose::current(), Purpose::Other);
    }
}
