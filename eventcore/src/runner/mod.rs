//! The machinery every runner shares: projections, event-bus consumers, the relay and sagas.
//!
//! A runner reads the store's settled log ([`EventStore::read_batch`](crate::EventStore::read_batch))
//! in batches from its checkpoint, commits each batch's effects **and** its checkpoint in one
//! store transaction (so a crash never applies an event twice nor loses one), retries a failing
//! event with exponential backoff and jitter and stops at it, never skipping it, when it keeps
//! failing. One process at a time owns a runner, by a lease whose fencing token every checkpoint
//! write checks: an owner that stalled and lost its lease can never write again. Every runner
//! reports one [`RunnerStatus`] (position, head, lag, state, last error), emits `tracing` spans
//! with its name and position, and counts through the `metrics` facade
//! (`eventcore_runner_events_total`, `eventcore_runner_retries_total`,
//! `eventcore_runner_lag_events`, `eventcore_runner_lag_seconds`, labelled by `runner`).
//!
//! [`RunnerStore`] is what a store provides for this; [`MemoryStore`](crate::MemoryStore),
//! [`SqliteStore`](crate::SqliteStore) and `PostgresStore` (feature `postgres`) implement it.

mod driver;
mod error;
mod failure;
mod kinds;
mod memory;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod retry;
mod running;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
mod status;
mod store;

pub use driver::error_chain;
pub(crate) use driver::{drive, wait_reached, BatchError, BatchHandler, DriverConfig, Ended};
pub use error::RunnerError;
pub(crate) use failure::{clear_failure, record_failure};
pub use failure::{recorded_failures, RunnerFailure};
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "redis", feature = "nats")),
    allow(unused_imports)
)]
pub(crate) use kinds::note_kind;
pub use kinds::{recorded_kinds, RunnerKind};
pub(crate) use memory::documents_table;
pub use retry::{Backoff, RetryPolicy};
pub(crate) use running::Runner;
pub use running::Running;
pub(crate) use status::StatusBoard;
pub use status::{RunnerState, RunnerStatus};
pub use store::{Checkpoint, CommitSignal, DocumentCommit, DocumentWrite, Lease, RunnerStore};
/// Stops long runner work such as a rebuild early (tokio-util's token, re-exported).
pub use tokio_util::sync::CancellationToken;

/// A lease owner id unique to this process and call: `{host pid}/{uuid}`.
pub(crate) fn new_owner() -> String {
    format!("{}/{}", std::process::id(), uuid::Uuid::now_v7())
}
