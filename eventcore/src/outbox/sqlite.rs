//! The outbox in a SQLite database: the service's own, or a [`SqliteStore`](crate::SqliteStore)'s.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::{OutboxError, OutboxSource, SQLITE_MIGRATION};
use crate::integration::IntegrationMessage;

/// Creates the outbox table in a database no [`SqliteStore`](crate::SqliteStore) migrates
/// (a no-op when it exists).
pub fn install_sqlite(conn: &Connection) -> Result<(), OutboxError> {
    conn.execute_batch(SQLITE_MIGRATION)
        .map_err(OutboxError::database)
}

/// Inserts `message` (used by [`Outbox::enqueue`](super::Outbox::enqueue)).
pub(super) fn insert(
    tx: &rusqlite::Transaction<'_>,
    message: &IntegrationMessage,
) -> Result<(), OutboxError> {
    let json = message.to_cloudevent()?;
    tx.prepare_cached(
        "INSERT INTO eventcore_outbox (message_id, name, version, enqueued_at, message) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut statement| {
        statement.execute(params![
            message.id.to_string(),
            message.name,
            message.version,
            chrono::Utc::now().to_rfc3339(),
            json
        ])
    })
    .map(|_| ())
    .map_err(OutboxError::database)
}

/// Reads and clears the outbox of one SQLite database file, on its own connection.
///
/// SQLite's single writer assigns `seq` in commit order, so rows are read in commit order.
#[derive(Debug, Clone)]
pub struct SqliteOutbox {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteOutbox {
    /// Opens the database at `path` (creating the outbox table if missing).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, OutboxError> {
        let path = path.as_ref().to_owned();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, OutboxError> {
            let conn = Connection::open(path).map_err(OutboxError::database)?;
            conn.busy_timeout(Duration::from_secs(5))
                .map_err(OutboxError::database)?;
            install_sqlite(&conn)?;
            Ok(conn)
        })
        .await??;
        Ok(Self::from_connection(conn))
    }

    /// The outbox in the database file of `store` (migrated with it); an error for a store in memory,
    /// which no second connection can open.
    pub async fn for_store(store: &crate::SqliteStore) -> Result<Self, OutboxError> {
        match store.path() {
            Some(path) => Self::open(path).await,
            None => Err(OutboxError::database(std::io::Error::other(
                "a SqliteStore in memory has no file for the outbox reader to open",
            ))),
        }
    }

    /// Reads through `conn` (whose database must have the outbox table).
    pub fn from_connection(conn: Connection) -> Self {
        Self {
            conn: Arc::new(Mutex::new(conn)),
        }
    }

    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut conn)
        })
        .await?
    }
}

impl OutboxSource for SqliteOutbox {
    async fn claim(&self, limit: usize) -> Result<Vec<IntegrationMessage>, OutboxError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |conn| {
            let mut statement = conn
                .prepare_cached("SELECT seq, message FROM eventcore_outbox ORDER BY seq LIMIT ?1")
                .map_err(OutboxError::database)?;
            let rows = statement
                .query_map([limit], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(OutboxError::database)?;
            let mut messages = Vec::new();
            for row in rows {
                let (seq, json) = row.map_err(OutboxError::database)?;
                messages.push(super::source::read_row(seq, &json)?);
            }
            Ok(messages)
        })
        .await
    }

    async fn mark_published(&self, ids: &[Uuid]) -> Result<(), OutboxError> {
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        self.with(move |conn| {
            let tx = conn.transaction().map_err(OutboxError::database)?;
            {
                let mut statement = tx
                    .prepare_cached("DELETE FROM eventcore_outbox WHERE message_id = ?1")
                    .map_err(OutboxError::database)?;
                for id in &ids {
                    statement.execute([id]).map_err(OutboxError::database)?;
                }
            }
            tx.commit().map_err(OutboxError::database)
        })
        .await
    }

    async fn pending(&self) -> Result<u64, OutboxError> {
        self.with(|conn| {
            let count: Option<i64> = conn
                .query_row("SELECT count(*) FROM eventcore_outbox", [], |row| row.get(0))
                .optional()
                .map_err(OutboxError::database)?;
            Ok(count.and_then(|c| u64::try_from(c).ok()).unwrap_or(0))
        })
        .await
    }
}
