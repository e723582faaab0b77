//! The outbox in a PostgreSQL schema: the service's own, or a [`PostgresStore`](crate::PostgresStore)'s.

use deadpool_postgres::{ClientWrapper, Object, Pool};
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

use super::{OutboxError, OutboxSource, POSTGRES_MIGRATION};
use crate::integration::IntegrationMessage;

/// `name` quoted as an identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates `schema` and its outbox table in a database no [`PostgresStore`](crate::PostgresStore)
/// migrates (a no-op when they exist).
pub async fn install_postgres(client: &tokio_postgres::Client, schema: &str) -> Result<(), OutboxError> {
    let quoted = quote_ident(schema);
    let sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {quoted}; {}",
        POSTGRES_MIGRATION.replace("{schema}", &quoted)
    );
    client.batch_execute(&sql).await.map_err(OutboxError::database)
}

/// Inserts `message` (used by `Outbox::enqueue_postgres`).
pub(super) async fn insert(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    message: &IntegrationMessage,
) -> Result<(), OutboxError> {
    let json = message.to_cloudevent()?;
    let version = i32::try_from(message.version).map_err(OutboxError::database)?;
    let sql = format!(
        "INSERT INTO {}.outbox (message_id, name, version, message) VALUES ($1, $2, $3, $4)",
        quote_ident(schema)
    );
    tx.execute(&sql, &[&message.id, &message.name, &version, &json])
        .await
        .map(|_| ())
        .map_err(OutboxError::database)
}

/// Reads and clears the outbox of one PostgreSQL schema.
///
/// Only one `PostgresOutbox` per schema reads at a time: it holds a session advisory lock on a
/// connection of its own while it reads, and reads and deletes through that connection; another
/// one (in this or another process) reads nothing until the holder's connection is gone.
///
/// Rows are read in `seq` order and deleted once published. A transaction that took a lower
/// `seq` but commits after a higher one was read is not skipped: its row is simply found by the
/// next read.
pub struct PostgresOutbox {
    pool: Pool,
    schema: String,
    /// The connection holding the advisory lock, once taken.
    holder: Mutex<Option<ClientWrapper>>,
}

impl std::fmt::Debug for PostgresOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOutbox")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresOutbox {
    /// The outbox of `schema`, read through connections of `pool`.
    pub fn new(pool: Pool, schema: impl Into<String>) -> Self {
        Self {
            pool,
            schema: schema.into(),
            holder: Mutex::new(None),
        }
    }

    /// The outbox in the schema of `store`.
    pub fn for_store(store: &crate::PostgresStore) -> Self {
        Self::new(store.pool().clone(), store.schema())
    }

    fn table(&self) -> String {
        format!("{}.outbox", quote_ident(&self.schema))
    }

    /// The connection holding the advisory lock (taking it first if needed), or `None` when
    /// another reader holds it.
    async fn locked(&self) -> Result<Option<MutexGuard<'_, Option<ClientWrapper>>>, OutboxError> {
        let mut holder = self.holder.lock().await;
        if holder.as_ref().is_some_and(|client| client.is_closed()) {
            *holder = None;
        }
        if holder.is_none() {
            let client = self.pool.get().await.map_err(OutboxError::database)?;
            let row = client
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtextextended('eventcore.outbox.' || $1::text, 0))",
                    &[&self.schema],
                )
                .await
                .map_err(OutboxError::database)?;
            if !row.try_get::<_, bool>(0).map_err(OutboxError::database)? {
                return Ok(None);
            }
            // Taken out of the pool: never handed to another user while it holds the lock.
            *holder = Some(Object::take(client));
        }
        Ok(Some(holder))
    }
}

/// The holder's connection, or `None` when there is none.
fn connection<'g>(guard: &'g Option<MutexGuard<'_, Option<ClientWrapper>>>) -> Option<&'g ClientWrapper> {
    guard.as_ref().and_then(|holder| holder.as_ref())
}

impl OutboxSource for PostgresOutbox {
    async fn claim(&self, limit: usize) -> Result<Vec<IntegrationMessage>, OutboxError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = format!("SELECT seq, message FROM {} ORDER BY seq LIMIT $1", self.table());
        let guard = self.locked().await?;
        let Some(client) = connection(&guard) else {
            return Ok(Vec::new());
        };
        let rows = client
            .query(&sql, &[&limit])
            .await
            .map_err(OutboxError::database)?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get(0).map_err(OutboxError::database)?;
                let json: String = row.try_get(1).map_err(OutboxError::database)?;
                super::source::read_row(seq, &json)
            })
            .collect()
    }

    async fn mark_published(&self, ids: &[Uuid]) -> Result<(), OutboxError> {
        let sql = format!("DELETE FROM {} WHERE message_id = ANY($1)", self.table());
        let guard = self.locked().await?;
        let Some(client) = connection(&guard) else {
            // Another reader took over: it publishes these rows again, at least once.
            return Ok(());
        };
        client
            .execute(&sql, &[&ids])
            .await
            .map(|_| ())
            .map_err(OutboxError::database)
    }

    async fn pending(&self) -> Result<u64, OutboxError> {
        let client = self.pool.get().await.map_err(OutboxError::database)?;
        let row = client
            .query_one(&format!("SELECT count(*) FROM {}", self.table()), &[])
            .await
            .map_err(OutboxError::database)?;
        let count: i64 = row.try_get(0).map_err(OutboxError::database)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
