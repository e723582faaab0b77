//! The transactional outbox: integration events written in the service's own database
//! transaction, published after the commit, at least once, in commit order.
//!
//! A service that is not event-sourced cannot let the event log be its outbox. It writes each
//! integration event into an outbox table **inside the transaction that changes its state**, so
//! the event exists exactly when the change committed; a rolled-back transaction leaves nothing.
//! An [`OutboxPump`] (or the relay) then reads the table in commit order, publishes, and deletes
//! what the broker acknowledged:
//!
//! - [`Outbox::enqueue`] in a `rusqlite::Transaction` (a [`SqliteStore`](crate::SqliteStore)
//!   transaction derefs to one), [`Outbox::enqueue_postgres`] in a `tokio_postgres::Transaction`,
//!   [`Outbox::enqueue_memory`] in a [`MemoryStore::transaction`](crate::MemoryStore::transaction);
//! - [`SqliteOutbox`], [`PostgresOutbox`] and [`MemoryOutbox`] read it ([`OutboxSource`]).
//!
//! Rows are deleted only after a successful publish, never skipped by a position: a PostgreSQL
//! transaction that took a lower sequence number but commits later is still found by the next
//! read. A crash between publish and delete publishes the row again with the same message id,
//! which brokers deduplicate on (JetStream `Nats-Msg-Id`) and consumers can too.
//!
//! The tables come with the stores' migrations (`eventcore_outbox` in SQLite, `{schema}.outbox`
//! in PostgreSQL); for a database no store opens, create them with [`install_sqlite`] or
//! [`install_postgres`].

mod error;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod pump;
mod source;
#[cfg(feature = "sqlite")]
mod sqlite;

use uuid::Uuid;

use crate::integration::{IntegrationEvent, IntegrationMessage, MessageMeta};

pub use error::OutboxError;
pub use memory::MemoryOutbox;
#[cfg(feature = "postgres")]
pub use postgres::{install_postgres, PostgresOutbox};
#[cfg(feature = "postgres")]
pub(crate) use postgres_migration::POSTGRES_MIGRATION;
pub use pump::{OutboxPump, RunningPump};
pub use source::OutboxSource;
#[cfg(feature = "sqlite")]
pub use sqlite::{install_sqlite, SqliteOutbox};
#[cfg(feature = "sqlite")]
pub(crate) use sqlite_migration::SQLITE_MIGRATION;

/// Writes integration events into an outbox inside the caller's transaction.
#[derive(Debug, Clone, Copy)]
pub struct Outbox;

impl Outbox {
    /// Writes `event` into the SQLite outbox inside `tx`; published after `tx` commits, never if
    /// it rolls back. Returns the message id.
    ///
    /// ```
    /// use eventcore::integration::MessageMeta;
    /// use eventcore::outbox::{install_sqlite, Outbox};
    /// use eventcore::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # use schemars::JsonSchema;
    /// #[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
    /// #[integration(name = "billing.invoice_paid")]
    /// pub struct InvoicePaid { pub invoice: String }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = rusqlite::Connection::open_in_memory()?;
    /// install_sqlite(&conn)?;
    /// let tx = conn.transaction()?;
    /// tx.execute("CREATE TABLE invoices (id TEXT, paid INTEGER)", [])?;
    /// tx.execute("INSERT INTO invoices VALUES ('inv-1', 1)", [])?;
    /// Outbox::enqueue(&tx, &InvoicePaid { invoice: "inv-1".into() }, &MessageMeta::new())?;
    /// tx.commit()?; // the row and the message commit together
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "sqlite")]
    pub fn enqueue<I: IntegrationEvent>(
        tx: &rusqlite::Transaction<'_>,
        event: &I,
        meta: &MessageMeta,
    ) -> Result<Uuid, OutboxError> {
        let message = IntegrationMessage::new(event, meta)?;
        sqlite::insert(tx, &message)?;
        Ok(message.id)
    }

    /// Writes an already built message (a [`Translate`](crate::integration::Translate)d one,
    /// say) into the SQLite outbox inside `tx`.
    #[cfg(feature = "sqlite")]
    pub fn enqueue_message(
        tx: &rusqlite::Transaction<'_>,
        message: &IntegrationMessage,
    ) -> Result<(), OutboxError> {
        sqlite::insert(tx, message)
    }

    /// Writes `event` into the PostgreSQL outbox of `schema` inside `tx`; published after `tx`
    /// commits, never if it rolls back. Returns the message id.
    #[cfg(feature = "postgres")]
    pub async fn enqueue_postgres<I: IntegrationEvent>(
        tx: &tokio_postgres::Transaction<'_>,
        schema: &str,
        event: &I,
        meta: &MessageMeta,
    ) -> Result<Uuid, OutboxError> {
        let message = IntegrationMessage::new(event, meta)?;
        postgres::insert(tx, schema, &message).await?;
        Ok(message.id)
    }

    /// Writes an already built message into the PostgreSQL outbox of `schema` inside `tx`.
    #[cfg(feature = "postgres")]
    pub async fn enqueue_message_postgres(
        tx: &tokio_postgres::Transaction<'_>,
        schema: &str,
        message: &IntegrationMessage,
    ) -> Result<(), OutboxError> {
        postgres::insert(tx, schema, message).await
    }

    /// Writes `event` into the outbox of a [`MemoryStore`](crate::MemoryStore) inside `tx`.
    pub fn enqueue_memory<I: IntegrationEvent>(
        tx: &mut crate::store::MemoryTransaction<'_>,
        event: &I,
        meta: &MessageMeta,
    ) -> Result<Uuid, OutboxError> {
        let message = IntegrationMessage::new(event, meta)?;
        memory::insert(tx, &message)?;
        Ok(message.id)
    }
}

/// The outbox table of SQLite databases (a store migration, and `install_sqlite`).
#[cfg(feature = "sqlite")]
mod sqlite_migration {
    /// Creates `eventcore_outbox`. `seq` is the rowid: assigned under SQLite's single writer
    /// lock as one more than the highest present, so it grows in commit order among the rows
    /// waiting (a drained table may start again from 1; the message id is the identity).
    pub(crate) const SQLITE_MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS eventcore_outbox (
    seq         INTEGER PRIMARY KEY,
    message_id  TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    enqueued_at TEXT    NOT NULL,
    message     TEXT    NOT NULL
) STRICT;
";
}

/// The outbox table of PostgreSQL schemas (a store migration, and `install_postgres`).
#[cfg(feature = "postgres")]
mod postgres_migration {
    /// Creates `{schema}.outbox` (`{schema}` is the quoted schema name). `seq` orders rows but is
    /// never trusted as a position: rows leave the table only once published.
    pub(crate) const POSTGRES_MIGRATION: &str = "
CREATE TABLE IF NOT EXISTS {schema}.outbox (
    seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  uuid        NOT NULL UNIQUE,
    name        text        NOT NULL,
    version     integer     NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    message     text        NOT NULL
);
";
}
