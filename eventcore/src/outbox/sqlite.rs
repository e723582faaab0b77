//! The outbox in a SQLite database: the service's own, or a [`SqliteStore`](crate::SqliteStore)'s.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
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
///
/// Only one `SqliteOutbox` per database file reads at a time: it holds an exclusive lock on the
/// file `{database}-outbox.lock` while it reads; another one (in this or another process) reads
/// nothing until the holder is dropped or its process ends (the operating system releases the
/// lock, also on a crash). A database in memory has no second reader and takes no lock.
#[derive(Debug, Clone)]
pub struct SqliteOutbox {
    conn: Arc<Mutex<Connection>>,
    guard: Arc<ReaderLock>,
}

/// The exclusive right to read one database file's outbox, taken on first use.
#[derive(Debug)]
struct ReaderLock {
    /// The lock file, `None` for a database in memory.
    path: Option<PathBuf>,
    /// The locked file once taken (the lock lives as long as the handle).
    held: Mutex<Option<File>>,
}

impl ReaderLock {
    fn for_connection(conn: &Connection) -> Self {
        let path = conn
            .path()
            .filter(|path| !path.is_empty())
            .map(|path| PathBuf::from(format!("{path}-outbox.lock")));
        Self {
            path,
            held: Mutex::new(None),
        }
    }

    /// Whether this reader holds the lock, taking it when it is free.
    fn acquire(&self) -> Result<bool, OutboxError> {
        let Some(path) = &self.path else {
            return Ok(true);
        };
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.is_some() {
            return Ok(true);
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(OutboxError::database)?;
        match file.try_lock() {
            Ok(()) => {
                *held = Some(file);
                Ok(true)
            }
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(error)) => Err(OutboxError::database(error)),
        }
    }
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
            guard: Arc::new(ReaderLock::for_connection(&conn)),
            conn: Arc::new(Mutex::new(conn)),
        }
    }

    /// Runs `work` on the connection if this reader holds the file's lock; `None` when another
    /// reader holds it.
    async fn locked<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<Option<T>, OutboxError> {
        let guard = Arc::clone(&self.guard);
        self.with(move |conn| match guard.acquire()? {
            true => work(conn).map(Some),
            false => Ok(None),
        })
        .await
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
        let claimed = self
            .locked(move |conn| {
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
            .await?;
        Ok(claimed.unwrap_or_default())
    }

    async fn mark_published(&self, ids: &[Uuid]) -> Result<(), OutboxError> {
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        // Without the lock, another reader took over: it publishes these rows again, at least once.
        self.locked(move |conn| {
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
        .map(|_| ())
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
